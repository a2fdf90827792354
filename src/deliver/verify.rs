//! `-bv`: where each address would go, without sending anything (sendmail's format).

use super::engine::Engine;
use super::plan::{Route, route};
use rsendmail::app::Setup;
use rsendmail::exit::{Fatal, Sysexit};

/// A line of `-bv`'s output, its addresses and reasons from outside (the command line, a
/// `.forward`, the aliases) with each character that is not safe on a terminal written
/// as its octets in octal ([`rsendmail::text::escaped`], as `mailq` and the log write them).
macro_rules! say {
    ($($arg:tt)*) => {
        rsendmail::tell!("{}", rsendmail::text::escaped(&format!($($arg)*)))
    };
}

fn shown_host(h: &str) -> String {
    if h.parse::<std::net::IpAddr>().is_ok() {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

/// `-bv`: say where each address would go, without sending anything (sendmail's format).
/// Run by a user who is not root, it first says so as sendmail does (the user cannot
/// read every `.forward` and :include: file; compat cases bv-user-*).
pub fn verify(s: &Setup, engine: &Engine) -> Result<Sysexit, Fatal> {
    if !nix::unistd::geteuid().is_root() {
        say!("Notice: -bv may give misleading output for non-privileged user");
    }
    let mut style = rsendmail::submit::old_style(&s.settings);
    let (mut addrs, mut refused) =
        rsendmail::submit::argv_recipients(&s.inv.recipients, &mut style)?;
    if s.inv.read_recipients {
        // `-bv -t`: the message's header is read and its destination fields verified
        // after the command line's addresses, as a submission takes them (recorded:
        // `bv-t-plain`, `bv-t-plus-argv`, `t-group-members-bv`).
        // The whole message is read, as sendmail reads it, so that `-X` logs each of
        // its lines (`<<<`) and `<<< [EOF]` before the verdicts (recorded: `xlog-bv-t`,
        // `xlog-bv-t-argv`, `xlog-bv-t-none`).
        let stdin: Box<dyn std::io::BufRead> = if rsendmail::traffic::enabled() {
            Box::new(rsendmail::traffic::ReadTee::new(std::io::stdin().lock()))
        } else {
            Box::new(std::io::stdin().lock())
        };
        let mut reader =
            rsendmail::message::LineReader::new(stdin, s.settings.ignore_dots.unwrap_or(false));
        let head = rsendmail::message::read_head(&mut reader)?;
        // The body: read to its end and dropped, a piece at a time.
        let mut piece = Vec::new();
        while !matches!(
            reader
                .read_piece(&mut piece)
                .map_err(|e| rsendmail::message::read_error(&e))?,
            rsendmail::message::Piece::End
        ) {}
        rsendmail::message::observe_style(&head.headers, &mut style);
        // The fields are lists after the command line's arguments.
        let mut listed = rsendmail::message::header_recipients(&head.headers, style.0);
        for l in &mut listed {
            l.list += s.inv.recipients.len();
        }
        rsendmail::submit::sort_listed(listed, &mut addrs, &mut refused);
    }
    if addrs.is_empty() && refused.is_empty() && s.inv.read_recipients {
        // As a submission with -t says it (recorded: `bv-t-none`).
        say!("No recipient addresses found in header");
        return Ok(Sysexit::Ok);
    }
    if addrs.is_empty() && refused.is_empty() {
        return Err(Fatal::new(
            Sysexit::Usage,
            "Recipient names must be specified",
        ));
    }
    // sendmail takes the lists (each argument, then each of `-t`'s fields) one at a
    // time: a list's syntax faults in written order, then what expanding its
    // recipients in queue order finds (an alias's own list the same way), before the
    // next list. Only then does it say what is deliverable: the local recipients in
    // the order they were queued, then every other recipient in queue order, the
    // members of an alias in their place (recorded from 8.17: `bv-order-mixed`,
    // `bv-order-bad-first`, `bv-order-remote-first`, `bv-several`, `bv-alias-order`).
    // Each refusal with whether it decides the exit status (`Sysexit::of_refusals`).
    let mut said: Vec<(Sysexit, bool)> = Vec::new();
    addrs.sort_by_key(|a| a.list);
    refused.sort_by_key(|r| r.list);
    let mut refused = refused.into_iter().peekable();
    let is_local = |a: &str| route(engine, a) == Route::Local;
    // Each address is named as it was given: the piece of its list with its phrase,
    // angle brackets, comment and a group's name or `;` (`grp: Bob <b@example.org>`,
    // `c@example.org;`), as sendmail prints it (recorded: `bv-angle-comment`,
    // `bv-group-members`, `bv-group-members-mixed`); an alias's targets by address.
    let mut other: Vec<(String, String)> = Vec::new();
    let mut local: Vec<String> = Vec::new();
    // Each recipient once, as sendmail queues it once: a local user by name ignoring
    // case (`root`, `Root`), any other address byte for byte; an alias member already
    // shown is not shown again (recorded: `dup-case-local-bv`, `plus-bv-alias`).
    let mut seen = std::collections::HashSet::new();
    let mut say_refused_to = |list: Option<usize>, said: &mut Vec<(Sysexit, bool)>| {
        while let Some(r) = refused.next_if(|r| list.is_none_or(|k| r.list <= k)) {
            say!("{}", r.text);
            said.push((r.code, r.sets_status));
        }
    };
    // The refusals said for the arguments before, by the list that named the target:
    // an alias reached again (`mix1 nested`, `nested: mix1, ...`) is not expanded
    // again, so its refusals are said once (recorded: `alias-reached-twice-bv`).
    let mut said_before: std::collections::HashSet<(Option<String>, String)> =
        std::collections::HashSet::new();
    // Each refused recipient once, as a submission refuses it once: a user unknown
    // however often and in whichever case the lists name it, and a file or :include:
    // named directly; only a program named directly and an address that cannot be
    // parsed are said each time (sendmail checks them before it looks for the
    // recipient among those it has; recorded: `bv-dup-unknown-case`, `bv-alias-dup-case`, `bv-direct-twice`).
    let mut refused_said: std::collections::HashSet<String> = std::collections::HashSet::new();
    for a in addrs {
        // The syntax faults of this list and of the lists before it not yet said.
        say_refused_to(Some(a.list), &mut said);
        let written = (a.text != a.address).then_some(a.text.as_str());
        if let Some((shown, what)) =
            rsendmail::submit::direct_mailer(&a.address, written, &is_local)
        {
            if what == "programs" || refused_said.insert(rsendmail::aliases::refused_key(&shown)) {
                say!("{shown}... Cannot mail directly to {what}");
                said.push((Sysexit::Usage, false));
            }
            continue;
        }
        if !is_local(&a.address) {
            if seen.insert(rsendmail::message::address::duplicate_key(&a.address)) {
                other.push((a.text, a.address));
            }
            continue;
        }
        // Local names through the aliases, each target shown (unknown users refused).
        let x = engine
            .local
            .expand(std::slice::from_ref(&a.address), None, &is_local);
        // And the users' `.forward` files, as a delivery follows them.
        let x = engine.local.verify_forwards(x, &is_local);
        // With -v, what the expansion did, as sendmail's `-bv -v` prints it: a
        // `.forward` followed, or why one is not used (recorded: `forward-exec-bv-v`,
        // `forward-gw-bv-v`); without, nothing (`forward-gw-bv`).
        if s.inv.verbose {
            for n in &x.notes {
                say!("{n}");
            }
        }
        // Every refusal as the list names it, a target written twice (in one form or
        // both IDN forms) twice, as sendmail's `-bv` prints it (recorded:
        // `bv-alias-bad-twice`); a delivery reports such a target once.
        let mut said_now = Vec::new();
        for (k, e) in x.errors.iter().enumerate() {
            let key = (
                x.ctl_of(k).map(str::to_string),
                rsendmail::aliases::refused_key(&e.target()),
            );
            if x.ctl_of(k).is_some() && said_before.contains(&key) {
                continue;
            }
            if !e.is_syntax_fault() && !refused_said.insert(key.1.clone()) {
                continue;
            }
            said_now.push(key);
            let text = e.text();
            // The address's own refusal names it as given (`Nobody <nosuchuser>... User
            // unknown`; recorded: `bv-angle-unknown`); a target read from a list file
            // after `FILE: line N: `, as at submission (recorded: `inc-malformed-bv`).
            let text = if x.from_list_file(k) {
                x.said(k)
            } else {
                match text.strip_prefix(&format!("{}...", a.address)) {
                    Some(rest) => format!("{}...{rest}", a.text),
                    None => text,
                }
            };
            say!("{text}");
            said.push((e.status(), e.sets_status()));
        }
        said_before.extend(said_now);
        for t in x.targets {
            use rsendmail::aliases::Target;
            if !seen.insert(rsendmail::aliases::recipient_key(
                &t.target.address(),
                &is_local,
            )) {
                continue;
            }
            // `\user` keeps its backslash in what is shown, as sendmail's `user \root`.
            let quoted = if matches!(t.target, Target::Mailbox(_)) {
                "\\"
            } else {
                ""
            };
            match t.target {
                // The user's own name as given (`root`, `root@host`, `\root`) is shown
                // as given; a user an alias led to, by name.
                Target::User(user) | Target::Mailbox(user) => {
                    let given = a.address.strip_prefix(quoted).unwrap_or(&a.address);
                    let named = format!("{quoted}{user}");
                    let shown = if rsendmail::aliases::key_of(given) == user
                        && a.address.starts_with(quoted)
                    {
                        &a.text
                    } else {
                        &named
                    };
                    // `user+detail`: the detail is sendmail's `host` (recorded:
                    // `plus-bv-detail`, `plus-bv-forms`).
                    local.push(match rsendmail::aliases::split_detail(&user) {
                        (base, Some(detail)) if !detail.is_empty() => {
                            format!(
                                "{shown}... deliverable: mailer local, host {detail}, user {quoted}{base}"
                            )
                        }
                        (base, _) => {
                            format!("{shown}... deliverable: mailer local, user {quoted}{base}")
                        }
                    });
                }
                Target::Pipe(c) => {
                    let shown = rsendmail::aliases::shown_target(&format!("|{c}")).into_owned();
                    local.push(format!("{shown}... deliverable: mailer prog, user {shown}"))
                }
                Target::File(f) => {
                    let shown = rsendmail::aliases::shown_target(&f);
                    local.push(format!(
                        "{shown}... deliverable: mailer *file*, user {shown}"
                    ))
                }
                Target::Remote(r) => other.push((r.clone(), r)),
            }
        }
    }
    // The lists after the last one holding a recipient.
    say_refused_to(None, &mut said);
    for line in local {
        say!("{line}");
    }
    for (shown, addr) in other {
        match route(engine, &addr) {
            Route::Relay(targets) => {
                let host = targets
                    .first()
                    .map(|t| shown_host(&t.0))
                    .unwrap_or_default();
                say!(
                    "{shown}... deliverable: mailer relay, host {host}, user {}",
                    engine.qualify(&addr)
                );
            }
            Route::Mx(d) => {
                say!("{shown}... deliverable: mailer esmtp, host {d}., user {addr}")
            }
            Route::Local => {
                let user = addr.split('@').next().unwrap_or(&addr);
                say!("{shown}... deliverable: mailer local, user {user}");
            }
        }
    }
    Ok(Sysexit::of_refusals(said))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_shown_like_sendmail() {
        assert_eq!(shown_host("127.0.0.1"), "[127.0.0.1]");
        assert_eq!(shown_host("::1"), "[::1]");
        assert_eq!(shown_host("[10.0.0.1]"), "[10.0.0.1]");
        assert_eq!(shown_host("mail.example.org"), "mail.example.org");
    }
}

//! The network half of `rsendmail-admin check` (`rsendmail-deliver --check [--to
//! ADDRESS] -- ARGV`): DNS, TCP, the greeting, EHLO, TLS with the server's certificate,
//! AUTH, and with `--to` a MAIL/RCPT probe followed by RSET and QUIT (a local `--to`:
//! its route through the aliases as `-bv` finds it, then the smarthost without the
//! probe; without `--to`, first each `:include:` file the aliases file names:
//! [`include_files`]). Every SMARTHOST host is checked in delivery order; with several, a host that
//! fails is a `warn` and the check fails only when none works. The steps are
//! those of a delivery and run through its code ([`Session::open`], [`Session::probe`],
//! [`attempt::relay_addresses`], [`dns::Dns::mx`]): what passes here is what a delivery
//! does. One line a step, as [`rsendmail::admin::check::say`] prints them; credentials
//! are never printed (the session's transcript, which hides them, is only read for the
//! server's own lines).
//!
//! Exit status: 0 when every step passed (a `warn` line does not fail); else the first
//! failure's: EX_UNAVAILABLE (69) for a permanent refusal (a name that does not exist, a
//! 5yz reply, AUTH refused), EX_NOUSER (67) and the others of `-bv` for a local address
//! it refuses, EX_TEMPFAIL (75) for the rest (no connection, a timeout, a TLS failure,
//! a 4yz reply, a DNS lookup failure). Every wait is bounded by the
//! configured timeouts (`O Timeout.connect=`, `.initial`, `.helo`, `.mail`, `.rcpt`,
//! `.rset`, `.quit`, `.resolver.retrans`).

use super::attempt;
use super::dns::{self, MxResult};
use super::engine::Engine;
use super::plan::{self, Route};
use super::reply::Reply;
use super::smtp::{
    CERTIFICATE_WAIT, CHECK_LABEL, CONNECTED, Credentials, OpenFailure, Session, State, TlsMode,
    TlsPolicy,
};
use rsendmail::admin::check::{Mark, Tally};
use rsendmail::app::Setup;
use rsendmail::deadline::span;
use rsendmail::exit::{Fatal, Sysexit};
use std::net::IpAddr;

/// Run the checks; the exit status as the module says.
pub fn check(s: &Setup, engine: &Engine, to: Option<&str>) -> Result<Sysexit, Fatal> {
    // A server's reply is shown as every other text from outside the check shows: a
    // control character as its octets in octal, never `?`.
    super::smtp::show_escaped();
    let mut t = Tally::default();
    let mut dns_state: Option<Result<dns::Dns, String>> = None;
    let through = if engine.resolver.is_empty() {
        "the system's resolver".to_string()
    } else {
        format!("RESOLVER {}", engine.resolver.join(", "))
    };
    // The address as the command line takes it (quoted local parts, `<addr>`); one
    // address, not a list.
    let given = match to {
        Some(a) => Some(one_address(s, a)?),
        None => None,
    };
    let to = given.as_deref().map(|a| engine.qualify(a));
    if to.is_none() {
        include_files(&mut t, engine);
    }
    // With --to, the relay table's hosts must each resolve (the route's own host is
    // then checked through); without it, each is checked through after the smarthost
    // ([`relay_table_hosts`]).
    if to.is_some() {
        let hosts = relay_hosts(engine);
        for ((host, _), patterns) in hosts.iter().take(MAX_HOSTS) {
            let serves = format!(" (RELAYTABLE, for {})", patterns.join(", "));
            let _ = resolve(&mut t, engine, &mut dns_state, host, &through, &serves);
        }
        not_checked(&mut t, "dns", hosts.len(), "hosts of RELAYTABLE");
    }
    // Where the mail goes: the route a delivery takes.
    let mut mx = false;
    let route = to.as_deref().map(|a| plan::route(engine, a));
    // A local address goes through the aliases as `-bv` takes it; the smarthost is
    // still checked (the mail of others goes there), without the probe.
    let mut probe_to = to.as_deref();
    if let (Some(a), Some(Route::Local)) = (given.as_deref(), &route) {
        local_route(&mut t, engine, a);
        probe_to = None;
    }
    let hosts: Vec<(String, u16, Option<Vec<IpAddr>>)> = match (&to, route) {
        (_, None | Some(Route::Local)) if engine.smarthost.is_empty() => {
            t.say(
                Mark::Skip,
                "network",
                "no SMARTHOST: mail goes to each domain's MX hosts (give --to ADDRESS of \
                 another domain to check one)",
            );
            if to.is_none() {
                relay_table_hosts(&mut t, s, engine, &mut dns_state, &through);
            }
            return Ok(t.status());
        }
        (_, None | Some(Route::Local)) => engine
            .smarthost
            .iter()
            .map(|(h, p)| (h.clone(), *p, None))
            .collect(),
        (Some(_), Some(Route::Relay(list))) => {
            list.into_iter().map(|(h, p)| (h, p, None)).collect()
        }
        (None, Some(_)) => return Ok(t.status()),
        (Some(a), Some(Route::Mx(domain))) => {
            mx = true;
            let d = dns_state.get_or_insert_with(|| {
                dns::Dns::new(&engine.resolver, engine.dns_timeout, engine.dns_retries)
            });
            // The MX lookup is always through the delivery's resolver (RESOLVER, else
            // /etc/resolv.conf's name servers): the wait is said first, as for a relay.
            if !engine.resolver.is_empty() {
                say_wait(&mut t, engine, &through, &format!("the MX of {domain}"));
            }
            let (found, why) = match d {
                Ok(d) => d.mx_explained(&domain, &dns::own_names(&engine.host_name)),
                Err(e) => (
                    MxResult::Temp(rsendmail::status::DIRECTORY_TEMP, e.clone()),
                    None,
                ),
            };
            match found {
                MxResult::Hosts(h) => {
                    let names: Vec<String> = h
                        .iter()
                        .map(|(n, a)| format!("{n} ({})", addresses(a)))
                        .collect();
                    t.say(
                        Mark::Ok,
                        "dns",
                        &format!(
                            "MX of {domain} (for {a}) through {through}: {}",
                            names.join(", ")
                        ),
                    );
                    // The first MX host is the one tried.
                    h.into_iter()
                        .take(1)
                        .map(|(n, a)| (n, engine.mx_port, Some(a)))
                        .collect()
                }
                MxResult::NoHost(_, why) => {
                    t.fail(
                        Sysexit::Unavailable,
                        "dns",
                        &format!("MX of {domain} through {through}: {why}"),
                    );
                    return Ok(t.status());
                }
                MxResult::Temp(_, text) => {
                    // Whether the name server answered at all, as for a relay.
                    let cause = match why.as_deref().map(resolver_cause) {
                        Some(c) if !engine.resolver.is_empty() => format!(" ({c})"),
                        _ => String::new(),
                    };
                    t.fail(
                        Sysexit::TempFail,
                        "dns",
                        &format!("MX of {domain} through {through}: {text}{cause}"),
                    );
                    return Ok(t.status());
                }
            }
        }
    };
    // Each host in the order a delivery tries them, each with its lines. With several,
    // a host that fails is a `warn` (a delivery falls back to the next); the check fails
    // only when none works.
    let several = hosts.len() > 1;
    let all = hosts.len();
    let count = all.min(MAX_HOSTS);
    let mut worked = false;
    let mut first_code = None;
    for (i, (host, port, addrs)) in hosts.into_iter().take(MAX_HOSTS).enumerate() {
        if several {
            t.say(
                Mark::Info,
                "smarthost",
                &format!("{host} port {port} ({} of {all} in delivery order)", i + 1),
            );
        }
        t.soft = several;
        t.soft_failure = None;
        let addrs = match addrs {
            Some(a) => Some(a),
            None => resolve(&mut t, engine, &mut dns_state, &host, &through, ""),
        };
        if let Some(addrs) = addrs {
            session(&mut t, s, engine, &host, port, &addrs, mx, probe_to);
        }
        t.soft = false;
        match t.soft_failure.take() {
            Some(code) if several => {
                first_code.get_or_insert(code);
                let what = if worked || i + 1 < count {
                    "mail goes through the other hosts while it does not work"
                } else {
                    "the hosts before it do not work either"
                };
                t.say(
                    Mark::Warn,
                    "smarthost",
                    &format!("{host} port {port} does not work: {what}"),
                );
            }
            _ => worked = true,
        }
    }
    not_checked(&mut t, "smarthost", all, "hosts of SMARTHOST");
    if several && !worked {
        let none = if all > count {
            format!("none of the first {count} hosts works")
        } else {
            format!("none of the {count} hosts works")
        };
        t.fail(
            first_code.unwrap_or(Sysexit::TempFail),
            "smarthost",
            &format!("{none}: mail cannot leave this host"),
        );
    }
    if to.is_none() {
        relay_table_hosts(&mut t, s, engine, &mut dns_state, &through);
    }
    Ok(t.status())
}

/// Without `--to`: each host of the relay table (`RELAYTABLE`, each `host:port` once, in
/// the table's order; `mx:` lines have none) checked through as the smarthost is: DNS,
/// connect, greeting, EHLO, TLS, AUTH. Each is the only way to the domains its lines
/// name, so a host that does not work fails the check. An `info relay` line names it
/// first.
fn relay_table_hosts(
    t: &mut Tally,
    s: &Setup,
    engine: &Engine,
    dns_state: &mut Option<Result<dns::Dns, String>>,
    through: &str,
) {
    let hosts = relay_hosts(engine);
    for ((host, port), patterns) in hosts.iter().take(MAX_HOSTS) {
        let serves = format!(" (RELAYTABLE, for {})", patterns.join(", "));
        t.say(Mark::Info, "relay", &format!("{host} port {port}{serves}"));
        if let Some(addrs) = resolve(t, engine, dns_state, host, through, &serves) {
            session(t, s, engine, host, *port, &addrs, false, None);
        }
    }
    not_checked(t, "relay", hosts.len(), "hosts of RELAYTABLE");
}

/// The most hosts of `SMARTHOST`, and the most of `RELAYTABLE`, one check tries (each
/// `host:port` once): every step of each is bounded by its timeout, and a table of
/// thousands would keep the check going for hours. The ones after them are counted on a
/// `warn` line ([`not_checked`]).
pub const MAX_HOSTS: usize = 20;

/// Each host and port of the relay table (`mx:` lines have none), once, in the table's
/// order, with the patterns of every line naming it.
fn relay_hosts(engine: &Engine) -> Vec<((String, u16), Vec<&str>)> {
    let mut out: Vec<((String, u16), Vec<&str>)> = Vec::new();
    let mut at: std::collections::HashMap<(&str, u16), usize> = Default::default();
    for r in engine.relay_table.iter().filter(|r| !r.by_mx) {
        match at.get(&(r.host.as_str(), r.port)) {
            Some(&i) => {
                if let Some((_, p)) = out.get_mut(i) {
                    p.push(r.pattern.as_str());
                }
            }
            None => {
                at.insert((r.host.as_str(), r.port), out.len());
                out.push(((r.host.clone(), r.port), vec![r.pattern.as_str()]));
            }
        }
    }
    out
}

/// Of `count` hosts (`what`: `hosts of RELAYTABLE`), those past [`MAX_HOSTS`], which the
/// check did not try: a `warn` line saying how many, and how to check one.
fn not_checked(t: &mut Tally, step: &str, count: usize, what: &str) {
    if count > MAX_HOSTS {
        t.say(
            Mark::Warn,
            step,
            &format!(
                "{} more {what} not checked (the check tries the first {MAX_HOSTS} of \
                 {count}); check one with --to an address it serves",
                count - MAX_HOSTS
            ),
        );
    }
}

/// The one address `check --to` takes ([`rsendmail::submit::one_address`], in the
/// configuration's list style): refused (EX_USAGE) when it is no address or more than
/// one. (`rsendmail-admin check` refuses at once one that no list style takes.)
fn one_address(s: &Setup, given: &str) -> Result<String, Fatal> {
    rsendmail::submit::one_address(given, rsendmail::submit::old_style(&s.settings))
        .map_err(|why| Fatal::new(Sysexit::Usage, format!("check --to: {why}")))
}

/// A local address through the aliases, lists and users' `.forward` files, as `-bv`
/// resolves it (the same expansion, [`crate::deliver::local::Local::verify_forwards`]):
/// a `route` line naming where it goes (a mailbox, a program, a file, an address
/// elsewhere), or a failure with `-bv`'s words and status (User unknown: 67).
fn local_route(t: &mut Tally, engine: &Engine, a: &str) {
    use rsendmail::aliases::Target;
    let is_local = |x: &str| plan::route(engine, x) == Route::Local;
    let x = engine.local.expand(&[a.to_string()], None, &is_local);
    let x = engine.local.verify_forwards(x, &is_local);
    for e in &x.errors {
        t.fail(e.status(), "route", &e.text());
    }
    if !x.errors.is_empty() {
        return;
    }
    // A user's `.forward` that is not used (unsafe): said with sendmail's reason, as
    // its -bv -v says it, and the repair.
    for e in &x.targets {
        if let Target::User(u) = &e.target {
            unused_forward_line(t, u);
        }
    }
    // A user whose `.forward` this caller may not read (another user's, 0600): where
    // that mail goes is not known here, as `-bv` warns a user who is not root.
    let mut unread = Vec::new();
    let targets: Vec<String> = x
        .targets
        .iter()
        .map(|e| match &e.target {
            Target::User(u) => match unreadable_forward(u) {
                Some((fwd, why)) => {
                    let said = format!(
                        "the mailbox of {u}, unless its .forward sends the mail on ({} could \
                         not be read: {why})",
                        fwd.display()
                    );
                    unread.push(fwd);
                    said
                }
                None => format!("the mailbox of {u}"),
            },
            Target::Mailbox(u) => format!("the mailbox of {u}"),
            Target::Pipe(c) => format!("the command |{c}"),
            Target::File(f) => format!("the file {f}"),
            Target::Remote(r) => format!("{r} (sent on)"),
        })
        .collect();
    if unread.is_empty() {
        t.say(
            Mark::Ok,
            "route",
            &format!("{a} is delivered on this host: {}", targets.join(", ")),
        );
    } else {
        t.say(
            Mark::Warn,
            "route",
            &format!(
                "{a} is delivered on this host: {} (this user may not read every .forward, \
                 so this may be misleading, as -bv warns; run the check as root to follow \
                 it)",
                targets.join(", ")
            ),
        );
    }
}

/// Without `--to`: each `:include:` file the aliases file names, expanded as a delivery
/// (and `check --to` one of its aliases) expands it, with the rules of sendmail's
/// `include()` (`rsendmail::aliases`: a file that is missing, not a regular file, too
/// large, not text, writable by everyone, one DefaultUser may not read; one its group or
/// an access ACL lets write is unsafe: its programs and files are refused). One line
/// each: `ok`; `FAIL` with the status `--to` gives for what it refuses (the file, or the
/// first target in it refused, and how many more); `warn` for an unsafe file whose
/// members are all used, and for a file this user may not read (the root queue runner
/// reads it). Where a command repairs it, the line ends with `(fix: COMMAND)`.
fn include_files(t: &mut Tally, engine: &Engine) {
    use rsendmail::spool::entry::NEEDS_ROOT_RUNNER;
    use std::os::unix::fs::MetadataExt;
    let Some(aliases) = engine.local.aliases() else {
        return;
    };
    let is_local = |x: &str| plan::route(engine, x) == Route::Local;
    for (path, alias) in aliases.include_files() {
        let target = format!(":include:{path}");
        let word = rsendmail::spool::safety::shell_word(std::path::Path::new(&path));
        let md = std::fs::metadata(&path).ok();
        let mode = md.as_ref().map(|m| m.mode() & 0o7777);
        let unsafe_file = md.as_ref().is_some_and(|m| {
            m.is_file()
                && rsendmail::spool::safety::others_may_write(std::path::Path::new(&path), m, true)
        });
        // A path a user holds gets no root chmod: her own, or why not
        // (`rsendmail::spool::safety::repair_text`).
        let fix = |cmd: Option<String>| {
            cmd.map(|c| rsendmail::spool::safety::repair_text(std::path::Path::new(&path), &[c]))
                .unwrap_or_default()
        };
        let x = engine.local.expand(
            std::slice::from_ref(&target),
            Some(aliases.owner),
            &is_local,
        );
        let said = |i: usize| format!("alias {alias}: {}", x.said(i));
        let not_read = |e: &rsendmail::aliases::ExpandError| {
            e.is_temporary() && !engine.local.root && e.text().contains(NEEDS_ROOT_RUNNER)
        };
        // The file itself refused, or not read.
        if let Some((i, e)) = x
            .errors
            .iter()
            .enumerate()
            .find(|(i, e)| e.target() == target && !x.from_list_file(*i))
        {
            if not_read(e) {
                t.say(
                    Mark::Warn,
                    "include",
                    &format!(
                        "{} could not be checked (this user may not read it; run the check \
                         as root to check it)",
                        said(i)
                    ),
                );
                continue;
            }
            let cmd = match mode {
                Some(m) if m & 0o002 != 0 => Some(format!("chmod go-w {word}")),
                Some(m)
                    if engine.local.root
                        && m & 0o004 == 0
                        && md.as_ref().is_some_and(|m| m.is_file())
                        && e.text().contains("Permission denied") =>
                {
                    Some(format!("chmod o+r {word}"))
                }
                _ => None,
            };
            t.fail(e.status(), "include", &format!("{}{}", said(i), fix(cmd)));
            continue;
        }
        // What it names, refused as a delivery refuses it.
        if let Some((i, e)) = x.errors.iter().enumerate().next() {
            let more = match x.errors.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more refusal: check --to ALIAS says each)".to_string(),
                n => format!(" (and {n} more refusals: check --to ALIAS says each)"),
            }
            .replace("ALIAS", &alias);
            if not_read(e) {
                t.say(Mark::Warn, "include", &format!("{}{more}", said(i)));
                continue;
            }
            let cmd = matches!(e, rsendmail::aliases::ExpandError::Mailer(..))
                .then_some(())
                .filter(|()| unsafe_file)
                .map(|()| format!("chmod go-w {word}"));
            t.fail(
                e.status(),
                "include",
                &format!("{}{more}{}", said(i), fix(cmd)),
            );
            continue;
        }
        let owner_mode = md
            .as_ref()
            .map(|m| {
                format!(
                    "{}:{} {:04o}",
                    rsendmail::spool::safety::user_name(m.uid()),
                    rsendmail::spool::safety::group_name(m.gid()),
                    m.mode() & 0o7777
                )
            })
            .unwrap_or_default();
        if unsafe_file {
            t.say(
                Mark::Warn,
                "include",
                &format!(
                    "{path} ({owner_mode}, alias {alias}) may be written by others than its \
                     owner (its group, or an access ACL): its addresses are used, but a \
                     |command or /file written in it would be refused{}",
                    fix(Some(format!("chmod go-w {word}")))
                ),
            );
            continue;
        }
        let n = x.targets.len();
        t.say(
            Mark::Ok,
            "include",
            &format!(
                "{path} ({owner_mode}, alias {alias}): {n} target{}",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
}

/// A `warn forward` line when the local user `name` has a `.forward` that is not used
/// (group or world writable, another user's, not a regular file): why, in sendmail's
/// words ([`crate::deliver::local::unused_forward`]), and how to make it used.
fn unused_forward_line(t: &mut Tally, name: &str) {
    let Some(why) = super::local::unused_forward(name) else {
        return;
    };
    let (base, _) = rsendmail::aliases::split_detail(name);
    let fwd = why.split(": ").next().unwrap_or_default();
    let word = rsendmail::spool::safety::shell_word(std::path::Path::new(fwd));
    // Never a root chmod or chown of a file in a user's home: she could swap it for a
    // link to any file first. Her own commands, which reach only what she may change.
    let fix = if why.ends_with("writable file") {
        rsendmail::spool::safety::repair_text(
            std::path::Path::new(fwd),
            &[format!("chmod go-w {word}")],
        )
    } else if why.ends_with("Permission denied") {
        // Another user's file: she makes a copy of her own in its place.
        let new = rsendmail::spool::safety::shell_word(std::path::Path::new(&format!("{fwd}.new")));
        match super::local::user(base) {
            Some(u) => rsendmail::spool::safety::as_user(
                u.uid,
                &[
                    format!("install -m 644 {word} {new}"),
                    format!("mv -f {new} {word}"),
                ],
            ),
            None => " (make it a regular file the user owns)".to_string(),
        }
    } else {
        " (make it a regular file the user owns)".to_string()
    };
    t.say(
        Mark::Warn,
        "forward",
        &format!("{base}... forward: {why}: ignored, mail to {base} stays in its mailbox{fix}"),
    );
}

/// The `.forward` of the local user `name` when there is one this process may not read
/// (another user's, mode 0600): its path and why. None when there is none, or it can be
/// read (then the expansion followed it).
fn unreadable_forward(name: &str) -> Option<(std::path::PathBuf, String)> {
    let (base, _) = rsendmail::aliases::split_detail(name);
    let u = nix::unistd::User::from_name(base).ok()??;
    let fwd = u.dir.join(".forward");
    match std::fs::File::open(&fwd) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some((fwd, rsendmail::config::io_text(&e))),
    }
}

/// A relay's addresses through the delivery's own lookup; a `dns` line either way.
fn resolve(
    t: &mut Tally,
    engine: &Engine,
    dns_state: &mut Option<Result<dns::Dns, String>>,
    host: &str,
    through: &str,
    serves: &str,
) -> Option<Vec<IpAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        t.say(
            Mark::Ok,
            "dns",
            &format!("{host}{serves} is an address (no lookup)"),
        );
        return Some(vec![ip]);
    }
    // Through RESOLVER: how long a name server that does not answer is waited for,
    // said before the wait.
    if !engine.resolver.is_empty() && answered_locally(bare).is_none() {
        say_wait(t, engine, through, bare);
    }
    match attempt::relay_lookup(engine, dns_state, bare) {
        Ok(a) => {
            // RESOLVER's resolver answers a name of /etc/hosts, and `localhost`, itself:
            // no name server was asked, and the line says so.
            let source = match answered_locally(bare) {
                Some(from) if !engine.resolver.is_empty() => {
                    format!("{from} (RESOLVER is not asked for it)")
                }
                _ => format!("through {through}"),
            };
            t.say(
                Mark::Ok,
                "dns",
                &format!("{bare}{serves} {source}: {}", addresses(&a)),
            );
            Some(a)
        }
        Err((r, why)) => {
            // A name that does not exist (x.1.2) is for the admin to fix, not to wait on.
            let code = if r.enhanced().is_some_and(|e| e.ends_with(".1.2")) {
                Sysexit::Unavailable
            } else {
                Sysexit::TempFail
            };
            // A lookup that failed for now: whether the name server answered at all.
            let cause = match why.as_deref().map(resolver_cause) {
                Some(c) if !engine.resolver.is_empty() => format!(" ({c})"),
                _ => String::new(),
            };
            t.fail(
                code,
                "dns",
                &format!(
                    "{bare}{serves} through {through}: {}{cause}",
                    r.text_without_enhanced()
                ),
            );
            None
        }
    }
}

/// Through RESOLVER: how long a name server that does not answer is waited for when
/// asked for `what` (a host name, `the MX of DOMAIN`), said before the wait.
fn say_wait(t: &mut Tally, engine: &Engine, through: &str, what: &str) {
    let tries = engine.dns_retries.saturating_add(1);
    let each = engine.dns_timeout.as_secs();
    t.say(
        Mark::Info,
        "dns",
        &format!(
            "asking {through} for {what}: each query within {each} s \
             (Timeout.resolver.retrans), {tries} tries (Timeout.resolver.retry {}): \
             up to {} s for a name server that does not answer",
            engine.dns_retries,
            each.saturating_mul(tries as u64)
        ),
    );
}

/// What the resolver's account of a failed lookup says of the name server: it did not
/// answer in time, it refused, or (anything else) its own words.
fn resolver_cause(why: &str) -> String {
    let w = why.to_ascii_lowercase();
    if w.contains("timed out") || w.contains("timeout") {
        "RESOLVER did not answer: timed out".to_string()
    } else if w.contains("refused") {
        format!("RESOLVER did not answer: refused ({why})")
    } else {
        format!("RESOLVER: {why}")
    }
}

/// Where the delivery's resolver answers `name` without asking a name server: `from
/// /etc/hosts` for a name that file lists, `as this host` for `localhost` and the names
/// under it (RFC 6761 §6.3); None otherwise.
fn answered_locally(name: &str) -> Option<&'static str> {
    let key = name.trim_end_matches('.').to_ascii_lowercase();
    if key == "localhost" || key.ends_with(".localhost") {
        return Some("as this host");
    }
    let (text, _) = rsendmail::boundedfile::read_regular(
        std::path::Path::new("/etc/hosts"),
        false,
        rsendmail::boundedfile::MAX_FILE,
    )
    .ok()?;
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .any(|l| {
            l.split_whitespace()
                .skip(1)
                .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&key))
        })
        .then_some("from /etc/hosts")
}

fn addresses(a: &[IpAddr]) -> String {
    a.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether AUTHPATH is out of this process's reach only for want of rights (not root,
/// the file there but not readable by it): a user's check, which cannot try the
/// credentials the root queue runner and the spool's group use.
fn auth_out_of_reach(s: &Setup) -> bool {
    !nix::unistd::geteuid().is_root()
        && s.cfg.auth_path.as_ref().is_some_and(|p| {
            std::fs::File::open(p).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        })
}

/// The longest the check waits for each reply to AUTH (`Timeout.helo` when shorter, as
/// a delivery waits): a server that never answers a wrong password is a failed step
/// within a minute, not a five-minute silence.
pub const AUTH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Connect, greet, EHLO, TLS (the delivery's [`Session::open`]), each line printed as
/// soon as the session is open; then AUTH ([`Session::authenticate_within`], bounded by
/// [`AUTH_WAIT`]) and the probe.
#[allow(clippy::too_many_arguments)]
fn session(
    t: &mut Tally,
    s: &Setup,
    engine: &Engine,
    host: &str,
    port: u16,
    addrs: &[IpAddr],
    mx: bool,
    to: Option<&str>,
) {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    // The policy and credentials a delivery to this host would use.
    let mx_tls = TlsPolicy::for_mx();
    let policy = if mx { &mx_tls } else { &engine.tls };
    let mut unread_auth: Option<String> = None;
    let creds = match &engine.auth {
        _ if mx => None,
        Ok(a) => Credentials::for_host(a, bare),
        // Readable by root and the spool's group alone, as it should be, and this
        // user has neither: the other steps are still tried, AUTH is said not tried.
        Err(why) if auth_out_of_reach(s) => {
            unread_auth = Some(why.clone());
            None
        }
        Err(why) => {
            t.fail(Sysexit::Config, "auth", why);
            return;
        }
    };
    // What the check waits for, and how long, before the connect line can come (the
    // delivery's own timeouts: what passes here passes in a delivery).
    // SMTPS: the handshake comes before the greeting, and is waited for too.
    let handshake = if policy.mode == TlsMode::Implicit {
        format!(
            ", then the TLS handshake (up to {}, Timeout.helo)",
            span(engine.timeouts.helo)
        )
    } else {
        String::new()
    };
    t.say(
        Mark::Info,
        "connect",
        &format!(
            "connecting to {bare} port {port} (up to {}, Timeout.connect){handshake}, then \
             waiting for its greeting (up to {}, Timeout.initial)",
            span(engine.timeouts.connect),
            span(engine.timeouts.initial)
        ),
    );
    let mut live = Live {
        buf: Vec::new(),
        seen: 0,
        connected: false,
        bare,
        port,
    };
    let opened = {
        let mut out: Option<&mut dyn std::io::Write> = Some(&mut live);
        Session::open(
            host,
            port,
            addrs,
            &engine.host_name,
            &engine.timeouts,
            policy,
            // Every reply has the password masked from the greeting on; AUTH comes
            // after the lines of the steps before it (below).
            creds.as_ref(),
            false,
            &mut out,
            CHECK_LABEL,
            "check",
            false,
        )
    };
    let already_connected = live.connected;
    let transcript = String::from_utf8_lossy(&live.buf).into_owned();
    // The server's lines only: its greeting is the first.
    let greeting = transcript
        .lines()
        .find(|l| !l.starts_with(">>> ") && !l.starts_with("check... "))
        .unwrap_or("")
        .to_string();
    let tls_name = match policy.mode {
        TlsMode::Implicit => "TLS (SMTPS)",
        _ => "STARTTLS",
    };
    // Said already when the connection was made ([`Live`]).
    let connected = |t: &mut Tally, peer: &str| {
        if !already_connected {
            t.say(Mark::Ok, "connect", &format!("{bare} [{peer}] port {port}"));
        }
    };
    let mut session = match opened {
        Ok(sess) => sess,
        Err(OpenFailure { loops: true, .. }) => {
            // The server named itself as this host: a delivery there would loop back
            // here, and delivery fails the recipients with sendmail's words and
            // EX_SOFTWARE; no MAIL or RCPT is tried.
            let peer = addrs.first().map(IpAddr::to_string).unwrap_or_default();
            connected(t, &peer);
            t.say(Mark::Ok, "greeting", &greeting);
            t.fail(
                Sysexit::Software,
                "ehlo",
                &super::smtp::loop_text(&super::smtp::route_name(host)),
            );
            return;
        }
        Err(failure) => {
            let failure_no_greeting = failure.no_greeting();
            let OpenFailure {
                reply,
                phase,
                certificate_refused,
                ..
            } = failure;
            let why = reply.text_in_full();
            let code = if reply.is_permanent() {
                Sysexit::Unavailable
            } else {
                Sysexit::TempFail
            };
            let peer = addrs.first().map(IpAddr::to_string).unwrap_or_default();
            match phase {
                None => t.fail(code, "connect", &format!("{bare} port {port}: {why}")),
                Some(p) => {
                    connected(t, &peer);
                    let implicit = policy.mode == TlsMode::Implicit;
                    if implicit && p != State::StartTlsReply {
                        t.say(Mark::Ok, "tls", &format!("{tls_name} handshake"));
                    }
                    match p {
                        State::Greeting => {
                            // The server's own reply, code and all (421 busy, 554
                            // blocked), when it sent one and the failure is that reply
                            // (not a fault found in it, such as an over-long line).
                            let said = if failure_no_greeting {
                                // Connected, then silence: said in the greeting's
                                // terms, with the wait and the option that sets it,
                                // never as a connection that timed out.
                                format!(
                                    "no greeting from {bare} within {} (Timeout.initial): \
                                     the server accepted the connection but sent no \
                                     complete reply in that time (timeout waiting for \
                                     input during client greeting)",
                                    span(engine.timeouts.initial)
                                )
                            } else if greeting
                                .get(..3)
                                .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()))
                                && greeting.contains(why.trim())
                            {
                                greeting.clone()
                            } else {
                                why.clone()
                            };
                            t.fail(code, "greeting", &said);
                            if greeting.is_empty() && !implicit && policy.mode != TlsMode::Off {
                                t.say(
                                    Mark::Info,
                                    "greeting",
                                    "nothing received: is this an SMTPS port (465)? \
                                     Such a port needs SECURETRANSFER without STARTTLS",
                                );
                            }
                        }
                        State::EhloReply => {
                            t.say(Mark::Ok, "greeting", &greeting);
                            t.fail(code, "ehlo", &why);
                        }
                        State::StartTlsReply => {
                            if !implicit {
                                t.say(Mark::Ok, "greeting", &greeting);
                                t.say(Mark::Ok, "ehlo", &ehlo_words(&transcript));
                            }
                            // A handshake that ran out of time: what the wait was.
                            let why = if why.contains(" timed out after ") {
                                format!(
                                    "{why}: the server accepted the connection but did not \
                                     complete the handshake in that time"
                                )
                            } else {
                                why
                            };
                            t.fail(Sysexit::TempFail, "tls", &why);
                            // The certificate it refused, fetched again to show it, not
                            // verified, for a few seconds at most; never after a timeout,
                            // a closed connection or an I/O error, which a second try
                            // would only repeat.
                            let offered = if certificate_refused {
                                Session::certificate_of(
                                    host,
                                    port,
                                    addrs,
                                    &engine.host_name,
                                    policy.mode,
                                    CERTIFICATE_WAIT,
                                )
                            } else {
                                None
                            };
                            if let Some(der) = offered {
                                t.say(
                                    Mark::Info,
                                    "tls",
                                    &format!(
                                        "the certificate {bare} offers: {}",
                                        describe_certificate(&der)
                                    ),
                                );
                                // Not for the name it was reached by: said first, and no
                                // pin offered (it may be a machine in the middle's).
                                let names = certificate_names(&der);
                                let for_host =
                                    names.is_empty() || names.iter().any(|n| names_host(n, bare));
                                if !for_host {
                                    t.say(
                                        Mark::Info,
                                        "tls",
                                        &format!(
                                            "it is not for {bare}: it names {}; another \
                                             server's certificate, or one in the middle's \
                                             (correct SMARTHOST to a name it holds, or \
                                             have the server's certificate name {bare})",
                                            rsendmail::text::escaped(&names.join(", "))
                                        ),
                                    );
                                }
                                if policy.fingerprint.is_none()
                                    && for_host
                                    && let Some(fp) = self_signed_fingerprint(&der)
                                {
                                    t.say(
                                        Mark::Info,
                                        "tls",
                                        &format!(
                                            "it is self-signed, so no CA vouches for it: \
                                             to trust this certificate alone, pin it with \
                                             a `FINGERPRINT {fp}` line, or name a file \
                                             holding it (PEM) with `O CACertFile=FILE`"
                                        ),
                                    );
                                }
                            }
                        }
                        _ => {
                            t.say(Mark::Ok, "greeting", &greeting);
                            t.say(Mark::Ok, "ehlo", &ehlo_words(&transcript));
                            if policy.mode != TlsMode::Off {
                                t.say(Mark::Ok, "tls", tls_name);
                            }
                            t.fail(Sysexit::Unavailable, "auth", &why);
                        }
                    }
                }
            }
            return;
        }
    };
    connected(t, &session.peer.ip().to_string());
    if policy.mode == TlsMode::Implicit {
        t.say(Mark::Ok, "tls", "TLS (SMTPS) handshake");
    }
    t.say(Mark::Ok, "greeting", &greeting);
    if session.tls && policy.mode != TlsMode::Implicit {
        // The list offered in clear text, then the one after STARTTLS.
        t.say(Mark::Ok, "ehlo", &ehlo_words(&transcript));
        tls_lines(t, &session, policy, tls_name);
        t.say(
            Mark::Ok,
            "ehlo",
            &format!("after STARTTLS: {}", offers(&session)),
        );
    } else {
        t.say(Mark::Ok, "ehlo", &offers(&session));
        tls_lines(t, &session, policy, tls_name);
    }
    match (&creds, session.caps.auth.is_empty()) {
        // A user's own spool: her deliveries run as her and cannot read it either (a
        // file not meant for this, such as /etc/shadow, named by mistake).
        _ if unread_auth.is_some() && s.spool.private => t.say(
            Mark::Warn,
            "auth",
            &format!(
                "not tried: {}; this user's own deliveries cannot read it either: each \
                 waits in the queue (4.7.0) until AUTHPATH names a file of this user's \
                 own, mode 0600, of `user|host:password` lines (see rsendmail.conf(5))",
                unread_auth.as_deref().unwrap_or_default()
            ),
        ),
        _ if unread_auth.is_some() => t.say(
            Mark::Warn,
            "auth",
            &format!(
                "not tried: {}; the credentials file of a shared spool is read by root and \
                 the spool's group alone (run the check as root to try the credentials)",
                unread_auth.as_deref().unwrap_or_default()
            ),
        ),
        (Some(c), false) => {
            let mut out: Option<&mut dyn std::io::Write> = None;
            if let Err(reply) = session.authenticate_within(c, policy, AUTH_WAIT, &mut out) {
                // A refusal of the login (the server's reply, or no mechanism it may
                // use) is permanent for the check; a timeout or a closed connection
                // is not.
                let security = format!("{} ", rsendmail::status::SECURITY_TEMP);
                let code = if reply.is_permanent()
                    || reply
                        .lines
                        .first()
                        .is_some_and(|l| l.starts_with(&security))
                {
                    Sysexit::Unavailable
                } else {
                    Sysexit::TempFail
                };
                t.fail(code, "auth", &reply.text_in_full());
                return;
            }
            t.say(
                Mark::Ok,
                "auth",
                &format!(
                    "{bare} accepted the credentials from {}",
                    s.cfg
                        .auth_path
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            )
        }
        (Some(_), true) => t.say(
            Mark::Warn,
            "auth",
            &format!("{bare} offers no AUTH: the credentials for it are not used"),
        ),
        // auth.conf is named only where AUTHPATH names one; without it, that no
        // credentials are sent is said, not warned of (a relay may offer AUTH to those
        // who have an account, and relay for this host without: the MAIL probe says).
        (None, false) if !mx && s.cfg.auth_path.is_some() => t.say(
            Mark::Warn,
            "auth",
            &format!(
                "{bare} offers AUTH ({}) but auth.conf has no credentials for {bare}",
                session.caps.auth.join(" ")
            ),
        ),
        (None, false) if !mx => t.say(
            Mark::Info,
            "auth",
            &format!(
                "{bare} offers AUTH ({}); no AUTHPATH is configured, so no credentials \
                 are sent (if it requires them, name them in an auth.conf and add an \
                 AUTHPATH line)",
                session.caps.auth.join(" ")
            ),
        ),
        (None, _) => {}
    }
    // The sender every delivery gives (the submitting user's address, qualified as a
    // delivery qualifies it), then RSET: a server that refuses every message at MAIL
    // (`530 Must issue a STARTTLS command first`, `530 Authentication required`) is
    // found without a recipient; with `--to`, that recipient too. Nothing is sent.
    // Without `--to`, not when the credentials could not be read here: the server
    // would refuse this session what it accepts from a delivery that logs in.
    if to.is_none() && unread_auth.is_some() {
        session.close(&mut None);
        return;
    }
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into());
    let from = engine.qualify(&user);
    let mut out: Option<&mut dyn std::io::Write> = None;
    match session.probe(&from, to, &mut out) {
        Ok(p) => {
            // Every line of a multi-line reply: its reasons and links are in them.
            let line = |r: &Reply| r.in_full();
            let then = if to.is_none() {
                " (then RSET: nothing was sent)"
            } else {
                ""
            };
            if !p.mail.is_positive() {
                t.fail(
                    reply_code(&p.mail),
                    "mail",
                    &format!(
                        "MAIL FROM:<{from}>: {}{then}{}",
                        line(&p.mail),
                        mail_refusal_fix(&session, policy, &creds, &p.mail)
                            .map(|f| format!("; every message is refused {f}"))
                            .unwrap_or_default()
                    ),
                );
            } else {
                t.say(
                    Mark::Ok,
                    "mail",
                    &format!("MAIL FROM:<{from}>: {}{then}", line(&p.mail)),
                );
            }
            if let (Some(r), Some(rcpt)) = (&p.rcpt, to) {
                let text = format!(
                    "RCPT TO:<{rcpt}>: {} (then RSET: nothing was sent)",
                    line(r)
                );
                if r.is_positive() {
                    t.say(Mark::Ok, "rcpt", &text);
                } else {
                    t.fail(reply_code(r), "rcpt", &text);
                }
            }
        }
        Err(r) => t.fail(Sysexit::TempFail, "probe", &r.text_without_enhanced()),
    }
    session.close(&mut None);
}

/// What to change when the server refused `MAIL FROM` (`reply`) on `session`: the
/// keywords that start TLS when it asks for TLS first (a 530 or 5.7.0 reply naming
/// STARTTLS, or any 530 on a clear-text session of a server that offers STARTTLS), the
/// credentials when it asks for authentication; else None (the reply says why).
fn mail_refusal_fix(
    session: &Session,
    policy: &TlsPolicy,
    creds: &Option<Credentials>,
    reply: &Reply,
) -> Option<String> {
    let text = reply.in_full().to_ascii_lowercase();
    let code530 = reply.code == 530;
    let wants_tls =
        text.contains("starttls") || (code530 && !text.contains("auth") && session.caps.starttls);
    if !session.tls && wants_tls {
        let how = if policy.mode == TlsMode::Off {
            "add a `STARTTLS` line to the configuration (rsendmail.conf(5))"
        } else {
            "the configuration asks for STARTTLS, but the server did not offer it"
        };
        return Some(format!("until TLS is started: {how}"));
    }
    if code530 || text.contains("auth") {
        return Some(match creds {
            Some(_) => "until a login is accepted, and none was made here (is AUTH offered \
                        only after STARTTLS?)"
                .to_string(),
            None => "until a login is accepted: name the relay's credentials in AUTHPATH's \
                     file (`user|host:password`, rsendmail.conf(5))"
                .to_string(),
        });
    }
    None
}

/// The transcript of [`Session::open`], kept for the steps' lines, which prints the
/// `connect` line the moment the session's `Connected to [IP]` line comes: before the
/// wait for the greeting, so that a silent server is told from one that cannot be
/// reached while the check waits.
struct Live<'a> {
    buf: Vec<u8>,
    /// How much of `buf` was looked at for whole lines.
    seen: usize,
    connected: bool,
    bare: &'a str,
    port: u16,
}

impl std::io::Write for Live<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        while let Some(n) = self
            .buf
            .get(self.seen..)
            .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        {
            let line =
                String::from_utf8_lossy(self.buf.get(self.seen..self.seen + n).unwrap_or(&[]))
                    .into_owned();
            self.seen += n + 1;
            let marker = format!("{CHECK_LABEL}... {CONNECTED}[");
            if let Some(ip) = line.strip_prefix(&marker).and_then(|r| r.strip_suffix(']'))
                && !self.connected
            {
                self.connected = true;
                let mut t = Tally::default();
                t.say(
                    Mark::Ok,
                    "connect",
                    &format!("{} [{ip}] port {}", self.bare, self.port),
                );
            }
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn reply_code(r: &Reply) -> Sysexit {
    if r.is_permanent() {
        Sysexit::Unavailable
    } else {
        Sysexit::TempFail
    }
}

/// The keywords of the first EHLO reply in a session's transcript (a session that
/// failed later has no [`Session::caps`] to read).
fn ehlo_words(transcript: &str) -> String {
    let words: Vec<&str> = transcript
        .lines()
        .skip_while(|l| !l.starts_with(">>> EHLO"))
        .skip(1)
        .take_while(|l| !l.starts_with(">>> "))
        .skip(1)
        .filter_map(|l| l.get(4..))
        .collect();
    words.join(", ")
}

/// What the server offers, in its EHLO words.
fn offers(s: &Session) -> String {
    let c = &s.caps;
    let mut v: Vec<String> = Vec::new();
    if !c.esmtp {
        return "HELO only (EHLO refused)".into();
    }
    for (on, name) in [
        (c.pipelining, "PIPELINING"),
        (c.eightbitmime, "8BITMIME"),
        (c.dsn, "DSN"),
        (c.smtputf8, "SMTPUTF8"),
        (c.starttls, "STARTTLS"),
    ] {
        if on {
            v.push(name.into());
        }
    }
    if let Some(n) = c.size {
        v.push(format!("SIZE {n}"));
    }
    if !c.auth.is_empty() {
        v.push(format!("AUTH {}", c.auth.join(" ")));
    }
    if v.is_empty() {
        "no extensions".into()
    } else {
        v.join(", ")
    }
}

/// The TLS step of an open session: the certificate, how it was checked.
fn tls_lines(t: &mut Tally, s: &Session, policy: &TlsPolicy, name: &str) {
    if !s.tls {
        match policy.mode {
            TlsMode::Off if s.caps.starttls => t.say(
                Mark::Warn,
                "tls",
                &format!(
                    "{} offers STARTTLS, but no TLS is configured: mail goes in clear text \
                     (add a `STARTTLS` line to the configuration to use it)",
                    s.host
                ),
            ),
            TlsMode::Off => t.say(
                Mark::Skip,
                "tls",
                "no TLS configured: mail goes in clear text",
            ),
            _ => t.say(
                Mark::Warn,
                "tls",
                &format!(
                    "{} does not offer STARTTLS: mail goes in clear text",
                    s.host
                ),
            ),
        }
        return;
    }
    let Some(der) = s.peer_certificate() else {
        t.say(Mark::Ok, "tls", &format!("{name}: no certificate to show"));
        return;
    };
    let how = if policy.fingerprint.is_some() {
        "matches FINGERPRINT"
    } else if policy.verify {
        "verified"
    } else {
        "NOT verified (INSECURE)"
    };
    let desc = describe_certificate(&der);
    let mark = if policy.verify || policy.fingerprint.is_some() {
        Mark::Ok
    } else {
        Mark::Warn
    };
    t.say(mark, "tls", &format!("{name}, certificate {how}: {desc}"));
    // A pinned (or unverified) certificate is used whatever its dates: say so here.
    if let Some(days) = days_left(&der).filter(|d| *d < 0) {
        t.say(
            Mark::Warn,
            "tls",
            &format!(
                "the certificate expired {} days ago (used only because {})",
                -days,
                if policy.fingerprint.is_some() {
                    "FINGERPRINT pins it"
                } else {
                    "it is not verified"
                }
            ),
        );
    }
}

/// Days from now to a DER certificate's notAfter (negative once it has expired).
/// What a certificate's expiry date adds for `d` whole days left (negative: past):
/// ` (in 3 days)`, ` (in 1 day)`, ` (today)`, ` (expired 1 day ago)`.
fn left_words(d: i32) -> String {
    let days = |n: i32| match n {
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    };
    match d {
        0 => " (today)".to_string(),
        d if d < 0 => format!(" (expired {} ago)", days(d.saturating_neg())),
        d => format!(" (in {})", days(d)),
    }
}

fn days_left(der: &[u8]) -> Option<i32> {
    let x = openssl::x509::X509::from_der(der).ok()?;
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
    now.diff(x.not_after()).ok().map(|d| d.days)
}

/// The SHA-256 digest (hex, as FINGERPRINT takes it) of the certificate `der` when it
/// is self-signed (issued by its own subject, and its signature its own key's); `None`
/// for any other, or one that cannot be read.
fn self_signed_fingerprint(der: &[u8]) -> Option<String> {
    use openssl::x509::{X509, X509VerifyResult};
    use sha2::Digest;
    let x = X509::from_der(der).ok()?;
    let key = x.public_key().ok()?;
    if x.issued(&x) != X509VerifyResult::OK || !x.verify(&key).ok()? {
        return None;
    }
    Some(
        sha2::Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// `subject ...; issuer ...; expires ... (in N days | expired N days ago); SHA-256 ...`
/// of a DER certificate.
fn describe_certificate(der: &[u8]) -> String {
    use openssl::x509::{X509, X509NameRef};
    use sha2::Digest;
    let fp: String = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok(x) = X509::from_der(der) else {
        return format!("unreadable certificate; SHA-256 {fp}");
    };
    let name = |n: &X509NameRef| -> String {
        n.entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let val = e.data().to_string().unwrap_or_else(|_| "?".into());
                format!("{key}={val}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let left = days_left(der).map(left_words).unwrap_or_default();
    format!(
        "subject {}; issuer {}; expires {}{left}; SHA-256 {fp}",
        name(x.subject_name()),
        name(x.issuer_name()),
        x.not_after()
    )
}

/// The names certificate `der` is for (RFC 6125 section 6.4): its subjectAltName DNS
/// names and IP addresses, else its subject's common names. Empty when it cannot be
/// read.
fn certificate_names(der: &[u8]) -> Vec<String> {
    use openssl::nid::Nid;
    use openssl::x509::X509;
    let Ok(x) = X509::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    if let Some(alt) = x.subject_alt_names() {
        for g in &alt {
            if let Some(d) = g.dnsname() {
                names.push(d.to_string());
            } else if let Some(ip) = g.ipaddress() {
                let ip = match ip.len() {
                    4 => <[u8; 4]>::try_from(ip).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(ip).ok().map(IpAddr::from),
                    _ => None,
                };
                names.extend(ip.map(|a| a.to_string()));
            }
        }
    }
    if names.is_empty() {
        names.extend(
            x.subject_name()
                .entries_by_nid(Nid::COMMONNAME)
                .filter_map(|e| e.data().to_string().ok()),
        );
    }
    names
}

/// Whether certificate name `name` ([`certificate_names`]) is for `host` (a host name
/// or an IP address): the same name, case aside, or a wildcard `*.` standing for the
/// host's whole first label (RFC 6125 section 6.4.3); an address only the same address.
fn names_host(name: &str, host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return name.parse::<IpAddr>().is_ok_and(|n| n == ip);
    }
    let (name, host) = (name.trim_end_matches('.'), host.trim_end_matches('.'));
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(rest), Some((first, host_rest))) => {
            !first.is_empty() && rest.contains('.') && rest.eq_ignore_ascii_case(host_rest)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::left_words;

    /// A certificate's name is for the host it is reached by: the same name, case
    /// aside, a final dot aside, or `*.` for the whole first label of a name with two
    /// more; an address only the same address, never by a wildcard.
    #[test]
    fn certificate_names_are_matched_as_rfc_6125_says() {
        use super::names_host;
        for (name, host, want) in [
            ("mail.example.org", "mail.example.org", true),
            ("MAIL.Example.org", "mail.example.ORG", true),
            ("mail.example.org.", "mail.example.org", true),
            ("*.example.org", "mail.example.org", true),
            ("*.example.org", "example.org", false),
            ("*.example.org", "a.b.example.org", false),
            ("*.org", "example.org", false),
            ("evil", "localhost", false),
            ("mail.example.org", "mail.example.org.evil", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("::1", "::1", true),
            ("127.0.0.2", "127.0.0.1", false),
            ("*.0.0.1", "127.0.0.1", false),
            ("", "localhost", false),
        ] {
            assert_eq!(names_host(name, host), want, "{name} for {host}");
        }
    }

    #[test]
    fn days_left_are_counted_in_words() {
        assert_eq!(left_words(1), " (in 1 day)");
        assert_eq!(left_words(30), " (in 30 days)");
        assert_eq!(left_words(0), " (today)");
        assert_eq!(left_words(-1), " (expired 1 day ago)");
        assert_eq!(left_words(-4), " (expired 4 days ago)");
    }
}

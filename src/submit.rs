//! Submission: stdin → one committed queue entry, or a clear error and nothing queued.
//!
//! Order of checks follows sendmail: argv is fully validated first (a bad delivery mode
//! never reads stdin), "Recipient names must be specified" comes before stdin is read,
//! `-t` recipients are known once the header block is read, and the message is committed
//! only when it is complete. Everything before the commit point that fails removes the
//! temporary file and exits non-zero; after it, the exit is 0, or the status of the
//! recipients refused at submission (67 for an unknown user) when others were queued.

use crate::clock;
use crate::config::Config;
use crate::exit::{Fatal, Sysexit};
use crate::message::{self, BodyError, Header, LineReader, address};
use crate::options::{DeliveryMode, Settings};
use crate::spool::Spool;
use crate::spool::entry::{Envelope, Recipient};
use std::io::{BufRead, Write};

/// Who is submitting.
#[derive(Clone, Debug)]
pub struct Submitter {
    pub login: String,
    pub uid: u32,
    /// The GECOS full name, if any.
    pub gecos_name: Option<String>,
}

impl Submitter {
    /// The real user (never an environment variable: the binary may be set-id).
    pub fn current() -> Submitter {
        let uid = nix::unistd::getuid();
        match nix::unistd::User::from_uid(uid) {
            Ok(Some(u)) => Submitter {
                gecos_name: gecos_full_name(&u),
                login: u.name,
                uid: uid.as_raw(),
            },
            _ => Submitter {
                login: format!("uid{}", uid.as_raw()),
                uid: uid.as_raw(),
                gecos_name: None,
            },
        }
    }

    /// sendmail's trusted users may set the sender without a warning header.
    pub fn is_trusted(&self) -> bool {
        is_trusted_user(self.uid, &self.login)
    }
}

/// The full name of a password entry: the GECOS field's first comma-separated part, an
/// `&` in it standing for the login with its first letter capitalised (sendmail's
/// `buildfname`); `None` when empty. A name that is not UTF-8 (a Latin-1 `J\xf6rg`) is
/// left out, never sent with its octets changed to U+FFFD; `-F` with such octets is
/// refused (DIFFERENCES.md).
pub fn gecos_full_name(u: &nix::unistd::User) -> Option<String> {
    let gecos = u.gecos.to_str().map(str::to_string).unwrap_or_default();
    let first = gecos.split(',').next().unwrap_or("").trim().to_string();
    let name = if first.contains('&') {
        let mut cap = u.name.clone();
        if let Some(c) = cap.get_mut(0..1) {
            c.make_ascii_uppercase();
        }
        first.replace('&', &cap)
    } else {
        first
    };
    (!name.is_empty()).then_some(name)
}

/// sendmail's trusted users (class `t`: root, daemon, uucp, and Debian's smmsp, or uid
/// 0): they may name any sender, with `-f` or in an `-bs` dialogue, without an
/// `X-Authentication-Warning:`.
pub fn is_trusted_user(uid: u32, login: &str) -> bool {
    uid == 0 || matches!(login, "root" | "daemon" | "uucp" | "smmsp")
}

/// The `X-Authentication-Warning:` sendmail adds to mail an `-bs` dialogue of a user it
/// does not trust submits from a sender other than the user's own local address (its
/// `srvrsmtp.c`: `user owned process doing -bs`; recorded: `bs-untrusted-user`,
/// `bs-untrusted-user-null-sender`, none for `bs-untrusted-user-own-sender` and
/// `bs-untrusted-user-bare-login`). `sender` is the MAIL FROM path (`""` for `<>`);
/// `host` the mail name.
pub fn bs_warning(uid: u32, login: &str, sender: &str, host: &str) -> Option<Header> {
    if is_trusted_user(uid, login) {
        return None;
    }
    let (local, _) = address::split_at_domain(sender);
    let own = !sender.is_empty() && local == login && address::is_local(sender, host, false);
    (!own).then(|| {
        Header::new(
            "X-Authentication-Warning",
            &format!("{host}: {login} owned process doing -bs"),
        )
    })
}

/// What the caller asks of one submission: the recipient arguments, sendmail's `-t`,
/// `-f`/`-r`, `-F` and `-n`, and the DSN parameters of `-N`, `-R`, `-V` and `-B` as the
/// envelope writes them (RFC 3461 `NOTIFY`, `RET` and `ENVID`, RFC 6152 `BODY`). `app`
/// makes one from the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub recipients: Vec<String>,
    /// `-t`: recipients from the header too.
    pub read_recipients: bool,
    /// `-f`/`-r`: envelope sender; `Some("")` is the null sender `<>`.
    pub sender: Option<String>,
    /// `-F`: full name.
    pub full_name: Option<String>,
    /// `-n`: no aliasing.
    pub no_alias: bool,
    /// `-v`: the expansion's notes are printed (sendmail's `aliased to ...` lines).
    pub verbose: bool,
    /// `-N`: the NOTIFY keywords (`FAILURE,DELAY`).
    pub notify: Option<String>,
    /// `-R`: `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// `-V`.
    pub envid: Option<String>,
    /// `-B`: `7BIT` or `8BITMIME`.
    pub body_type: Option<String>,
    /// `-h`: the starting hop count (see [`message::hop_count`]).
    pub hop_count: Option<i64>,
    /// `-XV` / `-XVxy`: VERP for this message, with these delimiters or (`Some(None)`)
    /// `O VerpDelimiters=`.
    pub verp: Option<Option<String>>,
    /// `-p protocol[:host]`: sendmail's `$r` and `$s`, the `with` and `from` of the
    /// `Received:` field, each already cleaned by [`received_token`].
    pub received_with: Option<String>,
    pub received_from: Option<String>,
}

/// A `-p` value as sendmail's `cleanstrcpy` keeps it for the `Received:` field: only
/// ASCII letters, digits and ``!#$%&'*+-./^_`{|}~`` (a blank, a line break or a
/// parenthesis cannot change the field's shape), at most 256 octets; `None` when
/// nothing is left.
pub fn received_token(v: &str) -> Option<String> {
    let t: String = v
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-./^_`{|}~".contains(*c))
        .take(256)
        .collect();
    (!t.is_empty()).then_some(t)
}

/// What a submission produced.
#[derive(Debug)]
pub struct Submitted {
    pub id: Option<String>,
    pub mode: DeliveryMode,
    /// The exit status so far: not 0 when recipients were refused (`User unknown`, 67),
    /// unless ErrorMode `e` mailed the errors back.
    pub status: Sysexit,
    /// The failure reports mailed back for recipients refused here (ErrorMode `m`, `e`,
    /// or `p` with a sender elsewhere): delivered with the message, in its mode. One,
    /// or with VERP one per refused recipient, to its own sender. True when it returns
    /// the message's header only (sendmail sends such a report, made in memory, without
    /// `SIZE=`).
    pub report: Vec<(String, bool)>,
    /// In interactive mode, the `~/dead.letter... Saved message in ...` line for the
    /// recipients refused here, which the deliverer prints after the delivery, before
    /// it closes its connections (sendmail's order).
    pub note: Option<String>,
    /// The message stays queued for a queue run, whatever the delivery mode: `-t` found
    /// a header address it refused ([`held_by_header`]). Only the reports are delivered
    /// in the mode.
    pub held: bool,
}

/// Whether a `-t` submission is held in the queue for a queue run instead of being
/// delivered in its mode: a header field named an address refused here (an empty group,
/// `To: undisclosed-recipients:;`, or an address that cannot be parsed). sendmail gives
/// up on the message once its header was read with errors and leaves it queued for the
/// other recipients, whatever the delivery mode, exit 64 (recorded: `z-g-cc-odi-nof`,
/// `z-hdr-t-group-cc-odi`, `z-rcpt-bcc-only`, `addr-t-double-at`): a caller told 64
/// who sends the message again then sends no duplicate of a copy already delivered.
/// `argv` is the number of command-line arguments, whose lists come first.
pub fn held_by_header(refused: &[Refused], argv: usize, read_recipients: bool) -> bool {
    read_recipients && refused.iter().any(|r| r.list >= argv)
}

/// A recipient refused at submission, as sendmail refuses it before delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub address: String,
    /// What sendmail prints: `nosuchuser... User unknown`.
    pub text: String,
    pub code: Sysexit,
    /// Not printed under ErrorMode `p` (sendmail logs a message with too many hops and
    /// says nothing on the terminal but where it saved the message); still in a report.
    pub quiet: bool,
    /// A target an alias expansion refused: what expanded to it (the nearest alias or
    /// `:include:`, the report's `(expanded from: lst)`) and the address the expansion
    /// began with, qualified (the report's `Final-Recipient:`, `lst@host`); `None` for
    /// an address given as it is (recorded: `bounce-exp-unknown-user-odi`).
    pub expanded: Option<(String, String)>,
    /// An `:include:` file refused at expansion, or a program or file target of a list
    /// whose user may not have one (`5.7.1`): its RFC 3463 status (`5.2.4`). The
    /// report names the file (`:include:/path`) or target, gives no reason line and no
    /// Diagnostic-Code, and its transcript repeats the refusal with that status, as
    /// sendmail's does (recorded: `bounce-exp-inc-writable-odi`,
    /// `bounce-exp-inc-user-prog-odi`).
    pub list_file: Option<crate::status::EnhancedStatus>,
    /// A program, file or list file named directly as a recipient ([`direct_mailer`]),
    /// refused with `5.7.1` as a list's program target is. sendmail's report names it
    /// once, however often it was named (each naming of a program still has its
    /// transcript line), with its `Final-Recipient:` qualified (`|/bin/true@host`;
    /// recorded: `argv-prog-twice-remote-odi`, `argv-prog-file-remote-odi`).
    pub direct: bool,
    /// A list's target or a command-line (or `-t`) address refused as no address
    /// (`b@@x.example`): its RFC 3463 status (`5.1.3`) and its place in queue order
    /// (0 for a command-line address: first among them, in the order said). sendmail's report lists such targets
    /// after the other refused ones, in queue order, with that status, no reason line
    /// and no Diagnostic-Code, and its transcript repeats each with `553` and the
    /// status (recorded: `alias-bad-order-odi`, `alias-bad-order-nested-odq`).
    pub syntax: Option<(crate::status::EnhancedStatus, usize)>,
    /// Whether it decides the exit status when it is the first such refusal
    /// ([`Sysexit::of_refusals`]).
    pub sets_status: bool,
    /// Which list named it ([`address::Listed::list`]): refusals are said a list at a
    /// time, a list's syntax faults before what expanding its recipients finds
    /// (recorded: `argv-bad-order-odq`). [`expand_local`] gives the index of the
    /// recipient whose expansion refused it instead.
    pub list: usize,
    /// A target of an alias with an owner alias (`owner-LIST`): the owner's envelope
    /// sender ([`crate::aliases::Expansion::error_sender`]). Its refusal is reported to
    /// that owner, never to the message's sender, as sendmail's is (recorded:
    /// `owner-list-unknown-odi`, `owner-list-unknown-odq-q`).
    pub owner: Option<String>,
}

impl Refused {
    /// An alias or list that came back to itself naming no one.
    fn is_loop(&self) -> bool {
        self.text == "aliasing/forwarding loop broken"
    }

    /// What the message's queue entry keeps as its reason (`mailq`): the reason alone,
    /// except for an address that could not be parsed and a refusal sendmail names with
    /// the list file and line, which it keeps whole (recorded: `bounce-exp-inc-user-prog-odq`, `(DIR/members: line 1: ...)`).
    pub fn entry_reason(&self) -> &str {
        if self.list_file.is_some() && names_list_line(&self.text) {
            return &self.text;
        }
        // An address sendmail could not parse: it keeps the address with the reason
        // (recorded: `refused-unknown-and-syntax-odq`, `(a@@example.org... Invalid
        // route address)`; a bad domain too: `include-unknown-before-bad-domain-odq`),
        // where a user unknown keeps the reason alone.
        if matches!(self.code, Sysexit::Usage | Sysexit::NoHost) {
            return &self.text;
        }
        self.reason()
    }

    /// The reason alone, after the address (`User unknown`).
    pub fn reason(&self) -> &str {
        // sendmail keeps the group with its words (recorded: `argv-group-mixed`).
        if self.text.ends_with(address::LIST_SYNTAX_ILLEGAL) {
            return &self.text;
        }
        self.text
            .split_once("... ")
            .map(|(_, w)| w)
            .unwrap_or(&self.text)
    }
}

/// Whether `text` begins with a list file's location, `FILE: line N: `.
fn names_list_line(text: &str) -> bool {
    text.split_once(": line ").is_some_and(|(_, rest)| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest.get(digits..).is_some_and(|r| r.starts_with(": "))
    })
}

/// A recipient naming a program (`|cmd`), a file (`/path`) or a list file
/// (`:include:/path`) directly, which only an alias or a `.forward` may name: the
/// address as it is refused and what it names (`programs`, `files`, `:include:s`), as in
/// `ADDR... Cannot mail directly to programs`. `written` is the address as given when it
/// differs (with a phrase or in angle brackets).
pub fn direct_mailer(
    address: &str,
    written: Option<&str>,
    is_local: &dyn Fn(&str) -> bool,
) -> Option<(String, &'static str)> {
    // `:include:/path` reads as a group named `:include` around `/path`: what was
    // written says which it is (recorded: `order-include-direct`).
    let written = written.unwrap_or(address).trim();
    if written.starts_with(":include:") {
        return Some((written.to_string(), ":include:s"));
    }
    // Quoted too (`"|/bin/echo"`, `"/tmp/x"@HOST`): sendmail looks at the local part
    // without its quotes (compat cases addr-quoted-prog, addr-quoted-prog-local,
    // addr-quoted-file); an escaped `\|` is a user name (addr-backslash-prog).
    let (local, domain) = crate::message::address::split_at_domain(address);
    let bare = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) if domain.is_none_or(|_| is_local(address)) => inner,
        _ if domain.is_none() => local,
        _ => "",
    };
    // A quoted list file is one still (recorded: `argv-include-quoted-odi`, refused as
    // `":include:/path"... Cannot mail directly to :include:s`).
    if bare.starts_with(":include:") {
        return Some((address.to_string(), ":include:s"));
    }
    match bare.chars().next() {
        Some('|') => Some((address.to_string(), "programs")),
        Some('/') => Some((address.to_string(), "files")),
        _ => None,
    }
}

/// Expand local recipients through the aliases (unless `-n`) and check that local users
/// exist, as sendmail does at submission in every delivery mode (recorded from 8.17:
/// `-odq`, `-odd` and `-odb` all print `nosuchuser... User unknown` and exit 67, and the
/// queue holds the expanded recipients). Remote recipients pass untouched. A recipient
/// whose `:include:` file cannot be read here (the submitter may not read it, or it is
/// no list file) stays as it is, for the deliverer, which reads it or reports why not.
/// A root process reads an `:include:` file no user controls with the rights of
/// `default_user` (DefaultUser's uid and gid; [`crate::aliases::read_include_as_default`]),
/// looked up only then: most messages name no `:include:` file, and the lookup of a
/// user the password file lacks (`mailnull`) loads and walks every NSS source.
pub fn expand_local(
    recipients: Vec<Recipient>,
    aliases: Option<&crate::aliases::Aliases>,
    is_local: &dyn Fn(&str) -> bool,
    host: &str,
    default_user: &dyn Fn() -> (u32, u32),
) -> (Vec<Recipient>, Vec<Refused>) {
    let (out, refused, _, _, _) =
        expand_local_noted(recipients, aliases, is_local, host, default_user);
    (out, refused)
}

/// The aliases with an owner alias an expansion expanded, each as written with its
/// owner's envelope sender ([`crate::aliases::Expansion::owned`]).
pub type Owned = Vec<(String, String)>;

/// [`expand_local`], with the lines sendmail's `-v` prints while expanding
/// ([`crate::aliases::Expansion::notes`]), the aliases with an owner alias it
/// expanded ([`crate::aliases::Expansion::owned`]) and the lines the expansion adds to
/// the sender's transcript ([`expansion_lines`]), each with the place of the recipient
/// that gave it (as [`Refused::list`] before [`dedup`]'s places are applied).
#[allow(clippy::type_complexity)]
pub fn expand_local_noted(
    recipients: Vec<Recipient>,
    aliases: Option<&crate::aliases::Aliases>,
    is_local: &dyn Fn(&str) -> bool,
    host: &str,
    default_user: &dyn Fn() -> (u32, u32),
) -> (
    Vec<Recipient>,
    Vec<Refused>,
    Vec<(usize, String)>,
    Owned,
    Vec<(usize, String)>,
) {
    use crate::aliases::{ExpandError, Expander, Target};
    let read = |path: &std::path::Path, as_user: Option<u32>| {
        crate::aliases::read_include_as_default(path, as_user, default_user())
    };
    let ex = Expander {
        read_include: &read,
        ..Expander::system(aliases, is_local, host)
    };
    let mut notes = Vec::new();
    let mut owned = Vec::new();
    let mut told = Vec::new();
    let mut out: Vec<Recipient> = Vec::new();
    let mut refused = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // A refused user once in the whole submission, however often and in whichever form
    // the lists name it ([`crate::aliases::refused_key`]). A target that cannot be
    // parsed is refused once for each list that names it (`l1: b@@x`, `l2: b@@x`,
    // or two list files: recorded `alias-bad-two-lists-odq`, `include-bad-two-files-odq`);
    // a list reached again (an alias or list file named by an argument and by another
    // list) is not expanded again, so its refusals are said once (recorded:
    // `alias-reached-twice-odq`, `include-reached-twice-odq`): the key is the list that
    // named the target and the target.
    let mut refused_seen = std::collections::HashSet::new();
    let mut said_before: std::collections::HashSet<(Option<String>, String)> =
        std::collections::HashSet::new();
    // The places in queue order the expansions so far gave their errors.
    let mut queued = 0;
    let mut add = |out: &mut Vec<Recipient>, r: Recipient| {
        let new = seen.insert(crate::aliases::recipient_key(&r.address, is_local));
        if new {
            out.push(r);
        }
        new
    };
    for (given, r) in recipients.into_iter().enumerate() {
        let a = r.address.clone();
        if let Some((a, what)) = direct_mailer(&a, r.display.as_deref(), is_local) {
            refused.push(Refused {
                text: format!("{a}... Cannot mail directly to {what}"),
                address: a,
                code: Sysexit::Usage,
                quiet: false,
                expanded: None,
                list_file: Some(crate::status::NOT_AUTHORIZED),
                direct: true,
                syntax: None,
                sets_status: false,
                list: given,
                owner: None,
            });
            continue;
        }
        if !is_local(&a) {
            add(&mut out, r);
            continue;
        }
        let x = ex.expand(std::slice::from_ref(&a), None);
        notes.extend(x.notes.iter().map(|n| (given, n.clone())));
        // A list file that cannot be read now, or that the submitter may not read (the
        // root deliverer may), is the deliverer's to read; one that is no list file for
        // anyone (written by all, not a regular file, too large) is refused here, as
        // sendmail refuses it at submission (recorded: `bounce-exp-inc-writable-odi`).
        if x.errors.iter().any(|e| match e {
            ExpandError::Include(..) | ExpandError::AliasLine(..) => true,
            ExpandError::IncludeRefused(_, _, st) => *st == crate::status::NOT_AUTHORIZED,
            _ => false,
        }) {
            add(&mut out, r);
            continue;
        }
        let queued_before = queued;
        queued += x.error_queued.iter().copied().max().unwrap_or(0);
        let mut said_now = std::collections::HashSet::new();
        for (k, e) in x.errors.iter().enumerate() {
            let target = crate::aliases::refused_key(&e.target());
            let key = (x.ctl_of(k).map(str::to_string), target.clone());
            let again = if e.is_syntax_fault() {
                (key.0.is_some() && said_before.contains(&key)) || !said_now.insert(key)
            } else {
                !refused_seen.insert(target)
            };
            if again {
                continue;
            }
            let final_rcpt = r.final_rcpt.clone().unwrap_or_else(|| {
                if a.contains('@') {
                    a.clone()
                } else {
                    format!("{a}@{host}")
                }
            });
            let list_file = match e {
                ExpandError::IncludeRefused(_, _, st) => Some(*st),
                // Told as a refused list file is (recorded: `bounce-exp-inc-user-prog-odi`).
                ExpandError::Mailer(..) => Some(crate::status::NOT_AUTHORIZED),
                _ => None,
            };
            refused.push(Refused {
                address: e.target(),
                text: x.said(k),
                code: e.status(),
                quiet: false,
                expanded: x
                    .ctl_of(k)
                    .map(|c| (crate::aliases::ctl_in_report(c).to_string(), final_rcpt)),
                list_file,
                direct: false,
                syntax: e.is_syntax_fault().then(|| {
                    let place = x.error_queued.get(k).copied().unwrap_or(0);
                    (e.reply().1, queued_before + place)
                }),
                sets_status: e.sets_status(),
                list: given,
                owner: x.sender_of(k).map(str::to_string),
            });
        }
        said_before.extend(said_now);
        owned.extend(x.owned.iter().cloned());
        if let [one] = x.targets.as_slice()
            && one.sender.is_none()
            && one.target == Target::User(crate::aliases::key_of(&a))
        {
            add(&mut out, r);
            continue;
        }
        let mut added = 0usize;
        for n in crate::aliases::recipients_from(&r, x.targets, host) {
            if add(&mut out, n) {
                added += 1;
            }
        }
        told.extend(
            expansion_lines(&r, &x.owned, added)
                .into_iter()
                .map(|l| (given, l)),
        );
    }
    (out, refused, notes, owned, told)
}

/// The lines sendmail's transcript gets when a recipient named at submission is
/// expanded (an alias, a `:include:` list): `Message delivered to mailing list LIST`
/// for each list with an owner alias it expanded (`owned`, innermost first), then,
/// when the expansion added more than one address (`added`) and the recipient's NOTIFY
/// asks for success notices, `ADDR... expanded to multiple addresses` (RFC 3461
/// §6.2.7.3: the list is reported as expanded and its members are not; recorded:
/// `receipt-list-owner-argv-odi`, `receipt-list-nested-argv-odi`).
pub fn expansion_lines(r: &Recipient, owned: &[(String, String)], added: usize) -> Vec<String> {
    let mut l: Vec<String> = owned
        .iter()
        .map(|(list, _)| format!("Message delivered to mailing list {list}"))
        .collect();
    if added > 1 && crate::dsn::wanted(r, crate::dsn::Kind::Success) {
        l.push(format!("{}... expanded to multiple addresses", r.address));
    }
    l
}

/// The fields [`missing_headers`] adds when the message lacks them.
const ADDED_WHEN_MISSING: [&str; 6] = [
    "Date",
    "From",
    "Message-Id",
    "Resent-Date",
    "Resent-From",
    "Resent-Message-Id",
];

/// The `Date:`, `From:` and `Message-Id:` fields sendmail adds when the message lacks
/// them, in its order. A message with Resent- fields also gets `Resent-Date:`,
/// `Resent-From:` and `Resent-Message-Id:` when it lacks them, each before its plain
/// counterpart (sendmail.cf's `H?D?Resent-Date:` ... lines; compat-tests `field-resent-*`).
/// One of these fields the message gives with no value, or blanks and folds only, is
/// absent: it is removed from `head` and replaced (recorded: `field-empty-*`,
/// `field-blank-*`); an empty `Resent-` field still makes the message a resent one.
/// `from` gives the From value, asked for only when needed.
pub fn missing_headers(
    head: &mut message::Head,
    tm: &clock::Tm,
    id: &str,
    host: &str,
    from: impl Fn() -> String,
) -> Vec<Header> {
    let resent = message::is_resent(&head.headers);
    head.headers
        .retain(|h| !(ADDED_WHEN_MISSING.iter().any(|n| h.is(n)) && h.is_blank()));
    let mut added = Vec::new();
    let has = |name: &str| head.headers.iter().any(|h| h.is(name));
    let message_id = format!("<{}.{id}@{host}>", clock::stamp12(tm));
    if resent && !has("Resent-Date") {
        added.push(Header::new("Resent-Date", &clock::rfc5322(tm)));
    }
    if !has("Date") {
        added.push(Header::new("Date", &clock::rfc5322(tm)));
    }
    if resent && !has("Resent-From") {
        added.push(Header::new("Resent-From", &from()));
    }
    if !has("From") {
        added.push(Header::new("From", &from()));
    }
    if resent && !has("Resent-Message-Id") {
        added.push(Header::new("Resent-Message-Id", &message_id));
    }
    if !has("Message-Id") {
        added.push(Header::new("Message-Id", &message_id));
    }
    added
}

/// The size of the header block as queued: the added fields, the message's own, and the
/// blank line.
pub fn header_block_bytes(added: &[Header], head: &message::Head) -> u64 {
    added
        .iter()
        .chain(head.headers.iter())
        .map(|h| h.raw.len() as u64)
        .sum::<u64>()
        + 1
}

/// The bytes of the header fields rsendmail added.
pub fn added_bytes(added: &[Header]) -> u64 {
    added.iter().map(|h| h.raw.len() as u64).sum()
}

/// The `-F` full name as the display name of the `From:` rsendmail adds: as given when it
/// already is an RFC 5322 phrase (§3.2.5: atoms, quoted strings and comments, 8-bit
/// text as RFC 6532 allows: `John "Q" Public`, `John (Jack) Public`, `"John Public"`,
/// `Jörg Müller`), else one quoted string with `"` and `\` escaped (`"Joe Q. Public"`,
/// `"Public, John"`, `"John \"Q Public"`). Recorded from 8.17: `F-*`. A control
/// character (a line break) becomes a blank: the name stays in its one field.
pub fn display_name(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if is_phrase(&name) {
        name
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The local part of a `-f` sender that MASQUERADE rewrites, as dma rewrites `-f`
/// (`dma.c` `set_from`), within sendmail's rule that an explicit envelope address of
/// another domain is the caller's to choose: an unqualified name (`-f root`), or an
/// address in this host's mail name or `localhost` (the names dma takes as its own).
/// `None` for the null sender and any other address.
pub fn masqueradable<'a>(sender: &'a str, host: &str) -> Option<&'a str> {
    if sender.is_empty() || sender == "<>" {
        return None;
    }
    match sender.rsplit_once('@') {
        None => Some(sender),
        Some((user, dom))
            if !user.is_empty()
                && (address::domain_key(dom) == address::domain_key(host)
                    || dom.eq_ignore_ascii_case("localhost")) =>
        {
            Some(user)
        }
        Some(_) => None,
    }
}

/// Whether `text` is an RFC 5322 phrase with its CFWS (§3.2.5, §3.2.2): words that are
/// atoms (atext, or non-ASCII text, RFC 6532 §3.2) or quoted strings, blanks and
/// balanced comments between them; no special character outside quotes and comments.
fn is_phrase(text: &str) -> bool {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Quoted,
        Comment(u32),
    }
    let mut state = In::Plain;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match state {
            In::Plain => match c {
                '"' => state = In::Quoted,
                '(' => state = In::Comment(1),
                ' ' | '\t' => {}
                c if !c.is_ascii() => {}
                c if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) => {}
                _ => return false,
            },
            In::Quoted => match c {
                '\\' => escaped = true,
                '"' => state = In::Plain,
                _ => {}
            },
            In::Comment(depth) => match c {
                '\\' => escaped = true,
                '(' => state = In::Comment(depth + 1),
                ')' if depth == 1 => state = In::Plain,
                ')' => state = In::Comment(depth - 1),
                _ => {}
            },
        }
    }
    state == In::Plain && !escaped
}

/// dma's MASQUERADE `[user@][host]` applied to the default sender `login`.
pub fn masquerade(spec: &str, login: &str, host: &str) -> String {
    match spec.split_once('@') {
        Some((user, dom)) => {
            let user = if user.is_empty() { login } else { user };
            let dom = if dom.is_empty() { host } else { dom };
            format!("{user}@{dom}")
        }
        None => format!("{login}@{spec}"),
    }
}

/// Sort checked list items into the recipients to queue and the refused, each refused
/// one with sendmail's `address... reason`.
pub fn sort_listed(
    list: Vec<address::Listed>,
    ok: &mut Vec<address::Listed>,
    refused: &mut Vec<Refused>,
) {
    // Each list's items come in queue order (reversed); its syntax faults are said in
    // written order, as sendmail parses the list.
    let first = refused.len();
    for l in list {
        match &l.error {
            None => ok.push(l),
            Some(e) => refused.push(Refused {
                text: e.message(&l.text),
                code: e.exit(),
                address: l.text,
                quiet: false,
                expanded: None,
                list_file: None,
                direct: false,
                // Reported as a list's target refused as no address is, with its
                // status, no reason line and its `553` transcript line (recorded:
                // `argv-syntax-reject5-odi`); among those, before a list's targets.
                syntax: (*e != address::Invalid::NoUser).then(|| (e.status(), 0)),
                // The first refusal said decides the status, as for a list's target
                // (recorded: `argv-bad-first-odq`, `bv-order-remote-first`: 64 before
                // an unknown user; `argv-bad-order-odq`: 67 after one); an unbalanced
                // address does not (`addr-unbalanced-angle`); also `refused-unknown-and-syntax-odq` (67),
                // `syntax-before-unknown-odq` (64). A group naming no one (`:;`, `<@>`)
                // written here is refused by sendmail's rule set 0 and decides it too
                // (`bv-at-angle-kind`: 64 before an unknown user).
                sets_status: e.sets_status() || *e == address::Invalid::EmptyGroup,
                list: l.list,
                owner: None,
            }),
        }
    }
    if let Some(new) = refused.get_mut(first..) {
        for run in new.chunk_by_mut(|a, b| a.list == b.list) {
            run.reverse();
        }
    }
}

/// The message's [`address::OldStyle`] at its start: `O OldStyleHeaders` (sendmail's
/// `-oo`), true unless set otherwise, as in Debian's sendmail.cf.
pub fn old_style(settings: &Settings) -> address::OldStyle {
    address::OldStyle(settings.old_style_headers.unwrap_or(true))
}

/// The one address `check --to` takes, parsed as the command line parses its
/// recipients ([`argv_recipients`]) in list style `style`: the address, or why it is
/// refused (no address, more than one, one the command line refuses).
pub fn one_address(given: &str, mut style: address::OldStyle) -> Result<String, String> {
    // The command line's refusal shows a control character as sendmail shows it (`?`,
    // [`address::shown`]); here the address is echoed as every admin message echoes an
    // argument: each such character as its octets in octal
    // ([`crate::text::argument_shown`]), so that `\033` is seen for what it is.
    let octal = |text: &str, addr: &str| {
        let sendmails = address::shown(addr);
        if sendmails == addr {
            return text.to_string();
        }
        text.replacen(&sendmails, &crate::text::argument_shown(addr), 1)
    };
    // A program, a file or a list file, which only an alias or a `.forward` may name, is
    // no address to probe (nor, with its blanks, a list: `|/bin/cat -x`).
    let not_an_address = |what: &str| {
        let what = match what {
            "programs" => "a program",
            "files" => "a file",
            _ => "a list file (:include:)",
        };
        format!(
            "not an address: it names {what} ({}), which only an alias or a .forward may \
             name; give an address (the alias's name, to follow its route)",
            crate::text::argument_shown(given)
        )
    };
    if let Some((_, what)) = direct_mailer(given.trim(), None, &|_| false) {
        return Err(not_an_address(what));
    }
    let (mut addrs, refused) =
        argv_recipients(&[given.to_string()], &mut style).map_err(|f| octal(&f.message, given))?;
    if let Some(r) = refused.first() {
        // `<>`, `@`: sendmail's words name no one; said as what it is.
        if r.text.ends_with("... User unknown") {
            return Err(format!(
                "not an address: it names no recipient ({}; sendmail: {})",
                crate::text::argument_shown(given),
                octal(&r.text, &r.address)
            ));
        }
        return Err(octal(&r.text, &r.address));
    }
    match (addrs.pop(), addrs.is_empty()) {
        (Some(a), true) => {
            let written = (a.text != a.address).then_some(a.text.as_str());
            if let Some((_, what)) = direct_mailer(&a.address, written, &|_| false) {
                return Err(not_an_address(what));
            }
            // An empty local part (`""`, `""@host`): no user to probe.
            let (local, _) = address::split_at_domain(&a.address);
            if local == "\"\"" || local.is_empty() {
                return Err(format!(
                    "not an address: its local part is empty ({}); give one with a user \
                     name",
                    crate::text::argument_shown(given)
                ));
            }
            Ok(a.address)
        }
        // The argument echoed as every admin message echoes one: escaped, a long one
        // cut with its length.
        (Some(_), false) => Err(format!(
            "\"{}\" is a list: give one address",
            crate::text::argument_shown(given)
        )),
        (None, _) => Err(format!(
            "not an address: \"{}\"",
            crate::text::argument_shown(given)
        )),
    }
}

/// Split argv recipients into lists as sendmail does (at commas, or at blanks while the
/// message's [`address::OldStyle`] holds) and check every address: the good ones, and
/// the refused. A line break or NUL in an argument refuses the whole invocation (it can
/// only be an attempt to forge protocol lines).
pub fn argv_recipients(
    args: &[String],
    style: &mut address::OldStyle,
) -> Result<(Vec<address::Listed>, Vec<Refused>), Fatal> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for (k, a) in args.iter().enumerate() {
        if a.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Fatal::new(
                Sysexit::Usage,
                format!(
                    "{}... line breaks and NUL are not allowed in addresses",
                    address::shown(a)
                ),
            ));
        }
        let old_style = style.list(a);
        let mut items = address::recipients_of_list(a, old_style);
        for l in &mut items {
            l.list = k;
        }
        sort_listed(items, &mut out, &mut refused);
    }
    Ok((out, refused))
}

/// The envelope sender given with `-f`/`-r`: `""` (from `<>`) is the null sender; else
/// one address (`Name <addr>` and comments allowed), checked like every envelope
/// address.
pub fn envelope_sender(given: &str) -> Result<String, Fatal> {
    if given.is_empty() {
        return Ok(String::new());
    }
    address::parse_one(given).map_err(|e| Fatal::new(e.exit(), e.message(given)))
}

/// Envelope recipients without duplicates (the first mention wins, as in sendmail):
/// the same address byte for byte (local users, whose names sendmail folds to lower
/// case, are merged later, at expansion; recorded: `dup-case-argv`, `dup-case-local`),
/// a domain in U-label and in A-label form being one domain
/// ([`address::duplicate_key`]). A program named directly stays each time it is named:
/// sendmail refuses it before it looks for duplicates, so says the refusal each time
/// (recorded: `argv-prog-twice-odq`, `argv-prog-file-mixed-odi`); a file named twice is
/// one recipient, refused once (`argv-file-twice-odq`), quoted or not. With each recipient, the list
/// (argument) that named it.
fn dedup(
    list: Vec<address::Listed>,
    is_local: &dyn Fn(&str) -> bool,
) -> (Vec<Recipient>, Vec<usize>) {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut lists = Vec::new();
    for l in list {
        let written = (l.text != l.address).then_some(l.text.as_str());
        let direct = direct_mailer(&l.address, written, is_local).map(|(_, what)| what);
        let program = direct == Some("programs");
        // A file quoted and unquoted is one file (recorded:
        // `argv-file-quoted-twice-remote-odi`).
        let key = match direct {
            Some("files") => unquoted(&l.address).to_string(),
            _ => address::duplicate_key(&l.address),
        };
        if seen.insert(key) || program {
            let mut r = Recipient::new(l.address.clone());
            if l.text != l.address {
                r.display = Some(l.text);
            }
            out.push(r);
            lists.push(l.list);
        }
    }
    (out, lists)
}

/// sendmail's `MaxHopCount` when none is set.
pub const DEFAULT_MAX_HOPS: usize = 25;

/// Run a submission from `input`.
pub fn submit<R: BufRead>(
    req: &Request,
    cfg: &Config,
    settings: &Settings,
    spool: &Spool,
    mode: DeliveryMode,
    who: &Submitter,
    input: R,
) -> Result<Submitted, Fatal> {
    let ignore_dots = settings.ignore_dots.unwrap_or(false);
    let max_size = settings.max_message_size.filter(|&n| n > 0);
    let mut style = old_style(settings);
    let (mut recipients, mut refused_syntax) = argv_recipients(&req.recipients, &mut style)?;
    if recipients.is_empty() && refused_syntax.is_empty() && !req.read_recipients {
        return Err(Fatal::new(
            Sysexit::Usage,
            "Recipient names must be specified",
        ));
    }
    // The one address the command line gave, if it gave exactly one (refused or not).
    let argv_only = match (recipients.as_slice(), refused_syntax.as_slice()) {
        ([one], []) => Some(one.address.clone()),
        ([], [one]) => Some(one.address.clone()),
        _ => None,
    };
    let given_sender = match &req.sender {
        Some(s) => Some(envelope_sender(s)?),
        None => None,
    };
    // VERP (`crate::verp`): asked for this message by -XV, or for every message by
    // `O Verp=true`. The null sender has nowhere to encode a recipient: -XV with it is
    // refused before the message is read (Postfix's sendmail refuses it too), and the
    // option leaves such a message (a report) alone.
    let null_sender = given_sender.as_deref() == Some("");
    if req.verp.is_some() && null_sender {
        return Err(Fatal::new(
            Sysexit::Usage,
            "-XV requires a sender address other than the null sender <>",
        ));
    }
    let delimiters = settings
        .verp_delimiters
        .clone()
        .unwrap_or_else(|| crate::verp::DEFAULT_DELIMITERS.to_string());
    let verp = match &req.verp {
        Some(d) => Some(d.clone().unwrap_or(delimiters)),
        None if settings.verp == Some(true) && !null_sender => Some(delimiters),
        None => None,
    };
    let host = cfg.host_name();
    let now = clock::now();

    let mut entry = spool.prepare_and_begin(now)?;
    let id = entry.id.clone();

    // -X: the lines read are logged after what the command line's addresses say, the
    // header's refusals after the message (`crate::traffic::Intake`).
    let intake = crate::traffic::Intake::begin();
    let mut reader = LineReader::new(input, ignore_dots);
    let mut head = message::read_head(&mut reader)?;
    message::observe_style(&head.headers, &mut style);
    if req.read_recipients {
        // argv recipients first, then the header fields in order (recorded from 8.17).
        let mut listed = message::header_recipients(&head.headers, style.0);
        for l in &mut listed {
            l.list += req.recipients.len();
        }
        sort_listed(listed, &mut recipients, &mut refused_syntax);
        if recipients.is_empty() && refused_syntax.is_empty() {
            // sendmail: the message is dropped, and the exit status is 0.
            intake.argv_said();
            crate::tell!("No recipient addresses found in header");
            return Ok(Submitted {
                id: None,
                mode,
                status: Sysexit::Ok,
                report: Vec::new(),
                note: None,
                held: false,
            });
        }
    }
    let held = held_by_header(&refused_syntax, req.recipients.len(), req.read_recipients);
    message::apply_field_rules(&mut head.headers);
    let single_recipient = {
        let mut all = recipients
            .iter()
            .map(|l| &l.address)
            .chain(refused_syntax.iter().map(|r| &r.address));
        all.next().is_some_and(|first| {
            all.all(|a| {
                a.eq_ignore_ascii_case(first)
                    || address::duplicate_key(a) == address::duplicate_key(first)
            })
        })
    };
    let to_smarthost = cfg.all_to_smarthost();
    let is_local = |a: &str| address::is_local(a, &host, to_smarthost);
    // With the list that first named each recipient, for the order refusals are said in.
    let (recipients, list_of) = dedup(recipients, &is_local);
    // The aliases file is read only when a recipient is local.
    let aliases = if req.no_alias || !recipients.iter().any(|r| is_local(&r.address)) {
        None
    } else {
        let path = settings.alias_file.as_ref().unwrap_or(&cfg.aliases);
        crate::aliases::Aliases::for_delivery(path)
    };
    // Each recipient with the NOTIFY of `-N` (every address's, set on the envelope's
    // below too), which the expansion's transcript lines depend on.
    let (envelope_recipients, refused_local, notes, owned, expansion_notes) = expand_local_noted(
        recipients
            .iter()
            .map(|r| Recipient {
                notify: req.notify.clone(),
                ..r.clone()
            })
            .collect(),
        aliases.as_ref(),
        &is_local,
        &host,
        &|| crate::aliases::default_user(settings.default_user.as_deref()),
    );
    // `-v`: what the expansion did, as sendmail tells it (recorded: `v-alias-remote`,
    // `v-include`), each line with the place of the argument that gave it.
    let mut verbose_notes: Vec<(usize, String)> = if req.verbose {
        notes
            .into_iter()
            .map(|(given, n)| (list_of.get(given).copied().unwrap_or(0), n))
            .collect()
    } else {
        Vec::new()
    };
    // sendmail's queue file lists the local recipients first, each group in its queue
    // order (recorded from 8.17: `order-argv-local-odq`, `order-mixed-local-remote`).
    // Where that moves a recipient, each keeps its place in the queue order, where a
    // `.forward` met at delivery puts its targets (`Envelope::queue_order`).
    let moved = envelope_recipients
        .iter()
        .skip_while(|r| is_local(&r.address))
        .any(|r| is_local(&r.address));
    let (mut envelope_recipients, remote): (Vec<Recipient>, Vec<Recipient>) = envelope_recipients
        .into_iter()
        .enumerate()
        .map(|(i, r)| Recipient {
            place: Some(i).filter(|_| moved),
            ..r
        })
        .partition(|r| is_local(&r.address));
    envelope_recipients.extend(remote);
    // Unknown users sendmail counts in the queue priority (`Envelope::refused_users`).
    let refused_users = refused_local
        .iter()
        .filter(|r| r.code == Sysexit::NoUser && r.syntax.is_none() && r.list_file.is_none())
        .count();
    let mut refused = refused_syntax;
    refused.extend(refused_local.into_iter().map(|mut r| {
        r.list = list_of.get(r.list).copied().unwrap_or(0);
        r
    }));
    let expansion_notes: Vec<(usize, String)> = expansion_notes
        .into_iter()
        .map(|(given, l)| (list_of.get(given).copied().unwrap_or(0), l))
        .collect();
    // A list at a time, its syntax faults first (stable: each list's own order kept).
    refused.sort_by_key(|r| r.list);
    // A message that has passed too many hosts is looping: sendmail refuses it at
    // submission, whatever the delivery mode (`sendall`: every recipient fails with
    // 5.4.6, exit 69, nothing stays queued; recorded: `hop-received-25`,
    // `hop-received-25-odq`, `hop-h-26`). `MaxHopCount=0` refuses every message, as
    // in sendmail.
    let max_hops = settings.max_hop_count.unwrap_or(DEFAULT_MAX_HOPS);
    let hops = message::hop_count(&head.headers, req.hop_count);
    if hops > i64::try_from(max_hops).unwrap_or(i64::MAX) {
        let looping: Vec<Refused> = envelope_recipients
            .drain(..)
            .map(|r| Refused {
                text: format!("{}... Too many hops {hops} ({max_hops} max)", r.address),
                address: r.address,
                code: Sysexit::Unavailable,
                quiet: true,
                expanded: None,
                list_file: None,
                direct: false,
                syntax: None,
                sets_status: true,
                list: 0,
                owner: None,
            })
            .collect();
        log::info!("{id}: Too many hops {hops} ({max_hops} max)");
        refused.splice(0..0, looping);
    }
    // The `-v` lines are said now, unless refusals are said (once the message is on
    // disk): then among them, in command-line order, as sendmail meets each argument
    // (`nosuch1`, `list3... aliased to ...`, `nosuch3`; recorded:
    // `report-order-unknown-list-receipt-v`).
    let argv_lists = req.recipients.len();
    let notes_now = settings.error_mode.unwrap_or('p') != 'p' || refused.iter().all(|r| r.quiet);
    // -X: what is said of the command line's addresses is logged before the message's
    // lines, where sendmail says it (before it reads the message).
    for l in said_in_order(&refused, &verbose_notes, !notes_now)
        .into_iter()
        .filter(|(list, _)| *list < argv_lists)
    {
        crate::traffic::told(&l.1);
    }
    intake.argv_said();
    if notes_now {
        for (given, n) in verbose_notes.drain(..) {
            say_logged(&crate::text::printable_lines(&n), given >= argv_lists);
        }
    }

    // The envelope sender as stored: the login alone for the default sender (qualified at
    // delivery, as sendmail stores it), the -f address as given, or MASQUERADE's (of the
    // login, or of a local -f address: `masqueradable`).
    let (sender, from_addr) = match (&given_sender, &cfg.masquerade) {
        (Some(s), Some(m)) => match masqueradable(s, &host) {
            Some(user) => {
                let a = masquerade(m, user, &host);
                (a.clone(), a)
            }
            None => (s.clone(), s.clone()),
        },
        (Some(s), None) => (s.clone(), s.clone()),
        (None, Some(m)) => {
            let a = masquerade(m, &who.login, &host);
            (a.clone(), a)
        }
        (None, None) => (who.login.clone(), format!("{}@{host}", who.login)),
    };
    // Unqualified addresses in the header get the mail name, originator fields
    // MASQUERADE's domain when one is set, as the envelope sender does.
    let sender_domain = match &cfg.masquerade {
        Some(m) => address::domain_of(&masquerade(m, &who.login, &host)).unwrap_or(host.clone()),
        None => host.clone(),
    };
    let before: Vec<Header> = head.headers.clone();
    message::qualify_fields(&mut head.headers, &host, &sender_domain, style.0);
    // The fields as taken in, for the copy in ~/dead.letter (`Envelope::taken_fields`).
    let mut taken_fields: Vec<(String, String)> = before
        .iter()
        .zip(head.headers.iter())
        .filter(|(b, a)| b.raw != a.raw)
        .filter_map(|(b, a)| {
            Some((
                String::from_utf8(a.raw.clone()).ok()?,
                String::from_utf8(b.raw.clone()).ok()?,
            ))
        })
        .collect();

    // Headers sendmail adds, in its order, before the user's own.
    let tm = clock::local(now);
    let date = clock::rfc5322(&tm);
    let mut added: Vec<Header> = Vec::new();
    // sendmail names the recipient only when the command line gave exactly one, those
    // refused for their syntax included; `-t` recipients come too late to count
    // (headers.c `eatheader` sets `$u` first; recorded: `addr-double-at`,
    // `field-apparently-to`). rsendmail also requires it to be the message's only
    // recipient: sendmail's `for` shows a command-line recipient (often a blind copy,
    // `sendmail -t archive@...`) to everyone `-t` found (RFC 5321 §7.2; recorded:
    // `received-for-t-plus-argv`).
    // Written with A-labels (`u@bücher.example` → `for u@xn--bcher-kva.example`), so
    // that no line rsendmail writes needs SMTPUTF8 of the next server; a recipient that
    // has no such form (a non-ASCII local part) is not named.
    let for_whom = argv_only
        .as_deref()
        .filter(|_| single_recipient)
        .and_then(address::ascii_address);
    // `-p protocol:host` (sendmail's `$s` and `$r`): `from HOST (user@localhost)` and
    // `with PROTOCOL` (recorded: `p-esmtp-host`, `p-foo`, `p-clean`).
    let origin = match &req.received_from {
        Some(h) => format!("from {h} ({}@localhost)", who.login),
        None => format!("(from {}@localhost)", who.login),
    };
    let with = match &req.received_with {
        Some(p) => format!(" with {p}"),
        None => String::new(),
    };
    let received = if let Some(only) = for_whom {
        format!(
            "{origin}\n\tby {host} ({}){with} id {id}\n\tfor {}; {date}",
            crate::PRODUCT,
            only
        )
    } else {
        format!(
            "{origin}\n\tby {host} ({}){with} id {id};\n\t{date}",
            crate::PRODUCT
        )
    };
    added.push(Header::new("Received", &received));
    // The `From:` added when the message has none, and the same as sendmail queues it,
    // its address as the sender was given (`root <root>`): the copy in ~/dead.letter
    // has that one, as sendmail's has (recorded: `xlog-bounce-local-odi`).
    let (from_field, from_taken) = {
        // The address written, and the one sendmail's queued field has.
        let (addr, taken) = if req.sender.is_some() {
            let addr = if from_addr.is_empty() {
                format!("{}@{host}", who.login)
            } else if address::domain_of(&from_addr).is_none() {
                // `-f someone` → `From: someone@host`, as a `From: someone` the
                // message brings is qualified (recorded: `from-f-unqualified`).
                format!("{from_addr}@{sender_domain}")
            } else {
                // A domain with U-labels as its A-labels (`s@bücher.example` →
                // `From: s@xn--bcher-kva.example`): the field is written before the
                // relay is known, and only the A-label form reaches one without
                // SMTPUTF8 intact (compat-tests/DIFFERENCES.md, `idn-header-from-relay`).
                address::ascii_address(&from_addr)
                    .map_or_else(|| from_addr.clone(), std::borrow::Cow::into_owned)
            };
            // An unqualified `-f` address, MASQUERADE's not applied (it is the one
            // given).
            let taken = if cfg.masquerade.is_none()
                && !from_addr.is_empty()
                && address::domain_of(&from_addr).is_none()
            {
                from_addr.clone()
            } else {
                addr.clone()
            };
            (addr, taken)
        } else {
            // The login alone, as the envelope sender is stored (no MASQUERADE).
            let taken = if cfg.masquerade.is_none() {
                who.login.clone()
            } else {
                from_addr.clone()
            };
            (from_addr.clone(), taken)
        };
        let named = |addr: &str| {
            if req.sender.is_some() {
                // `-F` names a local `-f` sender (unqualified, or of this host), as in
                // sendmail (recorded: `f-unqual-F`, `F-with-f-self`); a sender elsewhere
                // is the address alone (`f-F-full`).
                let local = given_sender
                    .as_deref()
                    .is_some_and(|s| masqueradable(s, &host).is_some());
                match req.full_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) if local => format!("{} <{addr}>", display_name(name)),
                    _ => addr.to_string(),
                }
            } else {
                // `-F ''` names no one: the password entry's name, as in sendmail
                // (recorded: `F-empty`).
                let given = req.full_name.as_deref().filter(|n| !n.is_empty());
                match given.or(who.gecos_name.as_deref()) {
                    Some(name) if !name.is_empty() => {
                        format!("{} <{addr}>", display_name(name))
                    }
                    _ => addr.to_string(),
                }
            }
        };
        (named(&addr), named(&taken))
    };
    added.extend(missing_headers(&mut head, &tm, &id, &host, || {
        from_field.clone()
    }));
    if from_taken != from_field {
        for h in added.iter().filter(|h| h.is("From") || h.is("Resent-From")) {
            if let Ok(queued) = String::from_utf8(h.raw.clone()) {
                let taken = Header::new(&h.name, &from_taken).raw;
                if let Ok(taken) = String::from_utf8(taken) {
                    taken_fields.push((queued, taken));
                }
            }
        }
    }
    if let Some(s) = &req.sender {
        let own = s == &who.login || s == &format!("{}@{host}", who.login);
        // Only with `O PrivacyOptions=authwarnings` (compat-tests/cases/privacy-authwarnings-off).
        if !who.is_trusted() && !own && settings.privacy("authwarnings") {
            // The sender's domain with A-labels, as in `From:` (a sender with a
            // non-ASCII local part needs SMTPUTF8 for its envelope anyway).
            let shown = match address::ascii_address(s) {
                _ if s.is_empty() => "<>".to_string(),
                Some(a) => a.into_owned(),
                None => s.clone(),
            };
            added.push(Header::new(
                "X-Authentication-Warning",
                &format!("{host}: {} set sender to {shown} using -f", who.login),
            ));
        }
    }

    let header_bytes = header_block_bytes(&added, &head);
    let notify = req.notify.clone();
    let reported = failure_wanted(notify.as_deref());
    let envelope = Envelope {
        id: id.clone(),
        created: now,
        sender,
        recipients: envelope_recipients
            .into_iter()
            .map(|r| Recipient {
                notify: notify.clone(),
                ..r
            })
            .collect(),
        user: who.login.clone(),
        uid: who.uid,
        // Held for a queue run: recorded as queued (`-odq`), so that no background
        // delivery takes it as one of its own mode's (a later `-odb` submission's
        // follow-ups, the runner woken for a background entry).
        mode: if held {
            DeliveryMode::QueueOnly.letter()
        } else {
            mode.letter()
        },
        header_bytes,
        added_header_bytes: added_bytes(&added),
        submitted_header_bytes: Some(head.submitted_bytes + 1),
        body_type: req.body_type.clone(),
        envid: req.envid.clone(),
        ret: req.ret.clone(),
        verp,
        refused_users: u32::try_from(refused_users).unwrap_or(u32::MAX),
        taken_fields,
        ..Envelope::default()
    };

    let envelope_text = write_entry(
        spool,
        &mut entry,
        &envelope,
        &added,
        &head,
        &mut reader,
        max_size,
    )
    .map_err(|e| match e {
        StoreError::Fatal(f) => f,
        StoreError::TooBig(max) => Fatal::new(
            Sysexit::DataErr,
            format!("Message exceeds maximum fixed size ({max})"),
        ),
        StoreError::Read(e) => message::read_error(&e),
        // sendmail: `NUL byte not allowed`, then it mails the message back and exits 0
        // (compat-tests `content-nul-*`); refused here, so that the caller learns it.
        StoreError::Nul => Fatal::new(Sysexit::DataErr, NUL_NOT_ALLOWED),
    })?;
    let data_offset = envelope_text.len() as u64;
    if envelope.recipients.is_empty() {
        // Every recipient was refused: nothing is queued; the message is returned as
        // the error mode says (read back from the temporary file, removed on return).
        entry.writer().flush().map_err(|e| {
            Fatal::io(
                &e,
                format!(
                    "cannot write queue file {}: {}",
                    spool.dir.display(),
                    crate::config::io_text(&e)
                ),
            )
        })?;
        let (status, report, _, unreturned) = refused_recipients(
            settings,
            cfg.full_bounce,
            address::is_local(&envelope.sender, &host, to_smarthost),
            &host,
            spool,
            &envelope,
            &refused,
            entry.tmp_path(),
            data_offset,
            None,
            false,
            (false, false),
            &owned,
            reported,
            &verbose_notes,
            argv_lists,
        );
        // Nothing is queued and the message could be neither saved nor returned: the
        // caller keeps it (sendmail's savemail ends in its panic state there).
        if unreturned {
            return Err(Fatal::new(
                Sysexit::TempFail,
                "cannot save rejected email anywhere".to_string(),
            ));
        }
        return Ok(Submitted {
            id: None,
            mode,
            status,
            report,
            note: None,
            held: false,
        });
    }
    let length = entry.commit(&envelope)?;
    // ---- commit point: from here on the message is safe ----
    // The queue file's size: its envelope section and the message (no `stat` of it).
    crate::log::submitted(&envelope, Some(data_offset.saturating_add(length)));
    let sender_local = address::is_local(&envelope.sender, &host, to_smarthost);
    // The report of the recipients refused here, when it would be mailed back: in an
    // interactive delivery, the delivery that follows at once reports them with its own
    // failures, in one report, as sendmail's one pass over the envelope does (recorded:
    // `bounce-one-report-*`); it is kept in the entry's state until then.
    let error_mode = settings.error_mode.unwrap_or('p');
    // With VERP the refused recipients' reports go one to each one's own sender, not
    // with the delivery's (which are one per recipient too).
    // A held message is delivered by a queue run, which owes nothing of this submission.
    let delivered_now =
        matches!(mode, DeliveryMode::Interactive | DeliveryMode::Background) && !held;
    let hand_over = mode == DeliveryMode::Interactive
        && !held
        && !envelope.sender.is_empty()
        && envelope.verp.is_none()
        && error_mode != 'q'
        && !(error_mode == 'p' && sender_local);
    // A list owner's refusals (and its `Message delivered to mailing list` line) go
    // with the delivery's report to that owner, whoever the sender is (sendmail mails
    // an owner's errors: compat case bp-v-alias-owner-bounce); a background delivery's
    // too, in one report as sendmail's (`owner-list-odb`).
    let owners_hand_over = delivered_now && !envelope.sender.is_empty() && envelope.verp.is_none();
    // RFC 3461: a recipient refused here is reported only when its NOTIFY asks for
    // failures; `-N` is every address's NOTIFY, a list's members' too (recorded:
    // `argv-prog-N-never-odi`, `owner-list-N-never-odi`). A return receipt the
    // delivery sends still carries the refusals' lines (`argv-prog-N-success-odi`).
    let owners_hand_over = owners_hand_over && reported;
    let hand_over = hand_over && reported;
    let (senders, owners) = by_owner(&refused, &envelope);
    let (owner_owed, owner_notes) = if owners_hand_over {
        owner_reports(&owners, &owned, &host, &envelope)
    } else {
        (Vec::new(), Vec::new())
    };
    let mut handed = false;
    let mut owners_handed = false;
    // The expansion's own transcript lines, for the report to the sender of the
    // delivery that follows at once; a queued message's run has none of them (its
    // reports' transcript is the run's: recorded `receipt-list-argv-odq-q`).
    let expansion_notes = if delivered_now && !envelope.sender.is_empty() {
        expansion_notes
    } else {
        Vec::new()
    };
    if (!refused.is_empty() || !owner_notes.is_empty() || !expansion_notes.is_empty())
        && let Ok(Some(mut locked)) = spool.lock_entry(&id)
    {
        // sendmail keeps the last error said as the entry's message, which mailq shows
        // (recorded: `argv-bad-order-odq`, `(User unknown)`).
        let mut state = crate::spool::entry::State {
            reason: refused.last().map(|last| last.entry_reason().to_string()),
            ..Default::default()
        };
        let mut expansion_notes = expansion_notes;
        if hand_over {
            state.owed = report_recipients(&senders, &host, &envelope);
            state.owed_notes = in_given_order(report_notes_placed(&senders), &mut expansion_notes);
        } else if !reported && !held {
            // No report owed: the lines alone, for a receipt to carry. A held
            // message's receipt comes from a queue run, whose transcript is its own
            // (sendmail's too: recorded `z-rcpt-bcc-only`).
            state.owed_notes = in_given_order(report_notes_placed(&senders), &mut expansion_notes);
        }
        state.owner_owed = owner_owed;
        state.owner_notes = owner_notes;
        state.expansion_notes = expansion_notes.into_iter().map(|(_, l)| l).collect();
        match locked.record_state(state) {
            Ok(()) => {
                handed = hand_over;
                owners_handed = owners_hand_over;
            }
            Err(e) => log::warn!("{id}: {}", e.message),
        }
    }
    let (status, report, note, unreturned) = if refused.is_empty() {
        (Sysexit::Ok, Vec::new(), None, false)
    } else {
        refused_recipients(
            settings,
            cfg.full_bounce,
            sender_local,
            &host,
            spool,
            &envelope,
            &refused,
            &spool.qf_path(&id),
            data_offset,
            Some(length),
            mode == DeliveryMode::Interactive && !held,
            (handed, owners_handed),
            &owned,
            reported,
            &verbose_notes,
            argv_lists,
        )
    };
    // The report could not be queued: the entry owes it, for the delivery (now or in a
    // queue run) to send with its own; when not even that can be written, the caller is
    // told to try again (a duplicate is better than a loss).
    if unreturned && !owe_report(spool, &id, &refused, &owned, &host, &envelope) {
        return Err(Fatal::new(
            Sysexit::TempFail,
            format!("{id}: cannot save rejected email anywhere"),
        ));
    }
    Ok(Submitted {
        id: Some(id),
        mode,
        status,
        report,
        note,
        held,
    })
}

/// sendmail's words for a message holding a NUL octet (collect.c).
pub const NUL_NOT_ALLOWED: &str = "NUL byte not allowed";

/// Why [`write_entry`] stopped.
#[derive(Debug)]
pub enum StoreError {
    /// The spool could not be written.
    Fatal(Fatal),
    /// The message is larger than the limit (header and body bytes).
    TooBig(u64),
    /// The input failed (stdin, or an SMTP client breaking the protocol).
    Read(std::io::Error),
    /// The message holds a NUL octet (in a header field or the body): read whole, not
    /// queued. RFC 5321 §4.5.2 and RFC 5322 §2.1 allow no NUL in a message, and sendmail
    /// refuses it (`NUL byte not allowed`).
    Nul,
}

/// Write a new entry's envelope, the added and the user's headers and the body read from
/// `reader` (not committed). Returns the envelope text as written. Shared by the command
/// line and the SMTP server.
///
/// The body type is settled from what was read: a message declared `8BITMIME` (`-B`,
/// `BODY=`) whose octets are all 7-bit is queued as `7BIT`, as sendmail queues it; one
/// declared `7BIT` that holds 8-bit octets is queued as `8BITMIME`, so that no relay is
/// ever told `BODY=7BIT` over 8-bit data (sendmail strips the 8th bit of every octet
/// instead, in the header and the body: compat-tests `content-8bit-B7bit-odi`; DIFFERENCES.md).
/// A message holding a NUL octet is read to its end and refused ([`StoreError::Nul`]).
pub fn write_entry<R: BufRead>(
    spool: &Spool,
    entry: &mut crate::spool::NewEntry,
    envelope: &Envelope,
    added: &[Header],
    head: &message::Head,
    reader: &mut LineReader<R>,
    max_size: Option<u64>,
) -> Result<String, StoreError> {
    let write_err = |e: std::io::Error| {
        StoreError::Fatal(Fatal::io(
            &e,
            format!(
                "cannot write queue file {}: {}",
                spool.dir.display(),
                crate::config::io_text(&e)
            ),
        ))
    };
    let user_header_bytes: u64 = head.headers.iter().map(|h| h.raw.len() as u64).sum();
    let mut envelope_text = envelope.to_text();
    // Room for `8BITMIME` in place of `7BIT`, should the message turn out 8-bit (the
    // envelope parser drops the blanks after the value).
    if envelope.body_type.as_deref() == Some("7BIT") {
        envelope_text = envelope_text.replacen("\nbody 7BIT\n", "\nbody 7BIT    \n", 1);
    }
    {
        let w = entry.writer();
        w.write_all(envelope_text.as_bytes()).map_err(write_err)?;
        for h in added.iter().chain(head.headers.iter()) {
            w.write_all(&h.raw).map_err(write_err)?;
        }
        w.write_all(b"\n").map_err(write_err)?;
        let mut body_so_far = 0u64;
        if let Some(first) = &head.first_body_line {
            w.write_all(first).map_err(write_err)?;
            body_so_far = first.len() as u64;
        }
        if let Some(max) = max_size
            && user_header_bytes + body_so_far > max
        {
            return Err(StoreError::TooBig(max));
        }
        if !head.ended {
            match message::copy_body(reader, w, max_size, user_header_bytes + body_so_far) {
                Ok(_) => {}
                Err(BodyError::Read(e)) => return Err(StoreError::Read(e)),
                Err(BodyError::Write(e)) => return Err(write_err(e)),
                Err(BodyError::TooBig(max)) => return Err(StoreError::TooBig(max)),
            }
        }
    }
    if reader.saw_nul {
        return Err(StoreError::Nul);
    }
    // sendmail queues a message declared 8BITMIME whose body is 7-bit as 7BIT.
    if envelope.body_type.as_deref() == Some("8BITMIME")
        && !reader.saw_8bit
        && let Some(at) = envelope_text.find("\nbody 8BITMIME\n")
    {
        entry
            .patch((at + "\nbody ".len()) as u64, b"7BIT    ")
            .map_err(write_err)?;
    }
    // Never BODY=7BIT over 8-bit octets: such a message is 8BITMIME.
    if envelope.body_type.as_deref() == Some("7BIT")
        && reader.saw_8bit
        && let Some(at) = envelope_text.find("\nbody 7BIT    \n")
    {
        entry
            .patch((at + "\nbody ".len()) as u64, b"8BITMIME")
            .map_err(write_err)?;
    }
    Ok(envelope_text)
}

/// What a submission says of its recipients, in order, each line with the place of the
/// argument (or header field) that gave it: `-v`'s expansion lines, each before the
/// refusals of the arguments after the one that gave it, when `refusals` are said
/// (ErrorMode `p`; the lines are held for this only then).
fn said_in_order(
    refused: &[Refused],
    verbose_notes: &[(usize, String)],
    refusals: bool,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut notes = verbose_notes.iter().peekable();
    if refusals {
        for r in refused.iter().filter(|r| !r.quiet) {
            while let Some((given, n)) = notes.next_if(|(given, _)| *given <= r.list) {
                out.push((*given, crate::text::printable_lines(n).into_owned()));
            }
            out.push((r.list, r.text.clone()));
        }
    }
    out.extend(notes.map(|(given, n)| (*given, crate::text::printable_lines(n).into_owned())));
    out
}

/// Print a line for the user; logged (-X) too when `log` (not logged before).
fn say_logged(text: &str, log: bool) {
    if log {
        crate::traffic::told(text);
    }
    crate::outln!("{text}");
}

/// Report recipients refused at submission the way `ErrorMode` says (sendmail's
/// meanings): `p` print them (stdout) and save a copy of the message in
/// `~/dead.letter` when the sender is local (`sender_local`), else mail them back as
/// well; `q` say nothing; `m` and `w` (no terminal to write to) mail them
/// back; `e` mail them back and exit 0 (with VERP, one report per refused recipient, to
/// the sender made for it, naming it alone). Returns the exit status, the ids of the
/// reports queued, each with whether it returns the header only, with `say_later`
/// the `Saved message` line to print after the delivery, and whether a report could be
/// queued neither to its sender nor to the postmaster (nothing holds it then). `host` is the mail
/// name, the report's MTA, as in the deliverer's reports. The message is `length` bytes
/// of `message_file` from `data_offset`, or the rest of the file. `handed`: the report
/// is the delivery's to queue (the entry's state holds it): nothing is mailed here.
#[allow(clippy::too_many_arguments)]
fn refused_recipients(
    settings: &Settings,
    full_bounce: bool,
    sender_local: bool,
    host: &str,
    spool: &Spool,
    env: &Envelope,
    refused: &[Refused],
    message_file: &std::path::Path,
    data_offset: u64,
    length: Option<u64>,
    say_later: bool,
    (handed, owners_handed): (bool, bool),
    owned: &[(String, String)],
    reported: bool,
    verbose_notes: &[(usize, String)],
    argv_lists: usize,
) -> (Sysexit, Vec<(String, bool)>, Option<String>, bool) {
    // The first refusal that decides it, as in sendmail: an unknown user after an
    // unbalanced address still does (recorded: `include-unbalanced-empty-odi`,
    // `include-empty-unbalanced-odi`, `alias-empty-unbalanced-odi`), not after an
    // address refused as no address (`alias-bad-order-odi`).
    let code = Sysexit::of_refusals(refused.iter().map(|r| (r.code, r.sets_status)));
    // One line each, as sendmail logs them: `<id>: nosuchuser... User unknown`.
    for r in refused {
        log::info!("{}: {}", env.id, r.text);
    }
    // The message (header block and body) after the envelope section.
    let open_message = || -> std::io::Result<std::io::Take<std::fs::File>> {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(message_file)?;
        f.seek(std::io::SeekFrom::Start(data_offset))?;
        Ok(f.take(length.unwrap_or(u64::MAX)))
    };
    let mode = settings.error_mode.unwrap_or('p');
    // What the command line's addresses gave was logged (-X) before the message.
    for (list, l) in said_in_order(refused, verbose_notes, mode == 'p') {
        say_logged(&l, list >= argv_lists);
    }
    if mode == 'q' && !reported {
        return (code, Vec::new(), None, false);
    }
    let mut unsaved = None;
    // NOTIFY without FAILURE: said, and no report to anyone.
    if !reported {
        let status = if mode == 'e' { Sysexit::Ok } else { code };
        return (status, Vec::new(), None, false);
    }
    // A list owner's refusals are mailed to the owner, one report each, never to the
    // sender, nor kept in the sender's dead.letter (recorded: `owner-list-unknown-odq-q`).
    let (senders, owners) = by_owner(refused, env);
    let refused = &senders[..];
    let mut reports = Vec::new();
    let mut unreturned = None;
    if !owners_handed {
        for (owner, list) in &owners {
            let original = Envelope {
                sender: owner.clone(),
                ..env.clone()
            };
            // With VERP one report per refused member, to the owner's address for it,
            // as the delivery's refusals are reported (README, VERP).
            let groups: Vec<(String, Vec<Refused>, Vec<String>)> = match env.verp.as_deref() {
                Some(d) => list
                    .iter()
                    .map(|r| {
                        let to = crate::verp::sender(
                            &qualified(owner, host),
                            d,
                            &qualified(r.address.trim_start_matches('\\'), host),
                        );
                        (to, vec![r.clone()], report_notes(std::slice::from_ref(r)))
                    })
                    .collect(),
                None => vec![(owner.clone(), list.clone(), owner_notes(owner, list, owned))],
            };
            // An owner who is the message's sender is told of its lists as delivered
            // (sendmail's list address stays in the sender's envelope, delivered to
            // the list: recorded `owner-list-self-unknown-q`).
            let lists: Vec<crate::dsn::RcptReport> = if *owner == env.sender && env.verp.is_none() {
                owned
                    .iter()
                    .filter(|(_, o)| o == owner)
                    .map(|(list, _)| list_delivered(list, host, env))
                    .collect()
            } else {
                Vec::new()
            };
            for (to, list, notes) in groups {
                match mail_refusals(
                    settings,
                    full_bounce,
                    host,
                    spool,
                    &original,
                    (&lists, &list),
                    Some(to),
                    notes,
                    &open_message,
                ) {
                    Ok(r) => reports.push(r),
                    Err(why) => unreturned = Some(why),
                }
            }
        }
    }
    // ErrorMode `q` keeps the sender's report back, not an owner's: a list's owner
    // is told whatever the mode (recorded: `owner-list-oeq-unknown-odi`).
    if refused.is_empty() || mode == 'q' {
        let status = if mode == 'e' { Sysexit::Ok } else { code };
        return (status, reports, None, unreturned.is_some());
    }
    if mode == 'p' {
        // The user at the terminal keeps the message; a sender elsewhere
        // (`-f a@example.com`) gets it mailed back, as sendmail does (compat case
        // bounce-local-unknown) and as the deliverer does.
        // When ~/dead.letter cannot be written the message is mailed back instead, as
        // sendmail's savemail falls back from its dead.letter state to mailing it.
        if sender_local {
            match save_dead_letter(env, open_message, say_later) {
                Ok(note) => return (code, reports, note, unreturned.is_some()),
                Err(why) => unsaved = Some(why),
            }
        }
    }
    if handed {
        return (
            if mode == 'e' { Sysexit::Ok } else { code },
            reports,
            None,
            unreturned.is_some(),
        );
    }
    // To the sender; with VERP to each refused recipient's own sender, one report each
    // naming it alone.
    let mut groups: Vec<(Option<String>, Vec<Refused>)> = Vec::new();
    for r in refused {
        let to = match env.verp.as_deref() {
            _ if env.sender.is_empty() => None,
            Some(d) => Some(crate::verp::sender(
                &qualified(&env.sender, host),
                d,
                &qualified(r.address.trim_start_matches('\\'), host),
            )),
            None => Some(env.sender.clone()),
        };
        match groups.iter_mut().find(|(t, _)| *t == to) {
            Some((_, v)) => v.push(r.clone()),
            None => groups.push((to, vec![r.clone()])),
        }
    }
    // A report that cannot be queued to its sender goes to the postmaster (sendmail's
    // savemail: the sender, then the postmaster). When neither can be queued nothing
    // holds the report: `unreturned`, for the caller to act on.
    // Mailed instead of saved: the whole message goes back, as dead.letter would have
    // kept it (unless the sender asked for the header only).
    let full_bounce = full_bounce || unsaved.is_some();
    for (to, refused) in groups {
        let real = to.is_some();
        let mail = |to: Option<String>| {
            mail_refusals(
                settings,
                full_bounce,
                host,
                spool,
                env,
                (&[], &refused),
                to,
                report_notes(&refused),
                &open_message,
            )
        };
        match mail(to) {
            Ok(r) => reports.push(r),
            Err(_) if !real => {}
            Err(_) => match mail(Some("postmaster".to_string())) {
                Ok(r) => reports.push(r),
                Err(why) => unreturned = Some(why),
            },
        }
    }
    if let Some(why) = &unsaved {
        let then = match (&unreturned, reports.is_empty()) {
            (None, false) => "returned to the sender",
            _ => "not returned either",
        };
        if let Some(line) = crate::mbox::dead_letter_failed(why, then) {
            crate::tell!("{line}");
        }
    }
    let status = if mode == 'e' { Sysexit::Ok } else { code };
    (status, reports, None, unreturned.is_some())
}

/// Whether a recipient refused at submission with this NOTIFY (`-N`; `None`: not
/// given) is reported: unless NOTIFY names NEVER or lacks FAILURE (RFC 3461 §4.1).
pub fn failure_wanted(notify: Option<&str>) -> bool {
    let mut probe = Recipient::new(String::new());
    probe.notify = notify.map(str::to_string);
    crate::dsn::wanted(&probe, crate::dsn::Kind::Failure)
}

/// Record in entry `id`'s state the report owed on `refused` (see
/// `spool::entry::State::owed`); false when it could not be written.
fn owe_report(
    spool: &Spool,
    id: &str,
    refused: &[Refused],
    owned: &[(String, String)],
    host: &str,
    env: &Envelope,
) -> bool {
    let Ok(Some(mut locked)) = spool.lock_entry(id) else {
        return false;
    };
    let mut state = locked.entry.state.clone();
    let (senders, owners) = by_owner(refused, env);
    state.owed = report_recipients(&senders, host, env);
    state.owed_notes = report_notes(&senders);
    (state.owner_owed, state.owner_notes) = owner_reports(&owners, owned, host, env);
    match locked.record_state(state) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("{id}: {}", e.message);
            false
        }
    }
}

/// `refused` split by whom their report goes to: the message's sender's (in their
/// order), and each list owner's ([`Refused::owner`], in the order first met). A
/// message from `<>` has no owner's sender (`Envelope::owner_sender`): all are its.
fn by_owner(refused: &[Refused], env: &Envelope) -> (Vec<Refused>, Vec<(String, Vec<Refused>)>) {
    let mut senders = Vec::new();
    let mut owners: Vec<(String, Vec<Refused>)> = Vec::new();
    for r in refused {
        match r.owner.as_ref().filter(|_| !env.sender.is_empty()) {
            None => senders.push(r.clone()),
            Some(o) => match owners.iter_mut().find(|(k, _)| k == o) {
                Some((_, v)) => v.push(r.clone()),
                None => owners.push((o.clone(), vec![r.clone()])),
            },
        }
    }
    (senders, owners)
}

/// The transcript of `owner`'s report on its refused targets `refused`: their lines,
/// then sendmail's `Message delivered to mailing list LIST` for each of its lists
/// expanded (`owned`), as sendmail's transcript has it after the list's expansion
/// (recorded: `owner-list-unknown-odi`). Only the owner's own lists: another list's
/// lines are not its to read.
fn owner_notes(owner: &str, refused: &[Refused], owned: &[(String, String)]) -> Vec<String> {
    let mut notes = report_notes(refused);
    notes.extend(
        owned
            .iter()
            .filter(|(_, o)| o == owner)
            .map(|(list, _)| format!("Message delivered to mailing list {list}")),
    );
    notes
}

/// What the state keeps for the owners' reports the delivery that follows sends
/// ([`crate::spool::entry::State::owner_owed`], `owner_notes`): each owner's refused
/// targets and transcript lines, also for an owner none of whose targets was refused
/// here (its `Message delivered to mailing list` line goes with what the delivery
/// refuses).
#[allow(clippy::type_complexity)]
fn owner_reports(
    owners: &[(String, Vec<Refused>)],
    owned: &[(String, String)],
    host: &str,
    env: &Envelope,
) -> (Vec<(String, crate::dsn::RcptReport)>, Vec<(String, String)>) {
    let mut who: Vec<&str> = owners.iter().map(|(o, _)| o.as_str()).collect();
    if !env.sender.is_empty() {
        for (_, o) in owned {
            if !who.contains(&o.as_str()) {
                who.push(o);
            }
        }
    }
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for o in who {
        let list: &[Refused] = owners
            .iter()
            .find(|(k, _)| k == o)
            .map_or(&[], |(_, v)| v.as_slice());
        let original = Envelope {
            sender: o.to_string(),
            ..env.clone()
        };
        entries.extend(
            report_recipients(list, host, &original)
                .into_iter()
                .map(|r| (o.to_string(), r)),
        );
        notes.extend(
            owner_notes(o, list, owned)
                .into_iter()
                .map(|n| (o.to_string(), n)),
        );
    }
    (entries, notes)
}

/// `address` with `@host` when it has no domain.
fn qualified(address: &str, host: &str) -> String {
    if address.contains('@') {
        address.to_string()
    } else {
        format!("{address}@{host}")
    }
}

/// The report's entry for a list with an owner, delivered to the list
/// (`Action: delivered (to mailing list)`, 2.0.0), as sendmail's report to an owner who
/// sent the message names it.
fn list_delivered(list: &str, host: &str, env: &Envelope) -> crate::dsn::RcptReport {
    let address = qualified(list, host);
    crate::dsn::RcptReport {
        final_recipient: address.clone(),
        original_recipient: None,
        action: crate::dsn::LIST_DELIVERED,
        status: crate::status::OK,
        remote_mta: None,
        diagnostic: None,
        diagnostic_type: "X-Unix",
        transcript: Vec::new(),
        listed: None,
        comment: None,
        actual_recipient: Some(address),
        expanded_from: None,
        last_attempt: env.created,
    }
}

/// Queue the failure report on `refused` to `sender` (None: the null sender, whom no
/// report goes to), after the entries `first`: its id and whether it returns the header
/// only, or why not (logged).
#[allow(clippy::too_many_arguments)]
fn mail_refusals(
    settings: &Settings,
    full_bounce: bool,
    host: &str,
    spool: &Spool,
    env: &Envelope,
    (first, refused): (&[crate::dsn::RcptReport], &[Refused]),
    sender: Option<String>,
    notes: Vec<String>,
    open_message: &dyn Fn() -> std::io::Result<std::io::Take<std::fs::File>>,
) -> Result<(String, bool), String> {
    let mut report = crate::dsn::Report {
        kind: crate::dsn::Kind::Failure,
        host,
        original: env,
        recipients: first
            .iter()
            .cloned()
            .chain(report_recipients(refused, host, env))
            .collect(),
        notes,
        headers_only: crate::dsn::headers_only(
            env.ret.as_deref(),
            settings.privacy("nobodyreturn"),
            full_bounce,
        ),
        waited: None,
        returned_by: None,
        no_actual_recipient: settings.privacy("noactualrecipient"),
        eight_bit: false,
    };
    let headers_only = report.headers_only;
    report.eight_bit = open_message()
        .is_ok_and(|mut m| crate::dsn::returned_has_8bit(&mut m, headers_only, env.header_bytes));
    let queued = match (&sender, open_message()) {
        (Some(to), Ok(mut m)) => report
            .queue(spool, to, false, &mut m)
            .map_err(|f| f.message),
        (None, _) => Err("the sender is <>".into()),
        (_, Err(e)) => Err(crate::config::io_text(&e)),
    };
    match queued {
        Ok(id) => Ok((id, headers_only)),
        Err(why) => {
            log::error!("{}: errors could not be mailed back: {why}", env.id);
            Err(why)
        }
    }
}

/// The report's entry for each recipient refused at submission.
fn report_recipients(
    refused: &[Refused],
    host: &str,
    env: &Envelope,
) -> Vec<crate::dsn::RcptReport> {
    // A list's targets refused as no address come last, in queue order (recorded:
    // `alias-bad-order-odi`, `alias-bad-order-nested-odq`).
    // A program named directly more than once is one entry (its transcript line is
    // said each time: [`report_notes`]).
    let mut direct_seen = std::collections::HashSet::new();
    let others = refused
        .iter()
        .filter(|r| r.syntax.is_none())
        .filter(|r| !r.direct || direct_seen.insert(unquoted(&r.address)));
    let mut syntax: Vec<&Refused> = refused.iter().filter(|r| r.syntax.is_some()).collect();
    syntax.sort_by_key(|r| r.syntax.map(|(_, place)| place));
    others
        .chain(syntax)
        .map(|r| {
            let status = match r.code {
                _ if r.syntax.is_some() => r.syntax.map_or(crate::status::PERM, |s| s.0),
                _ if r.is_loop() => crate::status::LOOP,
                _ if r.list_file.is_some() => r.list_file.unwrap_or(crate::status::PERM),
                Sysexit::NoUser => crate::status::BAD_MAILBOX,
                // Only a looping message is refused as unavailable.
                Sysexit::Unavailable => crate::status::LOOP,
                _ => crate::status::PERM,
            };
            // A program, file or list file named directly is told by what it names:
            // its quotes are the caller's spelling, which only the list of addresses
            // keeps (recorded: `argv-prog-quoted-twice-remote-odi`,
            // `argv-include-quoted-odi`).
            let address = if r.direct {
                unquoted(&r.address)
            } else {
                r.address.as_str()
            };
            // sendmail names a refused list file's path as a local address
            // (`X-Actual-Recipient: rfc822; /path@host`).
            let path = address
                .strip_prefix(":include:")
                .filter(|_| r.list_file.is_some());
            let qualified = if let Some(p) = path {
                format!("{p}@{host}")
            } else if address.is_empty()
                || address.contains('@')
                || address.starts_with(['|', '/', '\\', ':'])
                || address.trim_start_matches('"').starts_with(['|', '/'])
            {
                address.to_string()
            } else {
                format!("{address}@{host}")
            };
            crate::dsn::RcptReport {
                // A target an alias led to: the alias is the Final-Recipient, the
                // target the X-Actual-Recipient (recorded: `bounce-exp-unknown-user-odi`).
                // A program or file named directly: qualified as a local user's
                // name is, the program or file itself the actual recipient.
                final_recipient: match &r.expanded {
                    Some((_, f)) => f.clone(),
                    None if r.direct && path.is_none() && !address.contains('@') => {
                        format!("{address}@{host}")
                    }
                    None => qualified.clone(),
                },
                actual_recipient: match &r.expanded {
                    Some(_) => Some(qualified.clone()),
                    None if r.direct && path.is_none() => Some(qualified.clone()),
                    None => None,
                },
                expanded_from: r.expanded.as_ref().map(|(c, _)| c.clone()),
                original_recipient: None,
                action: "failed",
                status,
                remote_mta: None,
                // sendmail's form for an unknown user (bounce-local-unknown); the
                // other refusals keep their text.
                // A loop and a refused list file are told in the transcript only,
                // as sendmail tells them (compat cases loop-alias-only,
                // bounce-exp-inc-writable-odi).
                diagnostic: if r.is_loop() || r.list_file.is_some() || r.syntax.is_some() {
                    None
                } else if r.code == Sysexit::NoUser {
                    Some(format!("550 {status} {}", r.reason()))
                } else {
                    Some(r.text.clone())
                },
                diagnostic_type: "X-Unix",
                transcript: Vec::new(),
                listed: Some(r.address.clone()),
                comment: None,
                last_attempt: env.created,
            }
        })
        .collect()
}

/// A program, file or list file named directly, without the quotes it was written in
/// (`"|/bin/true"` is `|/bin/true`); any other address as it is.
fn unquoted(address: &str) -> &str {
    address
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .filter(|a| a.starts_with(['|', '/', ':']) && !a.contains('"'))
        .unwrap_or(address)
}

/// sendmail's transcript of a report on recipients refused at submission: each refusal
/// repeated with its code (compat case bounce-local-unknown).
fn report_notes(refused: &[Refused]) -> Vec<String> {
    report_notes_placed(refused)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

/// [`report_notes`], each line with its refusal's place ([`Refused::list`]).
fn report_notes_placed(refused: &[Refused]) -> Vec<(usize, String)> {
    refused
        .iter()
        .filter_map(|r| {
            let line = if r.is_loop() {
                Some(format!("554 {} {}", crate::status::LOOP, r.text))
            } else if let Some(st) = r.list_file {
                Some(format!("550 {st} {}", r.text))
            } else if let Some((st, _)) = r.syntax {
                Some(format!("553 {st} {}", r.text))
            } else if r.code == Sysexit::NoUser {
                Some(format!("550 {} {}", crate::status::BAD_MAILBOX, r.text))
            } else {
                None
            };
            line.map(|l| (r.list, l))
        })
        .collect()
}

/// The refusals' transcript lines (`refused`) with the expansion's lines that come
/// after the first of them in the order the recipients were given (`expansion`, each
/// with its recipient's place), as sendmail's one transcript has them: `nosuch1...
/// User unknown`, `list3... expanded to multiple addresses`, `nosuch3... User unknown`
/// for `nosuch1 list3 nosuch3` (recorded: `report-order-unknown-list-receipt-odi`). A
/// recipient's own expansion lines go before its refusals; the expansion's lines before
/// the first refusal stay in `expansion`, which the report puts first.
fn in_given_order(
    refused: Vec<(usize, String)>,
    expansion: &mut Vec<(usize, String)>,
) -> Vec<String> {
    let Some(first) = refused.iter().map(|(p, _)| *p).min() else {
        return Vec::new();
    };
    let (later, before): (Vec<_>, Vec<_>) = std::mem::take(expansion)
        .into_iter()
        .partition(|(p, _)| *p > first);
    *expansion = before;
    let mut all: Vec<(usize, bool, String)> = refused
        .into_iter()
        .map(|(p, l)| (p, true, l))
        .chain(later.into_iter().map(|(p, l)| (p, false, l)))
        .collect();
    // Stable: each kind keeps its own order within a place.
    all.sort_by_key(|(p, is_refusal, _)| (*p, *is_refusal));
    all.into_iter().map(|(_, _, l)| l).collect()
}

/// Save the message in the caller's `~/dead.letter` (sendmail's ErrorMode p), with the
/// caller's own privileges, and say so as sendmail does.
/// `later`: the line is returned, not printed (the deliverer prints it after the
/// delivery, as sendmail does: compat case reason-local-unknown-mixed-v).
/// Err: why it was not saved (logged), for the caller to mail the message back.
/// The message is opened with the spool's group; the file is written with the caller's
/// own group, and a set-group-id program takes its group back after, to queue what follows.
fn save_dead_letter(
    env: &Envelope,
    open_message: impl Fn() -> std::io::Result<std::io::Take<std::fs::File>>,
    later: bool,
) -> Result<Option<String>, String> {
    // The spool's copy is opened with the spool's group, before giving it up: the
    // caller's own group cannot reach the spool.
    let res = open_message()
        .map_err(|e| crate::config::io_text(&e))
        .and_then(|mut m| {
            crate::privs::as_real_group(|| {
                crate::mbox::save_dead_letter(&env.sender, env.created, &env.taken_fields, &mut m)
            })
            .map_err(|e| e.desc().to_string())
            .and_then(|r| r)
        });
    match res {
        Ok(path) => {
            let p = path.display();
            let line = format!("{p}... Saved message in {p}");
            if later {
                return Ok(Some(line));
            }
            crate::tell!("{line}");
            Ok(None)
        }
        Err(e) => {
            log::warn!("{}: cannot save in dead.letter: {e}", env.id);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusals' lines and the expansion's lines in the order the recipients were
    /// given; the expansion's lines before the first refusal stay for the report's
    /// head (recorded: `report-order-unknown-list-receipt-odi`).
    #[test]
    fn refusals_and_expansion_lines_in_given_order() {
        let lines = |v: &[(usize, &str)]| -> Vec<(usize, String)> {
            v.iter().map(|(p, l)| (*p, l.to_string())).collect()
        };
        let mut expansion = lines(&[(0, "l0... expanded"), (1, "l1... expanded"), (3, "l3...")]);
        let owed = in_given_order(
            lines(&[(1, "550 n1... User unknown"), (2, "550 n2... User unknown")]),
            &mut expansion,
        );
        assert_eq!(
            owed,
            ["550 n1... User unknown", "550 n2... User unknown", "l3..."]
        );
        assert_eq!(
            expansion,
            lines(&[(0, "l0... expanded"), (1, "l1... expanded")])
        );
        let mut expansion = lines(&[(2, "l2... expanded")]);
        let owed = in_given_order(lines(&[(0, "a"), (2, "b"), (4, "c")]), &mut expansion);
        assert_eq!(owed, ["a", "l2... expanded", "b", "c"]);
        assert!(expansion.is_empty());
        // No refusal: every line stays where it was.
        let mut expansion = lines(&[(2, "x")]);
        assert!(in_given_order(Vec::new(), &mut expansion).is_empty());
        assert_eq!(expansion, lines(&[(2, "x")]));
    }

    #[test]
    fn expansion_lines_as_sendmails_transcript() {
        let mut r = Recipient::new("list3");
        let owned = vec![
            ("inner".to_string(), "io@example.org".to_string()),
            ("list3".to_string(), "lo@example.org".to_string()),
        ];
        // Without NOTIFY=SUCCESS: the owners' lines alone, innermost first.
        assert_eq!(
            expansion_lines(&r, &owned, 3),
            vec![
                "Message delivered to mailing list inner",
                "Message delivered to mailing list list3"
            ]
        );
        r.notify = Some("SUCCESS,DELAY".into());
        assert_eq!(
            expansion_lines(&r, &[], 2),
            vec!["list3... expanded to multiple addresses"]
        );
        // One address added (a one-to-one alias, or a member named before): no line.
        assert!(expansion_lines(&r, &[], 1).is_empty());
        r.notify = Some("NEVER".into());
        assert!(expansion_lines(&r, &[], 2).is_empty());
    }

    #[test]
    fn masquerade_takes_local_f_senders_only() {
        let host = "hamlet.example";
        assert_eq!(masqueradable("root", host), Some("root"));
        assert_eq!(masqueradable("www@hamlet.example", host), Some("www"));
        assert_eq!(masqueradable("www@HAMLET.example", host), Some("www"));
        assert_eq!(masqueradable("www@localhost", host), Some("www"));
        assert_eq!(masqueradable("bob@example.org", host), None);
        assert_eq!(masqueradable("", host), None);
        assert_eq!(masqueradable("<>", host), None);
        assert_eq!(masqueradable("@hamlet.example", host), None);
        assert_eq!(masquerade("percolator", "www", host), "www@percolator");
    }

    #[test]
    fn masquerade_forms_as_dma() {
        assert_eq!(masquerade("john@", "fish", "hamlet"), "john@hamlet");
        assert_eq!(
            masquerade("percolator", "fish", "hamlet"),
            "fish@percolator"
        );
        assert_eq!(masquerade("herb@ert", "fish", "hamlet"), "herb@ert");
        assert_eq!(masquerade("@dom", "fish", "hamlet"), "fish@dom");
    }

    #[test]
    fn display_names_quoted_when_needed() {
        assert_eq!(display_name("Joe Q"), "Joe Q");
        assert_eq!(display_name("Doe, John"), "\"Doe, John\"");
        assert_eq!(display_name("J. \"Q\""), "\"J. \\\"Q\\\"\"");
        // Already a phrase: as given (F-quoted-phrase, F-parens, F-quoted-whole, F-8bit).
        for p in [
            "John \"Q\" Public",
            "John (Jack) Public",
            "\"John Public\"",
            "J\u{f6}rg M\u{fc}ller",
            "a (nested (comment)) b",
            "\"a\\\"b\"",
            " ",
        ] {
            assert_eq!(display_name(p), p, "{p}");
        }
        // Not a phrase: one quoted string (F-dots, F-comma, F-angle, F-at, F-colon,
        // F-semicolon, F-unbalanced-quote); a backslash is escaped, never lost.
        for (name, want) in [
            ("Joe Q. Public", "\"Joe Q. Public\""),
            ("John <x>", "\"John <x>\""),
            ("john@x", "\"john@x\""),
            ("Dept: sales", "\"Dept: sales\""),
            ("a;b", "\"a;b\""),
            ("John \"Q Public", "\"John \\\"Q Public\""),
            ("a (b", "\"a (b\""),
            ("a) b", "\"a) b\""),
            ("a\\b", "\"a\\\\b\""),
            ("a\nBcc: x", "\"a Bcc: x\""),
        ] {
            assert_eq!(display_name(name), want, "{name}");
        }
    }

    #[test]
    fn bs_warning_unless_trusted_or_own_address() {
        let h = "vm.example.test";
        let warned = |uid, login, sender| bs_warning(uid, login, sender, h).map(|w| w.raw);
        let want = Some(
            b"X-Authentication-Warning: vm.example.test: nobody owned process doing -bs\n".to_vec(),
        );
        assert_eq!(warned(65534, "nobody", "root@vm.example.test"), want);
        assert_eq!(warned(65534, "nobody", ""), want);
        assert_eq!(warned(65534, "nobody", "nobody@example.org"), want);
        assert_eq!(warned(65534, "nobody", "nobody@vm.example.test"), None);
        assert_eq!(warned(65534, "nobody", "nobody"), None);
        assert_eq!(warned(0, "root", "alice@example.org"), None);
        assert_eq!(warned(8, "smmsp", "alice@example.org"), None);
    }

    #[test]
    fn argv_split_at_commas() {
        let (r, refused) = argv_recipients(
            &["a@x, b@y".into(), "Carol <c@z>".into()],
            &mut address::OldStyle(true),
        )
        .unwrap();
        assert!(refused.is_empty());
        let a: Vec<&str> = r.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(a, ["b@y", "a@x", "c@z"]);
        let (d, _) = dedup(r, &|_| true);
        assert_eq!(d[2].display.as_deref(), Some("Carol <c@z>"));
        assert_eq!(d[0].display, None);
        assert!(argv_recipients(&["a@x\nRCPT".into()], &mut address::OldStyle(true)).is_err());
    }

    /// Each argument is a list of its own, parsed in written order: its syntax faults
    /// said in that order, before the next argument's (recorded: `argv-bad-order-odq`).
    #[test]
    fn argv_syntax_faults_in_written_order_a_list_at_a_time() {
        let (r, refused) = argv_recipients(
            &["h1@, nosuch1, h2@".into(), "h3@".into(), "ok@x".into()],
            &mut address::OldStyle(false),
        )
        .unwrap();
        let said: Vec<(&str, usize)> = refused.iter().map(|r| (r.text.as_str(), r.list)).collect();
        assert_eq!(
            said,
            [
                ("h1@... Hostname required", 0),
                ("h2@... Hostname required", 0),
                ("h3@... Hostname required", 1),
            ]
        );
        let lists: Vec<(&str, usize)> = r.iter().map(|l| (l.address.as_str(), l.list)).collect();
        assert_eq!(lists, [("nosuch1", 0), ("ok@x", 2)]);
    }

    /// A command-line address that is no address decides the exit status when it is
    /// said first, as a list's target does (recorded: `argv-bad-first-odq`, 64 before
    /// an unknown user); an unbalanced one does not (`addr-unbalanced-angle`).
    #[test]
    fn argv_syntax_fault_said_first_decides_the_status() {
        let (_, refused) = argv_recipients(
            &["h1@".into(), "a@@b".into(), "x@example.org (y".into()],
            &mut address::OldStyle(false),
        )
        .unwrap();
        let decides: Vec<bool> = refused.iter().map(|r| r.sets_status).collect();
        assert_eq!(decides, [true, true, false]);
        let said = refused.iter().map(|r| (r.code, r.sets_status));
        let then_unknown = said.chain([(Sysexit::NoUser, true)]);
        assert_eq!(Sysexit::of_refusals(then_unknown), Sysexit::Usage);
    }
    /// A command-line address refused as no address is reported as a list's target
    /// refused so is: its RFC 3463 status, no Diagnostic-Code, its `553` transcript
    /// line, after the other refused recipients (recorded: `argv-syntax-reject5-odi`,
    /// `argv-syntax-unknown-oee-odi`, `argv-all-bad-odi`).
    #[test]
    fn argv_syntax_fault_reported_as_a_list_target_is() {
        let (_, mut refused) = argv_recipients(
            &["a@@b.example".into(), "h@".into()],
            &mut address::OldStyle(false),
        )
        .unwrap();
        let mut unknown = refused[0].clone();
        unknown.address = "nosuch".into();
        unknown.text = "nosuch... User unknown".into();
        unknown.code = Sysexit::NoUser;
        unknown.syntax = None;
        refused.insert(1, unknown);
        let env = Envelope::default();
        let report = report_recipients(&refused, "host.example", &env);
        let rows: Vec<(&str, String, Option<&str>)> = report
            .iter()
            .map(|r| {
                (
                    r.final_recipient.as_str(),
                    r.status.to_string(),
                    r.diagnostic.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "nosuch@host.example",
                    "5.1.1".to_string(),
                    Some("550 5.1.1 User unknown")
                ),
                ("a@@b.example", "5.1.3".to_string(), None),
                ("h@", "5.1.3".to_string(), None),
            ]
        );
        assert_eq!(
            report_notes(&refused),
            [
                "553 5.1.3 a@@b.example... Invalid route address",
                "550 5.1.1 nosuch... User unknown",
                "553 5.1.3 h@... Hostname required",
            ]
        );
    }

    /// A program, file or list file named directly is reported as a list's program
    /// target refused for its owner's shell is: `5.7.1`, no Diagnostic-Code, its `550`
    /// transcript line; a program named twice is one entry with two transcript lines,
    /// its `Final-Recipient:` qualified (recorded: `argv-prog-twice-remote-odi`,
    /// `argv-prog-file-remote-odi`, `argv-include-remote-odi`).
    #[test]
    fn direct_program_reported_once_with_a_line_per_naming() {
        let is_local = |a: &str| !a.contains('@');
        let given = [
            "|/bin/true",
            "|/bin/true",
            "/tmp/f",
            ":include:/tmp/l",
            "ok@x",
        ];
        let (_, refused) = expand_local(
            given.iter().map(|a| Recipient::new(*a)).collect(),
            None,
            &is_local,
            "host.example",
            &|| (65534, 65534),
        );
        let env = Envelope::default();
        let report = report_recipients(&refused, "host.example", &env);
        let rows: Vec<(&str, Option<&str>, String, Option<&str>)> = report
            .iter()
            .map(|r| {
                (
                    r.final_recipient.as_str(),
                    r.actual_recipient.as_deref(),
                    r.status.to_string(),
                    r.diagnostic.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "|/bin/true@host.example",
                    Some("|/bin/true"),
                    "5.7.1".to_string(),
                    None
                ),
                (
                    "/tmp/f@host.example",
                    Some("/tmp/f"),
                    "5.7.1".to_string(),
                    None
                ),
                ("/tmp/l@host.example", None, "5.7.1".to_string(), None),
            ]
        );
        assert_eq!(
            report_notes(&refused),
            [
                "550 5.7.1 |/bin/true... Cannot mail directly to programs",
                "550 5.7.1 |/bin/true... Cannot mail directly to programs",
                "550 5.7.1 /tmp/f... Cannot mail directly to files",
                "550 5.7.1 :include:/tmp/l... Cannot mail directly to :include:s",
            ]
        );
    }
    /// A program or list file named in quotes is what it names: the program quoted and
    /// unquoted is one entry, told without its quotes, and a quoted `:include:` is
    /// refused as a list file, not taken for a user (recorded:
    /// `argv-prog-quoted-twice-remote-odi`, `argv-include-quoted-odi`).
    #[test]
    fn quoted_program_and_list_file_are_what_they_name() {
        let is_local = |a: &str| !a.contains('@');
        let given = [
            "\"|/bin/true\"",
            "|/bin/true",
            "\":include:/tmp/l\"",
            "ok@x",
        ];
        let (out, refused) = expand_local(
            given.iter().map(|a| Recipient::new(*a)).collect(),
            None,
            &is_local,
            "host.example",
            &|| (65534, 65534),
        );
        let kept: Vec<&str> = out.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(kept, ["ok@x"]);
        let env = Envelope::default();
        let report = report_recipients(&refused, "host.example", &env);
        let rows: Vec<(&str, Option<&str>, Option<&str>)> = report
            .iter()
            .map(|r| {
                (
                    r.final_recipient.as_str(),
                    r.actual_recipient.as_deref(),
                    r.listed.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "|/bin/true@host.example",
                    Some("|/bin/true"),
                    Some("\"|/bin/true\"")
                ),
                ("/tmp/l@host.example", None, Some("\":include:/tmp/l\"")),
            ]
        );
        assert_eq!(
            report_notes(&refused),
            [
                "550 5.7.1 \"|/bin/true\"... Cannot mail directly to programs",
                "550 5.7.1 |/bin/true... Cannot mail directly to programs",
                "550 5.7.1 \":include:/tmp/l\"... Cannot mail directly to :include:s",
            ]
        );
    }
}

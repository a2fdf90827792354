//! The aliases file in sendmail's text format, and alias expansion.
//!
//! ```text
//! # comment
//! postmaster: root
//! staff: alice, bob@example.org,
//!        carol                      (a line starting with blanks continues the last one)
//! "quoted name": root
//! list: :include:/etc/mail/list.members
//! archive: /var/mail/archive, "|/usr/local/bin/archiver"
//! ```
//!
//! Reading follows sendmail's `readaliases`: continuation lines are joined with their
//! leading blanks kept (a comment line swallows its continuations too), errors name the
//! file and line, and the summary counts aliases, the longest right-hand side and the
//! bytes of both sides. No binary database is written: the text is read when needed.
//!
//! Expansion is recursive with loop detection. A name that refers to itself from its own
//! alias (`bob: bob, bob@elsewhere`) means the mailbox; `owner-<alias>` (its one address,
//! or its name when it has several) becomes the envelope sender for the recipients
//! `<alias>` expands to; `|command` and `/file` targets run as the
//! owner of the list they came from, which the deliverer replaces by a default user when
//! that is root.
//!
//! Who owns a list, and so with whose rights its `:include:` files are read: the aliases
//! file and an `:include:` file it names belong to their file's owner; a `.forward` belongs
//! to its user. A list that belongs to a user other than root is that user's to write, so
//! the `:include:` files it names are read with that user's rights (the deliverer reads
//! them in a child that has become the user) and what they list belongs to that user too,
//! never to the include file's owner and never to root: a user cannot have the deliverer
//! read a file the user could not read, nor run a command or write a file as anyone else.
//! A list that belongs to root (the aliases file, an include file root owns) names
//! include files no user controls: a root process reads them with DefaultUser's rights
//! (`O DefaultUser`, in the same kind of child; [`read_include_as_default`]), never with
//! its own, as sendmail reads them as DefUid; what they list belongs to the file's owner.
//!
//! List files (`:include:` files and `.forward`) are read by [`read_list_file`]: only a
//! regular file, opened without blocking, and at most [`MAX_LIST_FILE`] octets of it, so
//! that a FIFO, a device or a huge file named in a list cannot stall or exhaust the
//! deliverer. One expansion reads each `:include:` file once and at most
//! [`MAX_INCLUDES`] of them.
//!
//! Any text is an aliases file: a line is an alias (a non-empty name and at least one
//! target) or a problem with its line number, never a panic; lines are cut with
//! `split_at_checked` and `strip_prefix`, never by byte index (the lints below keep it
//! so).

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::message::address;
use crate::status::{self, EnhancedStatus};

/// One alias as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The name as written (quotes removed).
    pub name: String,
    /// The targets, in written order.
    pub targets: Vec<String>,
    pub line: usize,
}

/// What `newaliases` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub count: usize,
    pub longest: usize,
    pub total: usize,
}

/// A parsed aliases file.
#[derive(Clone, Debug, Default)]
pub struct Aliases {
    pub path: PathBuf,
    /// By lower-cased name; a later duplicate replaces an earlier one, with sendmail's
    /// warning (recorded: `bi-aliases-dup-case`).
    map: HashMap<String, Alias>,
    /// The owner of the file: `|command` and `/file` targets run as this user.
    pub owner: u32,
    pub stats: Stats,
    /// Errors and warnings (duplicates), as they were found.
    problems: Vec<Problem>,
    /// The names of the aliases whose lines could not be read (a NUL octet or a byte
    /// order mark on the line or on one of its continuation lines), each with its
    /// problem (`file: line N: ...`): a recipient of that name is deferred, never
    /// delivered as if it had no alias ([`Aliases::broken`]).
    broken: HashMap<String, String>,
    /// Why the file as a whole cannot be used (`FILE: line 3: a NUL octet; the file is
    /// not text`, `cannot open FILE: Permission denied`): every local recipient waits,
    /// as for a line that could not be read ([`Aliases::broken`]), never delivered as if
    /// the file had no alias for her.
    unavailable: Option<String>,
    /// Whether a line of the file may be quoted in its problems: everyone may read it
    /// ([`crate::text::readable_by_all`]).
    quoted: bool,
}

/// An error or warning about one line: `file: line N: message`, in sendmail's words.
#[derive(Clone, Debug)]
struct Problem {
    line: usize,
    text: String,
    warning: bool,
}

/// The name of the alias a line that is not text would define: what comes before its
/// first colon, up to the fault (`lst: a, b\0c` and `lst\0x: d` name `lst`), lower
/// case, without quotes; `None` for a comment or a line with no name before the fault.
fn broken_name(raw: &str) -> Option<String> {
    if raw.starts_with('#') {
        return None;
    }
    let head = raw.split(['\0', '\u{feff}']).next()?;
    let name = head.split(':').next()?.trim().trim_matches('"');
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Split a right-hand side at its top-level commas; a target quoted as a whole
/// (`"|/usr/bin/prog arg"`) loses its quotes.
pub fn split_targets(rhs: &str) -> Vec<String> {
    address::split_top_level(rhs)
        .into_iter()
        .map(|t| {
            let t = t.trim().to_string();
            if let Some(inner) = unquoted(&t)
                && (inner.starts_with(['|', '/']) || inner.starts_with(":include:"))
            {
                return inner.replace("\\\"", "\"");
            }
            t
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The targets of a list file (`:include:` or `.forward`): one or more per line,
/// separated by commas; blank lines and `#` comments skipped. In sendmail's queue
/// order: the lines in order, each line's targets in reverse, since sendmail reads such
/// a file a line at a time and queues each line as one list, whose items it reverses
/// (recorded from 8.17: `order-alias-nested`, lines `m1, m2` and `m3` are queued as
/// m2, m1, m3 and sent as m3, m1, m2).
pub fn list_targets(text: &str) -> Vec<String> {
    list_targets_at(text).into_iter().map(|(_, t)| t).collect()
}

/// [`list_targets`] with the number of the line (from 1) each target is on, which
/// sendmail's messages about a list file's targets name (`/path: line 2: ...`).
pub fn list_targets_at(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|(n, l)| split_targets(l).into_iter().rev().map(move |t| (n, t)))
        .collect()
}

/// The line of `/etc/shells` that lets every shell through (sendmail's `WILDCARD_SHELL`).
pub const ANY_SHELL: &str = "/SENDMAIL/ANY/SHELL/";

/// The list of login shells.
pub const SHELLS_FILE: &str = "/etc/shells";

/// The shells taken when [`SHELLS_FILE`] cannot be read: the C library's
/// (`getusershell(3)` in glibc), which sendmail uses on GNU/Linux.
pub const DEFAULT_SHELLS: &[&str] = &["/bin/sh", "/bin/csh"];

/// Whether `shell` is a valid login shell by the text of `/etc/shells` (`None`: the file
/// cannot be read, so [`DEFAULT_SHELLS`]), as sendmail's `usershellok` decides: an empty
/// shell is valid; otherwise it must be listed, or [`ANY_SHELL`] must be. A line's shell
/// is read as `getusershell(3)` reads it: from its first `/` up to a blank or `#`; a line
/// whose `#` comes first is a comment.
pub fn shell_listed(shell: &str, shells: Option<&str>) -> bool {
    if shell.is_empty() {
        return true;
    }
    let Some(text) = shells else {
        return DEFAULT_SHELLS.contains(&shell);
    };
    text.lines().any(|line| {
        let Some(start) = line.find(['/', '#']) else {
            return false;
        };
        let rest = line.get(start..).unwrap_or("");
        if rest.starts_with('#') {
            return false;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        let listed = rest.get(..end).unwrap_or("");
        listed == shell || listed == ANY_SHELL
    })
}

/// Why the `|command` and `/file` targets of a list controlled by `uid` may not be used,
/// in sendmail's words after `for mailing to programs` is added by the caller: `None`
/// when they may (root, or a user whose shell [`shell_listed`] in `/etc/shells`); `User
/// login@host doesn't have a valid shell` for a user without one (`nologin`), so that an
/// account that may not log in cannot run commands or write files by mail either; `UID
/// n is an unknown user` for an owner with no password entry (recorded from 8.17:
/// `bounce-exp-inc-user-prog-odi`, `forward-prog-noshell-odi`).
pub fn mailer_refusal(uid: u32, host: &str) -> Option<MailerRefusal> {
    if uid == 0 {
        return None;
    }
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => {
            let shells = std::fs::read_to_string(SHELLS_FILE).ok();
            let shell = u.shell.to_string_lossy();
            if shell_listed(&shell, shells.as_deref()) {
                None
            } else {
                Some(MailerRefusal::NoShell(format!("{}@{host}", u.name)))
            }
        }
        _ => Some(MailerRefusal::UnknownUid(uid)),
    }
}

/// Why a list's controlling user may not mail to programs or files ([`mailer_refusal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailerRefusal {
    /// `login@host`: a user whose shell is not a valid login shell.
    NoShell(String),
    /// An owner with no password entry.
    UnknownUid(u32),
    /// A list file someone besides its owner may write (`:include:/path`).
    Unsafe(String),
}

impl MailerRefusal {
    /// sendmail's text, `what` being `programs` or `files`.
    pub fn text(&self, what: &str) -> String {
        match self {
            MailerRefusal::NoShell(user) => {
                format!("User {user} doesn't have a valid shell for mailing to {what}")
            }
            MailerRefusal::UnknownUid(uid) => {
                format!("UID {uid} is an unknown user: cannot mail to {what}")
            }
            MailerRefusal::Unsafe(list) => {
                format!("Address {list} is unsafe for mailing to {what}")
            }
        }
    }
}

/// A target as sendmail prints it (in `mailq`, reports, their transcripts, `-v` and
/// `-bv`): a `|command` or a `/file` holding a blank quoted whole, as it must be
/// written in an aliases or `.forward` file (`"|/usr/bin/prog arg"`, `"/var/log/a b"`),
/// any other address as it is (recorded: `prog-space-*`, `file-space-*`; `|/bin/false`
/// written quoted is shown bare, `alias-prog-quoted-twice-odq`).
pub fn shown_target(target: &str) -> std::borrow::Cow<'_, str> {
    if target.starts_with(['|', '/']) && target.contains([' ', '\t']) {
        std::borrow::Cow::Owned(format!("\"{}\"", target.replace('"', "\\\"")))
    } else {
        std::borrow::Cow::Borrowed(target)
    }
}

/// The text inside a pair of double quotes that encloses all of `t`, if they do.
fn unquoted(t: &str) -> Option<&str> {
    t.strip_prefix('"')?.strip_suffix('"')
}

/// The name an address has as an alias key: the local part, lower-cased, without quotes.
pub fn key_of(addr: &str) -> String {
    let local = match addr.rsplit_once('@') {
        Some((local, _)) => local,
        None => addr,
    };
    let local = local.trim();
    unquoted(local).unwrap_or(local).to_ascii_lowercase()
}

/// A local name's user and its `+detail`: split at the first `+` (sendmail's
/// default ruleset; recorded: `plus-bv-forms`: `root+b+c` is user `root`, detail
/// `b+c`; `root+` is `root` with no detail; `+foo` is the empty user). The detail is
/// `None` when there is no `+`, `Some("")` for a trailing `+`.
pub fn split_detail(name: &str) -> (&str, Option<&str>) {
    match name.split_once('+') {
        Some((user, detail)) => (user, Some(detail)),
        None => (name, None),
    }
}

/// The alias names a local name (already a [`key_of`]) is looked up under, in order:
/// `user+detail`, then `user+*`, then `user` (sendmail's `+detail` handling; recorded:
/// `plus-bv-alias`, `plus-odi-alias`). A name without `+` is looked up as itself.
pub fn alias_keys(key: &str) -> Vec<String> {
    match split_detail(key) {
        (user, Some(_)) if !user.is_empty() => {
            vec![key.to_string(), format!("{user}+*"), user.to_string()]
        }
        _ => vec![key.to_string()],
    }
}

/// The key under which two recipients are the same recipient (one copy each): a local
/// user by its [`key_of`] (sendmail folds local user names to lower case: `Root` is
/// `root`; recorded `dup-case-local`), any other address byte for byte (sendmail keeps
/// `u@example.org`, `U@example.org` and `u@EXAMPLE.org` apart; recorded
/// `dup-case-argv`, `dup-case-t`, `dup-case-bs`, `dup-case-alias`).
pub fn recipient_key(addr: &str, is_local: &dyn Fn(&str) -> bool) -> String {
    if addr.starts_with(['|', '/', '\\']) {
        addr.to_string()
    } else if is_local(addr) {
        format!("user:{}", key_of(addr))
    } else {
        crate::message::address::duplicate_key(addr)
    }
}

/// The key under which two refused targets of an expansion are one refusal (one report
/// line, one failure): the target in any case, its domain's U-labels as A-labels
/// ([`crate::message::address::duplicate_key`]): `a@@Bücher.example` and
/// `a@@xn--bcher-kva.example` are refused once.
pub fn refused_key(target: &str) -> String {
    crate::message::address::duplicate_key(target).to_ascii_lowercase()
}

impl Aliases {
    /// The alias a local name (a [`key_of`]) finds and the name it was found under
    /// (see [`alias_keys`]).
    pub fn find_local(&self, key: &str) -> Option<(String, &Alias)> {
        alias_keys(key)
            .into_iter()
            .find_map(|k| self.get(&k).map(|a| (k.clone(), a)))
    }

    /// Whether a local name (a [`key_of`]) has a line in the file: an alias it finds
    /// ([`Aliases::find_local`]) or an alias line that could not be read
    /// ([`Aliases::broken`]). Such a name is expanded, never taken for a mailbox.
    pub fn has_line_for(&self, key: &str) -> bool {
        alias_keys(key)
            .iter()
            .any(|k| self.get(k).is_some() || self.broken(k).is_some())
    }

    /// Parse the text of an aliases file named `path` (for messages). With
    /// `check_targets` (sendmail's `CheckAliases`, off by default) every target that is
    /// not an address is reported; otherwise targets are checked when they are used,
    /// like any address (compat-tests `addr-alias-bad-target`).
    pub fn parse(text: &str, path: &Path, check_targets: bool) -> Aliases {
        Aliases::parse_quoting(text, path, check_targets, true)
    }

    /// [`Aliases::parse`]; with `quoted` false (a file not everyone may read) no
    /// problem shows the text of a line, only its number and what is wrong.
    pub fn parse_quoting(text: &str, path: &Path, check_targets: bool, quoted: bool) -> Aliases {
        let mut a = Aliases {
            path: path.to_path_buf(),
            quoted,
            ..Aliases::default()
        };
        // Logical lines: (first line number, text).
        let mut logical: Vec<(usize, String)> = Vec::new();
        // Logical lines (by first line number) one of whose continuation lines is not
        // text, with that line's problem.
        let mut faulty: Vec<(usize, String)> = Vec::new();
        let mut open = false;
        for (n, raw) in text.split('\n').enumerate() {
            let lineno = n + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            // A byte order mark at the start is named, and the line read without it
            // (sendmail takes it into the first alias's name, which no one then reaches);
            // a NUL or a mark further on is named and its line left out.
            let raw = match raw.strip_prefix('\u{feff}') {
                Some(rest) if lineno == 1 => {
                    a.problem(lineno, false, crate::text::BOM_AT_START);
                    rest
                }
                _ => raw,
            };
            if let Some(what) = crate::text::line_fault(raw.as_bytes()) {
                a.problem(lineno, false, what);
                let text = format!("{}: line {lineno}: {what}", path.display());
                if raw.starts_with([' ', '\t']) {
                    // A continuation: the alias it continues is broken.
                    if open && let Some(last) = logical.last() {
                        faulty.push((last.0, text));
                    }
                } else if let Some(name) = broken_name(raw) {
                    a.broken.insert(name, text);
                }
                open = false;
                continue;
            }
            if raw.is_empty() {
                open = false;
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                if open && let Some(last) = logical.last_mut() {
                    last.1.push_str(raw);
                    continue;
                }
                if raw.trim().is_empty() {
                    continue;
                }
                a.problem(lineno, false, "Non-continuation line starts with space");
                continue;
            }
            logical.push((lineno, raw.to_string()));
            open = true;
        }
        for (lineno, line) in logical {
            if line.starts_with('#') {
                continue;
            }
            // The name ends at the first colon outside quotes.
            let mut quoted = false;
            let mut colon = None;
            for (i, c) in line.char_indices() {
                match c {
                    '"' => quoted = !quoted,
                    ':' if !quoted => {
                        colon = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(colon) = colon else {
                a.problem(lineno, false, "missing colon");
                continue;
            };
            let Some((lhs, rhs)) = line.split_at_checked(colon) else {
                continue;
            };
            let lhs = lhs.trim_end();
            let rhs = rhs.strip_prefix(':').unwrap_or(rhs);
            // The name without its quotes: `"": x` has none.
            let plain = lhs.trim_matches('"').to_string();
            if plain.is_empty() {
                let text = a.quote(&line);
                a.problem(lineno, false, format!("{text}... illegal alias name"));
                continue;
            }
            if let Some((_, text)) = faulty.iter().find(|(n, _)| *n == lineno) {
                a.broken.insert(plain.to_ascii_lowercase(), text.clone());
                continue;
            }
            let rhs = rhs.trim_start_matches([' ', '\t']);
            let targets = split_targets(rhs);
            // Nothing after the colon but blanks and commas (`a: ,`) is no value either.
            if targets.is_empty() {
                let text = a.quote(&line);
                a.problem(lineno, false, format!("{text}... missing value for alias"));
                continue;
            }
            if check_targets {
                // sendmail's CheckAliases: each target that is not an address is named;
                // the alias is kept (its bad targets are refused when it is used).
                for bad in targets.iter().filter(|t| {
                    !t.starts_with(['|', '/'])
                        && !t.starts_with(":include:")
                        && address::parse_one(t.trim_start_matches('\\')).is_err()
                }) {
                    let text = a.quote(bad);
                    a.problem(lineno, false, format!("{text}... bad address"));
                }
            }
            let key = plain.to_ascii_lowercase();
            if a.map.contains_key(&key) {
                let text = if a.quoted {
                    format!("{plain}... Warning: duplicate alias name {key}")
                } else {
                    format!(
                        "Warning: duplicate alias name ({})",
                        crate::text::NOT_QUOTED
                    )
                };
                a.problem(lineno, true, text);
            }
            a.stats.count += 1;
            a.stats.longest = a.stats.longest.max(rhs.len());
            a.stats.total += lhs.len() + rhs.len();
            a.map.insert(
                key,
                Alias {
                    name: plain,
                    targets,
                    line: lineno,
                },
            );
        }
        a
    }

    /// `text` of the file as a problem shows it: itself when everyone may read the file,
    /// else words saying it is not shown.
    fn quote(&self, text: &str) -> String {
        if self.quoted {
            text.to_string()
        } else {
            format!("({})", crate::text::NOT_QUOTED)
        }
    }

    /// Aliases of the file at `path` that cannot be used, `why` (the reason, with the
    /// file's name): every local recipient waits ([`Aliases::broken`]).
    pub fn unavailable(path: &Path, why: String) -> Aliases {
        Aliases {
            path: path.to_path_buf(),
            unavailable: Some(why),
            ..Aliases::default()
        }
    }

    /// Why the file as a whole cannot be used, when so.
    pub fn unusable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The aliases of the file at `path` for delivery: `None` when there is no such file
    /// (no aliases, as sendmail); one that could not be read for another reason (no
    /// right to it, not a regular file, too large) is [`Aliases::unavailable`], so that
    /// local recipients wait with the reason rather than go to a mailbox of their name or
    /// bounce as unknown.
    pub fn for_delivery(path: &Path) -> Option<Aliases> {
        match Aliases::load(path) {
            Ok(a) => Some(a),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Aliases::unavailable(
                path,
                format!(
                    "cannot open {}: {}",
                    path.display(),
                    crate::config::io_text(&e)
                ),
            )),
        }
    }

    fn problem(&mut self, line: usize, warning: bool, message: impl std::fmt::Display) {
        self.problems.push(Problem {
            line,
            text: format!("{}: line {line}: {message}", self.path.display()),
            warning,
        });
    }

    pub fn errors(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter(|p| !p.warning)
            .map(|p| p.text.as_str())
            .collect()
    }

    pub fn warnings(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter(|p| p.warning)
            .map(|p| p.text.as_str())
            .collect()
    }

    /// Errors and warnings in line order, as `newaliases` prints them.
    pub fn messages(&self) -> Vec<&str> {
        let mut v: Vec<&Problem> = self.problems.iter().collect();
        v.sort_by_key(|p| p.line);
        v.into_iter().map(|p| p.text.as_str()).collect()
    }

    /// Read and parse the file; `Err` with sendmail's reason when it cannot be opened.
    pub fn load(path: &Path) -> Result<Aliases, std::io::Error> {
        Aliases::load_checked(path, false)
    }

    /// [`Aliases::load`], checking the targets as [`Aliases::parse`] says.
    pub fn load_checked(path: &Path, check_targets: bool) -> Result<Aliases, std::io::Error> {
        // A file holding credentials (auth.conf, a private key): its lines would be
        // shown in reasons and `-bv` as aliases.
        if let Some(why) = crate::spool::safety::secret_file(path, &[]) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{why}, which holds credentials and is never read as aliases"),
            ));
        }
        // A regular file of at most `MAX_FILE` octets: a FIFO, a device or a directory
        // is refused with the reason (`InvalidData`), never read or waited on.
        let (text, md) =
            crate::boundedfile::read_regular(path, false, crate::boundedfile::MAX_FILE).map_err(
                |e| match e {
                    crate::boundedfile::ReadError::Io(e) => e,
                    other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.text()),
                },
            )?;
        let owner = md.uid();
        let mut a = Aliases::parse_quoting(
            &String::from_utf8_lossy(&text),
            path,
            check_targets,
            crate::text::readable_by_all(&md),
        );
        a.owner = owner;
        if crate::spool::safety::holds_private_key(&text) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "it holds a private key, which is never read as aliases",
            ));
        }
        // A NUL octet: not a text file (`/proc/1/environ`, a binary named by mistake),
        // whose lines cannot be trusted one by one: none is used (its problems and
        // summary are still those `newaliases` lists).
        if let Some(n) = text.split(|&b| b == b'\n').position(|l| l.contains(&0)) {
            a.map.clear();
            a.broken.clear();
            a.unavailable = Some(format!(
                "{}: line {}: {}",
                path.display(),
                n + 1,
                crate::text::NUL_OCTET
            ));
        }
        Ok(a)
    }

    pub fn get(&self, name: &str) -> Option<&Alias> {
        self.map.get(&name.to_ascii_lowercase())
    }

    /// The `:include:` files the aliases name, each once, in the order of their lines:
    /// the path as written and the name of the first alias that names it.
    pub fn include_files(&self) -> Vec<(String, String)> {
        let mut aliases: Vec<&Alias> = self.map.values().collect();
        aliases.sort_by_key(|a| a.line);
        let mut out: Vec<(String, String)> = Vec::new();
        for a in aliases {
            for t in &a.targets {
                if let Some(p) = t.trim().strip_prefix(":include:") {
                    let p = p.trim();
                    if !p.is_empty() && !out.iter().any(|(q, _)| q == p) {
                        out.push((p.to_string(), a.name.clone()));
                    }
                }
            }
        }
        out
    }

    /// The problem of the line of alias `name` when that line could not be read (a NUL
    /// octet or a byte order mark on it: `file: line N: ...`), so that its recipients
    /// wait for the file to be fixed rather than go to a mailbox of that name or bounce
    /// as unknown. sendmail (which says `alias line too long` there) drops the line and
    /// delivers as if there were no alias (recorded: `bi-aliases-nul-target`, `bv-alias-nul`).
    pub fn broken(&self, name: &str) -> Option<&str> {
        if let Some(why) = &self.unavailable {
            return Some(why);
        }
        self.broken
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The summary line `newaliases` prints.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} aliases, longest {} bytes, {} bytes total",
            self.path.display(),
            self.stats.count,
            self.stats.longest,
            self.stats.total
        )
    }
}

/// Where an expanded recipient goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A non-local address.
    Remote(String),
    /// A local user; the user's `.forward` still applies at delivery.
    User(String),
    /// `\user`: the mailbox itself, no further aliasing or forwarding.
    Mailbox(String),
    /// `|command`, run as `owner`.
    Pipe(String),
    /// `/path`, appended to as `owner`.
    File(String),
}

impl Target {
    /// How the target is written in a queue entry.
    pub fn address(&self) -> String {
        match self {
            Target::Remote(a) | Target::User(a) => a.clone(),
            Target::Mailbox(u) => format!("\\{u}"),
            Target::Pipe(c) => format!("|{c}"),
            Target::File(p) => p.clone(),
        }
    }

    /// Classify an address as a queue entry holds it.
    pub fn of_address(addr: &str, is_local: &dyn Fn(&str) -> bool) -> Target {
        if let Some(c) = addr.strip_prefix('|') {
            Target::Pipe(c.to_string())
        } else if addr.starts_with('/') {
            Target::File(addr.to_string())
        } else if let Some(u) = addr.strip_prefix('\\') {
            Target::Mailbox(key_of(u))
        } else if is_local(addr) {
            Target::User(addr.to_string())
        } else {
            Target::Remote(addr.to_string())
        }
    }
}

/// One recipient an expansion produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expanded {
    pub target: Target,
    /// The sender `owner-<alias>` gives ([`owner_sender`]), when the nearest enclosing
    /// alias with an owner alias has one.
    pub sender: Option<String>,
    /// Who `|command` and `/file` targets run as (the uid owning their source file).
    pub owner: Option<u32>,
    /// What expanded to it, as sendmail's controlling-user line names it (`mailq -v`):
    /// the nearest enclosing alias (`list`) or `:include:` file (`:include:/path`);
    /// `None` for a target given as it is.
    pub ctl: Option<String>,
}

/// What the enclosing lists of a target give it: the envelope sender of the nearest
/// alias with an owner, and the nearest alias or `:include:` ([`Expanded::ctl`]).
#[derive(Clone, Debug, Default)]
struct Via {
    sender: Option<String>,
    ctl: Option<String>,
    /// The list file and line the target was read from (`None`: an aliases file's
    /// target, or one given as it is).
    at: Option<(String, usize)>,
    /// The `:include:` it was read from (`:include:/path`) when that file is unsafe
    /// ([`read_list_file`]): then it may not be a `|command` or `/file`.
    unsafe_list: Option<String>,
}

/// Why an address could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// No alias and no such user: `User unknown`.
    UnknownUser(String),
    /// A loop or too deep a nesting: `aliasing/forwarding loop broken`.
    Loop(String),
    /// An `:include:` file that cannot be read now (a temporary failure).
    Include(String, String),
    /// An `:include:` file that cannot be a list: not a regular file, too large, one
    /// that whoever controls the list may not read, or one too many: a permanent
    /// failure, with its RFC 3463 status.
    IncludeRefused(String, String, EnhancedStatus),
    /// A target that is not an address (`a@@example.org`, `x y@example.org`), refused
    /// like the same address on the command line.
    Invalid(String, address::Invalid),
    /// A `|command` or `/file` target of a list file whose controlling user may not
    /// mail to programs or files ([`mailer_refusal`]): the target as written
    /// (`"|/bin/cat >/dev/null"`) and the text (`Expansion::said` puts the file and
    /// line first; recorded: `bounce-exp-inc-user-prog-odi`). Refused for good, `5.7.1`.
    Mailer(String, String),
    /// A local name whose alias line could not be read ([`Aliases::broken`]): the
    /// address and the line's problem. Temporary: the recipient waits for the file to
    /// be fixed.
    AliasLine(String, String),
}

impl ExpandError {
    /// Whether the recipient it is about waits (an `:include:` that cannot be read now,
    /// an alias line that cannot be read) rather than fails.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ExpandError::Include(..) | ExpandError::AliasLine(..))
    }

    /// The address the error is about.
    pub fn address(&self) -> &str {
        match self {
            ExpandError::UnknownUser(a)
            | ExpandError::Loop(a)
            | ExpandError::Include(a, _)
            | ExpandError::IncludeRefused(a, _, _)
            | ExpandError::Invalid(a, _)
            | ExpandError::Mailer(a, _)
            | ExpandError::AliasLine(a, _) => a,
        }
    }

    /// The target that failed, as a report names it: the address, or `:include:path`.
    pub fn target(&self) -> String {
        match self {
            ExpandError::Include(p, _) | ExpandError::IncludeRefused(p, _, _) => {
                format!(":include:{p}")
            }
            e => e.address().to_string(),
        }
    }

    /// The exit status sendmail gives for it: 67 for an unknown user, 64 for a loop and
    /// for an `:include:` file refused for good (recorded from 8.17:
    /// `bounce-exp-inc-writable-odi`), 75 for one that cannot be read now.
    pub fn status(&self) -> crate::exit::Sysexit {
        use crate::exit::Sysexit;
        match self {
            ExpandError::UnknownUser(_) => Sysexit::NoUser,
            ExpandError::Loop(_) => Sysexit::Usage,
            ExpandError::Include(..) | ExpandError::AliasLine(..) => Sysexit::TempFail,
            ExpandError::IncludeRefused(..) | ExpandError::Mailer(..) => Sysexit::Usage,
            ExpandError::Invalid(_, e) => e.exit(),
        }
    }

    /// Whether it decides the exit status when it is the first such refusal (sendmail's
    /// `setstat`: an unknown user, an address its rules refuse as no address, a list
    /// that cannot be read now, which a later one replaces), rather than only making it
    /// 64 when nothing else decides it (a loop, an unbalanced address, a refused list
    /// file or program: sendmail's `usrerr` alone). Recorded: `alias-bad-order-odi`
    /// (`Invalid route address` before `User unknown`: 64), `alias-unbalanced-empty-odi`
    /// (`Unbalanced` before `User unknown`: 67).
    pub fn sets_status(&self) -> bool {
        match self {
            ExpandError::UnknownUser(_) | ExpandError::Include(..) | ExpandError::AliasLine(..) => {
                true
            }
            // A target naming no one (`<@>`, `g:;`) is refused by sendmail's rule set 0
            // and decides it, as on the command line (recorded: `alias-at-target-bv`:
            // 64 before `"x" <@>... User unknown`).
            ExpandError::Invalid(_, e) => e.sets_status() || *e == address::Invalid::EmptyGroup,
            ExpandError::Loop(_) | ExpandError::IncludeRefused(..) | ExpandError::Mailer(..) => {
                false
            }
        }
    }

    /// Whether it is found while the list naming the target is read, before any of the
    /// list's targets is expanded: an address that is no address (sendmail's parse of
    /// the whole list comes first, its faults said in written order; recorded:
    /// `alias-bad-order-odi`, `bv-alias-bad-order`). `<>` is an unknown user instead,
    /// found in its turn.
    pub fn is_syntax_fault(&self) -> bool {
        matches!(self, ExpandError::Invalid(_, e) if *e != address::Invalid::NoUser)
    }

    /// The error as a delivery-time failure of its target: the reply code, the RFC 3463
    /// status and the `addr... reason` text after it (`550 5.1.1 nobody... User
    /// unknown`). Only [`ExpandError::Include`] is temporary.
    pub fn reply(&self) -> (u16, EnhancedStatus, String) {
        match self {
            ExpandError::UnknownUser(_) => (550, status::BAD_MAILBOX, self.text()),
            ExpandError::Loop(a) => (
                554,
                status::LOOP,
                format!("{}... {}", address::shown(a), self.text()),
            ),
            ExpandError::Include(..) | ExpandError::AliasLine(..) => {
                (451, status::SYSTEM_TEMP, self.text())
            }
            ExpandError::IncludeRefused(_, _, status) => (550, *status, self.text()),
            // `<>`: unknown as a user, sendmail's 550 (recorded: forward-odd-addr-odi).
            ExpandError::Invalid(_, address::Invalid::NoUser) => {
                (550, status::BAD_MAILBOX, self.text())
            }
            ExpandError::Invalid(_, e) => (553, e.status(), self.text()),
            ExpandError::Mailer(..) => (550, status::NOT_AUTHORIZED, self.text()),
        }
    }

    /// sendmail's text, as printed after `addr... `.
    pub fn text(&self) -> String {
        match self {
            ExpandError::UnknownUser(a) => format!("{a}... User unknown"),
            ExpandError::Loop(_) => "aliasing/forwarding loop broken".into(),
            ExpandError::Include(p, why) | ExpandError::IncludeRefused(p, why, _) => {
                format!(":include:{p}... Cannot open {p}: {why}")
            }
            ExpandError::Invalid(a, e) => e.message(a),
            ExpandError::Mailer(_, text) => text.clone(),
            ExpandError::AliasLine(a, why) => {
                format!("{}... alias not read: {why}", address::shown(a))
            }
        }
    }
}

/// The result of expanding a list of addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    pub targets: Vec<Expanded>,
    pub errors: Vec<ExpandError>,
    /// The aliases and `:include:`s met again while being expanded (`ma: mb` and
    /// `mb: ma`) for the address [`Expander::expand`] is on: a duplicate when the
    /// address names anyone else, a loop when it names no one.
    back_refs: Vec<String>,
    /// For each of `errors` (the same index), what expanded to the refused target: the
    /// nearest enclosing alias or `:include:` file, as a report's `(expanded from: X)`
    /// names it (recorded: `bounce-exp-unknown-user-odi`); `None` for an address given
    /// as it is.
    pub error_ctl: Vec<Option<String>>,
    /// For each of `errors`: the list file and line its target was read from, which
    /// sendmail's message about it names first ([`Expansion::said`]).
    pub error_at: Vec<Option<(String, usize)>>,
    /// For each of `errors`: its place in queue order (smaller first). An error is said
    /// when it is found, but a syntax fault is found before its list's other targets
    /// are expanded while its place is where the list's queue order puts it, where
    /// sendmail's report lists it (recorded: `alias-bad-order-nested-odq`).
    pub error_queued: Vec<usize>,
    /// For each of `errors`: the envelope sender of the nearest enclosing alias with an
    /// owner alias (see [`Expanded::sender`]): the refusal is that owner's to hear of,
    /// not the message's sender's.
    pub error_sender: Vec<Option<String>>,
    /// The aliases with an owner alias expanded, in the order their expansion ended:
    /// each as written and its owner's envelope sender. Their owner's report says
    /// `Message delivered to mailing list LIST` after what expanding it refused, as
    /// sendmail's transcript does (recorded: `owner-list-unknown-odi`).
    pub owned: Vec<(String, String)>,
    /// The last place in queue order given.
    queued: usize,
    /// What sendmail's `-v` prints while expanding, in order (recorded: `v-alias-remote`,
    /// `v-include`, `v-forward`): `staff... aliased to a, b`, `:include:/path...
    /// including file /path`, `/path: line 1: sending to m1@example.org` and, for a
    /// `.forward`, `/home/u/.forward: line 1: forwarding to f@example.org`.
    pub notes: Vec<String>,
}

impl Expansion {
    /// Record an error about a target reached through `via`.
    fn fail(&mut self, via: &Via, e: ExpandError) {
        self.errors.push(e);
        self.error_ctl.push(via.ctl.clone());
        self.error_at.push(via.at.clone());
        self.error_sender.push(via.sender.clone());
        self.queued += 1;
        self.error_queued.push(self.queued);
    }

    /// Give `errors[i]` (a syntax fault said earlier) the next place in queue order.
    fn queue_error(&mut self, i: usize) {
        self.queued += 1;
        if let Some(q) = self.error_queued.get_mut(i) {
            *q = self.queued;
        }
    }

    /// What sendmail says of `errors[i]`: its text, after `FILE: line N: ` when its
    /// target was read from a list file (recorded: `bounce-exp-inc-unknown-odi`,
    /// `DIR/members: line 2: nosuchuser... User unknown`; `forward-unknown-odi`).
    pub fn said(&self, i: usize) -> String {
        let text = self
            .errors
            .get(i)
            .map(ExpandError::text)
            .unwrap_or_default();
        match self.error_at.get(i) {
            Some(Some((file, line))) => format!("{file}: line {line}: {text}"),
            _ => text,
        }
    }

    /// Whether `errors[i]`'s target was read from a list file.
    pub fn from_list_file(&self, i: usize) -> bool {
        matches!(self.error_at.get(i), Some(Some(_)))
    }

    /// What expanded to the target of `errors[i]` (see [`Expansion::error_ctl`]).
    pub fn ctl_of(&self, i: usize) -> Option<&str> {
        self.error_ctl.get(i).and_then(|c| c.as_deref())
    }

    /// The list owner's envelope sender for `errors[i]` (see
    /// [`Expansion::error_sender`]).
    pub fn sender_of(&self, i: usize) -> Option<&str> {
        self.error_sender.get(i).and_then(|c| c.as_deref())
    }
}

/// How deep aliases may nest (sendmail's MAXRCRSN is 10).
pub const MAX_DEPTH: usize = 10;

/// The most `:include:` files one expansion reads: a list that names more fails on the
/// ones after it, so that no list can keep the deliverer reading files.
pub const MAX_INCLUDES: usize = 100;

/// The largest list file (`:include:` file, `.forward`) read: 1 MiB, some 50,000
/// addresses. A larger one is refused whole, never read in part.
pub const MAX_LIST_FILE: u64 = 1 << 20;

/// Why a list file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFileError {
    /// Not a regular file (a FIFO, a device, a directory, a symbolic link where none may
    /// be): refused before it is opened for reading.
    NotRegular(String),
    /// More than [`MAX_LIST_FILE`] octets.
    TooLarge(u64),
    /// Whoever controls the list may not read it.
    Denied(String),
    /// Any other error, worth trying again later (`No such file or directory`, I/O).
    Io(String),
    /// A file that anyone may write (mode `o+w`): whatever it lists could be anyone's
    /// doing, so it is not used (sendmail's `World writable file`; recorded:
    /// `bounce-exp-inc-writable-odi`). A file only its group may write is used, as
    /// sendmail uses it (`bounce-exp-inc-groupwritable-odi`), but is unsafe: no
    /// `|command` or `/file` of it is ([`read_list_file`]).
    WorldWritable,
    /// Not text ([`crate::text::file_fault`]): a byte order mark or a NUL, on this line
    /// (from 1). sendmail takes the mark into the first address, which is then sent on
    /// as if it were one, and ends a line at a NUL (`include-bom-bv`, `include-nul-bv`).
    NotText(usize, String),
}

impl ListFileError {
    /// For good (the file is not one to read, or not its reader's), or worth a retry.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ListFileError::Io(_))
    }

    /// The RFC 3463 status of a permanent refusal.
    pub fn status(&self) -> EnhancedStatus {
        match self {
            ListFileError::Denied(_) => status::NOT_AUTHORIZED,
            ListFileError::WorldWritable => status::LIST_EXPANSION,
            ListFileError::NotRegular(_)
            | ListFileError::TooLarge(_)
            | ListFileError::NotText(..) => status::SYSTEM_PERM,
            ListFileError::Io(_) => status::SYSTEM_TEMP,
        }
    }

    pub fn text(&self) -> String {
        match self {
            ListFileError::NotRegular(what) => format!("not a regular file ({what})"),
            ListFileError::TooLarge(n) => {
                format!("larger than {MAX_LIST_FILE} bytes, the limit for a list file ({n} bytes)")
            }
            ListFileError::Denied(why) | ListFileError::Io(why) => why.clone(),
            ListFileError::WorldWritable => "World writable file".into(),
            ListFileError::NotText(line, what) => format!("line {line}: {what}"),
        }
    }
}

impl ListFileError {
    /// The error as one line, for a child that read the file to tell its parent.
    pub fn to_line(&self) -> String {
        let (kind, text) = match self {
            ListFileError::NotRegular(what) => ("not-regular", what.clone()),
            ListFileError::TooLarge(n) => ("too-large", n.to_string()),
            ListFileError::Denied(why) => ("denied", why.clone()),
            ListFileError::Io(why) => ("io", why.clone()),
            ListFileError::WorldWritable => ("world-writable", String::new()),
            ListFileError::NotText(line, what) => ("not-text", format!("{line} {what}")),
        };
        format!("{kind} {}", text.replace(['\r', '\n'], " "))
    }

    /// The error a child's line tells (see [`ListFileError::to_line`]); a line it cannot
    /// read is an I/O error with that text.
    pub fn from_line(line: &str) -> ListFileError {
        let line = line.trim_end();
        let (kind, text) = line.split_once(' ').unwrap_or((line, ""));
        let text = text.to_string();
        match kind {
            "not-regular" => ListFileError::NotRegular(text),
            "too-large" => match text.parse() {
                Ok(n) => ListFileError::TooLarge(n),
                Err(_) => ListFileError::Io(line.to_string()),
            },
            "denied" => ListFileError::Denied(text),
            "io" => ListFileError::Io(text),
            "world-writable" => ListFileError::WorldWritable,
            "not-text" => match text.split_once(' ').map(|(n, w)| (n.parse(), w)) {
                Some((Ok(n), what)) => ListFileError::NotText(n, what.to_string()),
                _ => ListFileError::Io(line.to_string()),
            },
            _ if line.is_empty() => ListFileError::Io("cannot read the file".into()),
            _ => ListFileError::Io(line.to_string()),
        }
    }
}

impl From<std::io::Error> for ListFileError {
    fn from(e: std::io::Error) -> ListFileError {
        let text = crate::config::io_text(&e);
        match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => ListFileError::Denied(text),
            Some(libc::ELOOP) => ListFileError::NotRegular("a symbolic link".into()),
            _ => ListFileError::Io(text),
        }
    }
}

/// Read a list file (`:include:` file or `.forward`) with the caller's rights: its octets,
/// its owner's uid and whether it is unsafe: someone besides its owner may write it (its
/// group, or a user or group its access ACL names; [`crate::spool::safety::others_may_write`]),
/// so that its `|command` and `/file` targets could be anyone's doing (sendmail marks
/// a group-writable `:include:` file or `.forward` unsafe, `QUNSAFEADDR`). Only a regular file of at most [`MAX_LIST_FILE`] octets is read,
/// through [`crate::boundedfile::read_regular`] (never opening a FIFO or a device, never
/// blocking, following no symbolic link when `no_follow`).
pub fn read_list_file(path: &Path, no_follow: bool) -> Result<(Vec<u8>, u32, bool), ListFileError> {
    use crate::boundedfile::{ReadError, read_regular};
    match read_regular(path, no_follow, MAX_LIST_FILE) {
        Ok((_, md)) if md.mode() & 0o002 != 0 => Err(ListFileError::WorldWritable),
        // Credentials: their lines would be shown in reasons as addresses.
        Ok((text, _)) if crate::spool::safety::holds_private_key(&text) => Err(
            ListFileError::Denied("it holds a private key, never read as a list".into()),
        ),
        Ok(_) if let Some(why) = crate::spool::safety::secret_file(path, &[]) => {
            Err(ListFileError::Denied(format!(
                "{why}, which holds credentials and is never read as a list"
            )))
        }
        Ok((text, md)) => match crate::text::file_fault(&text) {
            Some((line, what)) => Err(ListFileError::NotText(line, what.into())),
            None => {
                let unsafe_file = crate::spool::safety::others_may_write(path, &md, !no_follow);
                Ok((text, md.uid(), unsafe_file))
            }
        },
        Err(ReadError::NotRegular(what)) => Err(ListFileError::NotRegular(what.into())),
        Err(ReadError::TooLarge { size, .. }) => Err(ListFileError::TooLarge(size)),
        Err(ReadError::Replaced) => Err(ListFileError::Io(format!(
            "{} was replaced while it was opened",
            path.display()
        ))),
        Err(ReadError::Io(e)) => Err(e.into()),
    }
}

/// Reads an `:include:` file: its text, its owner's uid and whether it is unsafe
/// ([`read_list_file`]). The second argument is the user whose rights it must be read
/// with (the list naming it belongs to that user); `None`: the reader's own rights.
pub type IncludeReader<'a> =
    dyn Fn(&Path, Option<u32>) -> Result<(String, u32, bool), ListFileError> + 'a;

/// sendmail's DefaultUser (`O DefaultUser=`): `user`, `uid`, `uid:gid` or `user:group`
/// as (uid, gid); `mailnull`, then `nobody`, when not set or not found; (65534, 65534)
/// when neither exists. A uid without a group takes its user's group, or the uid.
pub fn default_user(spec: Option<&str>) -> (u32, u32) {
    use nix::unistd::{Group, Uid, User};
    let lookup = |s: &str| -> Option<(u32, u32)> {
        let (u, g) = s.split_once(':').unwrap_or((s, ""));
        let (uid, mut gid) = match u.parse::<u32>() {
            Ok(n) => (
                n,
                User::from_uid(Uid::from_raw(n))
                    .ok()
                    .flatten()
                    .map(|u| u.gid.as_raw())
                    .unwrap_or(n),
            ),
            Err(_) => {
                let u = User::from_name(u).ok().flatten()?;
                (u.uid.as_raw(), u.gid.as_raw())
            }
        };
        if !g.is_empty() {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => Group::from_name(g).ok().flatten()?.gid.as_raw(),
            };
        }
        Some((uid, gid))
    };
    spec.and_then(lookup)
        .or_else(|| lookup("mailnull"))
        .or_else(|| lookup("nobody"))
        .unwrap_or((65534, 65534))
}

/// The name of dma's catch-all alias.
pub const CATCH_ALL: &str = "*";

/// What expansion needs to know about the system.
pub struct Expander<'a> {
    /// None: no aliasing (`-n`, or no aliases file).
    pub aliases: Option<&'a Aliases>,
    pub is_local: &'a dyn Fn(&str) -> bool,
    pub user_exists: &'a dyn Fn(&str) -> bool,
    /// Read an `:include:` file.
    pub read_include: &'a IncludeReader<'a>,
    /// Whether the list files' controlling users may mail to programs and files
    /// ([`mailer_refusal`]: uid, this host's name).
    pub mailer_refusal: &'a dyn Fn(u32, &str) -> Option<MailerRefusal>,
    /// This host's name, for messages (`User nobody@host ...`).
    pub host: &'a str,
}

impl<'a> Expander<'a> {
    /// An expander that asks the system: users from the password database, `:include:`
    /// files from disk.
    pub fn system(
        aliases: Option<&'a Aliases>,
        is_local: &'a dyn Fn(&str) -> bool,
        host: &'a str,
    ) -> Self {
        Expander {
            aliases,
            is_local,
            user_exists: &user_exists,
            read_include: &read_include,
            mailer_refusal: &mailer_refusal,
            host,
        }
    }
}

/// The system's view: users from the password database, include files from disk.
pub fn user_exists(name: &str) -> bool {
    nix::unistd::User::from_name(name).ok().flatten().is_some()
}

/// Include files with the reader's own rights. One that must be read with a user's rights
/// is left for the deliverer (a temporary error), which can take them: reading it here,
/// with the set-group-id group of `rsendmail`, could read what the user may not. So is
/// one no user controls when the reader is root: root reads such a file only with
/// DefaultUser's rights ([`read_include_as_default`]), never with its own.
pub fn read_include(
    path: &Path,
    as_user: Option<u32>,
) -> Result<(String, u32, bool), ListFileError> {
    if let Some(uid) = as_user {
        return Err(ListFileError::Io(format!(
            "read by the deliverer with the rights of uid {uid}"
        )));
    }
    if nix::unistd::geteuid().is_root() {
        return Err(ListFileError::Io(
            "read by the deliverer with DefaultUser's rights".into(),
        ));
    }
    let (text, uid, unsafe_file) = read_list_file(path, false)?;
    Ok((
        String::from_utf8_lossy(&text).into_owned(),
        uid,
        unsafe_file,
    ))
}

/// [`read_include`], except that a root process reads an include file no user controls
/// (one the aliases file or a root-owned list names) with DefaultUser's rights
/// `default_user` (uid, gid; no other group) in a child, the deliverer's
/// `--read-list` ([`crate::app::deliver_path`]), as sendmail reads it as DefUid: a user
/// who swaps a file that root's aliases name for a link to a file only root may read
/// gets a refusal, never its lines.
pub fn read_include_as_default(
    path: &Path,
    as_user: Option<u32>,
    default_user: (u32, u32),
) -> Result<(String, u32, bool), ListFileError> {
    use std::os::unix::process::CommandExt;
    if as_user.is_some() || !nix::unistd::geteuid().is_root() {
        return read_include(path, as_user);
    }
    let deliver = crate::app::deliver_path();
    if let Some(why) = crate::spool::safety::refused_exec(&deliver) {
        return Err(ListFileError::Io(why));
    }
    let mut cmd = std::process::Command::new(deliver);
    cmd.arg0("rsendmail-deliver")
        .uid(default_user.0)
        .gid(default_user.1);
    read_as_default(cmd, path, default_user.0)
}

/// Read an include file no user controls with the rights `cmd` (the deliverer, set to
/// run as DefaultUser, `uid`) has: its text, its owner and whether it is unsafe.
pub fn read_as_default(
    cmd: std::process::Command,
    path: &Path,
    uid: u32,
) -> Result<(String, u32, bool), ListFileError> {
    let (text, owner) = read_list_in_child(cmd, path, false, true, uid)?;
    let (owner, unsafe_file) =
        owner.ok_or_else(|| ListFileError::Io(format!("cannot read it as uid {uid}")))?;
    Ok((
        String::from_utf8_lossy(&text).into_owned(),
        owner,
        unsafe_file,
    ))
}

/// A list file's owner's uid and whether the file is unsafe ([`read_list_file`]).
pub type ListOwner = (u32, bool);

/// How long the child reading a list file as its user may take (a file on a network file
/// system whose server does not answer): then the recipient is tried again later.
pub const LIST_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Read a list file in a child: `cmd` runs the deliverer (which answers `--read-list
/// PATH follow|nofollow [owner]`; its program, name and rights set by the caller, here
/// `uid`'s). The file's octets and, with `with_owner`, its owner's uid and whether it is
/// unsafe ([`read_list_file`]), which the child takes from the file it read (the first
/// line it prints: the uid, then `unsafe` when it is).
pub fn read_list_in_child(
    mut cmd: std::process::Command,
    path: &Path,
    no_follow: bool,
    with_owner: bool,
    uid: u32,
) -> Result<(Vec<u8>, Option<ListOwner>), ListFileError> {
    use std::io::{BufRead, Read};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let cannot = |e: std::io::Error| ListFileError::Io(format!("cannot read it as uid {uid}: {e}"));
    if let Some(why) = crate::spool::safety::secret_file(path, &[]) {
        return Err(ListFileError::Denied(format!(
            "{why}, which holds credentials and is never read as a list"
        )));
    }
    cmd.arg("--read-list")
        .arg(path)
        .arg(if no_follow { "nofollow" } else { "follow" });
    if with_owner {
        cmd.arg("owner");
    }
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(cannot)?;
    // The child prints at most the limit (and its owner line); what it prints is taken
    // up to one octet more, and its message up to a line.
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(o) = stdout {
            let _ = o.take(MAX_LIST_FILE + 1 + 16).read_to_end(&mut text);
        }
        text
    });
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = stderr {
            let _ = std::io::BufReader::new(e.take(4096)).read_line(&mut text);
        }
        text
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= LIST_READ_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let text = reader.join().unwrap_or_default();
    let error = errors.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            let (owner, text) = if with_owner {
                let bad = || ListFileError::Io(format!("cannot read it as uid {uid}"));
                let at = text.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
                let (line, rest) = text.split_at_checked(at).ok_or_else(bad)?;
                let rest = rest.get(1..).unwrap_or_default();
                let line = std::str::from_utf8(line).map_err(|_| bad())?.trim();
                let (n, unsafe_file) = match line.strip_suffix(" unsafe") {
                    Some(n) => (n, true),
                    None => (line, false),
                };
                let owner = (n.parse::<u32>().map_err(|_| bad())?, unsafe_file);
                (Some(owner), rest.to_vec())
            } else {
                (None, text)
            };
            if text.len() as u64 > MAX_LIST_FILE {
                return Err(ListFileError::TooLarge(text.len() as u64));
            }
            Ok((text, owner))
        }
        Some(_) => Err(ListFileError::from_line(&error)),
        None => Err(ListFileError::Io(format!(
            "reading it as uid {uid} took more than {}s",
            LIST_READ_LIMIT.as_secs()
        ))),
    }
}

impl Expander<'_> {
    /// Expand addresses (in sendmail's queue order, as [`list_targets`] gives a list
    /// file's), whose `|command` and `/file` targets run as `owner`. The targets come
    /// in sendmail's queue order too: each alias's list reversed, depth first, so that
    /// a transaction's RCPTs (the reverse of the queue order) follow the lists as
    /// written; of two equal targets the first in that order stays.
    ///
    /// dma's catch-all alias: when the file has an alias named `*`, a recipient given
    /// as it is (`owner` None: not a `.forward`'s target) that is a local name with no
    /// alias of its own goes to `*`'s targets instead, whether or not such a user
    /// exists (dma(8), ALIASES; `dma.c` `add_recp`). Targets of aliases, lists and
    /// `*` itself are not caught again.
    pub fn expand(&self, addrs: &[String], owner: Option<u32>) -> Expansion {
        let addrs: Vec<(String, Option<(String, usize)>)> =
            addrs.iter().map(|a| (a.clone(), None)).collect();
        self.expand_at(&addrs, owner, None)
    }

    /// Expand a list file's targets (a `.forward`: `path` and its `text`), which belong
    /// to `owner`, as [`Self::expand`] does; what is refused names the file and line as
    /// sendmail does (`/home/u/.forward: line 1: ...`).
    pub fn expand_list(&self, path: &str, text: &str, owner: Option<u32>) -> Expansion {
        let addrs: Vec<(String, Option<(String, usize)>)> = list_targets_at(text)
            .into_iter()
            .map(|(n, t)| (t, Some((path.to_string(), n))))
            .collect();
        self.expand_at(&addrs, owner, Some(text))
    }

    /// `text`: the list file's text the addresses come from (a `.forward`'s), for the
    /// `-v` notes.
    fn expand_at(
        &self,
        addrs: &[(String, Option<(String, usize)>)],
        owner: Option<u32>,
        text: Option<&str>,
    ) -> Expansion {
        let mut out = Expansion::default();
        let mut included = std::collections::HashSet::new();
        // One list at a time: a list file's line, or one address given as it is (each
        // of sendmail's arguments is a list of its own); its syntax faults first.
        let vias: Vec<Via> = addrs
            .iter()
            .map(|(_, at)| Via {
                at: at.clone(),
                ..Via::default()
            })
            .collect();
        let items: Vec<(&str, &Via)> = addrs.iter().map(|(a, _)| a.as_str()).zip(&vias).collect();
        let lists = items.chunk_by(|x, y| x.1.at.is_some() && x.1.at == y.1.at);
        for list in lists {
            if let (
                Some(text),
                Some((
                    _,
                    Via {
                        at: Some((path, n)),
                        ..
                    },
                )),
            ) = (text, list.first())
            {
                out.notes.push(format!(
                    "{path}: line {n}: forwarding to {}",
                    line_text(text, *n)
                ));
            }
            let bad = syntax_faults(&mut out, list.iter().copied());
            for (&(a, via), bad) in list.iter().zip(bad) {
                if let Some(i) = bad {
                    out.queue_error(i);
                    continue;
                }
                let (targets, errors) = (out.targets.len(), out.errors.len());
                if let (None, Some((aliases, all))) = (owner, self.catch_all(a)) {
                    let mut chain = vec![CATCH_ALL.to_string()];
                    for t in &all.targets {
                        let o = Some(aliases.owner);
                        self.one(t, o, Via::default(), &mut chain, &mut included, &mut out);
                    }
                } else {
                    self.one(
                        a,
                        owner,
                        via.clone(),
                        &mut Vec::new(),
                        &mut included,
                        &mut out,
                    );
                }
                // sendmail's rule (compat cases loop-alias-odi, loop-include-odi,
                // loop-alias-only): an alias or list met again is an address already
                // expanded, dropped as any duplicate is, when the address still names
                // someone or something failed on its own; only an address whose
                // expansion comes back to itself and names no one is
                // `aliasing/forwarding loop broken`.
                if !out.back_refs.is_empty() {
                    out.back_refs.clear();
                    if out.targets.len() == targets && out.errors.len() == errors {
                        out.fail(&Via::default(), ExpandError::Loop(a.trim().to_string()));
                    }
                }
            }
        }
        // The first in queue order wins (sendmail's `recipient` drops an address
        // already queued; one copy per recipient).
        let mut seen = std::collections::HashSet::new();
        out.targets.retain(|e| {
            let k = match &e.target {
                Target::User(u) | Target::Mailbox(u) => format!("user:{}", key_of(u)),
                t => crate::message::address::duplicate_key(&t.address()),
            };
            seen.insert(k)
        });
        out
    }

    /// The aliases and their `*` alias when `addr` is caught by it (see [`Self::expand`]):
    /// a plain local address (not `|`, `/`, `\\` or `:include:`) whose name has no alias.
    fn catch_all(&self, addr: &str) -> Option<(&Aliases, &Alias)> {
        let aliases = self.aliases?;
        let all = aliases.get(CATCH_ALL)?;
        let addr = addr.trim();
        if addr.starts_with(['|', '/', '\\']) || addr.starts_with(":include:") {
            return None;
        }
        let plain = address::parse_one(addr).ok()?;
        if !(self.is_local)(&plain) || aliases.find_local(&key_of(&plain)).is_some() {
            return None;
        }
        Some((aliases, all))
    }

    fn push(out: &mut Expansion, target: Target, via: &Via, owner: Option<u32>) {
        let owner = match target {
            Target::Pipe(_) | Target::File(_) => owner,
            _ => None,
        };
        out.targets.push(Expanded {
            target,
            sender: via.sender.clone(),
            owner,
            ctl: via.ctl.clone(),
        });
    }

    /// Expand one address into `out`. `chain` holds the aliases and `:include:`s being
    /// expanded (for loops), `included` the `:include:` files this expansion has read.
    fn one(
        &self,
        addr: &str,
        owner: Option<u32>,
        via: Via,
        chain: &mut Vec<String>,
        included: &mut std::collections::HashSet<String>,
        out: &mut Expansion,
    ) {
        let addr = addr.trim();
        if addr.is_empty() {
            return;
        }
        if let Some(path) = addr.strip_prefix(":include:") {
            let path = path.trim();
            if chain.iter().any(|c| c == addr) {
                out.back_refs.push(addr.to_string());
                return;
            }
            if chain.len() >= MAX_DEPTH {
                out.fail(&via, ExpandError::Loop(addr.to_string()));
                return;
            }
            // A file already read in this expansion adds nothing new (its targets are
            // there, and the first mention wins): it is not read again, so that lists
            // naming each other many times cannot multiply the work.
            if included.contains(path) {
                return;
            }
            // A relative path would be read from wherever the expanding process happens
            // to be: refused for good, in sendmail's words and status (compat cases
            // include-relative-odi, include-relative-bv).
            if !Path::new(path).is_absolute() {
                out.fail(
                    &via,
                    ExpandError::IncludeRefused(
                        path.to_string(),
                        "Permission denied".into(),
                        status::LIST_EXPANSION,
                    ),
                );
                return;
            }
            if included.len() >= MAX_INCLUDES {
                out.fail(
                    &via,
                    ExpandError::IncludeRefused(
                        path.to_string(),
                        format!("more than {MAX_INCLUDES} :include: files in one expansion"),
                        status::SYSTEM_PERM,
                    ),
                );
                return;
            }
            included.insert(path.to_string());
            // A list that belongs to a user: the file is read with that user's rights, and
            // what it lists belongs to that user, whoever owns the file.
            let as_user = owner.filter(|&u| u != 0);
            match (self.read_include)(Path::new(path), as_user) {
                Ok((text, uid, unsafe_file)) => {
                    let owner = Some(as_user.unwrap_or(uid));
                    chain.push(addr.to_string());
                    // Its members are under the file's control (recorded:
                    // `bp-v-alias-include`, `(---::include:/path---)`); a file a user
                    // owns names the user, the uid and the user's group first
                    // (`bp-v-alias-include-user`, `rsmtest:1001:1001::include:/path`).
                    // A file someone besides its owner may write: its programs and
                    // files could be anyone's (sendmail's `QUNSAFEADDR`).
                    let via = Via {
                        ctl: Some(include_ctl(path, as_user.unwrap_or(uid))),
                        unsafe_list: unsafe_file.then(|| addr.to_string()),
                        ..via
                    };
                    out.notes.push(format!(
                        "{}:include:{path}... including file {path}",
                        at_prefix(&via)
                    ));
                    // A line at a time, as sendmail reads the file: each line's syntax
                    // faults first, then its targets.
                    let items: Vec<(String, Via)> = list_targets_at(&text)
                        .into_iter()
                        .map(|(n, t)| {
                            let at = Some((path.to_string(), n));
                            (t, Via { at, ..via.clone() })
                        })
                        .collect();
                    for line in items.chunk_by(|a, b| a.1.at == b.1.at) {
                        if let Some((
                            _,
                            Via {
                                at: Some((_, n)), ..
                            },
                        )) = line.first()
                        {
                            out.notes.push(format!(
                                "{path}: line {n}: sending to {}",
                                line_text(&text, *n)
                            ));
                        }
                        let bad = syntax_faults(out, line.iter().map(|(t, v)| (t.as_str(), v)));
                        for ((t, via), bad) in line.iter().zip(bad) {
                            match bad {
                                Some(i) => out.queue_error(i),
                                None => self.one(t, owner, via.clone(), chain, included, out),
                            }
                        }
                    }
                    chain.pop();
                }
                Err(e) if e.is_permanent() => out.fail(
                    &via,
                    ExpandError::IncludeRefused(path.to_string(), e.text(), e.status()),
                ),
                Err(e) => out.fail(&via, ExpandError::Include(path.to_string(), e.text())),
            }
            return;
        }
        if addr.starts_with('|') || addr.starts_with('/') || addr.starts_with('\\') {
            let t = Target::of_address(addr, self.is_local);
            if let Target::Mailbox(u) = &t
                && !(self.user_exists)(u)
            {
                out.fail(&via, ExpandError::UnknownUser(addr.to_string()));
                return;
            }
            // A program or file a list file names runs with the rights of the user who
            // controls the list: only one who may log in may have that done by mail
            // (sendmail's QBOGUSSHELL; recorded: `bounce-exp-inc-user-prog-odi`,
            // `forward-prog-noshell-odi`, `forward-prog-anyshell-odi`).
            // One an unsafe `:include:` file names is refused whoever owns it (sendmail:
            // `Address :include:/path is unsafe for mailing to programs`).
            let refusal = |uid| match &via.unsafe_list {
                Some(list) => Some(MailerRefusal::Unsafe(list.clone())),
                None => (self.mailer_refusal)(uid, self.host),
            };
            if let (Some(_), Some(uid), Target::Pipe(_) | Target::File(_)) = (&via.at, owner, &t)
                && let Some(why) = refusal(uid)
            {
                let what = if matches!(t, Target::Pipe(_)) {
                    "programs"
                } else {
                    "files"
                };
                let shown = written(&t);
                let text = format!("{shown}... {}", why.text(what));
                out.fail(&via, ExpandError::Mailer(shown, text));
                return;
            }
            Self::push(out, t, &via, owner);
            return;
        }
        // `Name <addr>` and comments reduce to the address; every target is checked as
        // the same address given on the command line would be.
        let plain = match address::parse_target(addr) {
            Ok(a) => a,
            Err(e) => {
                out.fail(&via, invalid(addr, e));
                return;
            }
        };
        if !(self.is_local)(&plain) {
            Self::push(out, Target::Remote(plain), &via, None);
            return;
        }
        let key = key_of(&plain);
        // An alias line that could not be read, under a name looked up before any alias
        // found: the recipient waits for the file to be fixed.
        if let Some(aliases) = self.aliases
            && let Some(why) = alias_keys(&key)
                .iter()
                .take_while(|k| aliases.get(k).is_none())
                .find_map(|k| aliases.broken(k))
        {
            out.fail(&via, ExpandError::AliasLine(plain, why.to_string()));
            return;
        }
        if let Some(aliases) = self.aliases
            && let Some((key, alias)) = aliases.find_local(&key)
        {
            if chain.last().is_some_and(|c| *c == key) {
                // `bob: bob, ...`: bob's own mailbox.
                if (self.user_exists)(&key) {
                    Self::push(out, Target::Mailbox(key), &via, None);
                } else {
                    out.fail(&via, ExpandError::UnknownUser(plain));
                }
                return;
            }
            if chain.contains(&key) {
                out.back_refs.push(plain);
                return;
            }
            if chain.len() >= MAX_DEPTH {
                out.fail(&via, ExpandError::Loop(plain));
                return;
            }
            let said_at = at_prefix(&via);
            let owner_name = format!("owner-{key}");
            let own = aliases
                .get(&owner_name)
                .map(|o| owner_sender(&owner_name, o));
            let via = Via {
                sender: own.clone().or(via.sender),
                // The nearest alias controls its members (recorded: `bp-v-alias`,
                // `bp-v-alias-nested`).
                ctl: Some(key.clone()),
                at: via.at.clone(),
                unsafe_list: None,
            };
            out.notes.push(format!(
                "{said_at}{}... aliased to {}",
                address::shown(&plain),
                alias
                    .targets
                    .iter()
                    .map(|t| shown_target(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            chain.push(key);
            // An alias's list in reverse: sendmail queues the items of one list in
            // reverse order and sends a transaction's recipients in reverse queue
            // order, so that the members go out in the alias's order (recorded:
            // `order-alias-nested`, `order-alias-dup`, `bp-v-alias`).
            // Its syntax faults first, in written order (sendmail parses the whole
            // list before it expands any target).
            let items: Vec<(&str, &Via)> = alias
                .targets
                .iter()
                .rev()
                .map(|t| (t.as_str(), &via))
                .collect();
            let bad = syntax_faults(out, items.into_iter());
            for (t, bad) in alias.targets.iter().rev().zip(bad) {
                match bad {
                    Some(i) => out.queue_error(i),
                    None => self.one(t, Some(aliases.owner), via.clone(), chain, included, out),
                }
            }
            chain.pop();
            if let Some(own) = own {
                out.owned.push((address::shown(&plain), own));
            }
            return;
        }
        // `user+detail` is the user's (the detail kept, as sendmail's `host`).
        let (user, _) = split_detail(&key);
        if !user.is_empty() && (self.user_exists)(user) {
            Self::push(out, Target::User(key), &via, None);
        } else if key == "postmaster" || key == "mailer-daemon" {
            // RFC 5321 requires postmaster; without an alias it is root's.
            Self::push(out, Target::User("root".into()), &via, None);
        } else {
            out.fail(&via, ExpandError::UnknownUser(plain));
        }
    }
}

/// The fault of a list's target that is no address (see [`ExpandError::is_syntax_fault`]),
/// found before any target of its list is expanded; `None` for an address, a
/// `:include:`, a program, a file, `\\user` and `<>`.
fn syntax_fault(addr: &str) -> Option<ExpandError> {
    let addr = addr.trim();
    if addr.is_empty() || addr.starts_with(['|', '/', '\\']) || addr.starts_with(":include:") {
        return None;
    }
    match address::parse_target(addr) {
        Err(e) if e != address::Invalid::NoUser => Some(invalid(addr, e)),
        _ => None,
    }
}

/// An address refused as no address. Octets that are not UTF-8 were read as U+FFFD:
/// the address is kept with each as `?`, as it is shown everywhere, so that a report
/// never names it with a U+FFFD its writer did not write.
fn invalid(addr: &str, e: address::Invalid) -> ExpandError {
    let addr = if e == address::Invalid::NotUtf8 {
        addr.replace(char::REPLACEMENT_CHARACTER, "?")
    } else {
        addr.to_string()
    };
    ExpandError::Invalid(addr, e)
}

/// Say the syntax faults of one list's targets (`items`, in queue order: the list
/// reversed) in written order, as sendmail's parse of the list does before it expands
/// any of them; returns for each item the index of its error in `out.errors` when it
/// was one (it is not to be expanded: [`Expansion::queue_error`] in its turn instead).
fn syntax_faults<'t>(
    out: &mut Expansion,
    items: impl DoubleEndedIterator<Item = (&'t str, &'t Via)> + ExactSizeIterator,
) -> Vec<Option<usize>> {
    let mut bad = vec![None; items.len()];
    for (k, (t, via)) in items.enumerate().rev() {
        if let Some(e) = syntax_fault(t) {
            out.fail(via, e);
            if let Some(b) = bad.get_mut(k) {
                *b = Some(out.errors.len().saturating_sub(1));
            }
        }
    }
    bad
}

/// `FILE: line N: ` when a target was read from a list file, as sendmail begins what
/// it says while reading one (recorded: `v-alias-include-nested`); else nothing.
fn at_prefix(via: &Via) -> String {
    match &via.at {
        Some((file, line)) => format!("{file}: line {line}: "),
        None => String::new(),
    }
}

/// Line `n` (from 1) of a list file's text, trimmed, as sendmail's `-v` quotes it.
fn line_text(text: &str, n: usize) -> &str {
    text.lines()
        .nth(n.saturating_sub(1))
        .map(str::trim)
        .unwrap_or("")
}

/// A program or file target as a list file writes it, as sendmail names it in messages:
/// a command with blanks or quotes in quotes (`"|/bin/cat >/dev/null"`), as it must be
/// written to be one target; anything else as it is.
fn written(t: &Target) -> String {
    match t {
        Target::Pipe(c) if c.contains([' ', '\t', '"', ',']) => {
            format!("\"|{}\"", c.replace('"', "\\\""))
        }
        t => t.address(),
    }
}

/// What a report's `(expanded from: X)` names for a controlling address ([`Expanded::ctl`]):
/// the alias, or `:include:/path` without the owner `mailq -v` puts first
/// (`nobody:65534:65534::include:/path`; recorded: `bounce-exp-inc-user-prog-odi`).
pub fn ctl_in_report(ctl: &str) -> &str {
    match ctl.find("::include:") {
        Some(k) if !ctl.starts_with(":include:") => ctl.get(k + 1..).unwrap_or(ctl),
        _ => ctl,
    }
}

/// The controlling address of an `:include:` file's members, as sendmail's `mailq -v`
/// shows it: `:include:/path` for a file root owns, else `user:uid:gid::include:/path`
/// with the owner's login name and group (compat cases bp-v-alias-include,
/// bp-v-alias-include-user). An owner without a password entry is shown by the uid.
fn include_ctl(path: &str, uid: u32) -> String {
    if uid == 0 {
        return format!(":include:{path}");
    }
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{}:{uid}:{}::include:{path}", u.name, u.gid.as_raw()),
        _ => format!("{uid}:{uid}:{uid}::include:{path}"),
    }
}

/// The envelope sender of the members of an alias whose owner alias `name` is `owner`:
/// what `owner` expands to when that is one plain address (`owner-list:
/// listboss@example.org` gives `listboss@example.org`), else `name` itself (sendmail's
/// alias.c uses the owner's value unless it holds one of `,:/|"`; recorded:
/// `bp-v-alias-owner`, `bp-v-alias-owner-two`).
fn owner_sender(name: &str, owner: &Alias) -> String {
    match owner.targets.as_slice() {
        [one] if !one.contains([',', ':', '/', '|', '"']) => {
            address::parse_one(one).unwrap_or_else(|_| name.to_string())
        }
        _ => name.to_string(),
    }
}

/// The queue entry recipients an expansion of `parent` gives: each is a
/// [`recipient_from`] `parent`, with the parent as the one it was expanded from and the
/// address the expansion began with (qualified with `host`) as its `Final-Recipient:`
/// (compat cases alias-list-member-reject5, alias-one-member-reject5).
pub fn recipients_from(
    parent: &crate::spool::entry::Recipient,
    targets: Vec<Expanded>,
    host: &str,
) -> Vec<crate::spool::entry::Recipient> {
    let final_rcpt = parent.final_rcpt.clone().unwrap_or_else(|| {
        if parent.address.contains('@') {
            parent.address.clone()
        } else {
            format!("{}@{host}", parent.address)
        }
    });
    // sendmail passes NOTIFY on only through a one-to-one expansion (observed with
    // 8.17.1.9 against a server offering DSN).
    let several = targets.len() > 1;
    targets
        .into_iter()
        .map(|t| {
            let mut n = recipient_from(parent, t.target.address());
            // The nearest alias or `:include:` that led to it, as sendmail's report
            // names it (`(expanded from: :include:/path)`; recorded: `file-inc-perm`);
            // the parent for a `.forward`'s own targets.
            n.expanded_from = Some(
                t.ctl
                    .as_deref()
                    .map_or(parent.address.as_str(), ctl_in_report)
                    .to_string(),
            );
            n.final_rcpt = Some(final_rcpt.clone());
            // Below a one-to-many expansion every target is one of many (sendmail's
            // QPRIMARY is the top level's alone).
            n.fanout = several || parent.fanout;
            n.sender = t.sender.or_else(|| parent.sender.clone());
            n.owner = t.owner;
            n.ctl = t.ctl.or_else(|| parent.ctl.clone());
            n
        })
        .collect()
}

/// The queue entry recipient for `address`, which an expansion of `parent` led to (a
/// target, or one refused at expansion, reported under its own address): the parent's
/// NOTIFY, sender, controlling alias and ORCPT (only one that was given: sendmail sends
/// none of its own, and its reports have no `Original-Recipient:` for an alias's
/// members).
pub fn recipient_from(
    parent: &crate::spool::entry::Recipient,
    address: String,
) -> crate::spool::entry::Recipient {
    let mut n = crate::spool::entry::Recipient::new(address);
    n.orcpt = parent.orcpt.clone();
    n.notify = parent.notify.clone();
    n.sender = parent.sender.clone();
    n.ctl = parent.ctl.clone();
    n
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Aliases {
        Aliases::parse(text, Path::new("/etc/mail/aliases"), true)
    }

    #[test]
    fn summary_counts_as_sendmail() {
        // Each case recorded from sendmail 8.17.1.9's newaliases.
        let cases: &[(&str, &str)] = &[
            ("a: b\n", "1 aliases, longest 1 bytes, 2 bytes total"),
            ("a: bb\n", "1 aliases, longest 2 bytes, 3 bytes total"),
            ("aa: b\n", "1 aliases, longest 1 bytes, 3 bytes total"),
            ("a: b, c\n", "1 aliases, longest 4 bytes, 5 bytes total"),
            ("a: b,\n  c\n", "1 aliases, longest 5 bytes, 6 bytes total"),
            ("\"a b\": c\n", "1 aliases, longest 1 bytes, 6 bytes total"),
            ("a:b\n", "1 aliases, longest 1 bytes, 2 bytes total"),
            ("a:    b   \n", "1 aliases, longest 4 bytes, 5 bytes total"),
            ("# only\n", "0 aliases, longest 0 bytes, 0 bytes total"),
            (
                "a: :include:/nonexist\n",
                "1 aliases, longest 18 bytes, 19 bytes total",
            ),
            (
                "a: \"|/bin/cat\"\n",
                "1 aliases, longest 11 bytes, 12 bytes total",
            ),
            ("a b: c\n", "1 aliases, longest 1 bytes, 4 bytes total"),
            (
                "a: b\n#c\n c\n",
                "1 aliases, longest 1 bytes, 2 bytes total",
            ),
            ("a:b\n\tc: d\n", "1 aliases, longest 6 bytes, 7 bytes total"),
            ("a: b\nA: c\n", "2 aliases, longest 1 bytes, 4 bytes total"),
        ];
        for (text, want) in cases {
            let a = parse(text);
            assert_eq!(
                a.summary(),
                format!("/etc/mail/aliases: {want}"),
                "{text:?}"
            );
            assert!(a.errors().is_empty(), "{text:?}: {:?}", a.errors());
        }
        assert_eq!(
            parse("a: b\nA: c\n").warnings(),
            vec!["/etc/mail/aliases: line 2: A... Warning: duplicate alias name a"]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "bad line\n",
                "line 1: missing colon",
                "0 aliases, longest 0 bytes, 0 bytes total",
            ),
            (
                "a: b\nbad\nc: d\n",
                "line 2: missing colon",
                "2 aliases, longest 1 bytes, 4 bytes total",
            ),
            (
                ": b\n",
                "line 1: : b... illegal alias name",
                "0 aliases, longest 0 bytes, 0 bytes total",
            ),
            (
                "a:\n",
                "line 1: a:... missing value for alias",
                "0 aliases, longest 0 bytes, 0 bytes total",
            ),
            (
                "a: , ,\n",
                "line 1: a: , ,... missing value for alias",
                "0 aliases, longest 0 bytes, 0 bytes total",
            ),
            (
                "\"\": b\n",
                "line 1: \"\": b... illegal alias name",
                "0 aliases, longest 0 bytes, 0 bytes total",
            ),
            (
                "  a: b\n",
                "line 1: Non-continuation line starts with space",
                "0 aliases, longest 0 bytes, 0 bytes total",
            ),
            (
                "a: b,\n\n c\n",
                "line 3: Non-continuation line starts with space",
                "1 aliases, longest 2 bytes, 3 bytes total",
            ),
        ];
        for (text, err, summary) in cases {
            let a = parse(text);
            assert_eq!(
                a.errors(),
                vec![format!("/etc/mail/aliases: {err}")],
                "{text:?}"
            );
            assert_eq!(a.summary(), format!("/etc/mail/aliases: {summary}"));
        }
    }

    fn expander<'a>(a: &'a Aliases, includes: &'a IncludeReader) -> Expander<'a> {
        Expander {
            aliases: Some(a),
            is_local: &|s: &str| !s.contains('@') || s.ends_with("@host.example"),
            user_exists: &|u: &str| ["root", "bob", "carol"].contains(&u),
            read_include: includes,
            mailer_refusal: &|_, _| None,
            host: "host.example",
        }
    }

    fn addrs(e: &Expansion) -> Vec<String> {
        e.targets.iter().map(|t| t.target.address()).collect()
    }

    /// An alias whose line (or one of its continuation lines) holds a NUL or a byte
    /// order mark is left out, as sendmail leaves it out, but its name is kept: a
    /// recipient of that name (directly, through another alias, as `name+detail`)
    /// waits with the line's problem, never delivered to a mailbox of that name nor
    /// refused as unknown; other aliases are used as usual.
    #[test]
    fn a_recipient_whose_alias_line_is_not_text_waits() {
        let a = parse(
            "Root: admin@example.org, b@example.org\0junk\nnul\0x: d@example.org\n\
             after: e@example.org\ncont: f@example.org,\n  g\0@example.org\n\
             via: bob, root\n# note\0\n",
        );
        assert_eq!(
            a.errors(),
            [
                "/etc/mail/aliases: line 1: a NUL octet; the file is not text",
                "/etc/mail/aliases: line 2: a NUL octet; the file is not text",
                "/etc/mail/aliases: line 5: a NUL octet; the file is not text",
                "/etc/mail/aliases: line 7: a NUL octet; the file is not text",
            ]
        );
        for (name, line) in [("root", 1), ("ROOT", 1), ("nul", 2), ("cont", 5)] {
            assert_eq!(
                a.broken(name),
                Some(
                    format!("/etc/mail/aliases: line {line}: a NUL octet; the file is not text")
                        .as_str()
                ),
                "{name}"
            );
        }
        assert!(a.get("cont").is_none() && a.get("root").is_none());
        assert!(a.broken("after").is_none() && a.broken("# note").is_none());
        let none = |_: &Path, _: Option<u32>| Err(ListFileError::Io("none".into()));
        let ex = expander(&a, &none);
        let one = |s: &str| ex.expand(&[s.to_string()], None);
        assert_eq!(addrs(&one("after")), ["e@example.org"]);
        for (rcpt, who) in [
            ("root", "root"),
            ("root+x", "root+x"),
            ("via", "root"),
            ("cont", "cont"),
        ] {
            let x = one(rcpt);
            let e = x
                .errors
                .iter()
                .find(|e| e.is_temporary())
                .unwrap_or_else(|| panic!("{rcpt}: {x:?}"));
            assert_eq!(e.status(), crate::exit::Sysexit::TempFail, "{rcpt}");
            assert!(
                e.text().starts_with(&format!(
                    "{who}... alias not read: /etc/mail/aliases: line "
                )),
                "{rcpt}: {}",
                e.text()
            );
            assert!(!addrs(&x).contains(&"root".to_string()), "{rcpt}: {x:?}");
        }
    }

    /// sendmail's `+detail` (recorded: `plus-bv-detail`, `plus-bv-forms`,
    /// `plus-bv-alias`): the alias `user+detail`, then `user+*`, then `user`; without
    /// one, the user's own mailbox, the detail kept; an empty user is unknown.
    #[test]
    fn plus_detail() {
        let a =
            parse("list: a@example.org\nlist+x: b@example.org\nbob+*: c@example.org\nfwd: root\n");
        let none = |_: &Path, _: Option<u32>| Err(ListFileError::Io("none".into()));
        let ex = expander(&a, &none);
        let one = |s: &str| ex.expand(&[s.to_string()], None);
        assert_eq!(addrs(&one("list+x")), ["b@example.org"]);
        assert_eq!(addrs(&one("list+y")), ["a@example.org"]);
        assert_eq!(addrs(&one("bob+z")), ["c@example.org"]);
        assert_eq!(addrs(&one("fwd+q")), ["root"]);
        assert_eq!(addrs(&one("root+foo")), ["root+foo"]);
        assert_eq!(addrs(&one("root+foo@host.example")), ["root+foo"]);
        assert_eq!(addrs(&one("root+")), ["root+"]);
        assert_eq!(addrs(&one("root+b+c")), ["root+b+c"]);
        for unknown in ["+foo", "nosuch+foo"] {
            let x = one(unknown);
            assert!(x.targets.is_empty(), "{unknown}");
            assert_eq!(x.errors[0].text(), format!("{unknown}... User unknown"));
        }
        assert_eq!(split_detail("a+b+c"), ("a", Some("b+c")));
        assert_eq!(split_detail("a"), ("a", None));
        assert_eq!(alias_keys("a+b"), ["a+b", "a+*", "a"]);
        assert_eq!(alias_keys("+b"), ["+b"]);
    }

    /// The same recipient (recorded: `dup-case-*`): local users by name ignoring case,
    /// other addresses byte for byte.
    #[test]
    fn same_recipient() {
        let is_local = |s: &str| !s.contains('@') || s.ends_with("@host.example");
        let k = |s: &str| recipient_key(s, &is_local);
        assert_eq!(k("Root"), k("root"));
        assert_eq!(k("Root@host.example"), k("root"));
        assert_ne!(k("root+a"), k("root"));
        assert_ne!(k("U@example.org"), k("u@example.org"));
        assert_ne!(k("u@EXAMPLE.org"), k("u@example.org"));
        assert_eq!(k("u@example.org"), k("u@example.org"));
        let a = parse("list: u@example.org, U@example.org, u@EXAMPLE.org, u@example.org\n");
        let none = |_: &Path, _: Option<u32>| Err(ListFileError::Io("none".into()));
        let x = expander(&a, &none).expand(&["list".to_string()], None);
        assert_eq!(addrs(&x).len(), 3);
    }

    /// dma's `*`: every local recipient without an alias of its own, user or not, goes
    /// to its targets; alias targets, `.forward` targets and remote addresses do not.
    #[test]
    fn catch_all_alias_as_in_dma() {
        let a = parse("root: bob\n*: admin@remote.example, carol\nlist: stranger\n");
        let inc_ = |_: &Path, _: Option<u32>| -> Result<(String, u32), ListFileError> {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound).into())
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let e = expander(&a, &inc);
        let x = |s: &str| e.expand(&[s.to_string()], None);
        for caught in ["stranger", "bob", "bob@host.example", "Postmaster"] {
            let got = x(caught);
            assert_eq!(
                addrs(&got),
                vec!["admin@remote.example", "carol"],
                "{caught}"
            );
            assert!(got.errors.is_empty(), "{caught}: {:?}", got.errors);
        }
        assert_eq!(addrs(&x("root")), vec!["bob"]);
        assert_eq!(addrs(&x("x@remote.example")), vec!["x@remote.example"]);
        // An alias's own targets are not caught: `stranger` is unknown there.
        let l = x("list");
        assert!(addrs(&l).is_empty());
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        // Nor a .forward's (an owner is given).
        assert!(addrs(&e.expand(&["stranger".to_string()], Some(1000))).is_empty());
        // Without `*`, nothing changes.
        let plain = parse("root: bob\n");
        let e = expander(&plain, &inc);
        assert!(addrs(&e.expand(&["stranger".to_string()], None)).is_empty());
        assert_eq!(addrs(&e.expand(&["bob".to_string()], None)), vec!["bob"]);
    }

    #[test]
    fn expansion() {
        let mut a = parse(concat!(
            "postmaster: root\n",
            "staff: bob, carol@host.example, x@remote.example\n",
            "list: :include:/lists/members\n",
            "owner-list: bob\n",
            "owner-staff: bob, carol\n",
            "self: bob\n",
            "bob: bob, bob@remote.example\n",
            "prog: \"|/usr/bin/prog -a\", /var/log/archive\n",
            "loop1: loop2\n",
            "loop2: loop1\n",
            "loopa: loopb, xa@remote.example\n",
            "loopb: loopa, xb@remote.example\n",
            "incloop: :include:/lists/self\n",
            "relinc: :include:lists/members, r@remote.example\n",
            "unknown: nobody-here\n",
            "Nested: staff, Staff, root\n",
        ));
        a.owner = 0;
        let inc_ = |p: &Path, _: Option<u32>| -> Result<(String, u32), ListFileError> {
            if p == Path::new("lists/members") {
                Ok(("read@remote.example\n".into(), 0))
            } else if p == Path::new("/lists/self") {
                Ok((":include:/lists/self, s@remote.example\n".into(), 1000))
            } else if p == Path::new("/lists/members") {
                Ok((
                    "# members\nm1@remote.example\nm2@remote.example, carol\n".into(),
                    1000,
                ))
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound).into())
            }
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let e = expander(&a, &inc);
        let x = |s: &str| e.expand(&[s.to_string()], None);
        assert_eq!(addrs(&x("postmaster")), vec!["root"]);
        // In sendmail's queue order: each list reversed, depth first; a list file's
        // lines in order, each line reversed.
        assert_eq!(
            addrs(&x("staff")),
            vec!["x@remote.example", "carol", "bob@remote.example", "\\bob"]
        );
        assert_eq!(
            addrs(&x("bob@host.example")),
            vec!["bob@remote.example", "\\bob"]
        );
        let list = x("list");
        assert_eq!(
            addrs(&list),
            vec!["m1@remote.example", "carol", "m2@remote.example"]
        );
        // The owner alias's one address is the members' sender; with two, its name.
        assert!(
            list.targets
                .iter()
                .all(|t| t.sender.as_deref() == Some("bob"))
        );
        assert!(
            x("staff")
                .targets
                .iter()
                .all(|t| t.sender.as_deref() == Some("owner-staff"))
        );
        let prog = x("prog");
        assert_eq!(addrs(&prog), vec!["/var/log/archive", "|/usr/bin/prog -a"]);
        assert!(prog.targets.iter().all(|t| t.owner == Some(0)));
        assert_eq!(x("loop1").errors, vec![ExpandError::Loop("loop1".into())]);
        // A relative :include: is never read, and refused for good.
        let r = x("relinc");
        assert_eq!(addrs(&r), vec!["r@remote.example"]);
        assert_eq!(
            r.errors,
            vec![ExpandError::IncludeRefused(
                "lists/members".into(),
                "Permission denied".into(),
                status::LIST_EXPANSION
            )]
        );
        assert_eq!(r.errors[0].status(), crate::exit::Sysexit::Usage);
        // A loop that still names someone is a duplicate, dropped without a word.
        let l = x("loopa");
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(addrs(&l), vec!["xa@remote.example", "xb@remote.example"]);
        assert_eq!(
            x("incloop").errors,
            vec![],
            "an :include: naming itself among others"
        );
        assert_eq!(
            x("unknown").errors,
            vec![ExpandError::UnknownUser("nobody-here".into())]
        );
        assert_eq!(x("ghost").errors[0].text(), "ghost... User unknown");
        // Duplicates collapse; remote addresses pass through.
        let n = x("nested");
        assert_eq!(
            addrs(&n),
            vec![
                "root",
                "x@remote.example",
                "carol",
                "bob@remote.example",
                "\\bob"
            ]
        );
        assert_eq!(addrs(&x("x@remote.example")), vec!["x@remote.example"]);
        assert_eq!(addrs(&x("\\bob")), vec!["\\bob"]);
        assert_eq!(addrs(&x("self")), vec!["bob@remote.example", "\\bob"]);
        // Without aliasing (-n) only users are checked.
        let none = Expander {
            aliases: None,
            ..expander(&a, &inc)
        };
        assert_eq!(
            addrs(&none.expand(&["staff".into()], None)),
            Vec::<String>::new()
        );
        assert_eq!(addrs(&none.expand(&["bob".into()], None)), vec!["bob"]);
    }

    /// /etc/shells as sendmail's `usershellok` reads it (through getusershell(3)).
    #[test]
    fn login_shells_as_sendmail_reads_them() {
        let shells = "# /etc/shells: valid login shells\n/bin/sh\n  /bin/bash # mine\n\nbash\n";
        assert!(shell_listed("/bin/sh", Some(shells)));
        assert!(shell_listed("/bin/bash", Some(shells)));
        assert!(!shell_listed("/usr/sbin/nologin", Some(shells)));
        assert!(!shell_listed("bash", Some(shells)));
        // A commented-out shell is none; an empty shell is always valid.
        assert!(!shell_listed("/bin/zsh", Some("#/bin/zsh\n")));
        assert!(shell_listed("", Some("")));
        // The wildcard line lets every shell through.
        assert!(shell_listed(
            "/usr/sbin/nologin",
            Some("/bin/sh\n/SENDMAIL/ANY/SHELL/\n")
        ));
        // No file: the C library's list.
        assert!(shell_listed("/bin/sh", None));
        assert!(shell_listed("/bin/csh", None));
        assert!(!shell_listed("/bin/bash", None));
        assert!(!shell_listed("/usr/sbin/nologin", None));
    }

    /// A program or file that a list file controlled by a user without a login shell
    /// names is refused with the file and line, as sendmail refuses it; the same from
    /// the aliases file (root's), or from a user who has one, is taken.
    #[test]
    fn programs_and_files_of_a_user_without_a_shell_are_refused() {
        let mut a = parse("lst: :include:/l/nobody, :include:/l/user, \"|/bin/root\"\n");
        a.owner = 0;
        let inc_ = |p: &Path, _: Option<u32>| -> Result<(String, u32), ListFileError> {
            match p.to_str() {
                Some("/l/nobody") => Ok((
                    "# members\nm@remote.example\n\"|/bin/cat >/dev/null\", /var/x.out\n".into(),
                    65534,
                )),
                Some("/l/user") => Ok(("\"|/bin/u\"\n".into(), 1000)),
                _ => Err(ListFileError::Io("no such file".into())),
            }
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let refusal = |uid: u32, host: &str| {
            (uid == 65534).then(|| MailerRefusal::NoShell(format!("nobody@{host}")))
        };
        let e = Expander {
            mailer_refusal: &refusal,
            ..expander(&a, &inc)
        };
        let x = e.expand(&["lst".into()], None);
        assert_eq!(
            addrs(&x),
            vec!["|/bin/root", "|/bin/u", "m@remote.example"],
            "{x:?}"
        );
        let texts: Vec<String> = (0..x.errors.len()).map(|k| x.said(k)).collect();
        assert_eq!(
            texts,
            vec![
                "/l/nobody: line 3: /var/x.out... User nobody@host.example doesn't have a valid shell for mailing to files",
                "/l/nobody: line 3: \"|/bin/cat >/dev/null\"... User nobody@host.example doesn't have a valid shell for mailing to programs",
            ]
        );
        assert_eq!(x.errors[1].target(), "\"|/bin/cat >/dev/null\"");
        assert_eq!(x.errors[1].status(), crate::exit::Sysexit::Usage);
        assert_eq!(x.errors[1].reply().1, status::NOT_AUTHORIZED);
        // The report names the file, not the owner mailq -v shows first.
        assert_eq!(x.ctl_of(1).map(ctl_in_report), Some(":include:/l/nobody"));
        // A .forward's own lines are numbered too.
        let f = e.expand_list("/home/n/.forward", "\n\"|/bin/x y\"\n", Some(65534));
        assert_eq!(
            (0..f.errors.len()).map(|k| f.said(k)).collect::<Vec<_>>(),
            vec![
                "/home/n/.forward: line 2: \"|/bin/x y\"... User nobody@host.example doesn't have a valid shell for mailing to programs"
            ]
        );
        assert!(f.targets.is_empty());
        assert_eq!(
            MailerRefusal::UnknownUid(4242).text("programs"),
            "UID 4242 is an unknown user: cannot mail to programs"
        );
    }

    /// What `-v` tells of an expansion, in sendmail's words (recorded: `v-alias-nested`,
    /// `v-include`, `v-alias-include-nested`, `v-forward-lines`).
    #[test]
    fn expansion_notes_as_sendmail_tells_them() {
        let a = parse("lst: :include:/l/m, a9@remote.example\nsub: s1@remote.example\n");
        let inc_ = |p: &Path, _: Option<u32>| -> Result<(String, u32), ListFileError> {
            match p.to_str() {
                Some("/l/m") => Ok(("m1@remote.example\n\n sub \n".into(), 0)),
                _ => Err(ListFileError::Io("no such file".into())),
            }
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let e = expander(&a, &inc);
        assert_eq!(
            e.expand(&["lst".into()], None).notes,
            vec![
                "lst... aliased to :include:/l/m, a9@remote.example",
                ":include:/l/m... including file /l/m",
                "/l/m: line 1: sending to m1@remote.example",
                "/l/m: line 3: sending to sub",
                "/l/m: line 3: sub... aliased to s1@remote.example",
            ]
        );
        let f = e.expand_list(
            "/h/.forward",
            "f1@remote.example\n# note\nf2@remote.example, f3@remote.example\n",
            Some(1000),
        );
        assert_eq!(
            f.notes,
            vec![
                "/h/.forward: line 1: forwarding to f1@remote.example",
                "/h/.forward: line 3: forwarding to f2@remote.example, f3@remote.example",
            ]
        );
    }

    #[test]
    fn controlling_addresses_as_reports_name_them() {
        assert_eq!(ctl_in_report("lst"), "lst");
        assert_eq!(ctl_in_report(":include:/a/b"), ":include:/a/b");
        assert_eq!(
            ctl_in_report("nobody:65534:65534::include:/a/b"),
            ":include:/a/b"
        );
    }

    /// Who reads an `:include:` file, and who what it lists runs as: the list's owner.
    #[test]
    fn include_files_are_read_as_the_lists_owner() {
        let mut a = parse(concat!(
            "system: :include:/sys/list\n",
            "userlist: :include:/home/u/list\n",
        ));
        a.owner = 0;
        let reads = std::cell::RefCell::new(Vec::new());
        // (path, owner of the file, text)
        let files: &[(&str, u32, &str)] = &[
            ("/sys/list", 0, "\"|/bin/sys\", :include:/home/u/list"),
            (
                "/home/u/list",
                1000,
                "\"|/bin/u\", :include:/other/list, :include:/root/secret",
            ),
            ("/other/list", 2000, "/var/other.mbox"),
            ("/root/secret", 0, "secret@remote.example"),
        ];
        let inc_ = |p: &Path, as_user: Option<u32>| -> Result<(String, u32), ListFileError> {
            reads.borrow_mut().push((p.display().to_string(), as_user));
            let &(_, uid, text) = files
                .iter()
                .find(|(f, _, _)| Path::new(f) == p)
                .expect("a known file");
            // Root's secret: only root may read it.
            if uid == 0 && as_user.is_some_and(|u| u != 0) && p.starts_with("/root") {
                return Err(ListFileError::Denied("Permission denied".into()));
            }
            Ok((text.into(), uid))
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let e = expander(&a, &inc);
        let owners = |x: &Expansion| -> Vec<(String, Option<u32>)> {
            x.targets
                .iter()
                .map(|t| (t.target.address(), t.owner))
                .collect()
        };
        // From the aliases file (root's): the root-owned list with the reader's rights,
        // the user's list it names likewise (root named it), what the user's list names
        // with the user's rights, and everything in the user's lists runs as the user
        // (each line's targets in sendmail's queue order, the reverse).
        let x = e.expand(&["system".into()], None);
        assert_eq!(
            owners(&x),
            vec![
                ("/var/other.mbox".into(), Some(1000)),
                ("|/bin/u".into(), Some(1000)),
                ("|/bin/sys".into(), Some(0)),
            ]
        );
        assert_eq!(
            x.errors,
            vec![ExpandError::IncludeRefused(
                "/root/secret".into(),
                "Permission denied".into(),
                status::NOT_AUTHORIZED
            )]
        );
        assert_eq!(
            reads.take(),
            vec![
                ("/sys/list".to_string(), None),
                ("/home/u/list".to_string(), None),
                ("/root/secret".to_string(), Some(1000)),
                ("/other/list".to_string(), Some(1000)),
            ]
        );
        // A user's .forward (expanded as the user's list): every include as the user.
        let x = e.expand(&[":include:/other/list".into()], Some(1000));
        assert_eq!(owners(&x), vec![("/var/other.mbox".into(), Some(1000))]);
        assert_eq!(reads.take(), vec![("/other/list".to_string(), Some(1000))]);
        let x = e.expand(&["userlist".into()], Some(1000));
        assert_eq!(x.errors.len(), 1, "{x:?}");
        // The default reader leaves user-read files to the deliverer.
        assert!(matches!(
            read_include(Path::new("/etc/hostname"), Some(1000)),
            Err(ListFileError::Io(_))
        ));
    }

    /// The aliases file and the list files (`:include:`, `.forward`) name a byte order
    /// mark at the start, one inside a line and a NUL with the file and line, as the
    /// config's files do (`config::tests::every_file_names_...`). The aliases file keeps
    /// its other lines and aliases (a leading mark is dropped); a list file is not used.
    #[test]
    fn aliases_and_list_files_name_a_byte_order_mark_and_a_nul() {
        use crate::text::{BOM_AT_START, BOM_INSIDE, NUL_OCTET};
        let path = Path::new("/etc/aliases");
        for (text, line, what, kept) in [
            ("\u{feff}postmaster: root\nbob: root\n", 1, BOM_AT_START, 2),
            (
                "postmaster: root\nb\0ob: root\ncarol: root\n",
                2,
                NUL_OCTET,
                2,
            ),
            ("postmaster: root\nbob: \u{feff}root\n", 2, BOM_INSIDE, 1),
            // A continuation line with a NUL is left out, and so is its alias, whose
            // recipients wait (`a_recipient_whose_alias_line_is_not_text_waits`): never
            // sent to a part of its list.
            ("a: x,\n  y\0\nb: root\n", 2, NUL_OCTET, 1),
        ] {
            let a = Aliases::parse(text, path, false);
            assert_eq!(
                a.errors(),
                [format!("/etc/aliases: line {line}: {what}").as_str()],
                "{text:?}"
            );
            assert_eq!(a.map.len(), kept, "{text:?}");
            assert!(a.map.keys().all(|k| k.is_ascii()), "{text:?}");
        }
        let dir = std::env::temp_dir().join(format!("rsm-list-text-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("members");
        for (text, want) in [
            (
                &b"\xef\xbb\xbfm1@example.org\n"[..],
                Some((1, BOM_AT_START)),
            ),
            (b"m1@example.org\nm2\0x@example.org\n", Some((2, NUL_OCTET))),
            (
                b"m1@example.org\nm2@ex\xef\xbb\xbfample.org\n",
                Some((2, BOM_INSIDE)),
            ),
            (b"m1@example.org\n", None),
        ] {
            std::fs::write(&list, text).unwrap();
            let got = read_list_file(&list, false).map(|_| ());
            let want = want.map_or(Ok(()), |(n, w)| Err(ListFileError::NotText(n, w.into())));
            assert_eq!(got, want, "{text:?}");
            if let Err(e) = got {
                assert!(e.is_permanent());
                assert!(e.text().starts_with("line "), "{}", e.text());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn list_file_errors_cross_a_pipe_as_lines() {
        for e in [
            ListFileError::NotRegular("a FIFO".into()),
            ListFileError::TooLarge(2 << 20),
            ListFileError::Denied("Permission denied".into()),
            ListFileError::Io("No such file or directory".into()),
            ListFileError::WorldWritable,
            ListFileError::NotText(3, crate::text::NUL_OCTET.into()),
        ] {
            assert_eq!(ListFileError::from_line(&e.to_line()), e);
        }
        assert_eq!(
            ListFileError::from_line("too-large x"),
            ListFileError::Io("too-large x".into())
        );
        assert_eq!(
            ListFileError::from_line(""),
            ListFileError::Io("cannot read the file".into())
        );
        let e = ListFileError::Io("a\nb".into());
        assert_eq!(e.to_line(), "io a b");
    }

    #[test]
    fn a_list_file_anyone_may_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rsm-list-ww-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("members");
        std::fs::write(&list, "|/bin/sh -c id\n").unwrap();
        for (mode, usable) in [(0o666, false), (0o602, false), (0o664, true), (0o644, true)] {
            std::fs::set_permissions(&list, std::fs::Permissions::from_mode(mode)).unwrap();
            let got = read_list_file(&list, false);
            if usable {
                assert!(got.is_ok(), "{mode:o}: {got:?}");
            } else {
                assert_eq!(got, Err(ListFileError::WorldWritable), "{mode:o}");
            }
        }
        let e = ExpandError::IncludeRefused(
            "/l".into(),
            ListFileError::WorldWritable.text(),
            ListFileError::WorldWritable.status(),
        );
        assert_eq!(
            format!("{} {}", e.reply().1, e.reply().2),
            "5.2.4 :include:/l... Cannot open /l: World writable file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_regular_files_up_to_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("rsm-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok");
        std::fs::write(&ok, "a@example.org\n").unwrap();
        assert_eq!(read_list_file(&ok, true).unwrap().0, b"a@example.org\n");
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; MAX_LIST_FILE as usize + 1]).unwrap();
        assert_eq!(
            read_list_file(&big, false),
            Err(ListFileError::TooLarge(MAX_LIST_FILE + 1))
        );
        std::fs::write(&big, vec![b'x'; MAX_LIST_FILE as usize]).unwrap();
        assert!(read_list_file(&big, false).is_ok());
        let link = dir.join("link");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        assert!(read_list_file(&link, false).is_ok());
        assert_eq!(
            read_list_file(&link, true),
            Err(ListFileError::NotRegular("a symbolic link".into()))
        );
        assert_eq!(
            read_list_file(&dir, false),
            Err(ListFileError::NotRegular("a directory".into()))
        );
        assert_eq!(
            read_list_file(Path::new("/dev/zero"), false),
            Err(ListFileError::NotRegular("a device".into()))
        );
        assert!(matches!(
            read_list_file(&dir.join("missing"), false),
            Err(ListFileError::Io(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The queue order of sendmail 8.17 (recorded: `order-alias-nested`,
    /// `order-alias-dup`): the reverse of the written order within each list, depth
    /// first; a list file's lines in order, each reversed; the first queued of two equal
    /// addresses stays.
    #[test]
    fn expansion_in_sendmails_queue_order() {
        let a = parse(concat!(
            "list: a1@r.example, sub, a3@r.example, :include:/m\n",
            "sub: s1@r.example, s2@r.example\n",
            "dup: a@r.example, d@r.example, b@r.example, a@r.example, sub2\n",
            "sub2: b@r.example, c@r.example\n",
        ));
        let inc_ = |_: &Path, _: Option<u32>| -> Result<(String, u32), ListFileError> {
            Ok(("m1@r.example, m2@r.example\nm3@r.example\n".into(), 0))
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let e = expander(&a, &inc);
        assert_eq!(
            addrs(&e.expand(&["list".into()], None)),
            [
                "m2@r.example",
                "m1@r.example",
                "m3@r.example",
                "a3@r.example",
                "s2@r.example",
                "s1@r.example",
                "a1@r.example"
            ]
        );
        assert_eq!(
            addrs(&e.expand(&["dup".into()], None)),
            ["c@r.example", "b@r.example", "a@r.example", "d@r.example"]
        );
        assert_eq!(
            list_targets("# c\nx, y\n\nz\n"),
            ["y".to_string(), "x".into(), "z".into()]
        );
    }

    /// sendmail parses a whole list before it expands any of its targets: a list's
    /// syntax faults are said first, in written order, then what its targets' expansion
    /// finds, in queue order; an `:include:` file or `.forward` a line at a time
    /// (recorded: `alias-bad-order-odi`, `bv-alias-bad-order`).
    #[test]
    fn syntax_faults_of_a_list_come_first_in_written_order() {
        let a = parse(concat!(
            "lst: b@@x.example, nosuch1, ok1@r.example, c@@x.example, :include:/inc, nosuch2\n",
            "bv: b@@x.example, root, c@@x.example, C@@x.example, b@@x.example, d@@x.example\n",
            "outer: o@@x.example, inner, nosuch5\n",
            "inner: nosuch6, i@@x.example\n",
        ));
        let inc_ = |_: &Path, _: Option<u32>| -> Result<(String, u32), ListFileError> {
            Ok(("i1@@x.example, nosuch3\nnosuch4\n".into(), 0))
        };
        let inc = |p: &Path, u: Option<u32>| inc_(p, u).map(|(t, o)| (t, o, false));
        let e = expander(&a, &inc);
        let said = |x: &Expansion| (0..x.errors.len()).map(|k| x.said(k)).collect::<Vec<_>>();
        let x = e.expand(&["lst".into()], None);
        assert_eq!(
            said(&x),
            [
                "b@@x.example... Invalid route address",
                "c@@x.example... Invalid route address",
                "nosuch2... User unknown",
                "/inc: line 1: i1@@x.example... Invalid route address",
                "/inc: line 1: nosuch3... User unknown",
                "/inc: line 2: nosuch4... User unknown",
                "nosuch1... User unknown",
            ]
        );
        assert_eq!(addrs(&x), ["ok1@r.example"]);
        // Their places in queue order, where a report lists them: the include's line
        // before `c`, `b` last.
        let queued = |x: &Expansion| {
            let mut faults: Vec<(usize, String)> = (0..x.errors.len())
                .filter(|&k| x.errors[k].is_syntax_fault())
                .map(|k| (x.error_queued[k], x.errors[k].address().to_string()))
                .collect();
            faults.sort();
            faults.into_iter().map(|(_, a)| a).collect::<Vec<_>>()
        };
        assert_eq!(
            queued(&x),
            ["i1@@x.example", "c@@x.example", "b@@x.example"]
        );
        let x = e.expand(&["bv".into()], None);
        assert_eq!(
            said(&x),
            [
                "b@@x.example... Invalid route address",
                "c@@x.example... Invalid route address",
                "C@@x.example... Invalid route address",
                "b@@x.example... Invalid route address",
                "d@@x.example... Invalid route address",
            ]
        );
        assert_eq!(addrs(&x), ["root"]);
        // A nested alias: its own list parsed when it is expanded, in its turn.
        let x = e.expand(&["outer".into()], None);
        assert_eq!(
            said(&x),
            [
                "o@@x.example... Invalid route address",
                "nosuch5... User unknown",
                "i@@x.example... Invalid route address",
                "nosuch6... User unknown",
            ]
        );
        assert_eq!(queued(&x), ["i@@x.example", "o@@x.example"]);
        // A `.forward`: a line at a time.
        let f = e.expand_list(
            "/h/.forward",
            "nosuch7, f@@x.example\ng@@x.example\n",
            Some(7),
        );
        assert_eq!(
            said(&f),
            [
                "/h/.forward: line 1: f@@x.example... Invalid route address",
                "/h/.forward: line 1: nosuch7... User unknown",
                "/h/.forward: line 2: g@@x.example... Invalid route address",
            ]
        );
        // The first that decides the exit status: the syntax fault (64), where an
        // unbalanced address leaves it to the unknown user (67).
        let status = |x: &Expansion| {
            crate::exit::Sysexit::of_refusals(
                x.errors.iter().map(|e| (e.status(), e.sets_status())),
            )
        };
        assert_eq!(
            status(&e.expand(&["lst".into()], None)),
            crate::exit::Sysexit::Usage
        );
        let u = parse("u: nosuch8, <a@x.example\n");
        let e = expander(&u, &inc);
        let x = e.expand(&["u".into()], None);
        assert_eq!(
            said(&x),
            ["<a@x.example... Unbalanced '<'", "nosuch8... User unknown"]
        );
        assert_eq!(status(&x), crate::exit::Sysexit::NoUser);
    }

    #[test]
    fn expansion_errors_as_delivery_failures() {
        let cases: &[(ExpandError, u16, &str)] = &[
            (
                ExpandError::UnknownUser("ghost".into()),
                550,
                "5.1.1 ghost... User unknown",
            ),
            (
                ExpandError::Loop("loop1".into()),
                554,
                "5.4.6 loop1... aliasing/forwarding loop broken",
            ),
            (
                ExpandError::Invalid("a@@b.example".into(), address::Invalid::InvalidRoute),
                553,
                "5.1.3 a@@b.example... Invalid route address",
            ),
            (
                ExpandError::Include("/l".into(), "No such file or directory".into()),
                451,
                "4.3.0 :include:/l... Cannot open /l: No such file or directory",
            ),
        ];
        for (e, code, text) in cases {
            let (c, status, t) = e.reply();
            assert_eq!(
                (c, format!("{status} {t}")),
                (*code, text.to_string()),
                "{e:?}"
            );
        }
    }

    /// A `|command` or `/file` with a blank is printed quoted, as it is written
    /// (recorded: `prog-space-*`, `file-space-*`); other targets and addresses as they
    /// are.
    #[test]
    fn targets_as_printed() {
        assert_eq!(shown_target("|/usr/bin/prog arg"), "\"|/usr/bin/prog arg\"");
        assert_eq!(shown_target("|/bin/x\targ"), "\"|/bin/x\targ\"");
        assert_eq!(shown_target("|/bin/say \"hi\""), "\"|/bin/say \\\"hi\\\"\"");
        assert_eq!(shown_target("|/bin/false"), "|/bin/false");
        assert_eq!(shown_target("/var/log/a b"), "\"/var/log/a b\"");
        assert_eq!(shown_target("/var/log/ab"), "/var/log/ab");
        assert_eq!(shown_target("a@example.org"), "a@example.org");
        // Read back as it is shown, it is the same target.
        assert_eq!(
            split_targets(&shown_target("|/bin/say \"hi\" there")),
            ["|/bin/say \"hi\" there"]
        );
    }

    #[test]
    fn quoted_targets_and_keys() {
        assert_eq!(
            split_targets("\"|/bin/x \\\"q\\\"\", /f, a@b, \"john doe\"@x"),
            vec!["|/bin/x \"q\"", "/f", "a@b", "\"john doe\"@x"]
        );
        // Commas inside a closed `<...>` hold; after a `<` never closed they split, as
        // sendmail splits the list (alias-unbalanced-odi, alias-unbalanced-empty-odi).
        assert_eq!(
            split_targets("\"A, B\" <a@b>, <c, d@e>, f"),
            vec!["\"A, B\" <a@b>", "<c, d@e>", "f"]
        );
        assert_eq!(
            split_targets("bad <x7@example.org, <>, ok8@example.org"),
            vec!["bad <x7@example.org", "<>", "ok8@example.org"]
        );
        assert_eq!(
            split_targets("bad <x7@example.org, ok8@example.org"),
            vec!["bad <x7@example.org", "ok8@example.org"]
        );
        assert_eq!(
            split_targets("a, <b@c, d, <e@f>, g"),
            vec!["a", "<b@c", "d", "<e@f>", "g"]
        );
        assert_eq!(key_of("\"Bob\"@Host"), "bob");
        assert_eq!(key_of("ROOT"), "root");
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// Aliases-file text: lines of names, colons, targets, quotes, commas, comments,
        /// blanks and continuation lines, or any text.
        fn text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                3 => "[a-zA-Z0-9._-]{1,8}",
                3 => select(
                    &[
                        ":", ": ", ",", ", ", "\"", "\"\"", "\n", "\n ", "\n\t", "\r\n", "#", " ", "|",
                        "/", "\\", ":include:", "@", "<", ">", "(", ")", "é", "\u{3000}",
                    ][..]
                )
                .prop_map(String::from),
                1 => "\\PC{0,4}",
            ];
            prop_oneof![
                4 => vec(piece, 0..60).prop_map(|v| v.concat()),
                1 => "[\\PC\r\n\t]{0,200}",
            ]
        }

        /// One generated alias: a name, and its targets with whether each goes on a
        /// continuation line.
        fn alias() -> impl Strategy<Value = (String, Vec<(String, bool)>)> {
            let target = prop_oneof![
                "[a-z][a-z0-9.+-]{0,8}",
                "[a-z]{1,6}@[a-z]{1,6}\\.example",
                "\"\\|/usr/bin/[a-z]{1,6} [a-z]{0,4}\"",
                "/var/[a-z]{1,6}",
                ":include:/etc/[a-z]{1,6}",
                "\\\\[a-z]{1,6}",
            ];
            ("[a-z][a-z0-9._-]{0,10}", vec((target, any::<bool>()), 1..5))
        }

        /// Blanks at the end of a line (they count in sendmail's sizes).
        fn trailing() -> impl Strategy<Value = String> {
            "[ \t]{0,2}"
        }

        proptest! {
            #[test]
            fn any_text_gives_aliases_with_names_and_targets(text in text(), check in any::<bool>()) {
                let a = Aliases::parse(&text, Path::new("aliases"), check);
                let lines = text.split('\n').count();
                for p in &a.problems {
                    prop_assert!(p.line >= 1 && p.line <= lines, "{} of {}", p.line, lines);
                    let head = format!("aliases: line {}: ", p.line);
                    prop_assert!(p.text.starts_with(&head), "{:?}", p.text);
                }
                let mut bytes = 0;
                for (key, alias) in &a.map {
                    prop_assert!(!alias.name.is_empty());
                    prop_assert!(!alias.targets.is_empty(), "{:?}", alias);
                    prop_assert!(alias.targets.iter().all(|t| !t.is_empty()));
                    prop_assert_eq!(key, &alias.name.to_ascii_lowercase());
                    prop_assert!(a.get(&alias.name).is_some());
                    // The targets come from the right-hand side: none is longer.
                    let rhs: usize = alias.targets.iter().map(String::len).sum();
                    prop_assert!(rhs <= a.stats.longest, "{:?} {:?}", alias, a.stats);
                    bytes += alias.name.len() + rhs;
                }
                // Duplicates are counted and warned about; the last one stays.
                prop_assert_eq!(a.stats.count, a.map.len() + a.warnings().len());
                prop_assert!(bytes <= a.stats.total);
                prop_assert!(a.stats.longest <= a.stats.total);
                if a.stats.count == 0 {
                    prop_assert_eq!(a.stats, Stats::default());
                }
                for t in split_targets(&text) {
                    prop_assert!(!t.is_empty());
                }
                for t in list_targets(&text) {
                    prop_assert!(!t.is_empty());
                }
                let k = key_of(&text);
                prop_assert_eq!(k.to_ascii_lowercase(), k);
            }

            #[test]
            fn the_key_is_the_local_part(local in "[A-Za-zé.+ -]{1,10}", quoted in any::<bool>(), domain in "@[a-z.]{0,10}|") {
                let written = if quoted { format!("\"{local}\"") } else { local.clone() };
                // Blanks around the local part go, blanks inside the quotes stay.
                let want = if quoted { local.as_str() } else { local.trim() };
                prop_assert_eq!(key_of(&format!("{written}{domain}")), want.to_ascii_lowercase());
            }

            #[test]
            fn written_aliases_are_read_with_their_sizes(
                aliases in vec(alias(), 0..6),
                comments in vec(any::<bool>(), 6),
                blanks in vec(trailing(), 6),
            ) {
                // Distinct names (a duplicate replaces, tested above).
                let mut seen = std::collections::HashSet::new();
                let aliases: Vec<_> = aliases
                    .into_iter()
                    .filter(|(n, _)| seen.insert(n.to_ascii_lowercase()))
                    .collect();
                let mut text = String::new();
                let (mut longest, mut total) = (0, 0);
                for (((name, targets), comment), blank) in aliases.iter().zip(&comments).zip(&blanks) {
                    if *comment {
                        text.push_str("# a comment\n\n");
                    }
                    // The right-hand side as sendmail counts it: continuation lines joined
                    // with their leading tab.
                    let mut rhs = String::new();
                    text.push_str(&format!("{name}: "));
                    for (i, (t, cont)) in targets.iter().enumerate() {
                        if i > 0 {
                            rhs.push(',');
                            text.push(',');
                            if *cont {
                                rhs.push('\t');
                                text.push_str("\n\t");
                            } else {
                                rhs.push(' ');
                                text.push(' ');
                            }
                        }
                        rhs.push_str(t);
                        text.push_str(t);
                    }
                    rhs.push_str(blank);
                    text.push_str(blank);
                    text.push('\n');
                    longest = longest.max(rhs.len());
                    total += name.len() + rhs.len();
                }
                let a = Aliases::parse(&text, Path::new("aliases"), false);
                prop_assert!(a.problems.is_empty(), "{:?}", a.problems);
                prop_assert_eq!(a.stats, Stats { count: aliases.len(), longest, total });
                for (name, targets) in &aliases {
                    let got = a.get(name).map(|x| x.targets.clone());
                    let want: Vec<String> = targets
                        .iter()
                        .map(|(t, _)| t.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(t).to_string())
                        .collect();
                    prop_assert_eq!(got, Some(want));
                }
            }
        }
    }
}

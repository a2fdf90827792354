//! Local delivery: mailboxes, `|command` and `/file` targets, `.forward`, and aliases
//! met at delivery time.
//!
//! Who may do what (docs/ARCHITECTURE.md, "Privileges"): a deliverer running
//! as root delivers to any user's mailbox, runs commands and appends to files, always in
//! a child process that has switched to the target's uid and gid first (the mailbox's
//! user; for commands and files the owner of the file they came from, or `O DefaultUser=`
//! when that is root — never root, never the sender). A deliverer that is not root
//! delivers only to its own user's mailbox; every other local recipient stays queued
//! with a reason mailq shows, for the root runner.
//!
//! List files a user controls (the user's `.forward`, and the `:include:` files named in
//! it or in another file the user owns; see `rsendmail::aliases`) are read in a child
//! (`rsendmail-deliver --read-list ...`) that has become the user (uid, gid and the
//! user's groups) and prints the file, so the deliverer never reads for a user what the
//! user could not read; a deliverer that is not root reads only its own user's lists (in
//! a child without the set-group-id group), and leaves other users' for the root runner.
//! An `:include:` file no user controls (named by the aliases file or a list root owns)
//! is read by a root deliverer in the same child, become `O DefaultUser` (uid and gid,
//! no other group), never with root's rights.
//! The `|command` and `/file` targets of such a list run as the user.
//!
//! The mailbox append runs in a child (`rsendmail-deliver --mbox ...`) that gets the
//! message's length first and then the message on stdin, so a feed that ends early
//! leaves a short read, which the child takes back (truncate to the old size). The
//! length comes only once the child holds every lock of the mailbox and the deliverer,
//! asked through the supervisor, gave the go: the wait for the locks may be long, and a
//! deletion, hold or return of the entry asked for meanwhile must stop the append
//! ([`Supervised::go`]); no go, nothing appended.
//!
//! Every mailbox, `/file` and `|command` delivery runs under a supervisor
//! (`rsendmail-deliver --supervise ...`, [`supervise_child`]) that holds the entry's
//! locked queue file and its delivery journal, feeds the message, relays the output and
//! journals the delivery when it ended well: a deliverer killed while it runs leaves the
//! entry locked until it ends, and recorded after (docs/ARCHITECTURE.md, "Local delivery
//! and its supervisor").
//!
//! Mailboxes, `|command` and `/file` targets get the message as queued (LF line ends,
//! lines of any length): they have no line limit, as sendmail's local and prog mailers
//! set none, so the SMTP wire rules (`rsendmail::message::wire`) are not applied.
//!
//! What is read here from outside (`.forward` files, the `--mbox` child's arguments and
//! length line) is parsed without byte-index slicing (the lints below keep it so): a
//! damaged file defers or fails the recipient, never panics.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::reply::Reply;
use rsendmail::aliases::{Aliases, ExpandError, Expander, ListFileError, Target};
use rsendmail::exit::Sysexit;
use rsendmail::mbox;
use rsendmail::spool::entry::{Envelope, NEEDS_ROOT_RUNNER, Recipient};
use rsendmail::status::{self, EnhancedStatus};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The message of `env` (opened as queued by `open_message`) as it is written locally: a
/// report rsendmail wrote with 8-bit text in the form a mailbox, file or command takes
/// (`rsendmail::dsn::form::LOCAL`), any other message as queued.
pub fn open_as_written(
    env: &Envelope,
    open_message: &dyn Fn() -> std::io::Result<(std::fs::File, u64)>,
) -> std::io::Result<(Box<dyn Read + Send>, u64)> {
    let (f, len) = open_message()?;
    if env.report.is_some() && env.body_type.as_deref() == Some("8BITMIME") {
        rsendmail::dsn::form::for_local(f, len)
    } else {
        Ok((Box::new(f.take(len)), len))
    }
}

/// The result of one local recipient.
#[derive(Debug)]
pub enum LocalOutcome {
    /// Delivered; the text is what is logged (`delivered to mailbox`).
    Delivered(String),
    /// Not delivered: tried again later or failed for good, as its status's class says.
    Failed(Failure),
    /// Replaced by these recipients (an alias met at delivery, or a `.forward`), which
    /// go into a new entry, and the targets the expansion refused (a bad address, an
    /// unknown user, a loop), each failed for good at once and reported to the sender
    /// (or to its list's owner). Then what is logged, what `-v` prints of the expansion
    /// (`Expansion::notes`), and the aliases with an owner alias it expanded
    /// (`Expansion::owned`).
    Expanded(
        Vec<Recipient>,
        Vec<Refused>,
        String,
        Vec<String>,
        Vec<(String, String)>,
    ),
}

impl LocalOutcome {
    /// A failure to try again later: `451` with a transient status.
    fn temp(status: EnhancedStatus, text: impl Into<String>) -> LocalOutcome {
        LocalOutcome::Failed(Failure::new(451, status, text))
    }

    /// A failure for good: sendmail's reply code with a permanent status.
    fn perm(code: u16, status: EnhancedStatus, text: impl Into<String>) -> LocalOutcome {
        LocalOutcome::Failed(Failure::new(code, status, text))
    }
}

/// A local recipient's failure as sendmail words it: the reply code, the RFC 3463 status
/// (whose class says whether it is tried again) and the text after the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub status: EnhancedStatus,
    pub text: String,
    /// A `/file` target that cannot be created or opened: the delivery exits
    /// EX_CANTCREAT as sendmail's does.
    pub cant_create: bool,
    /// The exit status of an interactive delivery this failure sets, when it sets
    /// one of its own (a `|program`'s sysexits code, as sendmail's mailer status).
    pub exit: Option<Sysexit>,
    /// sendmail's words for the failure in its log and in `mailq` (its `stat=`), when
    /// they are not the reply's.
    pub stat: Option<String>,
    /// The report's Status when it is not the reply's (sendmail's DSN status for a
    /// mailer's exit code).
    pub dsn: Option<EnhancedStatus>,
    /// The report's transcript lines for it (a program's output and sendmail's line).
    pub notes: Vec<String>,
    /// The report's Diagnostic-Code when it is not the reply (a program's exit status:
    /// `X-Unix; 67`).
    pub diagnostic: Option<String>,
}

impl Failure {
    pub fn new(code: u16, status: EnhancedStatus, text: impl Into<String>) -> Failure {
        Failure {
            code,
            status,
            text: text.into(),
            cant_create: false,
            exit: None,
            stat: None,
            dsn: None,
            notes: Vec::new(),
            diagnostic: None,
        }
    }

    /// The reply it is logged and reported as (`451 4.3.0 ...`).
    pub fn reply(&self) -> Reply {
        Reply::with_status(self.code, self.status, &self.text)
    }
}

/// A target an expansion refused: a permanent failure of its own, never sent anywhere.
#[derive(Debug)]
pub struct Refused {
    /// The target as a recipient of the entry being delivered (for its report).
    pub recipient: Recipient,
    /// The code, the status and the `addr... reason` text.
    pub failure: Failure,
    /// Told as sendmail tells an error it finds while expanding (its `usrerr`): the
    /// text on the terminal of an interactive delivery and in the report's transcript,
    /// with no reason line and no Diagnostic-Code in the report, and exit 64 (recorded:
    /// `forward-prog-noshell-odi`). A program or file the list's user may not have,
    /// and any target refused on a list file's line (`forward-unknown-odi`).
    pub told: bool,
    /// For a told refusal: the reason its report gives (`User unknown`: `(reason: 550
    /// 5.1.1 User unknown)` and the Diagnostic-Code), or None for none at all (a program
    /// or file refused for its user, which also makes the exit status 64).
    pub reason: Option<String>,
    /// Refused for the target's syntax (`Unbalanced '<'`, `Invalid route address`, an
    /// address not UTF-8): the interactive delivery exits 64 (EX_USAGE), as for the same
    /// address at submission and as sendmail does for a `.forward` line it finds
    /// unbalanced (recorded: `forward-unbalanced-route-odi`), however it is reported;
    /// not when the same list also names an unknown user, whose 67 sendmail gives.
    pub usage: bool,
    /// A target refused as no address (`h1@`): its place in queue order. Its report
    /// gives it no reason line and no Diagnostic-Code and lists it after the other
    /// refused targets, in queue order, as sendmail's does (recorded:
    /// `forward-bad-order-odi`); whether it makes the status 64 is `usage`.
    pub syntax: Option<usize>,
    /// The entry's recipient whose expansion refused it (its index): the report lists
    /// the expansions' refused targets at the place of the first such recipient.
    pub parent: usize,
}

/// Local delivery settings.
#[derive(Debug)]
pub struct Local {
    pub mail_spool: PathBuf,
    pub host: String,
    /// The aliases file (None: `-n`), read on first use.
    pub aliases_path: Option<PathBuf>,
    pub aliases_loaded: std::sync::OnceLock<Option<Aliases>>,
    /// `O DefaultUser=` (uid, gid): who runs commands and writes files whose source is
    /// owned by root.
    pub default_user: (u32, u32),
    pub lock_wait: Duration,
    pub command_timeout: Duration,
    pub root: bool,
    pub uid: u32,
}

/// A user from the password database.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl From<nix::unistd::User> for User {
    fn from(u: nix::unistd::User) -> User {
        User {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }
    }
}

pub fn user(name: &str) -> Option<User> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(User::from)
}

fn user_by_uid(uid: u32) -> Option<User> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(User::from)
}

pub use rsendmail::aliases::default_user;

/// Whether a `.forward` may be used: a regular file (not a symlink) owned by the user or
/// root, writable by nobody else (as sendmail's and Postfix's checks): not its group,
/// not everyone, and no user or group its access ACL names.
fn forward_is_safe(path: &Path, uid: u32) -> Result<bool, String> {
    match forward_unsafe(path, uid)? {
        None => Ok(path_exists(path)),
        Some(why) => {
            log::warn!("{}: {why}; ignored", path.display());
            Ok(false)
        }
    }
}

fn path_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Why the `.forward` at `path` of the user `uid` is not used, in sendmail's words
/// (its safefile reasons: `Group writable file`, for a file writable by all too, and
/// `Permission denied` for one another user owns; recorded: `forward-gw-bv-v`,
/// `forward-ww-bv-v`, `forward-owner-bv-v`), or None when it is safe or there is none.
pub fn forward_unsafe(path: &Path, uid: u32) -> Result<Option<&'static str>, String> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if md.file_type().is_symlink() {
        return Ok(Some("Symbolic links not allowed"));
    }
    if !md.file_type().is_file() {
        return Ok(Some("Regular files only"));
    }
    if md.uid() != uid && md.uid() != 0 {
        return Ok(Some("Permission denied"));
    }
    if md.mode() & 0o020 == 0 && md.mode() & 0o002 != 0 {
        return Ok(Some("World writable file"));
    }
    if rsendmail::spool::safety::others_may_write(path, &md, false) {
        return Ok(Some("Group writable file"));
    }
    Ok(None)
}

impl Local {
    /// The aliases, read when first needed (most deliveries are remote).
    pub fn aliases(&self) -> Option<&Aliases> {
        self.aliases_loaded
            .get_or_init(|| {
                let a = self
                    .aliases_path
                    .as_deref()
                    .and_then(Aliases::for_delivery)?;
                if let Some(why) = a.unusable() {
                    log::warn!("aliases not used: {why}");
                }
                // Each reading logs what is wrong with the file (`file: line N: ...`),
                // as `newaliases` prints it: a line left out is never left out silently.
                for e in a.errors() {
                    log::warn!("{e}");
                }
                Some(a)
            })
            .as_ref()
    }

    /// Expand addresses of a list that belongs to `owner` (`None`: the envelope), its
    /// `:include:` files read by [`Local::read_list`].
    pub fn expand(
        &self,
        addrs: &[String],
        owner: Option<u32>,
        is_local: &dyn Fn(&str) -> bool,
    ) -> rsendmail::aliases::Expansion {
        let read = |path: &Path, as_user: Option<u32>| self.read_include(path, as_user);
        Expander {
            read_include: &read,
            ..Expander::system(self.aliases(), is_local, &self.host)
        }
        .expand(addrs, owner)
    }

    /// Expand a list file a user controls (a `.forward`: its path and text) as
    /// [`Local::expand`] does, its refusals naming the file and line.
    pub fn expand_list(
        &self,
        path: &Path,
        text: &str,
        owner: Option<u32>,
        is_local: &dyn Fn(&str) -> bool,
    ) -> rsendmail::aliases::Expansion {
        let read = |path: &Path, as_user: Option<u32>| self.read_include(path, as_user);
        Expander {
            read_include: &read,
            ..Expander::system(self.aliases(), is_local, &self.host)
        }
        .expand_list(&path.to_string_lossy(), text, owner)
    }

    /// Read a list file (an `:include:` file, a `.forward`): its text, its owner's uid and
    /// whether it is unsafe ([`rsendmail::aliases::read_list_file`]).
    /// With `as_user`, with that user's rights, in a child that has become the user (the
    /// owner given back is then the user): only the root deliverer can take another
    /// user's rights, so one that is not root leaves such a file for the root runner (a
    /// temporary error). Without, with the deliverer's own rights.
    pub fn read_list(
        &self,
        path: &Path,
        as_user: Option<u32>,
        no_follow: bool,
    ) -> Result<(String, u32, bool), ListFileError> {
        let Some(uid) = as_user else {
            return match rsendmail::aliases::read_list_file(path, no_follow) {
                Ok((text, owner, unsafe_file)) => Ok((
                    String::from_utf8_lossy(&text).into_owned(),
                    owner,
                    unsafe_file,
                )),
                // What root could read is not ours to refuse for good.
                Err(ListFileError::Denied(why)) if !self.root => {
                    Err(ListFileError::Io(format!("{why} ({NEEDS_ROOT_RUNNER})")))
                }
                Err(e) => Err(e),
            };
        };
        if !self.root && uid != self.uid {
            return Err(ListFileError::Io(format!(
                "{NEEDS_ROOT_RUNNER} (to read it as uid {uid})"
            )));
        }
        let (text, unsafe_file) = self.read_as(path, uid, no_follow)?;
        Ok((
            String::from_utf8_lossy(&text).into_owned(),
            uid,
            unsafe_file,
        ))
    }

    /// Run the `--read-list` child as `uid` and take the file's octets from it, and
    /// whether it is unsafe.
    fn read_as(
        &self,
        path: &Path,
        uid: u32,
        no_follow: bool,
    ) -> Result<(Vec<u8>, bool), ListFileError> {
        let mut cmd = super::own_command(&super::own_exe());
        if self.root {
            become_user(&mut cmd, uid);
        } else {
            drop_to(&mut cmd, (uid, uid), false);
        }
        rsendmail::aliases::read_list_in_child(cmd, path, no_follow, true, uid)
            .map(|(t, owner)| (t, owner.is_some_and(|(_, u)| u)))
    }

    /// Read an `:include:` file for an expansion ([`Local::read_list`]), except that a
    /// root deliverer reads one that no user controls (`as_user` None: named by the
    /// aliases file or by a list root owns) with DefaultUser's rights, in the
    /// `--read-list` child, never with its own (sendmail reads it as DefUid): its text
    /// and the owner of the file the child read.
    fn read_include(
        &self,
        path: &Path,
        as_user: Option<u32>,
    ) -> Result<(String, u32, bool), ListFileError> {
        if as_user.is_some() || !self.root {
            return self.read_list(path, as_user, false);
        }
        let mut cmd = super::own_command(&super::own_exe());
        drop_to(&mut cmd, self.default_user, true);
        rsendmail::aliases::read_as_default(cmd, path, self.default_user.0)
    }

    /// The uid and gid a command or file target runs as.
    fn run_as(&self, owner: Option<u32>) -> (u32, u32) {
        match owner {
            Some(uid) if uid != 0 => match user_by_uid(uid) {
                Some(u) => (u.uid, u.gid),
                None => (uid, uid),
            },
            _ => self.default_user,
        }
    }

    fn needs_root(&self, what: &str) -> LocalOutcome {
        LocalOutcome::temp(status::SYSTEM_TEMP, format!("{NEEDS_ROOT_RUNNER} ({what})"))
    }

    /// Deliver `r` of `env`; the message (header block and body as queued) is read
    /// from the queue file by the delivery's supervisor ([`supervise_child`]).
    pub fn deliver(
        &self,
        env: &Envelope,
        r: &Recipient,
        is_local: &dyn Fn(&str) -> bool,
        sup: &Supervised<'_>,
        sender: &str,
    ) -> LocalOutcome {
        match Target::of_address(&r.address, is_local) {
            Target::Remote(a) => {
                LocalOutcome::temp(status::SYSTEM_TEMP, format!("{a} is not local"))
            }
            Target::Pipe(cmd) => {
                if !self.root {
                    return self.needs_root(&r.address);
                }
                self.pipe(&cmd, r, env, sup, sender)
            }
            Target::File(path) => {
                if !self.root {
                    return self.needs_root(&r.address);
                }
                // sendmail's special case: the message is discarded, the file never
                // opened (compat case file-devnull).
                if path == "/dev/null" {
                    return LocalOutcome::Delivered("discarded (/dev/null)".into());
                }
                let (uid, gid) = self.run_as(r.owner);
                self.append(
                    Path::new(&path),
                    (uid, gid),
                    None,
                    &r.address,
                    sup,
                    env,
                    sender,
                )
            }
            Target::Mailbox(name) => self.mailbox(&name, sup, env, sender),
            Target::User(addr) => {
                if let Some(x) = self.expansion(r, is_local) {
                    return x;
                }
                let name = rsendmail::aliases::key_of(&addr);
                let (base, _) = rsendmail::aliases::split_detail(&name);
                match user(base).filter(|_| !base.is_empty()) {
                    Some(u) => self.mailbox(&u.name, sup, env, sender),
                    // RFC 5321 requires a postmaster; without an alias it is root's.
                    None => self.mailbox("root", sup, env, sender),
                }
            }
        }
    }

    /// What delivering `r` at this point begins with when it is not a mailbox's
    /// delivery: its expansion (an alias met at delivery, a `.forward`), or the failure
    /// that decides it (an unknown user, a `.forward` that cannot be read now, a user
    /// only the root runner may deliver to). `None`: `r` is delivered to its own
    /// mailbox (or is not a user at all: a command, a file, a `\user` mailbox).
    pub fn expansion(
        &self,
        r: &Recipient,
        is_local: &dyn Fn(&str) -> bool,
    ) -> Option<LocalOutcome> {
        let Target::User(addr) = Target::of_address(&r.address, is_local) else {
            return None;
        };
        let name = rsendmail::aliases::key_of(&addr);
        // An alias met at delivery (the aliases changed, or an :include: or the
        // alias's own line could not be read at submission).
        if let Some(a) = self.aliases()
            && a.has_line_for(&name)
        {
            let x = self.expand(std::slice::from_ref(&addr), None, is_local);
            return Some(self.expanded(r, &addr, x, "alias"));
        }
        // `user+detail` goes to the user's mailbox (recorded: `plus-odq-local`).
        let (base, _) = rsendmail::aliases::split_detail(&name);
        let Some(u) = user(base).filter(|_| !base.is_empty()) else {
            if name == "postmaster" || name == "mailer-daemon" {
                // RFC 5321 requires a postmaster; without an alias it is root's mailbox.
                return None;
            }
            return Some(LocalOutcome::perm(
                550,
                status::BAD_MAILBOX,
                format!("<{addr}>... User unknown"),
            ));
        };
        if !self.root && u.uid != self.uid {
            return Some(self.needs_root(&name));
        }
        let fwd = u.home.join(".forward");
        match forward_is_safe(&fwd, u.uid) {
            Err(e) => Some(LocalOutcome::temp(status::SYSTEM_TEMP, e)),
            Ok(false) => None,
            // Read as its user: a .forward that is a hard link to a file the user
            // may not read gives nothing.
            Ok(true) => match self.read_list(&fwd, Some(u.uid).filter(|&id| id != 0), true) {
                Ok((text, _, _)) => {
                    if rsendmail::aliases::list_targets(&text).is_empty() {
                        return None;
                    }
                    let x = self.forward_of(&u, &fwd, &text, is_local);
                    let mut visited = vec![u.name.clone()];
                    let (x, _) = self.follow_forwards(x, &mut visited, is_local, false);
                    Some(self.expanded(r, &addr, x, ".forward"))
                }
                // A .forward over the size limit is refused for good: its user
                // must shorten it.
                Err(e @ ListFileError::TooLarge(_)) => Some(LocalOutcome::perm(
                    554,
                    e.status(),
                    format!("cannot read {}: {}", fwd.display(), e.text()),
                )),
                Err(e) => Some(LocalOutcome::temp(
                    status::SYSTEM_TEMP,
                    format!("cannot read {}: {}", fwd.display(), e.text()),
                )),
            },
        }
    }

    /// The expansion of user `u`'s `.forward` (at `fwd`, its `text`): its targets with
    /// the user's rights, the user's own name in it meaning the mailbox.
    fn forward_of(
        &self,
        u: &User,
        fwd: &Path,
        text: &str,
        is_local: &dyn Fn(&str) -> bool,
    ) -> rsendmail::aliases::Expansion {
        let mut x = self.expand_list(fwd, text, Some(u.uid), is_local);
        for t in &mut x.targets {
            if let Target::User(n) = &t.target
                && rsendmail::aliases::key_of(n) == u.name
            {
                t.target = Target::Mailbox(u.name.clone());
            }
        }
        x
    }

    /// The `.forward` of a local user `name` that this deliverer may read now, read:
    /// the user and the file's text; `None` when there is none to follow here (no such
    /// user, no safe `.forward`, or one only another process can read), which leaves the
    /// user for a delivery of its own. Root reads it as its user. With `verify` (`-bv`),
    /// a user who is not root reads another user's `.forward` with its own rights, as
    /// sendmail's `-bv` does (recorded: `forward-bv-other-user`); one it cannot read
    /// leaves the user as it is.
    fn readable_forward(&self, name: &str, verify: bool) -> Option<(User, PathBuf, String)> {
        let (base, detail) = rsendmail::aliases::split_detail(name);
        if base.is_empty() || detail.is_some() {
            return None;
        }
        let u = user(base)?;
        let as_user = if self.root || u.uid == self.uid {
            Some(u.uid).filter(|&id| id != 0)
        } else if verify {
            None
        } else {
            return None;
        };
        let fwd = u.home.join(".forward");
        if !matches!(forward_is_safe(&fwd, u.uid), Ok(true)) {
            return None;
        }
        let (text, _, _) = self.read_list(&fwd, as_user, true).ok()?;
        Some((u, fwd, text))
    }

    /// `-bv`: an expansion `x` with the `.forward` files of the local users it names
    /// followed as a delivery follows them ([`Local::follow_forwards`]: the same reading,
    /// safety rules and loop breaking), so that `-bv` names where their mail goes
    /// (recorded: `forward-bv-good`, `forward-bv-bad`, `forward-bv-self`).
    pub fn verify_forwards(
        &self,
        x: rsendmail::aliases::Expansion,
        is_local: &dyn Fn(&str) -> bool,
    ) -> rsendmail::aliases::Expansion {
        self.follow_forwards(x, &mut Vec::new(), is_local, true).0
    }

    /// Follow the `.forward` files of the local users an expansion `x` names, as
    /// sendmail expands a chain of them at once, and break a loop as sendmail does
    /// (recorded from 8.17: `forward-loop-two`, `forward-loop-three`,
    /// `forward-loop-two-remote`): a user met again on the way (the chain comes back
    /// to it) gets the message in the mailbox, and so does a user whose `.forward`
    /// names no one new (only users already on the way); a user whose `.forward` names
    /// someone new is replaced by what it names. `visited` holds the users on the way.
    /// Returns the expansion and whether it named anyone new. `verify`: for `-bv`
    /// ([`Local::readable_forward`]).
    fn follow_forwards(
        &self,
        x: rsendmail::aliases::Expansion,
        visited: &mut Vec<String>,
        is_local: &dyn Fn(&str) -> bool,
        verify: bool,
    ) -> (rsendmail::aliases::Expansion, bool) {
        let mut x = x;
        let targets = std::mem::take(&mut x.targets);
        let mut out = x;
        let mut new = false;
        for t in targets {
            let Target::User(n) = &t.target else {
                new = true;
                out.targets.push(t);
                continue;
            };
            let key = rsendmail::aliases::key_of(n);
            if visited.contains(&key) {
                // Back to a user on the way: its mailbox.
                out.targets.push(rsendmail::aliases::Expanded {
                    target: Target::Mailbox(key),
                    ..t
                });
                continue;
            }
            new = true;
            let next = (visited.len() < rsendmail::aliases::MAX_DEPTH)
                .then(|| self.readable_forward(&key, verify))
                .flatten();
            let Some((u, fwd, text)) = next else {
                // A .forward not used says why in -v (sendmail's `forward:` line).
                if let Some(why) = unused_forward(&key) {
                    out.notes.push(format!("{key}... forward: {why}"));
                }
                out.targets.push(t);
                continue;
            };
            visited.push(u.name.clone());
            let inner = self.forward_of(&u, &fwd, &text, is_local);
            let (mut inner, named_new) = self.follow_forwards(inner, visited, is_local, verify);
            // What the user's .forward led to was expanded from the user.
            for e in &mut inner.targets {
                e.ctl.get_or_insert_with(|| u.name.clone());
            }
            for c in &mut inner.error_ctl {
                c.get_or_insert_with(|| u.name.clone());
            }
            if !named_new {
                inner.targets.push(rsendmail::aliases::Expanded {
                    target: Target::Mailbox(u.name.clone()),
                    ..t
                });
            }
            out.targets.extend(inner.targets);
            out.notes.extend(inner.notes);
            out.errors.extend(inner.errors);
            out.error_ctl.extend(inner.error_ctl);
            out.error_at.extend(inner.error_at);
            out.error_sender.extend(inner.error_sender);
            out.owned.extend(inner.owned);
        }
        // Each mailbox and address once.
        let mut seen = std::collections::HashSet::new();
        out.targets.retain(|e| {
            let k = match &e.target {
                Target::User(u) | Target::Mailbox(u) => {
                    format!("user:{}", rsendmail::aliases::key_of(u))
                }
                t => rsendmail::message::address::duplicate_key(&t.address()),
            };
            seen.insert(k)
        });
        (out, new)
    }

    /// The outcome of an expansion of `r`: an `:include:` that cannot be read now defers
    /// it whole (nothing is sent until the list can be read); otherwise the valid targets
    /// go on, and each refused one fails on its own (as sendmail bounces a bad address
    /// of a `.forward`), never dropped with only a log line.
    fn expanded(
        &self,
        r: &Recipient,
        addr: &str,
        x: rsendmail::aliases::Expansion,
        how: &str,
    ) -> LocalOutcome {
        if let Some(e) = x.errors.iter().find(|e| e.is_temporary()) {
            let text = match e {
                ExpandError::Include(p, why) => format!("cannot open :include:{p}: {why}"),
                e => e.text(),
            };
            return LocalOutcome::temp(status::SYSTEM_TEMP, text);
        }
        if x.targets.is_empty() && x.errors.is_empty() {
            return LocalOutcome::perm(550, status::BAD_MAILBOX, "no recipients");
        }
        let qualified = if r.address.contains('@') {
            r.address.clone()
        } else {
            format!("{}@{}", r.address, self.host)
        };
        // The first refusal that decides the exit status decides it: an unknown user
        // after an unbalanced `<` (67; recorded: a `.forward` with an unbalanced `<` and
        // a `<>`), a syntax fault said before an unknown user (64;
        // `forward-bad-order-odi`).
        let unknown = Sysexit::of_refusals(x.errors.iter().map(|e| (e.status(), e.sets_status())))
            != Sysexit::Usage;
        // One failure per refused target, however often the lists name it and in
        // whichever form (`a@@bücher.example` is `a@@xn--bcher-kva.example`).
        let mut seen = std::collections::HashSet::new();
        let refused: Vec<Refused> = x
            .errors
            .iter()
            .enumerate()
            .filter(|(_, e)| seen.insert(rsendmail::aliases::refused_key(&e.target())))
            .map(|(k, e)| {
                log::warn!("{addr}: {how}: {}", e.text());
                let (code, status, text) = e.reply();
                // Reported under its own address, as what the alias or :include: it
                // came from expanded to (`(expanded from: lst)`), with the recipient
                // the expansion began with as its Final-Recipient, as sendmail reports
                // it (recorded: `bounce-exp-inc-writable-odi`); without a list to name,
                // that recipient is its Original-Recipient (a target refused here never
                // reaches a server).
                let mut recipient = rsendmail::aliases::recipient_from(r, e.target());
                // A target of a list with an owner alias: that owner hears of it.
                if let Some(o) = x.sender_of(k) {
                    recipient.sender = Some(o.to_string());
                }
                // A `.forward`'s own targets were expanded from its user (recorded:
                // `forward-prog-noshell-odi`, `(expanded from: rsmtest)`).
                let ctl = x
                    .ctl_of(k)
                    .map(rsendmail::aliases::ctl_in_report)
                    .or((how == ".forward").then_some(addr));
                match ctl {
                    Some(ctl) => {
                        recipient.expanded_from = Some(ctl.to_string());
                        recipient.final_rcpt =
                            Some(r.final_rcpt.clone().unwrap_or_else(|| qualified.clone()));
                    }
                    None => {
                        recipient
                            .orcpt
                            .get_or_insert_with(|| format!("rfc822;{qualified}"));
                    }
                }
                // A program or file its user may not have, and a list file refused for
                // good, are told with no reason line (recorded: forward-prog-noshell-odi,
                // forward-include-relative-odi).
                let mailer = matches!(e, ExpandError::Mailer(..) | ExpandError::IncludeRefused(..));
                let told = mailer || x.from_list_file(k);
                let text = if told { x.said(k) } else { text };
                let syntax = (told && e.is_syntax_fault())
                    .then(|| x.error_queued.get(k).copied().unwrap_or(0));
                let reason = (told && !mailer && syntax.is_none()).then(|| {
                    let t = e.text();
                    t.split_once("... ")
                        .map_or(t.clone(), |(_, w)| w.to_string())
                });
                let usage = !unknown
                    && matches!(e, ExpandError::Invalid(_, i) if i.exit() == Sysexit::Usage);
                Refused {
                    recipient,
                    failure: Failure::new(code, status, text),
                    told,
                    reason,
                    usage,
                    syntax,
                    parent: usize::MAX,
                }
            })
            .collect();
        let notes = x.notes;
        let owned = x.owned;
        let list = rsendmail::aliases::recipients_from(r, x.targets, &self.host);
        let mut text = format!("expanded by {how} to {} recipients", list.len());
        if !refused.is_empty() {
            text.push_str(&format!(", {} refused", refused.len()));
        }
        LocalOutcome::Expanded(list, refused, text, notes, owned)
    }

    fn mailbox(
        &self,
        name: &str,
        sup: &Supervised<'_>,
        env: &Envelope,
        sender: &str,
    ) -> LocalOutcome {
        let Some(u) = user(name) else {
            return LocalOutcome::perm(
                550,
                status::BAD_MAILBOX,
                format!("<{name}>... User unknown"),
            );
        };
        if !self.root && u.uid != self.uid {
            return self.needs_root(name);
        }
        let path = self.mail_spool.join(&u.name);
        let rcpt = format!("{}@{}", u.name, self.host);
        self.append(&path, (u.uid, u.gid), Some(u.uid), &rcpt, sup, env, sender)
    }

    /// Append to a mailbox or file through the `--mbox` child running as `ids`, under
    /// its supervisor ([`supervise_child`]): as root, the supervisor creates a missing
    /// mailbox for its user and takes the dotlock (the user may not create files in the
    /// mail spool); the child running as the user takes the fcntl lock and appends.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        path: &Path,
        ids: (u32, u32),
        owner_check: Option<u32>,
        rcpt: &str,
        sup: &Supervised<'_>,
        env: &Envelope,
        sender: &str,
    ) -> LocalOutcome {
        // A mailbox has its owner to check; a `/file` target of a list has none.
        let file_target = owner_check.is_none();
        // The per-user default's own mail directory is made on first use.
        if !self.root
            && let Some(dir) = path.parent()
            && !dir.exists()
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let create = self.root && owner_check.is_some();
        let done = format!("delivered to {}", path.display());
        let tail: Vec<std::ffi::OsString> = vec![
            path.into(),
            sender.into(),
            rcpt.into(),
            owner_check
                .map(|u| u.to_string())
                .unwrap_or_default()
                .into(),
            self.lock_wait.as_millis().to_string().into(),
            if create { "1" } else { "0" }.into(),
        ];
        let mut cmd = self.supervisor(sup, env, "mbox", ids, None, &done, &tail);
        cmd.env("PATH", "/usr/bin:/bin");
        super::pass_process_name(&mut cmd);
        let mut run = match Supervision::start(cmd, sup, &env.id) {
            Ok(r) => r,
            Err(e) => {
                return LocalOutcome::temp(
                    status::SYSTEM_TEMP,
                    format!("cannot start delivery: {e}"),
                );
            }
        };
        // Every lock held (which may have taken up to Timeout.mboxlock for each), the
        // append waits for this process's go: it looks at the entry's mark again then.
        let withheld = run.answer(sup.go);
        let (ended, relayed, _) = run.wait(None, sup, &env.id);
        if ended.journalled {
            return LocalOutcome::Delivered(done);
        }
        if withheld {
            return LocalOutcome::temp(
                status::SYSTEM_TEMP,
                format!("nothing appended to {}: stopped by a mark", path.display()),
            );
        }
        let err = String::from_utf8_lossy(&relayed).trim().to_string();
        let code = |x: Sysexit| ended.said == Said::Exit(x.code().into());
        match ended.said {
            Said::Exit(0) => LocalOutcome::Delivered(done),
            // `mbox_child`'s exit statuses: EX_NOPERM for a mailbox it will not write
            // (not a safe one), EX_TEMPFAIL for no room in it, EX_UNAVAILABLE for one
            // another process keeps locked, EX_CANTCREAT for one it
            // cannot open or create, EX_IOERR for one it could not write. A `/file`
            // target that cannot be opened, or will not be written (a device, a
            // symbolic link), fails for good as sendmail's `Can't create output`
            // (compat cases file-nodir, file-isdir, file-perm); a user's mailbox is
            // tried again (its spool directory may be back).
            Said::Exit(_) if file_target && (code(Sysexit::CantCreat) || code(Sysexit::NoPerm)) => {
                // sendmail's words: the reason `Can't create output`, its transcript
                // line naming the file, `Diagnostic-Code: X-Unix; 73` (recorded:
                // `file-space-nodir-odi`); why the file could not be created is logged.
                log::info!("{rcpt}: {err}");
                let mut outcome = command_failure(Sysexit::CantCreat.code().into());
                if let LocalOutcome::Failed(f) = &mut outcome {
                    f.notes.push(format!(
                        "{} {} {}... {}",
                        f.code,
                        f.status,
                        rsendmail::aliases::shown_target(&path.to_string_lossy()),
                        f.text
                    ));
                    f.diagnostic = Some(Sysexit::CantCreat.code().to_string());
                    f.cant_create = true;
                }
                outcome
            }
            Said::Exit(_) if code(Sysexit::NoPerm) => LocalOutcome::temp(status::MAILBOX_TEMP, err),
            Said::Exit(_) if code(Sysexit::TempFail) => {
                LocalOutcome::temp(status::MAILBOX_FULL, err)
            }
            Said::Exit(_) if code(Sysexit::CantCreat) => {
                LocalOutcome::temp(status::MAILBOX_DISABLED, err)
            }
            // A lock held by another process: 4.2.0, whichever lock it was.
            Said::Exit(_) if code(Sysexit::Unavailable) => {
                LocalOutcome::temp(status::MAILBOX_TEMP, err)
            }
            // The mailbox's creation or its dotlock, as root.
            Said::Mailbox(why) => LocalOutcome::temp(status::MAILBOX_TEMP, why),
            Said::Spawn(why) => {
                LocalOutcome::temp(status::SYSTEM_TEMP, format!("cannot start delivery: {why}"))
            }
            Said::Message(why) => LocalOutcome::temp(status::SYSTEM_TEMP, why),
            _ => LocalOutcome::temp(
                status::SYSTEM_TEMP,
                if err.is_empty() {
                    "delivery failed".to_string()
                } else {
                    err
                },
            ),
        }
    }

    /// The supervisor of a local delivery of `kind` (`pipe`, `mbox`): this program run
    /// as `rsendmail-deliver --supervise ...` ([`supervise_child`]), its environment
    /// cleared (the caller adds what its program gets), in a process group of its own
    /// (a time limit kills the group: the supervisor and what it runs). As root it
    /// stays root and runs its program as `ids`; otherwise it runs as this process
    /// does, without the set-id group.
    #[allow(clippy::too_many_arguments)]
    fn supervisor(
        &self,
        sup: &Supervised<'_>,
        env: &Envelope,
        kind: &str,
        ids: (u32, u32),
        cwd: Option<&Path>,
        delivered: &str,
        tail: &[std::ffi::OsString],
    ) -> Command {
        let mut cmd = super::own_command(&super::own_exe());
        let reply = Reply::local(250, format!("{} {delivered}", status::OK)).summary();
        let form = if env.report.is_some() && env.body_type.as_deref() == Some("8BITMIME") {
            "local"
        } else {
            "queued"
        };
        cmd.arg("--supervise")
            .arg(kind)
            .arg(sup.rcpt.to_string())
            .arg(sup.offset.to_string())
            .arg(sup.len.to_string())
            .arg(form)
            .arg(ids.0.to_string())
            .arg(ids.1.to_string())
            .arg(if self.root { "1" } else { "0" })
            .arg(cwd.map(Path::as_os_str).unwrap_or_default())
            .arg(reply)
            .args(tail)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if !self.root {
            drop_to(&mut cmd, ids, false);
        }
        // -X: the mailbox deliverer logs the lines it appends (`Supervision::start`
        // hands the log over as descriptor 5).
        if kind == "mbox" && rsendmail::traffic::enabled() {
            cmd.env(TRAFFIC_ENV, "1");
        }
        // An append waits for its go once its locks are held (`Supervision::start`
        // hands the gate over as descriptor 6).
        if kind == "mbox" {
            cmd.env(GATE_ENV, "1");
        }
        cmd
    }

    /// Run `|command` as its owner with the message on stdin and a time limit: exit 0
    /// delivers, 75 (EX_TEMPFAIL) defers, anything else fails. Its supervisor
    /// ([`supervise_child`]) starts it, feeds it the message and relays its output.
    fn pipe(
        &self,
        command: &str,
        r: &Recipient,
        env: &Envelope,
        sup: &Supervised<'_>,
        sender: &str,
    ) -> LocalOutcome {
        let (uid, gid) = self.run_as(r.owner);
        let who = user_by_uid(uid);
        let home = who
            .as_ref()
            .map(|u| u.home.clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        let name = who.map(|u| u.name).unwrap_or_else(|| uid.to_string());
        let cwd = if home.is_dir() { &home } else { Path::new("/") };
        let done = format!("piped to {command}");
        let mut cmd = self.supervisor(
            sup,
            env,
            "pipe",
            (uid, gid),
            Some(cwd),
            &done,
            &[command.into()],
        );
        // No gate, as an append has ([`Supervised::go`]): nothing is waited for
        // between the attempt's look at the entry's mark, just before, and the start of
        // the command, and once started the command may have acted on the message
        // already (a delivery under way is not cut).
        // The command's environment (the supervisor passes its own on).
        cmd.env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("USER", &name)
            .env("LOGNAME", &name)
            .env("SHELL", "/bin/sh")
            .env("SENDER", sender)
            .env("RECIPIENT", &r.address)
            .env("QUEUE_ID", &env.id);
        let run = match Supervision::start(cmd, sup, &env.id) {
            Ok(r) => r,
            Err(e) => {
                return LocalOutcome::temp(
                    status::SYSTEM_TEMP,
                    format!("cannot run {command}: {e}"),
                );
            }
        };
        let (ended, _, said) = run.wait(Some(self.command_timeout), sup, &env.id);
        if ended.journalled {
            return LocalOutcome::Delivered(done);
        }
        let shown = |code: i32| {
            match said.first() {
                None => log::info!("{}: {command}: exited with status {code}", env.id),
                Some(l) => log::info!("{}: {command}: exited with status {code}: {l}", env.id),
            }
            let mut outcome = command_failure(code);
            if let LocalOutcome::Failed(f) = &mut outcome
                && f.code >= 500
            {
                // The report's transcript: what it said, then sendmail's line (naming
                // the target for a 550, as sendmail's does).
                let line = if f.code == 550 {
                    format!(
                        "{} {} {}... {}",
                        f.code,
                        f.status,
                        rsendmail::aliases::shown_target(&r.address),
                        f.text
                    )
                } else {
                    format!("{} {} {}", f.code, f.status, f.text)
                };
                f.notes = said.clone();
                f.notes.push(line);
                f.diagnostic = Some(code.to_string());
            }
            outcome
        };
        let signalled = |s: std::process::ExitStatus| {
            log::info!("{}: {command}: {}", env.id, signal_failure(s).text);
            LocalOutcome::Failed(signal_failure(s))
        };
        use std::os::unix::process::ExitStatusExt;
        match ended.said {
            _ if ended.timed_out => LocalOutcome::temp(
                status::SYSTEM_TEMP,
                format!(
                    "{command}: timed out after {}s",
                    self.command_timeout.as_secs()
                ),
            ),
            Said::Exit(0) => LocalOutcome::Delivered(done),
            Said::Exit(c) => shown(c),
            Said::Signal(n, core) => signalled(std::process::ExitStatus::from_raw(
                n | if core { 0x80 } else { 0 },
            )),
            Said::Spawn(why) => {
                LocalOutcome::temp(status::SYSTEM_TEMP, format!("cannot run {command}: {why}"))
            }
            Said::Mailbox(why) | Said::Message(why) => LocalOutcome::temp(status::SYSTEM_TEMP, why),
            // The supervisor itself killed: as its program would have been.
            Said::Nothing => match ended.status {
                Some(s) if s.signal().is_some() => signalled(s),
                _ => LocalOutcome::temp(status::SYSTEM_TEMP, format!("{command}: delivery failed")),
            },
        }
    }
}

/// What a local delivery's supervisor is given ([`supervise_child`]): the entry's queue
/// file, open and locked (the supervisor inherits it, so the lock lasts as long as the
/// delivery does, whatever becomes of the deliverer), where the message is in it, and
/// the spool and recipient index for the delivery journal (`jf<ID>`).
pub struct Supervised<'a> {
    pub qf: &'a std::fs::File,
    pub offset: u64,
    pub len: u64,
    pub spool: &'a rsendmail::spool::Spool,
    pub rcpt: usize,
    /// Asked once a mailbox's or file's locks are all held, before its first byte is
    /// appended ([`Supervision::answer`]): whether the append goes on. The deliverer
    /// looks there at the entry's mark again (a deletion, hold or return asked for while
    /// it waited for the locks: no).
    pub go: &'a dyn Fn() -> bool,
}

/// What a supervisor's status line ([`supervise_child`]) said.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Said {
    /// Its program exited with this status.
    Exit(i32),
    /// Its program was killed by this signal (and left a core).
    Signal(i32, bool),
    /// Its program could not be started.
    Spawn(String),
    /// The mailbox could not be created or dotlocked (as root).
    Mailbox(String),
    /// The message could not be read from the queue file.
    Message(String),
    /// Nothing (the supervisor was killed, or is not ours).
    Nothing,
}

impl Said {
    fn parse(line: &str) -> Said {
        let (word, rest) = line
            .trim_end()
            .split_once(' ')
            .unwrap_or((line.trim_end(), ""));
        match word {
            "exit" => rest.parse().map_or(Said::Nothing, Said::Exit),
            "signal" => {
                let (n, core) = rest.split_once(' ').unwrap_or((rest, ""));
                n.parse()
                    .map_or(Said::Nothing, |n| Said::Signal(n, core == "core"))
            }
            "spawn" => Said::Spawn(rest.to_string()),
            "mailbox" => Said::Mailbox(rest.to_string()),
            "message" => Said::Message(rest.to_string()),
            _ => Said::Nothing,
        }
    }

    fn line(&self) -> String {
        let one = |t: &str| t.replace(['\n', '\r'], " ");
        match self {
            Said::Exit(c) => format!("exit {c}\n"),
            Said::Signal(n, core) => format!("signal {n}{}\n", if *core { " core" } else { "" }),
            Said::Spawn(t) => format!("spawn {}\n", one(t)),
            Said::Mailbox(t) => format!("mailbox {}\n", one(t)),
            Said::Message(t) => format!("message {}\n", one(t)),
            Said::Nothing => "\n".to_string(),
        }
    }
}

/// How a supervised delivery ended, as its deliverer saw it.
struct Ended {
    /// The supervisor journalled the delivery: delivered, whatever else was said.
    journalled: bool,
    said: Said,
    /// The supervisor's own exit status (None: not waited for).
    status: Option<std::process::ExitStatus>,
    /// The time limit passed, and the supervisor's process group was killed.
    timed_out: bool,
}

/// A supervisor started, with the threads that read what it relays and says.
struct Supervision {
    child: std::process::Child,
    relayed: std::thread::JoinHandle<(Vec<u8>, Vec<String>)>,
    status: std::thread::JoinHandle<String>,
    /// The deliverer's end of the gate of an append ([`GATE_FD`]).
    gate: Option<std::os::unix::net::UnixStream>,
}

/// Set in a mailbox delivery's supervisor's environment when it gets the traffic log of
/// `-X` as descriptor 5 (`rsendmail::traffic::INHERITED_FD`), for its `--mbox` child.
const TRAFFIC_ENV: &str = "RSENDMAIL_TRAFFIC_FD";

/// Set in a mailbox (or `/file`) delivery's supervisor's environment when it gets the
/// gate of its append as descriptor [`GATE_FD`].
const GATE_ENV: &str = "RSENDMAIL_GATE_FD";

/// A supervisor's end of the gate of its append: a socket to its deliverer, which it
/// asks (`?`) once the `--mbox` child holds every lock of the mailbox, and which
/// answers `y` (go on) or anything else (nothing is appended). The deliverer can read
/// the spool, where the entry's mark is; the supervisor and its child, which runs as
/// the mailbox's user, may not. No answer (a deliverer that died) is a no.
const GATE_FD: std::os::fd::RawFd = 6;

/// What an append's `--mbox` child says on its stdout once it holds every lock, before
/// it reads the message's length line (which its supervisor writes only on a go).
const LOCKED_LINE: &[u8] = b"locked\n";

impl Supervision {
    /// Start the supervisor `cmd` with the queue file as its descriptor 3 and the
    /// entry's delivery journal (opened, or made, here) as its descriptor 4, and, when
    /// `cmd` says so ([`TRAFFIC_ENV`]), the traffic log as its descriptor 5.
    fn start(mut cmd: Command, sup: &Supervised<'_>, id: &str) -> std::io::Result<Supervision> {
        use std::os::fd::{AsRawFd, OwnedFd};
        let jf = sup
            .spool
            .open_journal(id)
            .map_err(|e| std::io::Error::new(e.kind(), format!("delivery journal jf{id}: {e}")))?;
        // Above the descriptors they are moved to, so that neither move undoes the other.
        let high = |fd: &dyn AsRawFd| -> std::io::Result<OwnedFd> {
            let n = nix::fcntl::fcntl(
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) },
                nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10),
            )
            .map_err(std::io::Error::from)?;
            // SAFETY: a descriptor just made, owned by nothing else.
            Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
        };
        let (q, j) = (high(sup.qf)?, high(&jf)?);
        let (qn, jn) = (q.as_raw_fd(), j.as_raw_fd());
        let traffic = match rsendmail::traffic::raw_fd() {
            Some(fd) if cmd.get_envs().any(|(k, _)| k == TRAFFIC_ENV) => {
                // SAFETY: the log's descriptor, open for the life of the process.
                Some(high(&unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })?)
            }
            _ => None,
        };
        let tn = traffic.as_ref().map(AsRawFd::as_raw_fd);
        // The gate of an append: this end kept, the other handed over.
        let (gate, theirs) = if cmd.get_envs().any(|(k, _)| k == GATE_ENV) {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
            (Some(ours), Some(high(&theirs)?))
        } else {
            (None, None)
        };
        let gn = theirs.as_ref().map(AsRawFd::as_raw_fd);
        // SAFETY: only fcntl(2), close_range(2) and dup2(2) between fork and exec;
        // dup2 clears close-on-exec on the copies, which the supervisor sets again
        // before it runs anything.
        unsafe {
            cmd.pre_exec(move || {
                // Nothing but what is given below: the supervisor's children run as
                // other users.
                rsendmail::privs::cloexec_from(3);
                if libc::dup2(qn, 3) < 0 || libc::dup2(jn, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(t) = tn
                    && libc::dup2(t, rsendmail::traffic::INHERITED_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(g) = gn
                    && libc::dup2(g, GATE_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        drop(cmd);
        // The supervisor's end of the gate is its own alone: when it ends (or closes
        // it), this end reads the end of the stream.
        drop((q, j, jf, traffic, theirs));
        let out = child.stdout.take();
        let err = child.stderr.take();
        let relayed = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut lines = Vec::new();
            let Some(out) = out else {
                return (all, lines);
            };
            let mut r = std::io::BufReader::new(out);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if lines.len() < COMMAND_OUTPUT_LINES {
                            lines.push(output_line(&line));
                        }
                        if all.len() < 64 * 1024 {
                            all.extend_from_slice(&line);
                        }
                    }
                }
            }
            (all, lines)
        });
        let status = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err {
                let _ = e.take(64 * 1024).read_to_string(&mut s);
            }
            s
        });
        Ok(Supervision {
            child,
            relayed,
            status,
            gate,
        })
    }

    /// Answer the gate of an append ([`GATE_FD`]): wait until the supervisor asks,
    /// once the mailbox's locks are all held, and answer what `go` says; or until it
    /// ends (or closes the gate) without asking, when it appended nothing. Whether the
    /// append was withheld (`go` said no). A supervisor with no gate is not waited for.
    fn answer(&mut self, go: &dyn Fn() -> bool) -> bool {
        use std::io::Read as _;
        let Some(mut gate) = self.gate.take() else {
            return false;
        };
        let mut asked = [0u8; 1];
        loop {
            match gate.read(&mut asked) {
                Ok(1) if asked == *b"?" => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
        let yes = go();
        // A supervisor gone meanwhile appends nothing either way.
        let _ = gate.write_all(if yes { b"y" } else { b"n" });
        !yes
    }

    /// Wait for the supervisor, up to `limit` (then its process group is killed): how
    /// it ended, what it relayed (at most 64 KiB) and that as transcript lines.
    fn wait(
        mut self,
        limit: Option<Duration>,
        sup: &Supervised<'_>,
        id: &str,
    ) -> (Ended, Vec<u8>, Vec<String>) {
        let pid = self.child.id() as i32;
        let start = Instant::now();
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if limit.is_some_and(|l| start.elapsed() >= l) => {
                    // The whole process group: the supervisor, the shell and what it
                    // started.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    timed_out = true;
                    break self.child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break None,
            }
        };
        let (relayed, lines) = self.relayed.join().unwrap_or_default();
        let said = self.status.join().unwrap_or_default();
        let said = said.lines().last().map_or(Said::Nothing, Said::parse);
        // Its journal line, written before its status: the delivery happened, even
        // when what came after it was lost (the supervisor killed by the time limit
        // between the two).
        let journalled = sup
            .spool
            .journalled(id, sup.rcpt.saturating_add(1))
            .iter()
            .any(|(i, _)| *i == sup.rcpt);
        (
            Ended {
                journalled,
                said,
                status,
                timed_out,
            },
            relayed,
            lines,
        )
    }
}

/// A reader of a part of a file by position (pread(2)): the file's shared offset is
/// neither used nor moved. Seeks are to positions in the file, as the file's own.
struct At {
    file: std::fs::File,
    pos: u64,
    end: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for At {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let base = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::End(d) => self.end.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = base.ok_or(std::io::ErrorKind::InvalidInput)?;
        Ok(self.pos)
    }
}

/// The message a supervisor gives its program, read from the queue file `qf` by
/// position (`offset`, `len`), in the `form` it is written locally (`local`: a report
/// with 8-bit text, [`rsendmail::dsn::form::for_local`]; else as queued).
fn supervised_message(
    qf: &std::fs::File,
    offset: u64,
    len: u64,
    form: &str,
) -> std::io::Result<(Box<dyn Read + Send>, u64)> {
    let at = At {
        file: qf.try_clone()?,
        pos: offset,
        end: offset.saturating_add(len),
    };
    if form == "local" {
        rsendmail::dsn::form::for_local(at, len)
    } else {
        Ok((Box::new(at), len))
    }
}

/// The `--supervise KIND RCPT OFFSET LEN FORM UID GID SWITCH CWD REPLY ARGS...` child: the
/// supervisor of one local delivery, started by the deliverer with the entry's queue
/// file, open and locked, as descriptor 3 and its delivery journal as descriptor 4
/// (docs/ARCHITECTURE.md, "Local delivery and its supervisor"). It keeps both from the
/// program it runs (close-on-exec), and the queue file's lock lasts as long as it
/// does: a deliverer that dies meanwhile leaves the entry locked until the delivery has
/// ended and is journalled, so no other run delivers it again. It runs (as `UID`/`GID`
/// when `SWITCH` is 1, else as itself) KIND `pipe`: `/bin/sh -c ARGS[0]` in `CWD`, with
/// its environment, the message (by position from the queue file, in `FORM`) on its
/// stdin and its output relayed to the supervisor's stdout; or KIND `mbox`: the
/// `--mbox` child (ARGS: `PATH SENDER RCPT OWNER LOCK-MS CREATE`; with CREATE 1, the
/// mailbox is first created for OWNER and dotlocked, as root), its stderr relayed. A
/// deliverer that has gone away does not stop either: writes to it that fail are
/// dropped. When the program succeeded, `rcpt RCPT delivered REPLY` is appended to the
/// journal with one write and an fdatasync, before anything else. Last, one status
/// line on stderr ([`Said`]). The termination signals a daemon's stop sends its
/// process group are ignored (the program gets them back at their defaults): a
/// delivery started is seen to its end.
pub fn supervise_child(args: &[std::ffi::OsString]) -> i32 {
    use std::os::fd::FromRawFd;
    let say = |s: &Said| {
        let _ = std::io::stderr().write_all(s.line().as_bytes());
    };
    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // SAFETY: F_GETFD and F_SETFD on descriptor numbers only.
    let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 };
    if !open(3) || !open(4) {
        say(&Said::Spawn("no queue file or journal given".into()));
        return 70;
    }
    // The traffic log (`-X`), when its caller handed it over: for the `--mbox` child.
    let traffic = std::env::var_os(TRAFFIC_ENV).is_some() && open(rsendmail::traffic::INHERITED_FD);
    // The gate of an append, when its caller handed it over ([`GATE_FD`]).
    let gated = std::env::var_os(GATE_ENV).is_some() && open(GATE_FD);
    unsafe {
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC);
        if traffic {
            libc::fcntl(
                rsendmail::traffic::INHERITED_FD,
                libc::F_SETFD,
                libc::FD_CLOEXEC,
            );
        }
        if gated {
            libc::fcntl(GATE_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    // SAFETY: descriptors 3 and 4 are open (just checked) and ours alone.
    let (qf, jf) = unsafe { (std::fs::File::from_raw_fd(3), std::fs::File::from_raw_fd(4)) };
    // SAFETY: the gate's descriptor is open (just checked) and ours alone.
    let gate = gated.then(|| unsafe { std::os::unix::net::UnixStream::from_raw_fd(GATE_FD) });
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let text = |i: usize| arg(i).to_string_lossy().into_owned();
    let num = |i: usize| text(i).parse::<u64>().ok();
    let (Some(rcpt), Some(offset), Some(len), Some(uid), Some(gid)) =
        (num(1), num(2), num(3), num(5), num(6))
    else {
        say(&Said::Spawn("bad arguments".into()));
        return 64;
    };
    let (Ok(rcpt), Ok(uid), Ok(gid)) = (
        usize::try_from(rcpt),
        u32::try_from(uid),
        u32::try_from(gid),
    ) else {
        say(&Said::Spawn("bad arguments".into()));
        return 64;
    };
    let kind = text(0);
    let form = text(4);
    let switch = text(7) == "1";
    let cwd = arg(8);
    let reply = text(9);
    let (message, len) = match supervised_message(&qf, offset, len, &form) {
        Ok(m) => m,
        Err(e) => {
            say(&Said::Message(format!("cannot read the message: {e}")));
            return 0;
        }
    };
    let mut _dot = None;
    // `-X`: the pipe the mailbox writer logs into, its lines copied to the log here.
    let traffic_pipe = if traffic && kind != "pipe" {
        std::io::pipe().ok()
    } else {
        None
    };
    let mut cmd = if kind == "pipe" {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(arg(10));
        if !cwd.is_empty() {
            cmd.current_dir(&cwd);
        }
        // Its output and errors, in the order written, in one pipe.
        let out_r = match std::io::pipe().and_then(|(r, w)| Ok((r, w.try_clone()?, w))) {
            Ok((r, w1, w2)) => {
                cmd.stdout(w1).stderr(w2);
                r
            }
            Err(e) => {
                say(&Said::Spawn(e.to_string()));
                return 0;
            }
        };
        // SAFETY: only sigaction, fcntl and close_range between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rsendmail::privs::restore_sigxfsz();
                for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                // The command (often another user's) gets its standard descriptors
                // alone: nothing of ours, nor anything our caller left open.
                rsendmail::privs::cloexec_from(3);
                Ok(())
            });
        }
        (cmd, Some(out_r))
    } else {
        let path = PathBuf::from(arg(10));
        let owner = text(13);
        let wait = Duration::from_millis(num(14).unwrap_or(60_000));
        if text(15) == "1" {
            let Ok(owner_uid) = owner.parse::<u32>() else {
                say(&Said::Spawn("bad arguments".into()));
                return 64;
            };
            if let Err(e) = mbox::create_mailbox(&path, owner_uid, gid) {
                say(&Said::Mailbox(e.text().to_string()));
                return 0;
            }
            match mbox::dotlock(&path, wait) {
                Ok(d) => _dot = Some(d),
                Err(e) => {
                    say(&Said::Mailbox(e.text().to_string()));
                    return 0;
                }
            }
        }
        let mut cmd = super::own_command(&super::own_exe());
        cmd.arg("--mbox")
            .arg(&path)
            .arg(arg(11))
            .arg(arg(12))
            .arg(&owner)
            .arg(wait.as_millis().to_string())
            .arg(if _dot.is_some() { "0" } else { "1" })
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            // With a gate: where it says it holds every lock ([`LOCKED_LINE`]).
            .stdout(if gate.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        // The writer runs as the mailbox's owner: it gets no descriptor of ours. With
        // `-X` it logs what it appends into a pipe as its descriptor 5, whose lines this
        // supervisor copies to the log ([`copy_traffic`]): the log itself, a file root
        // opened, never reaches it.
        let tn = match traffic_pipe.as_ref() {
            Some((_, w)) => {
                cmd.arg(rsendmail::traffic::INHERITED_FD.to_string());
                use std::os::fd::AsRawFd;
                Some(w.as_raw_fd())
            }
            None => None,
        };
        // SAFETY: only fcntl(2), close_range(2) and dup2(2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                rsendmail::privs::cloexec_from(3);
                if let Some(w) = tn
                    && libc::dup2(w, rsendmail::traffic::INHERITED_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        super::pass_process_name(&mut cmd);
        (cmd, None)
    };
    cmd.0.stdin(Stdio::piped());
    if switch {
        cmd.0.uid(uid).gid(gid);
    }
    let mut child = match cmd.0.spawn() {
        Ok(c) => c,
        Err(e) => {
            say(&Said::Spawn(e.to_string()));
            return 0;
        }
    };
    // The write ends of its output are the child's alone: the reader sees its end.
    drop(cmd.0);
    let copier = traffic_pipe.map(|(r, w)| {
        drop(w);
        std::thread::spawn(move || copy_traffic(r))
    });
    let output: Option<Box<dyn Read + Send>> = match cmd.1 {
        Some(r) => Some(Box::new(r)),
        None => child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    };
    let relay = std::thread::spawn(move || {
        let Some(mut output) = output else { return };
        let mut buf = vec![0u8; 16 * 1024];
        let mut to = Some(std::io::stdout());
        loop {
            match output.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // A deliverer gone away: what follows is read and dropped.
                    if let Some(w) = to.as_mut()
                        && w.write_all(buf.get(..n).unwrap_or_default())
                            .and_then(|()| w.flush())
                            .is_err()
                    {
                        to = None;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    let stdin = child.stdin.take();
    let mbox = kind != "pipe";
    // An append with a gate: its child says when it holds every lock.
    let gate = gate.filter(|_| mbox);
    let locked = if gate.is_some() {
        child.stdout.take()
    } else {
        None
    };
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        let Some(mut w) = stdin else {
            return Ok(());
        };
        // No go, no message: the child, given no length line, appends nothing.
        if let Some(gate) = gate
            && !given_go(locked, gate)
        {
            return Ok(());
        }
        if mbox {
            w.write_all(format!("{len}\n").as_bytes())?;
        }
        let mut message = message;
        std::io::copy(&mut message, &mut w).map(|_| ())
    });
    let status = child.wait();
    // A command that stops reading early is not an error by itself; the `--mbox`
    // child refuses a short message itself.
    let fed = feeder.join().unwrap_or(Ok(()));
    let said = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            match (s.code(), s.signal()) {
                (Some(c), _) => Said::Exit(c),
                (None, Some(n)) => Said::Signal(n, s.core_dumped()),
                (None, None) => Said::Nothing,
            }
        }
        Err(e) => Said::Spawn(e.to_string()),
    };
    let said = match (said, fed) {
        (Said::Exit(0), Err(e)) if mbox => Said::Message(format!("cannot give the message: {e}")),
        (s, _) => s,
    };
    if said == Said::Exit(0) {
        let line = rsendmail::spool::entry::journal_line(rcpt, &reply);
        // One write (O_APPEND: whole, at the end) and its data made durable; a journal
        // not written leaves the deliverer's own record, when it is still there.
        let _ = (&jf)
            .write(line.as_bytes())
            .and_then(|n| {
                if n == line.len() {
                    Ok(())
                } else {
                    Err(std::io::ErrorKind::WriteZero.into())
                }
            })
            .and_then(|()| jf.sync_data());
    }
    drop(_dot);
    if let Some(c) = copier {
        let _ = c.join();
    }
    let _ = relay.join();
    say(&said);
    0
}

/// Whether the deliverer gave an append the go through `gate` ([`GATE_FD`]): once the
/// `--mbox` child said on its stdout (`locked`) that it holds every lock, the
/// deliverer is asked, and its answer is awaited. A child that ended first, a line
/// that is not [`LOCKED_LINE`], a deliverer gone or an answer other than `y`: no.
fn given_go(
    locked: Option<std::process::ChildStdout>,
    mut gate: std::os::unix::net::UnixStream,
) -> bool {
    let Some(mut locked) = locked else {
        return false;
    };
    let mut said = [0u8; LOCKED_LINE.len()];
    if locked.read_exact(&mut said).is_err() || said != LOCKED_LINE {
        return false;
    }
    let mut answer = [0u8; 1];
    gate.write_all(b"?").is_ok() && gate.read_exact(&mut answer).is_ok() && answer == *b"y"
}

/// Copy the lines the mailbox writer logged into its pipe (`r`) to the `-X` log, this
/// supervisor's descriptor 5 (`rsendmail::traffic::INHERITED_FD`), each with one write,
/// until the writer closes it. A line longer than 64 KiB is copied in parts.
fn copy_traffic(r: std::io::PipeReader) {
    use std::os::fd::FromRawFd;
    // SAFETY: descriptor 5 is the log its caller handed over (checked open by the
    // supervisor); it stays open for the supervisor's life, so it is borrowed here and
    // never closed.
    let log = std::mem::ManuallyDrop::new(unsafe {
        std::fs::File::from_raw_fd(rsendmail::traffic::INHERITED_FD)
    });
    let mut r = std::io::BufReader::with_capacity(64 * 1024, r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut r).take(64 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = (&*log).write_all(&line);
            }
        }
    }
}

/// The shell that runs a `|command` killed by a signal (the command itself killed is
/// the shell's exit status 128+N, [`command_failure`]) as sendmail 8.17 words it: the
/// recipient deferred, `mailer prog died with signal N` its reason (with ` (core
/// dumped)` when it left a core), an interactive delivery's exit status 0 (recorded:
/// `prog-signal-mailer-*`).
fn signal_failure(s: std::process::ExitStatus) -> Failure {
    use std::os::unix::process::ExitStatusExt;
    let text = format!(
        "mailer prog died with signal {}{}",
        s.signal().unwrap_or(0),
        if s.core_dumped() {
            " (core dumped)"
        } else {
            ""
        }
    );
    let mut f = Failure::new(451, status::SYSTEM_TEMP, text.clone());
    f.stat = Some(text);
    f
}

/// How many lines of a command's output a report's transcript shows (the rest is read
/// and dropped).
const COMMAND_OUTPUT_LINES: usize = 100;

/// One line of a command's output as a transcript line: without its line end, as text
/// (octets that are not UTF-8 and control characters `?`), at most 998 characters.
fn output_line(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{fffd}' {
                '?'
            } else {
                c
            }
        })
        .take(998)
        .collect()
}

/// A command's exit status `code` (not 0) as its recipient's failure, as sendmail 8.17's
/// prog mailer gives it (its sysexits table, recorded: compat cases `prog-exit-*`): each
/// sysexits code its own reply, report Status and interactive exit status; EX_OSERR,
/// EX_IOERR and EX_TEMPFAIL temporary (the recipient stays queued, and an interactive
/// delivery exits 71 or 74, or 0 for EX_TEMPFAIL); any other status `554 5.3.0 unknown
/// mailer error N`, exit 69 (EX_UNAVAILABLE).
fn command_failure(code: i32) -> LocalOutcome {
    use rsendmail::status::StatusClass::{Permanent as P, Transient as T};
    let st = EnhancedStatus::new;
    let x = u8::try_from(code).ok().and_then(Sysexit::from_code);
    // (reply code, its status, text, the report's Status)
    let (reply, status, text, dsn) = match x {
        Some(Sysexit::Usage) => (500, st(P, 0, 0), "Command line usage error", st(P, 5, 4)),
        Some(Sysexit::DataErr) => (501, st(P, 6, 0), "Data format error", st(P, 5, 2)),
        Some(Sysexit::NoInput) => (550, st(P, 3, 0), "Cannot open input", st(P, 3, 0)),
        Some(Sysexit::NoUser) => (550, st(P, 1, 1), "User unknown", st(P, 1, 1)),
        Some(Sysexit::NoHost) => (
            550,
            st(P, 1, 2),
            "Host unknown (Name server: host not found)",
            st(P, 1, 2),
        ),
        Some(Sysexit::Unavailable) => (554, st(P, 0, 0), "Service unavailable", st(P, 5, 0)),
        Some(Sysexit::Software) => (554, st(P, 3, 0), "Internal error", st(P, 5, 0)),
        Some(Sysexit::OsErr) => (451, st(T, 0, 0), "Operating system error", st(T, 0, 0)),
        Some(Sysexit::OsFile) => (554, st(P, 3, 5), "System file missing", st(P, 5, 0)),
        Some(Sysexit::CantCreat) => (550, st(P, 0, 0), "Can't create output", st(P, 3, 0)),
        Some(Sysexit::IoErr) => (451, st(T, 0, 0), "I/O error", st(T, 0, 0)),
        Some(Sysexit::TempFail) => (450, st(T, 0, 0), "Deferred", st(T, 0, 0)),
        Some(Sysexit::Protocol) => (554, st(P, 5, 0), "Remote protocol error", st(P, 5, 0)),
        Some(Sysexit::NoPerm) => (550, st(P, 0, 0), "Insufficient permission", st(P, 3, 0)),
        Some(Sysexit::Config) => (554, st(P, 3, 5), "Local configuration error", st(P, 5, 0)),
        Some(Sysexit::Ok) | None => {
            let mut f = Failure::new(
                554,
                status::SYSTEM_PERM,
                format!("unknown mailer error {code}"),
            );
            f.exit = Some(Sysexit::Unavailable);
            f.dsn = Some(status::PERM);
            return LocalOutcome::Failed(f);
        }
    };
    let mut f = Failure::new(reply, status, text);
    f.dsn = Some(dsn);
    match x {
        Some(Sysexit::TempFail) => {
            f.stat = Some("Deferred: prog mailer (/bin/sh) exited with EX_TEMPFAIL".into());
        }
        Some(e @ (Sysexit::OsErr | Sysexit::IoErr)) => {
            f.stat = Some(text.into());
            f.exit = Some(e);
        }
        e => f.exit = e,
    }
    LocalOutcome::Failed(f)
}

/// Run the child as the user `uid`, with the user's gid and groups (from the password and
/// group databases, looked up here: between fork and exec only system calls are made),
/// so that it can read what the user can, and nothing more. A uid without an account gets
/// its own number as gid and no other group.
fn become_user(cmd: &mut Command, uid: u32) {
    let (gid, groups): (u32, Vec<libc::gid_t>) = match user_by_uid(uid) {
        Some(u) => {
            let groups = std::ffi::CString::new(u.name.as_str())
                .ok()
                .and_then(|name| {
                    nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(u.gid)).ok()
                })
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_else(|| vec![u.gid]);
            (u.gid, groups)
        }
        None => (uid, Vec::new()),
    };
    // SAFETY: only async-signal-safe system calls between fork and exec, on data made
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Why the `.forward` of the local user `name` is not used, as sendmail's `-v` says
/// it (`PATH: Group writable file`), or None when there is none or it is safe.
pub fn unused_forward(name: &str) -> Option<String> {
    let (base, detail) = rsendmail::aliases::split_detail(name);
    if base.is_empty() || detail.is_some() {
        return None;
    }
    let u = user(base)?;
    let fwd = u.home.join(".forward");
    let why = forward_unsafe(&fwd, u.uid).ok()??;
    Some(format!("{}: {why}", fwd.display()))
}

/// The `--read-list PATH follow|nofollow [owner]` child, run as the user whose list it
/// is (or as DefaultUser, for a list no user controls): print the list file (at most
/// `MAX_LIST_FILE` octets; see `rsendmail::aliases::read_list_file`), after a line with
/// its owner's uid (and ` unsafe` when someone besides its owner may write it) when
/// `owner` is asked, and exit 0, or print why not as one line on
/// stderr and exit 74 (EX_IOERR).
pub fn read_list_child(args: &[std::ffi::OsString]) -> i32 {
    let path = PathBuf::from(args.first().cloned().unwrap_or_default());
    let no_follow = args.get(1).is_none_or(|a| a != "follow");
    let with_owner = args.get(2).is_some_and(|a| a == "owner");
    let (text, uid, unsafe_file) = match rsendmail::aliases::read_list_file(&path, no_follow) {
        Ok(x) => x,
        Err(e) => {
            rsendmail::errln!("{}", e.to_line());
            return 74;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if with_owner {
        let mark = if unsafe_file { " unsafe" } else { "" };
        writeln!(out, "{uid}{mark}").and_then(|()| out.write_all(&text))
    } else {
        out.write_all(&text)
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            rsendmail::errln!("{}", ListFileError::from(e).to_line());
            74
        }
    }
}

/// Run the child as (uid, gid) when we are root (supplementary groups cleared by std);
/// otherwise as ourselves with the set-id group, if any, dropped for good.
fn drop_to(cmd: &mut Command, (uid, gid): (u32, u32), root: bool) {
    if root {
        cmd.uid(uid).gid(gid);
    } else {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let g = libc::getgid();
                if libc::setresgid(g, g, g) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The `--mbox PATH SENDER RCPT OWNER-UID LOCK-MS DOTLOCK [5]` child: take the mailbox's
/// locks, say so on stdout ([`LOCKED_LINE`]), then read the length line and the message
/// from stdin (a supervisor with a gate writes the length line only once its deliverer
/// gave the go: [`given_go`]) and append it in mbox format; with `5`, each line appended
/// is logged to the traffic log of `-X`, given as that descriptor. Exit 0 done, 69
/// (EX_UNAVAILABLE) for a lock not obtained in time, 73 (EX_CANTCREAT) for a mailbox
/// that cannot be opened or created, 74 (EX_IOERR) for I/O errors and for no length line
/// (no go: nothing appended), 75 (EX_TEMPFAIL) for no room (a full disk, a quota, the
/// file-size limit), 77 (EX_NOPERM) for an unsafe mailbox; the reason on stderr.
pub fn mbox_child(args: &[std::ffi::OsString]) -> i32 {
    let arg = |i: usize| {
        args.get(i)
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let path = PathBuf::from(args.first().cloned().unwrap_or_default());
    let sender = arg(1);
    let rcpt = arg(2);
    let owner = arg(3).parse::<u32>().ok();
    let wait = Duration::from_millis(arg(4).parse().unwrap_or(60_000));
    let dotlock = arg(5) != "0";
    if arg(6) == rsendmail::traffic::INHERITED_FD.to_string() {
        rsendmail::traffic::install_inherited();
    }
    let stdin = std::io::stdin();
    let input = std::cell::RefCell::new(std::io::BufReader::with_capacity(64 * 1024, stdin.lock()));
    let len = std::cell::Cell::new(0u64);
    let target = mbox::Target {
        path: &path,
        owner,
        lock_wait: wait,
        dotlock,
    };
    let now = rsendmail::clock::now();
    // Every lock held: said on stdout, for a supervisor that waits for it to ask its
    // deliverer for the go ([`given_go`]); the length line it then writes is the go. A
    // supervisor with no gate has written it already.
    let mut ready = || -> Result<(), mbox::AppendError> {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(LOCKED_LINE).and_then(|()| out.flush());
        let mut len_line = String::new();
        let withheld = |why: &str| {
            mbox::AppendError::Withheld(format!("nothing appended to {}: {why}", path.display()))
        };
        match input.borrow_mut().read_line(&mut len_line) {
            Ok(n) if n > 0 => {}
            _ => return Err(withheld("no go from the deliverer")),
        }
        len.set(
            len_line
                .trim()
                .parse::<u64>()
                .map_err(|_| withheld("no message length"))?,
        );
        Ok(())
    };
    let res = mbox::append_when_ready(&target, &mut ready, &mut |w| {
        // Logged as written (`-X`), as a message saved in dead.letter is.
        let mut tee = rsendmail::traffic::WriteTee::new(w);
        let w: &mut dyn Write = &mut tee;
        let len = len.get();
        let mut input = input.borrow_mut();
        let mut limited = (&mut *input).take(len);
        let mut counting = Counting {
            inner: &mut limited,
            n: 0,
        };
        let delivered_to = format!("Delivered-To: {rcpt}\n");
        mbox::write_message(w, &sender, now, &delivered_to, &mut counting)?;
        // A short message (the deliverer died): the append is taken back.
        if counting.n != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the message ended early",
            ));
        }
        Ok(())
    });
    match res {
        Ok(_) => 0,
        Err(e) => {
            rsendmail::errln!("{}", e.text());
            match e {
                mbox::AppendError::Unsafe(_) => 77,
                mbox::AppendError::Full(_) => 75,
                mbox::AppendError::CantCreate(_) => 73,
                // Told apart from an I/O error: a lock is a mailbox's status (4.2.0),
                // as the dotlock the parent takes is.
                mbox::AppendError::Locked(_) => 69,
                _ => 74,
            }
        }
    }
}

/// Counts the bytes read through it.
struct Counting<'a, R: Read> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell of a `|command` killed by a signal: deferred with sendmail's reason
    /// (recorded: `prog-signal-mailer-*`), no exit status of its own (an interactive
    /// delivery exits 0, the recipient queued).
    #[test]
    fn a_shell_killed_by_a_signal_defers() {
        use std::os::unix::process::ExitStatusExt;
        let f = signal_failure(std::process::ExitStatus::from_raw(9));
        assert_eq!(f.stat.as_deref(), Some("mailer prog died with signal 9"));
        assert_eq!(f.status.class, rsendmail::status::StatusClass::Transient);
        assert_eq!(f.exit, None);
        // A core left behind is named, as sendmail does.
        let f = signal_failure(std::process::ExitStatus::from_raw(11 | 0x80));
        assert_eq!(
            f.stat.as_deref(),
            Some("mailer prog died with signal 11 (core dumped)")
        );
    }

    /// A command's exit status as its recipient's reply, report Status, `mailq` reason
    /// and interactive exit status, as sendmail 8.17's prog mailer gives them (recorded:
    /// compat cases `prog-exit-*`).
    #[test]
    fn command_exit_statuses() {
        type Want = (
            i32,
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<u8>,
        );
        let cases: &[Want] = &[
            (
                1,
                "554 5.3.0 unknown mailer error 1",
                "5.0.0",
                None,
                Some(69),
            ),
            (
                64,
                "500 5.0.0 Command line usage error",
                "5.5.4",
                None,
                Some(64),
            ),
            (65, "501 5.6.0 Data format error", "5.5.2", None, Some(65)),
            (66, "550 5.3.0 Cannot open input", "5.3.0", None, Some(66)),
            (67, "550 5.1.1 User unknown", "5.1.1", None, Some(67)),
            (
                68,
                "550 5.1.2 Host unknown (Name server: host not found)",
                "5.1.2",
                None,
                Some(68),
            ),
            (69, "554 5.0.0 Service unavailable", "5.5.0", None, Some(69)),
            (70, "554 5.3.0 Internal error", "5.5.0", None, Some(70)),
            (
                71,
                "451 4.0.0 Operating system error",
                "4.0.0",
                Some("Operating system error"),
                Some(71),
            ),
            (72, "554 5.3.5 System file missing", "5.5.0", None, Some(72)),
            (73, "550 5.0.0 Can't create output", "5.3.0", None, Some(73)),
            (
                74,
                "451 4.0.0 I/O error",
                "4.0.0",
                Some("I/O error"),
                Some(74),
            ),
            (
                75,
                "450 4.0.0 Deferred",
                "4.0.0",
                Some("Deferred: prog mailer (/bin/sh) exited with EX_TEMPFAIL"),
                None,
            ),
            (
                76,
                "554 5.5.0 Remote protocol error",
                "5.5.0",
                None,
                Some(76),
            ),
            (
                77,
                "550 5.0.0 Insufficient permission",
                "5.3.0",
                None,
                Some(77),
            ),
            (
                78,
                "554 5.3.5 Local configuration error",
                "5.5.0",
                None,
                Some(78),
            ),
            (
                79,
                "554 5.3.0 unknown mailer error 79",
                "5.0.0",
                None,
                Some(69),
            ),
            (
                143,
                "554 5.3.0 unknown mailer error 143",
                "5.0.0",
                None,
                Some(69),
            ),
            (
                255,
                "554 5.3.0 unknown mailer error 255",
                "5.0.0",
                None,
                Some(69),
            ),
        ];
        for &(code, want, dsn, stat, exit) in cases {
            let LocalOutcome::Failed(f) = command_failure(code) else {
                panic!("{code}: not a failure");
            };
            assert_eq!(f.reply().summary(), want, "{code}");
            assert_eq!(f.dsn.map(|d| d.to_string()).as_deref(), Some(dsn), "{code}");
            assert_eq!(f.stat.as_deref(), stat, "{code}");
            assert_eq!(f.exit.map(Sysexit::code), exit, "{code}");
            // Temporary exactly for EX_OSERR, EX_IOERR and EX_TEMPFAIL.
            assert_eq!(
                f.code < 500,
                matches!(code, 71 | 74 | 75),
                "{code}: temporary or not"
            );
        }
    }
}

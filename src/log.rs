//! Logging: one line per event in the mail facility, queue id first (as dma and sendmail
//! write them), through the `log` facade. Nothing here prints to the caller of a
//! submission but the one warning about an unusable MAILLOG (below): diagnostics for the
//! caller are printed once by [`crate::app::report`] (docs/ARCHITECTURE.md, "What the
//! caller sees").
//!
//! Where the lines go, decided once the config is read ([`configure`]; whether syslog
//! takes them is looked at when the first line is written):
//! - `MAILLOG /path` (Postfix's `maillog_file`): that file instead of syslog, one line per
//!   record, `2026-11-30T05:30:22+01:00 rsendmail[1234]: text`, appended with O_APPEND
//!   (one write per line, so processes writing at once do not mix their lines). It is
//!   opened with O_NOFOLLOW and created 0660 with the shared spool's group (users'
//!   submissions and admin actions hold that group and log there too); a file that is not a regular file with one
//!   link, one in a directory someone the process does not trust could change (root
//!   trusts root alone; a user's process root, her and the spool's group), or (for
//!   root) one root does not own, is refused: a symlink or hard link planted by another
//!   user never makes root write elsewhere.
//! - else syslog, when its socket (`/dev/log`) takes connections;
//! - else, for a long-running process (the `-q<time>` runner, the `-bd`/`-bD` daemon), its
//!   stderr (with the same line format): where systemd's journal and container runtimes
//!   collect a service's output (`privs::detach` leaves fd 2 open for it);
//! - else (a one-shot process: a submission, one queue run, `-bs`): nowhere. Its stdout
//!   and stderr belong to sendmail's interface (cron mails stderr, PHP and `git
//!   send-email` read it as a failure, the compat suite compares it), and what it has to
//!   say is already printed there (its errors), in `mailq` (deferrals) or in delivery
//!   reports. Set MAILLOG on a host without syslog to keep a record.
//!
//! A MAILLOG that is set but cannot be used is a configuration error the admin must hear
//! about, never a silent loss. When it cannot be opened (a symlink, a FIFO, a directory,
//! a missing directory, no permission), or a write to it fails (ENOSPC, EIO), this process
//! gives it up for the rest of its life and logs by the rules after it (syslog, else a
//! long-running process's stderr, else nowhere), and says so once: `cannot open MAILLOG
//! PATH: REASON; logging to syslog` (or `cannot write to MAILLOG ...`), logged there and,
//! for a one-shot process, also printed on its stderr as `rsendmail: warning: ...` (as
//! sendmail prints its configuration warnings there; its exit status and what it does
//! with the message do not change, so cron mails the warning to the admin and PHP's
//! `mail()` still succeeds). A long-running process's warning goes to its log only
//! (syslog, else its stderr, which is then the log).
//!
//! Once per process chain: a process that has given MAILLOG up passes
//! [`GIVEN_UP_ARG`] first to the rsendmail-deliver it execs (a submission, `-q`, `-bd`)
//! and to the children a daemon starts (its queue runner, an ETRN's run, a delivery);
//! they log where it does without trying the file or warning again. Both programs may
//! warn (whichever meets the problem first), so a problem found only by the deliverer
//! (a disk that fills during a delivery) is still told.
//!
//! Text from outside (a server's reply, an address) may hold control characters: every
//! line, whatever its target (file, stderr, syslog), goes through [`sanitize`]: line
//! breaks and tabs become blanks, any other control character (NUL, ESC, BEL, DEL, C1)
//! or invisible format character (a bidirectional override) becomes its UTF-8 octets as
//! `\ooo` ([`crate::text::escaped`], as `mailq` writes them); valid
//! non-ASCII UTF-8 is kept. One record stays one line, and no terminal escape reaches an
//! admin's `tail -f`.
//!
//! Before [`configure`] (while the command line and config are read) lines go to syslog
//! only: a failure there is printed to the caller anyway.

use crate::spool::entry::Envelope;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The internal argument by which a process that has given up MAILLOG (and said so) tells
/// the rsendmail-deliver it runs, or the children a daemon starts, to do the same without
/// saying it again. It comes first, before the deliverer's other internal arguments.
pub const GIVEN_UP_ARG: &str = "--maillog-given-up";

/// Where the lines go when MAILLOG is not set or not usable.
#[derive(Clone, Copy, PartialEq)]
enum Fallback {
    Syslog,
    Stderr,
    Nowhere,
}

/// What [`configure`] decided.
struct Config {
    /// The MAILLOG file, while it is usable (see [`FILE_GIVEN_UP`]).
    file: Option<(File, String)>,
    /// Found out when first needed ([`Config::probed`]).
    fallback: OnceLock<Fallback>,
    long_running: bool,
}

impl Config {
    /// Where lines go when MAILLOG is not used. A long-running process: syslog when its
    /// socket takes datagrams, else its stderr, looked at when the first line needs it.
    /// A one-shot process: syslog, without looking: libc's `syslog` connects with the
    /// first line (`init` asks for no connection before) and drops the line when there is
    /// no socket, which is [`Fallback::Nowhere`]'s effect, so a submission makes one
    /// connection to the system logger (for its `from=` line), not two.
    fn fallback(&self) -> Fallback {
        if self.long_running {
            self.probed()
        } else {
            Fallback::Syslog
        }
    }

    /// [`Config::fallback`] found out: syslog when its socket takes datagrams, else a
    /// long-running process's stderr, else nowhere (said in a warning about MAILLOG).
    fn probed(&self) -> Fallback {
        *self.fallback.get_or_init(|| {
            if syslog_available() {
                Fallback::Syslog
            } else if self.long_running {
                Fallback::Stderr
            } else {
                Fallback::Nowhere
            }
        })
    }
}

struct Logger;

static IDENT: OnceLock<CString> = OnceLock::new();
static CONFIG: OnceLock<Config> = OnceLock::new();
/// MAILLOG was set but is not used by this process: it could not be opened or written
/// (and the admin was told), or the process that ran this one had given it up.
static FILE_GIVEN_UP: AtomicBool = AtomicBool::new(false);
/// Set from [`GIVEN_UP_ARG`] before [`configure`]: the admin has been told already.
static INHERITED: AtomicBool = AtomicBool::new(false);

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let text = sanitize(&record.args().to_string());
        let Some(c) = CONFIG.get() else {
            syslog(record.level(), &text);
            return;
        };
        if let Some((f, path)) = &c.file
            && !FILE_GIVEN_UP.load(Ordering::SeqCst)
        {
            match write_line(f, &text) {
                Ok(()) => return,
                Err(e) => {
                    if !FILE_GIVEN_UP.swap(true, Ordering::SeqCst) {
                        tell(
                            c,
                            &format!(
                                "cannot write to MAILLOG {path}: {}",
                                crate::config::io_text(&e)
                            ),
                        );
                    }
                }
            }
        }
        emit(c.fallback(), record.level(), &text);
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// One (sanitized) record to the fallback target.
fn emit(to: Fallback, level: log::Level, text: &str) {
    match to {
        Fallback::Syslog => syslog(level, text),
        Fallback::Stderr => {
            let _ = write_line(std::io::stderr(), text);
        }
        Fallback::Nowhere => {}
    }
}

/// Tell the admin, once, that MAILLOG is given up (`why`) and where lines go instead: in
/// the log that replaces it (syslog, or a long-running process's stderr) and, for a
/// one-shot process, on its stderr too (as sendmail prints its configuration warnings),
/// since syslog may not be there or read.
fn tell(c: &Config, why: &str) {
    let text = format!(
        "{why}; {}",
        match c.probed() {
            Fallback::Syslog => "logging to syslog",
            Fallback::Stderr => "logging to stderr",
            Fallback::Nowhere => "nothing is logged (no syslog socket)",
        }
    );
    emit(c.fallback(), log::Level::Warn, &text);
    if !c.long_running && c.fallback() != Fallback::Stderr {
        let _ = writeln!(std::io::stderr(), "{}: warning: {text}", ident());
    }
}

fn syslog(level: log::Level, text: &str) {
    let prio = match level {
        log::Level::Error => libc::LOG_ERR,
        log::Level::Warn => libc::LOG_WARNING,
        log::Level::Info => libc::LOG_INFO,
        _ => libc::LOG_DEBUG,
    };
    if let Ok(c) = CString::new(text) {
        // SAFETY: "%s" with a valid NUL-terminated string.
        unsafe { libc::syslog(libc::LOG_MAIL | prio, c"%s".as_ptr(), c.as_ptr()) };
    }
}

/// A process that cannot start says why where its admin looks although its own
/// configuration could not be read: to syslog, and appended to `maillog` (the MAILLOG
/// of the program it replaces) when given, as far as either can be written.
pub fn last_word(maillog: Option<&Path>, text: &str) {
    syslog(log::Level::Error, text);
    if let Some(path) = maillog
        && let Ok(f) = open_log_file(path)
    {
        let _ = write_line(f, text);
    }
}

/// Text from outside (a server's reply, an address) made harmless in a log line: line
/// breaks and tabs become blanks (one record, one line); every other character that is
/// not [`crate::text::is_safe`] (C0, DEL, C1, NUL, the invisible format characters and
/// bidirectional controls) becomes its UTF-8 octets as `\ooo` ([`crate::text::escaped`],
/// the form `mailq` writes), so that no terminal escape or reordering reaches an admin's
/// `tail -f`. Other characters, non-ASCII ones included, are kept.
pub fn sanitize(text: &str) -> String {
    if text.chars().all(crate::text::is_safe) {
        return text.to_string();
    }
    let blanked: String = text
        .chars()
        .map(|c| match c {
            '\r' | '\n' | '\t' => ' ',
            c => c,
        })
        .collect();
    crate::text::escaped(&blanked).into_owned()
}

/// One record as a line: `timestamp ident[pid]: text`, control characters in the text
/// made harmless ([`sanitize`]) so that one record stays one line.
pub fn format_line(t: i64, ident: &str, pid: u32, text: &str) -> String {
    let tm = crate::clock::local(t);
    let off = tm.gmtoff.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02} {ident}[{pid}]: {}\n",
        tm.year,
        tm.month + 1,
        tm.day,
        tm.hour,
        tm.min,
        tm.sec,
        if tm.gmtoff < 0 { '-' } else { '+' },
        off / 3600,
        off % 3600 / 60,
        sanitize(text)
    )
}

fn ident() -> String {
    IDENT
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rsendmail".into())
}

fn write_line(mut out: impl Write, text: &str) -> std::io::Result<()> {
    let line = format_line(crate::clock::now(), &ident(), std::process::id(), text);
    // One write: with O_APPEND the line lands whole at the end of the file.
    out.write_all(line.as_bytes())
}

/// Open syslog under `ident` (sendmail's `-L label`), mail facility. The connection to
/// the system logger is made by the first line sent to it, not here (no `LOG_NDELAY`):
/// a submission that logs nothing makes none.
pub fn init(ident: &str) {
    let ident = IDENT.get_or_init(|| {
        CString::new(ident.replace('\0', "")).unwrap_or_else(|_| c"rsendmail".to_owned())
    });
    // SAFETY: the ident lives in a static for the rest of the process.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_MAIL) };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// The process that ran this one passed [`GIVEN_UP_ARG`]: MAILLOG is not used, and the
/// admin has been told already. Call before [`configure`].
pub fn inherit_given_up() {
    INHERITED.store(true, Ordering::SeqCst);
}

/// The arguments that pass this process's decision about MAILLOG on to a process it runs
/// (placed before that process's other internal arguments): [`GIVEN_UP_ARG`] once MAILLOG
/// is given up, else none.
pub fn inherited_args() -> &'static [&'static str] {
    if FILE_GIVEN_UP.load(Ordering::SeqCst) {
        &[GIVEN_UP_ARG]
    } else {
        &[]
    }
}

/// Choose where lines go from now on (see the module's rules): `maillog` is the config's
/// MAILLOG, `long_running` whether this process is a periodic queue runner or daemon.
/// The first call decides.
pub fn configure(maillog: Option<&Path>, long_running: bool, group: Option<u32>) {
    if CONFIG.get().is_some() {
        return;
    }
    let mut file = None;
    let mut failure = None;
    if let Some(path) = maillog {
        if INHERITED.load(Ordering::SeqCst) {
            FILE_GIVEN_UP.store(true, Ordering::SeqCst);
        } else {
            match open_log_file_for(path, group) {
                Ok(f) => file = Some((f, path.display().to_string())),
                Err(e) => {
                    FILE_GIVEN_UP.store(true, Ordering::SeqCst);
                    failure = Some(format!(
                        "cannot open MAILLOG {}: {}",
                        path.display(),
                        crate::config::io_text(&e)
                    ));
                }
            }
        }
    }
    let c = CONFIG.get_or_init(|| Config {
        file,
        fallback: OnceLock::new(),
        long_running,
    });
    if let Some(why) = failure {
        tell(c, &why);
    }
}

/// This process changes nothing: it only looks (`rsendmail-admin list`, `show`,
/// `config`, `check` and the deliverer's network steps for it, `delete --dry-run`).
/// Nothing is logged from now on, its own failures included (they are printed to the
/// caller, who asked), and MAILLOG is neither made nor opened. The log is the record of
/// what the mail system did: a look at the queue or the configuration is no such event,
/// and a log line for each would bury the actions (an entry deleted, held, returned) in
/// noise anyone able to run the command could make. Call before the configuration is
/// read (the first choice of where lines go is the one kept).
pub fn looks_only() {
    configure(None, false, None);
    log::set_max_level(log::LevelFilter::Off);
}

/// Whether lines go to this process's stderr (a long-running process without a usable
/// MAILLOG or syslog).
pub fn to_stderr() -> bool {
    CONFIG.get().is_some_and(|c| {
        (c.file.is_none() || FILE_GIVEN_UP.load(Ordering::SeqCst))
            && c.fallback() == Fallback::Stderr
    })
}

/// Whether the system logger's socket takes datagrams (libc's syslog drops lines
/// silently when it does not: a container, a minimal chroot).
fn syslog_available() -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .is_ok()
}

/// The mode a MAILLOG is made with: its group (the shared spool's) writes it as root
/// does, so that users' submissions and admin actions, which run with that group, are
/// logged too.
pub const MAILLOG_MODE: u32 = 0o660;

/// rsendmail's files other than its log ([`crate::app::rsendmails_files`]), which no
/// MAILLOG may name ([`open_log_file_for`]); set once, before [`configure`].
static OWN_FILES: OnceLock<Vec<(String, std::path::PathBuf)>> = OnceLock::new();

/// Record rsendmail's files other than its log ([`OWN_FILES`]).
pub fn set_rsendmails_files(files: Vec<(String, std::path::PathBuf)>) {
    let _ = OWN_FILES.set(files);
}

/// [`open_log_file_for`] without a group: a file made now keeps the process's group.
pub fn open_log_file(path: &Path) -> std::io::Result<File> {
    open_log_file_for(path, None)
}

/// Open `path` for appending, refusing by its kind, before anything is opened
/// (`lstat`), a symbolic link, a FIFO, a device, a socket or a directory (`it is a
/// FIFO, not a regular file (never opened)`); then, by the descriptor opened
/// (`O_NOFOLLOW`, `O_NONBLOCK`), anything but the regular file looked at, a file with
/// other links, one in a directory someone this process does not
/// trust could change ([`crate::spool::safety::file_risks_trusting`]: for root and a
/// set-gid program, anyone but root; for another process, anyone but root, its caller
/// and `group`) and, for
/// root, a file root does not own. A file made
/// now is given mode [`MAILLOG_MODE`] whatever the umask, and the group `group` (the
/// shared spool's) when given; an existing file keeps the owner and mode it has.
pub fn open_log_file_for(path: &Path, group: Option<u32>) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    // Another of rsendmail's files (the configuration, auth.conf, the aliases, a
    // program, the spool) is never a log, whoever runs.
    if let Some(files) = OWN_FILES.get()
        && let Some(why) = crate::spool::safety::one_of(path, files)
    {
        return Err(std::io::Error::other(format!(
            "{why}, never a log (never opened)"
        )));
    }
    // No process makes or appends to a file in a directory someone it does not trust
    // could change (she could swap the file, or the directory, for one of her own or a
    // link): root, and a set-gid program, trust root alone; any other process root and
    // its caller, and the shared spool's group (`rsendmail-admin check` names the same
    // directory).
    if let Some(r) = crate::spool::safety::way_risks_trusting(path, group)
        .into_iter()
        .next()
    {
        return Err(std::io::Error::other(r.text()));
    }
    // A privileged process writes only a file that is rsendmail's own, by the rule
    // `rsendmail-admin check` applies ([`crate::spool::safety::not_rsendmails_own`]):
    // a MAILLOG naming /etc/fstab or /etc/crontab is neither appended to nor made.
    // (A missing directory is said as the open says it.)
    if crate::spool::safety::privileged_process()
        && path.parent().is_some_and(Path::is_dir)
        && let Some(why) = crate::spool::safety::not_rsendmails_own(path)
    {
        return Err(std::io::Error::other(format!(
            "it is not rsendmail's: {why} (never opened)"
        )));
    }
    // What is at the path is looked at before anything is opened: a FIFO (opening one
    // for writing reaches whoever reads it), a device (an open can act: a tape
    // rewinds, a terminal becomes the controlling one), a socket, a directory or a
    // symbolic link is refused by its kind, never opened; so is a file with another
    // name, and, for root, one root does not own. The file opened must be the one looked
    // at (`fstat` below).
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let looked = match std::fs::symlink_metadata(path) {
        Ok(md) => {
            // The password file, a device: never rsendmail's to write, even as root.
            if let Some(what) =
                crate::spool::safety::system_path(path).filter(|_| md.file_type().is_file())
            {
                let what = if what.is_empty() {
                    "the system's"
                } else {
                    what
                };
                return Err(std::io::Error::other(format!(
                    "it is {what}, not rsendmail's (never opened)"
                )));
            }
            if !md.file_type().is_file() {
                return Err(std::io::Error::other(format!(
                    "it is {}, not a regular file (never opened)",
                    crate::spool::safety::kind_of(&md.file_type())
                )));
            }
            if md.nlink() != 1 {
                return Err(std::io::Error::other("a file with more than one link"));
            }
            if euid == 0 && md.uid() != 0 {
                return Err(std::io::Error::other(format!(
                    "it is owned by {}, not root (never opened)",
                    crate::spool::safety::the_user_id(md.uid())
                )));
            }
            Some((md.dev(), md.ino()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let open = |create_new: bool| {
        let mut o = std::fs::OpenOptions::new();
        o.append(true);
        if create_new {
            o.create_new(true).mode(MAILLOG_MODE);
        }
        o.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    std::io::Error::other("it is a symbolic link, not a regular file")
                } else {
                    e
                }
            })
    };
    let f = match open(true) {
        Ok(f) => {
            // Made by this process: the group and the mode the umask may have cut.
            if let Some(g) = group {
                let _ = nix::unistd::fchown(
                    std::os::fd::AsFd::as_fd(&f),
                    None,
                    Some(nix::unistd::Gid::from_raw(g)),
                );
            }
            let _ = f.set_permissions(std::fs::Permissions::from_mode(MAILLOG_MODE));
            f
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open(false)?,
        Err(e) => return Err(e),
    };
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(std::io::Error::other(format!(
            "it is {}, not a regular file",
            crate::spool::safety::kind_of(&md.file_type())
        )));
    }
    if looked.is_some_and(|was| was != (md.dev(), md.ino())) {
        return Err(std::io::Error::other(
            "the file was replaced while it was opened",
        ));
    }
    if md.nlink() != 1 {
        return Err(std::io::Error::other("a file with more than one link"));
    }
    if euid == 0 && md.uid() != 0 {
        return Err(std::io::Error::other(format!(
            "belongs to uid {}, not root",
            md.uid()
        )));
    }
    Ok(f)
}

/// The line for a committed submission.
pub fn submitted(env: &Envelope, size: Option<u64>) {
    log::info!(
        "{}: from=<{}>, size={}, nrcpts={}, mode={}, relay={}@localhost",
        env.id,
        env.sender,
        size.unwrap_or(0),
        env.recipients.len(),
        env.mode,
        env.user
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record_with_time_ident_and_pid() {
        let line = format_line(0, "rsendmail", 42, "a\nb\rc");
        // The time is local: only its shape is fixed here.
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, "rsendmail[42]: a b c\n");
        assert_eq!(time.len(), 25, "{time}");
        assert!(time.starts_with("19"), "{time}");
        assert!(
            time.ends_with(|c: char| c.is_ascii_digit()) && time.contains('T'),
            "{time}"
        );
    }

    #[test]
    fn control_characters_are_made_harmless() {
        // ESC (a terminal escape), BEL, DEL, NUL, a C1 CSI, a bidirectional override:
        // their octets in octal, as mailq writes them; line breaks and tabs: blanks;
        // valid non-ASCII text is kept.
        assert_eq!(
            sanitize("a\x1b[2Jb\x07c\x7fd\0e\u{9b}31mf\r\n\tg é✓"),
            "a\\033[2Jb\\007c\\177d\\000e\\302\\23331mf   g é✓"
        );
        assert_eq!(
            sanitize("to=<evil\u{202e}gro.elpmaxe@example.org>"),
            "to=<evil\\342\\200\\256gro.elpmaxe@example.org>"
        );
        assert_eq!(sanitize("plain text"), "plain text");
        let line = format_line(0, "rsendmail", 1, "x\x1b]0;owned\x07");
        assert!(
            line.ends_with("rsendmail[1]: x\\033]0;owned\\007\n"),
            "{line:?}"
        );
    }

    #[test]
    fn unsafe_log_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rsendmail-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, "keep\n").unwrap();
        // A symlink planted at the log's path: refused, the target untouched.
        let link = dir.join("symlink.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_log_file(&link).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a symbolic link, not a regular file (never opened)"
        );
        // A hard link: refused.
        let hard = dir.join("hard.log");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = open_log_file(&hard).unwrap_err();
        assert_eq!(e.to_string(), "a file with more than one link");
        // A directory, a FIFO: refused.
        assert!(open_log_file(&dir).is_err());
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Refused by its kind, never opened (an open would reach whoever reads it).
        let e = open_log_file(&fifo).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a FIFO, not a regular file (never opened)"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        // A new file: created 0660 (whatever the umask), appended; an existing file's
        // mode is left as it is.
        let fresh = dir.join("mail.log");
        let mut f = open_log_file(&fresh).unwrap();
        f.write_all(b"one\n").unwrap();
        let mut f = open_log_file(&fresh).unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "one\ntwo\n");
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{mode:o}");
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600)).unwrap();
        drop(open_log_file(&fresh).unwrap());
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

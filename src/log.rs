//! Logging: one line per event in the mail facility, queue id first (as dma and sendmail
//! write them), through the `log` facade. Nothing here prints to the caller of a
//! submission: diagnostics for the caller are printed once by [`crate::app::report`]
//! (docs/ARCHITECTURE.md, "What the caller sees").
//!
//! Where the lines go, decided once the config is read ([`configure`]):
//! - `MAILLOG /path` (Postfix's `maillog_file`): that file instead of syslog, one line per
//!   record, `2026-11-30T05:30:22+01:00 rsendmail[1234]: text`, appended with O_APPEND
//!   (one write per line, so processes writing at once do not mix their lines). It is
//!   opened with O_NOFOLLOW and created 0640; a file that is not a regular file with one
//!   link, or (for root) that root does not own, is refused: a symlink or hard link
//!   planted by another user never makes root write elsewhere.
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
//! A MAILLOG that cannot be opened falls back to the next rule; a long-running process
//! says so on stderr.
//!
//! Before [`configure`] (while the command line and config are read) lines go to syslog
//! only: a failure there is printed to the caller anyway.

use crate::spool::entry::Envelope;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

/// Where the lines go once the config is read.
enum Target {
    File(File),
    Stderr,
    Nowhere,
}

struct Logger;

static IDENT: OnceLock<CString> = OnceLock::new();
static TARGET: OnceLock<Target> = OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string().replace('\0', "");
        match TARGET.get() {
            None => syslog(record.level(), &text),
            Some(Target::File(f)) => write_line(f, &text),
            Some(Target::Stderr) => write_line(&std::io::stderr(), &text),
            Some(Target::Nowhere) => {}
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

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

/// One record as a line: `timestamp ident[pid]: text`, line breaks in the text made
/// blanks so that one record stays one line.
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
        text.replace(['\r', '\n'], " ")
    )
}

fn write_line(mut out: impl Write, text: &str) {
    let ident = IDENT
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rsendmail".into());
    let line = format_line(crate::clock::now(), &ident, std::process::id(), text);
    // One write: with O_APPEND the line lands whole at the end of the file.
    let _ = out.write_all(line.as_bytes());
}

/// Open syslog under `ident` (sendmail's `-L label`), mail facility.
pub fn init(ident: &str) {
    let ident = IDENT.get_or_init(|| {
        CString::new(ident.replace('\0', "")).unwrap_or_else(|_| c"rsendmail".to_owned())
    });
    // SAFETY: the ident lives in a static for the rest of the process.
    unsafe {
        libc::openlog(
            ident.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_MAIL,
        )
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Choose where lines go from now on (see the module's rules): `maillog` is the config's
/// MAILLOG, `long_running` whether this process is a periodic queue runner or daemon.
/// The first call decides.
pub fn configure(maillog: Option<&Path>, long_running: bool) {
    if TARGET.get().is_some() {
        return;
    }
    let mut failure = None;
    if let Some(path) = maillog {
        match open_log_file(path) {
            Ok(f) => {
                let _ = TARGET.set(Target::File(f));
                return;
            }
            Err(e) => failure = Some(format!("cannot open MAILLOG {}: {e}", path.display())),
        }
    }
    if syslog_available() {
        // TARGET stays unset: syslog, as before configure.
        if let Some(why) = failure {
            log::warn!("{why}; logging to syslog");
        }
        return;
    }
    let target = if long_running {
        Target::Stderr
    } else {
        Target::Nowhere
    };
    let _ = TARGET.set(target);
    if let Some(why) = failure {
        log::warn!("{why}; logging to stderr");
    }
}

/// Whether lines go to this process's stderr (a long-running process without MAILLOG or
/// syslog).
pub fn to_stderr() -> bool {
    matches!(TARGET.get(), Some(Target::Stderr))
}

/// Whether the system logger's socket takes datagrams (libc's syslog drops lines
/// silently when it does not: a container, a minimal chroot).
fn syslog_available() -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .is_ok()
}

/// Open (create 0640) `path` for appending, refusing a symlink (O_NOFOLLOW), anything but
/// a regular file, a file with other links and, for root, a file root does not own.
pub fn open_log_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("a symbolic link")
            } else {
                e
            }
        })?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if md.nlink() != 1 {
        return Err(std::io::Error::other("a file with more than one link"));
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
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
        assert_eq!(e.to_string(), "a symbolic link");
        // A hard link: refused.
        let hard = dir.join("hard.log");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = open_log_file(&hard).unwrap_err();
        assert_eq!(e.to_string(), "a file with more than one link");
        // A directory, a FIFO: refused.
        assert!(open_log_file(&dir).is_err());
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Refused at once, never waiting for a reader (O_NONBLOCK: ENXIO).
        assert!(open_log_file(&fifo).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        // A new file: created 0640 (whatever the umask allows), appended.
        let fresh = dir.join("mail.log");
        let mut f = open_log_file(&fresh).unwrap();
        f.write_all(b"one\n").unwrap();
        let mut f = open_log_file(&fresh).unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "one\ntwo\n");
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Logging: one syslog line per event in the mail facility, queue id first (as dma and
//! sendmail write them), through the `log` facade. Nothing here prints to the caller:
//! diagnostics for the caller are printed once by `main` (DESIGN.md, "Where messages go").

use crate::spool::entry::Envelope;
use std::ffi::CString;
use std::sync::OnceLock;

struct Syslog;

static IDENT: OnceLock<CString> = OnceLock::new();

impl log::Log for Syslog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let prio = match record.level() {
            log::Level::Error => libc::LOG_ERR,
            log::Level::Warn => libc::LOG_WARNING,
            log::Level::Info => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        let text = record.args().to_string().replace('\0', "");
        if let Ok(c) = CString::new(text) {
            // SAFETY: "%s" with a valid NUL-terminated string.
            unsafe { libc::syslog(libc::LOG_MAIL | prio, c"%s".as_ptr(), c.as_ptr()) };
        }
    }

    fn flush(&self) {}
}

static LOGGER: Syslog = Syslog;

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

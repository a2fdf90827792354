//! The sysexits.h table: every error in rsendmail maps to exactly one of these codes.
//!
//! Callers (cron, mutt, PHP, git send-email) branch on these numbers, so they are
//! sendmail's, not ours. Each code has the RFC 3463 enhanced status it stands for
//! ([`Sysexit::enhanced_status`], the column of Postfix's `sys_exits.c`), and
//! `is_temporary()` is that status's class: only EX_TEMPFAIL and EX_OSERR mean "try
//! again later".

use crate::status::{self, EnhancedStatus, StatusClass};
use std::fmt;
use std::process::ExitCode;

/// A sysexits.h exit status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Sysexit {
    #[default]
    Ok = 0,
    Usage = 64,
    DataErr = 65,
    NoInput = 66,
    NoUser = 67,
    NoHost = 68,
    Unavailable = 69,
    Software = 70,
    OsErr = 71,
    OsFile = 72,
    CantCreat = 73,
    IoErr = 74,
    TempFail = 75,
    Protocol = 76,
    NoPerm = 77,
    Config = 78,
}

impl Sysexit {
    /// The exit status of a run that refused addresses, given in the order sendmail
    /// says them, each with whether it decides the status (see
    /// [`crate::aliases::ExpandError::sets_status`]): the first that decides it, where a
    /// temporary failure (75) gives way to a later one (sendmail's `setstat`); 64 when
    /// none decides it; 0 when nothing was refused.
    pub fn of_refusals(refusals: impl IntoIterator<Item = (Sysexit, bool)>) -> Sysexit {
        let mut status = Sysexit::Ok;
        let mut any = false;
        for (code, decides) in refusals {
            any = true;
            if decides && matches!(status, Sysexit::Ok | Sysexit::TempFail) {
                status = code;
            }
        }
        if any && status == Sysexit::Ok {
            Sysexit::Usage
        } else {
            status
        }
    }

    /// The status of a run whose first refusals gave `self` and whose later ones gave
    /// `later`, as sendmail's `setstat` keeps it: the first status stands unless it is 0
    /// or a temporary failure (75), which a later one replaces. An interactive delivery
    /// after a submission that refused recipients: the submission's refusal came first
    /// (recorded: `status-first-refusal-oeq-odi`, `dead-letter-once-syntax-odi`).
    pub fn then(self, later: Sysexit) -> Sysexit {
        match self {
            Sysexit::Ok | Sysexit::TempFail if later != Sysexit::Ok => later,
            first => first,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status for a number, if it is one of sysexits.h's (or 0).
    pub fn from_code(n: u8) -> Option<Sysexit> {
        use Sysexit::*;
        [
            Ok,
            Usage,
            DataErr,
            NoInput,
            NoUser,
            NoHost,
            Unavailable,
            Software,
            OsErr,
            OsFile,
            CantCreat,
            IoErr,
            TempFail,
            Protocol,
            NoPerm,
            Config,
        ]
        .into_iter()
        .find(|s| s.code() == n)
    }

    /// The symbolic name from sysexits.h.
    pub fn name(self) -> &'static str {
        match self {
            Sysexit::Ok => "EX_OK",
            Sysexit::Usage => "EX_USAGE",
            Sysexit::DataErr => "EX_DATAERR",
            Sysexit::NoInput => "EX_NOINPUT",
            Sysexit::NoUser => "EX_NOUSER",
            Sysexit::NoHost => "EX_NOHOST",
            Sysexit::Unavailable => "EX_UNAVAILABLE",
            Sysexit::Software => "EX_SOFTWARE",
            Sysexit::OsErr => "EX_OSERR",
            Sysexit::OsFile => "EX_OSFILE",
            Sysexit::CantCreat => "EX_CANTCREAT",
            Sysexit::IoErr => "EX_IOERR",
            Sysexit::TempFail => "EX_TEMPFAIL",
            Sysexit::Protocol => "EX_PROTOCOL",
            Sysexit::NoPerm => "EX_NOPERM",
            Sysexit::Config => "EX_CONFIG",
        }
    }

    /// sendmail's words for a mailer's exit with this code (its sysexits messages:
    /// `User unknown` for EX_NOUSER); empty for EX_OK.
    pub fn text(self) -> &'static str {
        match self {
            Sysexit::Ok => "",
            Sysexit::Usage => "Command line usage error",
            Sysexit::DataErr => "Data format error",
            Sysexit::NoInput => "Cannot open input",
            Sysexit::NoUser => "User unknown",
            Sysexit::NoHost => "Host unknown",
            Sysexit::Unavailable => "Service unavailable",
            Sysexit::Software => "Internal error",
            Sysexit::OsErr => "Operating system error",
            Sysexit::OsFile => "System file missing",
            Sysexit::CantCreat => "Can't create output",
            Sysexit::IoErr => "I/O error",
            Sysexit::TempFail => "Deferred",
            Sysexit::Protocol => "Remote protocol error",
            Sysexit::NoPerm => "Insufficient permission",
            Sysexit::Config => "Local configuration error",
        }
    }

    /// The RFC 3463 status a mailer's exit with this code stands for (Postfix's
    /// `sys_exits.c` table; EX_OK is plain success).
    pub fn enhanced_status(self) -> EnhancedStatus {
        match self {
            Sysexit::Ok => status::OK,
            Sysexit::NoUser => status::BAD_MAILBOX,
            Sysexit::NoHost => status::BAD_SYSTEM,
            Sysexit::DataErr => status::MEDIA_PERM,
            Sysexit::CantCreat => status::MAILBOX_PERM,
            Sysexit::OsErr | Sysexit::TempFail => status::SYSTEM_TEMP,
            Sysexit::Protocol => status::PROTOCOL_PERM,
            Sysexit::NoPerm => status::SECURITY_PERM,
            Sysexit::Config => status::MISCONFIGURED,
            Sysexit::Usage
            | Sysexit::NoInput
            | Sysexit::Unavailable
            | Sysexit::Software
            | Sysexit::OsFile
            | Sysexit::IoErr => status::SYSTEM_PERM,
        }
    }

    /// Whether a retry may succeed (the message stays queued rather than bouncing): the
    /// class of [`Sysexit::enhanced_status`].
    pub fn is_temporary(self) -> bool {
        self.enhanced_status().class == StatusClass::Transient
    }

    /// The io::Error of a spool or file operation, mapped as sendmail maps errno.
    pub fn from_io(err: &std::io::Error) -> Sysexit {
        use std::io::ErrorKind::*;
        match err.kind() {
            PermissionDenied => Sysexit::NoPerm,
            NotFound => Sysexit::CantCreat,
            // No room: a full file system, a spent quota, or the process's file-size
            // limit (EFBIG, with SIGXFSZ ignored): a later try may succeed.
            StorageFull | QuotaExceeded | FileTooLarge => Sysexit::TempFail,
            _ => Sysexit::IoErr,
        }
    }
}

impl From<Sysexit> for ExitCode {
    fn from(s: Sysexit) -> ExitCode {
        ExitCode::from(s.code())
    }
}

impl fmt::Display for Sysexit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// An error that ends the program: the text (printed once, on sendmail's stream; see
/// docs/ARCHITECTURE.md, "What the caller sees") and the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub code: Sysexit,
    pub message: String,
    /// Command-line syntax errors go to stderr; everything else to stdout, as sendmail does.
    pub to_stderr: bool,
    /// The kind of the I/O error that caused it, when one did ([`Fatal::io`]): what the
    /// caller decides on (a full disk), never the message's text.
    pub io_kind: Option<std::io::ErrorKind>,
}

impl Fatal {
    /// This error with each control or invisible character of its message (an
    /// argument, a file's name or line it echoes) as its octets in octal, its line ends
    /// kept ([`crate::text::escaped_lines`]): how every program shows text from outside.
    pub fn escaped(mut self) -> Fatal {
        if let std::borrow::Cow::Owned(shown) = crate::text::escaped_lines(&self.message) {
            self.message = shown;
        }
        self
    }

    pub fn new(code: Sysexit, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
            to_stderr: false,
            io_kind: None,
        }
    }

    /// An I/O error: the code sendmail gives its errno ([`Sysexit::from_io`]), and its kind.
    pub fn io(err: &std::io::Error, message: impl Into<String>) -> Fatal {
        Fatal {
            io_kind: Some(err.kind()),
            ..Fatal::new(Sysexit::from_io(err), message)
        }
    }

    /// No room to write: the file system is full, the user's quota spent, or the file
    /// would pass the process's file-size limit (ENOSPC, EDQUOT, EFBIG).
    pub fn is_no_space(&self) -> bool {
        is_no_space(self.io_kind)
    }

    /// A diagnostic that sendmail prints on stderr (getopt's `illegal option`).
    pub fn stderr(code: Sysexit, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
            to_stderr: true,
            io_kind: None,
        }
    }

    /// An exit with a status but nothing printed (sendmail's silent exits).
    pub fn silent(code: Sysexit) -> Fatal {
        Fatal::new(code, String::new())
    }
}

/// Whether an I/O error's kind means there was no room to write (see [`Fatal::is_no_space`]).
pub fn is_no_space(kind: Option<std::io::ErrorKind>) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    matches!(kind, Some(StorageFull | QuotaExceeded | FileTooLarge))
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_that_decides_gives_the_status() {
        use Sysexit::*;
        assert_eq!(Sysexit::of_refusals([]), Ok);
        assert_eq!(Sysexit::of_refusals([(Usage, true), (NoUser, true)]), Usage);
        assert_eq!(
            Sysexit::of_refusals([(Usage, false), (NoUser, true)]),
            NoUser
        );
        assert_eq!(Sysexit::of_refusals([(Usage, false)]), Usage);
        assert_eq!(
            Sysexit::of_refusals([(TempFail, true), (NoHost, true)]),
            NoHost
        );
        assert_eq!(
            Sysexit::of_refusals([(TempFail, true), (Usage, false)]),
            TempFail
        );
    }

    #[test]
    fn a_later_status_replaces_only_none_or_a_temporary_failure() {
        use Sysexit::*;
        assert_eq!(Usage.then(NoUser), Usage);
        assert_eq!(Usage.then(Unavailable), Usage);
        assert_eq!(NoUser.then(Ok), NoUser);
        assert_eq!(Ok.then(NoUser), NoUser);
        assert_eq!(Ok.then(Ok), Ok);
        assert_eq!(TempFail.then(NoHost), NoHost);
        assert_eq!(TempFail.then(Ok), TempFail);
    }

    #[test]
    fn codes_match_sysexits_h() {
        let table = [
            (Sysexit::Ok, 0),
            (Sysexit::Usage, 64),
            (Sysexit::DataErr, 65),
            (Sysexit::NoUser, 67),
            (Sysexit::NoHost, 68),
            (Sysexit::Unavailable, 69),
            (Sysexit::Software, 70),
            (Sysexit::OsErr, 71),
            (Sysexit::CantCreat, 73),
            (Sysexit::IoErr, 74),
            (Sysexit::TempFail, 75),
            (Sysexit::NoPerm, 77),
            (Sysexit::Config, 78),
        ];
        for (s, n) in table {
            assert_eq!(s.code(), n, "{}", s.name());
        }
    }

    /// Postfix's `sys_exits.c`: each code's RFC 3463 status; the temporary ones are
    /// those of class 4.
    #[test]
    fn enhanced_status_table() {
        let table = [
            (Sysexit::Ok, "2.0.0", false),
            (Sysexit::Usage, "5.3.0", false),
            (Sysexit::DataErr, "5.6.0", false),
            (Sysexit::NoInput, "5.3.0", false),
            (Sysexit::NoUser, "5.1.1", false),
            (Sysexit::NoHost, "5.1.2", false),
            (Sysexit::Unavailable, "5.3.0", false),
            (Sysexit::Software, "5.3.0", false),
            (Sysexit::OsErr, "4.3.0", true),
            (Sysexit::OsFile, "5.3.0", false),
            (Sysexit::CantCreat, "5.2.0", false),
            (Sysexit::IoErr, "5.3.0", false),
            (Sysexit::TempFail, "4.3.0", true),
            (Sysexit::Protocol, "5.5.0", false),
            (Sysexit::NoPerm, "5.7.0", false),
            (Sysexit::Config, "5.3.5", false),
        ];
        for (s, dsn, temporary) in table {
            assert_eq!(s.enhanced_status().to_string(), dsn, "{}", s.name());
            assert_eq!(s.is_temporary(), temporary, "{}", s.name());
            assert_eq!(Sysexit::from_code(s.code()), Some(s), "{}", s.name());
        }
        assert_eq!(table.len(), 16, "every code of sysexits.h, and EX_OK");
    }

    /// A file-size limit (EFBIG) is no room, as a full disk is: a temporary failure.
    #[test]
    fn no_room_is_temporary() {
        use std::io::{Error, ErrorKind};
        for errno in [libc::ENOSPC, libc::EDQUOT, libc::EFBIG] {
            let e = Error::from_raw_os_error(errno);
            assert_eq!(Sysexit::from_io(&e), Sysexit::TempFail, "{e}");
            assert!(Fatal::io(&e, "x").is_no_space(), "{e}");
        }
        let e = Error::from(ErrorKind::PermissionDenied);
        assert!(!Fatal::io(&e, "x").is_no_space());
    }
}

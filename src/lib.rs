//! rsendmail: a small, faithful sendmail-compatible mail agent with a durable spool.
//!
//! The library holds the shared core; the two executables are thin:
//! - `rsendmail` (installed as `sendmail`, `send-mail`, `mailq`, `newaliases`) parses
//!   sendmail's command line, takes messages into the spool and lists the queue. It links
//!   no TLS and no DNS code.
//! - `rsendmail-deliver` is the delivery engine (delivery, queue runs, `-bv`, the SMTP
//!   server's processes), which `rsendmail` execs; its modules are in `src/deliver/`.
//!
//! Data flow: argv → [`cli`] (an `Invocation`) → [`app`], which runs it: [`config`] and
//! [`options`] → [`submit`] ([`message`] intake) → [`spool`] (commit point) → delivery
//! mode. docs/ARCHITECTURE.md describes the whole: both programs, the spool, privileges
//! and where outcomes are reported.
//!
//! The command line is on top: only [`cli`], [`app`] (the bridge, which turns the parsed
//! invocation into what the rest reads) and the binaries use `cli`. Below it, [`options`]
//! owns the option table, `Settings` and `DeliveryMode` (shared by `-O`/`-o` and the
//! config file), and [`selection`] the `-q` arguments and the `-qI/-qR/-qS` filters
//! (shared by queue runs, `mailq` and the recipient index).

#![deny(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that never panics: an error writing stdout (a closed pipe, a full disk,
/// a file-size limit) is ignored, as sendmail ignores it; the exit status says what
/// happened to the mail. The lint above keeps `println!` out of the crate.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// A line said to the user on standard output ([`outln!`]), logged in the `-X` traffic log
/// too (`>>> LINE`), as sendmail logs every line it says to the user.
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        $crate::traffic::told(&text);
        $crate::outln!("{text}");
    }};
}

/// `eprintln!` that never panics (see [`outln!`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The product as rsendmail names itself in `Received:` fields and the SMTP greeting
/// (`rsendmail 0.1.0`).
pub const PRODUCT: &str = concat!("rsendmail ", env!("CARGO_PKG_VERSION"));

pub mod admin;
pub mod aliases;
pub mod app;
pub mod base64;
pub mod boundedfile;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod dsn;
pub mod exit;
pub mod log;
pub mod mailq;
pub mod mbox;
pub mod message;
pub mod options;
pub mod privs;
pub mod queue;
pub mod selection;
pub mod server;
pub mod spool;
pub mod status;
pub mod submit;
pub mod text;
pub mod traffic;
pub mod verp;

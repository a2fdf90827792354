//! rsendmail-deliver: the delivery engine (compiled into this binary only, so that TLS and
//! DNS code never reaches `rsendmail`).
//!
//! `rsendmail` execs it, with its own argv behind a few internal arguments
//! (docs/ARCHITECTURE.md, "How `rsendmail` runs `rsendmail-deliver`"):
//! - `--entry ID --status N -- <argv>`: interactive delivery of one entry (`-odi`, `-v`),
//!   exit status as sendmail's (`N`, the submission's own, when delivery gives 0);
//!   `--entry ID --background -- <argv>`: the same after the background fork, when one
//!   of `O MaxBackgroundDeliveries=` slots is free (the SMTP server's deliveries use
//!   these two forms without `--status`);
//!   `--entry ID[,ID...] --queued -- <argv>`: one attempt at each entry, in one process
//!   in the foreground, as a queue run makes it, failures mailed back whatever ErrorMode
//!   says, the entries it queues (its reports) left queued and named on stdout, then
//!   the entry's outcome (`rsendmail-admin bounce`);
//! - `<argv with -q...>`: a queue run; `-bv`, `-bs`, `-bd`/`-bD`: verify, serve SMTP;
//! - `--etrn DOMAIN -- <argv>`, `--queue-runner --daemon-pid PID -- <argv>`: the flush an
//!   ETRN started, a daemon's runner (both started by [`serve`]);
//! - `--check [--to ADDRESS] -- <argv>`: the network steps of `rsendmail-admin check`
//!   ([`check`]).
//!
//! The deliverer also starts itself as a child for local delivery: `--mbox ...` appends
//! to a mailbox or file and `--read-list ...` reads a user's list file, each as the
//! target user ([`local`]).
//!
//! Run by hand with no arguments (or with none of these), it prints its usage and exits
//! with EX_USAGE: it never runs the queue by surprise.
//!
//! The flow of one attempt, a file each (docs/ARCHITECTURE.md, "A delivery attempt"):
//! [`runner`] (which entries, which worker, the entry lock) → [`plan`] (route each
//! recipient, group them into transactions) → [`attempt`] (send: [`smtp`] per
//! transaction, [`local`] per local recipient; each result a [`outcome::RcptOutcome`])
//! → [`record`] (pure: the new state, back-off, log lines, reports owed) → [`bounce`]
//! (queue the reports). [`engine`] holds the settings, [`transcript`] the `-v`/`-X`
//! output, [`verify`] `-bv`, [`serve`] the SMTP server's deliveries and ETRN.
//!
//! The one duplicate window: the server accepted the message (250 after the final dot)
//! and we die before that transaction's record is on disk (see [`attempt`]).
//!
//! Queue entries may be damaged or hostile: their text is parsed by the library
//! (`rsendmail::spool::entry`), and the numbers taken from them (times, counts, sizes)
//! are combined with saturating arithmetic, so that no value in a queue file makes a
//! run panic. Text is never cut by byte index (the lint below keeps it so).

#![deny(clippy::string_slice, clippy::print_stdout, clippy::print_stderr)]

pub mod attempt;
pub mod background;
pub mod bounce;
pub mod cache;
pub mod check;
pub mod dns;
pub mod engine;
pub mod local;
pub mod outcome;
pub mod plan;
pub mod record;
pub mod reply;
pub mod runner;
pub mod serve;
pub mod smtp;
pub mod transcript;
pub mod verify;
pub mod wake;

pub use engine::Engine;
pub use runner::{deliver_ids, stop_on_signals};

use rsendmail::app;
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::privs;
use std::ffi::OsString;

const USAGE: &str = "\
usage: rsendmail-deliver -q[time|I|R|S...] [-v] [sendmail options]   run the queue
       rsendmail-deliver -bv address...                              verify addresses
       rsendmail-deliver -bs | -bd | -bD [sendmail options]          serve SMTP
rsendmail-deliver is the delivery engine of rsendmail: rsendmail (installed as
sendmail) runs it, and takes messages itself. To run the queue by hand, use
`sendmail -q`; to deliver one entry now, `sendmail -qI<id> -v`.";

/// Internal arguments in front of sendmail's argv.
struct Internal {
    entry: Option<String>,
    background: bool,
    /// `--queued` (after `--entry ID`): one attempt as a queue run makes it, not as an
    /// interactive delivery: reports are mailed, never saved in ~/dead.letter; they are
    /// left queued, not sent here ([`runner::attempt_entry`]).
    queued: bool,
    /// `--status N`: the submission's own status (recipients it refused), which stands
    /// before the delivery's ([`Sysexit::then`]).
    status: Sysexit,
    /// `--note line` (after `--status`): a line the submission left to print after the
    /// delivery, before the connections close (`~/dead.letter... Saved message in ...`).
    note: Option<String>,
    /// `--etrn [@]domain`: the flush an ETRN started.
    etrn: Option<String>,
    /// `--queue-runner`: the periodic runner of a `-bd -q<interval>` daemon.
    queue_runner: bool,
    /// `--daemon-pid PID` after `--queue-runner`: the daemon that started the runner.
    daemon_pid: Option<i32>,
    /// `--check [--to ADDRESS]`: `rsendmail-admin check`'s network steps (the inner
    /// `Some`: the address to probe).
    check: Option<Option<String>>,
    /// `--maillog-given-up` (first of all): the process that ran us gave up MAILLOG and
    /// told the admin; we log where it does without telling again.
    maillog_given_up: bool,
    argv: Vec<OsString>,
}

/// `rsendmail` runs us as `rsendmail-deliver [--entry ID [--background] [--status N] --]
/// ARGV...` where ARGV is its own argv, argv[0] included; we run ourselves as
/// `rsendmail-deliver --etrn [@]DOMAIN -- ARGV...` or `--queue-runner -- ARGV...`. Run by
/// hand (`rsendmail-deliver -q`), the arguments are sendmail's without an argv[0]. Any of
/// these may start with `--maillog-given-up` ([`rsendmail::log::GIVEN_UP_ARG`]).
#[deny(clippy::indexing_slicing)]
fn split_internal(args: Vec<OsString>) -> Internal {
    let mut it = args.into_iter().peekable();
    let own = it.next().unwrap_or_else(|| OsString::from("sendmail"));
    let mut entry = None;
    let mut background = false;
    let mut queued = false;
    let mut status = Sysexit::Ok;
    let mut note = None;
    let mut etrn = None;
    let mut queue_runner = false;
    let mut daemon_pid = None;
    let mut check = None;
    let mut maillog_given_up = false;
    if it.peek().is_some_and(|a| a == rsendmail::log::GIVEN_UP_ARG) {
        it.next();
        maillog_given_up = true;
    }
    if it.peek().is_some_and(|a| a == "--etrn") {
        it.next();
        etrn = it.next().and_then(|v| v.into_string().ok());
    }
    if it.peek().is_some_and(|a| a == "--queue-runner") {
        it.next();
        queue_runner = true;
        if it.peek().is_some_and(|a| a == "--daemon-pid") {
            it.next();
            daemon_pid = it
                .next()
                .and_then(|v| v.to_str().and_then(|v| v.parse().ok()));
        }
    }
    if it.peek().is_some_and(|a| a == "--check") {
        it.next();
        let mut to = None;
        if it.peek().is_some_and(|a| a == "--to") {
            it.next();
            to = it.next().map(|v| v.to_string_lossy().into_owned());
        }
        check = Some(to);
    }
    if (etrn.is_some() || queue_runner || check.is_some()) && it.peek().is_some_and(|a| a == "--") {
        it.next();
    }
    if it.peek().is_some_and(|a| a == "--entry") {
        it.next();
        entry = it.next().and_then(|v| v.into_string().ok());
        if it.peek().is_some_and(|a| a == "--background") {
            it.next();
            background = true;
        }
        if it.peek().is_some_and(|a| a == "--queued") {
            it.next();
            queued = true;
        }
        if it.peek().is_some_and(|a| a == "--status") {
            it.next();
            status = it
                .next()
                .and_then(|v| v.to_str().and_then(|v| v.parse::<u8>().ok()))
                .and_then(Sysexit::from_code)
                .unwrap_or(Sysexit::Ok);
        }
        if it.peek().is_some_and(|a| a == "--note") {
            it.next();
            note = it.next().map(|v| v.to_string_lossy().into_owned());
        }
        if it.peek().is_some_and(|a| a == "--") {
            it.next();
        }
    }
    let mut argv: Vec<OsString> = it.collect();
    if argv
        .first()
        .is_none_or(|a| a.to_string_lossy().starts_with('-'))
    {
        argv.insert(0, own);
    }
    Internal {
        entry,
        background,
        queued,
        status,
        note,
        etrn,
        queue_runner,
        daemon_pid,
        check,
        maillog_given_up,
        argv,
    }
}

/// The daemon's pid a queue runner is given (`[--maillog-given-up] --queue-runner
/// --daemon-pid PID`), read before anything else is done.
fn daemon_pid_arg(args: &[OsString]) -> Option<i32> {
    let mut it = args.iter().skip(1).peekable();
    if it
        .peek()
        .is_some_and(|a| *a == rsendmail::log::GIVEN_UP_ARG)
    {
        it.next();
    }
    if it.next()? != "--queue-runner" || it.next()? != "--daemon-pid" {
        return None;
    }
    it.next()?.to_str()?.parse().ok()
}

/// The absolute path of this program as it was started, resolved once
/// ([`remember_own_exe`]): a long-running process (the daemon, its runner) starts the new
/// file after an upgrade, never a deleted path.
static OWN_EXE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

/// Resolve the path of this program (`/proc/self/exe` read while it still names the
/// file we run) once, at start, before anything could replace it.
pub fn remember_own_exe() {
    OWN_EXE.get_or_init(|| {
        let passed = take_started_as();
        passed.or_else(|| {
            // Executed as the running file (nothing was at its path): Linux names it
            // `PATH (deleted)` once it is unlinked; the path is PATH.
            let p = std::env::current_exe().ok()?;
            let text = p.to_str()?;
            Some(match text.strip_suffix(" (deleted)") {
                Some(path) => std::path::PathBuf::from(path),
                None => p,
            })
        })
    });
}

/// The environment variable in which a process that executes this program again (the
/// daemon's and a standalone runner's restart) or starts its runner names the path it was
/// itself started from ([`own_exe`]): the program executed may be the running file
/// (`/proc/self/exe`, nothing being at the path then) or have been renamed since, and the
/// path must still be the one the next restart looks at, so that a binary installed there
/// later (`rm` and `cp`, as `make install` does) is the one run.
pub const STARTED_AS: &str = "RSENDMAIL_STARTED_AS";

/// Read and remove [`STARTED_AS`] (at start, single-threaded): an absolute path, taken
/// only when it may be trusted ([`taken_path`]).
fn take_started_as() -> Option<std::path::PathBuf> {
    taken_path(STARTED_AS)
}

/// Read and remove an environment variable that names a path a restarting process passes
/// on (at start, single-threaded): taken only when absolute, and when this program was
/// not executed set-id (the kernel's `AT_SECURE`) or root executed it (the daemon), so
/// that nobody else can choose a path a privileged process executes or writes.
pub(crate) fn taken_path(name: &str) -> Option<std::path::PathBuf> {
    let v = std::env::var_os(name)?;
    // SAFETY: called at the start of main, before any thread is started.
    unsafe { std::env::remove_var(name) };
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getauxval reads this process's auxiliary vector.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        if secure && !nix::unistd::getuid().is_root() {
            return None;
        }
        let p = std::path::PathBuf::from(v);
        p.is_absolute().then_some(p)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = v;
        None
    }
}

/// The path this program was started from ([`STARTED_AS`] when it was passed), for the
/// processes that execute it again.
pub fn started_as() -> Option<std::path::PathBuf> {
    OWN_EXE.get().cloned().flatten()
}

/// The program to start for the processes we run (a daemon's sessions' deliveries, its
/// runner, local delivery's children) and to execute on SIGHUP: the
/// path it was started from, which names the new file after an upgrade that renamed a
/// new binary over it (as dpkg installs one), as sendmail executes its saved argv\[0\]
/// again; only when nothing is at that path any more, the file still running
/// (`/proc/self/exe` on Linux), which is told the path ([`STARTED_AS`]) so that it
/// looks there again next time.
///
/// Root never starts a file there that anyone but root could have changed
/// ([`refused_own_exe`]): it then starts the file still running, which nobody can
/// change while it runs.
pub fn own_exe() -> std::path::PathBuf {
    let started = OWN_EXE
        .get_or_init(|| std::env::current_exe().ok())
        .clone()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .filter(|p| rsendmail::spool::safety::refused_exec(p).is_none());
    match started {
        Some(p) => p,
        None if cfg!(target_os = "linux") => std::path::PathBuf::from("/proc/self/exe"),
        None => std::env::current_exe().unwrap_or_default(),
    }
}

/// Why root must not execute the program at `p` ([`rsendmail::spool::safety::unsafe_program`]),
/// as a sentence naming it: `None` when it may, or when nothing is there.
fn refused_program(p: &std::path::Path) -> Option<String> {
    rsendmail::spool::safety::unsafe_program(p).map(|why| format!("{}: {why}", p.display()))
}

/// Why a process running as root must not execute this program again from the path it
/// was started from ([`own_exe`]), nor the `rsendmail-deliver` beside it: either could
/// have been changed by someone other than root (not root's, writable by a group or
/// everyone, in a directory that is not root's alone, reached through a symbolic link
/// that is not root's). `None` when they are root's alone, or when this process is not
/// root's.
pub fn refused_own_exe() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let started = OWN_EXE
        .get_or_init(|| std::env::current_exe().ok())
        .clone()?;
    let beside = started.parent().map(|d| d.join("rsendmail-deliver"));
    std::iter::once(started.clone())
        .chain(beside.filter(|b| *b != started))
        .find_map(|p| refused_program(&p))
        .map(|why| {
            format!(
                "{why} (root runs only a program that it and its directory are root's \
                 alone; `{}` says how)",
                rsendmail::spool::safety::admin_command("check")
            )
        })
}

/// The environment variable in which a process that executes this program (a restart,
/// a queue runner, a delivery, local delivery's children) names its own process name (the
/// kernel's `comm`, what `ps -o comm`, `pgrep -x` and `/proc/PID/comm` show): the kernel
/// takes the name from the path executed, which is `/proc/self/exe` (`exe`) when nothing
/// is at the path the program was started from any more, so the program executed takes
/// the name back at its start ([`take_process_name`]).
pub const PROCESS_NAME: &str = "RSENDMAIL_PROCESS_NAME";

/// This process's name as the kernel keeps it (`comm`, at most 15 octets).
#[cfg(target_os = "linux")]
fn process_name() -> Option<OsString> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 octets (the name and its NUL) into buf.
    if unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr() as libc::c_ulong) } != 0 {
        return None;
    }
    let name: Vec<u8> = buf.iter().take_while(|&&b| b != 0).copied().collect();
    (!name.is_empty()).then(|| OsString::from_vec(name))
}

/// Read and remove [`PROCESS_NAME`] (at start, single-threaded) and take that name when
/// it is not this process's already. The name is only what `ps` shows (any process may
/// choose its own), so it is taken whoever passed it; it is cut to the kernel's 15
/// octets.
pub fn take_process_name() {
    let Some(name) = std::env::var_os(PROCESS_NAME) else {
        return;
    };
    // SAFETY: called at the start of main, before any thread is started.
    unsafe { std::env::remove_var(PROCESS_NAME) };
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut cut: Vec<u8> = name.as_bytes().iter().take(15).copied().collect();
        if cut.is_empty() || process_name().is_some_and(|n| n.as_bytes() == cut.as_slice()) {
            return;
        }
        cut.push(0);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 octets; an
        // environment variable holds no NUL, and cut ends with one.
        unsafe { libc::prctl(libc::PR_SET_NAME, cut.as_ptr() as libc::c_ulong) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}

/// Name this process's own name ([`PROCESS_NAME`]) to the program `cmd` executes: a
/// variable set after an `env_clear` of `cmd`, so call this after it.
pub fn pass_process_name(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    if let Some(name) = process_name() {
        cmd.env(PROCESS_NAME, name);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// A command that runs `exe`, this program ([`own_exe`]), as this process is named: its
/// argv\[0\] this process's own, and its process name passed on ([`pass_process_name`]),
/// so that a restart, a queue runner or a delivery shows in `ps` as the daemon did
/// before, whatever path is executed (`/proc/self/exe` once the program was removed or
/// renamed away).
pub fn own_command(exe: &std::path::Path) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    pass_process_name(&mut cmd);
    cmd
}

/// The program.
#[deny(clippy::indexing_slicing)]
pub fn main(args: Vec<OsString>) -> Sysexit {
    // A daemon's queue runner follows its daemon before anything else.
    if let Some(daemon) = daemon_pid_arg(&args) {
        runner::follow_daemon(daemon);
    }
    // The path SIGHUP executes again: resolved while it names the file we run.
    remember_own_exe();
    // The name `ps` showed before this program was executed again.
    take_process_name();
    // A restarting daemon's check of this program's start: read (and taken out of the
    // environment) before anything else, as its logging is off.
    let check_only = serve::take_restart_check();
    privs::fix_std_fds();
    privs::ignore_sigxfsz();
    if args.get(1).is_some_and(|a| a == "--mbox") {
        let code = local::mbox_child(args.get(2..).unwrap_or_default());
        std::process::exit(code);
    }
    if args.get(1).is_some_and(|a| a == "--supervise") {
        let code = local::supervise_child(args.get(2..).unwrap_or_default());
        std::process::exit(code);
    }
    if args.get(1).is_some_and(|a| a == "--read-list") {
        let code = local::read_list_child(args.get(2..).unwrap_or_default());
        std::process::exit(code);
    }
    match args.get(1).and_then(|a| a.to_str()) {
        None => {
            rsendmail::errln!("{USAGE}");
            return Sysexit::Usage;
        }
        Some("--help") => {
            rsendmail::outln!("{USAGE}");
            return Sysexit::Ok;
        }
        Some("--version") => {
            rsendmail::outln!("rsendmail-deliver {}", env!("CARGO_PKG_VERSION"));
            return Sysexit::Ok;
        }
        Some(_) => {}
    }
    rsendmail::log::init("rsendmail-deliver");
    if check_only {
        // `init` set the level: off again.
        serve::take_restart_check();
    }
    let internal = split_internal(args);
    if internal.maillog_given_up {
        rsendmail::log::inherit_given_up();
    }
    let after_commit = internal.entry.is_some().then_some(internal.status);
    let restarted = serve::take_restarted_by();
    match run(internal).inspect_err(|f| {
        if let Some(by) = &restarted {
            by.failed(f);
        }
    }) {
        Ok(c) => c,
        // Delivering one entry that `rsendmail` has queued: whatever failed here, the
        // message stays queued for the next run; that is said once, and the status is
        // the submission's.
        Err(f) => match after_commit {
            Some(status) => {
                app::report(&Fatal::new(
                    status,
                    format!("{}; the message stays queued", f.message),
                ));
                status
            }
            None => app::report(&f),
        },
    }
}

fn run(internal: Internal) -> Result<Sysexit, Fatal> {
    use rsendmail::app::Operation;
    let argv = internal.argv.clone();
    // The check's network steps change nothing on this host: nothing is logged, no
    // MAILLOG is made or opened.
    if internal.check.is_some() {
        rsendmail::log::looks_only();
    }
    let s = app::setup(internal.argv)?;
    let daemon = matches!(
        s.inv.operation,
        Operation::Daemon | Operation::DaemonForeground
    );
    let periodic = s
        .inv
        .queue_run
        .as_ref()
        .is_some_and(|q| q.interval.is_some() || q.persistent);
    let runner = matches!(s.inv.operation, Operation::QueueRun) && periodic;
    if serve::check_only()
        && (!(daemon || runner)
            || internal.entry.is_some()
            || internal.etrn.is_some()
            || internal.check.is_some()
            || internal.queue_runner)
    {
        return Err(Fatal::stderr(
            Sysexit::Usage,
            format!(
                "{} is for the start of the daemon or a periodic queue runner only",
                serve::RESTART_CHECK
            ),
        ));
    }
    // A spool in another spool's tree is refused by every program that opens it (78),
    // before anything there is read or written.
    if internal.check.is_none() && !matches!(s.inv.operation, Operation::Verify) {
        s.spool.check_not_nested()?;
    }
    let mut engine = Engine::from_setup(&s)?;
    let smtp = matches!(
        s.inv.operation,
        Operation::Smtp | Operation::Daemon | Operation::DaemonForeground
    );
    // A message that came in over SMTP has no terminal to print to: failures are mailed.
    // So has an entry delivered as a queue run would (`--queued`).
    engine.interactive =
        internal.entry.is_some() && !internal.background && !internal.queued && !smtp;
    // The note is the submission's `Saved message in ~/dead.letter` line.
    engine.dead_letter_saved = engine.interactive && internal.note.is_some();
    if let Some(arg) = &internal.etrn {
        return serve::etrn_flush(&s, &engine, arg);
    }
    if let Some(to) = &internal.check {
        return check::check(&s, &engine, to.as_deref());
    }
    if internal.queue_runner {
        let q = s.inv.queue_run.clone().unwrap_or_default();
        return runner::periodic(&s, &engine, &q, internal.daemon_pid, None);
    }
    match internal.entry {
        Some(id) if internal.queued => runner::attempt_entry(&s.spool, &engine, &id),
        Some(id) => runner::deliver_entry(
            &s,
            &engine,
            &id,
            internal.background,
            internal.note.as_deref(),
        )
        .map(|c| internal.status.then(c)),
        None => match s.inv.operation {
            Operation::Verify => verify::verify(&s, &engine),
            Operation::Smtp => serve::stdio(&s, &engine, &argv),
            Operation::Daemon => serve::daemon(&s, &engine, &argv, false),
            Operation::DaemonForeground => serve::daemon(&s, &engine, &argv, true),
            Operation::QueueRun => runner::queue_run(&s, &engine, &argv),
            // Anything else is rsendmail's to do, not ours: nothing is delivered.
            Operation::Deliver => Err(Fatal::stderr(
                Sysexit::Usage,
                format!(
                    "rsendmail-deliver does not take messages: send them with sendmail\n{USAGE}"
                ),
            )),
            other => Err(Fatal::stderr(
                Sysexit::Usage,
                format!(
                    "{} is sendmail's, not rsendmail-deliver's\n{USAGE}",
                    other.flag()
                ),
            )),
        },
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn internal_args() {
        let a = split_internal(vec![
            "d".into(),
            "--entry".into(),
            "X".into(),
            "--background".into(),
            "--".into(),
            "sendmail".into(),
            "-odb".into(),
        ]);
        assert_eq!(a.entry.as_deref(), Some("X"));
        assert!(a.background);
        assert!(!a.queued);
        assert_eq!(
            a.argv,
            vec![OsString::from("sendmail"), OsString::from("-odb")]
        );
        let b = split_internal(vec![
            "d".into(),
            "--entry".into(),
            "X".into(),
            "--queued".into(),
            "--".into(),
            "rsendmail".into(),
        ]);
        assert!(b.queued && !b.background);
        assert_eq!(b.entry.as_deref(), Some("X"));
        assert_eq!(b.argv, vec![OsString::from("rsendmail")]);
        let q = split_internal(vec![
            "rsendmail-deliver".into(),
            "/usr/sbin/sendmail".into(),
            "-q".into(),
        ]);
        assert!(q.entry.is_none());
        assert_eq!(
            q.argv,
            vec![OsString::from("/usr/sbin/sendmail"), OsString::from("-q")]
        );
        let runner: Vec<OsString> = [
            "rsendmail-deliver",
            rsendmail::log::GIVEN_UP_ARG,
            "--queue-runner",
            "--daemon-pid",
            "4242",
            "--",
            "sendmail",
            "-bd",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(daemon_pid_arg(&runner), Some(4242));
        let r = split_internal(runner.clone());
        assert!(r.queue_runner && r.maillog_given_up);
        assert_eq!(r.daemon_pid, Some(4242));
        assert_eq!(
            r.argv,
            vec![OsString::from("sendmail"), OsString::from("-bd")]
        );
        assert_eq!(daemon_pid_arg(&runner[2..]), None);
        assert_eq!(daemon_pid_arg(&q.argv), None);
        let by_hand = split_internal(vec!["rsendmail-deliver".into(), "-q".into()]);
        assert_eq!(
            by_hand.argv,
            vec![OsString::from("rsendmail-deliver"), OsString::from("-q")]
        );
    }
}

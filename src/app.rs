//! The `rsendmail` program: argv → configuration → one operation → exit status.
//!
//! Everything the caller sees is printed here, once, on the stream sendmail uses
//! (docs/ARCHITECTURE.md, "What the caller sees"):
//! getopt syntax errors on stderr with the program name, all other diagnostics on stdout
//! without a prefix, both also logged.
//!
//! What is checked where, before the commit point (so that a non-zero exit for an option,
//! config or invocation error always means nothing was queued, and 0 means it was):
//! - [`setup`]: the command line ([`cli::parse`]: every `-O`/`-o` value is parsed into its
//!   typed field as it is read, EX_USAGE) and the config file ([`Config::load`]: keywords
//!   and `O` lines, `file: line N:`, EX_CONFIG; and the mail name, from MAILNAME's file
//!   or the host name, checked once);
//! - [`preflight`], before stdin is read, and before a queue run (`-q`), `-bv` or the SMTP
//!   server (`-bs`, `-bd`) starts: the `-X` traffic log is opened (created) as this
//!   process may (after the group drop for unsafe options), EX_CANTCREAT; the files the
//!   config names for delivery are checked ([`Config::check_files`]), EX_CONFIG.
//!
//! The deliverer reads the same command line and config with the same parsers, so it
//! cannot refuse what was accepted here. What can still fail after the commit point (the
//! deliverer cannot be started, a file changed since) leaves the message queued and is
//! said once, and the exit status stays that of the submission.

use crate::cli::{self, Invocation};
use crate::config::{self, Config, Paths};
use crate::exit::{Fatal, Sysexit};
use crate::options::DeliveryMode;
use crate::spool::{Named, Spool};
use crate::submit::{self, Submitter};
use crate::{mailq, privs};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the command line chose to do (`-b<x>`, `-q`): the deliverer runs the same
/// invocation and dispatches on it too, so it is named here, where the command line meets
/// the rest of the program.
pub use crate::cli::Operation;

/// Print a fatal error where sendmail would, log it, and turn it into the exit status.
pub fn report(f: &Fatal) -> Sysexit {
    if !f.message.is_empty() {
        if f.to_stderr {
            crate::errln!("{}", f.message);
        } else {
            crate::tell!("{}", f.message);
        }
        // Logged too, unless the log is this process's stderr: the message was just
        // printed where the log would show it again.
        if !crate::log::to_stderr() {
            log::error!("{}", f.message);
        }
    }
    let _ = std::io::stdout().flush();
    f.code
}

/// The built-in paths for this caller: the system spool for root, for a set-id binary,
/// and for anyone when the system configuration exists (`system_config`: no `-C`, and
/// [`config::system_config`] is there), so that a user's mail never lands in a spool no
/// runner looks at (an install whose set-gid bit was lost then fails clearly:
/// [`spool_takes_submissions`]); else, where there is no system configuration, the
/// user's own under `$XDG_STATE_HOME` (or `~/.local/state`).
pub fn default_paths(system_config: bool) -> Paths {
    if privs::is_root() || privs::is_setid() || system_config {
        return Paths::system();
    }
    let from_env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let state = from_env("XDG_STATE_HOME").or_else(|| {
        let home = from_env("HOME").or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        });
        home.map(|h| h.join(".local/state"))
    });
    match state {
        Some(s) => Paths::per_user(&s),
        None => Paths::system(),
    }
}

/// Where a configuration names its spool, for the messages of `Spool::check_present`:
/// `O QueueDirectory` (its file and line), else `SPOOLDIR`; `None` when it names none.
pub fn configured_spool(cfg: &Config) -> Option<Named> {
    if cfg.settings.queue_directory.is_some() {
        Some(Named::Config {
            at: cfg
                .origin
                .get("QueueDirectory")
                .cloned()
                .unwrap_or_default(),
            keyword: "O QueueDirectory".into(),
        })
    } else {
        cfg.origin.get("SPOOLDIR").map(|at| Named::Config {
            at: at.clone(),
            keyword: "SPOOLDIR".into(),
        })
    }
}

/// Everything settled before an operation runs.
pub struct Setup {
    pub inv: Invocation,
    pub cfg: Config,
    /// The options in force: the config's, with the command line's over them.
    pub settings: crate::options::Settings,
    pub spool: Spool,
    pub mode: DeliveryMode,
    /// The system configuration in force (no `-C`, and the file is there).
    pub system_config: Option<PathBuf>,
    /// Whether a set-id binary gave up its group for an option that chooses files.
    pub dropped_group: bool,
}

/// What the command line asks of a submission, in the envelope's words.
fn submission(inv: &Invocation) -> submit::Request {
    submit::Request {
        recipients: inv.recipients.clone(),
        read_recipients: inv.read_recipients,
        sender: inv.sender.clone(),
        full_name: inv.full_name.clone(),
        no_alias: inv.no_alias,
        verbose: inv.verbose,
        notify: inv.notify.as_ref().map(|n| n.keywords()),
        ret: inv.ret.map(|r| r.keyword().to_string()),
        envid: inv.envid.clone(),
        body_type: inv.body_type.map(|b| b.keyword().to_string()),
        hop_count: inv.hop_count,
        verp: inv.verp.clone(),
        received_with: inv
            .protocol
            .as_deref()
            .and_then(|p| submit::received_token(p.split(':').next().unwrap_or(p))),
        received_from: inv
            .protocol
            .as_deref()
            .and_then(|p| p.split_once(':'))
            .and_then(|(_, h)| submit::received_token(h)),
    }
}

/// Parse argv, apply privilege rules, read the config.
pub fn setup(args: Vec<OsString>) -> Result<Setup, Fatal> {
    setup_invocation(cli::parse(args)?)
}

/// `setup` for an invocation already parsed.
fn setup_invocation(inv: Invocation) -> Result<Setup, Fatal> {
    for n in &inv.notes {
        crate::outln!("{n}");
    }
    let dropped_group = privs::is_setid() && !privs::is_root() && inv.uses_unsafe_option();
    if dropped_group {
        privs::drop_group().map_err(|e| {
            Fatal::new(Sysexit::OsErr, format!("cannot drop group privileges: {e}"))
        })?;
    }
    let system_config = match &inv.config_file {
        Some(_) => None,
        None => Some(config::system_config()).filter(|p| config::exists(p)),
    };
    if let Some(p) = &system_config {
        system_config_readable(p, &inv)?;
    }
    let paths = default_paths(system_config.is_some());
    if let Some(p) = &inv.config_file {
        crate::spool::safety::set_config_given(p);
    }
    let cfg = match &inv.config_file {
        Some(p) => Config::load(p, true, &paths, &inv.settings.given)?,
        None => Config::load(
            system_config
                .as_deref()
                .unwrap_or(Path::new(config::DEFAULT_CONFIG)),
            false,
            &paths,
            &inv.settings.given,
        )?,
    };
    let mut settings = cfg.settings.clone();
    if !settings.given.iter().any(|g| g == "PrivacyOptions") {
        // A config that says nothing: sendmail.cf's default as sendmail's m4 files write
        // it (confPRIVACY_FLAGS); the command line's flags add to it.
        settings.privacy_flags.push("authwarnings".into());
    }
    settings.overlay(&inv.settings);
    if let Some(c) = settings.blank_sub {
        crate::message::address::set_blank_sub(c);
    }
    let spool_dir = settings
        .queue_directory
        .clone()
        .unwrap_or_else(|| cfg.spool_dir.clone());
    // A spool is private (0700/0600) when it is the caller's own, not the system's.
    let private = !(privs::is_root() || privs::is_setid() || system_config.is_some());
    // Spool files get exactly the modes the spool documents, whatever the caller's umask.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(if private {
        0o077
    } else {
        0o007
    }));
    let mode = cli::effective_mode(
        inv.verbose,
        inv.settings.delivery_mode,
        cfg.settings.delivery_mode,
    );
    // PrivacyOptions=restrictexpand: a submission's -v shows a user who is not trusted
    // nothing (what the recipients expand to stays unseen); -v still delivers at once
    // (compat-tests/cases/privacy-restrictexpand-v).
    let mut inv = inv;
    if inv.verbose
        && inv.operation == Operation::Deliver
        && settings.privacy("restrictexpand")
        && !Submitter::current().is_trusted()
    {
        inv.verbose = false;
    }
    // A MAILLOG made now gets the shared spool's group (group-writable), so that users'
    // submissions and admin actions, which hold that group, log to it too.
    let log_group = (!private)
        .then(|| std::fs::metadata(&spool_dir).ok().map(|m| m.gid()))
        .flatten();
    crate::log::set_rsendmails_files(rsendmails_files(&cfg, &settings, &spool_dir));
    crate::spool::safety::set_secret_files(cfg.secret_files());
    crate::log::configure(cfg.maillog_file(), inv.is_long_running(), log_group);
    // Where the path was named: only the caller's own built-in default is made on
    // demand (`Spool::check_present`).
    let named = if inv.settings.queue_directory.is_some() {
        Named::CommandLine
    } else if let Some(named) = configured_spool(&cfg) {
        named
    } else if private {
        Named::OwnDefault
    } else {
        Named::SystemDefault
    };
    let mut spool = Spool::new(spool_dir, private, named);
    // Postfix's fast_flush_domains, whose default is its relay_domains.
    spool.fast_flush = crate::spool::FastFlush::Domains(
        settings
            .fast_flush_domains
            .clone()
            .or_else(|| settings.relay_domains.clone())
            .unwrap_or_default(),
    );
    Ok(Setup {
        inv,
        cfg,
        settings,
        spool,
        mode,
        system_config,
        dropped_group,
    })
}

/// Before a submission reads its message: the shared spool must take it. A caller who is
/// neither root nor the spool's owner reaches the system spool through its group, which
/// an installed `rsendmail` has by being set-group-id; when that bit is lost (a package
/// that does not keep it, a copy made without it) or an option gave the group up, the
/// message is refused here, naming the directory and the likely cause, and nothing is
/// queued anywhere: it must not land in a spool no queue runner looks at.
///
/// Exit 75 (EX_TEMPFAIL), not 77 (EX_NOPERM): the fault is the installation's, not the
/// caller's request, and a caller that keeps mail on a temporary failure (cron's mail, a
/// retrying script, an MDA) keeps it until the install is repaired, where a permanent
/// failure would have it dropped or bounced.
///
/// `f`, the refusal of a missing spool ([`Spool::check_present`]), with a second line
/// naming the other spool that holds entries and the line to correct, when there is one
/// ([`crate::admin::elsewhere::typo_hint`]): a `SPOOLDIR` typo, most likely.
pub fn with_typo_hint(mut f: Fatal, s: &Setup) -> Fatal {
    let config = s
        .inv
        .config_file
        .clone()
        .unwrap_or_else(crate::config::system_config);
    if let Some(hint) = crate::admin::elsewhere::typo_hint(&s.spool, &config) {
        f.message = format!("{}\n{hint}", f.message);
    }
    f
}

/// A spool that is not there is refused first ([`Spool::check_present`], 78). Then one
/// `faccessat(2)` (with `AT_EACCESS`: the effective group counts) on the spool's
/// `tmp/` where the spool is whole; a missing `tmp/` is looked at up the path. Other errors (a read-only file system)
/// are left to the spool's own messages.
pub fn spool_takes_submissions(s: &Setup) -> Result<(), Fatal> {
    // A spool that is not there (and may not be made) is a configuration error first.
    s.spool.check_present()?;
    if s.spool.private || privs::is_root() {
        return Ok(());
    }
    // A directory that is not yet a spool (no tmp/) that may never become one (shared,
    // or holding another's files) is a configuration error, 78, as root's submission
    // and `init` say it; not a spool this user may not write (75). What cannot be told
    // (a directory this user may not read) is left to the test below.
    if s.spool.named != crate::spool::Named::OwnDefault
        && !s.spool.dir.join("tmp").is_dir()
        && let Err(e) = s.spool.check_takeover()
        && e.code == Sysexit::Config
    {
        return Err(e);
    }
    use nix::errno::Errno;
    use nix::unistd::AccessFlags;
    let writable = |p: &Path| {
        nix::unistd::faccessat(
            nix::fcntl::AT_FDCWD,
            p,
            AccessFlags::W_OK | AccessFlags::X_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
    };
    // The first directory on the way that is there: tmp/, the spool, its parent.
    let tmp = s.spool.dir.join("tmp");
    let mut denied = None;
    for p in [
        Some(tmp.as_path()),
        Some(s.spool.dir.as_path()),
        s.spool.dir.parent(),
    ]
    .into_iter()
    .flatten()
    {
        match writable(p) {
            Err(Errno::ENOENT) => continue,
            Err(e @ (Errno::EACCES | Errno::EPERM)) => denied = Some((p.to_path_buf(), e)),
            _ => {}
        }
        break;
    }
    let Some((at, errno)) = denied else {
        return Ok(());
    };
    let dir = s.spool.dir.display();
    let whose = match &s.system_config {
        Some(c) => format!(" (the spool of {})", c.display()),
        None => String::new(),
    };
    let cause = spool_access_cause(&at, Access::Write, &s.inv, s.dropped_group);
    Err(Fatal::new(
        Sysexit::TempFail,
        format!(
            "cannot queue the message: the queue directory {dir}{whose} is not writable \
             by this user: {} ({cause}); nothing was queued",
            config::io_text(&std::io::Error::from(errno))
        ),
    ))
}

/// The system configuration at `path` as a process that is not root's may read it:
/// one it cannot read (mode 0600: users' programs, which read it with the spool's group,
/// are not let in) is refused with what to do; a submission (and a `-bs` session)
/// exits 75, so that the caller keeps the mail, as for a spool it may not write.
pub fn system_config_readable(path: &Path, inv: &Invocation) -> Result<(), Fatal> {
    if privs::is_root() {
        return Ok(());
    }
    let Err(e) = std::fs::File::open(path) else {
        return Ok(());
    };
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        // Said as it is by the reading that follows.
        return Ok(());
    }
    let submits = matches!(inv.operation, Operation::Deliver | Operation::Smtp);
    Err(Fatal::new(
        if submits {
            Sysexit::TempFail
        } else {
            Sysexit::Config
        },
        format!(
            "cannot open {}: {} ({}){}",
            path.display(),
            config::io_text(&e),
            config_unreadable_cause(),
            if submits { "; nothing was queued" } else { "" }
        ),
    ))
}

/// Why users' programs cannot read the system configuration, and the way to the fix.
pub fn config_unreadable_cause() -> &'static str {
    "the system configuration must be readable by everyone, or by the spool's group its \
     set-group-id programs run with: root's `rsendmail-admin check` says what to fix"
}

/// For `mailq` by a user: a shared spool this process may not list is refused (77)
/// with the cause ([`spool_access_cause`]: the set-gid bit lost, the spool's mode) and
/// the way to the fix, as a submission says it.
fn spool_listable(s: &Setup) -> Result<(), Fatal> {
    if s.spool.private || privs::is_root() {
        return Ok(());
    }
    use nix::unistd::AccessFlags;
    let Err(errno) = nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        &s.spool.dir,
        AccessFlags::R_OK | AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    ) else {
        return Ok(());
    };
    if !matches!(errno, nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) {
        return Ok(());
    }
    let cause = spool_access_cause(&s.spool.dir, Access::Read, &s.inv, s.dropped_group);
    Err(Fatal::new(
        Sysexit::NoPerm,
        format!(
            "cannot read {}: {} ({cause})",
            s.spool.dir.display(),
            config::io_text(&std::io::Error::from(errno))
        ),
    ))
}

/// What a process needs of a spool directory: [`spool_access_cause`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// To make files in it (`rsendmail`: a submission, a `-bs` session).
    Write,
    /// To list and read it (`rsendmail-admin`'s queue commands).
    Read,
}

/// Why this process (not root) may not use `dir`, a spool directory or one on its way
/// (its `tmp/`, its parent), as `need` says: the words a refusal gives in brackets, the
/// one place for that advice (a submission, `-bs`, `rsendmail-admin`'s queue commands).
/// It names what is wrong, found from the invocation, the directory and the running
/// program:
/// - an option of `inv` gave the program's group up (`dropped_group`): that option;
/// - the process has the directory's group (through its set-gid program or the user's
///   groups) but the mode does not let the group in: the directory's owner, group and
///   mode;
/// - else the program is not set-group-id (the bit lost), is set-group-id to another
///   group, or its bit is not in effect (a file system mounted `nosuid`);
///
/// and, but for a given-up group (the caller's own choice), ends with the command that
/// checks the whole install, `rsendmail-admin check` (with the `-C` file given).
pub fn spool_access_cause(
    dir: &Path,
    need: Access,
    inv: &Invocation,
    dropped_group: bool,
) -> String {
    use nix::unistd::{Gid, Group, Uid, User};
    let program = std::env::current_exe().ok();
    if dropped_group {
        let (names, it) = cli::Invocation::named_with_pronoun(&inv.unsafe_options_given());
        let name = match need {
            Access::Write => "rsendmail",
            Access::Read => "rsendmail-admin",
        };
        return format!(
            "{names} gave up {name}'s set-group-id privilege (as in sendmail, only its \
             safe options keep it: see rsendmail(8)); leave {it} out, or run as root"
        );
    }
    let group_name = |g: u32| match Group::from_gid(Gid::from_raw(g)) {
        Ok(Some(gr)) => gr.name,
        _ => g.to_string(),
    };
    let user_name = |u: u32| match User::from_uid(Uid::from_raw(u)) {
        Ok(Some(us)) => us.name,
        _ => u.to_string(),
    };
    // A directory this process may not even look into (the spool's `tmp/` behind a
    // spool it may not enter) is described by the nearest one on its path it can.
    let (dir, md) = match dir
        .ancestors()
        .find_map(|d| Some((d, std::fs::metadata(d).ok()?)))
    {
        Some((d, md)) => (d, Some(md)),
        None => (dir, None),
    };
    let facts = md.map(|md| {
        let egid = nix::unistd::getegid().as_raw();
        let rgid = nix::unistd::getgid().as_raw();
        let groups = nix::unistd::getgroups().unwrap_or_default();
        let in_group =
            md.gid() == egid || md.gid() == rgid || groups.iter().any(|g| g.as_raw() == md.gid());
        let program = program.and_then(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some(Program {
                path: p,
                mode: m.mode() & 0o7777,
                group: group_name(m.gid()),
                group_id: m.gid(),
            })
        });
        DirFacts {
            dir: dir.to_path_buf(),
            owner: user_name(md.uid()),
            own: md.uid() == nix::unistd::getuid().as_raw(),
            group: group_name(md.gid()),
            group_id: md.gid(),
            mode: md.mode() & 0o7777,
            in_group,
            egid,
            program,
        }
    });
    let check = match &inv.config_file {
        Some(c) => format!(
            "`rsendmail-admin -C {} check`",
            crate::spool::safety::shell_word(c)
        ),
        None => "`rsendmail-admin check`".to_string(),
    };
    match facts {
        Some(f) => format!("{}; {check} says what to fix", access_cause(&f, need)),
        None => format!("{check} says what to fix"),
    }
}

/// The running program, for [`access_cause`].
struct Program {
    path: PathBuf,
    mode: u32,
    group: String,
    group_id: u32,
}

/// A directory and this process, for [`access_cause`].
struct DirFacts {
    dir: PathBuf,
    owner: String,
    /// This process's user owns it.
    own: bool,
    group: String,
    group_id: u32,
    mode: u32,
    /// This process has its group (effective, real or supplementary).
    in_group: bool,
    egid: u32,
    program: Option<Program>,
}

/// The cause [`spool_access_cause`] names, from the facts alone.
fn access_cause(f: &DirFacts, need: Access) -> String {
    let (bits, verb) = match need {
        Access::Write => (0o3, "write to"),
        Access::Read => (0o5, "read"),
    };
    let shown = format!(
        "{} is {}:{} {:04o}",
        f.dir.display(),
        f.owner,
        f.group,
        f.mode
    );
    if f.own {
        if (f.mode >> 6) & bits != bits {
            return format!("{shown}: its owner may not {verb} it");
        }
        return shown;
    }
    if f.in_group {
        if (f.mode >> 3) & bits != bits {
            return format!("{shown}: its group {} may not {verb} it", f.group);
        }
        return shown;
    }
    let Some(p) = &f.program else {
        return format!(
            "{shown}, and this process is not in its group: the program must be installed \
             set-group-id to {}, or the user be in that group",
            f.group
        );
    };
    let path = p.path.display();
    if p.mode & 0o2000 == 0 {
        format!(
            "{path} is not set-group-id (mode {:04o}; the bit may have been lost): it must be \
             installed set-group-id to the spool's group {} (mode 2755), or the user be in \
             that group",
            p.mode, f.group
        )
    } else if p.group_id != f.group_id {
        format!(
            "{path} is set-group-id to the group {}, not to the spool's group {}",
            p.group, f.group
        )
    } else if f.egid != p.group_id {
        format!(
            "the set-group-id bit of {path} is not in effect (is its file system mounted \
             nosuid?)"
        )
    } else {
        shown
    }
}

/// The checks made before an operation that takes or delivers mail starts (before stdin
/// is read): the `-X` file can be opened (it is created, mode 0644; this process's traffic,
/// a submission's message, is appended to it from now on, and the deliverer appends its
/// own: [`crate::traffic::open`]), and the files the config names for delivery are there
/// and well-formed.
pub fn preflight(s: &Setup) -> Result<(), Fatal> {
    s.cfg.check_trust(&s.settings, maillog_group(s))?;
    if let Some(p) = &s.inv.traffic_log {
        crate::traffic::install(crate::traffic::open(p)?);
    }
    s.cfg.check_files(&s.settings)
}

/// The group MAILLOG is made with and may be writable by: the shared spool's (users'
/// submissions and admin actions hold it and log there too); none for a user's own
/// spool.
pub fn maillog_group(s: &Setup) -> Option<u32> {
    (!s.spool.private)
        .then(|| std::fs::metadata(&s.spool.dir).ok().map(|m| m.gid()))
        .flatten()
}

/// Whether the caller may run this spool's queue: root, or the owner of the directory.
pub fn may_process_queue(spool: &Spool) -> Result<(), Fatal> {
    if privs::is_root() {
        return Ok(());
    }
    let uid = nix::unistd::getuid().as_raw();
    match std::fs::metadata(&spool.dir) {
        Ok(md) if md.uid() == uid => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !privs::is_setid() => Ok(()),
        _ => Err(Fatal::new(
            Sysexit::NoPerm,
            "You do not have permission to process the queue",
        )),
    }
}

/// `O PrivacyOptions=restrictmailq`: who may list the queue. Root, the spool's owner,
/// and the members of the spool directory's group (the caller's real group or one of
/// its supplementary groups), as sendmail allows the queue directory's group.
pub fn may_see_queue(spool: &Spool) -> bool {
    if may_process_queue(spool).is_ok() {
        return true;
    }
    let Ok(md) = std::fs::metadata(&spool.dir) else {
        return false;
    };
    let gid = md.gid();
    nix::unistd::getgid().as_raw() == gid
        || nix::unistd::getgroups().is_ok_and(|g| g.iter().any(|x| x.as_raw() == gid))
}

/// rsendmail's own files other than its log, each with what it is (`the configuration
/// file`, `AUTHPATH`, `the program`): the configuration, every file it names (the
/// aliases, the relay table, auth.conf, the certificates, the mail name's file, the pid
/// file), the spool directory (all below it is the spool's), and the installed programs
/// and their links. A MAILLOG naming one of them is refused by every program
/// ([`crate::log::open_log_file_for`]) and failed by `rsendmail-admin check`: a log line
/// appended there would corrupt it, or a user's text would become rsendmail's.
pub fn rsendmails_files(
    cfg: &Config,
    settings: &crate::options::Settings,
    spool_dir: &Path,
) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut put = |what: &str, p: Option<&PathBuf>| {
        if let Some(p) = p {
            out.push((what.to_string(), p.clone()));
        }
    };
    put("the configuration file", cfg.file.as_ref());
    put(
        "the aliases file (ALIASES)",
        Some(settings.alias_file.as_ref().unwrap_or(&cfg.aliases)),
    );
    put("the relay table (RELAYTABLE)", cfg.relay_table.as_ref());
    put("the credentials file (AUTHPATH)", cfg.auth_path.as_ref());
    put("the certificate file (CERTFILE)", cfg.cert_file.as_ref());
    put("the CA file (O CACertFile)", settings.ca_cert_file.as_ref());
    let mailname = cfg
        .mailname
        .as_deref()
        .filter(|m| m.starts_with('/'))
        .map(PathBuf::from);
    put("the mail name's file (MAILNAME)", mailname.as_ref());
    put(
        "the daemon's pid file (O PidFile)",
        settings.pid_file.as_ref(),
    );
    put("the spool (SPOOLDIR)", Some(&spool_dir.to_path_buf()));
    let exe = std::env::current_exe().ok();
    let beside = |name: &str| exe.as_ref().and_then(|e| e.parent()).map(|d| d.join(name));
    for p in [
        exe.clone(),
        beside("rsendmail"),
        beside("rsendmail-admin"),
        beside("rsendmail-deliver"),
        Some(deliver_path()),
        Some(PathBuf::from(INSTALLED_DELIVER)),
    ]
    .into_iter()
    .flatten()
    .chain(
        [
            "/usr/sbin/rsendmail",
            "/usr/sbin/rsendmail-admin",
            "/usr/sbin/sendmail",
            "/usr/lib/sendmail",
            "/usr/bin/mailq",
            "/usr/bin/newaliases",
            "/usr/sbin/newaliases",
        ]
        .map(PathBuf::from),
    ) {
        put("the program", Some(&p));
    }
    out
}

/// The installed deliverer: what a set-id program runs unless the one beside it is
/// trusted ([`deliver_path`]).
pub const INSTALLED_DELIVER: &str = "/usr/libexec/rsendmail/rsendmail-deliver";

/// Where rsendmail-deliver is: beside this executable (development, tests, a
/// self-contained install), else [`INSTALLED_DELIVER`].
///
/// A set-id process (`rsendmail` or `rsendmail-admin` installed set-gid), and one run
/// by root, takes the one beside it only when that file and its directory are owned by
/// root, not writable by group or others, and the file is a regular file (not a
/// symbolic link); otherwise a hard link to the set-gid binary in a user's directory,
/// with the user's own program beside it, would run that program with the spool's
/// group, and root would run a program someone else could have changed.
pub fn deliver_path() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join("rsendmail-deliver");
        if p.exists() && (!guarded() || root_only(&p, dir)) {
            return p;
        }
    }
    PathBuf::from(INSTALLED_DELIVER)
}

/// Whether this process takes only a deliverer that is root's alone ([`deliver_path`]):
/// it is set-id, or root's.
fn guarded() -> bool {
    privs::is_setid() || privs::is_root() || nix::unistd::geteuid().is_root()
}

/// Whether `file` is a regular file and it and `dir` belong to root and are writable by
/// root alone (nothing else could have put or changed it there).
fn root_only(file: &Path, dir: &Path) -> bool {
    let safe = |md: &std::fs::Metadata| md.uid() == 0 && md.mode() & 0o022 == 0;
    std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_file() && safe(&m))
        && std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && safe(&m))
}

/// Why the `rsendmail-deliver` beside this program is not the one run, when a set-id
/// or root's process refuses it ([`deliver_path`]): that file's path and what is wrong
/// (`/opt/bin/rsendmail-deliver, beside this program, is refused: it is writable by its
/// group staff`); `None` when it is taken or not there.
pub fn refused_deliverer() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let p = dir.join("rsendmail-deliver");
    if std::fs::symlink_metadata(&p).is_err() || !guarded() || root_only(&p, dir) {
        return None;
    }
    // Its group bits may be an access ACL's mask: the ACL's writers are named.
    let what = |p: &Path, md: &std::fs::Metadata| {
        crate::spool::safety::with_acl(p, md, &crate::spool::safety::Trust::ROOT_ALONE)
            .map(|(_, w)| w)
    };
    let why = match std::fs::symlink_metadata(&p) {
        Ok(md) if md.file_type().is_symlink() => "it is a symbolic link".to_string(),
        Ok(md) if !md.file_type().is_file() => "it is not a regular file".to_string(),
        Ok(md) => match what(&p, &md) {
            Some(w) => format!("it is {w}"),
            None => match std::fs::symlink_metadata(dir)
                .ok()
                .and_then(|d| what(dir, &d))
            {
                Some(w) => format!("its directory {} is {w}", dir.display()),
                None => "its directory is not root's alone".to_string(),
            },
        },
        Err(e) => config::io_text(&e),
    };
    Some(format!(
        "{}, beside this program, is refused: {why} (a set-id program, or root, runs \
         only one that it and its directory are root's alone; `{}` says how)",
        p.display(),
        crate::spool::safety::admin_command("check")
    ))
}

/// A sendmail operation mode rsendmail does not offer: why, and what to use instead.
fn not_supported(op: Operation) -> Fatal {
    let why = match op {
        Operation::AddressTest => {
            "rsendmail has no rewriting rule sets to test; `-bv ADDRESS` shows where an \
             address would go, `rsendmail-admin check --to ADDRESS` tries its route"
        }
        Operation::HostStatus | Operation::PurgeHostStatus => {
            "rsendmail keeps no host status directory; `mailq` shows each queued \
             recipient's last error"
        }
        Operation::PrintQueueCount => {
            "`mailq` lists the queue, `mailq --json` in a form for programs"
        }
        Operation::Arpanet => "use `-bs` for SMTP on standard input and output",
        _ => "see rsendmail(8)",
    };
    Fatal::new(
        Sysexit::Usage,
        format!(
            "Operation mode {} is not supported by rsendmail: {why}",
            op.flag()
        ),
    )
}

/// The program's arguments as [`run`] got them (argv\[0\] first): what the deliverer is
/// given ([`exec_deliver`]), whatever the platform's `std::env::args_os` knows.
static ARGV: std::sync::OnceLock<Vec<OsString>> = std::sync::OnceLock::new();

/// Run the program; returns the exit status. `args` is the whole argv, argv\[0\] first.
pub fn run(args: Vec<OsString>) -> Sysexit {
    privs::fix_std_fds();
    let _ = ARGV.set(args.clone());
    privs::ignore_sigxfsz();
    let label = args
        .first()
        .map(|a| {
            let s = a.to_string_lossy();
            s.rsplit('/').next().unwrap_or("rsendmail").to_string()
        })
        .unwrap_or_else(|| "rsendmail".into());
    crate::log::init(if label == "sendmail" || label == "send-mail" {
        "rsendmail"
    } else {
        &label
    });
    match run_inner(args) {
        Ok(code) => code,
        Err(f) => report(&f),
    }
}

fn run_inner(args: Vec<OsString>) -> Result<Sysexit, Fatal> {
    let inv = cli::parse(args)?;
    if let Some(answer) = inv.answer {
        // No config, no spool: `--version` works before anything is set up.
        {
            use std::io::Write as _;
            let _ = write!(std::io::stdout(), "{}", answer.text());
        }
        return Ok(Sysexit::Ok);
    }
    // A `-bs` session refused before its greeting (a configuration that cannot be read
    // or is not trusted) says why as a reply, as sendmail's `-bs` says a configuration
    // it cannot open (`451 4.0.0 FILE: line 0: cannot open: Permission denied`, recorded
    // from 8.17), so that the client program reads a reply, not text; the exit status
    // stays the refusal's.
    let smtp = inv.operation == Operation::Smtp;
    let as_reply = |f: Fatal| if smtp { smtp_reply_fatal(f) } else { f };
    let s = setup_invocation(inv).map_err(as_reply)?;
    if matches!(
        s.inv.operation,
        Operation::Deliver
            | Operation::QueueRun
            | Operation::Verify
            | Operation::Smtp
            | Operation::Daemon
            | Operation::DaemonForeground
    ) {
        preflight(&s).map_err(as_reply)?;
    }
    match s.inv.operation {
        Operation::Deliver => {
            // A missing spool named by a typo: the refusal says which spool holds the
            // entries and the line to correct.
            spool_takes_submissions(&s).map_err(|f| with_typo_hint(f, &s))?;
            let who = Submitter::current();
            // -X: the message's lines as read (`<<<`), then `<<< [EOF]`, in the file
            // `preflight` opened.
            let stdin: Box<dyn std::io::BufRead> = if s.inv.traffic_log.is_some() {
                Box::new(crate::traffic::ReadTee::new(std::io::stdin().lock()))
            } else {
                Box::new(std::io::stdin().lock())
            };
            let req = submission(&s.inv);
            let done = submit::submit(&req, &s.cfg, &s.settings, &s.spool, s.mode, &who, stdin)?;
            // ---- the message is safe; what follows depends on the delivery mode ----
            // The message and the report of recipients refused here, in one run (the
            // report after the message, on its connection, as sendmail sends them).
            // A report that returns the header only is marked `+` (see
            // `deliver::runner::deliver_entry`).
            let report = done
                .report
                .into_iter()
                .map(|(id, headers_only)| if headers_only { format!("+{id}") } else { id });
            let report: Vec<String> = report.collect();
            // A held message stays queued: only its reports go now.
            let held = done.held;
            let ids: Vec<String> = done
                .id
                .into_iter()
                .filter(|_| !held)
                .chain(report.iter().cloned())
                .collect();
            if ids.is_empty() {
                return Ok(done.status);
            }
            let id = ids.join(",");
            match s.mode {
                // The message waits for a queue run; the report of the recipients
                // refused here goes now under -odq, as sendmail sends it
                // (returntosender's `sendall(SM_DELIVER)`; recorded: `t-egrp-odq`).
                // Deferred mode opens no connection before the queue run (no DNS on a
                // dial-on-demand host): its report waits in the queue with the message,
                // as sendmail's does.
                DeliveryMode::QueueOnly if !report.is_empty() => {
                    let status = done.status.code().to_string();
                    let reports = report.join(",");
                    let args = vec!["--entry", &reports, "--status", &status, "--"];
                    Ok(exec_deliver(&args, Some(done.status)))
                }
                DeliveryMode::QueueOnly | DeliveryMode::Deferred => Ok(done.status),
                DeliveryMode::Interactive => {
                    // A recipient refused here came first: its status stands, as
                    // sendmail's `setstat` keeps it, unless it is 0 or 75 (the
                    // deliverer's then is the answer; `Sysexit::then`).
                    let status = done.status.code().to_string();
                    let mut args = vec!["--entry", &id, "--status", &status];
                    if let Some(note) = &done.note {
                        args.extend(["--note", note]);
                    }
                    args.push("--");
                    Ok(exec_deliver(&args, Some(done.status)))
                }
                DeliveryMode::Background => {
                    // A listening queue runner takes it at once; else our own
                    // background delivery, as without a runner.
                    if !for_the_runner(&s) || !crate::spool::wake::poke(&s.spool.dir, &id) {
                        background(&id);
                    }
                    Ok(done.status)
                }
            }
        }
        Operation::PrintQueue => {
            // The spool listed is the configuration's choice: a configuration someone
            // the caller does not trust could change is refused (78), as every program
            // that uses the spool refuses it.
            s.cfg.check_config_trust(&s.settings, maillog_group(&s))?;
            // A missing queue directory first, as sendmail checks it before anything
            // (compat-tests/cases/queuedir-missing-bp): its line and status, then the
            // likely typo when another spool holds entries.
            s.spool.check_present().map_err(|f| with_typo_hint(f, &s))?;
            spool_listable(&s)?;
            // A spool of a group unfit for it, one whose ACLs give others anything, one
            // that breaks the layout's rule is not read either: others could have
            // planted what it lists (78, as every other use of it).
            s.spool.check_readable()?;
            if s.settings.privacy("restrictmailq") && !may_see_queue(&s.spool) {
                // `--json` keeps its stdout JSON: the refusal is an error (stderr,
                // EX_NOPERM), as `rsendmail-admin list --json` gives it.
                if s.inv.json {
                    crate::errln!(
                        "You are not permitted to see the queue (PrivacyOptions restrictmailq)"
                    );
                    return Ok(Sysexit::NoPerm);
                }
                // sendmail's words and listing end; its exit status stays 0
                // (compat-tests/cases/bp-restrictmailq).
                crate::outln!("You are not permitted to see the queue");
                crate::outln!("\t\tTotal requests: 0");
                return Ok(Sysexit::Ok);
            }
            let filter = s.inv.queue_run.as_ref();
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            let problems = if s.inv.json {
                let (text, problems) = mailq::list_json(&s.spool, filter, false)?;
                let _ = out.write_all(text.as_bytes());
                // Stdout stays JSON: the spool's own problems go to stderr.
                if !problems.is_empty() {
                    crate::errln!("{}", problems.trim_end());
                }
                String::new()
            } else {
                let min_age = s.settings.min_queue_age.unwrap_or(0) as i64;
                let (default_uid, _) =
                    crate::aliases::default_user(s.settings.default_user.as_deref());
                // Listed in the order and up to the number a queue run takes, as
                // sendmail's `-bp` lists them (`O QueueSortOrder=`, `O MaxQueueRunSize=`).
                let style = mailq::TextStyle {
                    sort: s
                        .settings
                        .queue_sort_order
                        .unwrap_or(crate::options::QueueSortOrder::Priority),
                    max: s.settings.max_queue_run_size.unwrap_or(0),
                    ..mailq::TextStyle::new(min_age, s.inv.verbose, default_uid)
                };
                // Written as it is made: a queue of 100,000 entries is never held twice.
                mailq::write_text(&s.spool, filter, &style, &mut out)?
            };
            // The spool's own problems (a spool everyone may write, a sub-directory that
            // is not one) go to stderr, after the listing: stdout is the listing alone.
            let _ = out.flush();
            if !problems.is_empty() {
                crate::errln!("{}", problems.trim_end());
            }
            Ok(Sysexit::Ok)
        }
        Operation::QueueRun => {
            s.spool.check_present().map_err(|f| with_typo_hint(f, &s))?;
            s.spool.check_safe()?;
            may_process_queue(&s.spool)?;
            Ok(exec_deliver(&[], None))
        }
        // Routing lives in the deliverer.
        Operation::Verify => Ok(exec_deliver(&[], None)),
        Operation::InitAliases => Ok(init_aliases(&s)),
        // The SMTP server needs the engine (DNS for the sender check, delivery, ETRN).
        // A `-bs` session takes messages into the spool as a submission does.
        // A spool that cannot take the session's messages is said as an SMTP reply, as
        // sendmail's `-bs` says its queue directory's fault (`451 4.0.0 can not
        // chdir(...)`, exit 78), so that the client program reads a reply, not text.
        Operation::Smtp => {
            spool_takes_submissions(&s)
                .and_then(|()| s.spool.check_safe())
                .map_err(smtp_reply_fatal)?;
            Ok(exec_deliver(&[], None))
        }
        Operation::Daemon | Operation::DaemonForeground => {
            s.spool.check_present().map_err(|f| with_typo_hint(f, &s))?;
            s.spool.check_safe()?;
            may_process_queue(&s.spool)?;
            Ok(exec_deliver(&[], None))
        }
        other => Err(not_supported(other)),
    }
}

/// `f` as `-bs` says it: one `451 4.0.0` reply line on stdout (the session's channel),
/// with the exit status `f` has. sendmail's `-bs` says so a file it cannot open before
/// its greeting (recorded from 8.17: its configuration, `451 4.0.0 FILE: line 0: cannot
/// open: Permission denied`; `-X`, `451 4.0.0 cannot open FILE: ...`). Every fault
/// said here is the installation's (the configuration, the spool, a file): a temporary
/// reply, so that the client keeps the mail until it is repaired, as a submission's
/// exit 75 has it kept. (sendmail says `554 5.0.0` for a line of its configuration it
/// cannot parse.)
fn smtp_reply_fatal(f: Fatal) -> Fatal {
    if f.message.is_empty() {
        return f;
    }
    let text: String = f
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Fatal {
        message: format!("451 4.0.0 {}\r", text.trim()),
        to_stderr: false,
        ..f
    }
}

/// `newaliases` / `-bi`: check the aliases file and print sendmail's summary. There is no
/// database to build: the text is read when mail is delivered. Messages go to stdout, as
/// sendmail prints them (recorded from 8.17, including the `newaliases:` prefix whatever
/// the program was called, and exit 0 for a missing file); errors exit 70 as there.
fn init_aliases(s: &Setup) -> Sysexit {
    let path = s.settings.alias_file.as_ref().unwrap_or(&s.cfg.aliases);
    let check = s.settings.check_aliases.unwrap_or(false);
    match crate::aliases::Aliases::load_checked(path, check) {
        Err(e) => {
            crate::outln!(
                "newaliases: cannot open {}: {}",
                path.display(),
                config::io_text(&e)
            );
            Sysexit::Ok
        }
        Ok(a) => {
            for m in a.messages() {
                crate::outln!("{m}");
            }
            crate::outln!("{}", a.summary());
            if a.errors().is_empty() {
                Sysexit::Ok
            } else {
                Sysexit::Software
            }
        }
    }
}

/// Replace this process with rsendmail-deliver: what it inherits about the log
/// ([`crate::log::inherited_args`]), `prefix` (its own arguments), then our argv
/// unchanged. Only returns when the exec failed. `queued` is the status of the
/// submission whose message is already queued: then the failure is said once (stdout and
/// log) with the fact that the message stays queued, and that status is returned. A
/// deliverer this process must not execute ([`crate::spool::safety::refused_exec`]: root
/// or a set-id process, and someone else could change it) is not executed: that is said
/// and 78 (EX_CONFIG) returned, the message staying queued.
fn exec_deliver(prefix: &[&str], queued: Option<Sysexit>) -> Sysexit {
    use std::os::unix::process::CommandExt;
    let path = deliver_path();
    let mut cmd = std::process::Command::new(&path);
    cmd.arg0("rsendmail-deliver")
        .args(crate::log::inherited_args())
        .args(prefix)
        .args(
            ARGV.get()
                .cloned()
                .unwrap_or_else(|| std::env::args_os().collect()),
        );
    // No variable that chooses files reaches the deliverer of a set-id install.
    privs::deliverer_env(&mut cmd);
    if let Some(why) = crate::spool::safety::refused_exec(&path) {
        return match queued {
            None => report(&Fatal::new(Sysexit::Config, why)),
            Some(_) => report(&Fatal::new(
                Sysexit::Config,
                format!("{why}; the message stays queued"),
            )),
        };
    }
    let e = cmd.exec();
    let f = Fatal::new(
        Sysexit::Unavailable,
        match refused_deliverer() {
            Some(why) => format!(
                "cannot execute {}: {} ({why})",
                path.display(),
                config::io_text(&e)
            ),
            None => format!("cannot execute {}: {}", path.display(), config::io_text(&e)),
        },
    );
    match queued {
        None => report(&f),
        Some(status) => {
            report(&Fatal::new(
                status,
                format!("{}; the message stays queued", f.message),
            ));
            status
        }
    }
}

/// The configuration `s` was read from, read again as a program started now reads it
/// (a deliverer reads it anew): its error, with the file and line, when it no longer
/// reads (an edit in progress). Nothing is printed or changed.
pub fn config_reads_now(s: &Setup) -> Result<(), Fatal> {
    let paths = default_paths(s.system_config.is_some());
    let given = &s.inv.settings.given;
    match &s.inv.config_file {
        Some(p) => Config::load(p, true, &paths, given).map(drop),
        None => Config::load(
            s.system_config
                .as_deref()
                .unwrap_or(Path::new(config::DEFAULT_CONFIG)),
            false,
            &paths,
            given,
        )
        .map(drop),
    }
}

/// The command-line options a background submission may give and still hand its entry
/// to the queue runner, because they change nothing of how the entry is delivered (the
/// runner delivers it as the caller's own deliverer would have): those spent at
/// submission (how the message is read and checked, how refused recipients are
/// reported, the mode itself) and those of the SMTP server and the daemon alone (where
/// it listens, its pid file, its sessions' limits and whom it trusts to relay), which the
/// deliverer never reads. Every other option (a timeout, a `QueueDirectory`, the
/// aliases...) is its own deliverer's to apply.
pub const NOT_FOR_DELIVERY: &[&str] = &[
    // Spent at submission.
    "DeliveryMode",
    "IgnoreDots",
    "ErrorMode",
    "MeToo",
    "OldStyleHeaders",
    "LogLevel",
    "MaxMessageSize",
    "MaxRecipientsPerMessage",
    // The SMTP server's and the daemon's own.
    "DaemonPortOptions",
    "PidFile",
    "MaxDaemonChildren",
    "MaxNOOPCommands",
    "TrustedNetworks",
];

/// Whether a background submission (from the command line, or a message a `-bs` or `-bd`
/// session accepted) may hand its entry to a listening queue runner
/// (`crate::spool::wake`): not with `-X` or `-d` (the caller's own deliverer writes
/// their output) or with an option that changes how it is delivered (any not in
/// [`NOT_FOR_DELIVERY`]): then the submission's own background delivery applies them,
/// as before.
pub fn for_the_runner(s: &Setup) -> bool {
    s.inv.traffic_log.is_none()
        && !s.inv.debug
        && s.inv
            .settings
            .given
            .iter()
            .all(|g| NOT_FOR_DELIVERY.contains(&g.as_str()))
}

/// Background mode: the caller gets its status at once; a detached child delivers.
fn background(id: &str) -> Sysexit {
    // SAFETY: rsendmail is single-threaded; the child only sets up and execs.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => Sysexit::Ok,
        Ok(nix::unistd::ForkResult::Child) => {
            privs::detach();
            // (stdout is /dev/null now: a failure is only logged.)
            exec_deliver(&["--entry", id, "--background", "--"], Some(Sysexit::Ok));
            // exec failed: the message stays queued for the next run.
            std::process::exit(0);
        }
        Err(e) => {
            log::error!("{id}: cannot fork for background delivery: {e}; the message stays queued");
            Sysexit::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Access, DirFacts, Program, access_cause};
    use std::path::PathBuf;

    /// A spool `root:rsendmail` of `mode`, a process with `egid` (1 is rsendmail's) and
    /// in the spool's group or not, run from a program of `prog_mode` and group `pgid`.
    fn facts(mode: u32, egid: u32, in_group: bool, prog_mode: u32, pgid: u32) -> DirFacts {
        DirFacts {
            dir: PathBuf::from("/var/spool/rsendmail"),
            owner: "root".into(),
            own: false,
            group: "rsendmail".into(),
            group_id: 1,
            mode,
            in_group,
            egid,
            program: Some(Program {
                path: PathBuf::from("/usr/sbin/rsendmail"),
                mode: prog_mode,
                group: if pgid == 1 { "rsendmail" } else { "mail" }.into(),
                group_id: pgid,
            }),
        }
    }

    /// Each cause is named only when it is the cause: the spool's mode when the process
    /// has the group, the set-gid bit only when the program lacks it.
    #[test]
    fn the_access_cause_names_the_real_fault() {
        // Set-gid in place, the spool without group write: its owner, group and mode.
        let c = access_cause(&facts(0o2750, 1, true, 0o2755, 1), Access::Write);
        assert_eq!(
            c,
            "/var/spool/rsendmail is root:rsendmail 2750: its group rsendmail may not \
             write to it"
        );
        assert!(!c.contains("set-group-id"), "{c}");
        // The same for reading (rsendmail-admin).
        let c = access_cause(&facts(0o2730, 1, true, 0o2755, 1), Access::Read);
        assert!(c.ends_with("its group rsendmail may not read it"), "{c}");
        // The set-gid bit lost.
        let c = access_cause(&facts(0o2770, 5, false, 0o755, 1), Access::Write);
        assert!(
            c.starts_with("/usr/sbin/rsendmail is not set-group-id (mode 0755"),
            "{c}"
        );
        assert!(c.contains("the spool's group rsendmail"), "{c}");
        // Set-gid to another group.
        let c = access_cause(&facts(0o2770, 2, false, 0o2755, 2), Access::Write);
        assert_eq!(
            c,
            "/usr/sbin/rsendmail is set-group-id to the group mail, not to the spool's \
             group rsendmail"
        );
        // Set-gid to the right group, but not in effect.
        let c = access_cause(&facts(0o2770, 5, false, 0o2755, 1), Access::Write);
        assert!(c.contains("is not in effect"), "{c}");
        // A user in the group with a spool the group may use: nothing but the facts.
        let c = access_cause(&facts(0o2770, 5, true, 0o755, 1), Access::Write);
        assert_eq!(c, "/var/spool/rsendmail is root:rsendmail 2770");
        // The owner's own bits count for the owner.
        let mut f = facts(0o0500, 5, false, 0o755, 1);
        f.own = true;
        assert!(access_cause(&f, Access::Write).ends_with("its owner may not write to it"));
    }

    /// Each name of [`super::NOT_FOR_DELIVERY`] is an option of the table, as the
    /// settings record it (a misspelt one would never match).
    #[test]
    fn not_for_delivery_names_options() {
        for name in super::NOT_FOR_DELIVERY {
            let r = crate::options::lookup_long(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(r.def.name, *name);
            assert!(r.abbreviation_note.is_none(), "{name}");
        }
    }
}

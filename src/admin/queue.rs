//! `rsendmail-admin list | show | delete | hold | release | retry | bounce`: the queue
//! administration (man/rsendmail-admin.8).
//!
//! Rights: root, the spool directory's owner and the members of its group (the caller's
//! real group or a supplementary one: [`app::may_see_queue`]) may act on any entry; any
//! other user only on the entries she submitted (the envelope's `user` line, the uid
//! `mailq` knows), and on the delivery reports about them
//! ([`spool::entry::Envelope::owner`]): a report is the owner's of the entry it reports
//! on, never the user's whose delivery run queued it (a background delivery takes
//! other users' waiting entries too); one an earlier version queued, which records no
//! owner, is root's and the group's. A refusal names the ID and exits 77 (EX_NOPERM);
//! an ID that names no entry exits 66 (EX_NOINPUT: the queue file it names does not
//! exist); the other IDs of the command line are still processed, and the exit status
//! is that of the first failure in the order the IDs were given ([`Failures`]),
//! whichever outcomes are mixed (an entry acted on, another refused, a third unknown).
//! A hold is the administrator's quarantine, as sendmail's `-Q` is root's alone
//! (recorded: a user's `-Q` is "Permission denied (real uid not trusted)"): it records
//! who made it ([`State::held_by`]), and only that user, root, the spool's owner and its
//! group may end it (`release`, `retry`, `bounce`, `delete`: [`may_clear_hold`]); a user
//! holds and releases her own entry, but not one root or the group held.
//! An entry of a selection (`delete --all`, `--recipient`) that is gone by the time it
//! is acted on (a queue run delivered it meanwhile) is passed over, as `postsuper -d
//! ALL` passes over it: it was not named, so its absence is no error.
//!
//! Every change is made under the entry's delivery lock, taken as queue runs take it (an
//! exclusive `flock` on `qf<ID>`, then the path checked to still name the file): a
//! delivery running on the entry is never disturbed mid-transaction. Every action on
//! several entries first acts on every one it can lock at once, then waits for those
//! being delivered all together ([`each_locked`]), for up to [`LOCK_WAIT`]: it never
//! follows a queue run from entry to entry, waiting on each while the run delivers the
//! next. An entry still locked then is left as it is, said, and the exit status is 75
//! (EX_TEMPFAIL: try again). `delete` waits for no delivery, as `postsuper -d` does
//! not: it marks an entry being delivered for deletion (`kf<ID>`, made durable:
//! [`Spool::request_deletion`]), its delivery sends nothing more of it and removes it
//! when it lets go of it, and every later holder of its lock removes it unsent; the
//! command waits only [`MARK_WAIT`] for such entries, saying of each whose delivery
//! ended meanwhile what the delivery had sent (it adds that to the mark, which the
//! command holds open), then says which are still marked (0).
//! `hold` and `bounce` do the same with their own action in the mark
//! ([`Spool::request`]): the delivery starts nothing more of the entry, and it is held,
//! or its open recipients returned, when the delivery lets go of it.
//!
//! Holding moves `qf<ID>`, `sf<ID>` and `jf<ID>` into `SPOOLDIR/hold/` ([`Spool::held`]), as
//! Postfix's hold queue and sendmail's `hf` files do: no selection code can take a held
//! entry by mistake, as every run opens entries by their path in the spool. `mailq`
//! lists a held entry with sendmail's quarantine line (`     QUARANTINE: held`, recorded:
//! compat-tests/differences/bp-quarantined). Both moves rename the queue file first when
//! holding and last when releasing, so a crash between the two renames leaves the state
//! file in the spool beside a held queue file, never an entry without its state; queue
//! runs keep such a state file ([`Spool::clean_leftovers`]), `show` reads the entry's
//! state from it, and `release` (or `hold` again) takes it along.
//!
//! Every action is logged (syslog or MAILLOG, as the rest logs): who (login and uid),
//! what, and which ID; so is a failure of a command that changes the queue. A command
//! that only looks (`list`, `show`, `delete --dry-run`) logs nothing
//! ([`crate::log::looks_only`]).

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::{Context, on_stderr};
use crate::app::{self, Setup};
use crate::exit::{Fatal, Sysexit};
use crate::spool::entry::{HeldBy, State};
use crate::spool::{self, ReadError, Request, Spool, index, wake};
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a command waits for the lock of an entry being delivered.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long `delete` waits for the entries being delivered once it has marked them for
/// deletion and deleted every other entry: long enough for a queue run's brief look at
/// an entry (its selection locks each in turn) or a delivery that is ending; an entry
/// still locked then is in flight, and left to its delivery, which removes it.
pub const MARK_WAIT: Duration = Duration::from_millis(500);

/// How often a command waiting for entries being delivered looks at them again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// The reason a report gives when `bounce` is given none.
pub const DEFAULT_REASON: &str = "message returned by the administrator";

/// The reason a report gives when a user (not root) returns an entry with none.
pub const NO_REASON: &str = "no reason given";

/// The longest `--reason` kept, in characters.
pub const REASON_MAX: usize = 200;

/// The letters that name an entry's other files in a spool (rsendmail's state `sf`,
/// delivery journal `jf`,
/// temporary `tf`, `rf`, a mark `kf`; sendmail's data `df`, transcript `xf`,
/// quarantined `hf`, lost `Qf`): a name of one of them is refused with the ID to give
/// instead.
const FILE_PREFIXES: [&str; 9] = ["sf", "jf", "tf", "rf", "kf", "df", "xf", "hf", "Qf"];

/// A queue ID as given on the command line: the 14 characters of an ID, also as `mailq`
/// shows it (followed by one of its marks: `*` being delivered, `-` too young, and
/// Postfix's `!` held) or as its queue file's name (`qf<ID>`), with white space around
/// it (pasted from a listing, with its line's end) left out. Errors: a text naming what is wrong (printable,
/// whatever was given), with the ID to give when the argument holds one (the name of
/// another file of the entry, a path).
pub fn parse_id(arg: &str) -> Result<String, String> {
    let mut s = arg.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.chars().count() == 15
        && let Some(t) = s.strip_suffix(['*', '-', '!'])
    {
        s = t;
    }
    if s.chars().count() == 16
        && let Some(t) = s.strip_prefix("qf")
    {
        s = t;
    }
    if spool::valid_id(s) {
        return Ok(s.to_string());
    }
    let shown = crate::text::argument_shown(arg);
    // The last path component, its queue file's or another file's name.
    let name = s.rsplit('/').next().unwrap_or(s);
    let file = FILE_PREFIXES.iter().chain(["qf"].iter()).find_map(|p| {
        name.strip_prefix(p)
            .filter(|id| spool::valid_id(id))
            .map(|id| (*p, id))
    });
    Err(match file {
        Some(("qf", id)) if name != s => {
            format!("{shown}: a path, not a queue ID: give the ID {id} (as mailq lists it)")
        }
        Some((p, id)) if p != "qf" => format!(
            "{shown}: the name of one of an entry's files ({p}), not a queue ID: give \
             the ID {id} (as mailq lists it)"
        ),
        _ => format!(
            "{shown}: not a queue ID (14 letters and digits, as mailq lists them: \
             digits, A to Z and a to x, optionally followed by its mark *, - or !, or \
             the queue file's name qfID)"
        ),
    })
}

/// `--reason TEXT` as a report and the log may carry it: on one line (control
/// characters and invisible format characters as their octets in octal,
/// [`crate::text::escaped`]), blanks around it removed, at most [`REASON_MAX`] characters;
/// [`DEFAULT_REASON`] when nothing is left.
pub fn reason_text(given: Option<&str>) -> String {
    let t: String = crate::text::escaped(given.unwrap_or("").trim())
        .chars()
        .take(REASON_MAX)
        .collect();
    let t = t.trim_end().to_string();
    if t.is_empty() {
        DEFAULT_REASON.to_string()
    } else {
        t
    }
}

/// Who runs the command.
struct Caller {
    uid: u32,
    login: String,
    /// Root, the spool's owner or a member of its group: any entry.
    any: bool,
    /// Why this process may not read the spool, when it may not
    /// ([`app::spool_access_cause`]): the invocation and whether it gave up the group;
    /// `None` when the note said it already.
    access: Option<(crate::cli::Invocation, bool)>,
    /// `PrivacyOptions=restrictmailq` and not [`Caller::any`]: the other users' entries
    /// are not shown, so one of them is answered as an ID that names no entry (66), lest
    /// the answer tell which IDs exist.
    private: bool,
}

impl Caller {
    fn new(spool: &Spool) -> Caller {
        let uid = nix::unistd::getuid();
        let login = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Caller {
            uid: uid.as_raw(),
            login,
            any: app::may_see_queue(spool),
            access: None,
            private: false,
        }
    }

    fn may_act_on(&self, owner: Option<u32>) -> bool {
        self.any || owner == Some(self.uid)
    }

    /// The record of a hold this caller makes.
    fn as_holder(&self) -> HeldBy {
        HeldBy {
            uid: self.uid,
            login: self.login.clone(),
        }
    }
}

/// Set up as `rsendmail` does for the same `-C`: the configuration, the spool, the log;
/// a set-gid program called by someone other than root with `-C` gives up its group
/// first (`app::setup`, `privs::drop_group`); no environment variable chooses a file.
fn setup(ctx: &Context) -> Result<Setup, Fatal> {
    let mut args: Vec<std::ffi::OsString> = vec!["rsendmail".into()];
    if let Some(c) = &ctx.config {
        args.push("-C".into());
        args.push(c.clone().into_os_string());
    }
    let s = app::setup(args)?;
    // The spool acted on is the configuration's choice: a configuration someone the
    // caller does not trust could change is refused, as every program refuses it.
    s.cfg
        .check_config_trust(&s.settings, app::maillog_group(&s))?;
    Ok(s)
}

/// Where an entry is: queued (`false`) or held (`true`); `Ok(None)` when neither.
/// An error when the spool (or `hold/`) cannot be looked into, so that an entry there is
/// never said to be missing: the directory and the reason (EACCES for a caller who is not
/// in the spool's group).
fn locate(spool: &Spool, id: &str) -> Result<Option<(Spool, bool)>, (PathBuf, std::io::Error)> {
    let held = spool.held();
    for (sp, is_held) in [(spool, false), (&held, true)] {
        match fs::symlink_metadata(sp.qf_path(id)) {
            Ok(_) => return Ok(Some((sp.clone(), is_held))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err((sp.dir.clone(), e)),
        }
    }
    Ok(None)
}

/// What happened to one ID.
type Done = Result<(), Sysexit>;

/// What an action's check of one ID gives [`each_locked`]: the spool whose lock to
/// take and what the action needs, `None` when nothing is left to do under a lock, or
/// the failure (said).
type Prepared<T> = Result<Option<(Spool, T)>, Sysexit>;

/// How long a delivery may hold an entry, from the timeouts in force (set by [`run`]):
/// when to try again.
static ATTEMPT_BOUND: std::sync::OnceLock<AttemptBound> = std::sync::OnceLock::new();

/// The timeouts that bound a delivery's wait on a server that does not answer, in
/// seconds.
struct AttemptBound {
    connect: u64,
    /// `Timeout.helo`, when the relay is reached with TLS from the first byte (SMTPS:
    /// `SECURETRANSFER` without `STARTTLS`), whose handshake comes before the greeting.
    handshake: Option<u64>,
    initial: u64,
    block: u64,
}

/// The end of the "being delivered" line: when to try again, which is when the delivery
/// has ended; no time bounds that (a transfer under way goes on as long as the message
/// takes), so the bounds the timeouts give are said each for what it bounds: a server
/// that does not answer (Timeout.connect + Timeout.initial per address tried, with
/// Timeout.helo between them for an SMTPS relay's TLS handshake, and the time that gives
/// from now for the first), a transfer (Timeout.datablock a block).
fn busy_hint() -> String {
    let Some(b) = ATTEMPT_BOUND.get() else {
        return " when its delivery has ended".to_string();
    };
    let bound = b
        .connect
        .saturating_add(b.handshake.unwrap_or(0))
        .saturating_add(b.initial);
    let at = crate::clock::ctime16(&crate::clock::local(
        crate::clock::now().saturating_add(i64::try_from(bound).unwrap_or(i64::MAX)),
    ));
    let handshake = b
        .handshake
        .map(|h| format!(" + Timeout.helo {} (the TLS handshake)", bound_span(h)))
        .unwrap_or_default();
    format!(
        " when its delivery has ended: for each address it tries, a server that does not \
         answer holds it up to {} (Timeout.connect {}{handshake} + Timeout.initial {}; \
         until {at} for the first address), a transfer under way up to {} a block \
         (Timeout.datablock) and as long as the message takes (the timeouts as \
         configured: a run given other Timeout options on its command line takes as long \
         as those say)",
        bound_span(bound),
        bound_span(b.connect),
        bound_span(b.initial),
        bound_span(b.block)
    )
}

/// A timeout as it is set: whole minutes as `N min`, else seconds.
fn bound_span(s: u64) -> String {
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// Say a usage error (a malformed ID, a missing argument) and give its status (64,
/// EX_USAGE): on stderr alone, never in the log, which records what a command did to the
/// queue (a command that did nothing for its arguments did nothing to log), as clap's
/// own usage errors and the looks (`list`, `show`) log nothing.
fn usage(msg: &str) -> Sysexit {
    crate::errln!("rsendmail-admin: {msg}");
    Sysexit::Usage
}

/// Say a failure for an ID (stderr, and the log of a command that changes the queue:
/// [`crate::log::looks_only`]) and give its status.
fn fail(code: Sysexit, msg: String) -> Sysexit {
    crate::errln!("rsendmail-admin: {msg}");
    // Logged too, unless the log is this process's stderr (said just now).
    if !crate::log::to_stderr() {
        log::warn!("{msg}");
    }
    code
}

/// What to do about an I/O error `e` met writing in the spool directory `dir`, when
/// it is one of room or of a read-only file system, as the end of the line that says
/// it: `; the file system of DIR is full ...: free space there, then run this again`;
/// empty for any other error. The entry is kept as it was in either case.
fn room_advice(e: &std::io::Error, dir: &Path) -> String {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    let what = match e.kind() {
        StorageFull | FileTooLarge => "has no room left",
        QuotaExceeded => "is over its owner's disk quota",
        ReadOnlyFilesystem => "is mounted read-only",
        _ => return String::new(),
    };
    let todo = if e.kind() == ReadOnlyFilesystem {
        "remount it read-write"
    } else {
        "free space there (`df`) or raise the quota"
    };
    format!(
        "; the file system of the spool {} {what}: the entry is kept as it was; {todo}, \
         then run this again",
        dir.display()
    )
}

/// What [`try_lock`] found.
enum Locked {
    /// The live queue file, its lock held.
    File(File),
    /// The entry went away meanwhile (delivered, deleted).
    Gone,
    /// A delivery still holds its lock.
    Busy,
}

/// The entry's lock, as a queue run takes it, waiting up to `wait` while a delivery
/// holds it (`Duration::ZERO`: tried once). Errors are said, with their status.
fn try_lock(sp: &Spool, id: &str, wait: Duration) -> Result<Locked, Sysexit> {
    match sp.lock_live(id, wait) {
        // Its deletion was asked for while a delivery held it ([`delete`]): every holder
        // of its lock removes it, as a delivery does.
        Ok(spool::LiveLock::Held(f, _))
            if sp
                .read_mark(id)
                .is_some_and(|m| m.request == Request::Delete) =>
        {
            sp.note_removed_unsent(id);
            remove(sp, id, &f)?;
            log::info!("{id}: deleted as asked for while it was being delivered");
            Ok(Locked::Gone)
        }
        // A file where a mark belongs that no rsendmail wrote, or that cannot be read
        // (a delivery takes it as a hold): this command, which holds the lock, acts on
        // the entry itself, and the file goes, said in the log.
        Ok(spool::LiveLock::Held(f, _)) if sp.read_mark(id).is_some_and(|m| m.is_unreadable()) => {
            let removed = sp.withdraw_mark(id, spool::Mark::is_unreadable);
            log::warn!(
                "{id}: {}: not a mark that can be read; {}",
                sp.kf_path(id).display(),
                match removed {
                    Ok(true) => "removed, and the command acts on the entry".to_string(),
                    Ok(false) => "gone meanwhile".to_string(),
                    Err(e) => format!("not removed ({})", crate::config::io_text(&e)),
                }
            );
            Ok(Locked::File(f))
        }
        // A hold or a return asked for so: carried out as a delivery does (a return
        // recorded, the entry then acted on; a hold makes it gone from here).
        Ok(spool::LiveLock::Held(f, _)) if sp.marked(id) => {
            if sp.carry_out_mark(id) {
                Ok(Locked::File(f))
            } else {
                Ok(Locked::Gone)
            }
        }
        Ok(spool::LiveLock::Held(f, _)) => Ok(Locked::File(f)),
        Ok(spool::LiveLock::Gone) => Ok(Locked::Gone),
        Ok(spool::LiveLock::Busy) => Ok(Locked::Busy),
        Err(spool::LockError::Open(e)) => Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: cannot open its queue file: {}{}",
                crate::config::io_text(&e),
                room_advice(&e, &sp.dir)
            ),
        )),
        Err(spool::LockError::Lock(e)) => Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: cannot lock its queue file: {}{}",
                crate::config::io_text(&e),
                room_advice(&e, &sp.dir)
            ),
        )),
        Err(spool::LockError::Look(e)) => Err(fail(
            Sysexit::IoErr,
            format!("{id}: {}", crate::config::io_text(&e)),
        )),
    }
}

/// Act on each of `ids` under its entry's lock, as a queue run takes it: every action on
/// several entries (`delete`, `hold`, `release`, `retry`, `bounce`) goes through here.
/// Each ID is checked first by `prepare` (its errors said by it, a malformed ID said
/// here), which gives the spool whose lock to take and what `act` needs, or `None` when
/// nothing is left to do under a lock. Every entry whose lock is free is acted on at
/// once (`act` gets the lock, or `None` for an entry gone meanwhile: delivered,
/// deleted); only then are those a delivery holds waited for, all together, for up to
/// `wait`, each acted on as soon as its delivery lets go of it: a command never follows
/// a queue run from entry to entry, waiting on each while the run delivers the next.
/// Those still locked then are left as they are, each said "being delivered" (75,
/// EX_TEMPFAIL: try again). The first failure's status (or 0), and the IDs left.
fn each_locked<T>(
    ids: &[String],
    wait: Duration,
    prepare: impl FnMut(&str) -> Result<Option<(Spool, T)>, Sysexit>,
    act: impl FnMut(&str, T, Option<File>) -> Done,
) -> (Sysexit, Vec<String>) {
    each_locked_then(ids, wait, prepare, act, || Ok(()))
}

/// An entry still held by its delivery once the wait is over: left as it is, said
/// "being delivered" (75, EX_TEMPFAIL: try again).
fn left_being_delivered(id: &str, wait: Duration) -> Done {
    Err(fail(
        Sysexit::TempFail,
        format!(
            "{id}: being delivered (its lock was held for {} s); left as it is, try again{}",
            wait.as_secs(),
            busy_hint()
        ),
    ))
}

/// What [`each_locked_held`] does with an entry a delivery holds: `first` as soon as it
/// is found held, before any wait (`delete` marks it then), and `last` for each still
/// held once the wait is over.
struct WhenHeld<'a, T> {
    first: &'a mut dyn FnMut(&str, &Spool, &T) -> Done,
    last: &'a mut dyn FnMut(&str, Duration, &T) -> Done,
}

/// [`each_locked`], with `between` called once every entry free at first has been
/// acted on, before those a delivery holds are waited for (its failure counted as
/// theirs).
fn each_locked_then<T>(
    ids: &[String],
    wait: Duration,
    prepare: impl FnMut(&str) -> Result<Option<(Spool, T)>, Sysexit>,
    act: impl FnMut(&str, T, Option<File>) -> Done,
    between: impl FnOnce() -> Done,
) -> (Sysexit, Vec<String>) {
    each_locked_held(
        ids,
        wait,
        prepare,
        act,
        between,
        WhenHeld {
            first: &mut |_, _, _| Ok(()),
            last: &mut |id, wait, _| left_being_delivered(id, wait),
        },
    )
}

/// [`each_locked_then`], with what is done with the entries a delivery holds given.
fn each_locked_held<T>(
    ids: &[String],
    wait: Duration,
    mut prepare: impl FnMut(&str) -> Result<Option<(Spool, T)>, Sysexit>,
    mut act: impl FnMut(&str, T, Option<File>) -> Done,
    between: impl FnOnce() -> Done,
    held: WhenHeld<'_, T>,
) -> (Sysexit, Vec<String>) {
    let mut busy: Vec<(usize, String, Spool, T)> = Vec::new();
    let mut failures = over(ids, |at, id| {
        let Some((sp, what)) = prepare(id)? else {
            return Ok(());
        };
        match try_lock(&sp, id, Duration::ZERO)? {
            Locked::File(lock) => act(id, what, Some(lock)),
            Locked::Gone => act(id, what, None),
            Locked::Busy => {
                (held.first)(id, &sp, &what)?;
                busy.push((at, id.to_string(), sp, what));
                Ok(())
            }
        }
    });
    // What `between` does concerns the entries acted on so far, all together: counted
    // after every ID.
    if let Err(code) = between() {
        failures.note(ids.len(), code);
    }
    let until = std::time::Instant::now() + wait;
    while !busy.is_empty() {
        let now = std::time::Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep(LOCK_POLL.min(until - now));
        let mut still = Vec::new();
        for (at, id, sp, what) in busy {
            let r = match try_lock(&sp, &id, Duration::ZERO) {
                Ok(Locked::Busy) => {
                    still.push((at, id, sp, what));
                    continue;
                }
                Ok(Locked::File(lock)) => act(&id, what, Some(lock)),
                Ok(Locked::Gone) => act(&id, what, None),
                Err(code) => Err(code),
            };
            if let Err(code) = r {
                failures.note(at, code);
            }
        }
        busy = still;
    }
    let mut left = Vec::new();
    for (at, id, _, what) in busy {
        if let Err(code) = (held.last)(&id, wait, &what) {
            failures.note(at, code);
        }
        left.push(id);
    }
    (failures.status(), left)
}

/// What an entry's queue file is when it is not a regular file (a symbolic link planted
/// in its place, a directory, a FIFO...): `Some(kind)`, said without following it.
fn odd_file(sp: &Spool, id: &str) -> Option<&'static str> {
    let ft = fs::symlink_metadata(sp.qf_path(id)).ok()?.file_type();
    if ft.is_file() {
        None
    } else if ft.is_symlink() {
        Some("a symbolic link")
    } else if ft.is_dir() {
        Some("a directory")
    } else {
        Some("not a regular file")
    }
}

/// The checks every action makes: the entry exists (queued or held), the caller may act
/// on it, its queue file is a regular file (else 65, EX_DATAERR: only `delete` takes
/// such an entry, [`find_any`]).
fn find(spool: &Spool, who: &Caller, id: &str) -> Result<(Spool, bool), Sysexit> {
    let (sp, held) = find_any(spool, who, id)?;
    if let Some(kind) = odd_file(&sp, id) {
        return Err(fail(
            Sysexit::DataErr,
            format!(
                "{id}: its queue file {} is {kind}, not a queue entry: refused, nothing \
                 followed (\"{}\" removes it)",
                sp.qf_path(id).display(),
                spool::safety::admin_command(&format!("delete {id}"))
            ),
        ));
    }
    Ok((sp, held))
}

/// [`find`] without the check of the queue file's kind. The owner of an entry whose
/// queue file cannot be read is unknown: only root and the spool's group may act on it,
/// which a refusal says (77) rather than a bare "permission denied".
fn find_any(spool: &Spool, who: &Caller, id: &str) -> Result<(Spool, bool), Sysexit> {
    match find_listed(spool, who, id, false)? {
        Some(found) => Ok(found),
        None => Err(no_such_entry(spool, id)),
    }
}

/// [`find_any`] of an ID that a listing of the spool gave (`listed`: `--all`,
/// `--recipient`): `Ok(None)` when the entry is gone since (delivered, deleted), which
/// is no error, as `postsuper -d ALL` passes over it. An ID the caller gave that names
/// no entry is an error (66, said).
fn find_listed(
    spool: &Spool,
    who: &Caller,
    id: &str,
    listed: bool,
) -> Result<Option<(Spool, bool)>, Sysexit> {
    let (sp, held) = match locate(spool, id) {
        Ok(Some(found)) => found,
        Ok(None) if listed => return Ok(None),
        // Under restrictmailq, whose a set-aside entry was is not known: not named.
        Ok(None) if !who.private && set_aside(spool, id).is_some() => {
            return Err(set_aside_error(spool, id));
        }
        Ok(None) => return Err(no_such_entry(spool, id)),
        Err((dir, e)) => {
            return Err(fail(
                Sysexit::from_io(&e),
                format!(
                    "{id}: cannot read the spool {}: {}{}",
                    dir.display(),
                    crate::config::io_text(&e),
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        match &who.access {
                            Some((inv, dropped)) => format!(
                                " ({})",
                                app::spool_access_cause(&dir, app::Access::Read, inv, *dropped)
                            ),
                            None => String::new(),
                        }
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    };
    if who.any {
        return Ok(Some((sp, held)));
    }
    let denied = |e: &ReadError| matches!(e, ReadError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied);
    let entry = sp.read_entry(id);
    // Under restrictmailq an entry this user may not act on is answered as one that is
    // not there, whatever the reason (another's, unreadable): the same words and status.
    if who.private
        && !matches!(&entry, Ok(e) if who.may_act_on(e.envelope.owner()))
        && !matches!(&entry, Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound)
    {
        return Err(no_such_entry(spool, id));
    }
    match entry {
        Ok(e) if who.may_act_on(e.envelope.owner()) => Ok(Some((sp, held))),
        // Finished between the look and the read.
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            if listed {
                Ok(None)
            } else {
                Err(no_longer_queued(id, spool))
            }
        }
        // Another user's entry, which this one may not even read.
        Err(e) if denied(&e) => Err(fail(
            Sysexit::NoPerm,
            format!(
                "{id}: permission denied: {} may act only on the entries that user submitted",
                crate::spool::safety::the_user(&who.login)
            ),
        )),
        Ok(_) => Err(fail(
            Sysexit::NoPerm,
            format!(
                "{id}: permission denied: {} may act only on the entries that user submitted",
                crate::spool::safety::the_user(&who.login)
            ),
        )),
        Err(e) => Err(fail(
            Sysexit::NoPerm,
            format!(
                "{id}: its queue file cannot be read ({e}), so whose entry it is is \
                 unknown: only root or the spool's group may act on it"
            ),
        )),
    }
}

/// An ID that names no entry the caller may see: 66 (EX_NOINPUT), said.
fn no_such_entry(spool: &Spool, id: &str) -> Sysexit {
    fail(
        Sysexit::NoInput,
        format!("{id}: no such entry in the queue {}", spool.dir.display()),
    )
}

/// The `corrupt/` spool when entry `id`, in neither the queue nor `hold/`, is there: a
/// queue run set it aside as a queue file it cannot read (or `init` as a suspect one).
fn set_aside(spool: &Spool, id: &str) -> Option<Spool> {
    let aside = spool.set_aside();
    fs::symlink_metadata(aside.qf_path(id))
        .is_ok()
        .then_some(aside)
}

/// What every command but `delete` says of an entry set aside in `corrupt/`: where it
/// is, that it is never delivered, and how to remove it (65, EX_DATAERR).
fn set_aside_error(spool: &Spool, id: &str) -> Sysexit {
    fail(
        Sysexit::DataErr,
        format!(
            "{id}: {}; \"{}\" removes it",
            set_aside_text(spool),
            spool::safety::admin_command(&format!("delete {id}"))
        ),
    )
}

/// `set aside in DIR/ as a damaged queue file, never delivered`.
fn set_aside_text(spool: &Spool) -> String {
    format!(
        "set aside in {}/ as a damaged queue file by a queue run, never delivered",
        spool.set_aside().dir.display()
    )
}

fn logged(who: &Caller, id: &str, what: &str) {
    log::info!("{id}: {what} by {} (uid {})", who.login, who.uid);
}

/// The failures of a command given several IDs, each noted at the position of the ID
/// it concerns: its exit status is that of the first failure in the order the IDs
/// were given (a malformed ID's 64 too), whenever each was met (an entry a delivery
/// held is decided after the others), so that one command line always exits the same.
#[derive(Default)]
struct Failures(Option<(usize, Sysexit)>);

impl Failures {
    /// A failure of the ID at position `at`.
    fn note(&mut self, at: usize, code: Sysexit) {
        if self.0.is_none_or(|(first, _)| at < first) {
            self.0 = Some((at, code));
        }
    }

    /// The first failure's status, or 0.
    fn status(&self) -> Sysexit {
        self.0.map_or(Sysexit::Ok, |(_, code)| code)
    }
}

/// Run `each` over `ids` (with its position among them); their failures.
fn over(ids: &[String], mut each: impl FnMut(usize, &str) -> Done) -> Failures {
    let mut failures = Failures::default();
    // An entry named twice (`ID qfID`, `ID ID*`) is acted on, said and waited for once.
    let mut seen = std::collections::HashSet::new();
    for (at, arg) in ids.iter().enumerate() {
        let r = match parse_id(arg) {
            Ok(id) if !seen.insert(id.clone()) => Ok(()),
            Ok(id) => each(at, &id),
            Err(e) => Err(usage(&e)),
        };
        if let Err(code) = r {
            failures.note(at, code);
        }
    }
    failures
}

/// What a command does with the spool.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Reads it (`list`, `show`): a spool everyone may write is read, its problem said
    /// on stderr; one the other programs refuse for its group, its ACLs or its layout
    /// is refused ([`Spool::check_readable`]).
    Reads,
    /// Writes to it or delivers from it (`delete`, `hold`, `release`, `retry`,
    /// `bounce`): a spool everyone may write is refused as queue runs refuse it
    /// ([`Spool::check_safe`]: 78, the same words), nothing changed.
    Writes,
}

/// Run a command: set up, then `body`; a fatal error is printed once.
fn run(
    ctx: &Context,
    uses: Use,
    body: impl FnOnce(&Setup, &Caller) -> Result<Sysexit, Fatal>,
) -> Sysexit {
    // A spool that is not there is refused as every entry point refuses it (78, the
    // configuration's file and line, a missing parent called a typo): never "empty", never
    // "no such entry".
    // Errors go to stderr: stdout carries the listing (`list --json` stays JSON).
    let s = match setup(ctx).and_then(|s| {
        s.spool
            .check_present()
            .map_err(|f| app::with_typo_hint(f, &s))
            .map(|()| s)
    }) {
        Ok(s) => s,
        Err(f) => return app::report(&on_stderr(f)),
    };
    let t = &s.settings.timeouts;
    let b = crate::options::Settings::builtin().timeouts;
    let _ = ATTEMPT_BOUND.set(AttemptBound {
        connect: t.connect.or(b.connect).unwrap_or_default(),
        handshake: (s.cfg.secure_transfer && !s.cfg.starttls)
            .then(|| t.helo.or(b.helo).unwrap_or_default()),
        initial: t.initial.or(b.initial).unwrap_or_default(),
        block: t.datablock.or(b.datablock).unwrap_or_default(),
    });
    if uses == Use::Writes
        && let Err(f) = s.spool.check_safe()
    {
        return app::report(&on_stderr(f));
    }
    // A spool of a group unfit for it, one whose ACLs give others anything, one that
    // breaks the layout's rule is not read either (`list`, `show`), as every program
    // refuses it: others could have planted what it holds.
    if let Err(f) = s.spool.check_readable() {
        return app::report(&on_stderr(f));
    }
    // The note only where the given-up group matters (a spool this user may not read
    // herself, not her own), and once: the errors that follow then do not say it again.
    let noted = s.dropped_group && !may_read_herself(&s.spool.dir);
    if noted {
        crate::errln!(
            "rsendmail-admin: note: {}",
            super::dropped_group_note(&s.inv)
        );
    }
    let mut who = Caller::new(&s.spool);
    who.access = (!noted).then(|| (s.inv.clone(), s.dropped_group));
    who.private = !who.any && s.settings.privacy("restrictmailq");
    match body(&s, &who) {
        Ok(code) => code,
        Err(f) => app::report(&on_stderr(f)),
    }
}

/// Whether this process may list and enter `dir` with its own ids (its effective ones:
/// a set-gid program that gave its group up has the caller's).
fn may_read_herself(dir: &Path) -> bool {
    use nix::unistd::AccessFlags;
    nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        dir,
        AccessFlags::R_OK | AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// `list [--json]`: the `mailq` listing (held entries included, marked).
pub fn list(ctx: &Context, json: bool) -> Sysexit {
    run(ctx, Use::Reads, |s, _| {
        if s.settings.privacy("restrictmailq") && !app::may_see_queue(&s.spool) {
            // `list` says it as mailq does (on stdout, 0: sendmail's); `--json` keeps
            // its stdout JSON: the refusal is an error (stderr, EX_NOPERM).
            if json {
                return Ok(fail(
                    Sysexit::NoPerm,
                    "You are not permitted to see the queue (PrivacyOptions restrictmailq)".into(),
                ));
            }
            // mailq's two lines (compat-tests/cases/bp-restrictmailq).
            crate::outln!("You are not permitted to see the queue");
            crate::outln!("\t\tTotal requests: 0");
            return Ok(Sysexit::Ok);
        }
        if !json && fs::symlink_metadata(&s.spool.dir).is_err() {
            // A user's own default spool, made with her first message (any other
            // missing spool was refused above): not "empty", not there yet.
            crate::outln!(
                "{} does not exist yet: it is made when the first message is queued",
                s.spool.dir.display()
            );
            crate::outln!("\t\tTotal requests: 0");
            return Ok(Sysexit::Ok);
        }
        let (mut text, mut problems) = if json {
            crate::mailq::list_json(&s.spool, None, true)?
        } else {
            let min_age = s.settings.min_queue_age.unwrap_or(0) as i64;
            let (default_uid, _) = crate::aliases::default_user(s.settings.default_user.as_deref());
            let style = crate::mailq::TextStyle {
                holders: true,
                utf8: true,
                ..crate::mailq::TextStyle::new(min_age, false, default_uid)
            };
            crate::mailq::list_text(&s.spool, None, &style)?
        };
        // Entries a run set aside in `corrupt/`: a line of their own in the JSON (as an
        // unreadable entry's), a problem after the text listing.
        for id in s.spool.set_aside_ids() {
            let why = set_aside_text(&s.spool);
            if json {
                text.push_str(&format!(
                    "{{\"queue_name\":\"corrupt\",\"queue_id\":{},\"error\":{}}}\n",
                    crate::mailq::json_str(&id),
                    crate::mailq::json_str(&why)
                ));
            } else {
                problems.push_str(&format!("{id}: {why}\n"));
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        // The spool's own problems go to stderr, after the listing: stdout carries the
        // listing alone (`--json` stays JSON; an unreadable entry is one of its lines).
        let _ = out.flush();
        if !problems.is_empty() {
            crate::errln!("{}", problems.trim_end());
        }
        Ok(Sysexit::Ok)
    })
}

/// A time for people: the local date and time, and how far from now.
fn when(t: i64, now: i64) -> String {
    let d = crate::clock::ctime16(&crate::clock::local(t));
    let delta = t.saturating_sub(now);
    let rel = if delta > 0 {
        format!("in {}", span(delta))
    } else if delta < 0 {
        format!("{} ago", span(delta.saturating_neg()))
    } else {
        "now".into()
    };
    format!("{d} ({rel})")
}

fn span(s: i64) -> String {
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86400)
    }
}

/// `show ID`: the envelope, each recipient's state with its full reason, the next
/// attempt, and the header.
pub fn show(ctx: &Context, id: &str) -> Sysexit {
    run(ctx, Use::Reads, |s, who| {
        // Read all the same; what every run refuses it for, said on stderr.
        for (dir, mode) in s.spool.world_writable() {
            crate::errln!(
                "rsendmail-admin: {}",
                s.spool.world_writable_problem(&dir, mode)
            );
        }
        let r = (|| -> Done {
            let id = parse_id(id).map_err(|e| usage(&e))?;
            let (sp, held) = find(&s.spool, who, &id)?;
            let mut e = match sp.read_entry(&id) {
                Ok(e) => e,
                Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(no_longer_queued(&id, &s.spool));
                }
                Err(err) => {
                    return Err(fail(
                        Sysexit::DataErr,
                        format!("{id}: cannot read queue file: {err}"),
                    ));
                }
            };
            // A hold cut short between its renames left the state file in the spool
            // (release, or hold again, takes it along): the entry's state is that one.
            if held
                && fs::symlink_metadata(sp.sf_path(&id)).is_err()
                && let Some(state) = left_state(&s.spool, &id)?
            {
                e.state = state;
            }
            crate::outln!(
                "{}",
                render(
                    &e,
                    held,
                    sp.is_busy(&e.file),
                    (!held).then(|| sp.read_mark(&id)).flatten().as_ref(),
                    crate::clock::now()
                )
            );
            Ok(())
        })();
        Ok(r.err().unwrap_or(Sysexit::Ok))
    })
}

/// The state file of held entry `id` that a hold cut short left in `spool` (not yet
/// moved into `hold/`), read as the spool reads state files; `None` when there is none.
/// Errors (said, with their status): a state file that is not one rsendmail wrote.
fn left_state(spool: &Spool, id: &str) -> Result<Option<spool::entry::State>, Sysexit> {
    let corrupt = |why: String| fail(Sysexit::DataErr, format!("{id}: state file sf{id}: {why}"));
    match spool::read_safely(&spool.sf_path(id)) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| corrupt("not text".into()))?;
            spool::entry::State::parse(&text).map(Some).map_err(corrupt)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(corrupt(crate::config::io_text(&e))),
    }
}

/// The text of `show`.
fn render(
    e: &spool::QueuedEntry,
    held: bool,
    busy: bool,
    mark: Option<&spool::Mark>,
    now: i64,
) -> String {
    use std::fmt::Write as _;
    let p = |t: &str| crate::text::escaped(t).into_owned();
    let env = &e.envelope;
    let mut o = String::new();
    let status = if held {
        "held (no queue run takes it until it is released)"
    } else if busy {
        "being delivered"
    } else if e.state.bounce.is_some() {
        "to be returned to its sender by the next attempt"
    } else {
        "queued"
    };
    let _ = writeln!(o, "Queue ID:       {}", env.id);
    let _ = writeln!(o, "Status:         {status}");
    // An action asked for during its delivery (`kf<ID>`): carried out when it ends.
    if let Some(m) = mark {
        let reason = match &m.request {
            Request::Bounce { reason, .. } => format!(" ({})", p(reason)),
            _ => String::new(),
        };
        // Not busy: the delivery it was asked for during ended without it (killed).
        let by_whom = if m.is_unreadable() {
            // Not knowing what was asked, a run holds the entry; a command removes the
            // mark and does what it was given.
            "as a hold by the queue run that takes the entry next; a command that acts on \
             the entry removes it and does what it was asked instead"
        } else if busy {
            "when its delivery ends"
        } else {
            "by the next queue run or command that takes the entry (its delivery ended \
             without it)"
        };
        // An unreadable mark has no time (taken as a hold): none is shown.
        let at = if m.at > 0 {
            format!(" at {}", when(m.at, now))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "Marked:         {} requested by {}{at}{reason}; carried out {by_whom}",
            m.what(),
            p(&m.by)
        );
    }
    if held {
        match &e.state.held_by {
            Some(h) => {
                let _ = writeln!(o, "Held by:        {}", holder_text(h));
            }
            None => {
                let _ = writeln!(
                    o,
                    "Held by:        not recorded (a hold made by an earlier version): only \
                     root or the spool's group may release it"
                );
            }
        }
    }
    let _ = writeln!(o, "Arrival:        {}", when(env.created, now));
    // A delivery report the mail system made: its entry records MAILER-DAEMON and the
    // uid of the delivery that queued it (a queue run, `bounce`, a user's background
    // delivery, which also takes other users' entries); said as that, with whose it is:
    // the owner of the entry it reports on (`Envelope::owner`), not that run's.
    let report = env.report.is_some() && env.user == crate::dsn::REPORT_USER;
    if report {
        let _ = writeln!(
            o,
            "Submitted by:   {} (a delivery report, queued by a delivery run as {})",
            crate::dsn::REPORT_USER,
            uid_text(env.uid)
        );
        let owner = match env.owner() {
            Some(u) => format!("{} (the owner of the entry it reports on)", uid_text(u)),
            None => "no user (a report queued by an earlier version): root and the \
                     spool's group act on it"
                .to_string(),
        };
        let _ = writeln!(o, "Owner:          {owner}");
    } else {
        let _ = writeln!(o, "Submitted by:   {} (uid {})", p(&env.user), env.uid);
    }
    let sender = if env.sender.is_empty() && report {
        format!("{} (<>)", crate::dsn::REPORT_USER)
    } else if env.sender.is_empty() {
        "<>".to_string()
    } else {
        p(&env.sender)
    };
    let _ = writeln!(o, "Sender:         {sender}");
    let _ = writeln!(o, "Delivery mode:  {}", env.mode);
    let _ = writeln!(
        o,
        "Size:           {} bytes (body {})",
        e.size.saturating_sub(e.data_offset),
        e.body_size()
    );
    let _ = writeln!(o, "Attempts:       {}", e.state.attempts);
    if let Some(t) = e.state.last_attempt {
        let _ = writeln!(o, "Last attempt:   {}", when(t, now));
    }
    let next = if held {
        "none while held".to_string()
    } else {
        match e.state.next_attempt {
            Some(t) if t > now => when(t, now),
            _ => "at the next queue run (due now)".to_string(),
        }
    };
    let _ = writeln!(o, "Next attempt:   {next}");
    if let Some(t) = e.state.local_next_attempt.filter(|_| !held) {
        let _ = writeln!(o, "Local retry:    {}", when(t, now));
    }
    if let Some(r) = &e.state.reason {
        let _ = writeln!(o, "Reason:         {}", p(r));
    }
    if let Some(b) = &e.state.bounce {
        let _ = writeln!(o, "Return reason:  {}", p(b));
        // Who asked, as `bounce` said it and the report will.
        let by = e
            .state
            .bounce_by
            .as_deref()
            .unwrap_or(spool::entry::BY_ADMINISTRATOR);
        let _ = writeln!(o, "Returned:       {}", p(by));
    }
    // A delivery report: what it reports, and for an entry `bounce` returned, who
    // asked (the original is gone).
    if let Some(kind) = &env.report {
        let of = env
            .report_of
            .as_deref()
            .and_then(|k| k.split(' ').next())
            .map(|id| format!(" of {}", p(id)))
            .unwrap_or_default();
        let _ = writeln!(o, "Report:         {}{of}", p(kind));
        if let Some(by) = &env.returned_by {
            let _ = writeln!(o, "Returned:       {}", p(by));
        }
    }
    let _ = writeln!(o, "Recipients:");
    for (i, r) in env.recipients.iter().enumerate() {
        let st = e.state.of(i);
        let why = e
            .state
            .recipients
            .iter()
            .rev()
            .find(|(idx, _, _)| *idx == i)
            .and_then(|(_, _, w)| w.as_deref());
        // A recipient a delivery expanded (its `.forward`, an alias or an `:include:`
        // met at delivery) got nothing itself: its targets, listed after it, are
        // what is delivered or still waits.
        let word = if st == spool::entry::RcptState::Delivered && was_expanded(env, i, why) {
            "expanded"
        } else {
            st.word()
        };
        let _ = write!(o, "  {}: {word}", p(&r.shown()));
        // The reply whole: each line of a multi-line one on a line of its own, as the
        // server sent it (as many as the record kept).
        for (n, line) in e.state.reply_of(i).into_iter().enumerate() {
            if n == 0 {
                let _ = write!(o, ": {}", p(line));
            } else {
                let _ = write!(o, "\n      {}", p(line));
            }
        }
        o.push('\n');
    }
    let _ = writeln!(o, "Header:");
    let mut head = vec![0u8; usize::try_from(env.header_bytes.min(1 << 20)).unwrap_or(0)];
    use std::os::unix::fs::FileExt;
    let n = e.file.read_at(&mut head, e.data_offset).unwrap_or(0);
    head.truncate(n);
    for line in head.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // Each octet that is not UTF-8 and each unsafe character in octal, as mailq.
        let mut shown = String::new();
        for chunk in line.utf8_chunks() {
            // A folded line's tab as a blank, as the listing aligns it.
            shown.push_str(&crate::text::escaped(&chunk.valid().replace('\t', " ")));
            for b in chunk.invalid() {
                let _ = write!(shown, "\\{b:03o}");
            }
        }
        let _ = writeln!(o, "  {shown}");
    }
    o.truncate(o.trim_end().len());
    o
}

/// Whether recipient `i` of `env`, recorded delivered with reply `why`, was expanded at
/// delivery rather than delivered: its reply says so, or a later recipient is a target
/// expanded from it (the reply's text is not kept when the disk was full).
fn was_expanded(env: &spool::entry::Envelope, i: usize, why: Option<&str>) -> bool {
    if why.is_some_and(|w| w.starts_with("250 2.0.0 expanded by ")) {
        return true;
    }
    let Some(r) = env.recipients.get(i) else {
        return false;
    };
    env.recipients
        .iter()
        .skip(i.saturating_add(1))
        .any(|t| t.expanded_from.as_deref() == Some(r.address.as_str()))
}

/// Remove an entry whose lock `lock` holds: `qf` first, then `sf` and `jf` (as a
/// delivery removes one), then the directory is synced.
fn remove(sp: &Spool, id: &str, lock: &File) -> Done {
    unlink_entry(sp, id, lock)?;
    sync_after_removal(sp);
    Ok(())
}

/// Sync directory `sp` after removals, a failure logged (the entries are gone from it
/// for every process that looks).
fn sync_after_removal(sp: &Spool) {
    if let Err(e) = spool::sync_dir(&sp.dir) {
        log::error!(
            "cannot sync {} after removing entries: {}",
            sp.dir.display(),
            crate::config::io_text(&e)
        );
    }
}

/// [`remove`] without the sync of the directory: `delete` of many entries syncs each
/// directory once at its end ([`sync_after_removal`]), so that a selection leaves a
/// run's reach at the pace of unlinks, not of one sync an entry.
fn unlink_entry(sp: &Spool, id: &str, _lock: &File) -> Done {
    let qf = sp.qf_path(id);
    if let Err(e) = fs::remove_file(&qf) {
        return Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: cannot remove {}: {}{}",
                qf.display(),
                crate::config::io_text(&e),
                room_advice(&e, &sp.dir)
            ),
        ));
    }
    let _ = fs::remove_file(sp.sf_path(id));
    let _ = fs::remove_file(sp.jf_path(id));
    let _ = fs::remove_file(sp.kf_path(id));
    remove_stale_mark(sp, id);
    Ok(())
}

/// A held entry's mark, made beside it in the spool while another command held its
/// lock for a moment (a live entry's mark is carried out by the next holder of its
/// lock; a held entry never carries one out): removed with the entry, or with its hold.
/// `sp` is a spool's `hold/` ([`Spool::hold_of`]); nothing is done for another.
fn remove_stale_mark(sp: &Spool, id: &str) {
    if let Some(top) = &sp.hold_of {
        let _ = fs::remove_file(top.join(format!("kf{id}")));
    }
}

/// Remove an entry whose queue file is not a regular file (`kind`): the name itself is
/// unlinked (a symbolic link goes, what it points to is untouched), then its state file
/// when that is there, also unlinked.
fn unlink_odd(sp: &Spool, id: &str, kind: &str) -> Done {
    let qf = sp.qf_path(id);
    let gone = if kind == "a directory" {
        fs::remove_dir(&qf)
    } else {
        fs::remove_file(&qf)
    };
    if let Err(e) = gone {
        return Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: cannot remove {} ({kind}): {}{}",
                qf.display(),
                crate::config::io_text(&e),
                room_advice(&e, &sp.dir)
            ),
        ));
    }
    let _ = fs::remove_file(sp.sf_path(id));
    let _ = fs::remove_file(sp.jf_path(id));
    let _ = fs::remove_file(sp.kf_path(id));
    remove_stale_mark(sp, id);
    let _ = spool::sync_dir(&sp.dir);
    Ok(())
}

/// The IDs of `--all` or `--recipient SUBSTR`: the entries (queued and held) whose open
/// recipients (any, for `--all`) hold `substr`, ignoring case, and how many entries
/// `--all` left out as not the caller's. `--all` takes the entries the caller may act
/// on; `--recipient` also takes the other users' entries that match, which are refused
/// one by one as their IDs would be (77: `mailq` shows them to her, so a match of hers
/// is not said to be none). Under restrictmailq the other users' entries are not seen:
/// neither taken nor counted.
fn matching(
    spool: &Spool,
    who: &Caller,
    substr: Option<&str>,
) -> Result<(Vec<String>, usize), Fatal> {
    let mut out = Vec::new();
    let mut others = 0usize;
    for sp in [spool.clone(), spool.held()] {
        let ids = match sp.ids() {
            Ok(ids) => ids,
            Err(_) if !sp.dir.exists() => continue,
            Err(f) => return Err(f),
        };
        for id in ids {
            // Root's or the group's `--all` takes every entry: none is read.
            if who.any && substr.is_none() {
                out.push(id);
                continue;
            }
            let e = sp.read_entry(&id).ok();
            let hers = who.may_act_on(e.as_ref().and_then(|e| e.envelope.owner()));
            if !hers && (who.private || substr.is_none()) {
                if !who.private {
                    others = others.saturating_add(1);
                }
                continue;
            }
            let hit = match (substr, &e) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(n), Some(e)) => e.envelope.recipients.iter().enumerate().any(|(i, r)| {
                    !e.state.of(i).is_final() && crate::selection::address_contains(&r.address, n)
                }),
            };
            if hit {
                out.push(id);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok((out, others))
}

/// What `delete --dry-run` prints for an entry it would delete: its ID, `(held)` when
/// it is, then its sender and its open recipients (`ID: would be deleted: from
/// <alice@example.org> to bob@example.org, carol@example.org`), or why it cannot be
/// read (a queue file that is not a regular file is never opened).
fn would_delete(sp: &Spool, id: &str, held: bool) -> String {
    let p = |t: &str| crate::text::escaped(t).into_owned();
    let held = if held { " (held)" } else { "" };
    if let Some(kind) = odd_file(sp, id) {
        return format!("{id}: would be deleted{held}: its queue file is {kind}");
    }
    match sp.read_entry(id) {
        Ok(e) => {
            let open: Vec<String> = e
                .envelope
                .recipients
                .iter()
                .enumerate()
                .filter(|(i, _)| !e.state.of(*i).is_final())
                .map(|(_, r)| p(&r.address))
                .collect();
            let to = if open.is_empty() {
                "no recipient left to deliver".to_string()
            } else {
                format!("to {}", open.join(", "))
            };
            format!(
                "{id}: would be deleted{held}: from <{}> {to}",
                p(&e.envelope.sender)
            )
        }
        Err(err) => format!("{id}: would be deleted{held}: its queue file cannot be read ({err})"),
    }
}

/// `delete ID... | --all | --recipient SUBSTR` (`postsuper -d`): the entry and its
/// index lines go. Every entry not being delivered is deleted at once; those being
/// delivered, never cut, are marked for deletion ([`Spool::request_deletion`]: their
/// delivery sends nothing more of them and removes them when it lets go of them), then
/// waited for all together for a moment ([`MARK_WAIT`]), each deleted here as soon as
/// its delivery lets go of it, and those still locked then left marked (said, 0); a
/// held entry another command holds is left as it is (75). A queue run that selected an
/// entry deleted meanwhile finds it gone when it comes to lock it, and sends nothing.
/// With `dry_run`, each entry the same selection takes is printed ([`would_delete`]),
/// with the same refusals and exit status, and nothing is deleted.
pub fn delete(
    ctx: &Context,
    ids: &[String],
    all: bool,
    rcpt: Option<&str>,
    dry_run: bool,
) -> Sysexit {
    // Usage errors, said before the spool is looked at, and never logged ([`usage`]).
    if ids.is_empty() && !all && rcpt.is_none() {
        crate::errln!("rsendmail-admin delete: give IDs, --all or --recipient SUBSTR");
        return Sysexit::Usage;
    }
    // An empty pattern is in every address: a script's empty variable would silently
    // become `--all`, which is its own, explicit flag.
    if rcpt.is_some_and(|r| r.trim().is_empty()) {
        crate::errln!(
            "rsendmail-admin delete: --recipient needs a SUBSTR that is not empty or blanks \
             alone (use --all for every entry)"
        );
        return Sysexit::Usage;
    }
    // A pattern of punctuation and spaces alone (`@`, `.`, `<>`, `-`) is in (nearly)
    // every address: it names no recipient, and would delete like `--all`.
    if let Some(r) = rcpt
        && !r.chars().any(char::is_alphanumeric)
    {
        crate::errln!(
            "rsendmail-admin delete: --recipient \"{}\" has no letter or digit, so it names no \
             recipient (it is in nearly every address); give part of a name or domain, or \
             use --all for every entry",
            crate::text::argument_shown(r)
        );
        return Sysexit::Usage;
    }
    run(ctx, Use::Writes, |s, who| {
        let mut others = 0usize;
        let ids = if all || rcpt.is_some() {
            let found;
            (found, others) = matching(&s.spool, who, rcpt)?;
            if found.is_empty() {
                // The pattern shown back as every program shows text from outside, so
                // that an invisible character in it can be seen; a long one cut, with
                // its length.
                match rcpt {
                    Some(r) => crate::outln!(
                        "no entries matched: no recipient contains \"{}\"",
                        crate::text::argument_shown(r)
                    ),
                    None if others > 0 => {
                        crate::outln!("no entries matched: {}", others_text(others, &who.login))
                    }
                    None => crate::outln!("no entries matched"),
                }
            }
            found
        } else {
            ids.to_vec()
        };
        // IDs of a listing: one finished since is passed over, as `postsuper -d ALL`
        // passes over it; an ID given that names no entry is an error.
        let listed = all || rcpt.is_some();
        // A selection's count: deleted, and gone (delivered or removed) while waited for.
        // Counted by both steps of each_locked, hence cells.
        let (from_spool, from_held) = (std::cell::Cell::new(false), std::cell::Cell::new(false));
        let (would, deleted, gone) = (
            std::cell::Cell::new(0usize),
            std::cell::Cell::new(0usize),
            std::cell::Cell::new(0usize),
        );
        // Entries marked that their delivery ended with: delivered to every recipient
        // before the mark took effect, and deleted after some were delivered.
        let (sent_first, part_sent) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
        // The marks, open: the delivery that honours one adds to it what it had sent
        // (`DeletionRequest::sent`), read here after the entry and its mark are gone.
        // Those this command made, and those an earlier request left (after a crash).
        let marks = std::cell::RefCell::new(std::collections::BTreeMap::<String, fs::File>::new());
        let ours = std::cell::RefCell::new(std::collections::BTreeSet::<String>::new());
        let bump = |c: &std::cell::Cell<usize>| c.set(c.get().saturating_add(1));
        // The entries being delivered are marked (`kf<ID>`, made durable) at once: their
        // delivery sends nothing more of them and removes them when it lets go of them.
        // Then they are waited for a moment (a queue run's brief look at an entry ends
        // in that time), each deleted here when it is let go of; those still held are
        // left to their delivery, marked.
        let marked = std::cell::RefCell::new(std::collections::BTreeSet::<String>::new());
        let mut mark = |id: &str, sp: &Spool, what: &(Spool, bool)| -> Done {
            // A held entry is never delivered: its lock is another command's, for a
            // moment, and is waited for.
            if what.1 {
                return Ok(());
            }
            if let Marked::Kept(f) | Marked::CarriedOut(f) =
                mark_busy(sp, who, id, Request::Delete)?
            {
                marked.borrow_mut().insert(id.to_string());
                ours.borrow_mut().insert(id.to_string());
                if let Some(f) = f {
                    marks.borrow_mut().entry(id.to_string()).or_insert(f);
                }
            }
            Ok(())
        };
        let mut left_marked = |id: &str, wait: Duration, what: &(Spool, bool)| -> Done {
            if what.1 {
                return left_being_delivered(id, wait);
            }
            crate::outln!(
                "{id}: being delivered: marked for deletion; it is deleted as soon as its \
                 delivery ends, and nothing more of it is sent (its delivery logs what of \
                 it was sent)"
            );
            Ok(())
        };
        let prepare = |id: &str| -> Prepared<(Spool, bool)> {
            if !listed
                && matches!(locate(&s.spool, id), Ok(None))
                && let Some(aside) = set_aside(&s.spool, id)
            {
                // Its queue file cannot be read: whose it is is unknown.
                if !who.any {
                    return Err(fail(
                        Sysexit::NoPerm,
                        format!(
                            "{id}: {}, so whose entry it is is unknown: only root or \
                             the spool's group may delete it",
                            set_aside_text(&s.spool)
                        ),
                    ));
                }
                if dry_run {
                    crate::outln!("{id}: would be deleted: {}", set_aside_text(&s.spool));
                    bump(&would);
                    return Ok(None);
                }
                // No run ever takes it: nothing to lock. Unlinked, never followed.
                unlink_odd(&aside, id, odd_file(&aside, id).unwrap_or("damaged"))?;
                crate::outln!("{id}: deleted (it was {})", set_aside_text(&s.spool));
                bump(&deleted);
                logged(who, id, "deleted (set aside as damaged)");
                return Ok(None);
            }
            let Some((sp, held)) = find_listed(&s.spool, who, id, listed)? else {
                bump(&gone);
                return Ok(None);
            };
            if held {
                may_clear_hold(&s.spool, who, id, "delete")?;
            }
            if dry_run {
                crate::outln!("{}", would_delete(&sp, id, held));
                bump(&would);
                return Ok(None);
            }
            if let Some(kind) = odd_file(&sp, id) {
                // Nothing to lock: no run ever delivers it. Unlinked, never followed.
                unlink_odd(&sp, id, kind)?;
                from_spool.set(from_spool.get() || !held);
                crate::outln!(
                    "{id}: deleted (its queue file was {kind}, removed without following it)"
                );
                bump(&deleted);
                logged(who, id, &format!("deleted (its queue file was {kind})"));
                return Ok(None);
            }
            // Marked by an earlier `delete`: taking its lock removes it.
            if sp
                .read_mark(id)
                .is_some_and(|m| m.request == Request::Delete)
            {
                marked.borrow_mut().insert(id.to_string());
                if let Ok(f) = fs::File::open(sp.kf_path(id)) {
                    marks.borrow_mut().insert(id.to_string(), f);
                }
            }
            Ok(Some((sp.clone(), (sp, held))))
        };
        // A selection's entries refused to this caller (whose hold she may not end),
        // each said on stderr, counted in the selection's line.
        let refused = std::cell::Cell::new(0usize);
        let (status, busy) = each_locked_held(
            &ids,
            MARK_WAIT,
            |id| {
                let r = prepare(id);
                if listed && matches!(r, Err(Sysexit::NoPerm)) {
                    bump(&refused);
                }
                r
            },
            |id, (sp, held), lock| match lock {
                Some(lock) => {
                    delete_locked(&sp, id, &lock, who)?;
                    marked.borrow_mut().remove(id);
                    from_spool.set(from_spool.get() || !held);
                    from_held.set(from_held.get() || held);
                    bump(&deleted);
                    Ok(())
                }
                // Marked, and its delivery ended meanwhile: removed by it (as asked, or
                // delivered to the last recipient). A mark left by a crash goes.
                None if marked.borrow_mut().remove(id) => {
                    let _ = fs::remove_file(sp.kf_path(id));
                    let kept = marks.borrow_mut().remove(id);
                    let read = kept.is_some();
                    let asked = kept
                        .map(|mut f| Spool::read_deletion_request(&mut f))
                        .unwrap_or_default();
                    match asked.sent {
                        // No holder carried the mark out (every one says so in it): the
                        // delivery ended first and removed the entry (the mail went), as
                        // an unmarked one.
                        None if read && listed => {
                            bump(&gone);
                        }
                        None if read => return Err(no_longer_queued(id, &s.spool)),
                        Some((k, m)) if m > 0 && k >= m => {
                            crate::outln!("{id}: delivered before the deletion took effect");
                            bump(&sent_first);
                        }
                        Some((k, m)) if k > 0 => {
                            crate::outln!(
                                "{id}: deleted; {k} of {m} recipients had been delivered"
                            );
                            bump(&part_sent);
                        }
                        // Removed unsent by the holder of its lock (this command, or a
                        // run), its deletion asked for by an earlier request that no
                        // delivery honoured (one that crashed).
                        _ if !ours.borrow().contains(id) && !asked.by.is_empty() => {
                            crate::outln!(
                                "{id}: deleted (its deletion had been asked for by {} at {})",
                                asked.by,
                                crate::clock::ctime16(&crate::clock::local(asked.at))
                            );
                            bump(&deleted);
                        }
                        _ => {
                            crate::outln!("{id}: deleted unsent");
                            bump(&deleted);
                        }
                    }
                    Ok(())
                }
                None if listed => {
                    // Held meanwhile by another command: still in the selection (which
                    // takes held entries too), deleted from `hold/` as one found there.
                    if let Ok(Some((hsp, true))) = locate(&s.spool, id) {
                        may_clear_hold(&s.spool, who, id, "delete").inspect_err(|_| {
                            bump(&refused);
                        })?;
                        match try_lock(&hsp, id, LOCK_WAIT)? {
                            Locked::File(lock) => {
                                delete_locked(&hsp, id, &lock, who)?;
                                from_held.set(true);
                                bump(&deleted);
                                return Ok(());
                            }
                            Locked::Busy => return left_being_delivered(id, LOCK_WAIT),
                            Locked::Gone => {}
                        }
                    }
                    bump(&gone);
                    Ok(())
                }
                None => Err(no_longer_queued(id, &s.spool)),
            },
            || Ok(()),
            WhenHeld {
                first: &mut mark,
                last: &mut left_marked,
            },
        );
        let marked = marked.into_inner();
        let busy: Vec<String> = busy.into_iter().filter(|id| !marked.contains(id)).collect();
        let (would, deleted, gone, refused) =
            (would.get(), deleted.get(), gone.get(), refused.get());
        if from_held.get() {
            sync_after_removal(&s.spool.held());
        }
        if from_spool.get() {
            sync_after_removal(&s.spool);
            drop_index_lines(&s.spool);
        }
        // A selection says what became of it, as `postsuper -d ALL` prints its count:
        // also when every entry it took was delivered while a run held it.
        if listed && !dry_run && !ids.is_empty() {
            let n = |k: usize| if k == 1 { "entry" } else { "entries" };
            let mut line = format!("{deleted} {} deleted", n(deleted));
            let (part_sent, sent_first) = (part_sent.get(), sent_first.get());
            if part_sent > 0 {
                line.push_str(&format!(
                    "; {part_sent} {} deleted after part of {} recipients had been delivered",
                    n(part_sent),
                    if part_sent == 1 { "its" } else { "their" }
                ));
            }
            if sent_first > 0 {
                line.push_str(&format!(
                    "; {sent_first} {} delivered before the deletion took effect",
                    n(sent_first)
                ));
            }
            if !marked.is_empty() {
                let ids: Vec<&str> = marked.iter().map(String::as_str).collect();
                line.push_str(&format!(
                    "; {} {} being delivered, marked for deletion: {} ({} as soon as {} \
                     ended)",
                    marked.len(),
                    n(marked.len()),
                    ids.join(" "),
                    if marked.len() == 1 {
                        "it goes"
                    } else {
                        "they go"
                    },
                    if marked.len() == 1 {
                        "its delivery has"
                    } else {
                        "their deliveries have"
                    }
                ));
            }
            if !busy.is_empty() {
                // No time can be named for when a delivery ends: the lines above
                // give what the timeouts bound.
                line.push_str(&format!(
                    "; {} {} being delivered, left as {} (try again when {} ended)",
                    busy.len(),
                    n(busy.len()),
                    if busy.len() == 1 { "it is" } else { "they are" },
                    if busy.len() == 1 {
                        "its delivery has"
                    } else {
                        "their deliveries have"
                    }
                ));
            }
            if gone > 0 {
                line.push_str(&format!(
                    "; {gone} {} no longer queued (delivered or removed meanwhile)",
                    n(gone)
                ));
            }
            for note in left_out(refused, others, &who.login) {
                line.push_str(&format!("; {note}"));
            }
            crate::outln!("{line}");
        }
        // A selection says its count as the deletion does, its refusals too; IDs given
        // that would all be refused are said by their refusals alone.
        if dry_run && (listed || would > 0 || status == Sysexit::Ok) {
            crate::outln!(
                "dry run: {would} {} would be deleted{}; nothing was deleted",
                if would == 1 { "entry" } else { "entries" },
                left_out(refused, others, &who.login)
                    .iter()
                    .map(|note| format!(", {note}"))
                    .collect::<String>()
            );
        }
        Ok(status)
    })
}

/// What a selection's count line adds of the entries it did not take: those refused
/// ([`refused_text`]), then those not the caller's ([`others_text`]), each when there
/// are any.
fn left_out(refused: usize, others: usize, login: &str) -> Vec<String> {
    let mut notes = Vec::new();
    if refused > 0 {
        notes.push(refused_text(refused));
    }
    if others > 0 {
        notes.push(others_text(others, login));
    }
    notes
}

/// How a selection's line counts the entries refused to its caller, each said on
/// stderr: `1 entry refused (said above)`.
fn refused_text(refused: usize) -> String {
    format!(
        "{refused} {} refused (said above)",
        if refused == 1 { "entry" } else { "entries" }
    )
}

/// What a user's `--all` says of the entries it left out as not hers: `1 entry left,
/// not yours (the user "ann" may act only on the entries that user submitted)`.
fn others_text(others: usize, login: &str) -> String {
    format!(
        "{others} {} left, not yours ({} may act only on the entries that user submitted)",
        if others == 1 { "entry" } else { "entries" },
        crate::spool::safety::the_user(login)
    )
}

/// Remove entry `id` of `sp`, whose lock `lock` holds, and say so (stdout, the log);
/// its directory is synced by the caller, once for all ([`unlink_entry`]).
fn delete_locked(sp: &Spool, id: &str, lock: &File, who: &Caller) -> Done {
    unlink_entry(sp, id, lock)?;
    crate::outln!("{id}: deleted");
    logged(who, id, "deleted");
    Ok(())
}

/// An entry given by its ID found gone once looked at (when its lock was taken, or its
/// queue file read: delivered or removed meanwhile): said plainly as no longer queued,
/// with the status of an ID that names no entry (66, EX_NOINPUT), by every command in
/// the same words, so that one event has one message whenever it is seen.
/// One that another command moved meanwhile (into `hold/` or out of it) is not gone:
/// 75, said so, to be asked again.
fn no_longer_queued(id: &str, spool: &Spool) -> Sysexit {
    if let Ok(Some((_, held))) = locate(spool, id) {
        return moved_meanwhile(id, held);
    }
    fail(
        Sysexit::NoInput,
        format!(
            "{id}: {NO_LONGER_QUEUED} in {} (delivered or removed meanwhile)",
            spool.dir.display()
        ),
    )
}

/// How every command names an entry found gone once looked at ([`no_longer_queued`],
/// [`outlived`]), as `delete`'s count line counts them.
const NO_LONGER_QUEUED: &str = "no longer queued";

/// A held entry found gone from `hold/` once its lock was taken: deleted by another
/// command, or released and delivered meanwhile (no longer queued, 66, as
/// [`no_longer_queued`] says it), or queued again by another command's release
/// ([`no_longer_queued`]'s 75).
fn no_longer_held(id: &str, spool: &Spool) -> Sysexit {
    match locate(spool, id) {
        Ok(Some((_, held))) => moved_meanwhile(id, held),
        _ => fail(
            Sysexit::NoInput,
            format!(
                "{id}: {NO_LONGER_QUEUED} in {} (released and delivered, or removed, \
                 meanwhile)",
                spool.dir.display()
            ),
        ),
    }
}

/// An entry found moved into `hold/` (`held`) or out of it by another command once
/// its lock was taken: 75, to be asked again.
fn moved_meanwhile(id: &str, held: bool) -> Sysexit {
    let now = if held {
        "it is now held"
    } else {
        "it is now queued, not held"
    };
    fail(
        Sysexit::TempFail,
        format!("{id}: changed meanwhile by another command ({now}): try again"),
    )
}

/// Keep the first failure's status.
fn first_failure(status: &mut Sysexit, code: Sysexit) {
    if *status == Sysexit::Ok {
        *status = code;
    }
}

/// The index lines of entries no longer queued go (a rebuild from the entries).
fn drop_index_lines(spool: &Spool) {
    if index::present(spool)
        && let Err(e) = index::rebuild(spool)
    {
        // The old index keeps lines of entries that are gone, which readers skip (they
        // find no queue file); it misses no entry, so it stays whole, and the next
        // queue run that lists the spool rebuilds it.
        log::warn!(
            "cannot rebuild the queue index: {}",
            crate::config::io_text(&e)
        );
    }
}

/// Write `held_by` as the record of who holds entry `id` into its state file in `sp`
/// (the caller holds the entry's lock): the state as recorded, with that record. A
/// state that is then that of an entry never tried (no state file before the hold) is
/// left without a file, as it was. Nothing is written when the record is already so.
fn record_holder(s: &Setup, sp: &Spool, id: &str, held_by: Option<HeldBy>) -> std::io::Result<()> {
    let path = sp.sf_path(id);
    let mut st = match spool::read_safely(&path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| "not text".to_string())
            .and_then(|t| State::parse(&t))
            .map_err(|why| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("its state file sf{id}: {why}"),
                )
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(e),
    };
    if st.held_by == held_by {
        return Ok(());
    }
    st.held_by = held_by;
    if st == State::default() {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        return spool::sync_dir(&sp.dir);
    }
    let tmp = s
        .spool
        .tmp_dir()
        .join(format!("sf{id}.{}", std::process::id()));
    let written = spool::replace_safely(&tmp, &path, st.to_text().as_bytes(), s.spool.file_mode())
        .and_then(|()| spool::sync_dir(&sp.dir));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// A holder as messages name her: her login and uid.
/// A uid as `show` names it: `root (uid 0)`, `alice (uid 1000)`, or `uid 1234` when no
/// user has it.
fn uid_text(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", crate::text::escaped(&u.name)),
        _ => format!("uid {uid}"),
    }
}

fn holder_text(h: &HeldBy) -> String {
    format!("{} (uid {})", crate::text::escaped(&h.login), h.uid)
}

/// Who may release an entry `holder` held (module docs, "Rights"): she, root, the
/// spool's owner and the members of its group, each named once
/// (`the user "alice", root or a member of the spool's group rsendmail`).
fn may_release(spool: &Spool, holder: Option<&HeldBy>) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let md = fs::metadata(&spool.dir).ok();
    let login = |uid: u32| {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| crate::spool::safety::the_user(&u.name))
            .unwrap_or_else(|| format!("uid {uid}"))
    };
    let mut names: Vec<String> = Vec::new();
    if let Some(h) = holder.filter(|h| h.uid != 0) {
        names.push(crate::spool::safety::the_user(&crate::text::printable(
            &h.login,
        )));
    }
    names.push("root".into());
    if let Some(owner) = md.as_ref().map(|m| m.uid())
        && owner != 0
        && holder.is_none_or(|h| h.uid != owner)
    {
        names.push(format!("{} (the spool's owner)", login(owner)));
    }
    let group = md.map(|m| m.gid()).map(|gid| {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| format!("gid {gid}"))
    });
    names.push(match group {
        Some(g) => format!("a member of the spool's group {g}"),
        None => "a member of the spool's group".into(),
    });
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Whether `who` may end the hold of held entry `id` (`what`: `release`, or `retry`,
/// `bounce`, `delete`, which end it too): root, the spool's owner and its group may;
/// any other user only a hold she made herself ([`State::held_by`]), as a hold is the
/// administrator's quarantine (sendmail's `-Q`, Postfix's `postsuper -h`, which are
/// theirs alone). A hold with no record of who made it is theirs alone too. A refusal
/// names who held it and who may release it, and is 77 (EX_NOPERM).
fn may_clear_hold(spool: &Spool, who: &Caller, id: &str, what: &str) -> Done {
    if who.any {
        return Ok(());
    }
    let holder = spool.recorded_holder(id);
    if holder.as_ref().is_some_and(|h| h.uid == who.uid) {
        return Ok(());
    }
    let by = match &holder {
        Some(h) => format!(
            "held by {} (uid {})",
            crate::spool::safety::the_user(&crate::text::printable(&h.login)),
            h.uid
        ),
        None => {
            "held, and who held it is not recorded (a hold made by an earlier version)".to_string()
        }
    };
    let also = if what == "release" {
        String::new()
    } else {
        format!(" (or {what} it while it is held)")
    };
    Err(fail(
        Sysexit::NoPerm,
        format!(
            "{id}: permission denied: {by}: only {} may release it{also}",
            may_release(spool, holder.as_ref())
        ),
    ))
}

/// Hold one queued entry whose lock `lock` holds (`None`: it went away meanwhile, 66):
/// who holds it recorded in its state file ([`State::held_by`]), then moved into
/// `hold/`. A record that cannot be written (a full disk, a damaged state file) does
/// not stop the hold: the entry is held without it, which only root and the spool's
/// group may release, and the caller is told.
fn hold_locked(s: &Setup, who: &Caller, id: &str, lock: Option<File>) -> Done {
    let held = s.spool.held();
    let Some(_lock) = lock else {
        return Err(no_longer_queued(id, &s.spool));
    };
    // Recorded before the move, so that the record goes with the state file; one left
    // in a queued entry (the move failed) is never looked at, and the next hold writes
    // its own.
    if let Err(e) = record_holder(s, &s.spool, id, Some(who.as_holder())) {
        let msg = format!(
            "{id}: who holds it cannot be recorded ({}): once held, only {} may release it",
            crate::config::io_text(&e),
            may_release(&s.spool, None)
        );
        crate::errln!("rsendmail-admin: {msg}");
        if !crate::log::to_stderr() {
            log::warn!("{msg}");
        }
    }
    if let Err(e) = s.spool.move_entry(&held, id, false) {
        return Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: cannot move it into {}: {}{}",
                held.dir.display(),
                crate::config::io_text(&e),
                room_advice(&e, &s.spool.dir)
            ),
        ));
    }
    Ok(())
}

/// Release one held entry whose lock `lock` holds (`None`: it went away meanwhile, 66),
/// the caller's right to release it checked under that lock ([`may_clear_hold`]): the
/// entry moved back, its index lines added, then the record of who held it cleared.
fn release_locked(s: &Setup, who: &Caller, id: &str, lock: Option<File>) -> Done {
    let held = s.spool.held();
    let Some(_lock) = lock else {
        return Err(no_longer_held(id, &s.spool));
    };
    may_clear_hold(&s.spool, who, id, "release")?;
    // A hold asked for while another command held the entry's lock and held it: the
    // entry is held, so the mark is spent; left, the next run would hold it again.
    // A deletion or a return asked for so stays, for the next run to carry out.
    let _ = s.spool.withdraw_mark(id, |m| m.request == Request::Hold);
    // A hold cut short between its renames left the state in the spool: it stays.
    let sf_here = fs::symlink_metadata(held.sf_path(id)).is_ok();
    if !sf_here && fs::symlink_metadata(s.spool.sf_path(id)).is_ok() {
        log::info!("{id}: its state file was left in the spool; kept");
    }
    // Indexed after the move, with the index marked as missing it meanwhile.
    let moved = index::moved_in(&s.spool, id, || held.move_entry(&s.spool, id, true));
    if let Err(e) = moved {
        return Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: cannot move it back into {}: {}{}",
                s.spool.dir.display(),
                crate::config::io_text(&e),
                room_advice(&e, &s.spool.dir)
            ),
        ));
    }
    // Cleared after the move: one cut short leaves the entry held with its record (the
    // state moved first is found in the spool, as after a hold cut short), so that
    // whoever held it may still release it.
    if let Err(e) = record_holder(s, &s.spool, id, None) {
        // Never looked at once the entry is queued; the next hold writes its own.
        log::warn!(
            "{id}: the record of who held it cannot be cleared: {}",
            crate::config::io_text(&e)
        );
    }
    Ok(())
}

/// `hold ID...`: no queue run selects a held entry until it is released. An entry
/// being delivered, never cut, is marked to be held ([`Spool::request`]: its delivery
/// starts nothing more of it and holds it when it lets go of it), waited for a moment
/// ([`MARK_WAIT`]), and left marked (said, 0).
pub fn hold(ctx: &Context, ids: &[String]) -> Sysexit {
    run(ctx, Use::Writes, |s, who| {
        let mut any = false;
        let marked = std::cell::RefCell::new(std::collections::BTreeSet::<String>::new());
        // The marks made, open: a delivery that ended every recipient first says so in
        // its mark ([`Spool::mark_outlived`]).
        let kept = std::cell::RefCell::new(std::collections::BTreeMap::<String, File>::new());
        // Those held here at once, their delivery having just let go of them.
        let carried = std::cell::RefCell::new(std::collections::BTreeSet::<String>::new());
        // Those already marked to be held by another whose mark stays (who made it).
        let already = std::cell::RefCell::new(std::collections::BTreeMap::<String, String>::new());
        let mut mark = |id: &str, sp: &Spool, taken: &Option<HeldBy>| -> Done {
            // A held entry is never delivered: its lock is another command's, for a
            // moment, and is waited for.
            if taken.is_some() {
                return Ok(());
            }
            match mark_busy(sp, who, id, Request::Hold)? {
                Marked::Kept(f) => {
                    marked.borrow_mut().insert(id.to_string());
                    if let Some(f) = f {
                        kept.borrow_mut().insert(id.to_string(), f);
                    }
                }
                Marked::CarriedOut(_) => {
                    carried.borrow_mut().insert(id.to_string());
                }
                Marked::Ended => {}
                Marked::Already(by) => {
                    already.borrow_mut().insert(id.to_string(), by);
                }
            }
            Ok(())
        };
        let mut left_marked = |id: &str, wait: Duration, taken: &Option<HeldBy>| -> Done {
            if taken.is_some() {
                return left_being_delivered(id, wait);
            }
            if let Some(by) = already.borrow().get(id) {
                crate::outln!(
                    "{id}: being delivered: already marked to be held by {}; it is held as \
                     soon as its delivery ends",
                    crate::text::printable(by)
                );
                return Ok(());
            }
            crate::outln!(
                "{id}: being delivered: marked to be held; it is held as soon as its \
                 delivery ends, and no further transaction of it starts (unless the one \
                 under way ends every recipient: the log says which)"
            );
            Ok(())
        };
        let (status, _) = each_locked_held(
            ids,
            MARK_WAIT,
            |id| {
                let (_, held) = find(&s.spool, who, id)?;
                if held {
                    // A hold cut short left the state in the spool: take it along (never
                    // over a state already there).
                    let h = s.spool.held();
                    if fs::symlink_metadata(h.sf_path(id)).is_err() {
                        let _ = fs::rename(s.spool.sf_path(id), h.sf_path(id))
                            .and_then(|()| spool::sync_dir(&h.dir));
                    }
                    // A user's own hold is no quarantine: root's or the group's hold
                    // of it takes the record, so that she can no longer end it.
                    if let Some(h) = s.spool.recorded_holder(id)
                        && who.any
                        && h.uid != who.uid
                        && !may_end_any_hold(&s.spool, h.uid)
                    {
                        return Ok(Some((s.spool.held(), Some(h))));
                    }
                    crate::outln!("{id}: already held");
                    return Ok(None);
                }
                if let Err(f) = s.spool.subdir(spool::HOLD) {
                    return Err(fail(f.code, format!("{id}: not held: {}", f.message)));
                }
                Ok(Some((s.spool.clone(), None)))
            },
            |id, taken, lock| {
                if let Some(from) = taken {
                    take_hold(s, who, id, &from, lock)?;
                    return Ok(());
                }
                // Marked, and held by its delivery when it ended (which removes the
                // mark), or by another command that held its lock for a moment (the
                // mark is still there, spent: removed).
                // Held meanwhile by another command, unmarked: already held.
                if lock.is_none() && matches!(locate(&s.spool, id), Ok(Some((_, true)))) {
                    if carried.borrow().contains(id) {
                        any = true;
                        crate::outln!("{id}: held");
                    } else if !marked.borrow().contains(id)
                        || s.spool
                            .withdraw_mark(id, |m| m.request == Request::Hold)
                            .unwrap_or(false)
                    {
                        crate::outln!("{id}: already held");
                    } else {
                        crate::outln!("{id}: held, as asked, by the process that had it");
                    }
                    return Ok(());
                }
                if lock.is_none()
                    && marked.borrow().contains(id)
                    && kept
                        .borrow_mut()
                        .get_mut(id)
                        .is_some_and(Spool::mark_outlived)
                {
                    return Err(outlived(id, "held"));
                }
                hold_locked(s, who, id, lock)?;
                any = true;
                crate::outln!("{id}: held");
                logged(who, id, "held");
                Ok(())
            },
            || Ok(()),
            WhenHeld {
                first: &mut mark,
                last: &mut left_marked,
            },
        );
        if any {
            drop_index_lines(&s.spool);
        }
        Ok(status)
    })
}

/// Whether user `uid` may end any hold of the spool's entries: root, the spool's owner
/// and the members of its group (by its primary group or the group's member list), as
/// [`Caller::any`] is for the caller.
fn may_end_any_hold(spool: &Spool, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if uid == 0 {
        return true;
    }
    let Ok(md) = fs::metadata(&spool.dir) else {
        return false;
    };
    if md.uid() == uid {
        return true;
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return false;
    };
    user.gid.as_raw() == md.gid()
        || nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(md.gid()))
            .ok()
            .flatten()
            .is_some_and(|g| g.mem.contains(&user.name))
}

/// Root's or the group's `hold` of held entry `id` that user `from` held herself
/// (under its lock `lock`; `None`: released or removed meanwhile, 66): the record of
/// who holds it becomes the caller's, so that only the caller, root and the group may
/// end it, and the line says so. Taken over only while the record still names `from`.
fn take_hold(s: &Setup, who: &Caller, id: &str, from: &HeldBy, lock: Option<File>) -> Done {
    let held = s.spool.held();
    let Some(_lock) = lock else {
        return Err(no_longer_held(id, &s.spool));
    };
    if s.spool.recorded_holder(id).as_ref() != Some(from) {
        crate::outln!("{id}: already held");
        return Ok(());
    }
    // Its state file is in `hold/`, or where a hold cut short left it.
    let sf_at = if fs::symlink_metadata(held.sf_path(id)).is_ok() {
        &held
    } else {
        &s.spool
    };
    if let Err(e) = record_holder(s, sf_at, id, Some(who.as_holder())) {
        return Err(fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: already held by {}, and the hold cannot be made yours ({}): she may \
                 still release it",
                holder_text(from),
                crate::config::io_text(&e)
            ),
        ));
    }
    let by = holder_text(&who.as_holder());
    crate::outln!(
        "{id}: already held by {}: now held by {by}; only {} may release it",
        holder_text(from),
        may_release(&s.spool, Some(&who.as_holder()))
    );
    logged(
        who,
        id,
        &format!("held (taken over from {}'s own hold)", holder_text(from)),
    );
    Ok(())
}

/// What [`mark_busy`] did.
enum Marked {
    /// The mark is in place, and open here when it could be opened: the delivery that
    /// carries it out or outlives it writes into it what it did
    /// ([`Spool::mark_outlived`]).
    Kept(Option<File>),
    /// Its delivery let go of the entry before it could see the mark, and the mark was
    /// carried out here at once, under the entry's lock, as its next holder would have
    /// (held, deleted, or the return recorded); the mark open as in [`Marked::Kept`].
    CarriedOut(Option<File>),
    /// Its delivery ended before the mark was in place, and the entry is gone (the
    /// delivery removed it: every recipient had its outcome): no mark is left.
    Ended,
    /// A hold asked for again by a user on the same hold another made (root, the
    /// spool's group: who made it, as the mark says): nothing to change, the mark left
    /// as it is; said as an entry already held is.
    Already(String),
}

/// Mark entry `id` of `sp`, which a delivery holds, for `request` ([`Spool::request`],
/// durable when this returns), logged; an error said, the entry left as it is. Between
/// two requests: a deletion pending stays, and any other request over it is refused
/// (69, said); otherwise the later request replaces the earlier, and the line says which
/// it replaced. A user never replaces a mark made by another (root, the spool's group):
/// refused, 77, naming who made it; the same hold asked for again is no change
/// ([`Marked::Already`]). All of it under the spool's marks lock
/// ([`Spool::lock_marks`]): a request made at the same moment by another command is
/// decided after this one, on the mark this one left.
///
/// The entry's lock is tried again once the mark is in place: free, its delivery let go
/// of it before it could see the mark, which is carried out here at once, as its next
/// holder would; the entry gone, its delivery removed it (the mark, withdrawn, came too
/// late: [`Marked::Ended`]). Either way no mark is left that nothing carries out.
fn mark_busy(sp: &Spool, who: &Caller, id: &str, request: Request) -> Result<Marked, Sysexit> {
    let by = format!("{} (uid {})", who.login, who.uid);
    let what = request.what();
    let delete_stays = |m: &spool::Mark| {
        fail(
            Sysexit::Unavailable,
            format!(
                "{id}: being delivered, and already marked for deletion by {}: it is deleted \
                 as soon as its delivery ends; not marked for {what}",
                crate::text::printable(&m.by)
            ),
        )
    };
    let marks = sp.lock_marks();
    if let Some(m) = sp.read_mark(id) {
        if m.request == Request::Delete && request != Request::Delete {
            return Err(delete_stays(&m));
        }
        // The same hold asked for again changes nothing: not refused, whoever made it.
        if request == Request::Hold && m.request == Request::Hold && !may_change(who, &m) {
            return Ok(Marked::Already(m.by));
        }
        may_change_mark(sp, who, id, &m)?;
    }
    let done = sp.request(&marks, id, &by, request.clone()).map_err(|e| {
        fail(
            Sysexit::from_io(&e),
            format!(
                "{id}: being delivered, and its {what} cannot be recorded ({}: {}); \
                 left as it is{}",
                sp.kf_path(id).display(),
                crate::config::io_text(&e),
                room_advice(&e, &sp.dir)
            ),
        )
    })?;
    if done.mark.request == Request::Delete && request != Request::Delete {
        return Err(delete_stays(&done.mark));
    }
    let kept = spool::open_safely(
        &sp.kf_path(id),
        fs::OpenOptions::new().read(true),
        spool::Kind::File,
    )
    .ok();
    match sp.lock_live(id, Duration::ZERO) {
        Ok(spool::LiveLock::Busy) | Err(_) => {}
        Ok(spool::LiveLock::Held(lock, _)) => {
            // Let go of by its delivery before it could see the mark: carried out here,
            // under the entry's lock and the marks lock still held, as its next holder
            // would.
            sp.carry_out_mark_locked(&marks, id);
            drop(lock);
            drop(marks);
            logged(
                who,
                id,
                &format!("{} (its delivery had just ended)", request_done(&done.mark)),
            );
            return Ok(Marked::CarriedOut(kept));
        }
        Ok(spool::LiveLock::Gone) => {
            // Removed by its delivery, which looked for a mark before this one was made.
            let _ = fs::remove_file(sp.kf_path(id)).and_then(|()| spool::sync_dir(&sp.dir));
            return Ok(Marked::Ended);
        }
    }
    drop(marks);
    if let Some(r) = done.replaced.filter(|r| r.what() != what || r.by != by) {
        crate::outln!(
            "{id}: being delivered: its pending {} asked for by {} is replaced by the \
             {what}",
            r.what(),
            crate::text::printable(&r.by)
        );
        logged(
            who,
            id,
            &format!("replaced the {} asked for by {}", r.what(), r.by),
        );
    }
    logged(
        who,
        id,
        &format!("marked for {} during its delivery", done.mark.what()),
    );
    Ok(Marked::Kept(kept))
}

/// What a `hold` or `bounce` (`what`: "held", "returned") says of entry `id` whose
/// delivery ended every recipient before its mark could take effect
/// ([`Spool::mark_outlived`]): the mail went; 66, as for an entry no longer queued
/// ([`no_longer_queued`]).
fn outlived(id: &str, what: &str) -> Sysexit {
    fail(
        Sysexit::NoInput,
        format!(
            "{id}: not {what}: {NO_LONGER_QUEUED}: its delivery ended first, every \
             recipient having had its outcome (the log says which)"
        ),
    )
}

/// How the log says that mark `m` was carried out by the command that made it.
fn request_done(m: &spool::Mark) -> String {
    format!("marked for {}, and carried out", m.what())
}

/// Whether `who` may replace or withdraw the pending mark `m` of entry `id` of `sp`:
/// root, the spool's owner and its group may; any other user only a mark she made
/// herself, never one of theirs (a mark not read as anyone's is theirs). Refused, 77,
/// naming who made it.
fn may_change_mark(sp: &Spool, who: &Caller, id: &str, m: &spool::Mark) -> Done {
    if may_change(who, m) {
        return Ok(());
    }
    let holder = m.holder();
    Err(fail(
        Sysexit::NoPerm,
        format!(
            "{id}: permission denied: being delivered, and marked for {} by {}: only {} may \
             change or withdraw it",
            m.what(),
            crate::text::printable(&m.by),
            may_release(sp, holder.as_ref())
        ),
    ))
}

/// Whether `who` may replace or withdraw mark `m` ([`may_change_mark`], which says why
/// not).
fn may_change(who: &Caller, m: &spool::Mark) -> bool {
    who.any || m.holder().is_some_and(|h| h.uid == who.uid)
}

/// `release` of entry `id` of `sp`, not held, that a delivery holds marked to be held
/// (`m`): the mark withdrawn when the caller may ([`may_change_mark`]), said. `true`
/// when the hold was carried out meanwhile (the entry is held: released as any hold).
fn withdraw_hold(sp: &Spool, who: &Caller, id: &str, m: &spool::Mark) -> Result<bool, Sysexit> {
    may_change_mark(sp, who, id, m)?;
    let withdrawn = sp
        .withdraw_mark(id, |cur| cur.request == Request::Hold && cur.by == m.by)
        .map_err(|e| {
            fail(
                Sysexit::from_io(&e),
                format!(
                    "{id}: being delivered, and its pending hold cannot be withdrawn ({}: {}); \
                 it is held as soon as its delivery ends{}",
                    sp.kf_path(id).display(),
                    crate::config::io_text(&e),
                    room_advice(&e, &sp.dir)
                ),
            )
        })?;
    // Withdrawn: the hold does not take effect, also when its delivery was carrying it
    // out (that holder puts the entry back, `Spool::hold_as_requested`). Else it took
    // effect (the entry is held: released as any hold), or the entry is gone.
    if !withdrawn && matches!(locate(sp, id), Ok(Some((_, true)))) {
        crate::outln!("{id}: the hold asked for during its delivery took effect as it ended");
        return Ok(true);
    }
    if withdrawn {
        crate::outln!(
            "{id}: being delivered: the hold asked for by {} during its delivery is \
             withdrawn; it stays queued",
            crate::text::printable(&m.by)
        );
        logged(
            who,
            id,
            &format!(
                "withdrew the hold asked for by {} during its delivery",
                m.by
            ),
        );
    } else {
        crate::outln!("{id}: not held");
    }
    Ok(false)
}

/// `release ID...`: held entries are queued again (their back-off as it was).
pub fn release(ctx: &Context, ids: &[String]) -> Sysexit {
    run(ctx, Use::Writes, |s, who| {
        let (status, _) = each_locked(
            ids,
            LOCK_WAIT,
            |id| {
                let (_, held) = find(&s.spool, who, id)?;
                if !held {
                    // Marked to be held while it is delivered: the mark withdrawn. No
                    // delivery holds it any more (one killed before it carried the mark
                    // out): the hold is carried out now, as the next queue run would
                    // carry it out, whoever asked for it, and released as any (or
                    // refused as any: a user's release of root's hold).
                    let mark = s.spool.read_mark(id).filter(|m| m.request == Request::Hold);
                    if mark.is_some()
                        && matches!(try_lock(&s.spool, id, Duration::ZERO)?, Locked::Gone)
                        && matches!(locate(&s.spool, id), Ok(Some((_, true))))
                    {
                        return Ok(Some((s.spool.held(), ())));
                    }
                    match mark {
                        Some(m) if withdraw_hold(&s.spool, who, id, &m)? => {
                            return Ok(Some((s.spool.held(), ())));
                        }
                        Some(_) => {}
                        None => crate::outln!("{id}: not held"),
                    }
                    return Ok(None);
                }
                Ok(Some((s.spool.held(), ())))
            },
            |id, (), lock| {
                release_locked(s, who, id, lock)?;
                crate::outln!("{id}: released");
                logged(who, id, "released");
                Ok(())
            },
        );
        Ok(status)
    })
}

/// Change the state of entry `id` of `sp` (`held`: in `hold/`) under its lock `lock`
/// (`None`: it went away meanwhile, 66): `change` gets the state as recorded. A held
/// entry is released after the change (under the same lock), so a `bounce` mark is in
/// place before any run can see it; the caller's right to release it (`what`: the
/// command) is checked under that lock ([`may_clear_hold`]), and the record of who held
/// it is cleared with the change. The lock is let go of before it returns. `sync`: the
/// directory of an entry not held is synced after its state file is replaced (without,
/// the caller syncs it once for all the entries it marks, before it acts on them).
#[allow(clippy::too_many_arguments)]
fn mark_locked(
    s: &Setup,
    who: &Caller,
    id: &str,
    (sp, held): (&Spool, bool),
    lock: Option<File>,
    what: &str,
    sync: bool,
    change: impl FnOnce(&mut spool::entry::State),
) -> Done {
    let Some(lock) = lock else {
        return Err(no_longer_queued(id, &s.spool));
    };
    if held {
        may_clear_hold(&s.spool, who, id, what)?;
    }
    let mut e = match sp.read_entry(id) {
        Ok(e) => e,
        Err(err) => {
            return Err(fail(
                Sysexit::DataErr,
                format!("{id}: cannot read queue file: {err}"),
            ));
        }
    };
    change(&mut e.state);
    e.state.held_by = None;
    let tmp = s
        .spool
        .tmp_dir()
        .join(format!("sf{id}.{}", std::process::id()));
    let written = spool::replace_safely(
        &tmp,
        &sp.sf_path(id),
        e.state.to_text().as_bytes(),
        s.spool.file_mode(),
    )
    .and_then(|()| {
        if sync || held {
            spool::sync_dir(&sp.dir)
        } else {
            Ok(())
        }
    });
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(
            Sysexit::from_io(&err),
            format!(
                "{id}: cannot record its state in {}: {}{}",
                sp.sf_path(id).display(),
                crate::config::io_text(&err),
                room_advice(&err, &sp.dir)
            ),
        ));
    }
    if held {
        let moved = index::moved_in(&s.spool, id, || sp.move_entry(&s.spool, id, true));
        if let Err(err) = moved {
            return Err(fail(
                Sysexit::from_io(&err),
                format!(
                    "{id}: cannot move it back into {}: {}{}",
                    s.spool.dir.display(),
                    crate::config::io_text(&err),
                    room_advice(&err, &s.spool.dir)
                ),
            ));
        }
    }
    drop(lock);
    Ok(())
}

/// Hand entry argument `line` (`ID[,ID...]`, committed) to delivery without waiting
/// for it, as a submission does: the periodic runner is woken through the wake-up
/// endpoint when one listens, else a background delivery is started (a detached
/// deliverer, `--entry LINE --background`). What was done, in words for the command's
/// line; a deliverer that cannot be started is logged, and the next queue run takes it.
fn hand_on(ctx: &Context, s: &app::Setup, line: &str) -> &'static str {
    if wake::poke(&s.spool.dir, line) {
        return "the queue runner was woken";
    }
    let mut cmd = super::deliverer(ctx, &["--entry", line, "--background", "--"]);
    use std::os::unix::process::CommandExt;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let refused = crate::spool::safety::refused_exec(&app::deliver_path());
    match refused.map(Err).unwrap_or_else(|| Ok(cmd.spawn())) {
        Err(why) => {
            log::warn!("{line}: cannot start a delivery: {why}; the next queue run takes it");
            "the next queue run takes it"
        }
        Ok(Ok(_)) => "a delivery was started",
        Ok(Err(e)) => {
            log::warn!(
                "{line}: cannot start a delivery: {e}{}; the next queue run takes it",
                app::refused_deliverer()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            );
            "the next queue run takes it"
        }
    }
}

/// `retry ID...`: due now (the back-off cleared, marked for the runner); the periodic
/// runner is woken through the wake-up endpoint as a submission wakes it, else a
/// background delivery is started, as a background submission does without a runner.
pub fn retry(ctx: &Context, ids: &[String]) -> Sysexit {
    run(ctx, Use::Writes, |s, who| {
        let (status, _) = each_locked(
            ids,
            LOCK_WAIT,
            |id| {
                let (sp, held) = find(&s.spool, who, id)?;
                Ok(Some((sp.clone(), (sp, held))))
            },
            |id, (sp, held), lock| {
                mark_locked(s, who, id, (&sp, held), lock, "retry", true, |st| {
                    st.next_attempt = None;
                    st.local_next_attempt = None;
                    st.retry = true;
                })?;
                let how = hand_on(ctx, s, id);
                if held {
                    crate::outln!("{id}: released, due now ({how})");
                } else {
                    crate::outln!("{id}: due now ({how})");
                }
                logged(
                    who,
                    id,
                    if held {
                        "released and retried"
                    } else {
                        "retried"
                    },
                );
                Ok(())
            },
        );
        Ok(status)
    })
}

/// `bounce ID... [--reason TEXT]`: every entry no delivery holds is marked to be
/// returned, and only then is each attempted by the deliverer (so that a queue run
/// reaching one meanwhile returns it too; those a delivery holds follow as they are
/// freed, [`each_locked_then`]), as a queue run attempts it (`--queued`: never an
/// interactive delivery, whose ErrorMode p would save a local sender's copy in the
/// caller's ~/dead.letter), whose attempt fails every open recipient with the reason
/// and queues the RFC 3464 report as for any failure; the entry goes only once its
/// report is queued. The report is not sent here: it is handed to the runner or a
/// background delivery ([`return_marked`]), as `postsuper` only changes the queue.
/// When the deliverer cannot run, the mark stays and the next queue run returns it.
pub fn bounce(ctx: &Context, ids: &[String], reason: Option<&str>) -> Sysexit {
    // An empty reason is a mistake (a variable left unset), not a request for none.
    if reason.is_some_and(|r| r.trim().is_empty()) {
        crate::errln!(
            "rsendmail-admin: bounce --reason: the reason is empty (leave --reason out for \
             the default)"
        );
        return Sysexit::Usage;
    }
    let given = reason;
    run(ctx, Use::Writes, |s, who| {
        // The report names who asked: the administrator (root), else the user by login,
        // as the entry's sender or not.
        let reason = match given {
            None if who.uid != 0 => NO_REASON.to_string(),
            r => reason_text(r),
        };
        let by = |owner: Option<u32>| {
            (who.uid != 0).then(|| match owner {
                Some(u) if u == who.uid => {
                    format!("at its sender's request (user {})", who.login)
                }
                _ => format!("at the request of user {}", who.login),
            })
        };
        // Every entry no delivery holds is marked first, and only then is each
        // returned (its report queued, which takes a moment): a queue run that reaches a
        // marked entry meanwhile returns it too, where it would deliver one still
        // waiting for its turn here. Then those a delivery held, each as it is freed.
        let marked: std::cell::RefCell<Vec<(String, Returned)>> = Default::default();
        let busy_phase = std::cell::Cell::new(false);
        let refused = crate::spool::safety::refused_exec(&app::deliver_path());
        let return_all = || return_marked(ctx, s, who, &marked.take(), refused.as_deref());
        // Those a delivery holds are marked to be returned when it lets go of them
        // ([`Spool::request`]), waited for a moment, and left marked (said, 0).
        let busy_marked = std::cell::RefCell::new(std::collections::BTreeSet::<String>::new());
        // Their marks, open: a delivery that ended every recipient first says so in its
        // mark ([`Spool::mark_outlived`]).
        let kept = std::cell::RefCell::new(std::collections::BTreeMap::<String, File>::new());
        let mut mark = |id: &str, sp: &Spool, what: &(Spool, bool, Returned, Option<u32>)| {
            // A held entry is never delivered: its lock is another command's, for a
            // moment, and is waited for.
            if what.1 {
                return Ok(());
            }
            let request = Request::Bounce {
                reason: reason.clone(),
                bounce_by: by(what.3),
            };
            // Carried out at once (its delivery having just let go of it): the return
            // is recorded, and the entry is returned here as one no delivery held.
            if let Marked::Kept(f) = mark_busy(sp, who, id, request)? {
                busy_marked.borrow_mut().insert(id.to_string());
                if let Some(f) = f {
                    kept.borrow_mut().insert(id.to_string(), f);
                }
            }
            Ok(())
        };
        let mut left_marked =
            |id: &str, wait: Duration, what: &(Spool, bool, Returned, Option<u32>)| -> Done {
                if what.1 {
                    return left_being_delivered(id, wait);
                }
                crate::outln!(
                    "{id}: being delivered: marked to be returned; the recipients it has \
                     not delivered are returned to its sender as soon as its delivery \
                     ends, and none is tried again"
                );
                Ok(())
            };
        let (status, _) = each_locked_held(
            ids,
            MARK_WAIT,
            |id| {
                let (sp, held) = find(&s.spool, who, id)?;
                // The null sender has no one to return to: the report goes to postmaster
                // (a double bounce), and the line says so.
                let entry = sp.read_entry(id).ok();
                let returned = match &entry {
                    Some(e) => Returned::of(&e.envelope, &e.state),
                    None => Returned::ToSender,
                };
                let owner = entry.and_then(|e| e.envelope.owner());
                Ok(Some((sp.clone(), (sp, held, returned, owner))))
            },
            |id, (sp, held, returned, owner), lock| {
                // Marked, and returned by its delivery when it ended.
                if lock.is_none() && busy_marked.borrow().contains(id) {
                    // Ended by its delivery, every recipient having had its outcome,
                    // before the mark could take effect: the mail went.
                    if kept
                        .borrow_mut()
                        .get_mut(id)
                        .is_some_and(Spool::mark_outlived)
                    {
                        return Err(outlived(id, "returned"));
                    }
                    match locate(&s.spool, id) {
                        // Held meanwhile by another command that held its lock for a
                        // moment: the mark is still there, and a held entry carries out
                        // none; or its delivery carried the mark out (the return is in
                        // its state) before another command held it: either way the
                        // first run after its release returns it (75). A hold asked for
                        // over it (the mark replaced, then carried out): not returned
                        // (75, try again).
                        Ok(Some((held_in, true))) => {
                            let bounce_stays = s
                                .spool
                                .read_mark(id)
                                .is_some_and(|m| matches!(m.request, Request::Bounce { .. }))
                                || held_in
                                    .read_entry(id)
                                    .is_ok_and(|e| e.state.bounce.is_some());
                            return Err(fail(
                                Sysexit::TempFail,
                                if bounce_stays {
                                    held_meanwhile(id)
                                } else {
                                    format!(
                                        "{id}: held meanwhile by another command: not \
                                         returned; `bounce` it again to return it"
                                    )
                                },
                            ));
                        }
                        // Queued again (held and released meanwhile): the return is in
                        // its state or its mark, carried out by its next attempt.
                        Ok(Some((_, false))) => return Err(moved_meanwhile(id, false)),
                        _ => {}
                    }
                    return returned_elsewhere(&s.spool, id, returned, "the process that had it");
                }
                let why = reason.clone();
                // Due now, as a return asked for during a delivery is recorded
                // (`Spool::carry_out_mark`): a run that reaches it before the deliverer
                // here does, or the first after a hold that took it meanwhile, returns it.
                mark_locked(s, who, id, (&sp, held), lock, "bounce", false, |st| {
                    st.bounce = Some(why);
                    st.bounce_by = by(owner);
                    st.next_attempt = None;
                    st.local_next_attempt = None;
                    st.retry = true;
                })?;
                logged(
                    who,
                    id,
                    &format!("marked to be returned to its sender now ({reason})"),
                );
                marked.borrow_mut().push((id.to_string(), returned));
                // One freed by its delivery while the others were waited for is
                // returned at once.
                if busy_phase.get() {
                    return return_all();
                }
                Ok(())
            },
            || {
                busy_phase.set(true);
                return_all()
            },
            WhenHeld {
                first: &mut mark,
                last: &mut left_marked,
            },
        );
        Ok(status)
    })
}

/// To whom [`bounce`] returns an entry.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Returned {
    /// Its sender.
    ToSender,
    /// Postmaster: it has the null sender (a double bounce).
    ToPostmaster,
    /// No one: the attempt makes no report, for this reason (every open recipient's
    /// NOTIFY asks for none; a report to postmaster that could not be delivered is
    /// discarded).
    NoOne(&'static str),
}

impl Returned {
    /// To whom the failures of the entry `env` in `state` go, as the deliverer decides
    /// it (`deliver::bounce`'s report to the sender, to postmaster, or none).
    fn of(env: &spool::entry::Envelope, state: &State) -> Returned {
        let open: Vec<&spool::entry::Recipient> = (0..env.recipients.len())
            .filter(|&i| !state.of(i).is_final())
            .filter_map(|i| env.recipients.get(i))
            .collect();
        if !open.is_empty()
            && open
                .iter()
                .all(|r| !crate::dsn::wanted(r, crate::dsn::Kind::Failure))
        {
            Returned::NoOne("its recipients' NOTIFY asks for none")
        } else if env.sender.is_empty() && env.report.as_deref() == Some("double") {
            Returned::NoOne(
                "it is a report to postmaster that could not be delivered, and is discarded",
            )
        } else if env.sender.is_empty() {
            Returned::ToPostmaster
        } else {
            Returned::ToSender
        }
    }

    /// `bounce`'s line for entry `id`: its reports queued (`reports`, their IDs), each
    /// handed to delivery (`how`); none named when another delivery returned it, or when
    /// no report is made.
    fn line(self, id: &str, reports: &[(String, &str)]) -> String {
        match (self, reports.is_empty()) {
            (Returned::NoOne(why), true) => {
                format!("{id}: returned; no report was made: {why}")
            }
            (Returned::ToSender, true) => format!("{id}: returned to its sender"),
            (Returned::ToPostmaster, true) => {
                format!("{id}: returned: it has no sender (<>), its report goes to postmaster")
            }
            (Returned::ToSender | Returned::NoOne(_), false) => {
                format!("{id}: returned to its sender; {}", queued_as(reports, ""))
            }
            (Returned::ToPostmaster, false) => format!(
                "{id}: returned: it has no sender (<>); {}",
                queued_as(reports, " for postmaster")
            ),
        }
    }
}

/// `its report is queued[ for postmaster] as RID (HOW)`: the reports [`bounce`] queued
/// and how each was handed to delivery, the way said once when it is the same for all
/// (`its reports are queued as A, B (HOW)`), else after each (`A (HOW), B (HOW2)`).
fn queued_as(reports: &[(String, &str)], whom: &str) -> String {
    let its = if reports.len() > 1 {
        "its reports are"
    } else {
        "its report is"
    };
    let one_way = reports
        .windows(2)
        .all(|w| w.first().map(|r| r.1) == w.get(1).map(|r| r.1));
    let list = if one_way {
        let ids: Vec<&str> = reports.iter().map(|(r, _)| r.as_str()).collect();
        let how = reports.first().map_or("", |r| r.1);
        format!("{} ({how})", ids.join(", "))
    } else {
        let each: Vec<String> = reports
            .iter()
            .map(|(r, how)| format!("{r} ({how})"))
            .collect();
        each.join(", ")
    };
    format!("{its} queued{whom} as {list}")
}

/// The most entries one deliverer run of [`return_marked`] is given: their IDs make
/// one argument, which the kernel bounds (128 KiB).
const RETURN_BATCH: usize = 2048;

/// [`bounce`]'s second step for the entries `entries`, marked to be returned: one
/// deliverer run on them all (`refused`: why it may not be run), whose attempt at each
/// queues its report and removes it; the reports are then handed to delivery together
/// without waiting for them ([`hand_reports_on`]: a relay that is slow or never greets
/// keeps no one waiting), and what came of each entry said, in their order.
fn return_marked(
    ctx: &Context,
    s: &app::Setup,
    who: &Caller,
    entries: &[(String, Returned)],
    refused: Option<&str>,
) -> Done {
    let mut status = Sysexit::Ok;
    for batch in entries.chunks(RETURN_BATCH) {
        if let Err(code) = return_batch(ctx, s, who, batch, refused) {
            first_failure(&mut status, code);
        }
    }
    match status {
        Sysexit::Ok => Ok(()),
        code => Err(code),
    }
}

/// What the deliverer said of one entry given to it (`--entry ID,... --queued`).
enum Attempted {
    /// Its attempt ended (`done ID`), these reports queued before it.
    Done(Vec<String>),
    /// Its attempt failed (`failed ID REASON`): the reason.
    Failed(String),
    /// It could not be taken (`busy ID`, `held ID`, `gone ID`): what was found.
    NotTaken(Found),
}

/// What the deliverer found of an entry it could not take for its attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Found {
    /// Another process held its lock.
    Busy,
    /// It had been moved to `hold/` (by another command).
    Held,
    /// It was no longer queued.
    Gone,
}

/// The deliverer's stdout for `--entry ID,... --queued`: what each entry came to (an
/// entry it did not reach has none), and every report it named (`queued RID`), of
/// entries done or not (a report queued is handed on whatever became of its original).
fn attempted(stdout: &[u8]) -> (std::collections::HashMap<String, Attempted>, Vec<String>) {
    let mut each = std::collections::HashMap::new();
    let mut all = Vec::new();
    let mut since = Vec::new();
    for line in stdout.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if let Some(rid) = line.strip_prefix("queued ") {
            if spool::valid_id(rid) {
                since.push(rid.to_string());
                all.push(rid.to_string());
            }
        } else if let Some(id) = line.strip_prefix("done ") {
            if spool::valid_id(id) {
                each.insert(id.to_string(), Attempted::Done(std::mem::take(&mut since)));
            }
        } else if let Some((what, id)) = line.split_once(' ')
            && let Some(found) = match what {
                "busy" => Some(Found::Busy),
                "held" => Some(Found::Held),
                "gone" => Some(Found::Gone),
                _ => None,
            }
            && spool::valid_id(id)
        {
            since.clear();
            each.insert(id.to_string(), Attempted::NotTaken(found));
        } else if let Some((id, why)) = line.strip_prefix("failed ").and_then(|l| l.split_once(' '))
            && spool::valid_id(id)
        {
            since.clear();
            let shown = crate::text::printable(why);
            let mut why: String = shown.chars().take(DELIVERER_REASON_MAX).collect();
            if why.len() < shown.len() {
                why.push_str("...");
            }
            each.insert(id.to_string(), Attempted::Failed(why));
        }
    }
    (each, all)
}

/// [`return_marked`] of one batch.
fn return_batch(
    ctx: &Context,
    s: &app::Setup,
    who: &Caller,
    entries: &[(String, Returned)],
    refused: Option<&str>,
) -> Done {
    let mut status = Sysexit::Ok;
    // The failures said by another function ([`returned_elsewhere`]).
    let mut also = Sysexit::Ok;
    let mut failed = |code: Sysexit, msg: String| first_failure(&mut status, fail(code, msg));
    if entries.is_empty() {
        return Ok(());
    }
    if let Some(why) = refused {
        for (id, _) in entries {
            failed(
                Sysexit::Config,
                format!("{id}: marked to be returned; {why}; the next queue run returns it"),
            );
        }
        return Err(status);
    }
    // The marks were written without a sync of their directory each: one for all,
    // before any is acted on.
    if let Err(err) = spool::sync_dir(&s.spool.dir) {
        for (id, _) in entries {
            failed(
                Sysexit::from_io(&err),
                format!(
                    "{id}: cannot record its state in {}: {}{}",
                    s.spool.sf_path(id).display(),
                    crate::config::io_text(&err),
                    room_advice(&err, &s.spool.dir)
                ),
            );
        }
        return Err(status);
    }
    let line = entries
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    // Its errors are taken in, so that a failure is said in one line, the entry's, with
    // the deliverer's reason (not its line beside this one).
    let ran = super::deliverer(ctx, &["--entry", &line, "--queued", "--"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    let out = match ran {
        Ok(out) => out,
        Err(e) => {
            for (id, _) in entries {
                failed(
                    Sysexit::TempFail,
                    format!(
                        "{id}: marked to be returned; cannot run {}: {e}{}; the next queue \
                         run returns it",
                        app::deliver_path().display(),
                        app::refused_deliverer()
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default()
                    ),
                );
            }
            return Err(status);
        }
    };
    let (each, reports) = attempted(&out.stdout);
    // What the deliverer said on stderr is the reason in the line of an entry it left
    // queued when nothing else can have said it (it failed before any entry, or was
    // given one entry and was not killed), taken once; else it is passed on as it is.
    let mut said: Option<String> = None;
    if out.status.signal().is_some() || (entries.len() > 1 && !each.is_empty()) {
        let _ = std::io::stderr().write_all(&out.stderr);
        said = Some(String::new());
    }
    let handed = hand_reports_on(ctx, s, who, &reports);
    let how = |rid: &String| {
        handed
            .iter()
            .find(|(r, _)| r == rid)
            .map_or("the next queue run takes it", |(_, how)| *how)
    };
    for (id, returned) in entries {
        // Still queued after its attempt: another delivery may hold it (a run, or a
        // background delivery, that reached it first and returns it, as it is marked):
        // its end is waited for, as any busy entry's.
        let gone = || match locate(&s.spool, id) {
            Ok(None) => true,
            Ok(Some((sp, _))) => {
                matches!(try_lock(&sp, id, LOCK_WAIT), Ok(Locked::Gone))
                    || matches!(locate(&s.spool, id), Ok(None))
            }
            Err(_) => false,
        };
        match each.get(id) {
            // Moved to `hold/` by another command between its mark and its attempt:
            // its return waits on the hold (the mark goes with it; its release makes
            // it due, and the attempt after it returns it).
            Some(Attempted::NotTaken(Found::Held)) => {
                failed(Sysexit::TempFail, held_meanwhile(id));
            }
            // Taken by another process, or gone, between its mark and its attempt: a
            // delivery that took it returned it (it was marked), unless a command
            // deleted it; which of the two is told by the report it left.
            Some(Attempted::NotTaken(found)) if *found == Found::Gone || gone() => {
                if let Err(code) = returned_elsewhere(&s.spool, id, *returned, "another delivery") {
                    first_failure(&mut also, code);
                }
            }
            Some(Attempted::NotTaken(_)) => match locate(&s.spool, id) {
                Ok(Some((_, true))) => failed(Sysexit::TempFail, held_meanwhile(id)),
                Ok(Some((sp, false)))
                    if matches!(try_lock(&sp, id, Duration::ZERO), Ok(Locked::Busy)) =>
                {
                    failed(
                        Sysexit::TempFail,
                        format!(
                            "{id}: being delivered: marked to be returned; the recipients it \
                             has not delivered are returned to its sender as soon as its \
                             delivery ends"
                        ),
                    )
                }
                _ => failed(
                    Sysexit::TempFail,
                    format!(
                        "{id}: marked to be returned; another process had it; the next \
                         queue run returns it"
                    ),
                ),
            },
            Some(Attempted::Done(rids)) if gone() => {
                if said.is_none() {
                    let _ = std::io::stderr().write_all(&out.stderr);
                    said = Some(String::new());
                }
                let reports: Vec<(String, &str)> =
                    rids.iter().map(|r| (r.clone(), how(r))).collect();
                if !reports.is_empty() {
                    log::info!("{id}: {}", queued_as(&reports, ""));
                }
                crate::outln!("{}", returned.line(id, &reports));
            }
            Some(Attempted::Failed(why)) => {
                if said.is_none() {
                    let _ = std::io::stderr().write_all(&out.stderr);
                    said = Some(String::new());
                }
                failed(
                    Sysexit::TempFail,
                    format!(
                        "{id}: marked to be returned; its report could not be queued yet \
                     ({why}); the next queue run returns it"
                    ),
                )
            }
            // Killed: whether its report was queued is not known here (a report queued is
            // found again by the next run, never made twice: `dsn::Report::queue_keyed`).
            None if out.status.signal().is_some() => failed(
                Sysexit::TempFail,
                format!(
                    "{id}: marked to be returned; the deliverer was killed by signal {} \
                     before it was done, the next queue run finishes returning it",
                    out.status.signal().unwrap_or_default()
                ),
            ),
            Some(Attempted::Done(_)) | None => {
                let why = said
                    .get_or_insert_with(|| deliverer_reason(&out.stderr))
                    .clone();
                failed(
                    Sysexit::TempFail,
                    format!(
                        "{id}: marked to be returned; its report could not be queued \
                         yet{why}; the next queue run returns it"
                    ),
                );
            }
        }
    }
    first_failure(&mut status, also);
    match status {
        Sysexit::Ok => Ok(()),
        code => Err(code),
    }
}

/// [`bounce`]'s line for entry `id`, marked to be returned, that another command held
/// before its return: its mark goes with it, and the first run after its release
/// returns it.
fn held_meanwhile(id: &str) -> String {
    format!(
        "{id}: held meanwhile by another command: not returned yet; the first queue run \
         after its release (rsendmail-admin release {id}) returns it"
    )
}

/// What [`bounce`] says of entry `id`, marked to be returned (to `returned`), found
/// gone before its own attempt took it: returned by `by` (a delivery that took it,
/// marked), whose report is named when it is still queued; else either that, or
/// deleted by another command: both said (66), the log telling which.
fn returned_elsewhere(spool: &Spool, id: &str, returned: Returned, by: &str) -> Done {
    match returned_by_another(spool, id) {
        Some(rid) => {
            crate::outln!("{id}: returned to its sender by {by}; its report is queued as {rid}");
            Ok(())
        }
        None if matches!(returned, Returned::NoOne(_)) => {
            crate::outln!(
                "{}; {by} returned it, or another command deleted it, meanwhile (the log \
                 says which)",
                returned.line(id, &[])
            );
            Ok(())
        }
        None => Err(fail(
            Sysexit::NoInput,
            format!(
                "{id}: no longer queued: {by} returned it, or another command deleted it, \
                 meanwhile (the log says which)"
            ),
        )),
    }
}

/// The ID of a report queued (or held) for entry `id`, which another delivery returned:
/// an entry whose `report_of` key names `id` as its original, found among the IDs that
/// begin as `id` begins ([`spool::report_queue_id`]). `None` when there is none (no
/// report was made, it has already left, or the entry was deleted).
fn returned_by_another(spool: &Spool, id: &str) -> Option<String> {
    let prefix: String = id.chars().take(8).collect();
    let key = format!("{id} ");
    [spool.clone(), spool.held()].iter().find_map(|sp| {
        sp.ids().ok()?.into_iter().find(|rid| {
            rid.starts_with(&prefix)
                && rid != id
                && sp
                    .read_entry(rid)
                    .is_ok_and(|e| e.envelope.report_of.is_some_and(|k| k.starts_with(&key)))
        })
    })
}

/// [`bounce`]'s reports `reports` (queued, their original gone) handed to delivery
/// without waiting for it: each is marked due now under its lock, as `retry` marks an
/// entry (so that the periodic runner takes it for a line naming it, as it takes a
/// retried entry and nothing else queued), then they are handed on together
/// ([`hand_on`]), as many to a line as the wake-up endpoint takes. One a delivery holds
/// or took meanwhile, or one held (`hold` of a report found queued again after a
/// crash), is left as it is. Each report with what was done with it, in words for the
/// command's line.
fn hand_reports_on(
    ctx: &Context,
    s: &app::Setup,
    who: &Caller,
    reports: &[String],
) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, Option<&'static str>)> = Vec::new();
    for rid in reports {
        let how = match locate(&s.spool, rid) {
            Ok(Some((_, true))) => Some("it is held"),
            Ok(Some((sp, false))) => match try_lock(&sp, rid, Duration::ZERO) {
                Ok(Locked::File(lock)) => {
                    // Not marked (its error said): handed on all the same, a background
                    // delivery needs no mark, and the next queue run takes it anyway.
                    let _ = mark_locked(
                        s,
                        who,
                        rid,
                        (&sp, false),
                        Some(lock),
                        "bounce",
                        false,
                        |st| {
                            st.retry = true;
                        },
                    );
                    None
                }
                Ok(Locked::Busy) => Some("a delivery has it"),
                Ok(Locked::Gone) => Some("a delivery took it"),
                Err(_) => Some("the next queue run takes it"),
            },
            Ok(None) => Some("a delivery took it"),
            Err(_) => Some("the next queue run takes it"),
        };
        out.push((rid.clone(), how));
    }
    // The marks made durable once for all (a mark lost is no loss: the next queue run
    // takes the report all the same).
    if out.iter().any(|(_, how)| how.is_none()) {
        let _ = spool::sync_dir(&s.spool.dir);
    }
    // The ones marked, as few lines as the endpoint takes (a line is also the name of
    // a background delivery's waiting marker).
    let mut lines: Vec<(String, Vec<usize>)> = Vec::new();
    for (n, (rid, how)) in out.iter().enumerate() {
        if how.is_some() {
            continue;
        }
        match lines.last_mut() {
            Some((line, members)) if line.len() + 1 + rid.len() < wake::MAX_LINE => {
                line.push(',');
                line.push_str(rid);
                members.push(n);
            }
            _ => lines.push((rid.clone(), vec![n])),
        }
    }
    for (line, members) in lines {
        let how = hand_on(ctx, s, &line);
        for n in members {
            if let Some(r) = out.get_mut(n) {
                r.1 = Some(how);
            }
        }
    }
    out.into_iter()
        .map(|(rid, how)| (rid, how.unwrap_or("the next queue run takes it")))
        .collect()
}

/// The most characters of the deliverer's reason [`bounce`] gives.
const DELIVERER_REASON_MAX: usize = 300;

/// What the deliverer said on stderr as `bounce`'s failure gives it: its lines but the
/// last as they were (on stderr), the last one, printable, bounded, without its own
/// `; the message stays queued`, in brackets after a blank (empty when it said nothing).
fn deliverer_reason(said: &[u8]) -> String {
    let lines: Vec<String> = said
        .split(|&b| b == b'\n')
        .map(crate::text::octets_shown)
        .collect();
    let mut lines: Vec<&str> = lines
        .iter()
        .map(|l| l.as_str())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let Some(last) = lines.pop() else {
        return String::new();
    };
    for l in lines {
        crate::errln!("{l}");
    }
    let last = last.trim();
    let last = last.strip_prefix("rsendmail-deliver: ").unwrap_or(last);
    let last = last
        .strip_suffix("; the message stays queued")
        .unwrap_or(last);
    let mut why: String = last.chars().take(DELIVERER_REASON_MAX).collect();
    if why.len() < last.len() {
        why.push_str("...");
    }
    format!(" ({why})")
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A recipient recorded delivered is shown expanded when its reply says so, or,
    /// its reply's text lost (a full disk), when a later recipient was expanded from it.
    #[test]
    fn expanded_recipients_are_told_from_delivered_ones() {
        let mut env = spool::entry::test_envelope("6AUIIquc023976", &["w@example.org", "fa"]);
        assert!(!was_expanded(&env, 1, None));
        assert!(was_expanded(
            &env,
            1,
            Some("250 2.0.0 expanded by .forward to 2 recipients")
        ));
        assert!(!was_expanded(&env, 0, Some("250 2.0.0 Ok")));
        let mut t = spool::entry::Recipient::new("x@example.org");
        t.expanded_from = Some("fa".into());
        env.recipients.push(t);
        assert!(was_expanded(&env, 1, None));
        assert!(!was_expanded(&env, 0, None));
        assert!(!was_expanded(&env, 9, None));
    }

    #[test]
    fn ids_as_mailq_and_the_spool_show_them() {
        let id = "6AUIIquc023976";
        for arg in [
            id,
            "6AUIIquc023976*",
            "6AUIIquc023976-",
            "6AUIIquc023976!",
            "qf6AUIIquc023976",
        ] {
            assert_eq!(parse_id(arg).as_deref(), Ok(id), "{arg}");
        }
        for arg in [
            "",
            "6AUIIquc02397",
            "6AUIIquc0239766",
            "6AUIIquc02397/",
            "../../etc/pass",
            "6AUIIquc023976**",
            "sf6AUIIquc023976",
            "qf6AUIIquc023976*",
            "6AUIIquc023976 *",
        ] {
            assert!(parse_id(arg).is_err(), "{arg}");
        }
        assert!(parse_id("\u{1b}[2J").unwrap_err().starts_with("\\033[2J"));
        // A long one: a bounded prefix.
        let long = "A".repeat(10_000);
        assert!(parse_id(&long).unwrap_err().len() < 600);
        // Blanks around an ID pasted from a listing.
        for arg in [
            " 6AUIIquc023976",
            "6AUIIquc023976*\t",
            "  qf6AUIIquc023976 ",
            "6AUIIquc023976\n",
            "\r\n6AUIIquc023976*\r\n",
        ] {
            assert_eq!(parse_id(arg).as_deref(), Ok(id), "{arg:?}");
        }
        // The name of another file of the entry, a path: refused, with the ID to give.
        for arg in [
            "sf6AUIIquc023976",
            "df6AUIIquc023976",
            "hf6AUIIquc023976",
            "kf6AUIIquc023976",
            "/var/spool/rsendmail/qf6AUIIquc023976",
            "hold/qf6AUIIquc023976",
            "/var/spool/mqueue/df6AUIIquc023976",
        ] {
            let e = parse_id(arg).unwrap_err();
            assert!(
                e.starts_with(&format!("{arg}: "))
                    && e.ends_with(&format!("give the ID {id} (as mailq lists it)")),
                "{e}"
            );
        }
        assert!(
            parse_id("xx6AUIIquc023976")
                .unwrap_err()
                .contains("not a queue ID (14 letters and digits")
        );
        // `y` and `z` are no ID's characters: the message says which are.
        assert!(
            parse_id("6B4CzzFF000003")
                .unwrap_err()
                .contains("digits, A to Z and a to x")
        );
    }

    #[test]
    fn reasons_on_one_bounded_line() {
        assert_eq!(reason_text(None), DEFAULT_REASON);
        assert_eq!(reason_text(Some("  \t ")), DEFAULT_REASON);
        assert_eq!(
            reason_text(Some(" spam\r\nBcc: x ")),
            "spam\\015\\012Bcc: x"
        );
        assert_eq!(
            reason_text(Some(&"é".repeat(500))).chars().count(),
            REASON_MAX
        );
    }

    /// Who an entry is returned to: its sender, postmaster for the null sender, no one
    /// when every open recipient's NOTIFY asks for no failure report or it is a report
    /// to postmaster that failed (a double bounce, discarded); the line says which.
    #[test]
    fn a_returned_entrys_line_says_who_gets_its_report() {
        use spool::entry::{RcptState, test_envelope};
        let mut env = test_envelope("6AUIIquc023976", &["a@x", "b@x"]);
        let mut st = State::default();
        assert_eq!(Returned::of(&env, &st), Returned::ToSender);
        env.recipients[0].notify = Some("NEVER".into());
        assert_eq!(Returned::of(&env, &st), Returned::ToSender);
        st.recipients.push((1, RcptState::Delivered, None));
        let none = Returned::of(&env, &st);
        assert!(
            matches!(none, Returned::NoOne(w) if w.contains("NOTIFY")),
            "{none:?}"
        );
        assert_eq!(
            none.line("6AUIIquc023976", &[]),
            "6AUIIquc023976: returned; no report was made: its recipients' NOTIFY asks for none"
        );
        env.recipients[0].notify = Some("DELAY,FAILURE".into());
        env.sender = String::new();
        assert_eq!(Returned::of(&env, &st), Returned::ToPostmaster);
        env.report = Some("double".into());
        let none = Returned::of(&env, &st);
        assert!(
            matches!(none, Returned::NoOne(w) if w.contains("discarded")),
            "{none:?}"
        );
    }

    /// `bounce`'s line names each report's ID and how it was handed on: once for all
    /// when that is the same, else after each.
    #[test]
    fn the_line_says_how_each_report_was_handed_on() {
        let r = |id: &str, how: &'static str| (id.to_string(), how);
        let one = [r("6AUIIquc023977", "a delivery was started")];
        assert_eq!(
            Returned::ToSender.line("6AUIIquc023976", &one),
            "6AUIIquc023976: returned to its sender; its report is queued as \
             6AUIIquc023977 (a delivery was started)"
        );
        let same = [
            r("6AUIIquc023977", "the queue runner was woken"),
            r("6AUIIquc023978", "the queue runner was woken"),
        ];
        assert_eq!(
            Returned::ToPostmaster.line("6AUIIquc023976", &same),
            "6AUIIquc023976: returned: it has no sender (<>); its reports are queued for \
             postmaster as 6AUIIquc023977, 6AUIIquc023978 (the queue runner was woken)"
        );
        let apart = [
            r("6AUIIquc023977", "it is held"),
            r("6AUIIquc023978", "a delivery was started"),
        ];
        assert_eq!(
            Returned::ToSender.line("6AUIIquc023976", &apart),
            "6AUIIquc023976: returned to its sender; its reports are queued as \
             6AUIIquc023977 (it is held), 6AUIIquc023978 (a delivery was started)"
        );
    }

    /// The deliverer's `queued ID` lines name the reports; any other line, or a line
    /// whose ID is not one, names nothing.
    #[test]
    fn reports_and_outcomes_are_taken_from_their_lines_only() {
        let out = b"queued 6AUIIquc023976\nqueued ../../x\nreturned 6AUIIquc023977\n\
                    queued 6AUIIquc023978\n\xffqueued 6AUIIquc023979\ndone 6AUIIquc023970\n\
                    queued 6AUIIquc023980\nfailed 6AUIIquc023971 no room\x07 here\n\
                    done ../x\nfailed 6AUIIquc023972\ndone 6AUIIquc023973";
        let (each, all) = attempted(out);
        assert_eq!(all, ["6AUIIquc023976", "6AUIIquc023978", "6AUIIquc023980"]);
        assert!(matches!(
            each.get("6AUIIquc023970"),
            Some(Attempted::Done(r)) if r == &["6AUIIquc023976", "6AUIIquc023978"]
        ));
        // A report queued before a failure is handed on, but is not the entry's.
        assert!(matches!(
            each.get("6AUIIquc023971"),
            Some(Attempted::Failed(why)) if why == "no room? here"
        ));
        assert!(matches!(
            each.get("6AUIIquc023973"),
            Some(Attempted::Done(r)) if r.is_empty()
        ));
        assert_eq!(each.len(), 3);
        let (each, all) = attempted(b"");
        assert!(each.is_empty() && all.is_empty());
    }

    proptest! {
        #[test]
        fn attempted_never_panics_and_gives_only_ids(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (each, all) = attempted(&b);
            for id in all.iter().chain(each.keys()) {
                prop_assert!(spool::valid_id(id));
            }
            for a in each.values() {
                if let Attempted::Failed(why) = a {
                    prop_assert!(why.chars().count() <= DELIVERER_REASON_MAX + 3);
                    prop_assert!(!why.contains('\n'));
                }
            }
        }

        #[test]
        fn parse_id_never_panics_and_gives_only_ids(s in "\\PC*") {
            if let Ok(id) = parse_id(&s) {
                prop_assert!(spool::valid_id(&id));
                prop_assert!(s.contains(&id));
            }
        }

        #[test]
        fn every_id_is_taken_with_or_without_its_decorations(
            id in "[0-9A-Za-x]{14}", mark in prop::sample::select(vec!["", "*", "-", "!"]), qf in any::<bool>()
        ) {
            let arg = format!("{}{id}{}", if qf { "qf" } else { "" }, if qf { "" } else { mark });
            prop_assert_eq!(parse_id(&arg), Ok(id));
        }

        #[test]
        fn reasons_are_printable_and_bounded(s in any::<String>()) {
            let r = reason_text(Some(&s));
            prop_assert!(!r.is_empty());
            prop_assert!(r.chars().count() <= REASON_MAX.max(DEFAULT_REASON.len()));
            prop_assert!(r.chars().all(crate::text::is_safe));
        }
    }
}

//! Background deliveries (`-odb`, the default mode, and the SMTP server's deliveries in
//! that mode): at most `O MaxBackgroundDeliveries=` run at once, each holding one of the
//! spool's `slots/` locks, and no message is left behind for want of a slot.
//!
//! A delivery that finds every slot busy leaves a marker `waiting/<entry argument>` (the
//! `--entry` argument, `ID[,[+]RID]`) and tries the slots once more; when they are
//! still busy it exits, and the entry is taken by a process that holds a slot. Each
//! holder, after its own entry, takes the waiting entries (claimed by unlinking the
//! marker: each is taken once), delivers them with up to `O MaxConnections=` workers,
//! and looks again until none is left; then it releases its slot and looks once more,
//! taking a slot again when something waits. So every marker written before a holder
//! released its slot is seen by that holder or by one holding a slot after it: with no
//! queue runner, nothing stays queued after a burst of submissions (sendmail and dma
//! attempt every background submission at once). A process takes at most
//! [`WAITING_LIMIT`] waiting entries; what is left past that is taken by the next
//! background delivery or the next queue run. A running queue runner that listens on the
//! wake-up endpoint takes the waiting entries too (`wake.rs`).
//!
//! Only entries never tried are taken from `waiting/` (a marker whose entry was
//! delivered or tried meanwhile is dropped); markers that do not name queue IDs are
//! removed. A holder that is neither root nor the entry's submitter leaves an entry
//! with local recipients to the submitter's next background delivery or to a queue
//! run ([`deliverable_here`]): it could only defer them (`needs the root queue runner`)
//! where the submitter's own process may deliver to the submitter's mailbox.
//!
//! While a root periodic queue runner is running but does not listen (its SIGHUP restart
//! lets its deliveries in progress finish with the endpoint closed; it holds
//! `slots/runner` all the while, [`runner_expected`]), a process that is not root leaves
//! an entry with a local recipient in `waiting/`, its own submission's too, instead of
//! deferring that recipient for the runner's interval: the runner takes it once it
//! listens again.

use super::engine::Engine;
use super::wake::{entry_ids, still_due};
use rsendmail::app::Setup;
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::spool::{self, Spool};
use std::fs;
use std::os::unix::fs::OpenOptionsExt;

/// The most waiting entries one background delivery takes before it exits.
pub const WAITING_LIMIT: usize = 1000;

/// Take one of the background-delivery slots, or None when all are busy.
fn slot(spool: &Spool, max: usize) -> Option<fs::File> {
    let dir = match spool.subdir("slots") {
        Ok(d) => d,
        Err(e) => {
            log::error!("{}", e.message);
            return None;
        }
    };
    for n in 0..max {
        let path = dir.join(n.to_string());
        let f = spool::open_safely(
            &path,
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(spool.file_mode()),
            spool::Kind::File,
        );
        let f = match f {
            Ok(f) => f,
            Err(e) => {
                log::error!(
                    "background delivery slot: {}",
                    rsendmail::config::io_text(&e)
                );
                return None;
            }
        };
        if f.try_lock().is_ok() {
            // What the last holder advertised is not ours (runner::advertise).
            let _ = f.set_len(0);
            return Some(f);
        }
    }
    None
}

/// Leave `arg` (an entry argument) in `waiting/`. False when the marker cannot be made
/// (the entry then waits for the next queue run, as it did without markers).
pub fn mark_waiting(spool: &Spool, arg: &str) -> bool {
    let dir = match spool.subdir("waiting") {
        Ok(d) => d,
        Err(e) => {
            log::error!("{}", e.message);
            return false;
        }
    };
    let r = spool::open_safely(
        &dir.join(arg),
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(spool.file_mode()),
        spool::Kind::File,
    );
    match r {
        Ok(_) => true,
        Err(e) => {
            log::error!(
                "{arg}: cannot leave it waiting: {}",
                rsendmail::config::io_text(&e)
            );
            false
        }
    }
}

/// Claim up to `max` waiting entry arguments that `may_take` accepts (each marker
/// unlinked by exactly one process): how many were claimed, and the IDs they name that
/// are still due ([`still_due`]: untried, marked due, or, in a root process, left for a
/// root deliverer), in order. Markers that do not name queue IDs are removed.
pub fn take_waiting(
    spool: &Spool,
    max: usize,
    may_take: &dyn Fn(&str) -> bool,
) -> (usize, Vec<String>) {
    let dir = spool.dir.join("waiting");
    if spool::open_dir(&dir).is_err() {
        return (0, Vec::new());
    }
    let Ok(rd) = fs::read_dir(&dir) else {
        return (0, Vec::new());
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    // Queue IDs begin with the time: oldest first.
    names.sort();
    let mut ids = Vec::new();
    let mut taken = 0;
    for name in names {
        if taken >= max {
            break;
        }
        let Some(named) = entry_ids(&name) else {
            let _ = fs::remove_file(dir.join(&name)); // not ours
            continue;
        };
        if !named.iter().all(|id| may_take(id)) {
            continue; // left for a process that can deliver all of it
        }
        if fs::remove_file(dir.join(&name)).is_err() {
            continue; // another process took it
        }
        taken += 1;
        for id in named {
            if !ids.contains(&id) && still_due(spool, &id, false) {
                ids.push(id);
            }
        }
    }
    (taken, ids)
}

/// The file a root periodic queue runner holds locked from its start until it stops for
/// good (`slots/runner`, [`runner_expected`]); it holds the runner's process id and the
/// time it read its configuration (`rsendmail-admin check`'s `reload` step).
const RUNNER_MARK: &str = "runner";

/// Lock `slots/runner` for a root periodic queue runner (made when missing), or None
/// when another runner holds it or it cannot be used (said). Held, it tells deliverers
/// that are not root that a root runner takes what they leave in `waiting/`
/// ([`runner_expected`]), through the time a SIGHUP restart lets its deliveries finish
/// with its wake-up endpoint closed.
pub fn hold_runner_mark(spool: &Spool, reload_pid: u32, started: i64) -> Option<fs::File> {
    let dir = spool.subdir("slots").ok()?;
    let f = spool::open_safely(
        &dir.join(RUNNER_MARK),
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(spool.file_mode()),
        spool::Kind::File,
    );
    match f {
        Ok(f) => {
            if f.try_lock().is_err() {
                return None;
            }
            // Who holds it and since when, for `rsendmail-admin check` to tell a
            // configuration changed since the runner read its own (`PID TIME`, the
            // process a reload is sent to: the runner, or a daemon's runner's daemon):
            // held anew by each start and each restart (SIGHUP), which reads it anew.
            let line = format!("{reload_pid} {started}\n");
            let _ = f
                .set_len(0)
                .and_then(|()| std::os::unix::fs::FileExt::write_all_at(&f, line.as_bytes(), 0));
            Some(f)
        }
        Err(e) => {
            log::error!(
                "{}: {}",
                dir.join(RUNNER_MARK).display(),
                rsendmail::config::io_text(&e)
            );
            None
        }
    }
}

/// Whether a root periodic queue runner of this spool is running though it may not
/// listen now (its restart on SIGHUP lets the deliveries in progress finish first): it
/// holds `slots/runner` ([`hold_runner_mark`]). Looked at with a shared lock, which
/// never stands in another process's way but the runner's.
pub fn runner_expected(spool: &Spool) -> bool {
    let f = spool::open_safely(
        &spool.dir.join("slots").join(RUNNER_MARK),
        fs::OpenOptions::new().read(true),
        spool::Kind::File,
    );
    f.is_ok_and(|f| matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)))
}

/// After an attempt at entry `id` by a process that is not root, once the entry is
/// unlocked: when the attempt deferred a recipient for want of root (`needs the root
/// queue runner`, `State::deferred_for_root`) and a root periodic queue runner is
/// running ([`runner_expected`]), the entry is handed to it: left in `waiting/` and the
/// runner poked, so that it delivers those recipients at once (whatever the entry's
/// back-off: its remote recipients keep theirs) rather than at its next interval. The
/// addresses of the recipients handed on, in the entry's order; none when it was not.
///
/// The one place that decides it, for every deliverer that is not root (an interactive
/// delivery, a background one, a user's queue run). Looked at after the unlock: a runner
/// that holds `slots/runner` only after this look begins its first run after it too,
/// and that run takes those recipients (a root sweep makes such an entry's local part
/// due now); a runner that held it before takes the marker, also while it does not
/// listen (its restart). Each delivery is under the entry's lock, and a recipient
/// delivered meanwhile is final: none is delivered twice.
pub fn hand_to_root_runner(spool: &Spool, id: &str) -> Vec<String> {
    if rsendmail::privs::is_root() {
        return Vec::new();
    }
    let Ok(e) = spool.read_entry(id) else {
        return Vec::new();
    };
    let handed: Vec<String> = e
        .state
        .for_root(e.envelope.recipients.len())
        .into_iter()
        .filter_map(|i| e.envelope.recipients.get(i).map(|r| r.address.clone()))
        .collect();
    if handed.is_empty() || !runner_expected(spool) || !mark_waiting(spool, id) {
        return Vec::new();
    }
    log::info!("{id}: handed to the queue runner");
    rsendmail::spool::wake::poke(&spool.dir, id);
    handed
}

/// Whether entry `id` has an open local recipient (true when it cannot be read: its
/// delivery says why; false when it is gone).
fn has_local(engine: &Engine, spool: &Spool, id: &str) -> bool {
    match spool.read_entry(id) {
        Ok(e) => e.envelope.recipients.iter().enumerate().any(|(i, r)| {
            !e.state.of(i).is_final()
                && super::plan::route(engine, &r.address) == super::plan::Route::Local
        }),
        Err(spool::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// Whether entries `ids`, of a submission of this process's user, are left in `waiting/`
/// for the root queue runner: this process is not root, one of them has a local
/// recipient (which this process could only defer, `needs the root queue runner`, for
/// the runner's interval), and a root runner is running that does not listen now (its
/// SIGHUP restart): it takes them from `waiting/` once it listens again.
fn for_the_root_runner(engine: &Engine, spool: &Spool, ids: &[String]) -> bool {
    !rsendmail::privs::is_root()
        && runner_expected(spool)
        && ids.iter().any(|id| has_local(engine, spool, id))
}

/// Whether this process can deliver entry `id` as its submitter's own process could: a
/// root process delivers everything; another user's process takes an entry of another
/// submitter only when none of its recipients is local (its local recipients would get
/// `needs the root queue runner` from it, where the submitter's own process could have
/// delivered to the submitter's mailbox), or that it cannot read; and no process that
/// is not root takes an entry with a local recipient while a root runner is running
/// ([`runner_expected`]), which takes it.
fn deliverable_here(engine: &Engine, spool: &Spool, id: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    if rsendmail::privs::is_root() {
        return true;
    }
    if !has_local(engine, spool, id) {
        return true;
    }
    let me = nix::unistd::getuid().as_raw();
    fs::metadata(spool.qf_path(id)).is_ok_and(|md| md.uid() == me) && !runner_expected(spool)
}

/// Whether anything waits.
fn something_waits(spool: &Spool) -> bool {
    fs::read_dir(spool.dir.join("waiting")).is_ok_and(|mut rd| rd.next().is_some())
}

/// Deliver entry argument `arg` (its `ids`) in the background, then the entries left
/// waiting (see the module docs). Always 0, or the failure of the own entry's delivery
/// (an unusable spool): the process is detached and its status goes nowhere; outcomes
/// are in the entries' state, the log and the reports.
pub fn deliver(s: &Setup, engine: &Engine, arg: &str, ids: Vec<String>) -> Result<Sysexit, Fatal> {
    let spool = &s.spool;
    if for_the_root_runner(engine, spool, &ids) && mark_waiting(spool, arg) {
        log::info!("{arg}: left waiting for the root queue runner");
        return Ok(Sysexit::Ok);
    }
    // A process holding a slot with working connections to every destination of this
    // untried message takes it over them (runner::FollowUp): no second connection.
    if let [one] = &ids[..]
        && super::runner::running_one_follows(engine, spool, one)
    {
        return Ok(Sysexit::Ok);
    }
    let follow = super::runner::FollowUp::new(engine, spool, ids.clone());
    let mut held = slot(spool, engine.max_background);
    let mut own = Some(ids);
    if held.is_none() {
        if !mark_waiting(spool, arg) {
            return Ok(Sysexit::Ok);
        }
        // A holder may have released its slot and looked before the marker was there.
        held = slot(spool, engine.max_background);
        if held.is_none() {
            return Ok(Sysexit::Ok); // a holder takes it
        }
        // Ours again, unless another process claimed the marker meanwhile.
        if fs::remove_file(spool.dir.join("waiting").join(arg)).is_err() {
            own = None;
        }
    }
    // A failure of our own entry's delivery is told at the end, after the waiting ones.
    let own = match own {
        Some(ids) => super::runner::deliver_ids_kept(engine, spool, ids, false).map(|_| ()),
        None => Ok(()),
    };
    let mut taken = 0;
    let mut first = true;
    while let Some(slot_file) = held.take() {
        let mut took = false;
        loop {
            let (claimed, ids) =
                take_waiting(spool, WAITING_LIMIT.saturating_sub(taken).min(256), &|id| {
                    deliverable_here(engine, spool, id)
                });
            if claimed > 0 {
                took = true;
                taken += claimed;
                if !ids.is_empty()
                    && let Err(e) = super::runner::deliver_ids_kept(engine, spool, ids, true)
                {
                    log::error!("{e}");
                }
                if taken >= WAITING_LIMIT {
                    super::runner::close_connections(false);
                    return own.map(|()| Sysexit::Ok);
                }
                continue;
            }
            // The rest follows over the connections that worked; while one stays
            // cached, entries committed meanwhile go over it too.
            if follow.pass(&slot_file) {
                took = true;
                continue;
            }
            if super::runner::linger(spool) {
                continue;
            }
            break;
        }
        drop(slot_file);
        // Looked at after the release: a marker left while the slot was held is taken
        // here or by the process that holds a slot now. A holding that found nothing to
        // take (another process took it) ends the loop, so that a marker nobody can
        // take cannot keep a process going.
        if (first || took) && (something_waits(spool) || follow.left()) {
            held = slot(spool, engine.max_background);
        }
        first = false;
    }
    super::runner::close_connections(false);
    own.map(|()| Sysexit::Ok)
}

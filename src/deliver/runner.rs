//! Step one, and the loop around the rest: which entries a run takes (`-q`, `-qR/-qS/
//! -qI`, the periodic runner, one entry for `-odi`/`-odb`), how many workers deliver
//! them in parallel (`O MaxConnections=`), the entry lock each attempt holds, stopping
//! in good order on SIGTERM, and a periodic runner's restart on SIGHUP.
//!
//! A queue run's worker without `-v` may lock its next entry before the attempt at this
//! one ends (`attempt::Lookahead`), so that the next message's commands go out with this
//! one's final dot; that entry is then the worker's next attempt, whatever the attempts
//! queued meanwhile, and on a stop it is unlocked untouched.

use super::attempt::{Attempt, Lookahead, Part, Worker, attempt};
use super::cache;
use super::engine::Engine;
use super::plan::{Route, route};
use super::record::exit_status;
use super::smtp::Transcript;
use super::transcript::Transcripts;
use rsendmail::app::{self, Setup};
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::privs;
use rsendmail::queue;
use rsendmail::selection::QueueRunArgs;
use rsendmail::spool::{LockedEntry, Peeked, Spool};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How many entries removed by a run share one sync of the spool directory, at most.
pub const REMOVAL_SYNC_BATCH: usize = 64;

/// How long a removal waits for its directory sync, at most: looked at by the next
/// removal; the run's end syncs what is left.
pub const REMOVAL_SYNC_AGE: Duration = Duration::from_millis(500);

/// How many removed entries wait for each of [`Removals`]' closers at most: a worker
/// that finds that many waiting waits too (each holds two descriptors).
pub const REMOVAL_CLOSE_BACKLOG: usize = 32;

/// How many closers a run's [`Removals`] has at most (one a worker up to this): each
/// close of a removed entry may wait for the device (a file system mounted with
/// `discard`), about a millisecond each on a busy virtual disk, and one closer behind
/// four workers was the slowest part of a long run to a fast server; the device serves
/// several at once.
pub const REMOVAL_CLOSERS: usize = 4;

/// The removals of one run and their directory syncs, batched: an entry whose recipients
/// are all final is unlinked at once by its worker (so no other process takes it again),
/// and the spool directory is synced once for up to [`REMOVAL_SYNC_BATCH`] of them, or
/// [`REMOVAL_SYNC_AGE`] after the first, and at the end of the run. A crash in between
/// may bring those entries back and their recipients are tried again, as after a crash in
/// sendmail, Postfix or dma, which do not sync a removal at all; nothing is ever lost, and
/// without a crash nothing is sent twice.
///
/// The unlinked entry's descriptors (and with them its lock) are closed, and the
/// directory synced, by a thread of the run's own, a closer (up to [`REMOVAL_CLOSERS`],
/// taking the removals in turn and counting them together for the syncs), so that the
/// worker goes on to its next message at once: the last close of an unlinked file frees
/// its blocks, which on a file system mounted with `discard` waits for the device, and
/// the sync waits for the journal. The entry is gone from the spool before the closer
/// has it; its lock, held a little longer, covers a file no path names (a process that
/// opened it before the unlink finds it gone once locked, `Spool::lock_live`). When a
/// closer cannot be started, the worker does both itself.
struct Removals<'a> {
    spool: &'a Spool,
    /// The closers, each started by the first removal it is given; `None` in one: it
    /// could not be started.
    closers: Vec<Mutex<Option<Option<Closer>>>>,
    /// The closer the next removal goes to (modulo their number).
    next: AtomicUsize,
    /// The removals closed and not synced yet.
    pending: Pending,
    /// Whether the run removed any entry (its index lines are then dead).
    any: AtomicBool,
}

/// [`Removals`]' thread: the removed entries it closes, and its end.
struct Closer {
    tx: std::sync::mpsc::SyncSender<LockedEntry>,
    done: std::thread::JoinHandle<()>,
}

/// The removals of a run not synced yet, shared by its closers: how many, and when the
/// first of them was closed.
type Pending = std::sync::Arc<Mutex<(usize, Option<std::time::Instant>)>>;

/// A closer's loop: each removed entry closed, and the spool directory synced when the
/// run's closers closed [`REMOVAL_SYNC_BATCH`] removed entries since the last sync, or
/// the first of them [`REMOVAL_SYNC_AGE`] ago (looked at with each); the run's end
/// syncs what is left ([`Removals::flush`]).
fn close_removed(spool: Spool, rx: std::sync::mpsc::Receiver<LockedEntry>, pending: Pending) {
    for locked in rx {
        // Every entry sent was unlinked before it was sent: a sync from now on covers it.
        drop(locked);
        let due = {
            let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
            p.0 += 1;
            let first = *p.1.get_or_insert_with(std::time::Instant::now);
            let due = p.0 >= REMOVAL_SYNC_BATCH || first.elapsed() >= REMOVAL_SYNC_AGE;
            if due {
                *p = (0, None);
            }
            due
        };
        if due {
            spool.sync_removals();
        }
    }
}

impl<'a> Removals<'a> {
    /// One closer.
    fn new(spool: &'a Spool) -> Self {
        Self::with_closers(spool, 1)
    }

    /// Up to `n` closers (at least one).
    fn with_closers(spool: &'a Spool, n: usize) -> Self {
        Removals {
            spool,
            closers: (0..n.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            pending: Pending::default(),
            any: AtomicBool::new(false),
        }
    }

    /// Remove an entry whose recipients are all final; if that fails, record the final
    /// state so that nobody delivers it again.
    fn finish(&self, mut locked: LockedEntry) {
        let state = locked.pending_state.take();
        match locked.remove_unsynced() {
            Ok(()) => self.removed(locked),
            Err(e) => {
                log::error!("{e}");
                if let Some(st) = state
                    && let Err(e) = locked.record_state(st)
                {
                    log::error!("{e}");
                }
            }
        }
    }

    /// An entry just unlinked, for the closer; closed and synced here when there is none.
    fn removed(&self, locked: LockedEntry) {
        self.any.store(true, Ordering::SeqCst);
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.closers.len();
        let tx = {
            let mut c = self.closers[at].lock().unwrap_or_else(|p| p.into_inner());
            let c = c.get_or_insert_with(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel(REMOVAL_CLOSE_BACKLOG);
                let spool = self.spool.clone();
                let pending = self.pending.clone();
                std::thread::Builder::new()
                    .name("removals".into())
                    .spawn(move || close_removed(spool, rx, pending))
                    .map(|done| Closer { tx, done })
                    .map_err(|e| log::warn!("removed entries closed by their workers: {e}"))
                    .ok()
            });
            c.as_ref().map(|c| c.tx.clone())
        };
        let locked = match tx {
            Some(tx) => match tx.send(locked) {
                Ok(()) => return,
                // The closer ended (it cannot, short of a panic): done here.
                Err(back) => back.0,
            },
            None => locked,
        };
        drop(locked);
        self.spool.sync_removals();
    }

    /// Wait for the closers to close what they were given and sync the directory (the
    /// run's end); then, when the run removed any entry, compact the index if finished entries
    /// fill most of it (`index::compact_if_bloated`): a host that only flushes (`-qR`,
    /// ETRN) never runs the full queue run that would.
    fn flush(&self) {
        let closers: Vec<Closer> = self
            .closers
            .iter()
            .filter_map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).take().flatten())
            .collect();
        // All told to end first: their last closes and syncs go on together.
        let done: Vec<_> = closers
            .into_iter()
            .map(|Closer { tx, done }| {
                drop(tx);
                done
            })
            .collect();
        let mut unsynced = false;
        for d in done {
            // A closer that ended otherwise (a panic): its entries were unlinked; only
            // their sync may be missing.
            unsynced |= d.join().is_err();
        }
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            unsynced |= p.0 > 0;
            *p = (0, None);
        }
        if unsynced {
            self.spool.sync_removals();
        }
        if self.any.load(Ordering::SeqCst) {
            rsendmail::spool::index::compact_if_bloated(self.spool);
        }
    }
}

/// How many entries a queue run gives each session to the same hosts before it opens
/// one more in parallel ([`parallel_sessions`]).
pub const ENTRIES_PER_SESSION: usize = 50;

/// How many sessions to the same hosts a queue run of `entries` opens in parallel: one
/// per [`ENTRIES_PER_SESSION`] entries, at most one per worker (`O MaxConnections=`),
/// and at least one; one only when no connection is kept between transactions
/// (`O ConnectionCacheSize=0`). A short queue goes over one session; a long one keeps
/// several busy, so that a message's round trips and the spool's work for another
/// overlap. `O ConnectionCacheSize=` bounds the idle connections, as in sendmail, not
/// those in use: a worker keeps its connection while it carries the next message
/// (`smtp::State::Primed`), so a run of one worker a session to one host puts none back
/// until its end.
pub fn parallel_sessions(workers: usize, cache_size: usize, entries: usize) -> usize {
    if cache_size == 0 {
        return 1;
    }
    (1 + entries / ENTRIES_PER_SESSION).min(workers).max(1)
}

/// Deliver entries with up to `workers` connections in parallel; then the cached
/// connections QUIT, unless the process keeps them between runs
/// ([`cache::keep_between_runs`]: the periodic runner).
pub fn deliver_ids(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    verbose: bool,
    queue_run: bool,
) -> Result<Vec<Attempt>, Fatal> {
    let r = deliver_ids_then(
        engine,
        spool,
        ids,
        verbose,
        queue_run,
        None,
        None,
        None,
        None,
        Part::All,
    );
    close_connections(verbose);
    r
}

/// The next IDs of a run that opens its entries in batches ([`queue::Batches`]): `None`
/// once there are no more. Called by one worker at a time, when the IDs it was given
/// are taken.
type More<'a> = Mutex<&'a mut (dyn FnMut() -> Option<Vec<String>> + Send)>;

/// A queue run's entries delivered as [`deliver_ids`] delivers them, opened a batch at a
/// time ([`queue::Batches`]): the first connection is made once the first batch is
/// opened, and the next batch is opened by a thread of its own while the workers deliver
/// this one (one batch ahead, handed over when the workers have taken the IDs of this
/// one), so that they do not wait for it. `periodic`: the periodic runner's choice of
/// entries ([`queue::Sweep::into_try`]). Corrupt entries are reported on stdout as they
/// are moved aside.
fn deliver_batches(
    engine: &Engine,
    spool: &Spool,
    run: &mut queue::Batches<'_>,
    q: &QueueRunArgs,
    periodic: bool,
    verbose: bool,
) -> Result<Vec<Attempt>, Fatal> {
    // The entries as the selection read them, for their attempts ([`Seen`]).
    let seen = Seen {
        read: Mutex::default(),
        selector: queue::Selector::new(Some(q), engine.min_queue_age, q, periodic),
    };
    let take = |run: &mut queue::Batches<'_>| {
        let sweep = run.next_sweep()?;
        for id in &sweep.corrupt {
            rsendmail::tell!("qf{id}: corrupt queue file moved to corrupt/");
        }
        if periodic {
            for (id, t) in &sweep.local_retries {
                super::wake::local_retry_at(id, *t);
            }
        }
        let (ids, read) = sweep.into_try_read(q, periodic);
        if let Ok(mut r) = seen.read.lock() {
            r.extend(read.into_iter().map(|e| (e.envelope.id.clone(), e)));
        }
        Some(ids)
    };
    let mut first = take(run).unwrap_or_default();
    // `O MaxQueueRunSize=N`: the first N in the run's order (the run is one batch then:
    // `queue::Batches::ordered`); the rest wait for the next run, as in sendmail.
    if engine.max_queue_run > 0 {
        first.truncate(engine.max_queue_run);
    }
    let listed = run.listed();
    // The run's IDs from the first batch on, and where the next batches come from.
    let run_from = |more: Option<(&More<'_>, usize)>| {
        deliver_ids_then(
            engine,
            spool,
            first,
            verbose,
            true,
            None,
            None,
            more,
            Some(&seen),
            Part::All,
        )
    };
    let r = if run.done() {
        run_from(None)
    } else {
        std::thread::scope(|scope| {
            // A rendezvous: the next batch is opened, then waits for a worker to ask for
            // it, and the one after is opened only then (never more than one ahead).
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<String>>(0);
            scope.spawn(move || {
                while !STOP.load(Ordering::SeqCst) {
                    let Some(ids) = take(run) else { break };
                    // The run ended without it (an error, or a stop).
                    if tx.send(ids).is_err() {
                        break;
                    }
                }
            });
            let mut next = move || rx.recv().ok();
            let more: More<'_> = Mutex::new(&mut next);
            run_from(Some((&more, listed)))
        })
    };
    close_connections(verbose);
    r
}

/// [`deliver_ids`] quietly, keeping the connections cached for what the process sends
/// next (a background delivery's waiting entries and follow-ups).
pub(super) fn deliver_ids_kept(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    queue_run: bool,
) -> Result<Vec<Attempt>, Fatal> {
    deliver_ids_then(
        engine,
        spool,
        ids,
        false,
        queue_run,
        None,
        None,
        None,
        None,
        Part::All,
    )
}

/// [`deliver_ids`] of a queue run quietly, each attempt at the entries given restricted
/// to `part` of their recipients (the entries these attempts queue, reports and
/// expansions, are attempted whole).
pub fn deliver_ids_part(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    part: Part,
) -> Result<Vec<Attempt>, Fatal> {
    let r = deliver_ids_then(
        engine, spool, ids, false, true, None, None, None, None, part,
    );
    close_connections(false);
    r
}

/// One attempt at the local recipients of entry `id` ([`Part::Local`]), when it can be
/// locked: the entries it queued (reports), for the caller to deliver.
pub fn deliver_local_part(engine: &Engine, spool: &Spool, id: &str) -> Result<Vec<String>, Fatal> {
    let Ok(mut locked) = lock_for_attempt(spool, id, None) else {
        return Ok(Vec::new());
    };
    let mut w = Worker::new(0);
    w.part = Part::Local;
    let mut out: Transcript<'_> = None;
    let a = attempt(engine, spool, &mut locked, &mut w, &mut out, None);
    w.close(&mut out);
    let a = a?;
    if a.removed {
        let removals = Removals::new(spool);
        removals.finish(locked);
        removals.flush();
    }
    Ok(a.new_entries)
}

/// Why an entry was not locked for an attempt ([`lock_for_attempt`]).
enum NotLocked {
    /// Another process holds it, it is gone, or it could not be read (logged).
    Skipped,
    /// A full read found it damaged: logged and moved to `corrupt/`.
    MovedAside,
}

/// The entries a queue run's selection read ([`queue::Sweep::read`]) and has not
/// attempted yet, by ID, and the run's choice: the attempt at one takes it again
/// without reading what cannot have changed ([`Spool::lock_peeked`]), and leaves it
/// when its state changed meanwhile so that the run would not take it now (another
/// run tried it: its back-off, `O MinQueueAge=`, or the recipients a filter matched
/// are now final). The selection's locks are never kept across the gap: an entry
/// waiting its turn may be delivered, held, released, retried or deleted by another
/// process meanwhile, as before.
struct Seen<'a> {
    read: Mutex<std::collections::HashMap<String, Peeked>>,
    selector: queue::Selector<'a>,
}

/// Lock entry `id` as [`Spool::lock_entry`] does, or, when the run's selection read it
/// (`seen`), as [`Spool::lock_peeked`] does; `Ok(None)` also for an entry whose state
/// changed since so that the run no longer takes it (let go untouched).
fn lock_seen(
    spool: &Spool,
    id: &str,
    seen: Option<&Seen<'_>>,
) -> Result<Option<LockedEntry>, rsendmail::spool::ReadError> {
    let Some((seen, read)) = seen.and_then(|s| Some((s, s.read.lock().ok()?.remove(id)?))) else {
        return spool.lock_entry(id);
    };
    Ok(spool.lock_peeked(read)?.and_then(|(locked, changed)| {
        let e = &locked.entry;
        if changed && !seen.selector.takes(&e.envelope, &e.state) {
            log::debug!("{id}: tried by another process since it was selected: left");
            return None;
        }
        Some(locked)
    }))
}

/// Lock entry `id` for an attempt ([`lock_seen`]). A corrupt one is logged and moved
/// to `corrupt/` (logged too when that fails); any other read error is logged and the
/// entry skipped.
fn lock_for_attempt(
    spool: &Spool,
    id: &str,
    seen: Option<&Seen<'_>>,
) -> Result<LockedEntry, NotLocked> {
    match lock_seen(spool, id, seen) {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(NotLocked::Skipped),
        Err(rsendmail::spool::ReadError::Corrupt(why)) => {
            log::error!("qf{id}: corrupt queue file moved aside: {why}");
            match spool.move_corrupt(id) {
                Ok(()) => Err(NotLocked::MovedAside),
                Err(e) => {
                    log::error!("qf{id}: not moved aside: {e}");
                    Err(NotLocked::Skipped)
                }
            }
        }
        Err(e) => {
            log::error!("qf{id}: {e}");
            Err(NotLocked::Skipped)
        }
    }
}

/// QUIT the cached connections, unless the process keeps them between runs (they QUIT
/// when their idle time passes then).
pub(super) fn close_connections(verbose: bool) {
    if !cache::kept_between_runs() {
        let mut sink = Transcripts::new(verbose);
        let mut out: Transcript<'_> = sink.get();
        cache::close_all(&mut out);
    }
}

/// Which of the entries locked a run takes (the others are unlocked and left as they
/// are): a background delivery's follow-ups ([`FollowUp`]).
type Accept<'a> = dyn Fn(&LockedEntry) -> bool + Sync + 'a;

/// [`deliver_ids`] without closing the connections, and `note` printed on stdout (made
/// printable) once the entries are done, before the connections close: what the
/// submission left to say after the delivery (one worker: an interactive delivery).
/// `accept`: only the entries it accepts once locked are tried. `more`: where the next
/// IDs come from once these are taken, and how many entries the run listed (which sizes
/// the workers and sessions as the IDs given do otherwise). `part`: the recipients of
/// the entries given that their attempts deliver to.
#[allow(clippy::too_many_arguments)]
fn deliver_ids_then(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    verbose: bool,
    queue_run: bool,
    note: Option<&str>,
    accept: Option<&Accept<'_>>,
    more: Option<(&More<'_>, usize)>,
    seen: Option<&Seen<'_>>,
    part: Part,
) -> Result<Vec<Attempt>, Fatal> {
    cache::configure(
        engine.cache_size,
        engine.cache_timeout,
        engine.max_connections,
        verbose,
    );
    // The IDs to try, then those the attempts of this run queue (reports, expansions,
    // noted in `queued_here`): these go out in the same run, on the same connections,
    // without a `Running` line of their own (as sendmail delivers a bounce). Moved, not
    // copied: a run of 100,000 entries holds each ID once.
    let queue: Mutex<VecDeque<String>> = Mutex::new(VecDeque::from(ids));
    let queued_here: Mutex<std::collections::HashSet<String>> = Mutex::default();
    // The attempts are returned for a caller that reads them (`-v`'s status, an
    // interactive delivery); a queue run without `-v` keeps none (100,000 of them
    // would cost megabytes).
    let keep = verbose || !queue_run;
    let results = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    // The entries this run sizes itself for: those given, or all the run listed.
    let total = more.map_or_else(|| queue.lock().map(|q| q.len()).unwrap_or(0), |m| m.1);
    // One worker for -v, and for a submission's message and its report (not a queue
    // run): the report goes out after the message, on its connection, as sendmail
    // sends it (compat case bounce-local-unknown-mixed).
    let workers = if verbose || !queue_run {
        1
    } else if engine.smarthost_split > 1 {
        // Enough connections for every relay of the split.
        engine
            .max_connections
            .max(engine.smarthost_split)
            .min(total)
            .max(1)
    } else {
        engine.max_connections.min(total).max(1)
    };
    // The entries selected so far (those given, then each batch's): a run over a long
    // queue of which few entries are due keeps to one session, as a short run does.
    let selected = AtomicUsize::new(queue.lock().map(|q| q.len()).unwrap_or(0));
    let parallel = || {
        if queue_run {
            parallel_sessions(workers, engine.cache_size, selected.load(Ordering::SeqCst))
        } else {
            1
        }
    };
    let removals = Removals::with_closers(spool, workers.min(REMOVAL_CLOSERS));
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let removals = &removals;
            let queue = &queue;
            let results = &results;
            let errors = &errors;
            let queued_here = &queued_here;
            let selected = &selected;
            let parallel = &parallel;
            scope.spawn(move || {
                let mut w = Worker::new(worker);
                // -v: the dialogue on stdout (-X: the SMTP client logs its own traffic,
                // and each line shown).
                let mut sink = Transcripts::new(verbose);
                let mut seq = 0;
                // The entry locked ahead of its turn by the last attempt (its commands
                // may have gone out with that attempt's final dot): attempted next.
                let mut ahead: Option<LockedEntry> = None;
                // Its turn in the run's order (`cache::take_turn`).
                let ahead_turn = std::cell::Cell::new(None);
                loop {
                    cache::end_turn();
                    if STOP.load(Ordering::SeqCst) {
                        break;
                    }
                    let mut out: Transcript<'_> = sink.get();
                    let mut locked = match ahead.take() {
                        Some(l) => {
                            cache::set_parallel(parallel());
                            if let Some(t) = ahead_turn.take() {
                                cache::set_turn(t);
                            }
                            l
                        }
                        None => {
                            let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                            let more = more.map(|m| (m.0, selected));
                            let Some(id) = next.or_else(|| refill(queue, more)) else {
                                break;
                            };
                            cache::take_turn();
                            cache::set_parallel(parallel());
                            let own = !queued_here.lock().is_ok_and(|h| h.contains(&id));
                            seq += usize::from(own);
                            let locked = match lock_for_attempt(spool, &id, seen) {
                                Ok(l) => l,
                                Err(NotLocked::Skipped) => continue,
                                // Damage only a full read finds (the message's sum): said
                                // as a run says the damage its listing finds.
                                Err(NotLocked::MovedAside) => {
                                    if queue_run || verbose {
                                        rsendmail::tell!(
                                            "qf{id}: corrupt queue file moved to corrupt/"
                                        );
                                    }
                                    continue;
                                }
                            };
                            if accept.is_some_and(|ok| !ok(&locked)) {
                                continue;
                            }
                            // sendmail -q -v: a blank line, then the entry (named without its
                            // qf prefix, as sendmail names it), before its transcript.
                            if verbose
                                && queue_run
                                && own
                                && let Some(w) = out.as_deref_mut()
                            {
                                let _ = writeln!(
                                    w,
                                    "\nRunning {}/{id} (sequence {seq} of {total})",
                                    spool.dir.display()
                                );
                            }
                            locked
                        }
                    };
                    // A queue run without a transcript: the next entry of the queue, at
                    // hand, may be locked ahead (never one still to be listed: no waiting).
                    let mut fetch = || -> Option<LockedEntry> {
                        if STOP.load(Ordering::SeqCst) {
                            return None;
                        }
                        let id = queue.lock().ok()?.pop_front()?;
                        match lock_seen(spool, &id, seen) {
                            Ok(Some(l)) if accept.is_none_or(|ok| ok(&l)) => {
                                ahead_turn.set(Some(cache::turn_ahead()));
                                Some(l)
                            }
                            // Skipped, as the loop skips it.
                            Ok(_) => None,
                            // Left to the loop, which says what is wrong with it.
                            Err(_) => {
                                if let Ok(mut q) = queue.lock() {
                                    q.push_front(id);
                                }
                                None
                            }
                        }
                    };
                    let mut look = Lookahead {
                        ahead: None,
                        fetch: &mut fetch,
                    };
                    let look_ahead = (queue_run && !verbose).then_some(&mut look);
                    // The entries given are restricted to `part`; what this run queued
                    // goes whole.
                    w.part = if queued_here
                        .lock()
                        .is_ok_and(|h| h.contains(&locked.entry.envelope.id))
                    {
                        Part::All
                    } else {
                        part
                    };
                    let res = attempt(engine, spool, &mut locked, &mut w, &mut out, look_ahead);
                    ahead = look.ahead.take();
                    match res {
                        Ok(mut a) => {
                            if a.removed {
                                removals.finish(locked);
                            } else {
                                let id = locked.entry.envelope.id.clone();
                                // A return asked for during the attempt is recorded when
                                // it is let go of, and carried out by this run at once.
                                let returned = is_return(&locked);
                                drop(locked);
                                if returned && let Ok(mut q) = queue.lock() {
                                    q.push_front(id.clone());
                                } else {
                                    a.handed = super::background::hand_to_root_runner(spool, &id);
                                }
                            }
                            // Expansions and reports go out in the same run.
                            if !a.new_entries.is_empty()
                                && let Ok(mut q) = queue.lock()
                            {
                                // Next, so that -v shows a report under the entry
                                // it reports on, as sendmail does.
                                for id in a.new_entries.iter().rev() {
                                    q.push_front(id.clone());
                                }
                                if let Ok(mut h) = queued_here.lock() {
                                    h.extend(a.new_entries.iter().cloned());
                                }
                            }
                            if keep && let Ok(mut r) = results.lock() {
                                r.push(a);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut v) = errors.lock() {
                                v.push(e);
                            }
                        }
                    }
                }
                cache::end_turn();
                if worker == 0
                    && let Some(n) = note
                {
                    let n = rsendmail::text::printable(n);
                    rsendmail::tell!("{n}");
                }
                let mut out: Transcript<'_> = sink.get();
                w.close(&mut out);
            });
        }
    });
    removals.flush();
    if let Some(e) = errors.into_inner().ok().and_then(|mut v| v.pop()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default())
}

/// The next ID of a run whose IDs were all taken: from `more` (one worker at a time asks
/// it; the others wait, then take what it brought), or `None` when it has no more.
/// `selected` counts the IDs it brings.
fn refill(
    queue: &Mutex<VecDeque<String>>,
    more: Option<(&More<'_>, &AtomicUsize)>,
) -> Option<String> {
    let (more, selected) = more?;
    let mut next = more.lock().ok()?;
    loop {
        // Brought by another worker meanwhile, or queued by an attempt of this run.
        if let Some(id) = queue.lock().ok()?.pop_front() {
            return Some(id);
        }
        if STOP.load(Ordering::SeqCst) {
            return None;
        }
        let ids = (*next)()?;
        selected.fetch_add(ids.len(), Ordering::SeqCst);
        queue.lock().ok()?.extend(ids);
    }
}

/// The destinations a background delivery holding a slot has a working connection to,
/// written in its slot file ([`advertise`]), one [`Route`] a line; also what names a
/// destination among the runner's deliveries in progress (`wake.rs`).
pub(super) fn route_line(r: &Route) -> String {
    rsendmail::text::printable(&format!("{r:?}")).replace('\n', " ")
}

/// Write the destinations this process's connections work for in its slot file, for
/// background deliveries starting meanwhile to leave their message to it
/// ([`running_one_follows`]).
pub(super) fn advertise(slot: &std::fs::File) {
    use std::io::{Seek, Write};
    let text: String = cache::worked_routes()
        .iter()
        .map(|r| route_line(r) + "\n")
        .collect();
    let mut f = slot;
    let _ = f.set_len(0);
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.write_all(text.as_bytes());
}

/// Whether a background delivery that holds a slot has a working connection to every
/// destination of entry `id`, a message not tried yet whose recipients are all remote:
/// then that delivery takes it over its connection when its own work is done (its look
/// at the queue after giving its slot back finds it at the latest: [`FollowUp`]), and
/// this one leaves it to it rather than opening another connection.
pub(super) fn running_one_follows(engine: &Engine, spool: &Spool, id: &str) -> bool {
    let Ok(e) = spool.read_entry(id) else {
        return false;
    };
    if e.envelope.mode != 'b' || e.state.attempts != 0 {
        return false;
    }
    let mut routes = Vec::new();
    for (i, r) in e.envelope.recipients.iter().enumerate() {
        if e.state.of(i).is_final() {
            continue;
        }
        let to = route(engine, &r.address);
        if to == Route::Local {
            return false;
        }
        routes.push(route_line(&to));
    }
    if routes.is_empty() {
        return false;
    }
    let Ok(dir) = spool.subdir("slots") else {
        return false;
    };
    (0..engine.max_background).any(|n| {
        let Ok(f) = rsendmail::spool::open_safely(
            &dir.join(n.to_string()),
            std::fs::OpenOptions::new().read(true),
            rsendmail::spool::Kind::File,
        ) else {
            return false;
        };
        // Free: nobody to leave it to.
        if f.try_lock_shared().is_ok() {
            return false;
        }
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::Read::take(&f, 64 * 1024), &mut text);
        let lines: Vec<&str> = text.lines().collect();
        routes.iter().all(|r| lines.contains(&r.as_str()))
    })
}

/// Deliver one entry now (interactive or background mode): `id`, or the ids of a message
/// and the report its submission queued, joined by commas (delivered in that order; a
/// report that returns the header only marked `+`).
pub fn deliver_entry(
    s: &Setup,
    engine: &Engine,
    id: &str,
    background: bool,
    note: Option<&str>,
) -> Result<Sysexit, Fatal> {
    // One id, or the ids of a message and its submission's report joined by commas; a
    // report the submission made that returns the header only is marked `+`: sent as a
    // report made in this run (without `SIZE=`, as sendmail sends one from memory).
    let ids: Vec<String> = id
        .split(',')
        .map(|i| match i.strip_prefix('+') {
            Some(report) => {
                super::bounce::made_here(report);
                report.to_string()
            }
            None => i.to_string(),
        })
        .collect();
    if let Some(bad) = ids.iter().find(|i| !rsendmail::spool::valid_id(i)) {
        return Err(Fatal::new(Sysexit::Usage, format!("bad queue id {bad}")));
    }
    if background {
        // A slot, or a marker a slot's holder takes (src/deliver/background.rs).
        return super::background::deliver(s, engine, id, ids);
    }
    let verbose = s.inv.verbose;
    let results = deliver_ids_then(
        engine,
        &s.spool,
        ids,
        verbose,
        false,
        note,
        None,
        None,
        None,
        Part::All,
    );
    close_connections(verbose);
    let results = results?;
    // What an ordinary user's delivery could only defer for want of root went to the
    // root queue runner (`background::hand_to_root_runner`): `-v` tells so.
    if verbose {
        for addr in results.iter().flat_map(|a| &a.handed) {
            rsendmail::tell!("{addr}... handed to the queue runner");
        }
    }
    Ok(run_status(&results, engine.error_mode))
}

/// `--entry ID[,ID...] --queued` (`rsendmail-admin bounce`): one attempt at each entry
/// named, in order, in this one process, as a queue run makes it, when it can be locked
/// (another delivery holding it, it is left to that one). The entries the attempts
/// queue (their reports) are not sent here: once an entry's attempt is recorded (the
/// entry removed when it is done), each report is named on stdout in a line
/// `queued RID`, then the entry in a line `done ID`, or `failed ID REASON` when its
/// attempt failed (REASON printable, on one line; the others are attempted all the
/// same); an entry that could not be locked is said by what was found instead: `busy
/// ID` (another process holds it), `held ID` (moved to `hold/` meanwhile) or `gone ID`
/// (no queue file any more), for the caller to hand the reports to the queue runner
/// or a background delivery, so that a relay that is slow or never greets keeps no one
/// waiting. An entry with no line of its own was not reached (the process was killed).
/// A report is queued once whatever happens before the entry goes: a later attempt finds it by its
/// ID ([`rsendmail::spool::report_queue_id`]) and names it again.
pub fn attempt_entry(spool: &Spool, engine: &Engine, arg: &str) -> Result<Sysexit, Fatal> {
    let ids: Vec<&str> = arg.split(',').collect();
    if let Some(bad) = ids.iter().find(|i| !rsendmail::spool::valid_id(i)) {
        return Err(Fatal::new(Sysexit::Usage, format!("bad queue id {bad}")));
    }
    for id in ids {
        match attempt_one(spool, engine, id) {
            Ok(Taken::Done) => rsendmail::outln!("done {id}"),
            Ok(Taken::Not) => {
                let found = |sp: &Spool| std::fs::symlink_metadata(sp.qf_path(id)).is_ok();
                let what = if found(spool) {
                    "busy"
                } else if found(&spool.held()) {
                    "held"
                } else {
                    "gone"
                };
                rsendmail::outln!("{what} {id}");
            }
            Err(f) => {
                let why = f.message.replace(['\n', '\r'], " ");
                rsendmail::outln!("failed {id} {}", rsendmail::text::printable(&why));
            }
        }
    }
    Ok(Sysexit::Ok)
}

/// What [`attempt_one`] came to.
enum Taken {
    /// The entry was attempted (and, when it was done, removed).
    Done,
    /// The entry could not be taken at first: another process holds it, or it is no
    /// longer in the queue.
    Not,
}

/// [`attempt_entry`] of entry `id`: its reports named on stdout as they are queued.
fn attempt_one(spool: &Spool, engine: &Engine, id: &str) -> Result<Taken, Fatal> {
    // A return asked for during the attempt is recorded when the entry is let go of,
    // and carried out by a second attempt at once.
    for round in 0..2 {
        let mut locked = match lock_for_attempt(spool, id, None) {
            Ok(l) => l,
            Err(NotLocked::MovedAside) => {
                return Err(Fatal::new(
                    Sysexit::DataErr,
                    format!(
                        "its queue file is damaged: moved to {}",
                        spool.dir.join("corrupt").display()
                    ),
                ));
            }
            Err(NotLocked::Skipped) if round == 0 => return Ok(Taken::Not),
            Err(NotLocked::Skipped) => return Ok(Taken::Done),
        };
        let mut w = Worker::new(0);
        let mut out: Transcript<'_> = None;
        let a = attempt(engine, spool, &mut locked, &mut w, &mut out, None);
        w.close(&mut out);
        close_connections(false);
        let a = a?;
        let returned = !a.removed && is_return(&locked);
        if a.removed {
            let removals = Removals::new(spool);
            removals.finish(locked);
            removals.flush();
        } else {
            drop(locked);
        }
        for queued in &a.new_entries {
            rsendmail::outln!("queued {queued}");
        }
        if !returned {
            break;
        }
    }
    Ok(Taken::Done)
}

/// Whether `locked` carries a mark asking for its return (`rsendmail-admin bounce`
/// during its delivery), recorded when it is let go of.
fn is_return(locked: &LockedEntry) -> bool {
    locked
        .mark_after_end()
        .is_some_and(|m| matches!(m.request, rsendmail::spool::Request::Bounce { .. }))
}

/// How many other entries a background delivery sends over one session of the
/// connections its own message went out on ([`FollowUp`]); then they QUIT, and the
/// entries still coming go over new ones.
pub const FOLLOW_MAX: usize = 100;

/// How many queue entries, newest first, a background delivery looks at for them.
pub const FOLLOW_SCAN: usize = 1000;

/// "When one goes, the rest follows": a background delivery that holds a slot
/// (src/deliver/background.rs) sends other queued entries in the same process, over the
/// cached connections where they lead to the same hosts, [`FOLLOW_MAX`] of them per
/// session, found among the [`FOLLOW_SCAN`] newest entries at each look:
/// - entries for the destinations this process delivered to over a connection that
///   stayed usable (every open recipient routed to such a relay or MX domain), once
///   their back-off has expired;
/// - entries never tried yet, submitted for background delivery (`-odb`), whose
///   recipients are all remote (a background delivery that found another process with
///   working connections to all its destinations left its message to it:
///   [`running_one_follows`]). (`-odq` and `-odd` entries wait for a queue run, as
///   sendmail promises; an `-odi` one is its caller's process's. Local recipients are
///   left to their own delivery or the root runner: another user's process cannot write
///   their mailbox.)
///
/// Each is locked before it is read and sent; one locked by another process is skipped,
/// so no message is delivered twice. While the slot is held, the destinations its
/// connections work for are written in the slot file ([`advertise`]).
pub(super) struct FollowUp<'a> {
    engine: &'a Engine,
    spool: &'a Spool,
    own: Vec<String>,
    /// Taken over the current session (may pass [`FOLLOW_MAX`]: more were there).
    taken: std::sync::atomic::AtomicUsize,
}

impl<'a> FollowUp<'a> {
    /// The follow-ups of a background delivery of `own` (never taken again).
    pub(super) fn new(engine: &'a Engine, spool: &'a Spool, own: Vec<String>) -> Self {
        FollowUp {
            engine,
            spool,
            own,
            taken: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn eligible(&self, l: &LockedEntry) -> bool {
        let e = &l.entry;
        if self.own.contains(&e.envelope.id) || !e.state.is_due(rsendmail::clock::now(), 0) {
            return false;
        }
        let fresh = e.state.last_attempt.is_none() && e.state.attempts == 0;
        // Queued for a queue run (`-odq`, `-odd`, an expansion): not before it; an
        // interactive submission's own process reports to its caller.
        if fresh && e.envelope.mode != 'b' {
            return false;
        }
        let mut open = e
            .envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(i, _)| !e.state.of(*i).is_final())
            .peekable();
        open.peek().is_some()
            && open.all(|(_, r)| {
                let to = route(self.engine, &r.address);
                to != Route::Local && (fresh || cache::works(&to))
            })
    }

    fn candidates(&self) -> Vec<String> {
        let Ok(mut ids) = self.spool.ids() else {
            return Vec::new();
        };
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.retain(|id| !self.own.contains(id));
        ids.truncate(FOLLOW_SCAN);
        ids
    }

    /// One look at the queue, the entries found sent: whether any was taken (or more
    /// than this session's share was there: the next pass opens a new session).
    pub(super) fn pass(&self, slot: &std::fs::File) -> bool {
        if STOP.load(Ordering::SeqCst) {
            return false;
        }
        if self.taken.load(Ordering::SeqCst) >= FOLLOW_MAX {
            // This session carried its share: the next entries get a new one.
            cache::close_all(&mut None);
            self.taken.store(0, Ordering::SeqCst);
        }
        advertise(slot);
        let accepted = std::sync::atomic::AtomicUsize::new(0);
        // Counted when accepted: the bound holds whatever the entry's outcome.
        let accept = |l: &LockedEntry| {
            let ok = self.eligible(l) && self.taken.fetch_add(1, Ordering::SeqCst) < FOLLOW_MAX;
            if ok {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            ok
        };
        if let Err(e) = deliver_ids_then(
            self.engine,
            self.spool,
            self.candidates(),
            false,
            false,
            None,
            Some(&accept),
            None,
            None,
            Part::All,
        ) {
            log::error!("{e}");
            return false;
        }
        accepted.load(Ordering::SeqCst) > 0 || self.taken.load(Ordering::SeqCst) > FOLLOW_MAX
    }

    /// Whether an entry this process would take is there (looked at after the slot was
    /// given back).
    pub(super) fn left(&self) -> bool {
        self.candidates()
            .into_iter()
            .any(|id| matches!(self.spool.lock_entry(&id), Ok(Some(l)) if self.eligible(&l)))
    }
}

/// How often a background delivery with a cached connection looks whether the spool
/// changed ([`linger`]).
const LINGER_POLL: Duration = Duration::from_millis(20);

/// While this process has a cached connection (until `O ConnectionCacheTimeout=` QUITs
/// it), wait for the spool directory to change (a new entry committed): true when it
/// did. The directory's modification time is looked at, not its listing, so that
/// waiting costs nothing however long the queue.
pub(super) fn linger(spool: &Spool) -> bool {
    let mtime = || {
        std::fs::metadata(&spool.dir)
            .and_then(|m| m.modified())
            .ok()
    };
    let last = mtime();
    while cache::any_idle() && !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(LINGER_POLL);
        if mtime() != last {
            return true;
        }
    }
    false
}

/// The exit status of the attempts of a run: their counts added up (see
/// [`exit_status`]).
fn run_status(attempts: &[Attempt], error_mode: char) -> Sysexit {
    let mut c = super::record::Counts::default();
    for a in attempts {
        c.delivered += a.counts.delivered;
        c.deferred += a.counts.deferred;
        c.failed_rcpt += a.counts.failed_rcpt;
        c.failed_data += a.counts.failed_data;
        c.failed_host += a.counts.failed_host;
        c.failed_sender += a.counts.failed_sender;
        c.failed_sender_dataerr += a.counts.failed_sender_dataerr;
        c.expired += a.counts.expired;
        c.failed_usage += a.counts.failed_usage;
        c.failed_cant_create += a.counts.failed_cant_create;
        c.local_exit = c.local_exit.or(a.counts.local_exit);
        c.failed_config += a.counts.failed_config;
        c.first_refusal = c.first_refusal.or(a.counts.first_refusal);
    }
    exit_status(&c, error_mode)
}

/// Set by SIGTERM/SIGINT, and by SIGHUP in a periodic runner: a queue run starts no
/// more deliveries, finishes those it holds and stops.
static STOP: AtomicBool = AtomicBool::new(false);

/// Whether the process is stopping (SIGTERM, SIGINT, SIGHUP's restart): nothing new is
/// begun.
pub(super) fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Set by SIGTERM/SIGINT only: the deliveries in progress get [`STOP_GRACE`] to end.
static TERM: AtomicBool = AtomicBool::new(false);

/// Set by SIGHUP in a periodic runner: it finishes its deliveries in progress (under
/// their normal SMTP timeouts, never abandoned for the restart), then a daemon's runner
/// exits (the daemon runs a new one) and a standalone `-q<interval>` executes itself
/// again, as sendmail's queue runner restarts on SIGHUP.
static RESTART: AtomicBool = AtomicBool::new(false);

/// A root periodic runner's hold of `slots/runner`
/// ([`super::background::hold_runner_mark`]): from its start until it stops for good,
/// through a restart's wait for its deliveries (the exec lets it go; the new program
/// takes it again at once).
static MARK: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Hold `slots/runner` when this root periodic runner does not yet (another runner held
/// it, or it could not be made): at start, and each second while the runner listens.
pub(super) fn hold_mark(spool: &Spool) {
    if !privs::is_root() || TERM.load(Ordering::SeqCst) {
        return;
    }
    if let Ok(mut m) = MARK.lock()
        && m.is_none()
    {
        let pid = match RELOAD_PID.load(Ordering::SeqCst) {
            0 => std::process::id(),
            p => p,
        };
        let at = match RELOAD_AT.load(Ordering::SeqCst) {
            0 => rsendmail::clock::now(),
            t => t,
        };
        *m = super::background::hold_runner_mark(spool, pid, at);
    }
}

/// The process a reload is sent to, named in `slots/runner`: the daemon of a daemon's
/// runner (its SIGHUP restarts both), else the runner itself (0: not set).
static RELOAD_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// When this runner (this image of it: a SIGHUP restart executes it anew) started, after
/// reading its configuration: the time named in `slots/runner`, whenever the mark is
/// taken (0: not set).
static RELOAD_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Let `slots/runner` go, unless the runner is restarting (SIGHUP): a runner that stops
/// for good is expected by nobody, and the submissions made meanwhile deliver
/// themselves.
pub(super) fn let_go_of_mark_unless_restarting() {
    if !RESTART.load(Ordering::SeqCst) || TERM.load(Ordering::SeqCst) {
        let_go_of_mark();
    }
}

fn let_go_of_mark() {
    if let Ok(mut m) = MARK.lock() {
        m.take();
    }
}

/// How long a runner stopped by SIGTERM/SIGINT waits for deliveries in progress before
/// it exits anyway. A delivery cut after its
/// message went out but before the server's reply to the final dot was read leaves its
/// entry queued, and the message is sent again by the next run, so the wait must cover
/// a slow server's reply (a `systemctl stop` must not duplicate mail). A restart
/// (SIGHUP) never cuts a delivery. An interrupted delivery leaves its entry as it was
/// (state updates are atomic); a runner with nothing in progress exits at once.
const STOP_GRACE: Duration = Duration::from_secs(60);

pub fn queue_run(
    s: &Setup,
    engine: &Engine,
    argv: &[std::ffi::OsString],
) -> Result<Sysexit, Fatal> {
    // Before the fork: a missing queue directory, or one everyone may write, is the
    // caller's to hear (78).
    s.spool.check_present()?;
    s.spool.check_safe()?;
    app::may_process_queue(&s.spool)?;
    let q: QueueRunArgs = s.inv.queue_run.clone().unwrap_or_default();
    if let Some(group) = q.unknown_group() {
        // sendmail's words; nothing runs and the status stays 0 (recorded: `q-G-unknown`).
        rsendmail::tell!("Queue group {group} unknown");
        return Ok(Sysexit::Ok);
    }
    let is_periodic = q.interval.is_some() || q.persistent;
    if let Some(passed) = super::serve::check_passed(s) {
        // A restart's check of this start (only a periodic run is checked): all is there.
        rsendmail::outln!("{}", passed?);
        return Ok(Sysexit::Ok);
    }
    // A periodic runner restarted by SIGHUP is the same process, already in the
    // background.
    let restarted = super::serve::take_runner_restarted();
    if restarted {
        inherit_successors();
    }
    if !q.foreground && !s.inv.verbose && !restarted {
        // sendmail: a queue run forks and the caller returns at once.
        // SAFETY: single-threaded at this point; the child only continues this program.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => return Ok(Sysexit::Ok),
            Ok(nix::unistd::ForkResult::Child) => privs::detach(),
            Err(e) => return Err(Fatal::new(Sysexit::OsErr, format!("cannot fork: {e}"))),
        }
    }
    if !is_periodic {
        // A plain -q (or a -qR/-qS/-qI selection) tries every selected entry now. SIGTERM
        // (cron's end, a shutdown, `timeout`) stops it in good order too: the
        // transactions in progress get their replies recorded, within STOP_GRACE.
        stop_in_good_order()?;
        // -v numbers the entries of the whole run (`sequence N of M`): one batch.
        let batch = if s.inv.verbose {
            usize::MAX
        } else {
            queue::SWEEP_BATCH
        };
        let mut run = queue::batches(&s.spool, Some(&q), engine.min_queue_age, batch)?
            .ordered(engine.queue_sort_order, engine.max_queue_run);
        let attempts = deliver_batches(engine, &s.spool, &mut run, &q, false, s.inv.verbose)?;
        // `-q -v`: the status says what became of the recipients, as an interactive
        // delivery's does (recorded: reason-rcpt550-q-v exits 67).
        return Ok(if s.inv.verbose {
            run_status(&attempts, engine.error_mode)
        } else {
            Sysexit::Ok
        });
    }
    periodic(s, engine, &q, None, Some(argv))
}

/// SIGTERM and SIGINT set `flag` (a long-running process then ends in good order).
pub fn stop_on_signals(flag: &'static AtomicBool) -> Result<(), Fatal> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        let r =
            unsafe { signal_hook::low_level::register(sig, || flag.store(true, Ordering::SeqCst)) };
        if let Err(e) = r {
            return Err(Fatal::new(
                Sysexit::OsErr,
                format!("cannot handle signals: {e}"),
            ));
        }
    }
    Ok(())
}

/// On SIGTERM/SIGINT, take no more entries ([`STOP`]) and give the deliveries in
/// progress [`STOP_GRACE`] to end (a reply to the final dot read and recorded), then
/// exit: a signal that killed at once would turn every transaction in flight into a
/// resend on the next run.
fn stop_in_good_order() -> Result<(), Fatal> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // SAFETY: the handler only stores to atomics.
        let r = unsafe {
            signal_hook::low_level::register(sig, || {
                TERM.store(true, Ordering::SeqCst);
                STOP.store(true, Ordering::SeqCst);
            })
        };
        if let Err(e) = r {
            return Err(Fatal::new(
                Sysexit::OsErr,
                format!("cannot handle signals: {e}"),
            ));
        }
    }
    std::thread::spawn(|| {
        while !TERM.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let_go_of_mark();
        std::thread::sleep(STOP_GRACE);
        log::info!("queue runner stopped (deliveries in progress were abandoned)");
        std::process::exit(0);
    });
    Ok(())
}

/// SIGHUP in a periodic runner: [`RESTART`], which [`periodic`] takes up (a standalone
/// runner checks the new start and starts its successor before it sets [`STOP`]).
fn restart_on_sighup() -> Result<(), Fatal> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGHUP, || {
            RESTART.store(true, Ordering::SeqCst);
        })
    }
    .map(|_| ())
    .map_err(|e| Fatal::new(Sysexit::OsErr, format!("cannot handle signals: {e}")))
}

/// The daemon's queue runner follows its daemon (`--daemon-pid PID`), first of all: on
/// Linux it asks for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`, set again here:
/// the kernel clears it when a set-user-id or set-group-id program is executed), then
/// exits at once if its parent is no longer `daemon` (it died before the request).
/// Elsewhere [`periodic`] notices at its next wake-up.
pub fn follow_daemon(daemon: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with an integer argument changes only this process's settings.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
    }
    if nix::unistd::getppid().as_raw() != daemon {
        std::process::exit(0);
    }
}

/// The persistent runner: wake every interval, try the entries whose back-off expired,
/// until SIGTERM/SIGINT, or (a daemon's runner, `daemon` its pid) until its parent is
/// not the daemon any more (looked at every 50 ms between runs: the daemon was killed
/// where no parent-death signal is sent). A standalone runner (`-q<time>`, its argv in
/// `pid_argv`) writes `O PidFile=` as sendmail does, and removes it when it stops; a
/// daemon's runner leaves that file to its daemon.
pub fn periodic(
    s: &Setup,
    engine: &Engine,
    q: &QueueRunArgs,
    daemon: Option<i32>,
    pid_argv: Option<&[std::ffi::OsString]>,
) -> Result<Sysexit, Fatal> {
    if pid_argv.is_some() {
        super::serve::refuse_second_daemon(s)?;
    }
    stop_in_good_order()?;
    restart_on_sighup()?;
    // The handlers are in place: signals held across a restart's exec are taken now.
    super::serve::release_held_signals();
    if let Some(argv) = pid_argv {
        super::serve::write_pid_file(s, argv);
    }
    let interval = Duration::from_secs(q.interval.unwrap_or(0).max(1));
    RELOAD_AT.store(rsendmail::clock::now(), Ordering::SeqCst);
    if let Some(d) = daemon.and_then(|d| u32::try_from(d).ok()) {
        RELOAD_PID.store(d, Ordering::SeqCst);
    }
    hold_mark(&s.spool);
    cache::keep_between_runs();
    match daemon.filter(|_| super::serve::is_successor()) {
        Some(old) => log::info!(
            "queue runner of the reloaded configuration started, interval {}s, while pid={old} finishes its deliveries",
            interval.as_secs()
        ),
        None => log::info!("queue runner started, interval {}s", interval.as_secs()),
    }
    // The runners the restart that executed this program started: they took the new
    // work while it finished; told to finish in turn once this one listens.
    finish_once_listening(std::mem::take(
        &mut *INHERITED.lock().unwrap_or_else(|p| p.into_inner()),
    ));
    loop {
        // Whether the new start was checked at the signal, and the successor started.
        let mut checked = false;
        let mut successor: Option<i32> = None;
        // The wake-up endpoint, served beside the interval's runs (src/deliver/wake.rs);
        // this thread takes SIGHUP up.
        std::thread::scope(|scope| {
            scope.spawn(|| super::wake::serve(s, engine, &STOP));
            scope.spawn(|| periodic_runs(s, engine, q, interval, daemon));
            while !STOP.load(Ordering::SeqCst) {
                if RESTART.load(Ordering::SeqCst) && !TERM.load(Ordering::SeqCst) {
                    match pid_argv.filter(|_| daemon.is_none()) {
                        // A standalone runner: a runner of the new configuration takes
                        // the new work at once, while this one lets its deliveries in
                        // progress end (under their usual timeouts) with the old one.
                        Some(argv) => match super::serve::start_successor(argv) {
                            Ok(pid) => {
                                checked = true;
                                successor = pid;
                                STOP.store(true, Ordering::SeqCst);
                            }
                            Err(why) => {
                                log::error!(
                                    "SIGHUP: not restarting: {why}; running on with the configuration read at start"
                                );
                                RESTART.store(false, Ordering::SeqCst);
                            }
                        },
                        // The daemon's runner finishes and exits: the daemon runs a new one.
                        None => STOP.store(true, Ordering::SeqCst),
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        cache::close_all(&mut None);
        if !RESTART.load(Ordering::SeqCst) || TERM.load(Ordering::SeqCst) {
            finish_once_listening(successor.into_iter().collect());
            break;
        }
        if daemon.is_some() {
            // The daemon runs a new runner (at once when it restarts itself).
            log::info!("queue runner finished its deliveries (SIGHUP); exiting");
            return Ok(Sysexit::Ok);
        }
        log::info!("queue runner finished its deliveries; restarting (SIGHUP)");
        let mut successors = SUCCESSORS.lock().map(|m| m.clone()).unwrap_or_default();
        successors.extend(successor);
        // Returns only when the restart was refused or could not be executed (said):
        // the runner runs on as it was, and its successor finishes.
        super::serve::restart_runner(s, &TERM, &successors, checked);
        finish_once_listening(successor.into_iter().collect());
        STOP.store(TERM.load(Ordering::SeqCst), Ordering::SeqCst);
        RESTART.store(false, Ordering::SeqCst);
        if STOP.load(Ordering::SeqCst) {
            break;
        }
    }
    let_go_of_mark();
    log::info!("queue runner stopped");
    if pid_argv.is_some() {
        super::serve::remove_pid_file(s);
    }
    Ok(Sysexit::Ok)
}

/// The runners a restart of this standalone runner started ([`super::serve::take_successors`]),
/// read at start, before any thread.
static INHERITED: Mutex<std::collections::BTreeSet<i32>> =
    Mutex::new(std::collections::BTreeSet::new());

/// The runners this process started on SIGHUP or inherited from its restart that it has
/// not reaped yet: named to the program a restart executes, which reaps them.
static SUCCESSORS: Mutex<std::collections::BTreeSet<i32>> =
    Mutex::new(std::collections::BTreeSet::new());

/// Read the runners a restart of this standalone runner started, at its start.
pub fn inherit_successors() {
    let pids = super::serve::take_successors();
    if let Ok(mut m) = INHERITED.lock() {
        *m = pids;
    }
}

/// Tell runners `pids`, children of this process that follow it (a restart's
/// successors), to finish their deliveries and exit (SIGHUP) once this runner listens
/// on the wake-up endpoint (or after 10 seconds), and reap them, in a thread of its own.
fn finish_once_listening(pids: std::collections::BTreeSet<i32>) {
    if pids.is_empty() {
        return;
    }
    if let Ok(mut m) = SUCCESSORS.lock() {
        m.extend(pids.iter().copied());
    }
    std::thread::spawn(move || {
        let since = std::time::Instant::now();
        while !super::wake::listening()
            && !STOP.load(Ordering::SeqCst)
            && since.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for &pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
        for &pid in &pids {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            log::info!("queue runner finished, pid={pid}");
            if let Ok(mut m) = SUCCESSORS.lock() {
                m.remove(&pid);
            }
        }
    });
}

/// The periodic runner's runs, one each interval, until SIGTERM/SIGINT.
fn periodic_runs(
    s: &Setup,
    engine: &Engine,
    q: &QueueRunArgs,
    interval: Duration,
    daemon: Option<i32>,
) {
    let orphaned = || daemon.is_some_and(|d| nix::unistd::getppid().as_raw() != d);
    while !STOP.load(Ordering::SeqCst) {
        let started = std::time::Instant::now();
        // sendmail: -qR/-qS/-qI selections ignore back-off.
        let batch = if s.inv.verbose {
            usize::MAX
        } else {
            queue::SWEEP_BATCH
        };
        match queue::batches(&s.spool, Some(q), engine.min_queue_age, batch)
            .map(|r| r.ordered(engine.queue_sort_order, engine.max_queue_run))
        {
            Ok(mut run) => {
                if let Err(e) = deliver_batches(engine, &s.spool, &mut run, q, true, s.inv.verbose)
                {
                    log::error!("{e}");
                }
            }
            Err(e) => log::error!("{e}"),
        }
        while started.elapsed() < interval && !STOP.load(Ordering::SeqCst) {
            if orphaned() {
                log::warn!("queue runner: the daemon is gone; stopping");
                STOP.store(true, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parallel_sessions;

    #[test]
    fn parallel_sessions_grow_with_the_queue_within_the_options() {
        // A short queue: one session (a fast server gets one per run).
        assert_eq!(parallel_sessions(4, 2, 12), 1);
        assert_eq!(parallel_sessions(4, 4, 49), 1);
        // One more per 50 entries, up to MaxConnections.
        assert_eq!(parallel_sessions(4, 4, 50), 2);
        assert_eq!(parallel_sessions(4, 4, 120), 3);
        // Up to one a worker, whatever the idle connections kept (2 by default).
        assert_eq!(parallel_sessions(4, 2, 1000), 4);
        assert_eq!(parallel_sessions(4, 1, 1000), 4);
        assert_eq!(parallel_sessions(4, 8, 1000), 4);
        assert_eq!(parallel_sessions(8, 2, 1000), 8);
        // ConnectionCacheSize=0 keeps none: each entry has its own session anyway.
        assert_eq!(parallel_sessions(4, 0, 1000), 1);
        assert_eq!(parallel_sessions(1, 4, 1000), 1);
    }
}

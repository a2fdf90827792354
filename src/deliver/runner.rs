//! Step one, and the loop around the rest: which entries a run takes (`-q`, `-qR/-qS/
//! -qI`, the periodic runner, one entry for `-odi`/`-odb`), how many workers deliver
//! them in parallel (`O MaxConnections=`), the entry lock each attempt holds, and
//! stopping in good order on SIGTERM.

use super::attempt::{Attempt, Worker, attempt};
use super::engine::Engine;
use super::record::exit_status;
use super::smtp::Transcript;
use super::transcript::Transcripts;
use rsendmail::app::{self, Setup};
use rsendmail::exit::{Fatal, Sysexit};
use rsendmail::privs;
use rsendmail::queue;
use rsendmail::selection::QueueRunArgs;
use rsendmail::spool::{LockedEntry, Spool};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Remove an entry whose recipients are all final; if that fails, record the final state
/// so that nobody delivers it again.
fn finish(mut locked: LockedEntry) {
    let state = locked.pending_state.take();
    if let Err(e) = locked.remove() {
        log::error!("{e}");
        if let Some(st) = state
            && let Err(e) = locked.record_state(st)
        {
            log::error!("{e}");
        }
    }
}

/// Deliver entries with up to `workers` connections in parallel.
pub fn deliver_ids(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    verbose: bool,
    queue_run: bool,
) -> Result<Vec<Attempt>, Fatal> {
    deliver_ids_then(engine, spool, ids, verbose, queue_run, None)
}

/// [`deliver_ids`], and `note` printed on stdout (made printable) once the entries are
/// done, before the connections close: what the submission left to say after the
/// delivery (one worker: an interactive delivery).
fn deliver_ids_then(
    engine: &Engine,
    spool: &Spool,
    ids: Vec<String>,
    verbose: bool,
    queue_run: bool,
    note: Option<&str>,
) -> Result<Vec<Attempt>, Fatal> {
    let queue = Mutex::new(VecDeque::from(ids));
    let results = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
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
            .min(queue.lock().map(|q| q.len()).unwrap_or(1))
            .max(1)
    } else {
        engine
            .max_connections
            .min(queue.lock().map(|q| q.len()).unwrap_or(1))
            .max(1)
    };
    let total = queue.lock().map(|q| q.len()).unwrap_or(0);
    // The entries selected; the reports and expansions their attempts queue go out in
    // the same run, on the same connections, without a `Running` line of their own (as
    // sendmail delivers a bounce).
    let selected: std::collections::HashSet<String> = queue
        .lock()
        .map(|q| q.iter().cloned().collect())
        .unwrap_or_default();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let queue = &queue;
            let results = &results;
            let errors = &errors;
            let selected = &selected;
            scope.spawn(move || {
                let mut w = Worker::new(worker);
                // -v: the dialogue on stdout (-X: the SMTP client logs its own traffic).
                let mut sink = Transcripts {
                    stdout: verbose.then(std::io::stdout),
                };
                let mut seq = 0;
                loop {
                    if STOP.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(id) = next else { break };
                    let own = selected.contains(&id);
                    seq += usize::from(own);
                    let mut out: Transcript<'_> = sink.get();
                    let locked = match spool.lock_entry(&id) {
                        Ok(Some(l)) => l,
                        Ok(None) => continue,
                        Err(rsendmail::spool::ReadError::Corrupt(why)) => {
                            log::error!("qf{id}: corrupt queue file moved aside: {why}");
                            if let Err(e) = spool.move_corrupt(&id) {
                                log::error!("qf{id}: not moved aside: {e}");
                            }
                            continue;
                        }
                        Err(e) => {
                            log::error!("qf{id}: {e}");
                            continue;
                        }
                    };
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
                    let mut locked = locked;
                    match attempt(engine, spool, &mut locked, &mut w, &mut out) {
                        Ok(a) => {
                            if a.removed {
                                finish(locked);
                            } else {
                                drop(locked);
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
                            }
                            if let Ok(mut r) = results.lock() {
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
                if worker == 0
                    && let Some(n) = note
                {
                    rsendmail::outln!("{}", rsendmail::text::printable(n));
                }
                let mut out: Transcript<'_> = sink.get();
                w.close(&mut out);
            });
        }
    });
    if let Some(e) = errors.into_inner().ok().and_then(|mut v| v.pop()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default())
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
    let results = deliver_ids_then(engine, &s.spool, ids, verbose, false, note)?;
    Ok(run_status(&results, engine.error_mode))
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
    }
    exit_status(&c, error_mode)
}

/// Set by SIGTERM/SIGINT: a queue run finishes the entries it holds and stops.
static STOP: AtomicBool = AtomicBool::new(false);

/// How long a stopping runner waits for deliveries in progress before it exits anyway.
/// An interrupted delivery leaves its entry as it was (state updates are atomic).
const STOP_GRACE: Duration = Duration::from_secs(3);

pub fn queue_run(s: &Setup, engine: &Engine) -> Result<Sysexit, Fatal> {
    app::may_process_queue(&s.spool)?;
    let q: QueueRunArgs = s.inv.queue_run.clone().unwrap_or_default();
    let is_periodic = q.interval.is_some() || q.persistent;
    if !q.foreground && !s.inv.verbose {
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
        let sweep = queue::sweep(&s.spool, Some(&q), engine.min_queue_age)?;
        for id in &sweep.corrupt {
            rsendmail::outln!("qf{id}: corrupt queue file moved to corrupt/");
        }
        let ids = sweep.to_try(&q, false);
        let attempts = deliver_ids(engine, &s.spool, ids, s.inv.verbose, true)?;
        // `-q -v`: the status says what became of the recipients, as an interactive
        // delivery's does (recorded: reason-rcpt550-q-v exits 67).
        return Ok(if s.inv.verbose {
            run_status(&attempts, engine.error_mode)
        } else {
            Sysexit::Ok
        });
    }
    periodic(s, engine, &q)
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
    stop_on_signals(&STOP)?;
    std::thread::spawn(|| {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(STOP_GRACE);
        log::info!("queue runner stopped (deliveries in progress were abandoned)");
        std::process::exit(0);
    });
    Ok(())
}

/// The persistent runner: wake every interval, try the entries whose back-off expired,
/// until SIGTERM/SIGINT.
pub fn periodic(s: &Setup, engine: &Engine, q: &QueueRunArgs) -> Result<Sysexit, Fatal> {
    stop_in_good_order()?;
    let interval = Duration::from_secs(q.interval.unwrap_or(0).max(1));
    log::info!("queue runner started, interval {}s", interval.as_secs());
    // The wake-up endpoint, served beside the interval's runs (src/deliver/wake.rs).
    std::thread::scope(|scope| {
        scope.spawn(|| super::wake::serve(s, engine, &STOP));
        periodic_runs(s, engine, q, interval);
    });
    log::info!("queue runner stopped");
    Ok(Sysexit::Ok)
}

/// The periodic runner's runs, one each interval, until SIGTERM/SIGINT.
fn periodic_runs(s: &Setup, engine: &Engine, q: &QueueRunArgs, interval: Duration) {
    while !STOP.load(Ordering::SeqCst) {
        let started = std::time::Instant::now();
        match queue::sweep(&s.spool, Some(q), engine.min_queue_age) {
            Ok(sweep) => {
                // sendmail: -qR/-qS/-qI selections ignore back-off.
                let due = sweep.to_try(q, true);
                if let Err(e) = deliver_ids(engine, &s.spool, due, s.inv.verbose, true) {
                    log::error!("{e}");
                }
            }
            Err(e) => log::error!("{e}"),
        }
        while started.elapsed() < interval && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

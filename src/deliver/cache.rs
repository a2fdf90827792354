//! The connection cache (sendmail's MCI cache): SMTP connections a deliverer process
//! keeps open while idle, so that the next message to the same hosts goes over the same
//! session, RSET first (`Session::reset_for_reuse`), instead of a new connection.
//!
//! - One cache per process, shared by the run's workers ([`super::runner`]) and by the
//!   runs of a long-lived process (the periodic runner).
//! - A connection is in the cache only while no transaction uses it: a worker takes it
//!   out for a transaction ([`acquire`]) and puts it back after ([`put`]), so that a worker
//!   holds at most one connection at a time. Connections to one host are therefore never
//!   more than the workers (`O MaxConnections=`). A connection that carries the next
//!   message's commands already (sent with the last final dot: `smtp::State::Primed`)
//!   stays with its worker, still counted as busy, until that message's transaction.
//! - `O ConnectionCacheSize=` (2) idle connections are kept; a third put back makes the
//!   one idle longest QUIT. 0 keeps none: each connection QUITs after its entry.
//! - `O ConnectionCacheTimeout=` (5 seconds, `engine::CACHE_TIMEOUT`): a connection idle
//!   longer is QUIT, by [`acquire`] when it would be used, and by a reaper thread while the
//!   process does other work or waits. A `-v` run has no reaper: as sendmail's `mci_scan`,
//!   the next [`acquire`] QUITs every connection idle too long, each with
//!   `RCPTS... Closing connection to [ip]` on the transcript (compat case
//!   cache-idle-timeout-q-v).
//! - When the work is done ([`close_all`], at the end of a one-shot delivery or queue run),
//!   every cached connection QUITs, `Closing connection to [ip]` on the `-v` transcript.
//! - A cached connection that died while idle (the server closed it, sent 421, refused
//!   RSET) is found out by the RSET before its next transaction; `attempt::Conn::get`
//!   then opens a new one for the message, which was not sent on the dead one.
//! - A worker that needs hosts whose only connection another worker is using waits up to
//!   [`WAIT_FOR_BUSY`] for it ([`acquire`]) before it opens a second one: a fast server
//!   gets one session per run, a slow one up to `O MaxConnections=` in parallel. A queue
//!   run of many entries lets its workers keep [`parallel`] connections to the same hosts
//!   busy before they wait (`runner::parallel_sessions`).
//! - A run's entries take their connection in the run's order (sendmail delivers a
//!   run's entries one after another, in priority order): each entry a worker takes
//!   from the run has its turn ([`take_turn`]); of the workers that want a connection
//!   to the same hosts, the one with the earliest turn gets it first, and a worker whose
//!   entry's hosts are not known yet (its turn taken, [`acquire`] not reached) is waited
//!   for, up to [`WAIT_FOR_BUSY`], by the later ones (compat case etrn-form-at-domain:
//!   without it a busy machine sent c, a, b for sendmail's c, b, a). Workers for
//!   different hosts still go in parallel.
//! - `O MaxConnections=` bounds the connections to the same hosts in the whole process,
//!   whichever run or delivery thread opens them (the periodic runner delivers several
//!   destinations' entries at once, and an entry for a host may go with another
//!   destination's): one more waits for one of them to be put back or given up, up to
//!   [`WAIT_FOR_LIMIT`] (or until the process stops), and is deferred after that.

use super::plan::{Relay, Route};
use super::smtp::{Session, Transcript};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// What a cached connection is kept for: its hosts, and whether they are MX hosts (TLS
/// and AUTH differ from a relay's).
pub type Key = (Relay, bool);

/// How long a worker waits for the connection another worker is using to the same hosts
/// before it opens one of its own (within `O MaxConnections=`).
pub const WAIT_FOR_BUSY: Duration = Duration::from_millis(500);

/// How long a delivery waits for one of the `O MaxConnections=` connections to its
/// hosts to be free before its message is deferred.
pub const WAIT_FOR_LIMIT: Duration = Duration::from_secs(600);

/// [`acquire`] found `O MaxConnections=` connections to the hosts in use for
/// [`WAIT_FOR_LIMIT`], or the process is stopping.
#[derive(Debug)]
pub struct Full;

thread_local! {
    /// The turn in its run of the entry this thread is delivering ([`take_turn`]).
    static TURN: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    /// How many connections to the same hosts [`acquire`] lets this thread's run have at
    /// once before it waits for a busy one ([`parallel`]).
    static PARALLEL: std::cell::Cell<usize> = const { std::cell::Cell::new(1) };
}

/// How many connections to the same hosts the run on this thread may have at once before
/// a worker waits for a busy one: 1 unless [`set_parallel`] changed it.
pub fn parallel() -> usize {
    PARALLEL.with(std::cell::Cell::get)
}

/// Set [`parallel`] for the calling thread (a queue run's worker:
/// `runner::parallel_sessions`).
pub fn set_parallel(n: usize) {
    PARALLEL.with(|p| p.set(n.max(1)));
}

/// The next turn [`take_turn`] or [`turn_ahead`] gives: one order for every run of
/// the process.
static NEXT_TURN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The entry the calling worker took from its run comes now: it gets the next turn,
/// counted as not yet knowing its hosts until its first [`acquire`] (or [`end_turn`]).
pub fn take_turn() {
    let t = NEXT_TURN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    lock().unknown.insert(t);
    TURN.with(|c| c.set(Some(t)));
}

/// A turn for an entry locked ahead of its attempt (`attempt::Lookahead`), which goes
/// on the connection its worker holds; [`set_turn`] makes it the thread's when its
/// attempt starts.
pub fn turn_ahead() -> u64 {
    NEXT_TURN.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// The calling worker now delivers the entry of turn `t` ([`turn_ahead`]).
pub fn set_turn(t: u64) {
    TURN.with(|c| c.set(Some(t)));
}

/// The calling worker's entry wants no connection (its plan has no transaction): no
/// later entry waits for it.
pub fn wants_no_connection() {
    if let Some(t) = TURN.with(std::cell::Cell::get)
        && lock().unknown.remove(&t)
    {
        CACHE.changed.notify_all();
    }
}

/// The calling worker's entry is done: no later entry waits for it any more.
pub fn end_turn() {
    if let Some(t) = TURN.with(std::cell::Cell::take)
        && lock().unknown.remove(&t)
    {
        CACHE.changed.notify_all();
    }
}

struct Idle {
    key: Key,
    session: Session,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    /// Idle connections, the one put back last at the end.
    idle: Vec<Idle>,
    /// Connections taken out for a transaction, by key.
    busy: Vec<Key>,
    /// Workers waiting in [`acquire`] for a busy connection, by key, with their
    /// entry's turn (`u64::MAX`: outside a run's order).
    waiting: Vec<(Key, u64)>,
    /// The turns taken whose entry has not reached [`acquire`] yet ([`take_turn`]).
    unknown: std::collections::BTreeSet<u64>,
    /// `O ConnectionCacheSize=`, `O ConnectionCacheTimeout=`, `O MaxConnections=` (0:
    /// no bound) (set by [`configure`]).
    size: usize,
    max: usize,
    timeout: Duration,
    reaper: bool,
    /// A `-v` run: the reaper leaves expired connections to [`acquire`], which says
    /// their closing on the transcript (set by [`configure`]).
    said: bool,
}

struct Cache {
    inner: Mutex<Inner>,
    /// Signalled when a connection is put back or given up.
    changed: Condvar,
}

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache {
    inner: Mutex::new(Inner {
        size: 2,
        timeout: super::engine::CACHE_TIMEOUT,
        ..Inner::default()
    }),
    changed: Condvar::new(),
});

fn lock() -> std::sync::MutexGuard<'static, Inner> {
    CACHE.inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Set the cache's size and idle time, and the connections to the same hosts the
/// process may have at once, `max` (from the engine, before the first delivery).
/// `verbose`: a `-v` run, whose transcript says each idle connection's closing when the
/// next connection is wanted (no reaper closes them unsaid meanwhile).
pub fn configure(size: usize, timeout: Duration, max: usize, verbose: bool) {
    let mut c = lock();
    c.size = size;
    c.timeout = timeout;
    c.max = max;
    c.said = verbose;
}

/// A connection for `key`, counted as busy until it is [`put`] back: the idle one used
/// last (`Ok(Some)`), or, when there is none, leave to open one (`Ok(None)`). While other
/// workers are using `parallel` connections to `key` (or more), wait up to `wait` for one
/// to be put back (one session for a fast server when `parallel` is 1); while the
/// process has `O MaxConnections=` connections to `key` open, wait for one up to
/// [`WAIT_FOR_LIMIT`], then `Err(Full)` (as when the process stops meanwhile).
/// Connections idle past the timeout (to any hosts) are closed first, each with
/// `LABEL... Closing connection to [ip]` on `out` (`label`: the recipients the
/// connection is wanted for), as sendmail's `mci_get` closes them.
pub fn acquire(
    key: &Key,
    wait: Duration,
    parallel: usize,
    out: &mut Transcript<'_>,
    label: &str,
) -> Result<Option<Session>, Full> {
    let started = Instant::now();
    let deadline = started + wait;
    // An earlier entry whose hosts are not known yet is waited for this long at most.
    let order_deadline = started + WAIT_FOR_BUSY;
    let turn = TURN.with(std::cell::Cell::get);
    let mut expired = Vec::new();
    let got = {
        let mut c = lock();
        if let Some(t) = turn
            && c.unknown.remove(&t)
        {
            CACHE.changed.notify_all();
        }
        let got = loop {
            expired.extend(drain_expired(&mut c));
            let now = Instant::now();
            // Served in the run's order: no earlier entry waits for these hosts, nor
            // (for a moment) may still want them.
            let first = turn.is_none_or(|t| {
                !c.waiting.iter().any(|(k, w)| k == key && *w < t)
                    && (now >= order_deadline || c.unknown.range(..t).next().is_none())
            });
            if first && let Some(at) = c.idle.iter().rposition(|i| &i.key == key) {
                break Ok(Some(c.idle.remove(at).session));
            }
            let busy = c.busy.iter().filter(|k| *k == key).count();
            let full = c.max > 0 && busy >= c.max;
            if first && !full && (busy < parallel.max(1) || now >= deadline) {
                break Ok(None);
            }
            if full && (now.duration_since(started) >= WAIT_FOR_LIMIT || super::runner::stopping())
            {
                break Err(Full);
            }
            // At the bound: looked at again at least twice a second (a stop). Behind an
            // earlier entry: until it is served or known (a notice), looked at again
            // often.
            let until = if full {
                now + Duration::from_millis(500)
            } else if !first {
                now + Duration::from_millis(50)
            } else {
                deadline
            };
            c.waiting.push((key.clone(), turn.unwrap_or(u64::MAX)));
            c = match CACHE
                .changed
                .wait_timeout(c, until.saturating_duration_since(now))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            if let Some(at) = c
                .waiting
                .iter()
                .position(|(k, w)| k == key && *w == turn.unwrap_or(u64::MAX))
            {
                c.waiting.remove(at);
            }
        };
        if got.is_ok() {
            c.busy.push(key.clone());
        }
        got
    };
    // The next in the run's order may be served now.
    CACHE.changed.notify_all();
    for s in expired {
        s.close_for(label, out);
    }
    got
}

/// Whether another worker may need the connection to `key` in use: then it goes back to
/// the cache after its transaction, for that worker, rather than carrying its worker's
/// next message ahead (`smtp::State::Primed`), which would keep it from the cache and
/// make the waiting worker open one more. A worker waiting in [`acquire`] for `key`
/// counts, and so does an entry taken earlier whose hosts are not known yet (it may want
/// this connection, and the entry carried ahead would go before it); but only while
/// `parallel` ([`parallel`]) connections to `key` or more are in use: below that, either
/// takes a connection of its own as soon as its turn comes ([`acquire`]), and keeping
/// this one primed makes it wait for nothing. (A run whose workers outnumber its
/// sessions to one host would otherwise hardly ever send a message ahead: some worker
/// is nearly always reading its next entry.)
pub fn others_waiting(key: &Key, parallel: usize) -> bool {
    let c = lock();
    let busy = c.busy.iter().filter(|k| *k == key).count();
    busy >= parallel.max(1) && (c.waiting.iter().any(|(k, _)| k == key) || !c.unknown.is_empty())
}

/// Put back a connection [`acquire`]d: kept idle when it
/// is usable and the cache has room, else closed (QUIT). The one idle longest that a
/// full cache lets go says `Closing connection to [ip]` on `out`. `None`: the connection
/// was given up; it is no longer counted.
pub fn put(key: &Key, session: Option<Session>, out: &mut Transcript<'_>) {
    let mut closing = Vec::new();
    let mut evicted = Vec::new();
    {
        let mut c = lock();
        if let Some(at) = c.busy.iter().position(|k| k == key) {
            c.busy.remove(at);
        }
        if let Some(s) = session {
            if s.is_usable() && c.size > 0 {
                c.idle.push(Idle {
                    key: key.clone(),
                    session: s,
                    since: Instant::now(),
                });
                while c.idle.len() > c.size {
                    evicted.push(c.idle.remove(0).session);
                }
                if !c.reaper {
                    c.reaper = true;
                    std::thread::spawn(reaper);
                }
            } else if !s.quit_sent {
                closing.push(s);
            }
        }
    }
    CACHE.changed.notify_all();
    quit(closing);
    // One put out of a full cache says so on `-v`, as sendmail's `mci_uncache` does
    // (`Closing connection to [ip]`): every connection opened gets its line.
    for s in evicted {
        s.close(out);
    }
}

/// Set by a long-lived process (the periodic runner): its runs leave their connections
/// cached for the next run, and they QUIT as their idle time passes.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keep the connections between the runs of this process (see [`KEEP`]).
pub fn keep_between_runs() {
    KEEP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`keep_between_runs`] was called.
pub fn kept_between_runs() -> bool {
    KEEP.load(std::sync::atomic::Ordering::SeqCst)
}

/// QUIT every cached connection (the work is done), with `Closing connection to [ip]` on
/// `out`.
pub fn close_all(out: &mut Transcript<'_>) {
    let all: Vec<Idle> = std::mem::take(&mut lock().idle);
    for i in all {
        i.session.close(out);
    }
}

/// Destinations a transaction delivered to over a connection that stayed usable, in
/// this process.
static WORKED: Mutex<Vec<Route>> = Mutex::new(Vec::new());

/// Note that a connection to `route` works.
pub fn worked(route: Route) {
    let mut w = WORKED.lock().unwrap_or_else(|p| p.into_inner());
    if !w.contains(&route) {
        w.push(route);
    }
}

/// The destinations whose connection worked in this process ([`worked`]).
pub fn worked_routes() -> Vec<Route> {
    WORKED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Whether any connection is cached (idle, within its idle time).
pub fn any_idle() -> bool {
    !lock().idle.is_empty()
}

/// Whether a connection to `route` worked in this process.
pub fn works(route: &Route) -> bool {
    WORKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(route)
}

/// The idle connections past the timeout, taken out of the cache.
fn drain_expired(c: &mut Inner) -> Vec<Session> {
    let timeout = c.timeout;
    let mut out = Vec::new();
    let mut k = 0;
    while k < c.idle.len() {
        if c.idle.get(k).is_some_and(|i| i.since.elapsed() >= timeout) {
            out.push(c.idle.remove(k).session);
        } else {
            k += 1;
        }
    }
    out
}

fn quit(sessions: Vec<Session>) {
    for s in sessions {
        s.close(&mut None);
    }
}

/// QUIT connections as their idle time passes, while the process does other work.
fn reaper() {
    loop {
        let (expired, pause) = {
            let mut c = lock();
            let expired = if c.said {
                Vec::new()
            } else {
                drain_expired(&mut c)
            };
            (
                expired,
                (c.timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            )
        };
        quit(expired);
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn key(host: &str) -> Key {
        (vec![(host.to_string(), 25)], false)
    }

    /// Take the connection to `k` in the turn of an entry taken earlier, note `name` in
    /// `order` once it is had, hold it a moment, give it up.
    fn deliver(k: &Key, turn: u64, name: &'static str, order: &Mutex<Vec<&'static str>>) {
        set_turn(turn);
        assert!(acquire(k, Duration::from_secs(5), 1, &mut None, "x").is_ok());
        order.lock().unwrap().push(name);
        std::thread::sleep(Duration::from_millis(20));
        put(k, None, &mut None);
        end_turn();
    }

    /// Three entries of a run for the same hosts, taken c, b, a by three workers: b's
    /// worker is slow to know its hosts, and a's asks for the connection first while c's
    /// holds it. They are still served c, b, a. An entry for other hosts taken after them
    /// gets its connection while c's is held (once b's hosts are known).
    #[test]
    fn entries_for_the_same_hosts_are_served_in_the_runs_order() {
        let k = key("order.example");
        let order = Mutex::new(Vec::new());
        // The run's workers take their entries in order: c, b, a, then d (other hosts).
        let mut turns = Vec::new();
        for _ in 0..4 {
            take_turn();
            turns.push(TURN.with(std::cell::Cell::get).unwrap());
        }
        TURN.with(|c| c.set(None));
        let (c, b, a, d) = (turns[0], turns[1], turns[2], turns[3]);
        std::thread::scope(|s| {
            let order = &order;
            let k = &k;
            let (held_tx, held_rx) = mpsc::channel();
            let (d_tx, d_rx) = mpsc::channel();
            s.spawn(move || {
                set_turn(c);
                assert!(acquire(k, Duration::from_secs(5), 1, &mut None, "c").is_ok());
                order.lock().unwrap().push("c");
                held_tx.send(()).unwrap();
                let d_served = d_rx.recv_timeout(Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(50));
                put(k, None, &mut None);
                end_turn();
                assert!(d_served.is_ok(), "d waited for c's connection");
            });
            held_rx.recv().unwrap();
            s.spawn(move || deliver(k, a, "a", order));
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                deliver(k, b, "b", order);
            });
            s.spawn(move || {
                deliver(&key("other.example"), d, "d", order);
                d_tx.send(()).unwrap();
            });
        });
        let order = order.into_inner().unwrap();
        let same: Vec<_> = order.iter().filter(|n| **n != "d").collect();
        assert_eq!(same, [&"c", &"b", &"a"], "{order:?}");
    }

    /// An earlier entry that wants no connection (its recipients are local) does not
    /// keep a later one waiting for its turn while it delivers.
    #[test]
    fn an_entry_without_connections_keeps_no_later_one_waiting() {
        take_turn();
        let local = TURN.with(std::cell::Cell::get).unwrap();
        take_turn();
        let remote = TURN.with(std::cell::Cell::get).unwrap();
        TURN.with(|c| c.set(None));
        let k = key("after-local.example");
        std::thread::scope(|s| {
            let (planned_tx, planned_rx) = mpsc::channel();
            let (done_tx, done_rx) = mpsc::channel::<()>();
            s.spawn(move || {
                set_turn(local);
                wants_no_connection();
                planned_tx.send(()).unwrap();
                // Its local deliveries take a while.
                let _ = done_rx.recv_timeout(Duration::from_secs(5));
                end_turn();
            });
            planned_rx.recv().unwrap();
            set_turn(remote);
            let started = Instant::now();
            assert!(acquire(&k, Duration::from_secs(5), 1, &mut None, "r").is_ok());
            let waited = started.elapsed();
            put(&k, None, &mut None);
            end_turn();
            done_tx.send(()).unwrap();
            assert!(waited < WAIT_FOR_BUSY / 2, "waited {waited:?}");
        });
    }
}

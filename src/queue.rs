//! Queue runs (`-q`, `-qR/-qS/-qI`), as far as the spool goes: the run removes what crashes
//! left behind, moves unparseable entries aside, keeps the fast-flush index in step with
//! the entries, and takes each selected entry's delivery lock exactly as a deliverer does.
//!
//! Delivery itself is in `src/deliver/`, compiled into `rsendmail-deliver` only.

use crate::clock;
use crate::exit::Fatal;
use crate::options::QueueSortOrder;
use crate::selection::QueueRunArgs;
use crate::spool::entry::{Envelope, State};
use crate::spool::{GRACE, IdKey, Peeked, ReadError, Spool, id_key, index, key_str};
use std::collections::BTreeSet;

/// What a sweep found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub selected: Vec<String>,
    /// For each of `selected`, in its order: whether its back-off (or MinQueueAge) has
    /// not expired, and whether it was tried less than MinQueueAge ago (then it is not
    /// due either). Two flags, not sets of IDs: a sweep of 100,000 deferred entries
    /// holds each ID once.
    pub waits: Vec<Wait>,
    /// For each of `selected`, in its order: the entry as the sweep read it, for its
    /// attempt to take again without reading it ([`Spool::lock_peeked`]).
    pub read: Vec<Peeked>,
    pub busy: Vec<String>,
    pub corrupt: Vec<String>,
    /// The selected entries not due whose local recipients have a schedule of their
    /// own (`State::local_next_attempt`), with when they are due: the periodic runner
    /// tries their local part then. In a root run, one with a recipient a deliverer that
    /// was not root deferred for want of root (`State::deferred_for_root`) is due now.
    pub local_retries: Vec<(String, i64)>,
    pub cleaned: usize,
    pub index_rebuilt: bool,
}

impl Sweep {
    /// The selected entries a run tries, in the sweep's order (sendmail's priority order):
    /// - a selection (`-qI`, `-qR`, `-qS`, negated or not, empty or not, ETRN;
    ///   [`QueueRunArgs::is_selection`]) tries all of them, as sendmail does
    ///   (compat-tests/cases/minqueueage-qR-tried, minqueueage-qS-tried,
    ///   minqueueage-qI-tried, minqueueage-qnotR-tried, minqueueage-qR-empty);
    /// - a one-time run (`-q`, `-qf`, `-q -v`: `periodic` false) leaves out the entries
    ///   tried less than `MinQueueAge` ago, as sendmail's does (minqueueage-q-skips-tried,
    ///   minqueueage-qf-tried, minqueueage-q-tries-fresh, minqueueage-q-expired-age), and
    ///   tries the others whatever their back-off (a cron job's `-q` is the only runner);
    /// - the periodic runner (`-q30m`) also leaves out those whose back-off has not
    ///   expired.
    pub fn to_try(&self, q: &QueueRunArgs, periodic: bool) -> Vec<String> {
        Sweep {
            selected: self.selected.clone(),
            waits: self.waits.clone(),
            ..Sweep::default()
        }
        .into_try(q, periodic)
    }

    /// [`Sweep::to_try`], taking the sweep (no copy of its IDs).
    pub fn into_try(self, q: &QueueRunArgs, periodic: bool) -> Vec<String> {
        self.into_try_read(q, periodic).0
    }

    /// [`Sweep::into_try`], with the entries tried as the sweep read them
    /// ([`Sweep::read`]), in the same order.
    pub fn into_try_read(self, q: &QueueRunArgs, periodic: bool) -> (Vec<String>, Vec<Peeked>) {
        let skip = |w: &Wait| w.skipped(q, periodic);
        // In place: no second list of the IDs.
        let mut selected = self.selected;
        let mut waits = self.waits.iter();
        selected.retain(|_| !waits.next().is_some_and(skip));
        let mut read = self.read;
        let mut waits = self.waits.iter();
        read.retain(|_| !waits.next().is_some_and(skip));
        (selected, read)
    }
}

impl Wait {
    /// Whether a run leaves out the entry that waits so ([`Sweep::to_try`]): a selection
    /// never, the periodic runner one not due, a one-time run one tried less than
    /// MinQueueAge ago.
    pub fn skipped(&self, q: &QueueRunArgs, periodic: bool) -> bool {
        if q.is_selection() {
            false
        } else if periodic {
            self.not_due
        } else {
            self.too_young
        }
    }
}

/// Why a selected entry may wait (see [`Sweep::waits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wait {
    /// Its back-off (or MinQueueAge) has not expired.
    pub not_due: bool,
    /// It was tried less than MinQueueAge ago.
    pub too_young: bool,
}

/// How many entries a queue run opens, sorts and hands to its deliverers at a time
/// ([`Batches`]): a run over a long queue makes its first connection once it has opened
/// this many, not all of them.
pub const SWEEP_BATCH: usize = 1000;

/// Clean up, check the index, and lock every selected entry in turn: [`Batches`] with
/// one batch. `min_queue_age` is `O MinQueueAge=` in seconds (0: none); it fills
/// `waits`, and selects nothing by itself (see [`Sweep::to_try`]).
pub fn sweep(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    min_queue_age: i64,
) -> Result<Sweep, Fatal> {
    let mut run = batches(spool, filter, min_queue_age, usize::MAX)?;
    run.order = QueueSortOrder::Priority;
    let mut out = run.next_sweep().unwrap_or_default();
    out.cleaned = run.cleaned;
    out.index_rebuilt = run.index_rebuilt;
    Ok(out)
}

/// A queue run's entries, opened a batch at a time ([`batches`], [`Batches::next_sweep`]).
///
/// The spool is listed once (names only: 14 octets an entry) and the names sorted; each
/// batch is the next `batch` names in that order (queue IDs begin with the time of their
/// submission, so the oldest come first), each entry locked and read as
/// [`sweep`] does, and the batch put in sendmail's priority order. A run whose entries fit
/// in one batch takes them all in priority order, as sendmail does; a longer one keeps
/// that order within each batch, and starts delivering after its first batch.
pub struct Batches<'a> {
    spool: &'a Spool,
    filter: Option<&'a QueueRunArgs>,
    min_queue_age: i64,
    /// The order each batch is put in (`O QueueSortOrder=`; see [`Batches::ordered`]).
    pub order: QueueSortOrder,
    /// The selected names, sorted; those before `next` are opened.
    keys: Vec<IdKey>,
    /// The entries the listing found a state file or a journal of (sorted); `None`
    /// when the run did not list the spool (any entry may have one).
    states: Option<Vec<IdKey>>,
    next: usize,
    batch: usize,
    /// Leftovers the run removed ([`Sweep::cleaned`]).
    pub cleaned: usize,
    /// Whether the index was rebuilt ([`Sweep::index_rebuilt`]).
    pub index_rebuilt: bool,
}

/// Clean up, check the index and list the entries a run may take (names only), for
/// [`Batches::next_sweep`] to open `batch` of them at a time (at least one).
pub fn batches<'a>(
    spool: &'a Spool,
    filter: Option<&'a QueueRunArgs>,
    min_queue_age: i64,
    batch: usize,
) -> Result<Batches<'a>, Fatal> {
    let now = clock::now();
    spool.prepare()?;
    // Fast selection (docs/ARCHITECTURE.md, "The fast-flush index"): a -qR run with an
    // index opens only the entries the recipient index names as matching, so its time
    // does not depend on how many other entries there are. The index may list more than
    // is queued. A whole index (`index::Snapshot::whole`) names every committed entry;
    // one that may miss some (an append that failed, marked `stale.<ID>`) makes the run
    // list the spool and take the entries it does not name as candidates too. Opening
    // the candidates and applying the full filter below gives what a full scan gives.
    let needles = filter.and_then(QueueRunArgs::recipient_needles);
    let fast = needles.is_some() && index::present(spool);
    let mut cleaned = spool.clean_leftovers(now, GRACE, false)?.len();
    let mut index_rebuilt = false;
    // The IDs as 14-octet keys: a run over 100,000 entries holds each once, compactly.
    let mut with_state = None;
    let mut ids: Vec<IdKey> = if fast {
        Vec::new()
    } else {
        // One listing gives the entries and the state files, whose orphans (their entry
        // gone) are removed here; an entry without either is read without looking for
        // them ([`Spool::peek_entry`]).
        let (mut ids, mut states) = spool.listing()?;
        crate::spool::sort_keys(&mut ids);
        cleaned += spool.remove_orphan_states(&states, &ids).len();
        index_rebuilt = refresh_index(spool, &ids);
        crate::spool::sort_keys(&mut states);
        states.dedup();
        with_state = Some(states);
        ids
    };
    if let Some(n) = &needles {
        // One snapshot of the index, taken before the listing it is checked against
        // (`index::Snapshot`): an entry committed before it is either named by it or
        // unindexed in the listing, whatever rebuilds run meanwhile.
        let snap = index::snapshot(spool, None, n, !fast);
        let candidates = snap.matching();
        if fast && snap.whole() {
            // A whole index names every committed entry (the proof is in
            // `index`'s docs): no listing at all, so a -qR run costs the same in a
            // queue of 100,000 entries as in one of 100. Lines of entries finished
            // since are left out here (one look each), not reported busy.
            ids = candidates
                .iter()
                .filter(|id| spool.qf_path(id).exists())
                .filter_map(|id| id_key(id))
                .collect();
        } else {
            if fast {
                ids = spool.id_keys()?;
            }
            // Entries the index misses are candidates too (the index is a hint).
            let listed: Vec<String> = ids.iter().map(|k| key_str(k).to_string()).collect();
            let unindexed: BTreeSet<String> = snap.unindexed(&listed).into_iter().collect();
            ids.retain(|k| {
                let id = key_str(k);
                candidates.contains(id) || unindexed.contains(id)
            });
        }
    }
    if let Some(f) = filter {
        ids.retain(|k| f.id_may_match(key_str(k)));
    }
    crate::spool::sort_keys(&mut ids);
    Ok(Batches {
        spool,
        filter,
        min_queue_age,
        order: QueueSortOrder::Priority,
        keys: ids,
        states: with_state,
        next: 0,
        batch: batch.max(1),
        cleaned,
        index_rebuilt,
    })
}

impl Batches<'_> {
    /// The run's order, `O QueueSortOrder=`, over the whole run: an order other than
    /// sendmail's default (priority), or a run limited by `O MaxQueueRunSize=` (whose
    /// first entries in that order are the ones tried), opens every entry before the
    /// first is tried, in one batch, as sendmail sorts its whole work list.
    pub fn ordered(mut self, order: QueueSortOrder, max_run: usize) -> Self {
        self.order = order;
        if order != QueueSortOrder::Priority || max_run > 0 {
            self.batch = usize::MAX;
        }
        self
    }

    /// How many entries the listing gave (opened or not; some may turn out busy, gone
    /// or not selected).
    pub fn listed(&self) -> usize {
        self.keys.len()
    }

    /// Whether every listed entry has been opened.
    pub fn done(&self) -> bool {
        self.next >= self.keys.len()
    }

    /// The next batch: its entries locked in turn (and let go), those selected in
    /// sendmail's priority order, with what each waits for ([`Sweep::waits`]), the busy
    /// and the corrupt ones (moved aside). `None` once every listed entry was opened.
    /// `cleaned` and `index_rebuilt` are the run's, in [`Batches`].
    pub fn next_sweep(&mut self) -> Option<Sweep> {
        if self.done() && self.next > 0 {
            return None;
        }
        let end = self.next.saturating_add(self.batch).min(self.keys.len());
        let keys = self.keys.get(self.next..end).unwrap_or_default();
        self.next = end.max(1);
        Some(open_batch(
            self.spool,
            self.filter,
            self.min_queue_age,
            self.order,
            keys,
            self.states.as_deref(),
        ))
    }
}

/// Lock each of `keys` in turn (see [`Batches::next_sweep`]); `states`, the entries the
/// run's listing found a state file or journal of (`None`: not listed).
fn open_batch(
    spool: &Spool,
    filter: Option<&QueueRunArgs>,
    min_queue_age: i64,
    sort: QueueSortOrder,
    keys: &[IdKey],
    states: Option<&[IdKey]>,
) -> Sweep {
    let now = clock::now();
    let root = crate::privs::is_root();
    let mut out = Sweep::default();
    // sendmail's run order (its default QueueSortOrder=priority): the lowest priority
    // first ([`crate::mailq::priority`]: size, recipients, tries by queue runs), the
    // listing's order (recorded: `q-order-priority`, `q-order-tried`, `q-order-tried-odi`).
    // Among equal priorities sendmail takes the queue directory's order, which is
    // arbitrary; the oldest entry goes first here. Another `QueueSortOrder` puts its own
    // key first ([`sort_key`]).
    let mut order: Vec<Ordered> = Vec::new();
    for &key in keys {
        let id = key_str(&key).to_string();
        let has_state = states.is_none_or(|s| s.binary_search(&key).is_ok());
        match spool.peek_entry(&id, has_state) {
            Ok(None) => out.busy.push(id),
            Ok(Some(entry)) => {
                let Some(judged) = judge(
                    &id,
                    &entry.envelope,
                    &entry.state,
                    filter,
                    now,
                    min_queue_age,
                    root,
                ) else {
                    continue;
                };
                if let Some(t) = judged.local_retry {
                    out.local_retries.push((id.clone(), t));
                }
                let rcpts = open_recipients(&entry.envelope, &entry.state);
                let sort_key = sort_key(
                    sort,
                    &entry.envelope,
                    &entry.state,
                    entry.body_size(),
                    &rcpts,
                );
                order.push((sort_key, entry.envelope.created, key, judged.wait, entry));
            }
            Err(ReadError::Corrupt(why)) => {
                log::error!("qf{id}: corrupt queue file moved aside: {why}");
                match spool.move_corrupt(&id) {
                    Ok(()) => out.corrupt.push(id),
                    Err(e) => {
                        log::error!("qf{id}: not moved aside: {}", crate::config::io_text(&e));
                    }
                }
            }
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(ReadError::Io(e)) => {
                log::error!("qf{id}: cannot open: {}", crate::config::io_text(&e));
            }
        }
    }
    match sort {
        // The listing's order (queue ID order), unsorted.
        QueueSortOrder::None => {}
        QueueSortOrder::Random => shuffle(&mut order),
        _ => order.sort_unstable_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2))),
    }
    out.waits = order.iter().map(|o| o.3).collect();
    out.selected = Vec::with_capacity(order.len());
    out.read = Vec::with_capacity(order.len());
    for (_, _, key, _, entry) in order {
        out.selected.push(key_str(&key).to_string());
        out.read.push(entry);
    }
    out
}

/// A selected entry as [`open_batch`] sorts it: its sort key, when it was made, its ID,
/// what it waits for, and the entry as read.
type Ordered = ((String, i64), i64, IdKey, Wait, Peeked);

/// The addresses of an entry's recipients that are not final.
fn open_recipients<'e>(env: &'e Envelope, state: &State) -> Vec<&'e str> {
    env.recipients
        .iter()
        .enumerate()
        .filter(|(i, _)| !state.of(*i).is_final())
        .map(|(_, r)| r.address.as_str())
        .collect()
}

/// What a run's selection makes of an entry ([`judge`]).
struct Judged {
    wait: Wait,
    /// When its local recipients are due, while the entry is not ([`Sweep::local_retries`]).
    local_retry: Option<i64>,
}

/// Whether a run selects entry `id` of `env` and `state` at `now` (its filter, none for
/// a plain run), and what it waits for: `None` when the filter leaves it out.
fn judge(
    id: &str,
    env: &Envelope,
    state: &State,
    filter: Option<&QueueRunArgs>,
    now: i64,
    min_queue_age: i64,
    root: bool,
) -> Option<Judged> {
    let rcpts = open_recipients(env, state);
    if !filter.is_none_or(|f| f.selects(id, &env.sender, &rcpts)) {
        return None;
    }
    // A root run takes what waits only for a root deliverer whatever its back-off
    // (MinQueueAge still holds).
    let not_due = if root && state.waits_for_root(env.recipients.len()) {
        state.tried_within(now, min_queue_age)
    } else {
        !state.is_due(now, min_queue_age)
    };
    let wait = Wait {
        not_due,
        too_young: state.tried_within(now, min_queue_age),
    };
    // A root run takes the local part of an entry a deliverer that was not root left
    // for it (`needs the root queue runner`) now, whatever its remote recipients wait
    // for: that deliverer may have looked for a runner before this one held
    // `slots/runner`.
    let local_due = if root && state.deferred_for_root(env.recipients.len()) {
        Some(now)
    } else {
        state.local_next_attempt
    };
    Some(Judged {
        wait,
        local_retry: local_due.filter(|_| not_due),
    })
}

/// A run's choice of entries, to judge again an entry whose state changed between the
/// run's selection and its attempt (another process tried it meanwhile): the entry is
/// attempted only when the run would still take it ([`Selector::takes`]).
#[derive(Clone, Copy)]
pub struct Selector<'a> {
    filter: Option<&'a QueueRunArgs>,
    min_queue_age: i64,
    q: &'a QueueRunArgs,
    periodic: bool,
}

impl<'a> Selector<'a> {
    /// The choice of a run with `filter` and `min_queue_age` (as given to [`batches`])
    /// that tries what [`Sweep::into_try`] keeps for `q` and `periodic`.
    pub fn new(
        filter: Option<&'a QueueRunArgs>,
        min_queue_age: i64,
        q: &'a QueueRunArgs,
        periodic: bool,
    ) -> Self {
        Selector {
            filter,
            min_queue_age,
            q,
            periodic,
        }
    }

    /// Whether the run takes entry `env` in `state` now.
    pub fn takes(&self, env: &Envelope, state: &State) -> bool {
        judge(
            &env.id,
            env,
            state,
            self.filter,
            clock::now(),
            self.min_queue_age,
            crate::privs::is_root(),
        )
        .is_some_and(|j| !j.wait.skipped(self.q, self.periodic))
    }
}

/// Put `items` in a random order (Fisher-Yates, seeded by the standard library's random
/// hash keys: an even spread is all that is asked of it): `QueueSortOrder=random` here,
/// and the deliverer's smarthost list when it is to be taken in a random order.
pub fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        | 1;
    for i in (1..items.len()).rev() {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = usize::try_from(seed % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// [`sort_key`] of `entry` with its recipients still open: what `mailq` sorts by, the
/// same key as a queue run's.
pub fn sort_key_of(sort: QueueSortOrder, entry: &crate::spool::QueuedEntry) -> (String, i64) {
    let open = open_recipients(&entry.envelope, &entry.state);
    sort_key(
        sort,
        &entry.envelope,
        &entry.state,
        entry.body_size(),
        &open,
    )
}

/// What a queue run sorts an entry by first (sendmail's `sortq`, queue.c), the lowest
/// first; ties go by submission time, then queue ID:
/// - `priority`: the priority ([`crate::mailq::priority`]);
/// - `host`: the domain of its first recipient still open, lowercase and read backwards
///   (`gro.elpmaxe`: the subdomains of a domain together; no domain sorts first), then
///   the priority — sendmail's `w_host`, `strrev` of the first `R` line's domain;
/// - `time`: the submission time (sendmail's `w_ctime`);
/// - `filename`: the queue ID (the tie-break alone);
/// - `modification`: when the entry last changed, its last try or else its submission
///   (sendmail's queue file is rewritten at each try: its `w_mtime`);
/// - `random`, `none`: not sorted by a key.
fn sort_key(
    sort: QueueSortOrder,
    env: &Envelope,
    state: &State,
    body_size: u64,
    open: &[&str],
) -> (String, i64) {
    let priority = || crate::mailq::priority_of(env, state, body_size);
    match sort {
        QueueSortOrder::Priority => (String::new(), priority()),
        QueueSortOrder::Host => {
            let host = open
                .first()
                .and_then(|a| a.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase().chars().rev().collect::<String>())
                .unwrap_or_default();
            (host, priority())
        }
        QueueSortOrder::Time => (String::new(), env.created),
        QueueSortOrder::Modification => (String::new(), state.last_attempt.unwrap_or(env.created)),
        QueueSortOrder::Filename | QueueSortOrder::Random | QueueSortOrder::None => {
            (String::new(), 0)
        }
    }
}

/// The entries are the truth: rebuild the index when it is missing, misses one of `ids`
/// (sorted), or has grown well past what is queued (lines of finished entries are dropped
/// then). Returns whether it was rebuilt.
fn refresh_index(spool: &Spool, ids: &[IdKey]) -> bool {
    // Only the IDs are kept (sorted, 14 octets each), never the addresses: the check
    // costs little memory with 100,000 entries.
    let (indexed, lines) = index::indexed_ids(spool).unwrap_or_else(|e| {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("queue index: {}; rebuilt", crate::config::io_text(&e));
        }
        (Vec::new(), 0)
    });
    let bloated = index::bloated(lines, indexed.len(), ids.len());
    if index::present(spool) && !bloated && all_in(ids, &indexed) {
        return false;
    }
    match index::rebuild(spool) {
        Ok(_) => true,
        Err(e) => {
            log::warn!("cannot rebuild the queue index: {e}");
            false
        }
    }
}

/// Whether every key of `ids` is in `set` (both sorted): one walk over the two, where a
/// search of each in turn costs 17 comparisons a key at 100,000 entries.
fn all_in(ids: &[IdKey], set: &[IdKey]) -> bool {
    let mut set = set.iter().peekable();
    ids.iter().all(|id| {
        while set.next_if(|s| *s < id).is_some() {}
        set.peek().is_some_and(|s| *s == id)
    })
}

/// The entries with undelivered mail for `domain` (or its subdomains): read from the
/// per-domain lists, each candidate opened to confirm. An index that is missing is
/// rebuilt first.
pub fn select_domain(spool: &Spool, domain: &str, sub: bool) -> BTreeSet<String> {
    // The lists must have been made under this FastFlushDomains policy.
    if (!index::present(spool) || !index::policy_current(spool)) && index::rebuild(spool).is_err() {
        log::warn!("cannot rebuild the queue index");
    }
    // One snapshot (the domain's lists and the recipient index together), then the
    // listing: see `index::Snapshot`.
    let snap = index::snapshot(spool, Some((domain, sub)), &[], false);
    let mut candidates = snap.domain_ids().clone();
    // Entries the index misses are candidates too (the index is a hint); a whole index
    // misses none, and the spool is not listed (the flush of one domain costs the same
    // in a queue of 100,000 entries as in one of 100).
    if !snap.whole()
        && let Ok(all) = spool.ids()
    {
        candidates.extend(snap.unindexed(&all));
    }
    // Both forms of an internationalised domain are one: compared as domain keys.
    let d = crate::message::address::domain_key(domain);
    let suffix = format!(".{d}");
    let mut out = BTreeSet::new();
    for id in candidates {
        let Ok(e) = spool.read_entry(&id) else {
            continue;
        };
        let wanted = e.envelope.recipients.iter().enumerate().any(|(i, r)| {
            !e.state.of(i).is_final()
                && crate::message::address::domain_key_of(&r.address)
                    .is_some_and(|rd| rd == d || (sub && rd.ends_with(&suffix)))
        });
        if wanted {
            out.insert(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::{FilterField, QueueFilter, QueueRunArgs};
    use crate::spool::entry::test_envelope;
    use std::io::Write;

    /// A small deterministic generator: `rnd(n)` is in `0..n`.
    fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// What a full scan selects: every entry opened and filtered.
    fn full_scan(spool: &Spool, f: &QueueRunArgs) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for id in spool.ids().unwrap() {
            let e = spool.read_entry(&id).unwrap();
            let rcpts: Vec<&str> = e
                .envelope
                .recipients
                .iter()
                .map(|r| r.address.as_str())
                .collect();
            if f.selects(&id, &e.envelope.sender, &rcpts) {
                out.insert(id);
            }
        }
        out
    }

    /// The fast selection of a sweep with this one filter is what a full scan selects.
    fn same_as_full_scan(
        spool: &Spool,
        field: FilterField,
        negate: bool,
        needle: &str,
        round: usize,
    ) {
        let f = QueueRunArgs {
            filters: vec![QueueFilter {
                field,
                negate,
                substring: needle.into(),
            }],
            ..QueueRunArgs::default()
        };
        let fast: BTreeSet<String> = sweep(spool, Some(&f), 0)
            .unwrap()
            .selected
            .into_iter()
            .collect();
        assert_eq!(
            fast,
            full_scan(spool, &f),
            "round {round} {field:?} needle {needle} negate {negate}"
        );
    }

    #[test]
    fn fast_selection_equals_full_scan_on_random_queues() {
        let domains = [
            "example.org",
            "mail.example.org",
            "example.org.uk",
            "notexample.org",
            "Example.ORG",
            "other.net",
            "sub.other.net",
            "example.com",
        ];
        let locals = ["bob", "alice", "carol", "example", "org"];
        let mut rnd = xorshift(0x9e3779b97f4a7c15);
        for round in 0..6 {
            let scratch = crate::spool::ScratchSpool::new("fast");
            let (spool, dir) = (&scratch.spool, &scratch.spool.dir);
            for _ in 0..40 {
                let n = 1 + rnd(3);
                let rcpts: Vec<String> = (0..n)
                    .map(|_| {
                        format!(
                            "{}@{}",
                            locals[rnd(locals.len())],
                            domains[rnd(domains.len())]
                        )
                    })
                    .collect();
                let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
                let mut ne = spool.begin(clock::now()).unwrap();
                let env = test_envelope(&ne.id, &refs);
                ne.writer().write_all(env.to_text().as_bytes()).unwrap();
                ne.commit(&env).unwrap();
            }
            if round % 2 == 1 {
                // A lost index is rebuilt and gives the same answers.
                std::fs::remove_file(dir.join("index/recipients")).unwrap();
            }
            for needle in [
                "example.org",
                "EXAMPLE",
                ".org.uk",
                "bob@",
                "other.net",
                "zzz",
                "org",
            ] {
                for negate in [false, true] {
                    same_as_full_scan(spool, FilterField::Recipient, negate, needle, round);
                }
            }
            let id = spool.ids().unwrap()[0].clone();
            same_as_full_scan(spool, FilterField::QueueId, false, &id[4..], round);
        }
    }

    #[test]
    fn all_in_is_a_subset_test_of_sorted_keys() {
        let k = |s: &str| id_key(s).unwrap();
        let set = [
            k("00000000000001"),
            k("00000000000003"),
            k("00000000000005"),
        ];
        assert!(all_in(&[], &set));
        assert!(all_in(&[k("00000000000003")], &set));
        assert!(all_in(&set, &set));
        assert!(all_in(&[k("00000000000001"), k("00000000000001")], &set));
        assert!(!all_in(&[k("00000000000002")], &set));
        assert!(!all_in(&[k("00000000000001"), k("00000000000004")], &set));
        assert!(!all_in(&[k("00000000000006")], &set));
        assert!(!all_in(&[k("00000000000001")], &[]));
    }

    /// A run's one listing finds the state files whose entry is gone and removes them;
    /// a queued entry's state and a held entry's (left in the spool by a hold cut short)
    /// are kept.
    #[test]
    fn a_run_removes_orphaned_state_files_only() {
        use crate::spool::entry::{RcptState, State};
        let scratch = crate::spool::ScratchSpool::new("orphans");
        let spool = &scratch.spool;
        let mut ne = spool.begin(clock::now()).unwrap();
        let env = test_envelope(&ne.id, &["a@example.org"]);
        ne.writer().write_all(env.to_text().as_bytes()).unwrap();
        let queued = ne.id.clone();
        ne.commit(&env).unwrap();
        let mut locked = spool.lock_entry(&queued).unwrap().unwrap();
        let state = State {
            attempts: 1,
            recipients: vec![(0, RcptState::Deferred, None)],
            ..State::default()
        };
        locked.record_state(state).unwrap();
        drop(locked);
        let orphan = spool.sf_path("6AM5eIkR004036");
        std::fs::write(&orphan, "rsendmail-state 1\n").unwrap();
        let held = "6AM5eIkR004037";
        std::fs::create_dir_all(spool.held().dir.clone()).unwrap();
        std::fs::write(spool.held().qf_path(held), "held").unwrap();
        std::fs::write(spool.sf_path(held), "rsendmail-state 1\n").unwrap();
        let sw = sweep(spool, None, 0).unwrap();
        assert_eq!(sw.cleaned, 1);
        assert!(!orphan.exists());
        assert!(spool.sf_path(&queued).exists());
        assert!(spool.sf_path(held).exists());
        assert_eq!(sw.selected, vec![queued]);
    }

    /// A run in batches takes every entry once: the batches, in queue-ID order, give
    /// what one sweep gives, each batch in priority order; one batch is the sweep.
    #[test]
    fn batches_take_each_entry_once_in_priority_order_within_each() {
        let scratch = crate::spool::ScratchSpool::new("batches");
        let spool = &scratch.spool;
        let mut rnd = xorshift(0x1234_5678_9abc_def1);
        for _ in 0..23 {
            // 1 to 3 recipients: priorities 30000 apart.
            let rcpts: Vec<String> = (0..1 + rnd(3))
                .map(|i| format!("u{i}@example.org"))
                .collect();
            let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
            let mut ne = spool.begin(clock::now()).unwrap();
            let env = test_envelope(&ne.id, &refs);
            ne.writer().write_all(env.to_text().as_bytes()).unwrap();
            ne.commit(&env).unwrap();
        }
        let whole = sweep(spool, None, 0).unwrap();
        assert_eq!(whole.selected.len(), 23);
        let mut one = batches(spool, None, 0, usize::MAX).unwrap();
        assert_eq!(one.next_sweep().unwrap().selected, whole.selected);
        assert!(one.done() && one.next_sweep().is_none());
        let mut run = batches(spool, None, 0, 5).unwrap();
        assert_eq!(run.listed(), 23);
        let mut seen: Vec<String> = Vec::new();
        let mut last_of_batch = String::new();
        while let Some(b) = run.next_sweep() {
            assert!(b.selected.len() <= 5);
            let prio = |id: &String| crate::mailq::priority(&spool.read_entry(id).unwrap());
            assert!(b.selected.windows(2).all(|w| prio(&w[0]) <= prio(&w[1])));
            // Batches follow the queue IDs: each one's entries after the last one's.
            let mut ids = b.selected.clone();
            ids.sort();
            assert!(ids.first().is_none_or(|f| *f > last_of_batch));
            last_of_batch = ids.last().cloned().unwrap_or(last_of_batch);
            seen.extend(b.selected);
        }
        assert!(run.done());
        seen.sort();
        let mut all = whole.selected.clone();
        all.sort();
        assert_eq!(seen, all);
        // An empty queue: one empty batch, then none.
        let empty_spool = crate::spool::ScratchSpool::new("batches-empty");
        let mut empty = batches(&empty_spool.spool, None, 0, 5).unwrap();
        assert_eq!(empty.next_sweep(), Some(Sweep::default()));
        assert!(empty.next_sweep().is_none());
    }

    /// What each kind of run tries: a selection everything it selects, a one-time run
    /// all but the entries tried within MinQueueAge, the periodic runner also not those
    /// still in their back-off.
    #[test]
    fn runs_try_what_sendmail_tries() {
        use crate::spool::entry::{RcptState, State};
        let scratch = crate::spool::ScratchSpool::new("totry");
        let spool = &scratch.spool;
        let now = clock::now();
        // (last attempt, next attempt): never tried; tried a minute ago, due; tried two
        // hours ago, back-off running.
        let states = [
            None,
            Some((now - 60, now - 1)),
            Some((now - 7200, now + 600)),
        ];
        let mut ids = Vec::new();
        for st in states {
            let mut ne = spool.begin(now).unwrap();
            let env = test_envelope(&ne.id, &["a@example.org"]);
            ne.writer().write_all(env.to_text().as_bytes()).unwrap();
            let id = ne.id.clone();
            ne.commit(&env).unwrap();
            if let Some((last, next)) = st {
                let mut locked = spool.lock_entry(&id).unwrap().unwrap();
                let state = State {
                    attempts: 1,
                    last_attempt: Some(last),
                    next_attempt: Some(next),
                    recipients: vec![(0, RcptState::Deferred, None)],
                    ..State::default()
                };
                locked.record_state(state).unwrap();
            }
            ids.push(id);
        }
        let (fresh, recent, old) = (&ids[0], &ids[1], &ids[2]);
        let sorted = |v: &[&String]| {
            let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let plain = QueueRunArgs::default();
        let sel = QueueRunArgs {
            filters: vec![QueueFilter {
                field: FilterField::Recipient,
                negate: false,
                substring: "example.org".into(),
            }],
            ..QueueRunArgs::default()
        };
        let all = sorted(&[fresh, recent, old]);
        let sw = sweep(spool, Some(&plain), 3600).unwrap();
        assert_eq!(sw.to_try(&plain, false), sorted(&[fresh, old]));
        assert_eq!(sw.to_try(&plain, true), sorted(&[fresh]));
        let sw = sweep(spool, Some(&sel), 3600).unwrap();
        assert_eq!(sw.to_try(&sel, false), all);
        assert_eq!(sw.to_try(&sel, true), all);
        // An empty selection (`-qR`, `-qS`, `-qI`) matches every entry and is a
        // selection all the same; a negated empty one matches none.
        for field in [
            FilterField::Recipient,
            FilterField::Sender,
            FilterField::QueueId,
        ] {
            for negate in [false, true] {
                let empty = QueueRunArgs {
                    filters: vec![QueueFilter {
                        field,
                        negate,
                        substring: String::new(),
                    }],
                    ..QueueRunArgs::default()
                };
                let sw = sweep(spool, Some(&empty), 3600).unwrap();
                let want = if negate { Vec::new() } else { all.clone() };
                assert_eq!(sw.to_try(&empty, false), want, "{field:?} {negate}");
                assert_eq!(sw.to_try(&empty, true), want, "{field:?} {negate}");
            }
        }
        // Without MinQueueAge a one-time run tries everything.
        let sw = sweep(spool, Some(&plain), 0).unwrap();
        assert_eq!(sw.to_try(&plain, false), all);
        assert_eq!(sw.to_try(&plain, true), sorted(&[fresh, recent]));
    }

    /// An entry whose state changed between a run's selection and its attempt (another
    /// process tried it) is judged again as the run would judge it now; the listing's
    /// knowledge of state files decides whether the selection looks for one.
    #[test]
    fn a_run_judges_again_an_entry_tried_since_its_selection() {
        use crate::spool::entry::{RcptState, State};
        let scratch = crate::spool::ScratchSpool::new("rejudge");
        let spool = &scratch.spool;
        let now = clock::now();
        let mut ne = spool.begin(now).unwrap();
        let env = test_envelope(&ne.id, &["a@example.org"]);
        ne.writer().write_all(env.to_text().as_bytes()).unwrap();
        let id = ne.id.clone();
        ne.commit(&env).unwrap();
        let plain = QueueRunArgs::default();
        let sel = QueueRunArgs {
            filters: vec![QueueFilter {
                field: FilterField::Recipient,
                negate: false,
                substring: "example.org".into(),
            }],
            ..QueueRunArgs::default()
        };
        // Selected fresh, read as the selection read it.
        let mut run = batches(spool, Some(&plain), 3600, 10).unwrap();
        let (ids, read) = run.next_sweep().unwrap().into_try_read(&plain, true);
        assert_eq!(ids, vec![id.clone()]);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].envelope.id, id);
        // Tried meanwhile by another process: deferred for ten minutes.
        let tried = State {
            attempts: 1,
            last_attempt: Some(now),
            next_attempt: Some(now + 600),
            recipients: vec![(0, RcptState::Deferred, None)],
            ..State::default()
        };
        let mut locked = spool.lock_entry(&id).unwrap().unwrap();
        locked.record_state(tried.clone()).unwrap();
        drop(locked);
        let periodic = Selector::new(Some(&plain), 3600, &plain, true);
        let once = Selector::new(Some(&plain), 3600, &plain, false);
        let once_no_age = Selector::new(Some(&plain), 0, &plain, false);
        let flush = Selector::new(Some(&sel), 3600, &sel, true);
        assert!(periodic.takes(&env, &State::default()));
        assert!(
            !periodic.takes(&env, &tried),
            "the periodic runner waits for its back-off"
        );
        assert!(
            !once.takes(&env, &tried),
            "a one-time run keeps MinQueueAge"
        );
        assert!(once_no_age.takes(&env, &tried));
        assert!(
            flush.takes(&env, &tried),
            "a selection tries what it selects"
        );
        // Its recipient delivered meanwhile: a -qR of it no longer selects it.
        let done = State {
            recipients: vec![(0, RcptState::Delivered, None)],
            ..tried.clone()
        };
        assert!(!flush.takes(&env, &done));
        // The attempt's second look finds the state, whatever the selection saw.
        let (locked, changed) = spool.lock_peeked(read[0].clone()).unwrap().unwrap();
        assert!(changed);
        assert_eq!(locked.entry.state, tried);
        drop(locked);
        // The next run's listing names the state file: the selection reads it.
        let mut run = batches(spool, Some(&plain), 3600, 10).unwrap();
        let sweep = run.next_sweep().unwrap();
        assert_eq!(sweep.read[0].state, tried);
        assert_eq!(sweep.into_try(&plain, true), Vec::<String>::new());
    }

    /// ETRN's selection from the per-domain lists is what a full scan selects, on random
    /// queues of fresh (`-odq`/`-odd`) and deferred entries, some recipients already
    /// final, with subdomains and look-alike suffixes; with the index intact and lost.
    #[test]
    fn etrn_selection_equals_full_scan_on_random_queues() {
        use crate::spool::entry::{RcptState, State};
        let domains = [
            "example.org",
            "mail.example.org",
            "a.b.example.org",
            "example.org.uk",
            "notexample.org",
            "EXAMPLE.org",
            "other.net",
            "example.or",
        ];
        let mut rnd = xorshift(0x2545f4914f6cdd1d);
        let full_scan = |spool: &Spool, d: &str, sub: bool| -> BTreeSet<String> {
            let d = d.to_ascii_lowercase();
            let mut out = BTreeSet::new();
            for id in spool.ids().unwrap() {
                let e = spool.read_entry(&id).unwrap();
                let hit = e.envelope.recipients.iter().enumerate().any(|(i, r)| {
                    let rd = r.address.rsplit('@').next().unwrap().to_ascii_lowercase();
                    !e.state.of(i).is_final()
                        && (rd == d || (sub && rd.ends_with(&format!(".{d}"))))
                });
                if hit {
                    out.insert(id);
                }
            }
            out
        };
        for round in 0..6 {
            let scratch = crate::spool::ScratchSpool::new("etrn");
            let (spool, dir) = (&scratch.spool, &scratch.spool.dir);
            for _ in 0..50 {
                let n = 1 + rnd(3);
                let rcpts: Vec<String> = (0..n)
                    .map(|i| format!("u{i}@{}", domains[rnd(domains.len())]))
                    .collect();
                let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
                let mut ne = spool.begin(clock::now()).unwrap();
                let mut env = test_envelope(&ne.id, &refs);
                env.mode = ['q', 'd', 'b'][rnd(3)];
                ne.writer().write_all(env.to_text().as_bytes()).unwrap();
                let id = ne.id.clone();
                ne.commit(&env).unwrap();
                if rnd(2) == 0 {
                    // Tried and deferred; some recipients already delivered or failed.
                    let mut locked = spool.lock_entry(&id).unwrap().unwrap();
                    let states = [RcptState::Deferred, RcptState::Delivered, RcptState::Failed];
                    let state = State {
                        attempts: 1,
                        recipients: (0..n).map(|i| (i, states[rnd(3)], None)).collect(),
                        ..State::default()
                    };
                    locked.record_state(state).unwrap();
                }
            }
            if round % 2 == 1 {
                std::fs::remove_dir_all(dir.join("index")).unwrap();
                std::fs::create_dir(dir.join("index")).unwrap();
            }
            for d in [
                "example.org",
                "Example.Org",
                "org",
                "example.org.uk",
                "other.net",
                "b.example.org",
                "none.example",
            ] {
                for sub in [false, true] {
                    assert_eq!(
                        select_domain(spool, d, sub),
                        full_scan(spool, d, sub),
                        "round {round} domain {d} subdomains {sub}"
                    );
                }
            }
        }
    }
}

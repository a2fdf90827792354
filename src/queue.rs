//! Queue runs (`-q`, `-qR/-qS/-qI`), as far as the spool goes: the run removes what crashes
//! left behind, moves unparseable entries aside, keeps the fast-flush index in step with
//! the entries, and takes each selected entry's delivery lock exactly as a deliverer does.
//!
//! Delivery itself is in `src/deliver/`, compiled into `rsendmail-deliver` only.

use crate::clock;
use crate::exit::Fatal;
use crate::spool::{GRACE, ReadError, Spool, index};
use std::collections::BTreeSet;

/// What a sweep found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub selected: Vec<String>,
    /// The selected entries whose back-off (or MinQueueAge) has not expired.
    pub not_due: BTreeSet<String>,
    pub busy: Vec<String>,
    pub corrupt: Vec<String>,
    pub cleaned: usize,
    pub index_rebuilt: bool,
}

/// Clean up, check the index, and lock every selected entry in turn.
pub fn sweep(
    spool: &Spool,
    filter: Option<&crate::cli::QueueRunArgs>,
    min_queue_age: i64,
) -> Result<Sweep, Fatal> {
    let now = clock::now();
    spool.prepare()?;
    let mut out = Sweep {
        cleaned: spool.clean_leftovers(now, GRACE)?.len(),
        ..Sweep::default()
    };
    let mut ids = spool.ids()?;
    ids.sort();
    // The entries are the truth: rebuild the index when it is missing or misses one.
    let indexed: BTreeSet<String> = index::recipients(spool)
        .map(|v| v.into_iter().map(|(id, _)| id).collect())
        .unwrap_or_default();
    if !index::present(spool) || ids.iter().any(|id| !indexed.contains(id)) {
        if let Err(e) = index::rebuild(spool) {
            log::warn!("cannot rebuild the queue index: {e}");
        } else {
            out.index_rebuilt = true;
        }
    }
    for id in ids {
        match spool.lock_entry(&id) {
            Ok(None) => out.busy.push(id),
            Ok(Some(locked)) => {
                let env = &locked.entry.envelope;
                let rcpts: Vec<&str> = env
                    .recipients
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !locked.entry.state.of(*i).is_final())
                    .map(|(_, r)| r.address.as_str())
                    .collect();
                if filter.is_none_or(|f| f.selects(&id, &env.sender, &rcpts)) {
                    if !locked.entry.state.is_due(now, min_queue_age) {
                        out.not_due.insert(id.clone());
                    }
                    out.selected.push(id);
                }
            }
            Err(ReadError::Corrupt(why)) => {
                log::error!("qf{id}: corrupt queue file moved aside: {why}");
                if spool.move_corrupt(&id).is_ok() {
                    out.corrupt.push(id);
                }
            }
            Err(ReadError::Io(e)) => {
                log::error!("qf{id}: cannot open: {}", crate::config::io_text(&e));
            }
        }
    }
    Ok(out)
}

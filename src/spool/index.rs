//! The fast-flush indexes (after Postfix's flush service): hints, never the truth.
//!
//! ```text
//! index/recipients        one line per queued recipient: "<ID> <escaped address>"
//! index/domains/<domain>  the IDs with mail for <domain> (named by its domain key), one
//!                         per line
//! index/fastflush         the FastFlushDomains policy the lists were made under, then
//!                         `names domain-key`
//! index/lock              appenders and readers hold it shared (waiting at most a
//!                         second), a rebuild or a prune exclusive (waiting at most a
//!                         second too)
//! index/checked           the size of `recipients` when last found in bounds
//!                         ([`compact_if_bloated`])
//! index/boot              the boot the index was rebuilt in ([`boot_mark`]): an index
//!                         from another boot is not used until rebuilt
//! index/stale.<ID>        entry <ID> is (or will be) committed without its lines (its
//!                         append failed): the index is not whole until a rebuild that
//!                         lists the entry ([`invalidate`])
//! ```
//! Lines are appended at the commit point (before the rename: an ID listed before its
//! entry exists is harmless, a committed entry missing from the index is not). Readers
//! ignore IDs whose entry is gone. A rebuild writes both from the entries and replaces the
//! old files; it runs when the index is missing, when a full queue scan finds an entry
//! the index does not list, or when the index has grown well past what is queued
//! (`queue::refresh_index`). Selective runs read a [`Snapshot`]; a whole one (of this
//! boot, no `stale.<ID>` marker: [`Snapshot::whole`]) names every committed entry, so
//! they open only the entries it names, without listing the spool, and their time does
//! not grow with the queue. Otherwise they also find the committed entries it misses by
//! name, in a listing ([`Snapshot::unindexed`]).
//!
//! Why a whole index names every committed entry (one whose `qf` is in the spool):
//! - a submission appends its lines after its temporary file is sealed and synced and
//!   before its rename, under the lock held shared; an append that fails (or waits too
//!   long) leaves a `stale.<ID>` marker before the rename ([`invalidate`]);
//! - an append never makes `recipients`: where it is missing the index is not whole,
//!   and only a rebuild (or [`mark_if_new`], for a spool with no entry at all) makes it
//!   again. (Before, an append after the file was removed started a new one naming
//!   only the entries appended since, and it looked whole.)
//! - a rebuild, under the lock held exclusively, lists `tmp/` and then the spool, and
//!   reads every entry of both: an entry committed before it listed the spool is in
//!   that listing; one committed later was in `tmp/` and, if it had appended, sealed.
//!   It never takes lines from the old index, which may be gone or incomplete. (Before,
//!   a rebuild kept the lines of entries between their append and their rename from
//!   the old `recipients`; with that file removed by hand, or by an [`invalidate`] that
//!   could not leave its marker, those entries were lost from an index that then
//!   claimed to be whole: the chaos campaign's concurrency case.) An entry it cannot
//!   read gets a marker;
//! - a rebuild removes a marker only once its entry is named in the new index or is
//!   nowhere (not in `tmp/`, `hold/` or the spool);
//! - an entry released from `hold/` is marked before its move and unmarked only once
//!   its lines are appended after it ([`moved_in`]);
//! - a crash of the system is told by the boot mark.
//!
//! What no rule covers (lines removed by hand from a file that stays, queue files copied
//! in) is made good by the next full run (`-q`, each interval of the runner), which lists
//! the spool and rebuilds an index that misses an entry.
//!
//! The index files are hints that anyone with the spool's group could have damaged: any
//! text in them is read (bad lines skipped) without byte-index slicing (the lints below
//! keep it so), never a panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::entry::{Envelope, escape, unescape};
use super::{Kind, Spool, open_dir, open_safely, read_safely, replace_safely, valid_id};
use crate::message::address::domain_key_of;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `index/`, checked to be the spool's own directory (never a symlink) at every use;
/// every file in it is opened with [`open_safely`].
fn index_dir(spool: &Spool) -> io::Result<PathBuf> {
    let dir = spool.dir.join("index");
    open_dir(&dir)?;
    Ok(dir)
}

/// `index/domains/`, made when missing, checked like `index/`.
fn domains_dir(spool: &Spool, create: bool) -> io::Result<PathBuf> {
    let ddir = index_dir(spool)?.join("domains");
    if create {
        match fs::create_dir(&ddir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    open_dir(&ddir)?;
    Ok(ddir)
}

/// A file name for a domain: its [`domain_key`](crate::message::address::domain_key)
/// (lower case, U-labels as A-labels, so both forms of a domain share one list), and
/// `%XX` for anything but `[a-z0-9.-_:[]]` (and a leading dot), so that no domain can
/// name a path outside the directory.
pub fn domain_file_name(domain: &str) -> String {
    let mut out = String::new();
    for (i, b) in crate::message::address::domain_key(domain)
        .bytes()
        .enumerate()
    {
        let plain = b.is_ascii_alphanumeric() || b"-_:[]".contains(&b) || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn open_lock(spool: &Spool) -> io::Result<File> {
    open_lock_in(spool, &index_dir(spool)?)
}

/// [`open_lock`] in `dir`, the index directory [`index_dir`] checked.
fn open_lock_in(spool: &Spool, dir: &Path) -> io::Result<File> {
    open_safely(
        &dir.join("lock"),
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(spool.file_mode()),
        Kind::File,
    )
}

/// Append `text` to the index file `path`, made when missing only with `create`.
fn append_to(spool: &Spool, path: &Path, text: &[u8], create: bool) -> io::Result<()> {
    let mut f = open_safely(
        path,
        OpenOptions::new()
            .append(true)
            .create(create)
            .mode(spool.file_mode()),
        Kind::File,
    )?;
    // One write per file: O_APPEND writes of one call do not interleave.
    f.write_all(text)
}

/// How long an append waits for a rebuild (which holds the lock exclusively) to end: a
/// submission never waits longer on a hint. A rebuild stopped midway (SIGSTOP, a hung
/// disk) costs each submission this much once, and its lines: runs find entries the
/// index misses ([`unindexed`]).
const APPEND_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The shared lock, waited for at most `limit`; `WouldBlock` after that.
fn lock_shared_within(lock: &File, limit: std::time::Duration) -> io::Result<()> {
    lock_within(
        lock,
        limit,
        File::try_lock_shared,
        "the index is being rebuilt",
    )
}

/// Take a lock with `try_lock`, trying again every 10 ms for at most `limit`; then
/// `WouldBlock` saying `busy`.
fn lock_within(
    lock: &File,
    limit: std::time::Duration,
    try_lock: fn(&File) -> Result<(), fs::TryLockError>,
    busy: &str,
) -> io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match try_lock(lock) {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::Error(e)) => return Err(e),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() >= limit => {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, busy));
            }
            Err(fs::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
        }
    }
}

/// How long a rebuild or a prune waits for the exclusive lock: the lock's holder may be
/// stopped for good (SIGSTOP, a hung disk), and a queue run or ETRN never waits on a hint.
/// Without the lock the index is left as it is (selection takes what it misses, by name).
const EXCLUSIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The exclusive lock, waited for at most `limit`; `WouldBlock` after that.
fn lock_exclusive_within(lock: &File, limit: std::time::Duration) -> io::Result<()> {
    lock_within(
        lock,
        limit,
        File::try_lock,
        "the index lock is held by another process",
    )
}

/// Add an entry's lines to both indexes, waiting at most [`APPEND_WAIT`] for a rebuild.
///
/// The recipient index is never made here: when it is missing (removed by hand, or by
/// [`invalidate`]) the index is not whole, nothing is appended, and the rebuild that
/// makes it again finds this entry in `tmp/` or in the spool (it takes the lock after
/// this append let it go, and lists both). An append that made it would start an
/// index that claims to be whole and names only the entries appended since.
pub fn append(spool: &Spool, env: &Envelope) -> io::Result<()> {
    // The directory checked once, its lock and files opened in it.
    let dir = index_dir(spool)?;
    let lock = open_lock_in(spool, &dir)?;
    lock_shared_within(&lock, APPEND_WAIT)?;
    let mut rcpt_lines = String::new();
    let mut domains = BTreeSet::new();
    for r in &env.recipients {
        rcpt_lines.push_str(&format!("{} {}\n", env.id, escape(&r.address)));
        // Only domains eligible for a list of their own (FastFlushDomains).
        if let Some(d) = domain_key_of(&r.address)
            && spool.fast_flush.eligible(&d)
        {
            domains.insert(d);
        }
    }
    match append_to(spool, &dir.join("recipients"), rcpt_lines.as_bytes(), false) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    if !domains.is_empty() {
        let ddir = domains_dir(spool, true)?;
        let line = format!("{}\n", env.id);
        for d in domains {
            append_to(
                spool,
                &ddir.join(domain_file_name(&d)),
                line.as_bytes(),
                true,
            )?;
        }
    }
    Ok(())
}

/// The recipient index: (ID, address) pairs whose entry still exists.
pub fn recipients(spool: &Spool) -> io::Result<Vec<(String, String)>> {
    let text = read_safely(&index_dir(spool)?.join("recipients"))?;
    let text =
        String::from_utf8(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((id, addr)) = line.split_once(' ') else {
            continue;
        };
        if !valid_id(id) {
            continue;
        }
        if let Some(addr) = unescape(addr) {
            out.push((id.to_string(), addr));
        }
    }
    Ok(out)
}

/// The IDs the recipient index names (sorted, each once; a valid ID is 14 octets) and
/// how many lines it has: read line by line, so that checking the index against a
/// queue of 100,000 entries holds neither the file nor its addresses in memory.
pub fn indexed_ids(spool: &Spool) -> io::Result<(Vec<[u8; 14]>, usize)> {
    use std::io::BufRead;
    let f = open_safely(
        &index_dir(spool)?.join("recipients"),
        OpenOptions::new().read(true),
        Kind::File,
    )?;
    let mut r = io::BufReader::with_capacity(64 * 1024, f);
    let mut ids = Vec::new();
    let mut lines = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        lines += 1;
        let Some(id) = line.split(|&b| b == b' ').next() else {
            continue;
        };
        if let Ok(s) = std::str::from_utf8(id)
            && valid_id(s)
            && let Ok(a) = <[u8; 14]>::try_from(id)
        {
            ids.push(a);
        }
    }
    super::sort_keys(&mut ids);
    ids.dedup();
    Ok((ids, lines))
}

/// IDs with an indexed recipient containing one of `needles` (ASCII case-insensitive,
/// sendmail's `-qR` meaning): one pass of a vectorised substring search over the index,
/// not a parse of every line ([`scan`]). Needles holding a byte the index escapes
/// (blanks, `%`, controls) fall back to a line-by-line comparison of the unescaped
/// addresses.
pub fn ids_matching(spool: &Spool, needles: &[&str]) -> io::Result<BTreeSet<String>> {
    ids_matching_by(spool, needles, SCAN_BLOCK)
}

/// [`ids_matching`], reading `block` octets at a time.
fn ids_matching_by(spool: &Spool, needles: &[&str], block: usize) -> io::Result<BTreeSet<String>> {
    let f = open_safely(
        &index_dir(spool)?.join("recipients"),
        OpenOptions::new().read(true),
        Kind::File,
    )?;
    Ok(scan_by(f, needles, false, block)?.0)
}

fn ids_matching_slowly(text: &str, needles: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some((id, addr)) = line.split_once(' ') else {
            continue;
        };
        if let Some(addr) = unescape(addr)
            && valid_id(id)
            && needles
                .iter()
                .any(|n| crate::selection::address_contains(&addr, n))
        {
            out.insert(id.to_string());
        }
    }
    out
}

/// IDs with mail for `domain` (exactly) or, with `subdomains`, for it and its subdomains.
pub fn ids_for_domain(
    spool: &Spool,
    domain: &str,
    subdomains: bool,
) -> io::Result<BTreeSet<String>> {
    let ddir = domains_dir(spool, false)?;
    let domain = crate::message::address::domain_key(domain);
    let mut files = vec![domain_file_name(&domain)];
    if subdomains {
        let suffix = format!(".{}", domain_file_name(&domain));
        for ent in fs::read_dir(&ddir)?.flatten() {
            if let Some(name) = ent.file_name().to_str()
                && name.ends_with(&suffix)
            {
                files.push(name.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    for f in files {
        match read_safely(&ddir.join(&f)) {
            Ok(text) => out.extend(
                String::from_utf8_lossy(&text)
                    .lines()
                    .filter(|l| valid_id(l))
                    .map(str::to_string),
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.retain(|id| spool.qf_path(id).exists());
    Ok(out)
}

/// What `index/fastflush` says of the per-domain lists: the FastFlushDomains policy
/// they were made under, and that they are named by domain key (an internationalised
/// domain by its A-labels; lists named otherwise are from an older version).
fn policy_text(spool: &Spool) -> String {
    format!("{}\nnames domain-key", spool.fast_flush.describe())
}

/// Whether the per-domain lists were made under the spool's FastFlushDomains policy and
/// named as this version names them (`index/fastflush`, [`policy_text`]; an index
/// without the file is from before either was kept).
pub fn policy_current(spool: &Spool) -> bool {
    let Ok(dir) = index_dir(spool) else {
        return false;
    };
    match read_safely(&dir.join("fastflush")) {
        Ok(text) => String::from_utf8_lossy(&text).trim_end() == policy_text(spool),
        Err(_) => false,
    }
}

/// Drop the IDs whose entry is gone from `domain`'s list (after a flush of it, as
/// Postfix's flush service rewrites a destination's log): under the exclusive lock, so no
/// append made meanwhile is lost, and keeping the IDs of entries still being written.
pub fn prune_domain(spool: &Spool, domain: &str) -> io::Result<()> {
    let lock = open_lock(spool)?;
    lock_exclusive_within(&lock, EXCLUSIVE_WAIT)?;
    let path = domains_dir(spool, false)?.join(domain_file_name(domain));
    let text = match read_safely(&path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut seen = BTreeSet::new();
    let mut keep = String::new();
    for id in text.lines() {
        // An ID whose entry is still being written (its append comes before its
        // rename) is kept: dropping it would leave the committed entry out of this
        // list while the recipient index names it. The temporary file is looked at
        // first: once it is gone, the rename has happened (or the writer died).
        let live =
            || spool.tmp_dir().join(format!("tf{id}")).exists() || spool.qf_path(id).exists();
        if valid_id(id) && seen.insert(id) && live() {
            keep.push_str(id);
            keep.push('\n');
        }
    }
    if keep.is_empty() {
        return fs::remove_file(&path);
    }
    let tmp = path.with_extension(format!("prune.{}", std::process::id()));
    replace_safely(&tmp, &path, keep.as_bytes(), spool.file_mode())
}

/// How many lines a recipient index must have before it is worth compacting (with
/// [`bloated`]): below it, a rebuild would cost more than the dead lines do.
pub const COMPACT_MIN_LINES: usize = 1000;

/// Whether a recipient index of `lines` lines naming `named` entries has grown well
/// past the `queued` entries, so that a rebuild (which keeps only the lines of entries
/// still queued) is due: more than [`COMPACT_MIN_LINES`] lines, and more than twice
/// as many entries named as queued (more than half of them finished). The rule of a
/// full run (`queue::refresh_index`) and of [`compact_if_bloated`].
pub fn bloated(lines: usize, named: usize, queued: usize) -> bool {
    lines > COMPACT_MIN_LINES && named > queued.saturating_mul(2)
}

/// The size (octets) below which [`compact_if_bloated`] never looks further: about
/// [`COMPACT_MIN_LINES`] lines of short addresses.
const COMPACT_FLOOR: u64 = 32 * 1024;

/// After a run removed entries (delivered, bounced, expired): compact the index when
/// finished entries make up most of it, as a full run does ([`bloated`], then
/// [`rebuild`]), so that a host that only flushes (`-qR`, ETRN, and no full run to
/// rebuild the index) keeps an index the size of its queue, not of all the mail it
/// ever queued. Returns whether it was rebuilt.
///
/// Cheap when nothing is due: one `stat` of `recipients` and a read of `index/checked`
/// (the size `recipients` had when last found in bounds, written by a rebuild and by
/// this check). Only once the file has grown past twice that (and past
/// [`COMPACT_FLOOR`]) are the spool listed and the index's IDs counted, and the index
/// rebuilt when [`bloated`]; otherwise the size is recorded, and the next look is at
/// twice it. So the index stays within about twice the largest queue since the last
/// compaction, and the work of checking and rebuilding is at most a constant times the
/// lines appended. The rebuild is the full run's: under the exclusive lock, and safe
/// with submissions appending meanwhile (see the module docs).
pub fn compact_if_bloated(spool: &Spool) -> bool {
    compact_over(spool, COMPACT_FLOOR)
}

/// [`compact_if_bloated`] with a floor of `floor` octets.
fn compact_over(spool: &Spool, floor: u64) -> bool {
    let check = || -> io::Result<bool> {
        let dir = index_dir(spool)?;
        let len = fs::symlink_metadata(dir.join("recipients"))?.len();
        let checked = read_safely(&dir.join("checked"))
            .ok()
            .and_then(|t| String::from_utf8_lossy(&t).trim().parse::<u64>().ok())
            .unwrap_or(0);
        if len <= floor.max(checked.saturating_mul(2)) {
            return Ok(false);
        }
        let queued = spool.id_keys().map_err(|e| io::Error::other(e.message))?;
        let (named, lines) = indexed_ids(spool)?;
        if bloated(lines, named.len(), queued.len()) {
            rebuild(spool)?;
            return Ok(true);
        }
        record_checked(spool, &dir, len)?;
        Ok(false)
    };
    match check() {
        Ok(done) => done,
        // No index (a run that lists the spool makes it), or its lock held.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::WouldBlock
            ) =>
        {
            false
        }
        Err(e) => {
            log::warn!(
                "queue index: cannot compact it: {}",
                crate::config::io_text(&e)
            );
            false
        }
    }
}

/// Record in `index/checked` that the recipient index was `len` octets long when last
/// found in bounds ([`compact_if_bloated`]). A hint: a damaged or missing file only
/// makes the next check come sooner.
fn record_checked(spool: &Spool, dir: &Path, len: u64) -> io::Result<()> {
    let tmp = dir.join(format!("checked.{}", std::process::id()));
    replace_safely(
        &tmp,
        &dir.join("checked"),
        format!("{len}\n").as_bytes(),
        spool.file_mode(),
    )
}

/// What a selective run (`-qR`, ETRN) reads of the index: the IDs the recipient index
/// names for its `-qR` substrings and, for ETRN, the domain's lists, read in one go under
/// the index lock held shared (waited for at most [`APPEND_WAIT`]), so that no rebuild or
/// prune falls between the parts. Take it *before* listing the spool: then every entry
/// committed before the snapshot is either named by it or found by
/// [`Snapshot::unindexed`] in the listing; a whole snapshot ([`Snapshot::whole`]) names
/// them all, and no listing is needed.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Whether the recipient index could be read (not missing, refused, too large, and
    /// the lock had in time); when not, it names nothing and every entry is unindexed.
    read: bool,
    /// The IDs with an indexed recipient containing one of the needles asked for.
    matched: BTreeSet<String>,
    /// Every ID the recipient index names (sorted, each once), kept when the snapshot
    /// is not whole or they were asked for: [`Snapshot::unindexed`] reads them.
    named: Option<Vec<[u8; 14]>>,
    /// The IDs (with an entry when read) that the per-domain lists name for the domain.
    domain: BTreeSet<String>,
    /// The index was read, is of this boot and has no `stale.<ID>` marker: it names
    /// every committed entry (see the module docs), so no listing is needed.
    whole: bool,
}

/// Read a [`Snapshot`]: the IDs matching `needles` (a `-qR` run's substrings, as
/// [`ids_matching`] matches them; none for ETRN), with `domain` (a domain, and whether
/// its subdomains count) the per-domain lists, and with `names` every ID the index
/// names even when it is whole (for a caller that lists the spool anyway and asks
/// [`Snapshot::unindexed`]). Never fails: an index that cannot be read gives the empty
/// snapshot, with which every entry is a candidate.
///
/// The recipient index is read as a stream, a block of whole lines at a time, never
/// held whole in memory; and not at all when there is nothing to match in it and the
/// index is whole (ETRN of a domain with a list): the flush of one domain then reads
/// as much in a queue of 100,000 entries as in one of 100.
pub fn snapshot(
    spool: &Spool,
    domain: Option<(&str, bool)>,
    needles: &[&str],
    names: bool,
) -> Snapshot {
    let read = || -> io::Result<Snapshot> {
        let lock = open_lock(spool)?;
        lock_shared_within(&lock, APPEND_WAIT)?;
        let dir = index_dir(spool)?;
        if !this_boot(&dir) {
            return Err(io::Error::other("the index is from another boot"));
        }
        // Opened (and checked, as a read checks it) first: a missing or refused
        // recipient index makes the empty snapshot whatever the rest says.
        let f = open_safely(
            &dir.join("recipients"),
            OpenOptions::new().read(true),
            Kind::File,
        )?;
        let len = f.metadata()?.len();
        if len > super::MAX_READ {
            return Err(too_large(len));
        }
        let for_domain = domain.is_some();
        let domain = match domain {
            None => BTreeSet::new(),
            Some((d, sub)) => match ids_for_domain(spool, d, sub) {
                Ok(ids) => ids,
                // No domains/ yet: no domain was ever indexed (a rebuild, which replaces
                // it, cannot be running while the lock is held).
                Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeSet::new(),
                Err(e) => return Err(e),
            },
        };
        // The domain lists count only when made under this FastFlushDomains policy.
        let whole =
            stale_ids(&dir).is_ok_and(|s| s.is_empty()) && (!for_domain || policy_current(spool));
        // Still under the lock: appends made since it was opened only add lines.
        let want_named = names || !whole;
        let (matched, named) = if needles.is_empty() && !want_named {
            (BTreeSet::new(), Vec::new())
        } else {
            scan(f, needles, want_named)?
        };
        let named = want_named.then_some(named);
        Ok(Snapshot {
            read: true,
            matched,
            named,
            domain,
            whole,
        })
    };
    read().unwrap_or_default()
}

/// [`read_safely`]'s error for a file longer than [`super::MAX_READ`].
fn too_large(len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "too large: {len} bytes, more than a spool file takes ({})",
            super::MAX_READ
        ),
    )
}

/// How much of the recipient index [`scan`] reads at a time.
const SCAN_BLOCK: usize = 64 * 1024;

/// One pass over the recipient index `f`: the IDs with a recipient matching one of
/// `needles` ([`ids_matching`]'s rule) and, with `want_named`, every ID it names
/// (sorted, each once). Whole lines are searched a block at a time, lowered into one
/// reused buffer. An index that names an internationalised domain (or is not ASCII), or
/// a needle holding a byte the index escapes, is read again whole and searched the
/// slow way.
fn scan(f: File, needles: &[&str], want_named: bool) -> io::Result<ScanResult> {
    scan_by(f, needles, want_named, SCAN_BLOCK)
}

/// What [`scan`] finds: the matching IDs, and the IDs named (when asked for).
type ScanResult = (BTreeSet<String>, Vec<[u8; 14]>);

/// [`scan`], reading `block` octets at a time (at least one).
fn scan_by(
    mut f: File,
    needles: &[&str],
    want_named: bool,
    block: usize,
) -> io::Result<ScanResult> {
    let block_len = block.max(1);
    use std::io::{Read, Seek};
    let plain = |n: &str| n.bytes().all(|b| b > b' ' && b != 0x7f && b != b'%');
    let mut slow = needles.iter().any(|n| n.is_empty() || !plain(n));
    let lowered: Vec<String> = needles.iter().map(|n| n.to_ascii_lowercase()).collect();
    let finders: Vec<memchr::memmem::Finder> = lowered
        .iter()
        .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
        .collect();
    let xn = memchr::memmem::Finder::new(b"xn--");
    // `buf[..filled]` holds what was read and not yet searched: the start of a line.
    let mut buf: Vec<u8> = vec![0; block_len];
    let mut filled = 0;
    let mut low: Vec<u8> = Vec::with_capacity(block_len);
    let mut matched = BTreeSet::new();
    let mut named = Vec::new();
    let mut total = 0u64;
    let mut eof = false;
    while !eof && !slow {
        // A block more after what is left of the last one (a longer line grows it).
        if buf.len() - filled < block_len {
            buf.resize(filled + block_len, 0);
        }
        let n = f.read(buf.get_mut(filled..).unwrap_or_default())?;
        filled += n;
        total += n as u64;
        if total > super::MAX_READ {
            return Err(too_large(total));
        }
        eof = n == 0;
        let read = buf.get(..filled).unwrap_or_default();
        // The whole lines in the buffer (all of it at the end).
        let end = if eof {
            filled
        } else {
            match memchr::memrchr(b'\n', read) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let block = read.get(..end).unwrap_or_default();
        if !needles.is_empty() {
            low.clear();
            low.extend_from_slice(block);
            low.make_ascii_lowercase();
            if !block.is_ascii() || xn.find(&low).is_some() {
                // An internationalised domain matches in both its forms (`bücher`,
                // `xn--bcher-kva`; `selection::address_contains`): the slow way, which
                // reads each address in both forms.
                slow = true;
                break;
            }
            for finder in &finders {
                for at in finder.find_iter(&low) {
                    if let Some(id) = hit_id(block, at) {
                        matched.insert(id.to_string());
                    }
                }
            }
        }
        if want_named {
            named.extend(block.split(|&b| b == b'\n').filter_map(line_id));
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
    }
    if slow {
        f.rewind()?;
        let mut all = Vec::new();
        f.take(super::MAX_READ + 1).read_to_end(&mut all)?;
        if all.len() as u64 > super::MAX_READ {
            return Err(too_large(all.len() as u64));
        }
        matched = if needles.is_empty() {
            BTreeSet::new()
        } else {
            ids_matching_slowly(&String::from_utf8_lossy(&all), needles)
        };
        named = if want_named {
            all.split(|&b| b == b'\n').filter_map(line_id).collect()
        } else {
            Vec::new()
        };
    }
    super::sort_keys(&mut named);
    named.dedup();
    Ok((matched, named))
}

/// The ID a line of the recipient index names (what comes before its first blank),
/// when it is one.
fn line_id(line: &[u8]) -> Option<[u8; 14]> {
    let id = line.split(|&b| b == b' ').next()?;
    std::str::from_utf8(id)
        .is_ok_and(valid_id)
        .then(|| <[u8; 14]>::try_from(id).ok())
        .flatten()
}

/// The ID of the line of `block` (whole lines, lowered at the same places) holding a
/// needle's match at `at`, when the match is in the address (after "<ID> ").
fn hit_id(block: &[u8], at: usize) -> Option<&str> {
    let start = block
        .get(..at)
        .and_then(|before| memchr::memrchr(b'\n', before))
        .map_or(0, |i| i + 1);
    let space = block
        .get(start..)
        .and_then(|line| memchr::memchr(b' ', line))?;
    let id = block
        .get(start..start + space)
        .and_then(|id| std::str::from_utf8(id).ok())?;
    (start + space < at && valid_id(id)).then_some(id)
}

/// The IDs of the `stale.<ID>` markers in the index directory `dir`.
fn stale_ids(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        if let Some(id) = ent
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("stale."))
        {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

impl Snapshot {
    /// IDs with an indexed recipient containing one of the needles the snapshot was
    /// taken for (see [`ids_matching`]).
    pub fn matching(&self) -> &BTreeSet<String> {
        &self.matched
    }

    /// The IDs the domain's lists name (see [`ids_for_domain`]).
    pub fn domain_ids(&self) -> &BTreeSet<String> {
        &self.domain
    }

    /// Whether the snapshot names every committed entry (then [`Snapshot::unindexed`]
    /// is not needed): read whole, of this boot, with no `stale.<ID>` marker.
    pub fn whole(&self) -> bool {
        self.whole && self.read
    }

    /// Of `ids` (the entries in the spool, listed after the snapshot was taken), those
    /// the recipient index does not list: a submission that could not append (or an
    /// entry whose lines were removed with the index) is found by every selective run
    /// all the same, by name, without opening unrelated entries. All of them when the
    /// index could not be read; none when it is whole and its names were not kept (a
    /// whole index names every committed entry).
    pub fn unindexed(&self, ids: &[String]) -> Vec<String> {
        let named = match &self.named {
            Some(n) => n,
            None if self.whole() => return Vec::new(),
            None => return ids.to_vec(),
        };
        ids.iter()
            .filter(|id| {
                <[u8; 14]>::try_from(id.as_bytes())
                    .map_or(true, |k| named.binary_search(&k).is_err())
            })
            .cloned()
            .collect()
    }
}

/// Entry `id`'s append failed: before its rename, mark the index as missing it
/// (`stale.<id>`), so that selective runs list the spool and the next queue run
/// rebuilds the index from the entries; no committed entry stays unlisted. When the
/// marker cannot be made, the recipient index is removed instead (no index: the same).
pub fn invalidate(spool: &Spool, id: &str) {
    let Ok(dir) = index_dir(spool) else {
        return;
    };
    if mark_stale(spool, &dir, id).is_err() {
        let _ = fs::remove_file(dir.join("recipients"));
    }
}

/// Make the marker `stale.<id>` in the index directory `dir`.
fn mark_stale(spool: &Spool, dir: &Path, id: &str) -> io::Result<()> {
    if !valid_id(id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a queue ID",
        ));
    }
    open_safely(
        &dir.join(format!("stale.{id}")),
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(spool.file_mode()),
        Kind::File,
    )
    .map(drop)
}

/// Move entry `id` into the spool by other means than a commit from `tmp/` (`move`:
/// a release from `hold/`), keeping a whole index whole: a `stale.<id>` marker first
/// (the index is not whole while the entry may be in the spool without its lines; a
/// rebuild keeps the marker while the entry is held, being moved, or queued and not in
/// its listing), then the move, then the lines appended; the marker goes once they are
/// (or when the move left the entry where it was). An append that fails leaves the
/// marker for the next rebuild to clear.
pub fn moved_in<T, E>(
    spool: &Spool,
    id: &str,
    move_in: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let Ok(dir) = index_dir(spool) else {
        return move_in();
    };
    invalidate(spool, id);
    let result = move_in();
    let unmark = match spool.read_entry(id) {
        Ok(e) => match append(spool, &e.envelope) {
            Ok(()) => true,
            Err(err) => {
                log::warn!("{id}: cannot index it: {}", crate::config::io_text(&err));
                false
            }
        },
        // Not in the spool: the move did not happen (nothing to name).
        Err(super::ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => true,
        Err(_) => false,
    };
    if unmark {
        let _ = fs::remove_file(dir.join(format!("stale.{id}")));
    }
    result
}

/// Whether the index exists, was written since this system booted (see [`boot_mark`])
/// and misses no entry whose append failed (no `stale.<ID>` marker).
pub fn present(spool: &Spool) -> bool {
    index_dir(spool).is_ok_and(|dir| {
        fs::symlink_metadata(dir.join("recipients")).is_ok()
            && this_boot(&dir)
            && stale_ids(&dir).is_ok_and(|s| s.is_empty())
    })
}

/// What tells this boot of the system from others: Linux's `boot_id` (`id <uuid>`), or
/// elsewhere the time it booted (`time <seconds since the epoch>`, the real-time clock
/// less the monotonic one).
///
/// Appends are not fsynced (an fsync of each index file would cost a submission about
/// half as much again), so a crash of the system may lose some of them, or keep one
/// file's append and not another's (a recipient line without its domain line, which no
/// reconciliation by name would notice). The page cache outlives any process, so that
/// can only happen across a reboot: a rebuild records the boot in `index/boot`, and an
/// index from another boot is not used until it is rebuilt ([`present`], [`snapshot`]).
#[allow(clippy::useless_conversion)] // time_t is not i64 everywhere
fn boot_mark() -> String {
    if let Ok(id) = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        && !id.trim().is_empty()
    {
        return format!("id {}", id.trim());
    }
    let secs = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        if rc == 0 { i64::from(ts.tv_sec) } else { 0 }
    };
    let booted = secs(libc::CLOCK_REALTIME).saturating_sub(secs(libc::CLOCK_MONOTONIC));
    format!("time {booted}")
}

/// Whether `stored` (an `index/boot` line) names the boot that `now` names: the same
/// id, or boot times within a minute of each other (clock adjustments move the computed
/// boot time a little; a wrong "no" only costs a rebuild).
fn same_boot(stored: &str, now: &str) -> bool {
    let time = |s: &str| {
        s.strip_prefix("time ")
            .and_then(|t| t.trim().parse::<i64>().ok())
    };
    match (time(stored), time(now)) {
        (Some(a), Some(b)) => a.abs_diff(b) <= 60,
        _ => stored.trim() == now.trim(),
    }
}

/// An index with neither a recipient index nor a boot record (a new spool, an `index/`
/// made again) is whole when there is no entry at all: then make the (empty) recipient
/// index and record this boot, so that the index the appends build from now on is used
/// without a rebuild first. Under the lock held exclusively (tried once: a rebuild
/// running makes it anyway), `tmp/` then the spool are looked at: an entry being written
/// is in one of them, or appends after the lock is let go. With an entry anywhere, the
/// index stays missing until a queue run rebuilds it from the entries. `dir` is the
/// index directory as [`Spool::subdir`] just checked it (opened, not a symlink).
pub fn mark_if_new(spool: &Spool, dir: &Path) {
    let absent = |name: &str| matches!(fs::symlink_metadata(dir.join(name)), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if !(absent("recipients") && absent("boot")) {
        return;
    }
    let made = || -> io::Result<()> {
        let lock = open_lock_in(spool, dir)?;
        lock_exclusive_within(&lock, std::time::Duration::ZERO)?;
        if !(absent("recipients") && absent("boot")) {
            return Ok(());
        }
        let any = |d: &Path, prefix: &str| -> io::Result<bool> {
            for ent in fs::read_dir(d)? {
                let name = ent?.file_name();
                if name
                    .to_str()
                    .and_then(|n| n.strip_prefix(prefix))
                    .is_some_and(valid_id)
                {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        if any(&spool.tmp_dir(), "tf")? || any(&spool.dir, "qf")? {
            return Ok(());
        }
        open_safely(
            &dir.join("recipients"),
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(spool.file_mode()),
            Kind::File,
        )?;
        let tmp = dir.join(format!("boot.{}", std::process::id()));
        let mark = format!("{}\n", boot_mark());
        replace_safely(&tmp, &dir.join("boot"), mark.as_bytes(), spool.file_mode())
    };
    match made() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => log::warn!("index: cannot start it: {}", crate::config::io_text(&e)),
    }
}

/// Whether the index in `dir` was rebuilt in this boot.
fn this_boot(dir: &Path) -> bool {
    read_safely(&dir.join("boot"))
        .is_ok_and(|b| same_boot(&String::from_utf8_lossy(&b), &boot_mark()))
}

/// Rebuild both indexes from the entries (the truth); the number of entries listed.
/// Errors: the spool or index files cannot be read or written, or `WouldBlock` when
/// another process has held the index lock for [`EXCLUSIVE_WAIT`] (then the index is
/// left as it was).
///
/// Under the lock held exclusively, so no append runs meanwhile: `tmp/` is listed, then
/// the spool. An entry committed before the spool's listing is in it; one committed
/// after was in `tmp/` at its listing, and if its append came before this rebuild took
/// the lock it was sealed then, so it is read from `tmp/` (or from the spool, renamed
/// meanwhile); one begun after `tmp/` was listed appends after the lock is let go. Its
/// lines come from the entries alone, never from the old index (which may have been
/// removed, or written to after its removal by an append that had it open). An entry
/// that cannot be read (an I/O error, not a missing or unfinished file) gets a
/// `stale.<ID>` marker, so the new index does not claim to be whole.
pub fn rebuild(spool: &Spool) -> io::Result<usize> {
    use super::ReadError;
    let lock = open_lock(spool)?;
    lock_exclusive_within(&lock, EXCLUSIVE_WAIT)?;
    let dir = index_dir(spool)?;
    // Read before the listings: the markers this rebuild may clear.
    let stale = stale_ids(&dir)?;
    let writing = spool.tmp_ids()?;
    let ids = spool.ids().map_err(|e| io::Error::other(e.message))?;
    let listed: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut rcpt_lines = String::new();
    let mut by_domain: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The entries whose lines are in the new index, and those that could not be read.
    let mut named: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut unreadable: Vec<String> = Vec::new();
    let mut n = 0;
    let mut add = |id: &str, e: &super::QueuedEntry| {
        let mut seen = BTreeSet::new();
        for (i, r) in e.envelope.recipients.iter().enumerate() {
            if e.state.of(i).is_final() {
                continue;
            }
            rcpt_lines.push_str(&format!("{id} {}\n", escape(&r.address)));
            if let Some(d) = domain_key_of(&r.address)
                && spool.fast_flush.eligible(&d)
                && seen.insert(d.clone())
            {
                by_domain.entry(d).or_default().push(id.to_string());
            }
        }
        named.insert(id.to_string());
    };
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    for id in &ids {
        match spool.read_entry(id) {
            Ok(e) => {
                n += 1;
                add(id, &e);
            }
            // Finished meanwhile; or corrupt (a run moves it aside, never delivers it).
            Err(ReadError::Io(e)) if gone(&e) => {}
            Err(ReadError::Corrupt(_)) => {}
            Err(ReadError::Io(_)) => unreadable.push(id.clone()),
        }
    }
    for id in writing.iter().filter(|id| !listed.contains(id.as_str())) {
        match spool.read_tmp_entry(id) {
            Ok(e) => add(id, &e),
            // Not sealed yet: its append waits for this lock.
            Err(ReadError::Corrupt(_)) => {}
            Err(ReadError::Io(e)) if gone(&e) => match spool.read_entry(id) {
                Ok(e) => add(id, &e),
                Err(ReadError::Io(e)) if gone(&e) => {}
                Err(ReadError::Corrupt(_)) => {}
                Err(ReadError::Io(_)) => unreadable.push(id.clone()),
            },
            Err(ReadError::Io(_)) => unreadable.push(id.clone()),
        }
    }
    for id in &unreadable {
        mark_stale(spool, &dir, id)?;
    }
    // First: the index is not whole until this rebuild ends (a rebuild cut short by an
    // error must not leave new recipient lines beside old domain lists, as a whole
    // index; the mark is written again last).
    match fs::remove_file(dir.join("boot")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let tmp = dir.join(format!("recipients.{}", std::process::id()));
    replace_safely(
        &tmp,
        &dir.join("recipients"),
        rcpt_lines.as_bytes(),
        spool.file_mode(),
    )?;
    let ddir = dir.join("domains");
    let new_ddir = dir.join(format!("domains.{}", std::process::id()));
    let _ = fs::remove_dir_all(&new_ddir);
    fs::create_dir(&new_ddir)?;
    open_dir(&new_ddir)?;
    for (d, ids) in by_domain {
        let mut text = ids.join("\n");
        text.push('\n');
        open_safely(
            &new_ddir.join(domain_file_name(&d)),
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(spool.file_mode()),
            Kind::File,
        )?
        .write_all(text.as_bytes())?;
    }
    let old = dir.join(format!("domains.old.{}", std::process::id()));
    if fs::symlink_metadata(&ddir).is_ok() {
        fs::rename(&ddir, &old)?;
    }
    fs::rename(&new_ddir, &ddir)?;
    let _ = fs::remove_dir_all(&old);
    // Its size, from which compact_if_bloated measures growth.
    // (A hint: without it the next check only comes sooner.)
    let _ = record_checked(spool, &dir, rcpt_lines.len() as u64);
    // The domains it lists (FastFlushDomains), so that another policy rebuilds it.
    let tmp = dir.join(format!("fastflush.{}", std::process::id()));
    replace_safely(
        &tmp,
        &dir.join("fastflush"),
        format!("{}\n", policy_text(spool)).as_bytes(),
        spool.file_mode(),
    )?;
    // Last: the index is whole, and from this boot.
    let tmp = dir.join(format!("boot.{}", std::process::id()));
    replace_safely(
        &tmp,
        &dir.join("boot"),
        format!("{}\n", boot_mark()).as_bytes(),
        spool.file_mode(),
    )?;
    // A marker goes once its entry is named here, or is nowhere (finished, or never
    // committed); one whose entry is held or being moved in (`moved_in`), or queued
    // and not named here, stays until a rebuild names it. Looked at in the order an
    // entry moves (tmp/ or hold/, then the spool), so a move between the looks is seen.
    let somewhere = |id: &str| {
        spool.tmp_dir().join(format!("tf{id}")).exists()
            || spool.held().qf_path(id).exists()
            || spool.qf_path(id).exists()
    };
    for id in stale {
        if named.contains(&id) || !somewhere(&id) {
            let _ = fs::remove_file(dir.join(format!("stale.{id}")));
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_safe_file_names() {
        assert_eq!(domain_file_name("Example.ORG"), "example.org");
        assert_eq!(domain_file_name("../etc"), "%2E./etc".replace('/', "%2F"));
        assert_eq!(domain_file_name("[192.0.2.1]"), "[192.0.2.1]");
        assert!(!domain_file_name("a/b").contains('/'));
    }

    fn submit(spool: &Spool, rcpts: &[&str]) -> String {
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let env = crate::spool::entry::test_envelope(&ne.id, rcpts);
        ne.writer().write_all(env.to_text().as_bytes()).unwrap();
        let id = ne.id.clone();
        ne.commit(&env).unwrap();
        id
    }

    /// A recipient index grown past its floor is compacted when most of what it names
    /// is finished, and only then; a look that finds it in bounds records its size, and
    /// the next look waits until it has doubled.
    #[test]
    fn compaction_drops_finished_lines_only_when_they_fill_the_index() {
        let scratch = crate::spool::ScratchSpool::new("compact");
        let spool = &scratch.spool;
        let live = submit(spool, &["live@example.org"]);
        let path = spool.dir.join("index/recipients");
        let checked = || fs::read_to_string(spool.dir.join("index/checked")).unwrap();
        let dead = |n: usize, from: usize| -> String {
            (from..from + n)
                .map(|i| format!("xxxxxx{i:08} gone-with-a-longer-address@example.org\n"))
                .collect()
        };
        // Below the floor: nothing looked at.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(dead(500, 0).as_bytes()).unwrap();
        assert!(fs::metadata(&path).unwrap().len() < COMPACT_FLOOR);
        assert!(!compact_if_bloated(spool));
        // Past the floor, under the line minimum: its size is recorded, nothing dropped.
        f.write_all(dead(400, 500).as_bytes()).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        assert!(len > COMPACT_FLOOR);
        assert!(!compact_if_bloated(spool));
        assert_eq!(checked().trim(), len.to_string());
        // Past the line minimum but not twice the recorded size: not looked at.
        f.write_all(dead(200, 900).as_bytes()).unwrap();
        assert!(!compact_if_bloated(spool));
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            len + dead(200, 900).len() as u64
        );
        // Twice the recorded size: rebuilt, the live line kept.
        f.write_all(dead(1000, 1100).as_bytes()).unwrap();
        assert!(compact_if_bloated(spool));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{live} live@example.org\n")
        );
        assert_eq!(
            checked().trim(),
            fs::metadata(&path).unwrap().len().to_string()
        );
        // Many lines, every entry live: in bounds, only its size recorded.
        let scratch = crate::spool::ScratchSpool::new("compact-live");
        let spool = &scratch.spool;
        let rcpts: Vec<String> = (0..60)
            .map(|i| format!("a-long-local-part-{i}@example.org"))
            .collect();
        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        for _ in 0..20 {
            submit(spool, &refs);
        }
        let before = fs::read(spool.dir.join("index/recipients")).unwrap();
        assert!(before.len() as u64 > COMPACT_FLOOR);
        assert!(!compact_if_bloated(spool));
        assert_eq!(
            fs::read(spool.dir.join("index/recipients")).unwrap(),
            before
        );
        assert_eq!(
            fs::read_to_string(spool.dir.join("index/checked"))
                .unwrap()
                .trim(),
            before.len().to_string()
        );
    }

    /// FastFlushDomains: only eligible, well-formed domains get a list, at the commit
    /// and in a rebuild; a changed policy is seen.
    #[test]
    fn only_fast_flush_domains_get_a_list() {
        use crate::spool::FastFlush;
        let policy = FastFlush::Domains(vec!["relay.example".into()]);
        for (d, want) in [
            ("relay.example", true),
            ("RELAY.example", true),
            ("sub.relay.example", true),
            ("notrelay.example", false),
            ("relay.example.org", false),
            ("other.example", false),
            ("bad..relay.example", false),
            ("-x.relay.example", false),
        ] {
            assert_eq!(policy.eligible(d), want, "{d}");
        }
        // Listed with a trailing dot or in capitals: the same domains.
        let dotted = FastFlush::Domains(vec!["Relay.Example.".into()]);
        for (d, want) in [
            ("relay.example", true),
            ("sub.relay.example", true),
            ("Sub.Relay.Example.", true),
            ("notrelay.example", false),
        ] {
            assert_eq!(dotted.eligible(d), want, "{d}");
        }
        assert!(FastFlush::All.eligible("[192.0.2.1]"));
        assert!(!FastFlush::All.eligible("a/b.example"));
        assert!(!FastFlush::Domains(Vec::new()).eligible("example.org"));
        let scratch = crate::spool::ScratchSpool::new("fastflush");
        let mut spool = scratch.spool.clone();
        spool.fast_flush = policy;
        submit(
            &spool,
            &["a@relay.example", "b@sub.relay.example", "c@other.example"],
        );
        let listed = |spool: &Spool| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(spool.dir.join("index/domains"))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        assert_eq!(listed(&spool), ["relay.example", "sub.relay.example"]);
        rebuild(&spool).unwrap();
        assert_eq!(listed(&spool), ["relay.example", "sub.relay.example"]);
        assert!(policy_current(&spool));
        spool.fast_flush = FastFlush::All;
        assert!(!policy_current(&spool));
        rebuild(&spool).unwrap();
        assert_eq!(
            listed(&spool),
            ["other.example", "relay.example", "sub.relay.example"]
        );
    }

    #[test]
    fn domain_lookup_exact_and_subdomains_and_rebuild() {
        let dir = std::env::temp_dir().join(format!("rsendmail-index-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        let a = submit(&spool, &["x@example.org"]);
        let b = submit(&spool, &["y@mail.example.org", "z@other.net"]);
        let c = submit(&spool, &["w@example.org.uk", "v@notexample.org"]);
        let exact = ids_for_domain(&spool, "example.org", false).unwrap();
        assert_eq!(exact, BTreeSet::from([a.clone()]));
        let sub = ids_for_domain(&spool, "EXAMPLE.org", true).unwrap();
        assert_eq!(sub, BTreeSet::from([a.clone(), b.clone()]));
        assert!(!sub.contains(&c));
        // Pruning a domain's list after its mail went keeps only what is still queued.
        fs::remove_file(spool.qf_path(&a)).unwrap();
        prune_domain(&spool, "example.org").unwrap();
        assert!(!dir.join("index/domains/example.org").exists());
        prune_domain(&spool, "mail.example.org").unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("index/domains/mail.example.org")).unwrap(),
            format!("{b}\n")
        );
        let sub = BTreeSet::from([b.clone()]);
        // Lose the index; rebuild gives the same answers.
        fs::remove_dir_all(dir.join("index")).unwrap();
        fs::create_dir(dir.join("index")).unwrap();
        assert!(!present(&spool));
        assert_eq!(rebuild(&spool).unwrap(), 2);
        assert_eq!(ids_for_domain(&spool, "example.org", true).unwrap(), sub);
        assert_eq!(recipients(&spool).unwrap().len(), 4);
        let _ = fs::remove_dir_all(&dir);
    }

    /// An internationalised domain is one domain in its U-label (`bücher.example`) and
    /// its A-label (`xn--bcher-kva.example`) form, every place a domain is compared,
    /// whichever form the configuration or the queue holds and whichever the request
    /// names: ETRN (the domain lists and the scan), `-qR`/`-qS` (index and scan),
    /// `rsendmail-admin --recipient`, FastFlushDomains, RelayDomains, this host's name
    /// (MAILNAME, class w), duplicate recipients.
    #[test]
    fn both_forms_of_an_internationalised_domain_are_one_domain_everywhere() {
        use crate::message::address;
        use crate::queue::{select_domain, sweep};
        use crate::selection::{FilterField, QueueFilter, QueueRunArgs, address_contains};
        const U: &str = "bücher.example";
        const A: &str = "xn--bcher-kva.example";
        const UP: &str = "BÜCHER.Example.";
        const AP: &str = "XN--BCHER-KVA.EXAMPLE";
        let forms = [(U, A), (A, U), (U, AP), (A, UP), (UP, A), (AP, U)];
        for (i, (held, asked)) in forms.iter().enumerate() {
            let what = format!("queued/configured {held}, asked {asked}");
            assert_eq!(
                address::domain_key(held),
                address::domain_key(asked),
                "{what}"
            );
            // ETRN and the fast-flush lists: the queued form makes the list, the
            // asked one finds it; with FastFlushDomains naming either form.
            for ff in [
                crate::spool::FastFlush::All,
                crate::spool::FastFlush::Domains(vec![held.to_string()]),
            ] {
                let scratch = crate::spool::ScratchSpool::new(&format!("idn{i}"));
                let mut spool = scratch.spool.clone();
                spool.fast_flush = ff.clone();
                assert!(spool.fast_flush.eligible(asked), "{what} {ff:?}");
                let id = submit(&spool, &[&format!("u@{held}")]);
                let _other = submit(&spool, &["u@bucher.example"]);
                assert_eq!(
                    ids_for_domain(&spool, asked, false).unwrap(),
                    BTreeSet::from([id.clone()]),
                    "{what} {ff:?}"
                );
                assert_eq!(
                    select_domain(&spool, asked, false),
                    BTreeSet::from([id.clone()]),
                    "ETRN {what} {ff:?}"
                );
                assert_eq!(
                    select_domain(&spool, "example", true),
                    select_domain(&spool, "EXAMPLE.", true),
                    "{what}"
                );
                // -qR with the asked form (whole or a piece of it), index and scan.
                let needle = asked.trim_end_matches('.').split('.').next().unwrap();
                for n in [asked.trim_end_matches('.'), needle] {
                    let f = QueueRunArgs {
                        filters: vec![QueueFilter {
                            field: FilterField::Recipient,
                            negate: false,
                            substring: n.to_string(),
                        }],
                        ..QueueRunArgs::default()
                    };
                    assert_eq!(
                        sweep(&spool, Some(&f), 0).unwrap().selected,
                        vec![id.clone()],
                        "-qR{n}: {what}"
                    );
                    assert_eq!(
                        ids_matching(&spool, &[n]).unwrap(),
                        BTreeSet::from([id.clone()]),
                        "index -qR{n}: {what}"
                    );
                    assert!(
                        f.selects("x", &format!("s@{held}"), &[&format!("u@{held}")]),
                        "-qR{n}: {what}"
                    );
                    let s = QueueRunArgs {
                        filters: vec![QueueFilter {
                            field: FilterField::Sender,
                            negate: false,
                            substring: n.to_string(),
                        }],
                        ..QueueRunArgs::default()
                    };
                    assert!(s.selects("x", &format!("s@{held}"), &[]), "-qS{n}: {what}");
                    let not = QueueRunArgs {
                        filters: vec![QueueFilter {
                            field: FilterField::Recipient,
                            negate: true,
                            substring: n.to_string(),
                        }],
                        ..QueueRunArgs::default()
                    };
                    assert!(
                        !not.selects("x", "s", &[&format!("u@{held}")]),
                        "-q!R{n}: {what}"
                    );
                    // rsendmail-admin delete/hold/release --recipient.
                    assert!(address_contains(&format!("u@{held}"), n), "{what}");
                }
            }
            // RelayDomains (the -bs/-bd relay check) and the relay table's own rule.
            assert!(crate::config::domain_covers(held, asked), "{what}");
            assert!(
                crate::config::domain_covers(held, &format!("sub.{asked}")),
                "{what}"
            );
            assert!(
                !crate::config::domain_covers(held, "bucher.example"),
                "{what}"
            );
            // This host's name (MAILNAME, class w): a mail name is ASCII (its A-labels).
            if held.is_ascii() {
                assert!(
                    address::is_local(&format!("u@{asked}"), held, false),
                    "{what}"
                );
            }
            // Duplicates: one recipient.
            let dup = |d: &str| address::duplicate_key(&format!("u@{d}"));
            if *held == A || !held.is_ascii() {
                assert_eq!(dup(held), dup(&address::domain_key(asked)), "{what}");
            }
        }
        // An index from before lists were named by domain key (a U-label domain's list
        // under its UTF-8 octets, no `names` line) is rebuilt before ETRN trusts it.
        let scratch = crate::spool::ScratchSpool::new("idnold");
        let spool = &scratch.spool;
        let id = submit(spool, &[&format!("u@{U}")]);
        let _ = select_domain(spool, A, false);
        let ddir = domains_dir(spool, false).unwrap();
        fs::rename(
            ddir.join(domain_file_name(U)),
            ddir.join("b%C3%BCcher.example"),
        )
        .unwrap();
        fs::write(index_dir(spool).unwrap().join("fastflush"), "*\n").unwrap();
        assert_eq!(select_domain(spool, A, false), BTreeSet::from([id.clone()]));
        assert_eq!(
            ids_for_domain(spool, U, false).unwrap(),
            BTreeSet::from([id])
        );
        // A name with no A-label form is compared as its text, lower-cased; never a panic.
        for odd in [
            "xn--.example",
            "a\u{0}b.example",
            "ab--c.example",
            "ü--.example",
            ".",
            "",
        ] {
            let _ = address::domain_key(odd);
            let _ = address::duplicate_key(&format!("u@{odd}"));
            let _ = address_contains(&format!("u@{odd}"), "xn--");
        }
        assert_eq!(
            address::domain_key("Ä_B.Example"),
            address::domain_key("ä_b.example")
        );
    }

    /// Appends are not fsynced: a crash of the system may keep one index file's append
    /// and lose another's, or cut a line. An index from another boot is rebuilt before
    /// a selective run uses it.
    #[test]
    fn an_index_from_another_boot_is_rebuilt_before_use() {
        use crate::queue::{select_domain, sweep};
        use crate::selection::{FilterField, QueueFilter, QueueRunArgs};
        let scratch = crate::spool::ScratchSpool::new("boot");
        let spool = &scratch.spool;
        let a = submit(spool, &["x@a.example"]);
        let b = submit(spool, &["yolanda@b.example"]);
        assert!(present(spool), "a new spool's index is from this boot");
        // What a crash may leave: a's recipient line without its domain line, b's
        // recipient line cut short.
        let dir = index_dir(spool).unwrap();
        fs::remove_file(dir.join("domains/a.example")).unwrap();
        let text = fs::read_to_string(dir.join("recipients")).unwrap();
        fs::write(
            dir.join("recipients"),
            text.replace("yolanda@b.example", "yol"),
        )
        .unwrap();
        fs::write(
            dir.join("boot"),
            "id 00000000-0000-4000-8000-000000000000\n",
        )
        .unwrap();
        assert!(!present(spool));
        assert_eq!(
            select_domain(spool, "a.example", false),
            BTreeSet::from([a])
        );
        let f = QueueRunArgs {
            filters: vec![QueueFilter {
                field: FilterField::Recipient,
                negate: false,
                substring: "yolanda@".into(),
            }],
            ..QueueRunArgs::default()
        };
        assert_eq!(sweep(spool, Some(&f), 0).unwrap().selected, vec![b]);
        assert!(present(spool));
        // The boot times of systems without a boot id: within a minute is the same boot.
        assert!(same_boot("time 1000\n", "time 1059"));
        assert!(!same_boot("time 1000", "time 2000"));
        assert!(!same_boot("id x", "time 1000"));
        assert!(same_boot(&boot_mark(), &boot_mark()));
    }

    /// An entry released from `hold/` is in the spool a moment before its lines are
    /// appended: the index must not claim to be whole then (a selective run trusting
    /// it would miss the entry), nor after a rebuild that ran while it was held.
    #[test]
    fn a_release_from_hold_keeps_a_whole_index_whole() {
        let scratch = crate::spool::ScratchSpool::new("release");
        let spool = &scratch.spool;
        submit(spool, &["a@a.example"]);
        let id = submit(spool, &["b@b.example"]);
        let held = spool.held();
        fs::create_dir(&held.dir).unwrap();
        fs::rename(spool.qf_path(&id), held.qf_path(&id)).unwrap();
        rebuild(spool).unwrap();
        let snap = || snapshot(spool, None, &["@b.example"], false);
        assert!(snap().whole());
        let named = |snap: &Snapshot| snap.matching().contains(&id);
        assert!(!named(&snap()));
        moved_in(spool, &id, || -> io::Result<()> {
            // A rebuild while it is still held keeps the index not whole...
            rebuild(spool).unwrap();
            assert!(!snap().whole());
            fs::rename(held.qf_path(&id), spool.qf_path(&id))?;
            // ...and so does the moment after the move, before the append.
            let snap = snap();
            assert!(!snap.whole() || named(&snap), "whole, without {id}");
            Ok(())
        })
        .unwrap();
        let snap = snap();
        assert!(snap.whole() && named(&snap));
    }

    /// The same property under real concurrency: submitters committing, a thread
    /// rebuilding and pruning without pause, and readers checking that every entry
    /// committed before their selection began is selected by ETRN and by `-qR` (or
    /// found busy, locked by the other reader).
    #[test]
    fn concurrent_submissions_rebuilds_and_runs_lose_nothing() {
        use crate::queue::{select_domain, sweep};
        use crate::selection::{FilterField, QueueFilter, QueueRunArgs};
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, Ordering};
        let domains = ["a.example", "b.example", "c.example"];
        let scratch = crate::spool::ScratchSpool::new("concurrent");
        let spool = &scratch.spool;
        let committed: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
        std::thread::scope(|scope| {
            for t in 0..3usize {
                let (committed, stop) = (&committed, &stop);
                scope.spawn(move || {
                    let mut n = t;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let d = n % domains.len();
                        let id = submit(spool, &[&format!("u{n}@{}", domains[d])]);
                        committed.lock().unwrap().push((id, d));
                    }
                });
            }
            {
                let stop = &stop;
                scope.spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        rebuild(spool).unwrap();
                        let _ = prune_domain(spool, domains[n % domains.len()]);
                    }
                });
            }
            for r in 0..2usize {
                let (committed, stop, failures) = (&committed, &stop, &failures);
                scope.spawn(move || {
                    let mut n = r;
                    while std::time::Instant::now() < until {
                        n += 1;
                        let d = n % domains.len();
                        let before: Vec<String> = committed
                            .lock()
                            .unwrap()
                            .iter()
                            .filter(|(_, dd)| *dd == d)
                            .map(|(id, _)| id.clone())
                            .collect();
                        let got = if n % 2 == 0 {
                            select_domain(spool, domains[d], false)
                        } else {
                            let f = QueueRunArgs {
                                filters: vec![QueueFilter {
                                    field: FilterField::Recipient,
                                    negate: false,
                                    substring: format!("@{}", domains[d]),
                                }],
                                ..QueueRunArgs::default()
                            };
                            let sw = sweep(spool, Some(&f), 0).unwrap();
                            sw.selected.into_iter().chain(sw.busy).collect()
                        };
                        for id in before.iter().filter(|id| !got.contains(*id)) {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{id} ({}) missed, pass {n}", domains[d]));
                        }
                    }
                    stop.store(true, Ordering::SeqCst);
                });
            }
        });
        let failures = failures.into_inner().unwrap();
        let total = committed.into_inner().unwrap().len();
        assert!(
            failures.is_empty(),
            "{} of {total}: {failures:?}",
            failures.len()
        );
        assert!(total >= 5, "only {total} submissions");
    }

    /// The entries with a recipient not yet final for which `hit(address)` holds: what a
    /// full scan selects.
    fn full_scan(spool: &Spool, hit: impl Fn(&str) -> bool) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for id in spool.ids().unwrap() {
            let e = spool.read_entry(&id).unwrap();
            if e.envelope
                .recipients
                .iter()
                .enumerate()
                .any(|(i, r)| !e.state.of(i).is_final() && hit(&r.address))
            {
                out.insert(id);
            }
        }
        out
    }

    /// Submissions cut into their commit steps (write and fsync, index append, rename)
    /// and interleaved at random with rebuilds, full queue runs, ETRN prunes, appends
    /// that fail, submissions that die, deliveries; after every step, each `-qR` run
    /// and each ETRN selection must select exactly what a full scan of the committed
    /// entries selects: the index may be behind, but no committed entry is ever lost
    /// from a selective run.
    #[test]
    fn no_interleaving_loses_a_committed_entry_from_a_selective_run() {
        use crate::queue::{select_domain, sweep};
        use crate::selection::{FilterField, QueueFilter, QueueRunArgs};
        use crate::spool::NewEntry;
        use crate::spool::entry::{RcptState, State};
        let domains = ["a.example", "b.example", "sub.a.example", "c.example"];
        for seed in 1..=25u64 {
            let scratch = crate::spool::ScratchSpool::new("interleave");
            let spool = &scratch.spool;
            let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
            let mut rnd = move |n: usize| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % n as u64) as usize
            };
            // In flight: the entry, its envelope, how many commit steps are done.
            let mut flight: Vec<(NewEntry, Envelope, u8)> = Vec::new();
            let mut log = Vec::new();
            for step in 0..120 {
                let what = rnd(12);
                match what {
                    0..=2 => {
                        let n = 1 + rnd(2);
                        let rcpts: Vec<String> = (0..n)
                            .map(|i| format!("u{i}@{}", domains[rnd(domains.len())]))
                            .collect();
                        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
                        let mut ne = spool.begin(crate::clock::now()).unwrap();
                        let env = crate::spool::entry::test_envelope(&ne.id, &refs);
                        ne.writer().write_all(env.to_text().as_bytes()).unwrap();
                        log.push(format!("begin {} {rcpts:?}", ne.id));
                        flight.push((ne, env, 0));
                    }
                    3..=5 if !flight.is_empty() => {
                        let k = rnd(flight.len());
                        let stage = flight[k].2;
                        log.push(format!("step {stage} of {}", flight[k].1.id));
                        match stage {
                            0 => {
                                flight[k].0.sync_tmp().unwrap();
                            }
                            // An append that fails (or waits too long) removes the index.
                            1 if rnd(5) == 0 => {
                                log.push("  append failed".into());
                                invalidate(spool, &flight[k].1.id);
                            }
                            1 => flight[k].0.append_index(&flight[k].1),
                            _ => {
                                let (ne, _, _) = flight.swap_remove(k);
                                ne.publish().unwrap();
                                continue;
                            }
                        }
                        flight[k].2 += 1;
                    }
                    // A submission dies (its lines may be in the index already).
                    6 if !flight.is_empty() && rnd(3) == 0 => {
                        let k = rnd(flight.len());
                        log.push(format!("drop {}", flight[k].1.id));
                        flight.swap_remove(k);
                    }
                    6 => {
                        log.push("rebuild".into());
                        rebuild(spool).unwrap();
                    }
                    7 => {
                        log.push("full run".into());
                        sweep(spool, None, 0).unwrap();
                    }
                    // The recipient index removed (by hand, or by an append that
                    // could not leave its marker) while entries are in flight.
                    10 if rnd(2) == 0 => {
                        log.push("recipients removed".into());
                        let _ = fs::remove_file(spool.dir.join("index/recipients"));
                        // And an append at once (before the checks below rebuild it).
                        if let Some(k) = flight.iter().position(|f| f.2 == 1) {
                            log.push(format!("step 1 of {}", flight[k].1.id));
                            flight[k].0.append_index(&flight[k].1);
                            flight[k].2 += 1;
                        }
                    }
                    8 => {
                        let d = domains[rnd(domains.len())];
                        log.push(format!("prune {d}"));
                        // (No domains/ before the first append or rebuild.)
                        if let Err(e) = prune_domain(spool, d) {
                            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
                        }
                    }
                    9 => {
                        let ids = spool.ids().unwrap();
                        if ids.is_empty() {
                            continue;
                        }
                        let id = &ids[rnd(ids.len())];
                        let Some(mut locked) = spool.lock_entry(id).unwrap() else {
                            continue;
                        };
                        if rnd(2) == 0 {
                            log.push(format!("delivered {id}"));
                            locked.remove().unwrap();
                        } else {
                            // A recipient's final outcome stays final.
                            let n = locked.entry.envelope.recipients.len();
                            let states = [RcptState::Deferred, RcptState::Delivered];
                            let old = &locked.entry.state;
                            let state = State {
                                attempts: 1,
                                recipients: (0..n)
                                    .map(|i| match old.of(i) {
                                        s if s.is_final() => (i, s, None),
                                        _ => (i, states[rnd(2)], None),
                                    })
                                    .collect(),
                                ..State::default()
                            };
                            log.push(format!("tried {id}: {:?}", state.recipients));
                            locked.record_state(state).unwrap();
                        }
                    }
                    _ => {}
                }
                // A whole index names every committed entry with mail still to go
                // (a selective run then lists nothing).
                let snap = snapshot(spool, None, &[], false);
                if snap.whole() {
                    let raw = read_safely(&spool.dir.join("index/recipients")).unwrap();
                    let text = String::from_utf8_lossy(&raw);
                    let named: BTreeSet<&str> =
                        text.lines().filter_map(|l| l.split(' ').next()).collect();
                    let due = full_scan(spool, |_| true);
                    let missed: Vec<_> = due
                        .iter()
                        .filter(|id| !named.contains(id.as_str()))
                        .collect();
                    assert!(
                        missed.is_empty(),
                        "seed {seed} step {step}: the whole index misses {missed:?} after\n{}",
                        log.join("\n")
                    );
                }
                for d in domains {
                    let d = d.to_string();
                    for sub in [false, true] {
                        let want = full_scan(spool, |a| {
                            let rd = a.rsplit('@').next().unwrap();
                            rd == d || (sub && rd.ends_with(&format!(".{d}")))
                        });
                        assert_eq!(
                            select_domain(spool, &d, sub),
                            want,
                            "seed {seed} step {step}: ETRN {d} (subdomains {sub}) after\n{}",
                            log.join("\n")
                        );
                    }
                    let f = QueueRunArgs {
                        filters: vec![QueueFilter {
                            field: FilterField::Recipient,
                            negate: false,
                            substring: format!("@{d}"),
                        }],
                        ..QueueRunArgs::default()
                    };
                    let got: BTreeSet<String> = sweep(spool, Some(&f), 0)
                        .unwrap()
                        .selected
                        .into_iter()
                        .collect();
                    let want = full_scan(spool, |a| a.contains(&format!("@{d}")));
                    assert_eq!(
                        got,
                        want,
                        "seed {seed} step {step}: -qR@{d} after\n{}",
                        log.join("\n")
                    );
                }
            }
        }
    }

    mod props {
        use super::*;
        use crate::spool::ScratchSpool;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};

        /// Index text as a damaged file may hold it: lines of IDs and addresses (escaped
        /// or not), partial lines, and any octets.
        fn index_text() -> impl Strategy<Value = Vec<u8>> {
            let line = prop_oneof![
                3 => ("[0-9A-Za-x]{13,15}", "[ %]?", "[a-zA-Z@.%0-9 é\u{7f}]{0,20}")
                    .prop_map(|(id, sep, a)| format!("{id}{sep}{a}").into_bytes()),
                1 => vec(any::<u8>(), 0..30),
            ];
            vec(line, 0..10).prop_map(|v| v.join(&b'\n'))
        }

        #[test]
        fn any_index_text_is_read_as_hints() {
            let scratch = ScratchSpool::new("index");
            let spool = &scratch.spool;
            let mut runner = TestRunner::new(Config::default());
            let needles = vec("[a-zA-Z@.0-9é]{1,4}|[ %]{1,2}", 1..3);
            let result = runner.run(&(index_text(), needles), |(text, needles)| {
                fs::write(index_dir(spool).unwrap().join("recipients"), &text).unwrap();
                let firsts: BTreeSet<String> = String::from_utf8_lossy(&text)
                    .lines()
                    .filter_map(|l| l.split_once(' ').map(|(id, _)| id.to_string()))
                    .collect();
                for (id, _) in recipients(spool).unwrap_or_default() {
                    prop_assert!(valid_id(&id) && firsts.contains(&id), "{}", id);
                }
                let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
                for block in [SCAN_BLOCK, 1, 5] {
                    for id in ids_matching_by(spool, &needles, block).unwrap() {
                        prop_assert!(valid_id(&id) && firsts.contains(&id), "{}", id);
                    }
                    // The IDs named are the lines' valid first words, in any block size.
                    let f = fs::File::open(index_dir(spool).unwrap().join("recipients")).unwrap();
                    let (_, named) = scan_by(f, &needles, true, block).unwrap();
                    let want: Vec<[u8; 14]> = text
                        .split(|&b| b == b'\n')
                        .filter_map(|l| l.split(|&b| b == b' ').next())
                        .filter(|id| std::str::from_utf8(id).is_ok_and(valid_id))
                        .filter_map(|id| <[u8; 14]>::try_from(id).ok())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    prop_assert_eq!(named, want, "block {}", block);
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }

        /// The search read in blocks of any size (ending inside lines, inside IDs,
        /// inside matches) finds what one read of the whole index finds, and what a
        /// line-by-line search finds: ASCII lines of a few letters, so that matches
        /// are many.
        #[test]
        fn a_search_in_blocks_finds_what_a_line_by_line_search_finds() {
            let scratch = ScratchSpool::new("index-blocks");
            let spool = &scratch.spool;
            let mut runner = TestRunner::new(Config::default());
            let lines = vec(("[0-9A-Za-x]{14}", "[abAB@.]{0,12}"), 0..40);
            let needles = vec("[abAB@.]{1,3}", 1..3);
            let blocks = vec(1usize..40, 1..3);
            let result = runner.run(&(lines, needles, blocks), |(lines, needles, blocks)| {
                let text: String = lines.iter().map(|(id, a)| format!("{id} {a}\n")).collect();
                fs::write(index_dir(spool).unwrap().join("recipients"), &text).unwrap();
                let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
                let want = ids_matching_slowly(&text, &needles);
                for block in blocks {
                    prop_assert_eq!(
                        ids_matching_by(spool, &needles, block).unwrap(),
                        want.clone(),
                        "block {}",
                        block
                    );
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }

        #[test]
        fn the_fast_search_finds_what_a_line_by_line_search_finds() {
            let scratch = ScratchSpool::new("index-search");
            let spool = &scratch.spool;
            let mut runner = TestRunner::new(Config::default());
            // Lines as rsendmail writes them, of addresses that need no escape; needles
            // the fast search takes.
            let lines = vec(("[0-9A-Za-x]{14}", "[a-zA-Z@.0-9é€-]{0,20}"), 0..10);
            let needles = vec("[a-zA-Z@.0-9é€-]{1,3}", 1..3);
            let result = runner.run(&(lines, needles), |(lines, needles)| {
                let text: String = lines.iter().map(|(id, a)| format!("{id} {a}\n")).collect();
                fs::write(index_dir(spool).unwrap().join("recipients"), &text).unwrap();
                let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
                // Read in one block, and in blocks that end inside lines.
                for block in [SCAN_BLOCK, 1, 5, 17] {
                    prop_assert_eq!(
                        ids_matching_by(spool, &needles, block).unwrap(),
                        ids_matching_slowly(&text, &needles),
                        "block {}",
                        block
                    );
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }
    }
}

//! The fast-flush indexes (after Postfix's flush service): hints, never the truth.
//!
//! ```text
//! index/recipients        one line per queued recipient: "<ID> <escaped address>"
//! index/domains/<domain>  the IDs with mail for <domain>, one per line
//! index/lock              appenders hold it shared (waiting at most a second), a
//!                         rebuild or a prune exclusive (waiting at most a second too)
//! ```
//! Lines are appended at the commit point (before the rename: an ID listed before its
//! entry exists is harmless, a committed entry missing from the index is not). Readers
//! ignore IDs whose entry is gone. A rebuild writes both from the entries and replaces the
//! old files; it runs when the index is missing, when a full queue scan finds an entry
//! the index does not list, or when the index has grown well past what is queued
//! (`queue::refresh_index`).
//!
//! The index files are hints that anyone with the spool's group could have damaged: any
//! text in them is read (bad lines skipped) without byte-index slicing (the lints below
//! keep it so), never a panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::entry::{Envelope, escape, unescape};
use super::{Kind, Spool, open_dir, open_safely, read_safely, replace_safely, valid_id};
use crate::message::address::domain_of;
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

fn mode(spool: &Spool) -> u32 {
    if spool.private { 0o600 } else { 0o660 }
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

/// A file name for a domain: lowercase, and `%XX` for anything but `[a-z0-9.-_:[]]`
/// (and a leading dot), so that no domain can name a path outside the directory.
pub fn domain_file_name(domain: &str) -> String {
    let mut out = String::new();
    for (i, b) in domain.to_ascii_lowercase().bytes().enumerate() {
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
    open_safely(
        &index_dir(spool)?.join("lock"),
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode(spool)),
        Kind::File,
    )
}

fn append_to(spool: &Spool, path: &Path, text: &[u8]) -> io::Result<()> {
    let mut f = open_safely(
        path,
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(mode(spool)),
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
    let start = std::time::Instant::now();
    loop {
        match lock.try_lock_shared() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::Error(e)) => return Err(e),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() >= limit => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the index is being rebuilt",
                ));
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
    let start = std::time::Instant::now();
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::Error(e)) => return Err(e),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() >= limit => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the index lock is held by another process",
                ));
            }
            Err(fs::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
        }
    }
}

/// Add an entry's lines to both indexes, waiting at most [`APPEND_WAIT`] for a rebuild.
pub fn append(spool: &Spool, env: &Envelope) -> io::Result<()> {
    let lock = open_lock(spool)?;
    lock_shared_within(&lock, APPEND_WAIT)?;
    let dir = index_dir(spool)?;
    let mut rcpt_lines = String::new();
    let mut domains = BTreeSet::new();
    for r in &env.recipients {
        rcpt_lines.push_str(&format!("{} {}\n", env.id, escape(&r.address)));
        if let Some(d) = domain_of(&r.address) {
            domains.insert(d);
        }
    }
    append_to(spool, &dir.join("recipients"), rcpt_lines.as_bytes())?;
    if !domains.is_empty() {
        let ddir = domains_dir(spool, true)?;
        let line = format!("{}\n", env.id);
        for d in domains {
            append_to(spool, &ddir.join(domain_file_name(&d)), line.as_bytes())?;
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

/// IDs with an indexed recipient containing one of `needles` (ASCII case-insensitive,
/// sendmail's `-qR` meaning). One pass of a substring search over the whole index, not a
/// parse of every line: a `-qR` run costs little more with 20,000 entries than with 100.
/// Needles holding a byte the index escapes (blanks, `%`, controls) fall back to a
/// line-by-line comparison of the unescaped addresses.
pub fn ids_matching(spool: &Spool, needles: &[&str]) -> io::Result<BTreeSet<String>> {
    let raw = read_safely(&index_dir(spool)?.join("recipients"))?;
    let mut out = BTreeSet::new();
    let plain = |n: &str| n.bytes().all(|b| b > b' ' && b != 0x7f && b != b'%');
    let mut low = raw.clone();
    low.make_ascii_lowercase();
    let (Ok(orig), Ok(low)) = (std::str::from_utf8(&raw), std::str::from_utf8(&low)) else {
        return Ok(ids_matching_slowly(&String::from_utf8_lossy(&raw), needles));
    };
    if needles.iter().any(|n| n.is_empty() || !plain(n)) {
        return Ok(ids_matching_slowly(orig, needles));
    }
    for n in needles {
        let n = n.to_ascii_lowercase();
        for (at, _) in low.match_indices(n.as_str()) {
            let before = low.get(..at).unwrap_or_default();
            let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let Some(space) = low.get(start..).and_then(|line| line.find(' ')) else {
                continue;
            };
            // The hit must be in the address, after "<ID> " (ASCII lowercasing keeps
            // every byte where it was, so the ID is read from the original).
            let Some(id) = orig.get(start..start + space) else {
                continue;
            };
            if start + space < at && valid_id(id) {
                out.insert(id.to_string());
            }
        }
    }
    Ok(out)
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
                .any(|n| crate::selection::contains_ignore_case(&addr, n))
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
    let domain = domain.to_ascii_lowercase();
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

/// Drop the IDs whose entry is gone from `domain`'s list (after a flush of it, as
/// Postfix's flush service rewrites a destination's log): under the exclusive lock, so no
/// append made meanwhile is lost.
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
        if valid_id(id) && seen.insert(id) && spool.qf_path(id).exists() {
            keep.push_str(id);
            keep.push('\n');
        }
    }
    if keep.is_empty() {
        return fs::remove_file(&path);
    }
    let tmp = path.with_extension(format!("prune.{}", std::process::id()));
    replace_safely(&tmp, &path, keep.as_bytes(), mode(spool))
}

/// Of `ids` (the entries in the spool), those the recipient index does not list: a
/// submission that could not append (or whose lines a rebuild dropped between its append
/// and its rename) is found by every selective run all the same, by name, without
/// opening unrelated entries.
pub fn unindexed(spool: &Spool, ids: &[String]) -> Vec<String> {
    let text = index_dir(spool)
        .and_then(|d| read_safely(&d.join("recipients")))
        .unwrap_or_default();
    let listed: BTreeSet<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter_map(|l| l.split(|&b| b == b' ').next())
        .collect();
    ids.iter()
        .filter(|id| !listed.contains(id.as_bytes()))
        .cloned()
        .collect()
}

/// Forget the index (after an append failed): the next queue run rebuilds it from the
/// entries, so that no committed entry stays unlisted.
pub fn invalidate(spool: &Spool) {
    if let Ok(dir) = index_dir(spool) {
        let _ = fs::remove_file(dir.join("recipients"));
    }
}

/// Whether the index exists at all.
pub fn present(spool: &Spool) -> bool {
    index_dir(spool).is_ok_and(|dir| fs::symlink_metadata(dir.join("recipients")).is_ok())
}

/// Rebuild both indexes from the entries (the truth); the number of entries listed.
/// Errors: the spool or index files cannot be read or written, or `WouldBlock` when
/// another process has held the index lock for [`EXCLUSIVE_WAIT`] (then the index is
/// left as it was).
pub fn rebuild(spool: &Spool) -> io::Result<usize> {
    let lock = open_lock(spool)?;
    lock_exclusive_within(&lock, EXCLUSIVE_WAIT)?;
    let dir = index_dir(spool)?;
    let ids = spool.ids().map_err(|e| io::Error::other(e.message))?;
    let mut rcpt_lines = String::new();
    let mut by_domain: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    for id in ids {
        let Ok(e) = spool.read_entry(&id) else {
            continue;
        };
        n += 1;
        let mut seen = BTreeSet::new();
        for (i, r) in e.envelope.recipients.iter().enumerate() {
            if e.state.of(i).is_final() {
                continue;
            }
            rcpt_lines.push_str(&format!("{id} {}\n", escape(&r.address)));
            if let Some(d) = domain_of(&r.address)
                && seen.insert(d.clone())
            {
                by_domain.entry(d).or_default().push(id.clone());
            }
        }
    }
    let tmp = dir.join(format!("recipients.{}", std::process::id()));
    replace_safely(
        &tmp,
        &dir.join("recipients"),
        rcpt_lines.as_bytes(),
        mode(spool),
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
                .mode(mode(spool)),
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

    #[test]
    fn domain_lookup_exact_and_subdomains_and_rebuild() {
        let dir = std::env::temp_dir().join(format!("rsendmail-index-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::new(&dir, true);
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
                for id in ids_matching(spool, &needles).unwrap() {
                    prop_assert!(valid_id(&id) && firsts.contains(&id), "{}", id);
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
                prop_assert_eq!(
                    ids_matching(spool, &needles).unwrap(),
                    ids_matching_slowly(&text, &needles)
                );
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }
    }
}

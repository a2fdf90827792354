//! The spool: durable, file-locked queue entries.
//!
//! # Layout
//! ```text
//! SPOOLDIR/
//!   qf<ID>        a committed entry: envelope section, blank line, message
//!                 (never changed in place; replaced whole, under its delivery lock,
//!                 only to append a delivery-time expansion's targets:
//!                 LockedEntry::rewrite; see entry.rs for the format)
//!   sf<ID>        per-recipient state of the entry (absent = nothing tried yet),
//!                 replaced atomically (write tmp/, fsync, rename, fsync dir)
//!   jf<ID>        the delivery journal: `rcpt N delivered REPLY` lines appended by
//!                 the supervisor of a local delivery when its program or mailbox append
//!                 succeeded (entry::journal_line), each with one write and an fdatasync;
//!                 folded into sf<ID> by the next holder of the lock, then removed
//!   kf<ID>        a mark: an action (delete, hold, bounce) asked for while a delivery
//!                 held the entry, carried out by the next holder of its lock
//!                 ([`Spool::request`])
//!   tmp/tf<ID>    an entry being written by a submission (invisible to everyone else)
//!   tmp/sf<ID>.<pid>  a state file being written, or the room reserved for it
//!                 before a delivery (LockedEntry::reserve_state)
//!   tmp/rf<ID>.<pid>  the replacement of a queue file being written by its deliverer
//!                 (LockedEntry::rewrite)
//!   corrupt/      entries that could not be parsed, moved aside by a queue run
//!   index/        the fast-flush indexes (see index.rs); never the truth
//!   slots/<n>     lock files of background deliveries, as many as
//!                 `O MaxBackgroundDeliveries=` (made and locked by the deliverer's runner)
//!   hold/         held entries (`qf<ID>`, `sf<ID>`), moved aside by `rsendmail-admin hold`:
//!                 no run lists it ([`Spool::held`])
//! ```
//! docs/ARCHITECTURE.md, "The spool", describes all of it in one place.
//! `ID` is 14 characters like sendmail's (`6AM5eIkR004034`): year, month, day, hour,
//! minute, second in base 60, two characters of a per-process counter, and six digits of
//! the pid. IDs sort by submission time. A delivery report's ID is derived from its
//! original's instead ([`report_queue_id`]): the original's first eight characters, then
//! six made from the report's key, the first of them a letter (never a pid's digit), so
//! that a run that repeats a crashed one's step finds the report it already queued.
//!
//! # States and who cleans up
//! | on disk                      | meaning                          | who cleans                  |
//! |------------------------------|----------------------------------|-----------------------------|
//! | tmp/tf<ID> only              | submission in progress, or died  | queue run, once not locked² |
//! | qf<ID>                       | queued, nothing tried            | delivery                    |
//! | qf<ID> + sf<ID>              | queued, some outcomes recorded   | delivery                    |
//! | sf<ID> without qf<ID>        | crash between the two unlinks    | queue run                   |
//! | qf<ID> + jf<ID>              | local deliveries not yet in sf   | next lock ([`Spool::lock_entry`]) |
//! | jf<ID> without qf<ID>        | crash between the unlinks        | queue run                   |
//! | kf<ID> without qf<ID>        | crash before a mark's removal    | queue run                   |
//! | sf, jf, kf<ID> in hold/ or corrupt/ without their qf<ID> | a crash, a file removed by hand | by hand³ |
//! | tmp/sf<ID>.<pid>             | state write interrupted          | queue run, after [`GRACE`]¹ |
//! | tmp/rf<ID>.<pid>             | queue file rewrite interrupted   | queue run¹                  |
//! | index line for a missing ID  | crash before commit, or finished | readers skip; rebuild drops |
//!
//! ¹ and only when no live process holds it ([`Spool::clean_leftovers`]).
//! ² its submission holds its lock from its creation to its rename: one not locked was
//! left by a submission that died (a signal), and is removed at once, under the run's
//! lock; where locks are not to be had, after [`GRACE`].
//! ³ no run looks there; `rsendmail-admin check` names each such file (and one at the
//! top, until a run removes it) with its removal. A queued entry's file that is not a
//! regular file (a symbolic link, a FIFO, a directory) is failed by `check` with the
//! removal of the name itself; every program refuses to open it.
//!
//! # Commit protocol (submission)
//! 1. Reserve an ID: create `tmp/tf<ID>` with O_EXCL|O_NOFOLLOW and check that no
//!    `qf<ID>` exists (in-flight IDs collide on O_EXCL, committed ones on the check).
//! 2. Write envelope, headers and body through [`NewEntry::writer`], which counts; at
//!    commit, fill in the envelope's `message-bytes` with the count of bytes after the
//!    envelope section, and fsync the file.
//! 3. Append the index lines (an ID listed before it exists is harmless).
//! 4. Rename `tmp/tf<ID>` to `qf<ID>`, fsync the spool directory.
//!
//! **Commit point**: the directory fsync returns. Only then does `rsendmail` exit 0 (or the
//! listener answer 250). A failure or kill before it leaves at most a `tmp/` file, which
//! `mailq` and queue runs never read.
//!
//! # Locking
//! Whoever delivers an entry holds an exclusive flock on its `qf` file for the whole
//! delivery. The file is replaced only by its deliverer ([`LockedEntry::rewrite`]), which
//! locks the new file before renaming it into place. A runner that cannot take the lock skips
//! the entry. After locking, the open file must still be the one at the path (same device
//! and inode, link count > 0): otherwise another runner finished it meanwhile.
//! Removal: unlink `qf` first, then `sf` and `jf` (a crash between leaves an orphan, never
//! an entry that has lost its state and would be delivered twice).
//!
//! A local delivery (a mailbox, a `|command`, a `/file`) runs under a supervisor
//! (`rsendmail-deliver --supervise`) that inherits the locked `qf` descriptor: the lock
//! lives as long as the delivery does, even when the deliverer that started it dies,
//! and the supervisor journals the delivery in `jf<ID>` when it succeeded. The lock's
//! next holder folds the journal into the state ([`Spool::lock_entry`]); the readers
//! (`mailq`, `rsendmail-admin`) merge it into what they show.
//!
//! # Modes
//! System spool: directory 2770 (or 0730) root:<group>, files 0660; a per-user spool: 0700 and
//! 0600. Entries are opened with O_NOFOLLOW; symlinks and files with more than one link are
//! refused.
//!
//! Queue files may be damaged or hostile: reading one gives an entry or a
//! [`ReadError`] (a corrupt entry is moved aside by the queue run), never a panic. A
//! version 2 or 3 file must be exactly its envelope section and `message-bytes` bytes of
//! message long (`check_length`): a file cut short (a partial restore or copy) or with
//! bytes after its end is corrupt, never delivered in part; nothing
//! here cuts text by byte index (the lints below keep it so), and times read from the
//! file system saturate.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

pub mod entry;
pub mod index;
pub mod safety;
pub mod wake;

use crate::config::io_text;
use crate::exit::{Fatal, Sysexit};
use entry::{Envelope, State};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// How old a leftover temporary file must be before a queue run removes it.
pub const GRACE: i64 = 3600;

/// The sub-directory of held entries ([`Spool::held`]).
pub const HOLD: &str = "hold";

const ID_CHARS: &[u8; 60] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx";

static COUNTER: AtomicU32 = AtomicU32::new(u32::MAX);

/// A new queue ID for time `now` (see the module docs for the format).
pub fn new_queue_id(now: i64) -> String {
    let tm = crate::clock::local(now);
    let mut c = COUNTER.load(Ordering::Relaxed);
    if c == u32::MAX {
        // Start each process somewhere different so that two processes whose pids agree
        // modulo 10^6 are unlikely to meet; O_EXCL settles any collision.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        c = nanos / 1000 % 3600;
    }
    COUNTER.store((c + 1) % 3600, Ordering::Relaxed);
    let pid = std::process::id() % 1_000_000;
    let ch = |n: u32| char::from(ID_CHARS.get((n % 60) as usize).copied().unwrap_or(b'0'));
    format!(
        "{}{}{}{}{}{}{}{}{:06}",
        ch((tm.year - 1900).rem_euclid(60) as u32),
        ch(tm.month),
        ch(tm.day),
        ch(tm.hour),
        ch(tm.min),
        ch(tm.sec),
        ch(c / 60),
        ch(c % 60),
        pid
    )
}

/// A 64-bit hash of `s` (FNV-1a): the same in every build and every process (a run
/// that died and the next one may be different programs).
pub fn key_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The queue ID of the delivery report `key` of entry `origin` (see the module docs):
/// the same for the same key, so that the report is queued once whatever crash comes
/// between its commit and the record of its original (`dsn::Report::queue_keyed`).
/// `None` when `origin` is not a queue ID.
pub fn report_queue_id(origin: &str, key: &str) -> Option<String> {
    if !valid_id(origin) {
        return None;
    }
    let mut h = key_hash(key);
    let ch = |n: u64| char::from(ID_CHARS.get((n % 60) as usize).copied().unwrap_or(b'0'));
    let mut id: String = origin.chars().take(8).collect();
    // A letter first: 10 of the 60 characters are digits.
    id.push(ch(10 + h % 50));
    h /= 50;
    for _ in 0..5 {
        id.push(ch(h % 60));
        h /= 60;
    }
    Some(id)
}

/// Whether `s` looks like a queue ID (so that file names can be trusted as IDs).
pub fn valid_id(s: &str) -> bool {
    // The bytes of ID_CHARS, tested by range: a queue run over 100,000 entries checks
    // every name in the spool and in the index.
    s.len() == 14
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || (b'a'..=b'x').contains(&b))
}

/// A queue ID in 14 octets (see [`id_key`], [`key_str`]).
pub type IdKey = [u8; 14];

/// `s` as an [`IdKey`] when it is a valid queue ID.
pub fn id_key(s: &str) -> Option<IdKey> {
    if valid_id(s) {
        IdKey::try_from(s.as_bytes()).ok()
    } else {
        None
    }
}

/// Sort [`IdKey`]s (as `sort_unstable` would: by their octets), each compared as one
/// number rather than by `memcmp`: a queue run over 100,000 entries sorts their names.
pub fn sort_keys(keys: &mut [IdKey]) {
    keys.sort_unstable_by_key(key_order);
}

/// An [`IdKey`] as a number that orders as its octets do (big-endian, zero-padded).
fn key_order(k: &IdKey) -> u128 {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(k) {
        *d = *s;
    }
    u128::from_be_bytes(b)
}

/// The queue ID an [`IdKey`] holds (made by [`id_key`], so ASCII; empty otherwise).
pub fn key_str(k: &IdKey) -> &str {
    std::str::from_utf8(k).unwrap_or_default()
}

/// An open spool directory.
#[derive(Clone, Debug)]
pub struct Spool {
    pub dir: PathBuf,
    /// Files are 0600 (per-user spool) rather than 0660 (system spool).
    pub private: bool,
    /// Which destination domains get a per-domain list in the index (Postfix's
    /// `fast_flush_domains`; `O FastFlushDomains=`).
    pub fast_flush: FastFlush,
    /// Where the spool's path was named: whether a missing spool may be made, and what
    /// the message says when it may not ([`Spool::check_present`]).
    pub named: Named,
    /// For a spool's `hold/` ([`Spool::held`]): the spool it is the `hold/` of, where a
    /// mark made on a held entry lies (`kf<ID>`). `None` for the spool itself and for
    /// its `corrupt/`.
    pub hold_of: Option<PathBuf>,
}

/// Where a spool's path came from. Only the caller's own built-in default is made on
/// demand; every other spool is made by the install (the Debian package, or the
/// documented steps) or by `rsendmail-admin init`, so that a mistyped path is an error
/// rather than a new tree no queue runner looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    /// The built-in per-user default (`$XDG_STATE_HOME/rsendmail/spool`: no system
    /// configuration, no `SPOOLDIR`, neither root nor set-id). Made with its parents,
    /// mode 0700, on first use: the one-command start without root or configuration.
    /// Nothing there is shared, and nobody typed the path, so there is no typo to catch.
    OwnDefault,
    /// The system's built-in default (`/var/spool/rsendmail`: root or set-id, no
    /// `SPOOLDIR`).
    SystemDefault,
    /// `-oQ` or `-O QueueDirectory=` on the command line.
    CommandLine,
    /// A line of a configuration file: `at` is `FILE: line N`, `keyword` is `SPOOLDIR`
    /// or `O QueueDirectory`.
    Config { at: String, keyword: String },
}

/// Which domains are eligible for a per-domain list of queued mail (after Postfix's
/// flush(8) `fast_flush_domains`): ETRN for such a domain reads its list; for any
/// other, it runs the whole queue (Postfix's "slow" ETRN).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FastFlush {
    /// Every (well-formed) domain: the library's default.
    #[default]
    All,
    /// These domains (lowercase) and their subdomains; none when empty.
    Domains(Vec<String>),
}

impl FastFlush {
    /// Whether mail for `domain` is listed per domain: a well-formed domain name
    /// (RFC 5321 labels or an address literal: [`crate::message::address::check_domain`])
    /// that is, or is under, one of the listed domains ([`crate::config::domain_covers`]:
    /// case and a trailing dot do not count). A name that cannot be a domain is never
    /// indexed.
    pub fn eligible(&self, domain: &str) -> bool {
        let d = crate::config::domain_key(domain);
        if crate::message::address::check_domain(&d).is_err() {
            return false;
        }
        match self {
            FastFlush::All => true,
            FastFlush::Domains(list) => list.iter().any(|e| crate::config::domain_covers(e, &d)),
        }
    }

    /// The policy as one line, kept beside the index so that a changed policy makes the
    /// next ETRN rebuild the lists.
    pub fn describe(&self) -> String {
        match self {
            FastFlush::All => "*".to_string(),
            FastFlush::Domains(list) => {
                let mut l = list.clone();
                l.sort();
                l.join(" ")
            }
        }
    }
}

fn cant(what: &str, path: &Path, e: &io::Error) -> Fatal {
    Fatal::io(e, format!("{what} {}: {}", path.display(), io_text(e)))
}

/// fsync a directory (the spool itself, which may be a symlink the admin configured).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    dir_for_sync(dir)?.sync_all()
}

/// A directory opened to be fsynced later ([`sync_dir`] in two steps): opened before a
/// rename into it, so that running out of descriptors (EMFILE) fails before the rename
/// rather than after it, when the renamed file is already in place.
pub fn dir_for_sync(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(dir)
}

/// What a path inside the spool must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with exactly one link.
    File,
    /// A directory (never a symlink to one).
    Dir,
}

/// Why [`open_safely`] refused a path: it is not what the spool keeps there.
#[derive(Debug)]
pub struct Unsafe {
    pub path: PathBuf,
    /// What was found: "a symbolic link", "a FIFO", "a regular file with 2 links", ...
    pub found: String,
    pub wanted: Kind,
    /// A regular file with more than one link: the file itself may be what rsendmail
    /// wrote (a backup tool linked it elsewhere), so it is refused, not moved aside.
    pub linked: bool,
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wanted = match self.wanted {
            Kind::File => "a regular file with one link",
            Kind::Dir => "a directory",
        };
        write!(
            f,
            "{} is {}, not {wanted}; refused",
            self.path.display(),
            self.found
        )
    }
}

impl std::error::Error for Unsafe {}

/// Whether an error is [`open_safely`]'s refusal (a hostile or foreign file in the spool).
pub fn is_unsafe(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Unsafe>())
}

/// Whether an error is [`open_safely`]'s refusal of a regular file with more than one
/// link ([`Unsafe::linked`]).
pub fn is_linked(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Unsafe>())
        .is_some_and(|u| u.linked)
}

fn unsafe_path(path: &Path, md: &fs::Metadata, wanted: Kind) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        Unsafe {
            path: path.to_path_buf(),
            found: if md.file_type().is_file() && md.nlink() != 1 {
                format!("a regular file with {} links", md.nlink())
            } else {
                safety::kind_of(&md.file_type()).to_string()
            },
            wanted,
            linked: md.file_type().is_file() && md.nlink() > 1,
        },
    )
}

/// Open a file or folder of the spool. Every open in the spool goes through here: never
/// through a symlink (`O_NOFOLLOW`), never waiting on a FIFO or a device (`O_NONBLOCK`),
/// and checked on the open descriptor (fstat): a directory, or a regular file with
/// exactly one link. Anything else is refused with an [`Unsafe`] error saying what was
/// found, so that a planted file can neither hang a reader nor lead it outside the spool.
/// `opts` says how (read, write, create...); the flags are added here.
pub fn open_safely(path: &Path, opts: &mut OpenOptions, kind: Kind) -> io::Result<File> {
    let dir = if kind == Kind::Dir {
        libc::O_DIRECTORY
    } else {
        0
    };
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | dir);
    // Unlinked between the open and the look at what it opened: a file replaced (a
    // state file renamed over) is opened again, once, by its name; one removed (an
    // entry another process deleted) is gone, as it would have been a moment later,
    // never a file refused as unsafe.
    for _ in 0..2 {
        let f = match opts.open(path) {
            Ok(f) => f,
            // ELOOP: the last component is a symlink; ENOTDIR: not a directory; ENXIO: a
            // FIFO opened for writing without a reader. Say what is there.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ELOOP | libc::ENOTDIR | libc::ENXIO)
                ) =>
            {
                return Err(match fs::symlink_metadata(path) {
                    Ok(md) => unsafe_path(path, &md, kind),
                    Err(_) => e,
                });
            }
            Err(e) => return Err(e),
        };
        let md = f.metadata()?;
        if kind == Kind::File && md.file_type().is_file() && md.nlink() == 0 {
            continue;
        }
        let ok = match kind {
            Kind::File => md.file_type().is_file() && md.nlink() == 1,
            Kind::Dir => md.file_type().is_dir(),
        };
        if !ok {
            return Err(unsafe_path(path, &md, kind));
        }
        return Ok(f);
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: removed meanwhile", path.display()),
    ))
}

/// Open a folder of the spool for listing or checking (see [`open_safely`]).
pub fn open_dir(path: &Path) -> io::Result<File> {
    open_safely(path, OpenOptions::new().read(true), Kind::Dir)
}

/// The names a spool directory holds besides its entries ([`Spool::check_takeover`]):
/// its sub-directories, the wake-up FIFO, `lost+found` (a spool on a file system of
/// its own) and root's verdict on its group ([`safety::GROUP_VERDICT`]).
pub const SPOOL_NAMES: [&str; 9] = [
    "tmp",
    "index",
    "corrupt",
    "slots",
    "waiting",
    HOLD,
    wake::NAME,
    "lost+found",
    safety::GROUP_VERDICT,
];

/// The prefixes of the files a spool holds at its top, each followed by a queue ID
/// ([`valid_id`]): rsendmail's entries (`qf`), their state (`sf`), their delivery
/// journal (`jf`) and the mark of a deletion asked for while a delivery held the entry
/// (`kf`, [`Spool::request_deletion`]).
pub const ENTRY_PREFIXES: [&str; 4] = ["qf", "sf", "jf", "kf"];

/// An action asked for while a delivery held an entry ([`Spool::request`]), carried
/// out when that delivery lets go of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `rsendmail-admin delete`: removed, nothing more sent.
    Delete,
    /// `rsendmail-admin hold`: moved into `hold/`, no further transaction started.
    Hold,
    /// `rsendmail-admin bounce`: every recipient still open returned with `reason`
    /// (`bounce_by`: who asked, as the report says it), none tried again.
    Bounce {
        reason: String,
        bounce_by: Option<String>,
    },
}

impl Request {
    /// The action in words: `deletion`, `hold`, `return to the sender`.
    pub fn what(&self) -> &'static str {
        match self {
            Request::Delete => "deletion",
            Request::Hold => "hold",
            Request::Bounce { .. } => "return to the sender",
        }
    }
}

/// Who asked for a mark that cannot be read ([`Mark::is_unreadable`]).
const UNREADABLE_MARK: &str = "an unreadable mark";

/// The marks this process has found unreadable and logged ([`Spool::mark`]), by path.
static UNREADABLE_MARKS_LOGGED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Whether the unreadable mark at `path` was logged by this process already; it counts
/// as logged from now on. One process (a command, a queue run) says it once, not at
/// each of its looks at the mark.
fn unreadable_mark_logged(path: &Path) -> bool {
    match UNREADABLE_MARKS_LOGGED.lock() {
        Ok(mut logged) => !logged.insert(path.to_path_buf()),
        Err(_) => false,
    }
}

/// The mark at `path` is gone or readable: an unreadable one put there later is logged
/// again.
fn unreadable_mark_gone(path: &Path) {
    if let Ok(mut logged) = UNREADABLE_MARKS_LOGGED.lock()
        && !logged.is_empty()
    {
        logged.remove(path);
    }
}

/// The line a delivery adds to a hold's or a return's mark when it ended every
/// recipient of the entry before the mark could take effect ([`Spool::mark_outlived`]).
pub const OUTLIVED: &str = "outlived";

/// The spool's marks lock ([`Spool::lock_marks`]), held until dropped. `None` inside
/// when it could not be taken (logged).
#[derive(Debug)]
pub struct MarksLock(#[allow(dead_code)] Option<File>);

/// What [`Spool::request`] left: the mark in effect (a deletion asked for before stays)
/// and the other mark it replaced, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Requested {
    pub mark: Mark,
    pub replaced: Option<Mark>,
}

/// An entry's mark, `kf<ID>`: the action, who asked (`login (uid N)`) and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub request: Request,
    pub by: String,
    pub at: i64,
}

impl Mark {
    /// A mark that cannot be read: taken as a hold, which sends and loses nothing.
    fn unreadable() -> Mark {
        Mark {
            request: Request::Hold,
            by: UNREADABLE_MARK.to_string(),
            at: 0,
        }
    }

    /// Whether this is a mark that could not be read or understood, taken as a hold
    /// ([`Spool::mark`]).
    pub fn is_unreadable(&self) -> bool {
        self.at == 0 && self.by == UNREADABLE_MARK
    }

    /// The mark as written: `rsendmail-ACTION 1`, then `by`, `at`, and for a bounce
    /// `reason` and `bounce-by` lines, values escaped ([`entry::escape`]).
    pub fn to_text(&self) -> String {
        let action = match &self.request {
            Request::Delete => "delete",
            Request::Hold => "hold",
            Request::Bounce { .. } => "bounce",
        };
        let mut t = format!(
            "rsendmail-{action} 1\nby {}\nat {}\n",
            entry::escape(&self.by),
            self.at
        );
        if let Request::Bounce { reason, bounce_by } = &self.request {
            t.push_str(&format!("reason {}\n", entry::escape(reason)));
            if let Some(b) = bounce_by {
                t.push_str(&format!("bounce-by {}\n", entry::escape(b)));
            }
        }
        t
    }

    /// A mark's text ([`Mark::to_text`]); `None` when it is not one.
    pub fn parse(text: &str) -> Option<Mark> {
        let mut lines = text.lines();
        let action = lines
            .next()?
            .strip_prefix("rsendmail-")?
            .strip_suffix(" 1")?;
        let (mut by, mut at, mut reason, mut bounce_by) = (None, 0i64, None, None);
        for l in lines {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            match k {
                "by" => by = Some(entry::unescape(v)?),
                "at" => at = v.parse().ok()?,
                "reason" => reason = Some(entry::unescape(v)?),
                "bounce-by" => bounce_by = Some(entry::unescape(v)?),
                _ => {}
            }
        }
        let request = match action {
            "delete" => Request::Delete,
            "hold" => Request::Hold,
            "bounce" => Request::Bounce {
                reason: reason?,
                bounce_by,
            },
            _ => return None,
        };
        Some(Mark {
            request,
            by: by.unwrap_or_default(),
            at,
        })
    }

    /// Who holds an entry this mark held: `login (uid N)` as [`entry::HeldBy`].
    pub fn holder(&self) -> Option<entry::HeldBy> {
        let (login, rest) = self.by.rsplit_once(" (uid ")?;
        let uid = rest.strip_suffix(')')?.parse().ok()?;
        Some(entry::HeldBy {
            uid,
            login: login.to_string(),
        })
    }

    /// The action in words ([`Request::what`]).
    pub fn what(&self) -> &'static str {
        self.request.what()
    }
}

/// The prefixes of the files sendmail keeps in its queue directory (`df` the body, `tf`,
/// `xf` the transcript, `Qf` a lost entry, `hf`, `Tf`): a directory holding them is an
/// old sendmail queue, which rsendmail does not read.
pub const SENDMAIL_PREFIXES: [&str; 6] = ["df", "tf", "xf", "Qf", "hf", "Tf"];

/// The spool's directories below it, as paths relative to it: the sub-directories
/// ([`SPOOL_NAMES`]' directories) and `index/domains`, where submissions, queue runs and
/// `rsendmail-admin` make and remove files ([`Spool::world_writable`],
/// `rsendmail-admin check`).
pub const SUBDIRS: [&str; 7] = [
    "tmp",
    "index",
    "index/domains",
    "corrupt",
    "slots",
    "waiting",
    HOLD,
];

/// The file of an entry that `name` names: its prefix ([`ENTRY_PREFIXES`]) and the queue
/// ID after it ([`valid_id`]); `None` for any other name (`qfjunk`, `notes.txt`,
/// `qf<ID>.bak`), which no program takes for an entry's file.
pub fn entry_file(name: &str) -> Option<(&'static str, &str)> {
    ENTRY_PREFIXES
        .iter()
        .find_map(|p| Some((*p, name.strip_prefix(p).filter(|id| valid_id(id))?)))
}

/// Whether `name`, at the spool's top, is one of the spool's own: a sub-directory, the
/// wake-up FIFO, the group's verdict ([`SPOOL_NAMES`]) or an entry's file
/// ([`entry_file`]).
pub fn is_spool_name(name: &str) -> bool {
    SPOOL_NAMES.contains(&name)
        // The group's verdict being written (`safety::record_group_fit`).
        || name
            .strip_prefix(safety::GROUP_VERDICT)
            .and_then(|p| p.strip_prefix('.'))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        || entry_file(name).is_some()
}

/// The most bytes [`read_safely`] reads: far more than any state or index file of a
/// real queue takes (a state file with 5,000 recipients and their replies is about
/// 0.5 MiB), and little enough that a damaged or planted file cannot exhaust memory.
pub const MAX_READ: u64 = 64 << 20;

/// Read a whole file of the spool (see [`open_safely`]). A file longer than
/// [`MAX_READ`] is an error (`InvalidData`, "too large"), never read into memory.
pub fn read_safely(path: &Path) -> io::Result<Vec<u8>> {
    let f = open_safely(path, OpenOptions::new().read(true), Kind::File)?;
    let len = f.metadata()?.len();
    let too_large = |len: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("too large: {len} bytes, more than a spool file takes ({MAX_READ})"),
        )
    };
    if len > MAX_READ {
        return Err(too_large(len));
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(MAX_READ + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_READ {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// Replace a file of the spool with `bytes`, written through a temporary file `tmp`
/// beside it (see [`open_safely`]; the rename replaces whatever the path held, symlink or
/// FIFO included, without following it).
pub fn replace_safely(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let _ = fs::remove_file(tmp);
    let mut f = open_safely(
        tmp,
        OpenOptions::new().write(true).create_new(true).mode(mode),
        Kind::File,
    )?;
    f.write_all(bytes)?;
    fs::rename(tmp, path)
}

impl Spool {
    /// Who held entry `id` (in `hold/`), as its state file records it
    /// ([`State::held_by`]): the one in `hold/`, or the one a hold cut short left in the
    /// spool. `None` when there is no record (a hold made before it was kept, or whose
    /// record could not be written) or the state file cannot be read.
    pub fn recorded_holder(&self, id: &str) -> Option<entry::HeldBy> {
        for sp in [self.held(), self.clone()] {
            match read_safely(&sp.sf_path(id)) {
                Ok(bytes) => {
                    return String::from_utf8(bytes)
                        .ok()
                        .and_then(|t| State::parse(&t).ok())
                        .and_then(|st| st.held_by);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Sync the spool directory after entries were removed
    /// ([`LockedEntry::remove_unsynced`]). The entries are gone; a failed sync could only
    /// bring them back after a crash (and their recipients would be tried again): it is
    /// logged loudly.
    pub fn sync_removals(&self) {
        if let Err(e) = sync_dir(&self.dir) {
            log::error!("{}", cant("cannot sync", &self.dir, &e));
        }
    }

    /// A spool at `dir` whose path was named as `named` says.
    pub fn new(dir: impl Into<PathBuf>, private: bool, named: Named) -> Spool {
        Spool {
            dir: dir.into(),
            private,
            fast_flush: FastFlush::All,
            named,
            hold_of: None,
        }
    }

    /// The caller's own spool at `dir` (private, made on demand: [`Named::OwnDefault`]).
    pub fn own(dir: impl Into<PathBuf>) -> Spool {
        Spool::new(dir, true, Named::OwnDefault)
    }

    /// How the spool's path was named, to begin a line that refuses it: `FILE: line N:
    /// SPOOLDIR /path` for a configuration's, `the queue directory /path (command
    /// line)`, else `the queue directory /path`.
    pub fn named_as(&self) -> String {
        let dir = self.dir.display();
        match &self.named {
            Named::Config { at, keyword } => format!("{at}: {keyword} {dir}"),
            Named::CommandLine => format!("the queue directory {dir} (command line)"),
            _ => format!("the queue directory {dir}"),
        }
    }

    /// Refuse a spool that is not there (EX_CONFIG, 78), unless it is the caller's own
    /// built-in default ([`Named::OwnDefault`]), which [`Spool::prepare`] makes. Nothing
    /// is created here. As sendmail refuses a missing `QueueDirectory`
    /// (compat-tests/cases/queuedir-missing, queuedir-missing-parent: `can not
    /// chdir(DIR/): No such file or directory`, exit 78, which is the message for
    /// `-oQ`); a path from a configuration file is named by its file and line, and says
    /// whether its parent is missing too (a typo) or only the spool (not made yet).
    /// Other errors (a directory the caller may not search) are left to the steps that
    /// use the spool, which say why.
    pub fn check_present(&self) -> Result<(), Fatal> {
        self.check_present_as(&fs::metadata(&self.dir))
    }

    /// [`Spool::check_present`] with the spool's `fs::metadata` already taken (so that
    /// [`Spool::prepare`] looks at the directory once).
    fn check_present_as(&self, top: &io::Result<fs::Metadata>) -> Result<(), Fatal> {
        if self.named == Named::OwnDefault {
            return Ok(());
        }
        match top {
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) => {}
            // A SPOOLDIR that is a file, a device, a FIFO: the configuration's file and
            // line, what is there; nothing is made or changed.
            Ok(md) if !md.is_dir() && self.named != Named::CommandLine => {
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!(
                        "{}: not a directory but {}; not used as the spool, nothing was \
                         changed (name a directory: the spool is made by the install, or \
                         by \"{}\" as root)",
                        self.named_as(),
                        safety::kind_of(&md.file_type()),
                        safety::admin_command("init")
                    ),
                ));
            }
            _ => return Ok(()),
        }
        let dir = self.dir.display().to_string();
        let parent = self
            .dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && fs::metadata(p).is_err());
        let made_by = format!(
            "nothing was created: the spool is made by the install, or by \"{}\" as root",
            safety::admin_command("init")
        );
        let message = match (&self.named, parent) {
            (Named::Config { at, keyword }, Some(p)) => format!(
                "{at}: {keyword} {dir}: no such directory, nor its parent {} (a typo? \
                 nothing was created)",
                p.display()
            ),
            (Named::Config { at, keyword }, None) => {
                format!("{at}: {keyword} {dir}: no such directory ({made_by})")
            }
            (Named::SystemDefault, _) => {
                format!("the queue directory {dir} does not exist ({made_by})")
            }
            _ => format!(
                "can not chdir({}/): No such file or directory",
                dir.trim_end_matches('/')
            ),
        };
        Err(Fatal::new(Sysexit::Config, message))
    }

    /// Whether the existing directory at the spool's path may become (or stay) a spool,
    /// the one rule of every entry point (`rsendmail-admin init`, whose `repairs` are
    /// the spool's modes, and the programs' [`Spool::prepare`]):
    /// - a directory holding anything but a spool's own names ([`SPOOL_NAMES`], `qf` or
    ///   `sf` and a queue ID) is refused, naming what it holds: another program's files
    ///   (`SPOOLDIR /var/spool`), an old sendmail queue (`df`, `tf`, `xf`, `Qf`, ... files:
    ///   [`SENDMAIL_PREFIXES`], or a `qf` file that begins with sendmail's version line
    ///   `V8`);
    /// - a sticky or world-writable directory (`/tmp`, `/var/tmp`, `/dev/shm`,
    ///   `/run/lock`, a file system mounted 1777) is refused, empty or not: it is shared,
    ///   and its mode is never changed;
    /// - an empty one is taken over only when it belongs to root or to the caller (one
    ///   another user owns could be held open, or its mode changed, by that user).
    /// - one rsendmail made (root's or the caller's, not shared, with `tmp/` and
    ///   `index/` of the same owner) is its own whatever else is in it: a stray file
    ///   (an editor's backup) is left alone, not a reason to refuse the spool.
    ///
    /// So a `SPOOLDIR` naming `/var/spool` or `/tmp` by mistake is refused (EX_CONFIG, 78,
    /// with the keyword's file and line) before anything in it is made or changed. A
    /// missing directory is not this check's business ([`Spool::check_present`]).
    /// `lost+found` (a spool on a file system of its own) does not count as content.
    pub fn check_takeover(&self) -> Result<(), Fatal> {
        let Ok(md) = fs::metadata(&self.dir) else {
            return Ok(());
        };
        if !md.is_dir() {
            return Ok(());
        }
        let mode = md.mode() & 0o7777;
        let shared = if mode & 0o1000 != 0 {
            Some(format!(
                "the directory is sticky (mode {mode:o}: shared, like /tmp)"
            ))
        } else if mode & 0o002 != 0 {
            Some(format!(
                "the directory is writable by everyone (mode {mode:o})"
            ))
        } else {
            None
        };
        let named = self.named_as();
        let refused = |problem: String| {
            Err(Fatal::new(
                Sysexit::Config,
                format!(
                    "{named}: {problem}; not used as the spool, nothing was changed (name an \
                     empty directory of its own)"
                ),
            ))
        };
        // /tmp, /var/tmp, /dev/shm, /run/lock, or any directory others may write in: never
        // taken over, even empty (it stays theirs; its mode is never changed). Said by its
        // mode alone, first: what others keep there is not listed, and a caller who may
        // not read it (a user's submission) gets the same refusal.
        let listing: Option<Vec<String>> = fs::read_dir(&self.dir).ok().map(|l| {
            l.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lost+found")
                .collect()
        });
        // A spool rsendmail made (root's, its sub-directories there, nothing else in
        // it) that was given a wrong mode later (sticky, 2777): still its own, and
        // init repairs its modes.
        let established = md.uid() == 0
            && ["tmp", "index"].iter().all(|d| self.dir.join(d).is_dir())
            && listing
                .as_ref()
                .is_some_and(|names| names.iter().all(|n| is_spool_name(n)));
        if let Some(why) = shared.as_ref().filter(|_| !established) {
            return refused(match listing.as_ref().map(Vec::is_empty) {
                Some(true) => format!("{why}: a shared directory is never taken over, even empty"),
                Some(false) => {
                    format!("{why} and not empty: a shared directory is never taken over")
                }
                None => format!("{why}: a shared directory is never taken over"),
            });
        }
        // A spool rsendmail made, whose mode is not shared: root's (or the caller's own),
        // with its `tmp/` and `index/` directories of the same owner (no one else could
        // have made them there). A stray file in it (an editor's backup, `qfjunk`) does
        // not make it another program's: it is used, the file left alone (`check` names
        // it).
        let me = nix::unistd::geteuid().as_raw();
        let made_by_us = shared.is_none()
            && (md.uid() == 0 || md.uid() == me)
            && ["tmp", "index"].iter().all(|d| {
                fs::symlink_metadata(self.dir.join(d))
                    .is_ok_and(|m| m.is_dir() && m.uid() == md.uid())
            });
        if made_by_us {
            return Ok(());
        }
        let mut names: Vec<String> = match listing {
            Some(names) => names,
            None => fs::read_dir(&self.dir)
                .map_err(|e| cant("cannot read", &self.dir, &e))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lost+found")
                .collect(),
        };
        names.sort();
        // sendmail's own `qf` files have queue IDs of the same shape as rsendmail's:
        // told apart by their first line, sendmail's version line (`V8`).
        let sendmail_qf = |n: &str| {
            n.starts_with("qf")
                && open_safely(&self.dir.join(n), OpenOptions::new().read(true), Kind::File)
                    .ok()
                    .and_then(|f| {
                        let mut head = [0u8; 2];
                        f.take(2).read_exact(&mut head).ok().map(|()| head)
                    })
                    .is_some_and(|h| h[0] == b'V' && h[1].is_ascii_digit())
        };
        let foreign: Vec<&String> = names
            .iter()
            .filter(|n| !is_spool_name(n) || sendmail_qf(n))
            .collect();
        let sendmail: Vec<&&String> = foreign
            .iter()
            .filter(|n| SENDMAIL_PREFIXES.iter().any(|p| n.starts_with(p)) || sendmail_qf(n))
            .collect();
        let shown = |list: &[&String]| {
            let mut out: Vec<String> = list
                .iter()
                .take(3)
                .map(|n| n.escape_debug().to_string())
                .collect();
            if list.len() > 3 {
                out.push(format!("and {} more", list.len() - 3));
            }
            out.join(", ")
        };
        let problem = if let Some(first) = sendmail.first() {
            Some(format!(
                "it holds an old sendmail queue ({first}{}), which rsendmail does not read",
                if foreign.len() > 1 {
                    format!(" among {} files not a spool's", foreign.len())
                } else {
                    String::new()
                }
            ))
        } else if !foreign.is_empty() {
            Some(format!(
                "it holds what is not a spool's ({})",
                shown(&foreign)
            ))
        } else if md.uid() != 0 && md.uid() != me && names.is_empty() {
            // Whoever owns it could keep it open, or change its mode, after it became
            // the spool.
            Some(format!(
                "it is owned by {}, neither root nor this user",
                safety::the_user_id(md.uid())
            ))
        } else {
            // An empty directory of root's is taken unless it is the system's: in the
            // system's places only rsendmail's (`/etc/profile.d`, empty, is another
            // program's; `/media`, `/var/opt` are never a spool).
            (names.is_empty() && md.uid() == 0 && shared.is_none())
                .then(|| safety::system_directory(&self.dir))
                .flatten()
                .map(|why| {
                    format!(
                        "it is an empty directory of the system's ({why}), which may be \
                         another program's; in the system's places a spool is one of \
                         rsendmail's (/var/spool/rsendmail, a name beginning with \
                         rsendmail in /var/spool or /var/lib)"
                    )
                })
        };
        match problem {
            Some(problem) => refused(problem),
            None => Ok(()),
        }
    }

    /// The spool's directories (itself, then each of [`SUBDIRS`] that is a directory)
    /// that everyone may write, sticky or not, with their modes: any user could plant
    /// entries there, or remove them. A sub-directory that is a symbolic link is not
    /// followed ([`Spool::subdir`] moves it aside).
    pub fn world_writable(&self) -> Vec<(PathBuf, u32)> {
        self.world_writable_as(fs::metadata(&self.dir).ok())
    }

    /// [`Spool::world_writable`] with the spool's `fs::metadata` already taken.
    fn world_writable_as(&self, top: Option<fs::Metadata>) -> Vec<(PathBuf, u32)> {
        let mut out = Vec::new();
        if let Some(md) = top.filter(fs::Metadata::is_dir)
            && md.mode() & 0o002 != 0
        {
            out.push((self.dir.clone(), md.mode() & 0o7777));
        }
        for sub in SUBDIRS {
            let p = self.dir.join(sub);
            if let Ok(md) = fs::symlink_metadata(&p)
                && md.is_dir()
                && md.mode() & 0o002 != 0
            {
                out.push((p, md.mode() & 0o7777));
            }
        }
        out
    }

    /// The system spool's directories (itself, then each of [`SUBDIRS`] there) whose
    /// POSIX ACLs give a user or a group anything besides the mode's owner and group
    /// (an access ACL's named entry, the mask applied, or a default ACL's:
    /// [`safety::acl_problem`]), with whom in words: those could plant, remove or read
    /// queue entries. None for a user's own spool (hers to share).
    pub fn acl_writable(&self) -> Vec<(PathBuf, String)> {
        if self.private {
            return Vec::new();
        }
        std::iter::once(self.dir.clone())
            .chain(SUBDIRS.iter().map(|s| self.dir.join(s)))
            .filter_map(|p| safety::acl_problem(&p).map(|w| (p, w)))
            .collect()
    }

    /// The line that refuses a spool directory `dir` whose ACLs give others anything
    /// (`who`: [`Spool::acl_writable`]), with its repair.
    pub fn acl_writable_problem(&self, dir: &Path, who: &str) -> String {
        format!(
            "{} (`setfacl -b {}` removes it; so does `{}`)",
            self.acl_writable_refusal(dir, who),
            safety::shell_word(dir),
            safety::admin_command("init")
        )
    }

    /// [`Spool::acl_writable_problem`] without its repair: `rsendmail-admin check` gives
    /// the command as its `(fix: ...)` part.
    pub fn acl_writable_refusal(&self, dir: &Path, who: &str) -> String {
        format!(
            "the queue directory {} is {who}: they could read, plant or remove queue \
             entries there, so the queue is not used until the ACL is removed",
            dir.display(),
        )
    }

    /// The line that refuses a spool directory `dir` (mode `mode`) everyone may write
    /// ([`Spool::world_writable`]), for every program that uses the spool and for
    /// `rsendmail-admin check`, which adds its fix.
    pub fn world_writable_problem(&self, dir: &Path, mode: u32) -> String {
        let want = if self.private { 0o700 } else { 0o2770 };
        format!(
            "{} (`chmod {want:o} {}` repairs it)",
            self.world_writable_state(dir, mode),
            safety::shell_word(dir),
        )
    }

    /// [`Spool::world_writable_problem`] without its repair: for `rsendmail-admin
    /// check`, whose own fix ends the line.
    pub fn world_writable_state(&self, dir: &Path, mode: u32) -> String {
        let what = if dir == self.dir {
            "the queue directory"
        } else {
            "the queue's sub-directory"
        };
        let want = if self.private { 0o700 } else { 0o2770 };
        format!(
            "{what} {} (mode {mode:o}) is writable by everyone: any user could plant or \
             remove queue entries there, so the queue is not used until it is made \
             {want:o} again",
            dir.display(),
        )
    }

    /// Refuse a spool whose directory or a sub-directory everyone may write
    /// ([`Spool::world_writable`]): EX_CONFIG (78), naming the first such directory
    /// and its mode. Nothing is taken, run or changed: the caller is told (a
    /// submission's message stays with its sender), as sendmail's own checks of
    /// unsafe files refuse them.
    pub fn check_safe(&self) -> Result<(), Fatal> {
        self.check_safe_as(fs::metadata(&self.dir).ok())
    }

    /// [`Spool::check_safe`] with the spool's `fs::metadata` already taken.
    fn check_safe_as(&self, top: Option<fs::Metadata>) -> Result<(), Fatal> {
        self.check_world_writable_as(top)?;
        self.check_place()?;
        self.check_group()?;
        self.check_layout_owner()
    }

    /// Refuse a system spool that breaks the layout's rule ([`Spool::layout_problem`]):
    /// the spool itself open to others, or one of its sub-directories ([`SUBDIRS`],
    /// those there) not root's, of another group than the spool's, or open to others:
    /// EX_CONFIG (78). Nothing is changed. `index/domains/` is not one of them: whoever
    /// rebuilds the index (a user's submission too) makes it anew, in `index/`, which
    /// is root's.
    pub fn check_layout_owner(&self) -> Result<(), Fatal> {
        self.check_layout_owner_seen().map(|_| ())
    }

    /// [`Spool::check_layout_owner`]; returns the sub-directories it opened and found
    /// right (none for a user's own spool, which it does not look into), which
    /// [`Spool::prepare`] then need not open again ([`Spool::subdir`] would open and
    /// judge each the same way).
    fn check_layout_owner_seen(&self) -> Result<Vec<&'static str>, Fatal> {
        let mut seen = Vec::new();
        if self.private {
            return Ok(seen);
        }
        let top = fs::metadata(&self.dir).ok();
        if let Some(problem) = top
            .as_ref()
            .and_then(|md| self.layout_problem(&self.dir, md))
        {
            return Err(self.refused(problem));
        }
        for sub in SUBDIRS.iter().filter(|s| !s.contains('/')) {
            let p = self.dir.join(sub);
            if let Ok(f) = open_dir(&p) {
                self.check_subdir_owner_in(&p, &f, top.as_ref())?;
                seen.push(*sub);
            }
        }
        Ok(seen)
    }

    /// Why the system spool's directory `p` (of `md`: the spool itself, or one of its
    /// sub-directories) breaks the layout's rule, in the line that refuses the spool, if
    /// it does; the one rule of every program that uses the spool and of
    /// `rsendmail-admin check`, which adds its fix:
    /// - nothing in it is for others (any of the mode's bits for others: a user who may
    ///   enter it reaches what is made there; 2771 too);
    /// - a sub-directory is root's (its owner could change its mode, or replace what is
    ///   in it) and of the spool's group, when the spool gives its group anything (what
    ///   is made there gets its group: another group's members could read and change
    ///   every message queued through it).
    ///
    /// None for a user's own spool (hers). Writable by everyone is
    /// [`Spool::world_writable`]'s.
    pub fn layout_problem(&self, p: &Path, md: &fs::Metadata) -> Option<String> {
        self.layout_problem_in(p, md, None)
    }

    /// [`Spool::layout_problem`], with the spool's own `fs::metadata` when it was just
    /// taken (`None`: looked at here when needed).
    fn layout_problem_in(
        &self,
        p: &Path,
        md: &fs::Metadata,
        spool: Option<&fs::Metadata>,
    ) -> Option<String> {
        if self.private {
            return None;
        }
        let top = p == self.dir;
        let what = if top {
            "the queue directory"
        } else {
            "the queue's sub-directory"
        };
        let until = format!(
            "so the queue is not used until it is put right (run `{}` as root)",
            safety::admin_command("init")
        );
        let mode = md.mode() & 0o7777;
        if !top && md.uid() != 0 {
            return Some(format!(
                "{what} {} is owned by {}, not root: that user could replace or remove \
                 what is queued through it, {until}",
                p.display(),
                safety::the_user_id(md.uid())
            ));
        }
        if !top
            && let Some(spool) = spool.cloned().or_else(|| fs::metadata(&self.dir).ok())
            && spool.mode() & 0o070 != 0
            && md.gid() != spool.gid()
        {
            return Some(format!(
                "{what} {} is of the group {}, not the spool's group {}: what is queued \
                 through it gets that group, whose members could read or change it, \
                 {until}",
                p.display(),
                safety::group_name(md.gid()),
                safety::group_name(spool.gid())
            ));
        }
        // Writable by everyone: [`Spool::world_writable`]'s (or, an empty shared
        // directory, taken over with the spool's modes: [`Spool::check_takeover`]).
        if mode & 0o007 != 0 && mode & 0o002 == 0 {
            return Some(format!(
                "{what} {} (mode {mode:o}) is open to others: any user could reach what \
                 is queued there, {until}",
                p.display()
            ));
        }
        None
    }

    /// The part of [`Spool::check_safe`] that looks for directories everyone may write.
    fn check_world_writable_as(&self, top: Option<fs::Metadata>) -> Result<(), Fatal> {
        match self.world_writable_as(top).first() {
            Some((dir, mode)) => Err(self.refused(self.world_writable_problem(dir, *mode))),
            None => Ok(()),
        }
    }

    /// Refuse a spool whose owner or a directory above it breaks the rule of
    /// [`safety`] ([`Spool::unsafe_dir`]): EX_CONFIG (78), naming the directory. Nothing
    /// is made, taken or changed.
    pub fn check_place(&self) -> Result<(), Fatal> {
        self.check_not_nested()?;
        if let Some(u) = self.unsafe_dir() {
            return Err(self.refused(self.unsafe_dir_problem(&u, None)));
        }
        self.check_acls()
    }

    /// The refusal (EX_CONFIG, 78) of this spool for `problem`, after where a
    /// configuration file named it (`FILE: line N: SPOOLDIR /path: `), as every
    /// configuration error names its file and line; a spool named otherwise (the
    /// command line, the built-in default) is refused in `problem`'s words alone.
    pub fn refused(&self, problem: String) -> Fatal {
        let text = match &self.named {
            Named::Config { .. } => format!("{}: {problem}", self.named_as()),
            _ => problem,
        };
        Fatal::new(Sysexit::Config, text)
    }

    /// Refuse a spool in another spool's tree, or named through one
    /// ([`Spool::inside_spool`]: another spool's `hold/`, `SPOOLDIR /var/spool/rsendmail/x/..`):
    /// EX_CONFIG (78), with the configuration's file and line. The one rule of every
    /// program that opens the spool (through [`Spool::check_place`] and
    /// [`Spool::check_readable`]; the deliverer at its start), of `rsendmail-admin
    /// init` and `check`. Nothing is made, read or changed: what is made in it would be
    /// the other's entries, and a repair of the one would break the other.
    pub fn check_not_nested(&self) -> Result<(), Fatal> {
        match self.inside_spool() {
            Some(other) => Err(Fatal::new(
                Sysexit::Config,
                self.inside_spool_problem(&other),
            )),
            None => Ok(()),
        }
    }

    /// Refuse a system spool whose directories' POSIX ACLs give a named user or group
    /// anything ([`Spool::acl_writable`]): EX_CONFIG (78), naming the first. Nothing is
    /// changed.
    pub fn check_acls(&self) -> Result<(), Fatal> {
        match self.acl_writable().first() {
            Some((dir, who)) => Err(self.refused(self.acl_writable_problem(dir, who))),
            None => Ok(()),
        }
    }

    /// Refuse a system spool a listing must not read (`mailq`, `-bp`, `rsendmail-admin
    /// list` and `show`), as every program that uses it refuses it (78, the same
    /// words): one of a group unfit for it ([`Spool::check_group`]), one whose
    /// directories' ACLs give others anything ([`Spool::check_acls`]), one that breaks
    /// the layout's rule ([`Spool::check_layout_owner`]). Others could have planted or
    /// changed what it would list. A spool everyone may write, or one another user
    /// could swap, is listed, its problem said after the listing
    /// ([`Spool::subdir_problems`]).
    pub fn check_readable(&self) -> Result<(), Fatal> {
        self.check_not_nested()?;
        self.check_group()?;
        self.check_acls()?;
        self.check_layout_owner()
    }

    /// Refuse a system spool whose group is not fit for it ([`Spool::unfit_group`]):
    /// EX_CONFIG (78). Nothing is made, taken or changed.
    pub fn check_group(&self) -> Result<(), Fatal> {
        match self.unfit_group() {
            Some(problem) => Err(self.refused(problem)),
            None => Ok(()),
        }
    }

    /// Why the system spool's group is not fit for it ([`safety::group_unfit`]: the
    /// rule `rsendmail-admin init` and `check` apply), in the line that refuses it, if
    /// so. None for a user's own spool, for one not there, and for one that gives its
    /// group nothing (mode 0700, such as the quick start's as root: no member of any
    /// group reaches what is below it).
    pub fn unfit_group(&self) -> Option<String> {
        self.unfit_group_recording(None)
    }

    /// [`Spool::unfit_group`]; `record`: given the key of a verdict to record when the
    /// full check found the group fit (`safety::record_group_fit`), which only
    /// [`Spool::prepare`] asks for and records once the spool passed every check (a
    /// listing or a refused spool is never written in).
    fn unfit_group_recording(&self, record: Option<&mut Option<String>>) -> Option<String> {
        if self.private {
            return None;
        }
        let md = fs::metadata(&self.dir).ok().filter(fs::Metadata::is_dir)?;
        if md.mode() & 0o070 == 0 {
            return None;
        }
        // The enumeration of every user costs a submission milliseconds (the NSS
        // modules loaded, systemd's user records walked): a verdict root recorded for
        // the same password database is taken instead, and root records one when it
        // finds the group fit (`safety::group_fit_recorded`).
        let key = (md.gid() != 0).then(|| safety::group_verdict_key(md.gid()));
        if key
            .as_deref()
            .is_some_and(|k| safety::group_fit_recorded(&self.dir, k))
        {
            return None;
        }
        let Some(why) = safety::group_unfit(md.gid()) else {
            if let Some(r) = record {
                *r = key;
            }
            return None;
        };
        Some(format!(
            "the queue directory {} is of the group {}, {why}: every member of the \
             spool's group can read, change or remove every message queued, so the queue \
             is not used until it has a group fit for it (`{}` says how)",
            self.dir.display(),
            safety::group_name(md.gid()),
            safety::admin_command("check")
        ))
    }

    /// The mode of the spool's files: 0600 in a private (per-user) spool, 0660 (the
    /// spool's group) in a shared one.
    pub fn file_mode(&self) -> u32 {
        if self.private { 0o600 } else { 0o660 }
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn qf_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("qf{id}"))
    }

    pub fn jf_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("jf{id}"))
    }

    /// Open (made when missing, with the spool's file mode) the delivery journal of
    /// entry `id` for appending: only a holder of the entry's lock does, for the
    /// supervisor of a local delivery (module docs).
    pub fn open_journal(&self, id: &str) -> io::Result<File> {
        open_safely(
            &self.jf_path(id),
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(self.file_mode()),
            Kind::File,
        )
    }

    /// The deliveries the journal of entry `id` (of `recipients` recipients) records
    /// ([`entry::parse_journal`]); none when there is no journal. A journal that is not
    /// a regular file of the spool's (a symlink, a FIFO...) or cannot be read records
    /// none, and is said in the log.
    pub fn journalled(&self, id: &str, recipients: usize) -> Vec<(usize, String)> {
        self.journal(id, recipients).1
    }

    /// [`Spool::journalled`], and whether the entry has a journal at all (a file that
    /// is there but not read counts: the next state written removes it), in one lookup.
    fn journal(&self, id: &str, recipients: usize) -> (bool, Vec<(usize, String)>) {
        match read_safely(&self.jf_path(id)) {
            Ok(bytes) => (true, entry::parse_journal(&bytes, recipients)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (false, Vec::new()),
            Err(e) => {
                log::warn!("{id}: delivery journal jf{id} not read: {}", io_text(&e));
                (true, Vec::new())
            }
        }
    }

    pub fn sf_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("sf{id}"))
    }

    /// The mark of a deletion asked for while a delivery held entry `id`
    /// ([`Spool::request_deletion`]).
    pub fn kf_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("kf{id}"))
    }

    /// Whether entry `id` carries a mark: an action (delete, hold, bounce) asked for
    /// while a delivery held it ([`Spool::request`]). Every holder of its lock then
    /// carries it out ([`Spool::carry_out_mark`]), and a delivery starts nothing more
    /// of it (docs/ARCHITECTURE.md, "Locking").
    pub fn marked(&self, id: &str) -> bool {
        fs::symlink_metadata(self.kf_path(id)).is_ok()
    }

    /// The mark of entry `id` ([`Spool::request`]), `None` when it has none. A mark
    /// that cannot be read or understood (written by no rsendmail: a mark is renamed
    /// into place whole) is taken as a hold, which sends and loses nothing, and logged
    /// once by this process while it stays there ([`unreadable_mark_logged`]), however
    /// often the process looks at it: for a holder of the entry's lock, which holds the
    /// entry for it. A look that takes no action on the mark is [`Spool::read_mark`].
    pub fn mark(&self, id: &str) -> Option<Mark> {
        let path = self.kf_path(id);
        let (mark, why) = self.read_mark_why(id);
        match why {
            Some(why) if !unreadable_mark_logged(&path) => {
                log::warn!("kf{id}: {why}: taken as a hold");
            }
            Some(_) => {}
            None => unreadable_mark_gone(&path),
        }
        mark
    }

    /// [`Spool::mark`] without the log line of a mark that cannot be read: for a look
    /// that changes nothing (`mailq`, `rsendmail-admin list` and `show`), or one whose
    /// caller says itself what it does with such a mark (`rsendmail-admin` removes it and
    /// acts on the entry, or replaces it by its own request, each logged once).
    pub fn read_mark(&self, id: &str) -> Option<Mark> {
        self.read_mark_why(id).0
    }

    /// The mark of entry `id`, and why it cannot be read when it cannot (it is then
    /// [`Mark::unreadable`]).
    fn read_mark_why(&self, id: &str) -> (Option<Mark>, Option<String>) {
        let bytes = match read_safely(&self.kf_path(id)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (None, None),
            Err(e) => {
                return (
                    Some(Mark::unreadable()),
                    Some(format!("cannot read it ({})", io_text(&e))),
                );
            }
        };
        match std::str::from_utf8(&bytes).ok().and_then(Mark::parse) {
            Some(m) => (Some(m), None),
            None => (
                Some(Mark::unreadable()),
                Some("not a mark rsendmail wrote".to_string()),
            ),
        }
    }

    /// Record that `request` is to be carried out on entry `id`, which a delivery holds
    /// locked, as soon as that delivery lets go of it (`rsendmail-admin delete`, `hold`,
    /// `bounce`): `kf<ID>` with the action, who asked (`by`) and when, written into
    /// `tmp/`, fsynced, renamed into place and the spool directory synced, so that a
    /// crash after the return leaves the entry with its whole mark (carried out by the
    /// next holder of its lock) or no entry, and a crash before it no mark or the one
    /// there before. A deletion already asked for stays, over every other action: the
    /// mark in effect is returned. Any other mark there (`before`) is replaced by the
    /// later request, and returned too.
    ///
    /// Made under the spool's marks lock (`marks`, [`Spool::lock_marks`]), which the
    /// caller holds while it reads the mark there before and decides on the request: no
    /// other request, withdrawal or holder carrying a mark out falls between.
    pub fn request(
        &self,
        _marks: &MarksLock,
        id: &str,
        by: &str,
        request: Request,
    ) -> io::Result<Requested> {
        let before = self.read_mark(id);
        if let Some(m) = &before
            && m.request == Request::Delete
        {
            return Ok(Requested {
                mark: m.clone(),
                replaced: None,
            });
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mark = Mark {
            request,
            by: by.to_string(),
            at,
        };
        let tmp = format!("kf{id}.{}", std::process::id());
        self.replace_whole(&tmp, mark.to_text().as_bytes(), &self.kf_path(id))?;
        sync_dir(&self.dir)?;
        Ok(Requested {
            mark,
            replaced: before,
        })
    }

    /// Take the spool's marks lock: an exclusive `flock` of the spool directory (of the
    /// spool a `hold/` belongs to), held while a mark is read and then written, withdrawn
    /// or carried out, so that none of these falls between another's read and write
    /// (two commands marking one entry at once, a command and the holder carrying the
    /// mark out). Let go of when dropped. Never held while waiting for an entry's lock.
    /// A directory that cannot be opened or locked is logged, and the caller goes on
    /// without the lock (as it did before there was one).
    pub fn lock_marks(&self) -> MarksLock {
        let dir = self.hold_of.as_deref().unwrap_or(&self.dir);
        let locked = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)
            .and_then(|f| f.lock().map(|()| f));
        match locked {
            Ok(f) => MarksLock(Some(f)),
            Err(e) => {
                log::warn!("{}: marks not locked: {}", dir.display(), io_text(&e));
                MarksLock(None)
            }
        }
    }

    /// Withdraw the mark of entry `id` ([`Spool::request`]) whose delivery has not yet
    /// carried it out, when `which` says it is the one to withdraw (a hold, never a
    /// deletion made meanwhile): removed under the marks lock ([`Spool::lock_marks`]),
    /// the spool directory synced. `false` when there was none to remove (carried out
    /// meanwhile, withdrawn by another) or `which` refused the one there.
    pub fn withdraw_mark(&self, id: &str, which: impl FnOnce(&Mark) -> bool) -> io::Result<bool> {
        let _marks = self.lock_marks();
        match self.read_mark(id) {
            Some(m) if which(&m) => {}
            _ => return Ok(false),
        }
        let kf = self.kf_path(id);
        // An empty directory planted where the mark belongs (taken as a hold, as any
        // mark that cannot be read) goes too; one with something in it stays, an error.
        let removed = match fs::remove_file(&kf) {
            Err(e) if fs::symlink_metadata(&kf).is_ok_and(|md| md.is_dir()) => {
                fs::remove_dir(&kf).map_err(|_| e)
            }
            r => r,
        };
        match removed {
            Ok(()) => sync_dir(&self.dir).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Say in entry `id`'s deletion mark that the holder of its lock removes it unsent
    /// (`sent 0 of 0`), before it does: the `delete` that made the mark reads it through
    /// the descriptor it keeps, and a mark with no count is one no holder carried out
    /// (the delivery ended first and removed the entry: the mail went).
    pub fn note_removed_unsent(&self, id: &str) {
        self.note_in_mark(id, "sent 0 of 0");
    }

    /// Add `line` to entry `id`'s mark, for the command that made it and keeps it open:
    /// [`OUTLIVED`] when the entry's delivery ended every recipient first.
    pub fn note_in_mark(&self, id: &str, line: &str) {
        if let Ok(mut f) = open_safely(
            &self.kf_path(id),
            OpenOptions::new().append(true),
            Kind::File,
        ) {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    /// Whether the mark read through `f` (kept open by the command that made it) says
    /// that the entry's delivery ended every recipient before the mark could take effect
    /// ([`LockedEntry::remove_unsynced`]): the mail went, and nothing was held or returned.
    pub fn mark_outlived(f: &mut File) -> bool {
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        text.lines().any(|l| l == OUTLIVED)
    }

    /// [`Spool::request`] of a deletion.
    pub fn request_deletion(&self, id: &str, by: &str) -> io::Result<()> {
        let marks = self.lock_marks();
        self.request(&marks, id, by, Request::Delete).map(|_| ())
    }

    /// Carry out the mark of entry `id`, whose delivery lock this process holds
    /// ([`Spool::request`]): a deletion removes it, a hold moves it into `hold/` (who
    /// asked recorded as its holder), a bounce records the return in its state (every
    /// open recipient returned by its next attempt, due now). Whether the entry is
    /// still queued (only after a bounce). Should a step fail, the mark stays (logged),
    /// and nothing of the entry is sent until a holder of its lock carries it out.
    pub fn carry_out_mark(&self, id: &str) -> bool {
        let marks = self.lock_marks();
        self.carry_out_mark_locked(&marks, id)
    }

    /// [`Spool::carry_out_mark`] under the marks lock the caller holds.
    pub fn carry_out_mark_locked(&self, _marks: &MarksLock, id: &str) -> bool {
        let Some(mark) = self.mark(id) else {
            return true;
        };
        match mark.request {
            Request::Delete => {
                self.delete_as_requested(id);
                false
            }
            Request::Hold => {
                if let Err(e) = self.hold_as_requested(id, &mark) {
                    log::error!("{id}: hold asked for, but not held: {}", io_text(&e));
                }
                false
            }
            Request::Bounce { .. } => match self.bounce_as_requested(id, &mark) {
                Ok(()) => true,
                Err(e) => {
                    log::error!("{id}: return asked for, but not recorded: {}", io_text(&e));
                    false
                }
            },
        }
    }

    /// The state file of entry `id` as recorded (an entry never tried: the default).
    fn recorded_state(&self, id: &str) -> io::Result<State> {
        match read_safely(&self.sf_path(id)) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| "not text".to_string())
                .and_then(|t| State::parse(&t))
                .map_err(|why| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("sf{id}: {why}"))
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    /// Write `state` as entry `id`'s state file (its lock held): into `tmp/`, fsynced,
    /// renamed into place.
    fn write_state_file(&self, id: &str, state: &State) -> io::Result<()> {
        let tmp = format!("sf{id}.{}.mark", std::process::id());
        self.replace_whole(&tmp, state.to_text().as_bytes(), &self.sf_path(id))
    }

    /// Put `text` at `dest` whole or not at all: written into `tmp/NAME` (a file of
    /// this process's, made anew), fsynced, renamed over `dest`; the file in `tmp/` is
    /// removed when any step fails. The caller syncs `dest`'s directory when it must.
    fn replace_whole(&self, name: &str, text: &[u8], dest: &Path) -> io::Result<()> {
        let tmp = self.tmp_dir().join(name);
        let _ = fs::remove_file(&tmp);
        let written = (|| {
            let mut f = open_safely(
                &tmp,
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(self.file_mode()),
                Kind::File,
            )?;
            f.write_all(text)?;
            f.sync_data()?;
            fs::rename(&tmp, dest)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Hold entry `id` as its mark asked ([`Spool::carry_out_mark`]): who asked
    /// recorded as its holder in its state, then `qf`, `sf` and `jf` moved into
    /// `hold/`, both directories synced, and the mark removed last (a crash between
    /// leaves a held entry and a mark without an entry, removed by a run's listing).
    fn hold_as_requested(&self, id: &str, mark: &Mark) -> io::Result<()> {
        let held = self.held();
        fs::symlink_metadata(&held.dir)?;
        let mut state = self.recorded_state(id)?;
        state.held_by = mark.holder();
        self.write_state_file(id, &state)?;
        self.move_entry(&held, id, false)?;
        if let Err(e) = fs::remove_file(self.kf_path(id))
            && e.kind() == io::ErrorKind::NotFound
        {
            // Withdrawn (`rsendmail-admin release`) after this holder read it: that
            // release said the entry stays queued, so it goes back.
            return self.unhold_withdrawn(id, &held, state);
        }
        sync_dir(&self.dir)?;
        log::info!(
            "{id}: held as asked for by {} while it was being delivered",
            mark.by
        );
        Ok(())
    }

    /// Put entry `id` back from `held` ([`Spool::hold_as_requested`]) when its hold
    /// was withdrawn while it was carried out: `sf`, `jf` and `qf` moved back as a
    /// release moves them, the index told ([`index::moved_in`]), then the record of
    /// its holder taken out of `state`.
    fn unhold_withdrawn(&self, id: &str, held: &Spool, mut state: State) -> io::Result<()> {
        index::moved_in(self, id, || held.move_entry(self, id, true))?;
        state.held_by = None;
        self.write_state_file(id, &state)?;
        sync_dir(&self.dir)?;
        log::info!("{id}: its hold was withdrawn as it was carried out: it stays queued");
        Ok(())
    }

    /// Rename `qf` then `sf` (and `jf`) of entry `id` from this spool to `to` (or `sf`
    /// and `jf` first with `sf_first`), syncing both directories. An `sf` or `jf`
    /// missing here is not an error.
    pub fn move_entry(&self, to: &Spool, id: &str, sf_first: bool) -> io::Result<()> {
        let sf = || {
            for (a, b) in [
                (self.sf_path(id), to.sf_path(id)),
                (self.jf_path(id), to.jf_path(id)),
            ] {
                match fs::rename(a, b) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        };
        if sf_first {
            sf()?;
        }
        fs::rename(self.qf_path(id), to.qf_path(id))?;
        if !sf_first {
            sf()?;
        }
        sync_dir(&to.dir)?;
        sync_dir(&self.dir)
    }

    /// Record the return entry `id`'s mark asked for ([`Spool::carry_out_mark`]): the
    /// reason in its state, due now, then the mark removed.
    fn bounce_as_requested(&self, id: &str, mark: &Mark) -> io::Result<()> {
        let Request::Bounce { reason, bounce_by } = &mark.request else {
            return Ok(());
        };
        let mut state = self.recorded_state(id)?;
        state.bounce = Some(reason.clone());
        state.bounce_by = bounce_by.clone();
        state.held_by = None;
        state.next_attempt = None;
        state.local_next_attempt = None;
        state.retry = true;
        self.write_state_file(id, &state)?;
        sync_dir(&self.dir)?;
        let _ = fs::remove_file(self.kf_path(id));
        sync_dir(&self.dir)?;
        log::info!(
            "{id}: to be returned as asked for by {} while it was being delivered",
            mark.by
        );
        Ok(())
    }

    /// What the mark of a deletion ([`Spool::request_deletion`]) read through `f` says:
    /// who asked and when, and what the delivery that honoured it had sent
    /// ([`LockedEntry::note_sent_before_deletion`]). A file still open after its unlink
    /// reads as it was then.
    pub fn read_deletion_request(f: &mut File) -> DeletionRequest {
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        DeletionRequest::parse(&text)
    }

    /// Remove entry `id`, whose delivery lock this process holds, because its deletion
    /// was asked for ([`Spool::request_deletion`]): `qf` first, then `sf`, `jf` and the
    /// mark last (a crash between leaves the entry with its mark, or a mark without an
    /// entry, which a run that lists the spool removes), then the directory synced.
    fn delete_as_requested(&self, id: &str) {
        self.note_removed_unsent(id);
        match fs::remove_file(self.qf_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                log::error!(
                    "{id}: deletion asked for, but qf{id} not removed: {}",
                    io_text(&e)
                );
                return;
            }
        }
        for p in [self.sf_path(id), self.jf_path(id), self.kf_path(id)] {
            let _ = fs::remove_file(p);
        }
        if let Err(e) = sync_dir(&self.dir) {
            log::error!("{id}: cannot sync {}: {}", self.dir.display(), io_text(&e));
        }
        log::info!("{id}: deleted as asked for while it was being delivered; nothing more sent");
    }

    /// The held entries (`rsendmail-admin hold`): `SPOOLDIR/hold/`, laid out as the
    /// spool itself (`qf<ID>`, `sf<ID>`). No run lists it, and every delivery opens an
    /// entry by its path in the spool, so no selection (`-q`, `-qR/-qS/-qI`, the
    /// periodic runner, ETRN, the wake-up endpoint, `waiting/`) can take a held entry.
    pub fn held(&self) -> Spool {
        Spool {
            dir: self.dir.join(HOLD),
            private: self.private,
            fast_flush: self.fast_flush.clone(),
            named: self.named.clone(),
            hold_of: Some(self.dir.clone()),
        }
    }

    /// The spool's `corrupt/` as a spool: where a queue run sets aside an entry it
    /// cannot read ([`Spool::move_corrupt`]), never delivered from.
    pub fn set_aside(&self) -> Spool {
        Spool {
            dir: self.dir.join("corrupt"),
            hold_of: None,
            ..self.held()
        }
    }

    /// The IDs of the entries set aside in `corrupt/` ([`Spool::set_aside`]), sorted;
    /// none when it cannot be read.
    pub fn set_aside_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.dir.join("corrupt"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let id = name.to_str()?.strip_prefix("qf")?;
                valid_id(id).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        ids
    }

    /// Whether the delivery report `key` of entry `origin` (`Envelope::report_of`) is
    /// queued, or held: an entry of its derived ID ([`report_queue_id`]) holds that key.
    pub fn report_queued(&self, origin: &str, key: &str) -> bool {
        let Some(id) = report_queue_id(origin, key) else {
            return false;
        };
        self.read_entry(&id)
            .or_else(|_| self.held().read_entry(&id))
            .is_ok_and(|e| e.envelope.report_of.as_deref() == Some(key))
    }

    /// Make sure the spool and its sub-directories exist. The spool itself is made only
    /// when it is the caller's own built-in default (else a missing one is refused, see
    /// [`Spool::check_present`]); its sub-directories (`tmp`, `index`, `corrupt`: one an
    /// older version did not make, or one removed by hand) are made when missing.
    pub fn prepare(&self) -> Result<(), Fatal> {
        self.prepare_dirs().map(|_| ())
    }

    /// [`Spool::prepare`], then [`Spool::begin`] without opening `tmp/` again: the
    /// preparation has just checked it. What a submission does, once.
    pub fn prepare_and_begin(&self, now: i64) -> Result<NewEntry, Fatal> {
        let tmp = self.prepare_dirs()?;
        self.begin_in(tmp, now)
    }

    /// [`Spool::prepare`]; returns `tmp/`, checked.
    fn prepare_dirs(&self) -> Result<PathBuf, Fatal> {
        // The spool is looked at once, for whether it is there, whether it must be made
        // and its mode, and again only after it was changed here (taken over or made).
        let mut top = fs::metadata(&self.dir);
        self.check_present_as(&top)?;
        // Its owner and the directories above it first: nothing is made, taken
        // over or changed in a place someone else could swap or read.
        self.check_place()?;
        let dir_mode = if self.private { 0o700 } else { 0o2770 };
        let mut made = false;
        // A directory without tmp/ is being taken over as a spool: by
        // `check_takeover`'s rule, `rsendmail-admin init`'s too (never a shared one).
        if self.named != Named::OwnDefault && !self.dir.join("tmp").is_dir() {
            self.check_takeover()?;
        }
        // Its group once what is not a spool was refused for that: nothing is taken
        // over, made or changed in a spool of a group unfit for it. Root records a fit
        // group's verdict at the end, once the spool passed every check.
        let mut verdict = None;
        if let Some(problem) = self.unfit_group_recording(Some(&mut verdict)) {
            return Err(self.refused(problem));
        }
        if !top.as_ref().is_ok_and(fs::Metadata::is_dir) {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            std::os::unix::fs::DirBuilderExt::mode(&mut b, dir_mode);
            b.create(&self.dir)
                .map_err(|e| cant("cannot create queue directory", &self.dir, &e))?;
            made = true;
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(dir_mode));
            top = fs::metadata(&self.dir);
        }
        // A spool everyone may write is refused before anything is made or taken; one
        // made here is looked at again where it now is.
        let mut seen = Vec::new();
        if made {
            self.check_safe_as(top.ok())?;
        } else {
            self.check_world_writable_as(top.ok())?;
            // The layout, once a shared directory taken over has the spool's modes.
            seen = self.check_layout_owner_seen()?;
        }
        // A sub-directory the layout's check has just opened and found right is not
        // opened again; any other is made or judged here.
        let subdir = |name: &'static str| {
            if seen.contains(&name) {
                Ok(self.dir.join(name))
            } else {
                self.subdir(name)
            }
        };
        let tmp = subdir("tmp")?;
        let index = subdir("index")?;
        index::mark_if_new(self, &index);
        // Only moving entries aside needs corrupt/: a bad one is told, and refused there.
        if let Err(e) = subdir("corrupt") {
            log::error!("{}", e.message);
        }
        if let Some(k) = verdict {
            safety::record_group_fit(&self.dir, &k);
        }
        Ok(tmp)
    }

    /// The sub-directory `name` of the spool (`tmp`, `index`, `corrupt`, `slots`, `waiting`), made
    /// when missing. It must be a directory, never a symlink to one (the spool itself may
    /// be a symlink the admin configured, as sendmail's and Postfix's queue directories
    /// may): anything else in its place is moved into `corrupt/` (when that is a
    /// directory) and a fresh one made, or refused.
    ///
    /// In the system spool, the layout is root's: a sub-directory another user owns is
    /// refused (EX_CONFIG, 78: `rsendmail-admin init` repairs it), and one that is
    /// missing is made only by root (`rsendmail-admin init`, a root queue run); a user's
    /// submission refuses it (78) rather than make it her own.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, Fatal> {
        self.subdir_in(name, true)
    }

    /// [`Spool::subdir`] for `rsendmail-admin init`, which gives what it finds root and
    /// the spool's group afterwards: a sub-directory of another owner is taken.
    pub fn subdir_to_repair(&self, name: &str) -> Result<PathBuf, Fatal> {
        self.subdir_in(name, false)
    }

    /// [`Spool::subdir`]; `owned`: refuse a system spool's sub-directory not root's.
    fn subdir_in(&self, name: &str, owned: bool) -> Result<PathBuf, Fatal> {
        let p = self.dir.join(name);
        match open_dir(&p) {
            Ok(f) => {
                if owned {
                    self.check_subdir_owner(&p, &f)?;
                }
                return Ok(p);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.private && !nix::unistd::geteuid().is_root() {
                    return Err(Fatal::new(
                        Sysexit::Config,
                        format!(
                            "the queue's sub-directory {} is missing: only root makes the \
                             spool's layout, so the queue is not used until it is made (run \
                             `{}` as root)",
                            p.display(),
                            safety::admin_command("init")
                        ),
                    ));
                }
            }
            Err(e) if is_unsafe(&e) && name != "corrupt" => {
                let aside = self.dir.join("corrupt").join(format!(
                    "{name}.{}.{}",
                    crate::clock::now(),
                    std::process::id()
                ));
                let moved =
                    open_dir(&self.dir.join("corrupt")).and_then(|_| fs::rename(&p, &aside));
                match moved {
                    Ok(()) => log::error!("{e}: moved to {}", aside.display()),
                    Err(m) => {
                        return Err(Fatal::new(
                            Sysexit::TempFail,
                            format!("{e} (not moved aside: {})", io_text(&m)),
                        ));
                    }
                }
            }
            Err(e) if is_unsafe(&e) => return Err(Fatal::new(Sysexit::TempFail, e.to_string())),
            Err(e) => return Err(cant("cannot open", &p, &e)),
        }
        let dir_mode = if self.private { 0o700 } else { 0o2770 };
        match fs::create_dir(&p) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(dir_mode));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(cant("cannot create", &p, &e)),
        }
        // Made by us or by a process racing us: checked like any other.
        let f = open_dir(&p).map_err(|e| Fatal::new(Sysexit::TempFail, e.to_string()))?;
        if owned {
            self.check_subdir_owner(&p, &f)?;
        }
        Ok(p)
    }

    /// Refuse the system spool's sub-directory `p` (open as `f`) when it breaks the
    /// layout's rule ([`Spool::layout_problem`]): not root's, not of the spool's group,
    /// or open to others.
    fn check_subdir_owner(&self, p: &Path, f: &File) -> Result<(), Fatal> {
        self.check_subdir_owner_in(p, f, None)
    }

    /// [`Spool::check_subdir_owner`] with the spool's `fs::metadata` when it was just
    /// taken.
    fn check_subdir_owner_in(
        &self,
        p: &Path,
        f: &File,
        spool: Option<&fs::Metadata>,
    ) -> Result<(), Fatal> {
        if self.private {
            return Ok(());
        }
        let md = f.metadata().map_err(|e| cant("cannot read", p, &e))?;
        match self.layout_problem_in(p, &md, spool) {
            Some(problem) => Err(self.refused(problem)),
            None => Ok(()),
        }
    }

    /// What is wrong with the spool's directories, without changing anything (for
    /// `mailq`'s problem lines): a sub-directory that is not one, a directory
    /// everyone may write ([`Spool::world_writable`], which every run refuses), and a
    /// spool another user owns or could swap ([`Spool::unsafe_dir`]).
    pub fn subdir_problems(&self) -> Vec<String> {
        let mut out: Vec<String> = ["tmp", "index", "corrupt", "slots", "waiting", HOLD]
            .iter()
            .filter_map(|sub| match open_dir(&self.dir.join(sub)) {
                Err(e) if is_unsafe(&e) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        for (dir, mode) in self.world_writable() {
            out.push(self.world_writable_problem(&dir, mode));
        }
        if let Some(u) = self.unsafe_dir() {
            out.push(self.unsafe_dir_problem(&u, None));
        }
        for (dir, who) in self.acl_writable() {
            out.push(self.acl_writable_problem(&dir, &who));
        }
        out.extend(self.unfit_group());
        // The layout's rule ([`Spool::layout_problem`]), as every run applies it.
        out.extend(
            std::iter::once(self.dir.clone())
                .chain(
                    SUBDIRS
                        .iter()
                        .filter(|s| !s.contains('/'))
                        .map(|s| self.dir.join(s)),
                )
                .filter_map(|p| {
                    let md = fs::symlink_metadata(&p).ok().filter(fs::Metadata::is_dir)?;
                    self.layout_problem(&p, &md)
                }),
        );
        out
    }

    /// Reserve an ID and open its temporary file.
    pub fn begin(&self, now: i64) -> Result<NewEntry, Fatal> {
        let tmp = self.tmp_dir();
        open_dir(&tmp).map_err(|e| cant("cannot use", &tmp, &e))?;
        self.begin_in(tmp, now)
    }

    /// [`Spool::begin`] in `tmp`, the spool's `tmp/` checked (a directory, not a link).
    fn begin_in(&self, tmp: PathBuf, now: i64) -> Result<NewEntry, Fatal> {
        for _ in 0..3600 {
            let id = new_queue_id(now);
            let path = tmp.join(format!("tf{id}"));
            match self.create_held_tmp(&path, &id) {
                Ok(None) => continue,
                Ok(Some(file)) => {
                    return Ok(NewEntry {
                        spool: self.clone(),
                        id,
                        tmp_path: path,
                        out: QueueWriter::new(file),
                        committed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                // Removed by a queue run between its creation and the check of what
                // was opened (no link left: not held yet): another ID.
                Err(e) if is_unsafe(&e) && fs::symlink_metadata(&path).is_err() => continue,
                Err(e) => return Err(cant("cannot create queue file", &path, &e)),
            }
        }
        Err(Fatal::new(
            Sysexit::TempFail,
            "cannot find a free queue id; try again later",
        ))
    }

    /// Create `path`, the temporary file of entry `id`, new, and hold it: `None` when
    /// it is no longer there to be held, or entry `id` is committed (the file then
    /// removed); errors as [`open_safely`]'s (`AlreadyExists` when it is there).
    ///
    /// Held until the rename: a queue run removes a temporary file only when nobody
    /// holds it (`clean_leftovers`), so a submission keeps its file however long it
    /// takes (a slow client, a stopped process), and one killed leaves nothing a run
    /// keeps. A run that took the file between its creation and this lock holds it
    /// while it removes it: waited for, and then the file is gone (no link left). Where
    /// locks are not to be had, age alone decides (GRACE).
    fn create_held_tmp(&self, path: &Path, id: &str) -> io::Result<Option<File>> {
        let file = open_safely(
            path,
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.file_mode()),
            Kind::File,
        )?;
        match file.lock() {
            Ok(()) if file.metadata().is_ok_and(|md| md.nlink() == 0) => return Ok(None),
            Ok(()) => {}
            Err(e) => log::debug!("{}: not locked: {e}", path.display()),
        }
        if self.qf_path(id).exists() {
            let _ = fs::remove_file(path);
            return Ok(None);
        }
        Ok(Some(file))
    }

    /// [`Spool::begin`] with the ID given (a [`report_queue_id`]): `None` when its
    /// temporary file is held by a live process or its entry is committed. A temporary
    /// file of that name left by a process that died is removed first.
    pub fn begin_as(&self, id: &str, now: i64) -> Result<Option<NewEntry>, Fatal> {
        let tmp = self.tmp_dir();
        open_dir(&tmp).map_err(|e| cant("cannot use", &tmp, &e))?;
        let path = tmp.join(format!("tf{id}"));
        for _ in 0..2 {
            if self.qf_path(id).exists() {
                return Ok(None);
            }
            match self.create_held_tmp(&path, id) {
                // Gone again (a run took it), or its entry committed meanwhile: the
                // loop's first check says which.
                Ok(None) => continue,
                Ok(Some(file)) => {
                    return Ok(Some(NewEntry {
                        spool: self.clone(),
                        id: id.to_string(),
                        tmp_path: path,
                        out: QueueWriter::new(file),
                        committed: false,
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Left by a run that died (unheld, whatever its age), or being
                    // written by a live one (kept).
                    let Ok(md) = fs::symlink_metadata(&path) else {
                        continue;
                    };
                    if !self.remove_unheld_tmp(&path, &md, now, i64::MAX) {
                        return Ok(None);
                    }
                }
                Err(e) if is_unsafe(&e) && fs::symlink_metadata(&path).is_err() => continue,
                Err(e) => return Err(cant("cannot create queue file", &path, &e)),
            }
        }
        Ok(None)
    }

    /// The IDs of committed entries, unsorted, as [`IdKey`]s: 14 octets each, where a
    /// `String` costs about 56 (a queue run's sweep of 100,000 entries holds them all).
    pub fn id_keys(&self) -> Result<Vec<IdKey>, Fatal> {
        let rd = fs::read_dir(&self.dir).map_err(|e| cant("cannot read", &self.dir, &e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| cant("cannot read", &self.dir, &e))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(key) = name.strip_prefix("qf").and_then(id_key) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// The IDs of committed entries, unsorted ([`Spool::id_keys`] as strings).
    pub fn ids(&self) -> Result<Vec<String>, Fatal> {
        Ok(self
            .id_keys()?
            .iter()
            .map(|k| key_str(k).to_string())
            .collect())
    }

    /// Open an entry safely: no symlinks, a regular file with one link ([`open_safely`]).
    pub fn open_entry(&self, id: &str) -> io::Result<File> {
        open_safely(&self.qf_path(id), OpenOptions::new().read(true), Kind::File)
    }

    /// Read an entry's envelope and state (no lock needed: qf is immutable, sf is replaced
    /// atomically). Returns the envelope, state, total file size.
    pub fn read_entry(&self, id: &str) -> Result<QueuedEntry, ReadError> {
        let f = self.open_entry(id).map_err(ReadError::Io)?;
        self.read_open_entry(id, f, true)
    }

    /// [`Spool::read_entry`] for a listing that knows from the same listing of the
    /// directory whether the entry has a state file (`sf<ID>`): without one, none is
    /// looked for, and the entry's state is the state of an entry never tried. (A state
    /// file written since the listing is not seen, as if the listing had been made a
    /// moment sooner.)
    pub fn read_listed_entry(&self, id: &str, has_state: bool) -> Result<QueuedEntry, ReadError> {
        let f = self.open_entry(id).map_err(ReadError::Io)?;
        self.read_open_entry(id, f, has_state)
    }

    /// Read the entry still being written as `tmp/tf<ID>` (for an index rebuild): `Ok`
    /// once it is sealed (its length and sum recorded, which comes before its index
    /// append); `Corrupt` while it is being written; `Io` (`NotFound`: renamed or gone).
    pub fn read_tmp_entry(&self, id: &str) -> Result<QueuedEntry, ReadError> {
        let path = self.tmp_dir().join(format!("tf{id}"));
        let f =
            open_safely(&path, OpenOptions::new().read(true), Kind::File).map_err(ReadError::Io)?;
        self.read_open_entry(id, f, true)
    }

    /// The IDs of the temporary files (`tmp/tf<ID>`): entries being written.
    pub fn tmp_ids(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(self.tmp_dir())? {
            let name = ent?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_prefix("tf"))
                && valid_id(id)
            {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }

    /// The entry open as `f`; its state file is read when `with_state` (else the entry
    /// has none: [`Spool::read_listed_entry`]).
    fn read_open_entry(
        &self,
        id: &str,
        f: File,
        with_state: bool,
    ) -> Result<QueuedEntry, ReadError> {
        self.read_open_entry_seen(id, f, with_state, None)
    }

    /// [`Spool::read_open_entry`], with what the open file was when last looked at
    /// (`seen`: no second look), or `None` to look.
    fn read_open_entry_seen(
        &self,
        id: &str,
        f: File,
        with_state: bool,
        seen: Option<fs::Metadata>,
    ) -> Result<QueuedEntry, ReadError> {
        let meta = match seen {
            Some(m) => m,
            None => f.metadata().map_err(ReadError::Io)?,
        };
        let file_size = meta.len();
        let written = meta.modified().ok();
        let mut r = BufReader::with_capacity(8192, f);
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = r
                .by_ref()
                .take(64 * 1024)
                .read_line(&mut line)
                .map_err(|e| ReadError::Corrupt(format!("unreadable envelope: {e}")))?;
            if n == 0 {
                return Err(ReadError::Corrupt("envelope section never ends".into()));
            }
            let end = line == "\n";
            text.push_str(&line);
            if end {
                break;
            }
            if text.len() > 16 * 1024 * 1024 {
                return Err(ReadError::Corrupt("envelope section too large".into()));
            }
        }
        let envelope = Envelope::parse(&text).map_err(ReadError::Corrupt)?;
        let message_sum = match entry::message_sum(&text) {
            Some(sum) => Some(sum.map_err(ReadError::Corrupt)?),
            None => None,
        };
        if envelope.id != id {
            return Err(ReadError::Corrupt(format!(
                "queue file qf{id} holds id {}",
                envelope.id
            )));
        }
        if let Some(why) = planted_entry(meta.uid(), envelope.uid) {
            return Err(ReadError::Corrupt(why));
        }
        let (state, state_file_found, journal) = if with_state {
            self.read_state(id, envelope.recipients.len())?
        } else {
            (State::default(), false, false)
        };
        let data_offset = text.len() as u64;
        let file = r.into_inner();
        let size = match envelope.message_bytes {
            // Version 1: the message runs to the end of the file.
            None => file_size,
            Some(n) => check_length(file_size, data_offset, n)?,
        };
        Ok(QueuedEntry {
            envelope,
            state,
            size,
            data_offset,
            message_sum,
            file,
            written,
            state_file: state_file_found,
            journal,
        })
    }

    /// The state of entry `id` (of `recipients` recipients) as its state file and its
    /// delivery journal give it: the state (that of an entry never tried when there is
    /// no state file), whether a state file was found, and whether a journal was. A
    /// state file that is not one rsendmail wrote makes the entry `Corrupt`.
    fn read_state(&self, id: &str, recipients: usize) -> Result<(State, bool, bool), ReadError> {
        let state_file = read_safely(&self.sf_path(id));
        let state_file_found = state_file.is_ok();
        let mut state = match state_file.map(String::from_utf8) {
            Ok(Ok(t)) => State::parse(&t).map_err(ReadError::Corrupt)?,
            // Octets that are not text: not a state file rsendmail wrote.
            Ok(Err(_)) => {
                return Err(ReadError::Corrupt(format!("state file sf{id} is not text")));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            // A symlink, a FIFO, a hard link, a file far too large...: not a state file
            // rsendmail wrote either.
            Err(e)
                if (is_unsafe(&e) && !is_linked(&e)) || e.kind() == io::ErrorKind::InvalidData =>
            {
                return Err(ReadError::Corrupt(format!("state file sf{id}: {e}")));
            }
            Err(e) => return Err(ReadError::Io(e)),
        };
        // Local deliveries journalled since the state was written (module docs): a
        // recipient so recorded is delivered, whoever reads the entry.
        let (journal, done) = self.journal(id, recipients);
        state.apply_journal(&done);
        Ok((state, state_file_found, journal))
    }

    /// Try to take the delivery lock of an entry, and read it under that lock, its
    /// message's sum checked before anything is sent (a damaged one: `Corrupt`, and the
    /// lock let go). `Ok(None)`: someone else holds it, or the entry was finished
    /// meanwhile — skip it.
    pub fn lock_entry(&self, id: &str) -> Result<Option<LockedEntry>, ReadError> {
        let Some((f, held)) = self.open_locked(id)? else {
            return Ok(None);
        };
        // An action asked for while another delivery held it: carried out first
        // (deleted or held: nothing sent; a return: recorded, the entry read with it).
        if self.marked(id) && !self.carry_out_mark(id) {
            return Ok(None);
        }
        let entry = self.read_open_entry_seen(id, f, true, Some(held))?;
        self.hold_read(entry).map(Some)
    }

    /// An entry read under its lock, held: its message's sum checked, and deliveries
    /// its journal recorded written into its state.
    fn hold_read(&self, entry: QueuedEntry) -> Result<LockedEntry, ReadError> {
        let lock = entry.file.try_clone().map_err(ReadError::Io)?;
        check_sum(&entry)?;
        let mut locked = LockedEntry {
            spool: self.clone(),
            entry,
            _lock: lock,
            pending_state: None,
            reserved: None,
            removed: false,
            unmarked_at_end: false,
        };
        // Deliveries journalled by the supervisor of a delivery whose deliverer died
        // (module docs): recorded in the state (read with them merged), and the journal
        // removed. When that record cannot be written the journal stays, and this
        // holder delivers with them merged all the same.
        if locked.entry.journal {
            let id = locked.entry.envelope.id.clone();
            let id = id.as_str();
            let done = self.journalled(id, locked.entry.envelope.recipients.len());
            for (i, reply) in &done {
                log::info!("{id}: recipient {i} delivered ({reply}), from the delivery journal");
            }
            let state = locked.entry.state.clone();
            if let Err(f) = locked.record_state(state) {
                log::warn!("{id}: delivery journal not recorded: {}", f.message);
            }
        }
        Ok(locked)
    }

    /// An entry as a queue run's selection reads it (`queue::Batches`): locked while it
    /// is read, as [`Spool::lock_entry`] locks it (`Ok(None)`: a deliverer holds it, or
    /// it was finished meanwhile), and let go when this returns, so that an entry
    /// waiting its turn is never held: its attempt locks it again and reads only what
    /// may have changed since ([`Spool::lock_peeked`]). `has_state`: whether the entry
    /// may have a state file or a journal (the run's listing of the spool names one);
    /// without, neither is looked for, and the state is that of an entry never tried
    /// (one written since the listing is found by the attempt's second look). The
    /// message's sum is not checked here: [`Spool::lock_peeked`] checks it before
    /// anything is sent, and the run moves a damaged entry aside then.
    pub fn peek_entry(&self, id: &str, has_state: bool) -> Result<Option<Peeked>, ReadError> {
        let Some((f, held)) = self.open_locked(id)? else {
            return Ok(None);
        };
        // An action asked for while another delivery held it: carried out first
        // (deleted or held: nothing sent; a return: recorded, the entry read with it).
        // Looked for only when the listing named a file of that kind beside it.
        if has_state && self.marked(id) && !self.carry_out_mark(id) {
            return Ok(None);
        }
        let file = (held.dev(), held.ino(), held.len());
        let e = self.read_open_entry_seen(id, f, has_state, Some(held))?;
        Ok(Some(Peeked {
            envelope: e.envelope,
            state: e.state,
            size: e.size,
            data_offset: e.data_offset,
            message_sum: e.message_sum,
            written: e.written,
            state_file: e.state_file,
            journal: e.journal,
            file,
            may_be_marked: has_state,
        }))
    }

    /// [`Spool::lock_entry`] for an entry a queue run's selection read
    /// ([`Spool::peek_entry`]) and let go: locked again, and what may have changed
    /// since looked at again, not the rest. The queue file is immutable (a delivery
    /// that changes the recipients replaces it, `LockedEntry::rewrite`), so when the
    /// path names the file the selection read (same device, inode and size) its
    /// envelope is the one read then; anything else (replaced, or finished and gone)
    /// is read in full as [`Spool::lock_entry`] reads it. The state file and the
    /// journal, which any holder of the lock may have changed meanwhile (another run's
    /// attempt, `rsendmail-admin`'s hold and release, retry, bounce), are read again
    /// whatever they were. The message's sum is checked as [`Spool::lock_entry`]
    /// checks it. The second value: whether the state found is not the one the
    /// selection read (the caller judges the entry again).
    pub fn lock_peeked(&self, seen: Peeked) -> Result<Option<(LockedEntry, bool)>, ReadError> {
        let id = seen.envelope.id.clone();
        let Some((f, held)) = self.open_locked(&id)? else {
            return Ok(None);
        };
        // An action asked for while another delivery held it: carried out first; a
        // return recorded in its state, read again below. Looked for only when the
        // run's listing named a file that may be a mark: one made since is found by
        // the attempt before its first transaction or local delivery
        // (`attempt::make_room`), and at its end, before anything is recorded.
        if seen.may_be_marked && self.marked(&id) && !self.carry_out_mark(&id) {
            return Ok(None);
        }
        if (held.dev(), held.ino(), held.len()) != seen.file {
            let entry = self.read_open_entry_seen(&id, f, true, Some(held))?;
            let changed = entry.state != seen.state || entry.envelope != seen.envelope;
            return self.hold_read(entry).map(|l| Some((l, changed)));
        }
        let (state, state_file, journal) = self.read_state(&id, seen.envelope.recipients.len())?;
        let changed = state != seen.state;
        let entry = QueuedEntry {
            envelope: seen.envelope,
            state,
            size: seen.size,
            data_offset: seen.data_offset,
            message_sum: seen.message_sum,
            file: f,
            written: seen.written,
            state_file,
            journal,
        };
        self.hold_read(entry).map(|l| Some((l, changed)))
    }

    /// Open entry `id` and take its delivery lock: the file and what it was when locked,
    /// or `None` when another process holds the lock or the entry was finished meanwhile
    /// ([`Spool::lock_live`] without waiting).
    fn open_locked(&self, id: &str) -> Result<Option<(File, fs::Metadata)>, ReadError> {
        match self.lock_live(id, std::time::Duration::ZERO) {
            Ok(LiveLock::Held(f, held)) => Ok(Some((f, held))),
            Ok(LiveLock::Busy | LiveLock::Gone) => Ok(None),
            // A FIFO, a directory, a symlink...: not an entry rsendmail wrote; moved
            // aside like one that does not parse (the rename moves the link itself). A
            // queue file with another link (a backup tool's hard link) may be a good
            // entry: refused while the link lasts, never moved aside.
            Err(LockError::Open(e)) if is_unsafe(&e) && !is_linked(&e) => {
                Err(ReadError::Corrupt(e.to_string()))
            }
            Err(LockError::Open(e) | LockError::Lock(e) | LockError::Look(e)) => {
                Err(ReadError::Io(e))
            }
        }
    }

    /// Open the live entry `id` and take its delivery lock, the one way every process
    /// that acts on an entry (a queue run, a delivery, `rsendmail-admin`) takes it.
    /// While another process holds the lock, tried again every 100 ms for up to `wait`
    /// (`Duration::ZERO`: once). Once locked, the path must still name the file locked:
    /// when it names another one (a delivery replaced the queue file, as a
    /// delivery-time expansion does: [`LockedEntry::rewrite`]), that one is opened and
    /// locked in turn; [`LiveLock::Gone`] only when no queue file is left.
    pub fn lock_live(&self, id: &str, wait: std::time::Duration) -> Result<LiveLock, LockError> {
        let until = std::time::Instant::now() + wait;
        // Each new try after a replacement means another delivery replaced the file
        // meanwhile; a bound keeps a spool changed without end from holding us.
        for _ in 0..LIVE_TRIES {
            let f = match self.open_entry(id) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LiveLock::Gone),
                Err(e) => return Err(LockError::Open(e)),
            };
            #[cfg(test)]
            tests::between_open_and_lock();
            match f.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= until {
                        return Ok(LiveLock::Busy);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                Err(fs::TryLockError::Error(e)) => return Err(LockError::Lock(e)),
            }
            // Same-inode check: the path must still name the file we locked.
            let held = f.metadata().map_err(LockError::Look)?;
            match fs::symlink_metadata(self.qf_path(id)) {
                Ok(now)
                    if now.dev() == held.dev() && now.ino() == held.ino() && held.nlink() > 0 =>
                {
                    return Ok(LiveLock::Held(f, held));
                }
                // Replaced: the new file is the entry.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LiveLock::Gone),
                Err(e) => return Err(LockError::Look(e)),
            }
        }
        Ok(LiveLock::Busy)
    }

    /// Whether an entry is locked by a deliverer right now (mailq's `*`).
    pub fn is_busy(&self, file: &File) -> bool {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }

    /// Whether a live process holds the temporary file `p` (see [`Spool::clean_leftovers`]):
    /// `sf<ID>.<pid>` or `rf<ID>.<pid>` whose entry is locked by a deliverer (a new
    /// entry's `tf<ID>`: [`Spool::remove_unheld_tmp`]). A file that cannot be opened or
    /// locked is not held.
    fn tmp_in_use(&self, p: &Path) -> bool {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let held = |f: File| matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock));
        let rest = name.strip_prefix("sf").or_else(|| name.strip_prefix("rf"));
        match rest.and_then(|r| r.split_once('.')) {
            Some((id, _)) if valid_id(id) => self.open_entry(id).is_ok_and(held),
            _ => false,
        }
    }

    /// Remove the new entry's temporary file `p` (`tmp/tf<ID>`, of `md`) when no live
    /// process holds it: its submission keeps it locked from its creation to its rename
    /// ([`Spool::begin`]), so one not locked was left by a submission that died (killed
    /// by a signal, a crash), whatever its age, and is removed while this run holds its
    /// lock (a submission that locks it then finds it gone, and takes another ID).
    /// Where locks are not to be had, one older than `grace` seconds (as Postfix's
    /// `postsuper` removes temporary files older than a few hours). Whether it was
    /// removed.
    fn remove_unheld_tmp(&self, p: &Path, md: &fs::Metadata, now: i64, grace: i64) -> bool {
        let Ok(f) = open_safely(p, OpenOptions::new().read(true), Kind::File) else {
            return false;
        };
        let old = now.saturating_sub(md.mtime()) >= grace;
        match f.try_lock_shared() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return false,
            Err(fs::TryLockError::Error(_)) if old => {}
            Err(fs::TryLockError::Error(_)) => return false,
        }
        // Still the file locked, not one put at its name since.
        let same = f.metadata().ok().zip(fs::symlink_metadata(p).ok());
        if !same.is_some_and(|(a, b)| a.dev() == b.dev() && a.ino() == b.ino()) {
            return false;
        }
        // Removed while the lock is held; released when `f` is dropped.
        fs::remove_file(p).is_ok()
    }

    /// The entries a run moved aside into `corrupt/`: how many, and when the first of
    /// them was moved (its queue file's change time, which the move sets). None when
    /// there are none (or `corrupt/` cannot be read).
    pub fn corrupt_entries(&self) -> Option<(usize, i64)> {
        let rd = fs::read_dir(self.dir.join("corrupt")).ok()?;
        let mut n = 0;
        let mut first = i64::MAX;
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().starts_with("qf") {
                continue;
            }
            n += 1;
            if let Ok(md) = fs::symlink_metadata(e.path()) {
                first = first.min(md.ctime());
            }
        }
        (n > 0).then_some((n, if first == i64::MAX { 0 } else { first }))
    }

    /// What [`Spool::corrupt_entries`] finds, said for `mailq` and `check`: `N damaged
    /// queue files set aside in DIR/corrupt/ since DATE ...`.
    pub fn corrupt_note(&self) -> Option<String> {
        let (n, since) = self.corrupt_entries()?;
        let dir = self.dir.join("corrupt");
        let (what, are) = if n == 1 {
            ("damaged queue file", "is")
        } else {
            ("damaged queue files", "are")
        };
        Some(format!(
            "{n} {what} set aside in {}/ since {}: never delivered, and {are} kept there \
             until removed (`rsendmail-admin list` names them and `rsendmail-admin \
             delete ID` removes one; README, \"The spool\": repair one and move it back, \
             or submit what it holds again)",
            dir.display(),
            crate::clock::ctime(&crate::clock::local(since))
        ))
    }

    /// Move an unparseable entry aside into `corrupt/` (with its state file).
    pub fn move_corrupt(&self, id: &str) -> io::Result<()> {
        // Never into a symlink or anything else in corrupt/'s place.
        let dest = self.dir.join("corrupt");
        open_dir(&dest)?;
        fs::rename(self.qf_path(id), dest.join(format!("qf{id}")))?;
        let _ = fs::rename(self.sf_path(id), dest.join(format!("sf{id}")));
        let _ = fs::rename(self.jf_path(id), dest.join(format!("jf{id}")));
        sync_dir(&self.dir)
    }

    /// Remove leftovers of crashes: temporary files that no live process holds (a new
    /// entry's `tf<ID>` and a state file `sf<ID>.<pid>` at once, what else is there
    /// once older than `grace` seconds), and (with `orphans`, which lists the whole spool) state files whose
    /// entry is gone. Returns what was removed. "Holds": a submission keeps its
    /// `tmp/tf<ID>` locked until the rename ([`Spool::begin`]), and a deliverer writes
    /// `tmp/sf<ID>.<pid>` only while it holds the entry's delivery lock; a file so held
    /// is kept whatever its age.
    pub fn clean_leftovers(
        &self,
        now: i64,
        grace: i64,
        orphans: bool,
    ) -> Result<Vec<PathBuf>, Fatal> {
        let mut removed = Vec::new();
        let tmp = self.tmp_dir();
        // Listed (and emptied) only when it is the spool's own directory.
        let tmp_ok = open_dir(&tmp).is_ok();
        if let Some(rd) = tmp_ok.then(|| fs::read_dir(&tmp).ok()).flatten() {
            for ent in rd.flatten() {
                let p = ent.path();
                let Ok(md) = fs::symlink_metadata(&p) else {
                    continue;
                };
                // A deliverer writes `sf<ID>.<pid>` only while it holds the entry: one whose
                // entry nobody holds was left by a process that died, whatever its age. A
                // new entry's `tf<ID>` is its submission's, locked, while it lives.
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name.starts_with("tf") {
                    if self.remove_unheld_tmp(&p, &md, now, grace) {
                        removed.push(p);
                    }
                    continue;
                }
                let state_file = name.starts_with("sf") || name.starts_with("rf");
                let young = now.saturating_sub(md.mtime()) < grace;
                if (young && !state_file) || self.tmp_in_use(&p) {
                    continue;
                }
                if fs::remove_file(&p).is_ok() {
                    removed.push(p);
                }
            }
        }
        if orphans && let Ok((mut entries, states)) = self.listing() {
            sort_keys(&mut entries);
            removed.extend(self.remove_orphan_states(&states, &entries));
        }
        Ok(removed)
    }

    /// The spool listed once: the IDs of its entries (`qf<ID>`) and of its state files
    /// (`sf<ID>`) and delivery journals (`jf<ID>`: an entry with one has a state to
    /// read), unsorted, as [`IdKey`]s (14 octets each).
    pub fn listing(&self) -> Result<(Vec<IdKey>, Vec<IdKey>), Fatal> {
        let rd = fs::read_dir(&self.dir).map_err(|e| cant("cannot read", &self.dir, &e))?;
        let (mut entries, mut states) = (Vec::new(), Vec::new());
        for ent in rd {
            let ent = ent.map_err(|e| cant("cannot read", &self.dir, &e))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(key) = name.strip_prefix("qf").and_then(id_key) {
                entries.push(key);
            } else if let Some(key) = name
                .strip_prefix("sf")
                .or_else(|| name.strip_prefix("jf"))
                .or_else(|| name.strip_prefix("kf"))
                .and_then(id_key)
            {
                states.push(key);
            }
        }
        Ok((entries, states))
    }

    /// Remove the state files (and delivery journals) of `states` whose entry is gone: not in `entries` (sorted,
    /// from the same listing) and, looked at again, neither in the spool (committed
    /// since the listing) nor in `hold/` (a hold or release cut short between its two
    /// renames, `rsendmail-admin`, leaves the state here). Returns what was removed.
    pub fn remove_orphan_states(&self, states: &[IdKey], entries: &[IdKey]) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for key in states {
            let id = key_str(key);
            if entries.binary_search(key).is_err()
                && !self.qf_path(id).exists()
                && !self.held().qf_path(id).exists()
            {
                for p in [self.sf_path(id), self.jf_path(id), self.kf_path(id)] {
                    if fs::remove_file(&p).is_ok() {
                        removed.push(p);
                    }
                }
            }
        }
        removed
    }
}

/// Check that `entry`'s file has the `message-sum` it records (a file without one
/// passes): the message, then the envelope section with the sum's digits as zeros, read
/// once more before anything is sent.
fn check_sum(entry: &QueuedEntry) -> Result<(), ReadError> {
    use std::os::unix::fs::FileExt;
    let Some(want) = entry.message_sum else {
        return Ok(());
    };
    let mut sum = entry::SUM_START;
    let mut at = entry.data_offset;
    // No larger than the message: zeroing a 64 KiB buffer for a 2 KB message was the
    // largest single cost of a queue run's delivery (callgrind).
    let mut buf = vec![
        0u8;
        usize::try_from(entry.size.saturating_sub(at))
            .map_or(64 * 1024, |n| n.clamp(1, 64 * 1024))
    ];
    // The envelope section, its sum's digits as zeros (where the writer puts them).
    let mut envelope = vec![0u8; usize::try_from(entry.data_offset).unwrap_or(0)];
    entry
        .file
        .read_exact_at(&mut envelope, 0)
        .map_err(ReadError::Io)?;
    let label = entry::SUM_AT.saturating_sub("message-sum ".len());
    if envelope.get(label..entry::SUM_AT) != Some(b"message-sum ".as_slice()) {
        return Err(ReadError::Corrupt(
            "queue file damaged: its message-sum is not the third line".into(),
        ));
    }
    for slot in envelope
        .iter_mut()
        .skip(entry::SUM_AT)
        .take(entry::SUM_DIGITS)
    {
        *slot = b'0';
    }
    while at < entry.size {
        let n = entry.file.read_at(&mut buf, at).map_err(ReadError::Io)?;
        if n == 0 {
            break;
        }
        let n = usize::try_from((entry.size - at).min(n as u64)).unwrap_or(n);
        sum = entry::sum_update(sum, buf.get(..n).unwrap_or_default());
        at += n as u64;
    }
    let sum = entry::sum_update(sum, &envelope);
    if at != entry.size || sum != want {
        return Err(ReadError::Corrupt(format!(
            "queue file damaged: its sum is {sum:016x}, not the {want:016x} recorded \
             (zeroed or changed bytes?)"
        )));
    }
    Ok(())
}

/// Check a version 2 queue file's length: `file_size` must be exactly `data_offset` (the
/// envelope section) and `message_bytes`. Returns where the message ends.
fn check_length(file_size: u64, data_offset: u64, message_bytes: u64) -> Result<u64, ReadError> {
    let expected = data_offset
        .checked_add(message_bytes)
        .ok_or_else(|| ReadError::Corrupt(format!("bad message-bytes {message_bytes}")))?;
    if file_size != expected {
        let what = if file_size < expected {
            "short (truncated?)"
        } else {
            "too long"
        };
        return Err(ReadError::Corrupt(format!(
            "queue file {what}: {file_size} bytes, its envelope and message \
             ({message_bytes} bytes) make {expected}"
        )));
    }
    Ok(expected)
}

/// Why an entry could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The entry is not a valid queue file: move it aside.
    Corrupt(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{}", io_text(e)),
            ReadError::Corrupt(s) => f.write_str(s),
        }
    }
}

/// Why a queue file owned by `owner` that records the user `recorded` is not an entry
/// to deliver, as sendmail's readqf refuses a queue file owned by neither root nor the
/// uid it records (`bogus queue file, uid=%d, mode=%o`): rsendmail writes an entry as
/// its submitter (a set-gid submission: the user it records) or as root (a root
/// process's submission, an entry root rewrote), so one anyone else owns was put there
/// by that user, while the spool was open to her, and its recorded user (root's, say)
/// is hers to choose. `None` for root's, or its recorded user's.
pub fn planted_entry(owner: u32, recorded: u32) -> Option<String> {
    (owner != 0 && owner != recorded).then(|| {
        format!(
            "bogus queue file, owned by {} (uid {owner}) but recording {} (uid \
             {recorded}): only root and the user an entry records write it, so someone \
             else planted it; it is not delivered",
            safety::the_user_id(owner),
            safety::the_user_id(recorded)
        )
    })
}

/// The user (uid) the queue file at `path` records (its first `user` line, parsed as an
/// entry's: [`entry::user_line_uid`]), read without following a link; `None` when it
/// cannot be read or records none. Only the lines up to that one are read, not the
/// whole envelope ([`Envelope::parse`] refuses a damaged one): a file too damaged to be
/// an entry is still held to the user it names ([`planted_entry`]).
pub fn recorded_uid(path: &Path) -> Option<u32> {
    let f = open_safely(path, OpenOptions::new().read(true), Kind::File).ok()?;
    let r = BufReader::new(f.take(1024 * 1024));
    for line in r.lines() {
        let line = line.ok()?;
        if line.is_empty() {
            return None;
        }
        if let Some(uid) = entry::user_line_uid(&line) {
            return uid.ok();
        }
    }
    None
}

/// An entry as read from the spool.
#[derive(Debug)]
pub struct QueuedEntry {
    pub envelope: Envelope,
    pub state: State,
    /// Size of the qf file, where the message ends (checked against `message-bytes` in
    /// a version 2 or 3 file).
    pub size: u64,
    /// Where the message starts in the qf file.
    pub data_offset: u64,
    /// The message's `message-sum`, when the file records one (checked by
    /// [`Spool::lock_entry`], before a delivery).
    pub message_sum: Option<u64>,
    /// The open qf file (for lock checks and reading the message).
    pub file: File,
    /// When the qf file was written (its modification time, as read when it was opened).
    pub written: Option<std::time::SystemTime>,
    /// Whether the entry may have a state file: one was read with it, or a state was
    /// recorded since. Without one, removing the entry removes its queue file only.
    pub state_file: bool,
    /// Whether the entry may have a delivery journal (`jf<ID>`): one was read with it
    /// (its deliveries are in `state`), or a local delivery was started since. The
    /// next state written, or the entry's removal, removes it.
    pub journal: bool,
}

impl QueuedEntry {
    /// The size sendmail's mailq shows: the body (its df file), without the headers.
    pub fn body_size(&self) -> u64 {
        self.size
            .saturating_sub(self.data_offset)
            .saturating_sub(self.envelope.header_bytes)
    }
}

/// An entry as a queue run's selection read it ([`Spool::peek_entry`]), its file let
/// go: what its attempt takes again without reading it ([`Spool::lock_peeked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    pub envelope: Envelope,
    pub state: State,
    /// As in [`QueuedEntry`].
    pub size: u64,
    pub data_offset: u64,
    pub message_sum: Option<u64>,
    pub written: Option<std::time::SystemTime>,
    pub state_file: bool,
    pub journal: bool,
    /// The queue file read: its device, inode and length.
    file: (u64, u64, u64),
    /// The run's listing of the spool named a file beside the entry that may be a
    /// mark (`kf<ID>`, [`Spool::request`]): its attempt looks for one when it locks it.
    may_be_marked: bool,
}

impl Peeked {
    /// As [`QueuedEntry::body_size`].
    pub fn body_size(&self) -> u64 {
        self.size
            .saturating_sub(self.data_offset)
            .saturating_sub(self.envelope.header_bytes)
    }
}

/// How many times [`Spool::lock_live`] opens an entry's queue file that was replaced
/// each time before it gives up (as if the entry were busy).
const LIVE_TRIES: usize = 100;

/// What [`Spool::lock_live`] found.
#[derive(Debug)]
pub enum LiveLock {
    /// The live queue file, locked, and what it was when locked.
    Held(File, fs::Metadata),
    /// Another process holds the lock (still after the wait asked for).
    Busy,
    /// No queue file: the entry was finished (delivered, removed, moved) meanwhile.
    Gone,
}

/// Why [`Spool::lock_live`] could not lock an entry.
#[derive(Debug)]
pub enum LockError {
    /// Its queue file could not be opened (not `NotFound`).
    Open(io::Error),
    /// Its queue file could not be locked.
    Lock(io::Error),
    /// The open file or the path could not be looked at.
    Look(io::Error),
}

/// An entry whose delivery lock we hold.
#[derive(Debug)]
pub struct LockedEntry {
    spool: Spool,
    pub entry: QueuedEntry,
    _lock: File,
    /// A final state not written yet because the entry is about to be removed.
    pub pending_state: Option<State>,
    /// The temporary state file and the spool directory, opened (and the file given
    /// room, [`LockedEntry::reserve_state`]) before anything is sent whose outcome the
    /// next record must keep, so that neither a full disk nor running out of
    /// descriptors (the attempt's connections use some) can keep that record from
    /// being written. Removed when the entry is let go unused.
    reserved: Option<(File, File)>,
    /// Unlinked ([`LockedEntry::remove_unsynced`]).
    removed: bool,
    /// Its attempt found no mark at its end ([`LockedEntry::mark_at_end`]): not looked
    /// for again when it is let go of (one lookup an attempt less). A mark made in
    /// between is carried out by the command that made it, which tries the lock again
    /// once its mark is in place and for a moment after, or by the lock's next holder.
    unmarked_at_end: bool,
}

/// A deletion asked for during a delivery, as its mark (`kf<ID>`) records it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DeletionRequest {
    /// Who asked (`login (uid N)`).
    pub by: String,
    /// When (seconds since the epoch).
    pub at: i64,
    /// Recipients delivered, of all the entry's, when the holder of the entry's lock
    /// carried the mark out (`(0, 0)`: removed before any attempt); none when no holder
    /// did (the delivery ended without it, or still runs).
    pub sent: Option<(usize, usize)>,
}

impl DeletionRequest {
    /// A mark's text ([`Mark::to_text`]) and the count a delivery added to it.
    fn parse(text: &str) -> DeletionRequest {
        let mut r = DeletionRequest::default();
        if let Some(m) = Mark::parse(text) {
            r.by = m.by;
            r.at = m.at;
        }
        for line in text.lines() {
            if let Some(sent) = line.strip_prefix("sent ")
                && let Some((k, m)) = sent.split_once(" of ")
                && let (Ok(k), Ok(m)) = (k.trim().parse(), m.trim().parse())
            {
                r.sent = Some((k, m));
            }
        }
        r
    }
}

impl LockedEntry {
    /// [`LockedEntry::mark`] as an attempt looks for it at its end, after its last
    /// unit of delivery: when there is none, it is not looked for again when the entry
    /// is let go of ([`LockedEntry::unmarked_at_end`]).
    pub fn mark_at_end(&mut self) -> Option<Mark> {
        let m = self.mark();
        self.unmarked_at_end = m.is_none();
        m
    }

    /// [`LockedEntry::mark`] after the attempt's end, before the entry is let go of: None
    /// without a look when the attempt found none at its end
    /// ([`LockedEntry::mark_at_end`]; a mark made since is seen by the next holder, as
    /// when the entry is let go of).
    pub fn mark_after_end(&self) -> Option<Mark> {
        if self.unmarked_at_end {
            return None;
        }
        self.mark()
    }

    /// The entry's mark: an action asked for while this process held it
    /// ([`Spool::request`]). Nothing more of it may be started; it is carried out when
    /// this process lets go of it.
    pub fn mark(&self) -> Option<Mark> {
        self.spool.mark(&self.entry.envelope.id)
    }

    /// Whether the entry has a mark ([`Spool::marked`]: one `lstat(2)`), without
    /// reading it.
    pub fn marked(&self) -> bool {
        self.spool.marked(&self.entry.envelope.id)
    }

    /// Add to the mark of a deletion asked for during this delivery how many of the
    /// entry's `total` recipients were delivered (`sent`) when it ended, for the
    /// `rsendmail-admin delete` that waits for it to read ([`DeletionRequest`]). What
    /// the mark said before (who asked, when) is returned.
    pub fn note_sent_before_deletion(&self, sent: usize, total: usize) -> DeletionRequest {
        let path = self.spool.kf_path(&self.entry.envelope.id);
        match open_safely(
            &path,
            OpenOptions::new().read(true).append(true),
            Kind::File,
        ) {
            Ok(mut f) => {
                let asked = Spool::read_deletion_request(&mut f);
                let _ = f.write_all(format!("sent {sent} of {total}\n").as_bytes());
                asked
            }
            Err(_) => DeletionRequest::default(),
        }
    }

    /// Where this process writes the entry's next state record.
    fn state_tmp(&self) -> PathBuf {
        self.spool.tmp_dir().join(format!(
            "sf{}.{}",
            self.entry.envelope.id,
            std::process::id()
        ))
    }

    /// The temporary state file (created, or opened as it is: room made in it stays)
    /// and the spool directory.
    fn open_state_files(&self) -> io::Result<(File, File)> {
        open_dir(&self.spool.tmp_dir())?;
        let f = open_safely(
            &self.state_tmp(),
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(self.spool.file_mode()),
            Kind::File,
        )?;
        Ok((f, dir_for_sync(&self.spool.dir)?))
    }

    /// Make room for the next state record before anything is sent whose outcome it
    /// must keep: the temporary state file is opened and written (zeros) to at least
    /// `bytes` bytes, and it and the spool directory stay open, so that a full file
    /// system, an exhausted quota, a file-size limit or the last descriptor taken shows
    /// now, when the run can still send nothing, and not after a server accepted the
    /// message (then the outcome would be lost and the recipient sent to again on every
    /// run). [`LockedEntry::record_state`] writes over the room. Space is reserved at
    /// write time by the file systems that allocate lazily (ext4, XFS, tmpfs); a
    /// copy-on-write one may still fail the record later. With `sync`, the room is also
    /// fsynced: a disk that fails its fsyncs (a full thin volume, a quota checked at
    /// writeback) shows now too. On error nothing is left.
    pub fn reserve_state(&mut self, bytes: u64, sync: bool) -> Result<(), Fatal> {
        use std::os::unix::fs::FileExt;
        let held = self.reserved.take();
        let reserve = || -> io::Result<(File, File)> {
            let (f, dir) = match held {
                Some(files) => files,
                None => self.open_state_files()?,
            };
            let have = f.metadata()?.len();
            if have < bytes {
                let zeros = vec![0u8; usize::try_from(bytes - have).unwrap_or(usize::MAX)];
                f.write_all_at(&zeros, have)?;
            }
            if sync {
                f.sync_all()?;
            }
            Ok((f, dir))
        };
        match reserve() {
            Ok(files) => {
                self.reserved = Some(files);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(self.state_tmp());
                Err(cant(
                    "cannot make room for the state of",
                    &self.spool.qf_path(&self.entry.envelope.id),
                    &e,
                ))
            }
        }
    }

    /// Write `text` through the temporary state file (over any room reserved there, with
    /// the files reserved when they are), fsync, rename over `sf<ID>`, fsync the spool
    /// directory. On error the temporary file and the reserved files stay (the caller
    /// tries again over them, or lets them go).
    fn write_state(&mut self, text: &str) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let (f, dir) = match self.reserved.take() {
            Some(files) => files,
            None => self.open_state_files()?,
        };
        let tmp = self.state_tmp();
        // From the rename on, the entry may have one (whatever the rename returns).
        self.entry.state_file = true;
        let written = f
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| f.set_len(text.len() as u64))
            .and_then(|()| f.sync_all())
            .and_then(|()| fs::rename(&tmp, self.spool.sf_path(&self.entry.envelope.id)));
        if let Err(e) = written {
            self.reserved = Some((f, dir));
            return Err(e);
        }
        // The state holds what the journal said (read with the entry, or told by the
        // supervisors this holder waited for): the journal goes once the state is
        // durable.
        dir.sync_all()?;
        if self.entry.journal {
            let _ = fs::remove_file(self.spool.jf_path(&self.entry.envelope.id));
            self.entry.journal = false;
        }
        Ok(())
    }

    /// Let the reserved room go after a failure, and whatever a failed write left in the
    /// temporary state file (this process's own).
    fn unreserve(&mut self) {
        self.reserved = None;
        let _ = fs::remove_file(self.state_tmp());
    }

    /// Record per-recipient outcomes durably (tmp, fsync, rename, fsync dir). When the
    /// state finds no room (ENOSPC, EDQUOT, EFBIG), its [`State::essential`] part is
    /// written instead: the texts are lost, never which recipients are final.
    pub fn record_state(&mut self, state: State) -> Result<(), Fatal> {
        let sf = self.spool.sf_path(&self.entry.envelope.id);
        if let Err(e) = self.write_state(&state.to_text()) {
            let err = cant("cannot record state in", &sf, &e);
            if !err.is_no_space() || self.write_state(&state.essential().to_text()).is_err() {
                self.unreserve();
                return Err(err);
            }
            log::warn!(
                "{}: {}; recorded without the replies' texts",
                self.entry.envelope.id,
                err.message
            );
        }
        self.entry.state = state;
        Ok(())
    }

    /// Record an attempt's outcome, which may hold recipients a server accepted: when
    /// `state` cannot be written, it is tried once more (a failure may pass: an fsync
    /// that failed once, space freed meanwhile), then without its texts
    /// ([`State::essential`]), then `smaller` (what must not be lost: the recipients
    /// delivered, in few bytes), each over the same temporary file, so that room freed
    /// by a failed try is not given up. The first error when none could be written.
    pub fn record_outcome(&mut self, state: State, smaller: State) -> Result<(), Fatal> {
        let mut first = None;
        let essential = state.essential();
        let tries = [
            (&state, "in full"),
            (&state, "in full"),
            (&essential, "without the replies' texts"),
            (&smaller, "the delivered recipients only"),
        ];
        for (n, (st, how)) in tries.into_iter().enumerate() {
            match self.write_state(&st.to_text()) {
                Ok(()) => {
                    if n > 0 {
                        log::warn!(
                            "{}: state recorded at try {} ({how})",
                            self.entry.envelope.id,
                            n + 1,
                        );
                    }
                    self.entry.state = st.clone();
                    return Ok(());
                }
                Err(e) => {
                    log::error!(
                        "{}",
                        cant(
                            "cannot record state in",
                            &self.spool.sf_path(&self.entry.envelope.id),
                            &e
                        )
                    );
                    first.get_or_insert(e);
                }
            }
        }
        self.unreserve();
        let e = first.unwrap_or_else(|| io::Error::other("no state written"));
        Err(cant(
            "cannot record state in",
            &self.spool.sf_path(&self.entry.envelope.id),
            &e,
        ))
    }

    /// Replace the entry's queue file with one holding `envelope` (the entry's own with
    /// recipients appended: a delivery-time expansion's targets, `added`) and the same
    /// message, as a submission commits one: written to `tmp/rf<ID>.<pid>`, sealed
    /// (length and sum) and fsynced, its index lines (for `added` only) appended, then
    /// locked and renamed over `qf<ID>`, and the spool directory fsynced. The new file's
    /// delivery lock is taken before the rename, so that no other runner can take the
    /// entry between; the old file's lock is let go after it (a runner that opened the
    /// old file finds the path naming another one, and skips it). The state file stays:
    /// its recipient numbers still name the same recipients, as the new ones come
    /// after them. A crash before the rename leaves the old entry (the expansion is done
    /// again), after it the new one.
    ///
    /// On error before the rename nothing changed; an error after it (the directory's
    /// fsync) leaves the new file in place and held by this entry, and is returned.
    pub fn rewrite(
        &mut self,
        envelope: &Envelope,
        added: &[entry::Recipient],
    ) -> Result<(), Fatal> {
        let id = self.entry.envelope.id.clone();
        let tmp_dir = self.spool.tmp_dir();
        open_dir(&tmp_dir).map_err(|e| cant("cannot use", &tmp_dir, &e))?;
        let tmp = tmp_dir.join(format!("rf{id}.{}", std::process::id()));
        // A leftover of a failed try of this process's.
        let _ = fs::remove_file(&tmp);
        let file = open_safely(
            &tmp,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(self.spool.file_mode()),
            Kind::File,
        )
        .map_err(|e| cant("cannot create queue file", &tmp, &e))?;
        let made = || -> io::Result<(File, File)> {
            let lock = file.try_clone()?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::other("locked by another process"));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            Ok((lock, file.try_clone()?))
        };
        let (lock, reader) = made().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            cant("cannot lock queue file", &tmp, &e)
        })?;
        let mut new = NewEntry {
            spool: self.spool.clone(),
            id: id.clone(),
            tmp_path: tmp.clone(),
            out: QueueWriter::new(file),
            committed: false,
        };
        let mut env = envelope.clone();
        env.id.clone_from(&id);
        env.message_bytes = None;
        let mut copied = || -> io::Result<()> {
            let mut src = self.entry.file.try_clone()?;
            io::Seek::seek(&mut src, io::SeekFrom::Start(self.entry.data_offset))?;
            let len = self.entry.size.saturating_sub(self.entry.data_offset);
            new.out.write_all(env.to_text().as_bytes())?;
            let n = io::copy(&mut src.take(len), &mut new.out)?;
            if n != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "queue file shorter than its message",
                ));
            }
            new.out.flush()
        };
        copied().map_err(|e| cant("cannot write queue file", &tmp, &e))?;
        new.sync_tmp()?;
        let index_env = Envelope {
            id: id.clone(),
            recipients: added.to_vec(),
            ..Envelope::default()
        };
        new.append_index(&index_env);
        let qf = self.spool.qf_path(&id);
        let dir = dir_for_sync(&self.spool.dir)
            .map_err(|e| cant("cannot open queue directory", &self.spool.dir, &e))?;
        fs::rename(&tmp, &qf).map_err(|e| cant("cannot commit queue file", &qf, &e))?;
        new.committed = true;
        drop(new);
        // From here the path names the new file, which this entry holds.
        let state = std::mem::take(&mut self.entry.state);
        let mut reader = reader;
        let read = io::Seek::seek(&mut reader, io::SeekFrom::Start(0))
            .map_err(ReadError::Io)
            .and_then(|_| self.spool.read_open_entry(&id, reader, false));
        self._lock = lock;
        let synced = dir
            .sync_all()
            .map_err(|e| cant("cannot sync queue directory", &self.spool.dir, &e));
        match read {
            Ok(mut e) => {
                e.state = state;
                e.state_file = self.entry.state_file;
                e.journal = self.entry.journal;
                self.entry = e;
            }
            Err(e) => {
                self.entry.state = state;
                return Err(Fatal::new(Sysexit::IoErr, format!("qf{id}: {e}")));
            }
        }
        synced
    }

    /// Remove the entry (every recipient has a final outcome) and sync the spool
    /// directory. On error the entry is still there and still locked.
    pub fn remove(&mut self) -> Result<(), Fatal> {
        self.remove_unsynced()?;
        self.spool.sync_removals();
        Ok(())
    }

    /// Remove the entry as [`LockedEntry::remove`] does, without syncing the spool
    /// directory: the caller syncs it for several removals at once
    /// ([`Spool::sync_removals`]). Until then a crash may bring the entry back (its
    /// recipients are then tried again, as after a crash in sendmail, Postfix or dma, which
    /// never sync a removal); nothing is lost. Other processes see it gone at once.
    pub fn remove_unsynced(&mut self) -> Result<(), Fatal> {
        let id = self.entry.envelope.id.clone();
        let qf = self.spool.qf_path(&id);
        fs::remove_file(&qf).map_err(|e| cant("cannot remove", &qf, &e))?;
        if self.entry.state_file {
            let _ = fs::remove_file(self.spool.sf_path(&id));
        }
        if self.entry.journal {
            let _ = fs::remove_file(self.spool.jf_path(&id));
        }
        self.removed = true;
        // A deletion asked for meanwhile is done too; a hold or a return came too late,
        // which is said in the log and in the mark itself (`outlived`), for the command
        // that made it and keeps it open ([`Spool::mark_outlived`]). Looked for after the
        // queue file is gone: a command that marks the entry after this look finds it
        // gone when it looks again, and withdraws its mark.
        if self.spool.marked(&id) {
            let _marks = self.spool.lock_marks();
            if let Some(m) = self
                .spool
                .mark(&id)
                .filter(|m| m.request != Request::Delete)
            {
                log::info!(
                    "{id}: every recipient had its outcome before its {}, asked for by {}, \
                     took effect",
                    m.what(),
                    m.by
                );
                self.spool.note_in_mark(&id, OUTLIVED);
            }
            let _ = fs::remove_file(self.spool.kf_path(&id));
        }
        Ok(())
    }
}

impl Drop for LockedEntry {
    /// A reserved temporary state file that was not needed is removed. An entry whose
    /// deletion was asked for while it was held goes now, under the lock still held
    /// ([`Spool::request_deletion`]).
    ///
    /// The lock is let go of first, and only then is the mark looked for: a command that
    /// marks the entry while it is held tries its lock again after the mark is in place
    /// ([`Spool::request`]), so either that command finds the lock free or this look
    /// finds its mark. A mark found is carried out under the lock taken again (another
    /// holder that took it meanwhile carries it out itself). Not looked for when the
    /// attempt found none at its end ([`LockedEntry::unmarked_at_end`]).
    fn drop(&mut self) {
        if self.reserved.take().is_some() {
            let _ = fs::remove_file(self.state_tmp());
        }
        if self.removed || self.unmarked_at_end {
            return;
        }
        let id = &self.entry.envelope.id;
        if self._lock.unlock().is_ok() && self.spool.marked(id) && self._lock.try_lock().is_ok() {
            self.spool.carry_out_mark(id);
        }
    }
}

/// The writer of a new entry: buffers, counts the bytes, and notes where the envelope
/// section ends (its blank line) and how the file starts, so that the commit can record
/// the message's length without any help from the caller.
pub struct QueueWriter {
    out: BufWriter<File>,
    /// Bytes written so far.
    written: u64,
    /// The offset just after the first blank line: where the message starts.
    envelope_end: Option<u64>,
    /// The last byte written was a line feed.
    after_newline: bool,
    /// The envelope section as written (and patched), for its part of the sum.
    head: Vec<u8>,
    /// The `message-sum` of the message bytes written so far.
    sum: u64,
}

impl QueueWriter {
    fn new(file: File) -> QueueWriter {
        QueueWriter {
            out: BufWriter::with_capacity(64 * 1024, file),
            written: 0,
            envelope_end: None,
            after_newline: false,
            head: Vec::with_capacity(entry::SUM_AT),
            sum: entry::SUM_START,
        }
    }

    fn note(&mut self, bytes: &[u8]) {
        // What of `bytes` is message (after the envelope section): summed.
        let mut message = bytes;
        if self.envelope_end.is_none() {
            let mut at = self.written;
            message = &[];
            let mut envelope = bytes;
            for (k, &b) in bytes.iter().enumerate() {
                at += 1;
                if b == b'\n' && self.after_newline {
                    self.envelope_end = Some(at);
                    envelope = bytes.get(..=k).unwrap_or_default();
                    message = bytes.get(k + 1..).unwrap_or_default();
                    break;
                }
                self.after_newline = b == b'\n';
            }
            self.head.extend_from_slice(envelope);
        }
        self.sum = entry::sum_update(self.sum, message);
        self.written += bytes.len() as u64;
    }
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.note(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A submission being written. Dropping it without [`NewEntry::commit`] removes the
/// temporary file: nothing is queued.
pub struct NewEntry {
    spool: Spool,
    pub id: String,
    tmp_path: PathBuf,
    out: QueueWriter,
    committed: bool,
}

impl NewEntry {
    /// Where the envelope section ([`Envelope::to_text`]) and then the message are
    /// written; it counts, and the commit records the count.
    pub fn writer(&mut self) -> &mut QueueWriter {
        &mut self.out
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Overwrite bytes already written at `offset` (same length; used for the one
    /// envelope field only known after the body: the body type).
    pub fn patch(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.out.flush()?;
        self.out.out.get_ref().write_all_at(bytes, offset)?;
        // The copy the sum is made from, alike.
        for (k, b) in bytes.iter().enumerate() {
            if let Some(slot) = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(k))
                .and_then(|i| self.out.head.get_mut(i))
            {
                *slot = *b;
            }
        }
        Ok(())
    }

    /// Record the message's length in the envelope's `message-bytes` (see entry.rs).
    /// Returns the length.
    fn seal(&mut self) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let prefix = format!(
            "{} {}\nmessage-bytes ",
            entry::QUEUE_MAGIC,
            entry::QUEUE_VERSION
        );
        // The length's digits (whatever a copied envelope held there), then the sum's.
        let sum_label = self
            .out
            .head
            .get(entry::LENGTH_AT + entry::LENGTH_DIGITS..entry::SUM_AT);
        let start = match self.out.envelope_end {
            Some(start)
                if self.out.head.starts_with(prefix.as_bytes())
                    && sum_label == Some(b"\nmessage-sum ".as_slice()) =>
            {
                start
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no envelope section of the current version was written",
                ));
            }
        };
        let length = self.out.written - start;
        self.out.flush()?;
        let digits = format!("{length:0width$}", width = entry::LENGTH_DIGITS);
        self.out
            .out
            .get_ref()
            .write_all_at(digits.as_bytes(), entry::LENGTH_AT as u64)?;
        // The sum covers the message, then the envelope section as it now stands with
        // the sum's own digits as zeros.
        for (k, b) in digits.bytes().enumerate() {
            if let Some(slot) = self.out.head.get_mut(entry::LENGTH_AT + k) {
                *slot = b;
            }
        }
        let sum = entry::sum_update(self.out.sum, &self.out.head);
        let sum = format!("{sum:0width$x}", width = entry::SUM_DIGITS);
        self.out
            .out
            .get_ref()
            .write_all_at(sum.as_bytes(), entry::SUM_AT as u64)?;
        Ok(length)
    }

    /// Make the entry durable and visible. See the module docs for the protocol.
    /// Returns the message's length in bytes (what follows the envelope section).
    pub fn commit(mut self, envelope: &Envelope) -> Result<u64, Fatal> {
        let length = self.sync_tmp()?;
        self.append_index(envelope);
        self.publish()?;
        Ok(length)
    }

    /// Commit steps 1 and 2: record the length and fsync the temporary file. Returns the
    /// message's length.
    fn sync_tmp(&mut self) -> Result<u64, Fatal> {
        let path = self.tmp_path.clone();
        let length = self
            .seal()
            .map_err(|e| cant("cannot write queue file", &path, &e))?;
        self.out
            .out
            .get_ref()
            .sync_all()
            .map_err(|e| cant("cannot sync queue file", &path, &e))?;
        Ok(length)
    }

    /// Commit step 3: the index lines. The indexes are hints: an error there must not
    /// lose the message; it marks the index as missing this entry (before the rename:
    /// `index::invalidate`), so the next run that lists the spool rebuilds it, and
    /// selective runs list the spool and find the entry by name meanwhile.
    fn append_index(&self, envelope: &Envelope) {
        if let Err(e) = index::append(&self.spool, envelope) {
            log::warn!("{}: index not updated: {}", envelope.id, io_text(&e));
            index::invalidate(&self.spool, &envelope.id);
        }
    }

    /// Commit step 4: rename into place and fsync the spool directory.
    fn publish(mut self) -> Result<(), Fatal> {
        let qf = self.spool.qf_path(&self.id);
        // Opened before the rename: a failure to open it (no descriptor left) leaves
        // nothing committed; only the fsync itself can fail after the rename.
        let dir = dir_for_sync(&self.spool.dir)
            .map_err(|e| cant("cannot open queue directory", &self.spool.dir, &e))?;
        fs::rename(&self.tmp_path, &qf).map_err(|e| cant("cannot commit queue file", &qf, &e))?;
        self.committed = true;
        // The lock that kept the temporary file from being cleaned up is not the
        // entry's delivery lock: let it go at once.
        let _ = self.out.out.get_ref().unlock();
        dir.sync_all().map_err(|e| {
            // The entry exists but may not survive a crash: tell the caller, who will
            // retry; a duplicate is better than a loss.
            cant("cannot sync queue directory", &self.spool.dir, &e)
        })?;
        // ---- commit point ----
        Ok(())
    }
}

impl Drop for NewEntry {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// A spool in a scratch directory, removed when dropped (for the unit tests).
#[cfg(test)]
pub(crate) struct ScratchSpool {
    pub spool: Spool,
}

#[cfg(test)]
impl ScratchSpool {
    pub fn new(what: &str) -> ScratchSpool {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("rsendmail-unit-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::own(dir);
        spool.prepare().expect("a scratch spool");
        ScratchSpool { spool }
    }
}

#[cfg(test)]
impl Drop for ScratchSpool {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.spool.dir);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    /// The count a delivery adds to a deletion's mark is read back, and leaves the mark
    /// a deletion for any later holder of the entry's lock.
    #[test]
    fn a_deletion_mark_with_the_count_a_delivery_added() {
        let m = Mark {
            request: Request::Delete,
            by: "root (uid 0)".to_string(),
            at: 1_700_000_000,
        };
        let text = format!("{}sent 1 of 2\n", m.to_text());
        assert_eq!(Mark::parse(&text), Some(m));
        assert_eq!(
            DeletionRequest::parse(&text),
            DeletionRequest {
                by: "root (uid 0)".to_string(),
                at: 1_700_000_000,
                sent: Some((1, 2)),
            }
        );
        let plain = DeletionRequest::parse("rsendmail-delete 1\nby a\nat 5\nsent x of 2\n");
        assert_eq!(plain.sent, None);
        assert_eq!(DeletionRequest::parse(""), DeletionRequest::default());
    }

    /// Two requests on one entry: a deletion stays over every later action (returned as
    /// the mark in effect, nothing replaced); any other mark is replaced by the later
    /// request and returned. A withdrawn mark is gone, and a second withdrawal finds none.
    #[test]
    fn a_later_request_replaces_any_mark_but_a_deletion() {
        let scratch = ScratchSpool::new("marks");
        let spool = &scratch.spool;
        let id = "6B3JDwgR005525";
        let bounce = Request::Bounce {
            reason: "r".to_string(),
            bounce_by: None,
        };
        for (first, second) in [
            (Request::Hold, bounce.clone()),
            (bounce.clone(), Request::Hold),
            (Request::Hold, Request::Delete),
            (bounce.clone(), Request::Delete),
        ] {
            let marks = spool.lock_marks();
            spool
                .request(&marks, id, "a (uid 1)", first.clone())
                .unwrap();
            let r = spool
                .request(&marks, id, "b (uid 2)", second.clone())
                .unwrap();
            drop(marks);
            assert_eq!(r.mark.request, second);
            assert_eq!(r.mark.by, "b (uid 2)");
            let before = r.replaced.expect("the earlier mark");
            assert_eq!((before.request, before.by.as_str()), (first, "a (uid 1)"));
            assert_eq!(spool.mark(id).unwrap().request, second);
            // Only the kind asked for is withdrawn.
            assert!(!spool.withdraw_mark(id, |m| m.request != second).unwrap());
            assert!(spool.withdraw_mark(id, |_| true).unwrap());
            assert!(!spool.withdraw_mark(id, |_| true).unwrap());
            assert_eq!(spool.mark(id), None);
        }
        for later in [Request::Hold, bounce, Request::Delete] {
            let marks = spool.lock_marks();
            spool
                .request(&marks, id, "a (uid 1)", Request::Delete)
                .unwrap();
            let r = spool.request(&marks, id, "b (uid 2)", later).unwrap();
            drop(marks);
            assert_eq!(r.mark.request, Request::Delete);
            assert_eq!(r.mark.by, "a (uid 1)");
            assert_eq!(r.replaced, None);
            assert_eq!(spool.mark(id).unwrap().request, Request::Delete);
            assert!(spool.withdraw_mark(id, |_| true).unwrap());
        }
    }

    /// A deletion and a hold asked for at the same moment (two commands) end with the
    /// deletion in place, whichever came first: each request reads and writes the mark
    /// under the spool's marks lock, so neither writes over the other unseen. Without the
    /// lock, the hold's read of "no mark" can fall before the deletion is written, and
    /// its write after: the deletion is lost.
    #[test]
    fn a_deletion_made_at_the_same_time_as_a_hold_stays() {
        let scratch = ScratchSpool::new("markrace");
        let spool = &scratch.spool;
        let id = "6B3JDwgR005526";
        for _ in 0..200 {
            let go = std::sync::Barrier::new(2);
            std::thread::scope(|t| {
                let hold = t.spawn(|| {
                    go.wait();
                    let marks = spool.lock_marks();
                    spool.request(&marks, id, "a (uid 1)", Request::Hold)
                });
                let delete = t.spawn(|| {
                    go.wait();
                    spool.request_deletion(id, "b (uid 2)")
                });
                hold.join().unwrap().unwrap();
                delete.join().unwrap().unwrap();
            });
            assert_eq!(spool.mark(id).unwrap().request, Request::Delete);
            assert!(spool.withdraw_mark(id, |_| true).unwrap());
        }
    }
    use entry::RcptState;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rsendmail-unit-{tag}-{}-{}",
            std::process::id(),
            crate::clock::now()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn env(id: &str) -> Envelope {
        entry::test_envelope(id, &["b@example.org"])
    }

    /// A report's ID: a queue ID, the same for the same key, the original's first eight
    /// characters then a letter (never a submission's), another for another key; a
    /// state's count of reports survives its text.
    #[test]
    fn report_ids_are_derived_from_their_key() {
        let origin = "6AUIIquc023976";
        let a = report_queue_id(origin, "6AUIIquc023976 0 00ff").unwrap();
        assert!(valid_id(&a), "{a}");
        assert_eq!(a.get(..8), origin.get(..8));
        assert!(a.as_bytes()[8].is_ascii_alphabetic(), "{a}");
        assert_eq!(
            report_queue_id(origin, "6AUIIquc023976 0 00ff"),
            Some(a.clone())
        );
        assert_ne!(
            report_queue_id(origin, "6AUIIquc023976 1 00ff"),
            Some(a.clone())
        );
        assert_eq!(report_queue_id("not an id", "k"), None);
        for _ in 0..100 {
            let fresh = new_queue_id(crate::clock::now());
            assert!(fresh.as_bytes()[8].is_ascii_digit(), "{fresh}");
        }
        let st = entry::State {
            reports: 7,
            ..entry::State::default()
        };
        assert_eq!(entry::State::parse(&st.to_text()).unwrap().reports, 7);
        assert_eq!(
            entry::State::parse(&st.essential().to_text())
                .unwrap()
                .reports,
            7
        );
        assert!(st.essential().to_text().len() <= entry::State::essential_len_bound(0));
    }

    #[test]
    fn ids_unique_and_shaped() {
        // Within one second a process has 3,600 counter values; other tests in this
        // process draw from the same counter, so stay well below that.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let id = new_queue_id(1_795_326_018);
            assert!(valid_id(&id), "{id}");
            assert!(seen.insert(id));
        }
        assert!(!valid_id("short"));
        assert!(!valid_id("6AM5eIkR00403/"));
    }

    #[test]
    fn ids_sort_by_time() {
        let a = new_queue_id(1_795_326_018);
        let b = new_queue_id(1_795_326_018 + 3600 * 24 * 40);
        assert!(a[..6] < b[..6], "{a} {b}");
    }

    #[test]
    fn removal_removes_a_state_file_a_lock_found_or_a_rewrite_kept() {
        let dir = tempdir("sfremove");
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        let commit = || {
            let mut ne = spool.begin(crate::clock::now()).unwrap();
            let id = ne.id.clone();
            ne.writer()
                .write_all(env(&id).to_text().as_bytes())
                .unwrap();
            ne.writer().write_all(b"Subject: x\n\nbody\n").unwrap();
            ne.commit(&env(&id)).unwrap();
            id
        };
        let mut st = State::default();
        st.recipients
            .push((0, RcptState::Deferred, Some("451 later".into())));
        // Written by an earlier lock holder, found by this one.
        let id = commit();
        let mut first = spool.lock_entry(&id).unwrap().expect("lock");
        assert!(!first.entry.state_file);
        first.record_state(st.clone()).unwrap();
        drop(first);
        let mut locked = spool.lock_entry(&id).unwrap().expect("lock");
        assert!(locked.entry.state_file);
        locked.remove().unwrap();
        assert!(!spool.sf_path(&id).exists());
        // Written, then the queue file rewritten (a delivery-time expansion).
        let id = commit();
        let mut locked = spool.lock_entry(&id).unwrap().expect("lock");
        locked.record_state(st.clone()).unwrap();
        let grown = locked.entry.envelope.clone();
        locked.rewrite(&grown, &[]).unwrap();
        locked.remove().unwrap();
        assert!(!spool.sf_path(&id).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn commit_lock_state_remove() {
        let dir = tempdir("commit");
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let id = ne.id.clone();
        let e = env(&id);
        ne.writer().write_all(e.to_text().as_bytes()).unwrap();
        ne.writer().write_all(b"Subject: x\n\nbody\n").unwrap();
        assert!(spool.ids().unwrap().is_empty(), "invisible before commit");
        ne.commit(&e).unwrap();
        assert_eq!(spool.ids().unwrap(), vec![id.clone()]);
        assert!(fs::read_dir(spool.tmp_dir()).unwrap().next().is_none());

        let mut locked = spool.lock_entry(&id).unwrap().expect("lock");
        // A second runner cannot take it.
        assert!(spool.lock_entry(&id).unwrap().is_none());
        let reader = spool.read_entry(&id).unwrap();
        assert!(spool.is_busy(&reader.file));
        let mut st = State::default();
        st.recipients
            .push((0, RcptState::Deferred, Some("451 later".into())));
        st.reason = Some("Deferred: 451 later".into());
        locked.record_state(st.clone()).unwrap();
        assert_eq!(spool.read_entry(&id).unwrap().state, st);
        locked.remove().unwrap();
        assert!(spool.ids().unwrap().is_empty());
        assert!(!spool.sf_path(&id).exists());
        // The index still names it; that is harmless and a rebuild drops it.
        let _ = fs::remove_dir_all(&dir);
    }

    thread_local! {
        /// What [`between_open_and_lock`] does once, on this thread: a delivery that
        /// replaces or removes the queue file in the window of a lock's open and flock.
        static BETWEEN: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Called by [`Spool::lock_live`] between its open and its lock.
    pub(super) fn between_open_and_lock() {
        if let Some(f) = BETWEEN.with(|b| b.borrow_mut().take()) {
            f();
        }
    }

    /// A delivery that replaces the queue file (a delivery-time expansion) between
    /// another process's open and its lock: the lock is of the new file, the entry
    /// still queued (never "finished meanwhile"); one that removes it: gone.
    #[test]
    fn lock_live_follows_a_replaced_queue_file() {
        let scratch = ScratchSpool::new("live");
        let spool = &scratch.spool;
        let (id, _) = committed(spool, b"Subject: x\n\nbody\n");
        let mut locked = spool.lock_entry(&id).unwrap().expect("lock");
        let old_ino = fs::metadata(spool.qf_path(&id)).unwrap().ino();
        let mut next = locked.entry.envelope.clone();
        next.expansions += 1;
        let added = vec![entry::Recipient::new("c@example.org")];
        next.recipients.extend(added.clone());
        BETWEEN.with(|b| {
            *b.borrow_mut() = Some(Box::new(move || {
                locked.rewrite(&next, &added).unwrap();
                // The delivery ends; the entry stays queued for its new recipient.
                drop(locked);
            }));
        });
        match spool
            .lock_live(&id, std::time::Duration::from_secs(5))
            .unwrap()
        {
            LiveLock::Held(_, held) => assert_ne!(held.ino(), old_ino),
            other => panic!("the replaced entry is not locked: {other:?}"),
        }
        // The queue run's way: the same.
        let e = spool
            .lock_entry(&id)
            .unwrap()
            .expect("a run takes the new file");
        assert_eq!(e.entry.envelope.recipients.len(), 2);
        // Removed in the window: gone.
        let mut locked = e;
        BETWEEN.with(|b| {
            *b.borrow_mut() = Some(Box::new(move || {
                locked.remove().unwrap();
                drop(locked);
            }));
        });
        assert!(matches!(
            spool.lock_live(&id, std::time::Duration::ZERO).unwrap(),
            LiveLock::Gone
        ));
    }

    /// An entry a selection read and let go, locked again for its attempt: what could
    /// have changed meanwhile is seen (a state recorded by another holder, one written
    /// after the listing that said there was none, a journal, the queue file replaced,
    /// the entry finished); what did not is the selection's read, the message's sum
    /// still checked.
    #[test]
    fn an_entry_locked_again_after_its_selection_sees_what_changed() {
        let scratch = ScratchSpool::new("peeked");
        let spool = &scratch.spool;
        let (id, _) = committed(spool, b"Subject: x\n\nbody\n");
        let full = |id: &str| spool.read_entry(id).unwrap();
        // Nothing changed: the selection's read, not changed.
        let seen = spool.peek_entry(&id, false).unwrap().expect("peek");
        let (locked, changed) = spool.lock_peeked(seen.clone()).unwrap().expect("lock");
        assert!(!changed);
        assert_eq!(locked.entry.envelope, full(&id).envelope);
        assert_eq!(locked.entry.state, State::default());
        assert_eq!((locked.entry.size, locked.entry.data_offset), {
            let e = full(&id);
            (e.size, e.data_offset)
        });
        // Held while locked: a second run cannot take it.
        assert!(spool.lock_peeked(seen.clone()).unwrap().is_none());
        drop(locked);
        // Another holder recorded a state after the selection (which had looked for
        // none, as its listing named none): found.
        let mut st = State {
            attempts: 1,
            ..State::default()
        };
        st.recipients
            .push((0, RcptState::Deferred, Some("451 later".into())));
        let mut other = spool.lock_entry(&id).unwrap().expect("lock");
        other.record_state(st.clone()).unwrap();
        drop(other);
        let (locked, changed) = spool.lock_peeked(seen.clone()).unwrap().expect("lock");
        assert!(changed);
        assert_eq!(locked.entry.state, st);
        assert!(locked.entry.state_file);
        drop(locked);
        // Read with the state, and nothing since: not changed.
        let seen = spool.peek_entry(&id, true).unwrap().expect("peek");
        assert_eq!(seen.state, st);
        let (locked, changed) = spool.lock_peeked(seen.clone()).unwrap().expect("lock");
        assert!(!changed);
        drop(locked);
        // A journal a dead deliverer's supervisor left: merged, and changed.
        let mut j = spool.open_journal(&id).unwrap();
        j.write_all(entry::journal_line(0, "250 ok").as_bytes())
            .unwrap();
        drop(j);
        let (locked, changed) = spool.lock_peeked(seen.clone()).unwrap().expect("lock");
        assert!(changed);
        assert!(locked.entry.state.of(0).is_final());
        drop(locked);
        // The queue file replaced (a delivery-time expansion): read in full.
        let (id2, _) = committed(spool, b"Subject: y\n\nbody\n");
        let seen2 = spool.peek_entry(&id2, false).unwrap().expect("peek");
        let mut other = spool.lock_entry(&id2).unwrap().expect("lock");
        let mut grown = other.entry.envelope.clone();
        let added = vec![entry::Recipient::new("c@example.org")];
        grown.recipients.extend(added.clone());
        other.rewrite(&grown, &added).unwrap();
        drop(other);
        let (locked, changed) = spool.lock_peeked(seen2.clone()).unwrap().expect("lock");
        assert!(changed);
        assert_eq!(locked.entry.envelope.recipients.len(), 2);
        assert_eq!(locked.entry.envelope, full(&id2).envelope);
        // Finished meanwhile: gone.
        let mut locked = locked;
        locked.remove().unwrap();
        drop(locked);
        assert!(spool.lock_peeked(seen2).unwrap().is_none());
    }

    #[test]
    fn rewrite_appends_recipients_under_the_same_lock() {
        let scratch = ScratchSpool::new("rewrite");
        let spool = &scratch.spool;
        let message = b"Subject: x\n\nbody\n";
        let (id, _) = committed(spool, message);
        let mut locked = spool.lock_entry(&id).unwrap().expect("lock");
        let mut st = State::default();
        st.recipients.push((0, RcptState::Deferred, None));
        locked.record_state(st.clone()).unwrap();
        let old_ino = fs::metadata(spool.qf_path(&id)).unwrap().ino();
        let mut next = locked.entry.envelope.clone();
        next.expansions += 1;
        let added = vec![entry::Recipient::new("c@example.org")];
        next.recipients.extend(added.clone());
        locked.rewrite(&next, &added).unwrap();
        // A new file in place, held by this entry: no other runner takes it.
        assert_ne!(fs::metadata(spool.qf_path(&id)).unwrap().ino(), old_ino);
        assert!(spool.lock_entry(&id).unwrap().is_none());
        assert_eq!(locked.entry.envelope.recipients.len(), 2);
        assert_eq!(locked.entry.envelope.expansions, 1);
        assert_eq!(locked.entry.state, st);
        assert!(fs::read_dir(spool.tmp_dir()).unwrap().next().is_none());
        // The message is the same, its length and sum good, the state file kept.
        let read = spool.read_entry(&id).unwrap();
        assert_eq!(read.envelope.recipients, next.recipients);
        assert_eq!(read.state, st);
        let mut f = read.file.try_clone().unwrap();
        io::Seek::seek(&mut f, io::SeekFrom::Start(read.data_offset)).unwrap();
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        assert_eq!(body, message);
        drop(read);
        drop(locked);
        let again = spool.lock_entry(&id).unwrap().expect("lock after");
        assert_eq!(again.entry.envelope.recipients, next.recipients);
        // The index names the recipient added.
        let listed = index::recipients(spool).unwrap_or_default();
        if !listed.is_empty() {
            assert!(listed.contains(&(id.clone(), "c@example.org".to_string())));
        }
    }

    /// Commit an entry holding `message` (written in pieces, as callers do).
    fn committed(spool: &Spool, message: &[u8]) -> (String, u64) {
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let id = ne.id.clone();
        let e = env(&id);
        ne.writer().write_all(e.to_text().as_bytes()).unwrap();
        for piece in message.chunks(3) {
            ne.writer().write_all(piece).unwrap();
        }
        assert_eq!(ne.commit(&e).unwrap(), message.len() as u64);
        (id, message.len() as u64)
    }

    #[test]
    fn commit_records_the_length() {
        let scratch = ScratchSpool::new("length");
        let spool = &scratch.spool;
        let message = b"Subject: x\n\nbody\n\nmore\n";
        let (id, n) = committed(spool, message);
        let bytes = fs::read(spool.qf_path(&id)).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(&format!(
            "rsendmail-queue 3\nmessage-bytes {:020}\n",
            message.len()
        )));
        assert!(bytes.ends_with(b"\n\nSubject: x\n\nbody\n\nmore\n"));
        let e = spool.read_entry(&id).unwrap();
        assert_eq!(e.envelope.message_bytes, Some(n));
        assert_eq!(e.size - e.data_offset, n);
        assert_eq!(e.size, bytes.len() as u64);
        // An empty message, and one without a final line end, count as well.
        for m in [&b""[..], b"no line end"] {
            let (id, n) = committed(spool, m);
            let e = spool.read_entry(&id).unwrap();
            assert_eq!(
                (e.envelope.message_bytes, e.size - e.data_offset),
                (Some(n), n)
            );
        }
        // Without an envelope section of this version there is nothing to commit.
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let e = env(&ne.id.clone());
        ne.writer().write_all(b"Subject: no envelope\n\n").unwrap();
        assert!(ne.commit(&e).is_err());
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let e = env(&ne.id.clone());
        let v1 = e
            .to_text()
            .replace("rsendmail-queue 3", "rsendmail-queue 1");
        ne.writer().write_all(v1.as_bytes()).unwrap();
        assert!(ne.commit(&e).is_err());
        // An envelope copied from a queued entry (its length already filled in) commits
        // too, and its sum holds when the entry is locked; one byte changed, it does not.
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let id = ne.id.clone();
        let mut e = env(&id);
        e.message_bytes = Some(12345);
        ne.writer().write_all(e.to_text().as_bytes()).unwrap();
        ne.writer().write_all(b"Subject: copied\n\nbody\n").unwrap();
        ne.commit(&e).unwrap();
        assert!(spool.lock_entry(&id).unwrap().is_some());
        let p = spool.qf_path(&id);
        let mut b = fs::read(&p).unwrap();
        if let Some(last) = b.last_mut() {
            *last = b'X';
        }
        fs::write(&p, b).unwrap();
        assert!(matches!(spool.lock_entry(&id), Err(ReadError::Corrupt(_))));
    }

    #[test]
    fn the_sum_covers_every_octet_of_messages_of_any_size() {
        // The sum is checked in pieces of at most 64 KiB, the buffer no larger than the
        // message: empty, small, exactly one piece, and several pieces with a change in
        // the last one, past the first.
        let scratch = ScratchSpool::new("sum-sizes");
        let spool = &scratch.spool;
        for len in [0usize, 1, 2048, 64 * 1024, 64 * 1024 + 1, 200_000] {
            let message: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let (id, _) = committed(spool, &message);
            assert!(spool.lock_entry(&id).unwrap().is_some(), "{len} octets");
            if len == 0 {
                continue;
            }
            let p = spool.qf_path(&id);
            let mut b = fs::read(&p).unwrap();
            let at = b.len() - 1 - len / 3;
            b[at] = if b[at] == b'X' { b'Y' } else { b'X' };
            fs::write(&p, b).unwrap();
            assert!(
                matches!(spool.lock_entry(&id), Err(ReadError::Corrupt(_))),
                "{len} octets, octet {at} changed"
            );
        }
    }

    #[test]
    fn short_or_long_entries_are_corrupt() {
        let scratch = ScratchSpool::new("cut");
        let spool = &scratch.spool;
        let (id, _) = committed(spool, b"Subject: x\n\nline one\nline two\n");
        let whole = fs::read(spool.qf_path(&id)).unwrap();
        let envelope = whole.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("cut by 1", whole[..whole.len() - 1].to_vec()),
            (
                "cut by a line",
                whole[..whole.len() - "line two\n".len()].to_vec(),
            ),
            ("cut by half", whole[..whole.len() / 2].to_vec()),
            ("envelope only", whole[..envelope].to_vec()),
            ("a byte appended", [&whole[..], b"x"].concat()),
            ("a line appended", [&whole[..], b"more\n"].concat()),
            (
                "the message twice",
                [&whole[..], &whole[envelope..]].concat(),
            ),
        ];
        // The length says more than is there, or less.
        let text = String::from_utf8(whole.clone()).unwrap();
        for n in [
            "00000000000000000029",
            "00000000000000000031",
            "18446744073709551615",
        ] {
            let t = text.replacen("00000000000000000030", n, 1);
            assert_ne!(t, text);
            cases.push(("another length", t.into_bytes()));
        }
        for (what, bytes) in cases {
            fs::write(spool.qf_path(&id), &bytes).unwrap();
            match spool.read_entry(&id) {
                Err(ReadError::Corrupt(why)) => assert!(!why.is_empty()),
                other => panic!("{what}: {other:?}"),
            }
            assert!(spool.lock_entry(&id).is_err(), "{what}");
        }
        fs::write(spool.qf_path(&id), &whole).unwrap();
        assert!(spool.read_entry(&id).is_ok());
    }

    #[test]
    fn version_1_entries_read_as_before() {
        let scratch = ScratchSpool::new("v1");
        let spool = &scratch.spool;
        let id = "6AM5eIkR004034";
        let text: String = env(id)
            .to_text()
            .replace("rsendmail-queue 3", "rsendmail-queue 1")
            .lines()
            .filter(|l| !l.starts_with("message-bytes"))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = format!("{text}Subject: old\n\nbody\n");
        fs::write(spool.qf_path(id), &file).unwrap();
        let e = spool.read_entry(id).unwrap();
        assert_eq!(e.envelope.message_bytes, None);
        assert_eq!(e.size, file.len() as u64, "the message runs to the end");
        assert_eq!(
            e.size - e.data_offset,
            "Subject: old\n\nbody\n".len() as u64
        );
    }

    #[test]
    fn dropped_entry_leaves_nothing() {
        let dir = tempdir("drop");
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        let ne = spool.begin(crate::clock::now()).unwrap();
        let tmp = ne.tmp_path().to_path_buf();
        assert!(tmp.exists());
        drop(ne);
        assert!(!tmp.exists());
        assert!(spool.ids().unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn symlinks_and_hard_links_refused() {
        let dir = tempdir("links");
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        let target = dir.join("elsewhere");
        fs::write(&target, env("6AM5eIkR004034").to_text()).unwrap();
        std::os::unix::fs::symlink(&target, spool.qf_path("6AM5eIkR004034")).unwrap();
        assert!(spool.read_entry("6AM5eIkR004034").is_err());
        fs::hard_link(&target, spool.qf_path("6AM5eIkR004035")).unwrap();
        let e = spool.read_entry("6AM5eIkR004035").unwrap_err();
        assert!(e.to_string().contains("one link"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn open_safely_refuses_fifos_symlinks_and_the_wrong_type_without_waiting() {
        let dir = tempdir("safely");
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let file = dir.join("file");
        fs::write(&file, "x").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let dlink = dir.join("dlink");
        std::os::unix::fs::symlink(&dir, &dlink).unwrap();
        let read = || {
            let mut o = OpenOptions::new();
            o.read(true);
            o
        };
        let refused = |r: io::Result<File>, what: &str| {
            let e = r.unwrap_err();
            assert!(is_unsafe(&e), "{e}");
            assert!(e.to_string().contains(what), "{e}");
        };
        refused(open_safely(&fifo, &mut read(), Kind::File), "a FIFO");
        let mut append = OpenOptions::new();
        append.append(true).create(true);
        refused(open_safely(&fifo, &mut append, Kind::File), "a FIFO");
        refused(
            open_safely(&link, &mut read(), Kind::File),
            "a symbolic link",
        );
        refused(open_dir(&dlink), "a symbolic link");
        refused(open_dir(&file), "a regular file");
        refused(open_safely(&dir, &mut read(), Kind::File), "a directory");
        assert!(open_safely(&file, &mut read(), Kind::File).is_ok());
        assert!(open_dir(&dir).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn prepare_and_begin_keeps_every_check() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("prepbegin");
        let outside = tempdir("prepbegin-outside");
        fs::create_dir_all(&outside).unwrap();
        // A configured spool that is not there: refused, nothing made.
        let named = Named::Config {
            at: "rsendmail.conf: line 1".into(),
            keyword: "SPOOLDIR".into(),
        };
        let configured = Spool::new(&dir, true, named);
        let e = configured
            .prepare_and_begin(crate::clock::now())
            .err()
            .unwrap();
        assert_eq!(e.code, Sysexit::Config, "{}", e.message);
        assert!(!dir.exists());
        // The caller's own spool is made, with its sub-directories, and the entry begun
        // in its tmp/.
        let spool = Spool::own(&dir);
        let ne = spool.prepare_and_begin(crate::clock::now()).unwrap();
        assert_eq!(ne.tmp_path().parent(), Some(dir.join("tmp").as_path()));
        assert!(ne.tmp_path().is_file());
        for sub in ["tmp", "index", "corrupt"] {
            assert!(
                fs::symlink_metadata(dir.join(sub)).unwrap().is_dir(),
                "{sub}"
            );
        }
        drop(ne);
        // tmp/ a symlink to a directory elsewhere: moved aside, the entry begun in a
        // fresh tmp/, nothing written through the link.
        fs::remove_dir(dir.join("tmp")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("tmp")).unwrap();
        let ne = spool.prepare_and_begin(crate::clock::now()).unwrap();
        assert!(fs::symlink_metadata(dir.join("tmp")).unwrap().is_dir());
        assert!(ne.tmp_path().is_file());
        drop(ne);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        // A spool, or a sub-directory, everyone may write: refused, naming it.
        let refused = |what: &Path| {
            let e = spool.prepare_and_begin(crate::clock::now()).err().unwrap();
            assert_eq!(e.code, Sysexit::Config, "{}", e.message);
            assert!(
                e.message
                    .contains(&format!("{} (mode 777)", what.display())),
                "{}",
                e.message
            );
        };
        let set = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        set(&dir, 0o777);
        refused(&dir);
        set(&dir, 0o700);
        set(&dir.join("tmp"), 0o777);
        refused(&dir.join("tmp"));
        set(&dir.join("tmp"), 0o700);
        assert!(spool.prepare_and_begin(crate::clock::now()).is_ok());
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&outside);
    }

    #[test]
    fn a_symlink_in_place_of_a_subdirectory_is_moved_aside() {
        let dir = tempdir("subdir");
        let outside = tempdir("subdir-outside");
        fs::create_dir_all(&outside).unwrap();
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        fs::remove_dir(dir.join("tmp")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("tmp")).unwrap();
        assert_eq!(
            spool.subdir_problems().len(),
            1,
            "{:?}",
            spool.subdir_problems()
        );
        spool.prepare().unwrap();
        assert!(fs::symlink_metadata(dir.join("tmp")).unwrap().is_dir());
        assert!(spool.subdir_problems().is_empty());
        // corrupt/ itself a symlink: never moved into, refused.
        fs::remove_dir_all(dir.join("corrupt")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("corrupt")).unwrap();
        fs::write(spool.qf_path("6AM5eIkR004034"), "junk").unwrap();
        assert!(spool.move_corrupt("6AM5eIkR004034").is_err());
        assert!(spool.qf_path("6AM5eIkR004034").exists());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&outside);
    }

    #[test]
    fn leftovers_cleaned_after_grace() {
        let dir = tempdir("clean");
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        let stale = spool.tmp_dir().join("tf6AM5eIkR004034");
        fs::write(&stale, "partial").unwrap();
        let orphan = spool.sf_path("6AM5eIkR004036");
        fs::write(&orphan, "rsendmail-state 1\n").unwrap();
        let now = crate::clock::now();
        // Nobody holds the new entry's file (its submission died): removed, young too.
        let mut removed = spool.clean_leftovers(now, GRACE, true).unwrap();
        removed.sort();
        let mut want = vec![stale.clone(), orphan.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(!stale.exists());
        // Another name (none a submission makes): removed once old.
        let other = spool.tmp_dir().join("xx6AM5eIkR004035");
        fs::write(&other, "partial").unwrap();
        assert!(spool.clean_leftovers(now, GRACE, true).unwrap().is_empty());
        let removed = spool.clean_leftovers(now + GRACE + 5, GRACE, true).unwrap();
        assert_eq!(removed, vec![other]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A submission or a delivery that takes longer than the grace period keeps its
    /// temporary file: a run removes only files nobody holds, whatever their age.
    #[test]
    fn old_temporary_files_still_held_are_kept() {
        let scratch = ScratchSpool::new("held");
        let spool = &scratch.spool;
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let age = |p: &Path| {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        };
        // A submission still writing, two hours on.
        let mut ne = spool.begin(crate::clock::now()).unwrap();
        let id = ne.id.clone();
        let e = env(&id);
        ne.writer().write_all(e.to_text().as_bytes()).unwrap();
        ne.writer().flush().unwrap();
        age(ne.tmp_path());
        let now = crate::clock::now();
        assert!(spool.clean_leftovers(now, GRACE, true).unwrap().is_empty());
        ne.writer().write_all(b"Subject: slow\n\nbody\n").unwrap();
        ne.commit(&e).unwrap();
        // Committed: its delivery lock is free.
        let mut locked = spool
            .lock_entry(&id)
            .unwrap()
            .expect("not held after commit");
        // A delivery's room for its record, while it holds the entry.
        locked.reserve_state(100, false).unwrap();
        let room = spool
            .tmp_dir()
            .join(format!("sf{id}.{}", std::process::id()));
        age(&room);
        assert!(spool.clean_leftovers(now, GRACE, true).unwrap().is_empty());
        assert!(room.exists());
        drop(locked);
        assert!(!room.exists(), "unused room removed with the lock");
        // A state file left by a deliverer that died a moment ago: removed at once (its
        // entry is not held); so is a new entry's file nobody holds; one being written
        // is kept.
        let young_sf = spool.tmp_dir().join(format!("sf{id}.2"));
        let young_tf = spool.tmp_dir().join("tf6AM5eIkR004035");
        fs::write(&young_sf, "room").unwrap();
        fs::write(&young_tf, "partial").unwrap();
        let writing = spool.begin(crate::clock::now()).unwrap();
        let mut removed = spool.clean_leftovers(now, GRACE, true).unwrap();
        removed.sort();
        let mut want = vec![young_sf, young_tf];
        want.sort();
        assert_eq!(removed, want);
        assert!(writing.tmp_path().exists());
        drop(writing);
        // Left by processes that died: removed.
        let dead = spool.tmp_dir().join("tf6AM5eIkR004034");
        let dead_sf = spool.tmp_dir().join(format!("sf{id}.1"));
        for p in [&dead, &dead_sf] {
            fs::write(p, "partial").unwrap();
            age(p);
        }
        let mut removed = spool.clean_leftovers(now, GRACE, true).unwrap();
        removed.sort();
        let mut want = vec![dead_sf, dead];
        want.sort();
        assert_eq!(removed, want);
    }

    #[test]
    fn corrupt_moved_aside() {
        let dir = tempdir("corrupt");
        let spool = Spool::own(&dir);
        spool.prepare().unwrap();
        fs::write(spool.qf_path("6AM5eIkR004034"), "garbage\n\n").unwrap();
        assert!(matches!(
            spool.read_entry("6AM5eIkR004034"),
            Err(ReadError::Corrupt(_))
        ));
        spool.move_corrupt("6AM5eIkR004034").unwrap();
        assert!(spool.ids().unwrap().is_empty());
        assert!(dir.join("corrupt/qf6AM5eIkR004034").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    /// `valid_id` takes exactly the IDs of 14 octets of [`ID_CHARS`], whatever the octet.
    #[test]
    fn valid_ids_are_fourteen_id_chars() {
        let base = *b"0aAaA0A0aaa0aA";
        assert!(valid_id(key_str(&base)));
        for b in 0..=255u8 {
            for at in [0, 7, 13] {
                let mut k = base;
                if let Some(o) = k.get_mut(at) {
                    *o = b;
                }
                let s = String::from_utf8_lossy(&k).into_owned();
                assert_eq!(valid_id(&s), ID_CHARS.contains(&b), "octet {b:#x} at {at}");
            }
        }
        assert!(!valid_id("0aAaA0A0aaa0a") && !valid_id("0aAaA0A0aaa0aAa") && !valid_id(""));
    }

    /// Only a prefix of an entry's file followed by a whole queue ID names one.
    #[test]
    fn entry_files_are_a_prefix_and_an_id() {
        assert_eq!(
            entry_file("kf6AM5eIkR004034"),
            Some(("kf", "6AM5eIkR004034"))
        );
        for p in ENTRY_PREFIXES {
            assert_eq!(
                entry_file(&format!("{p}6AM5eIkR004034")).map(|e| e.0),
                Some(p)
            );
        }
        for name in [
            "qfjunk",
            "notes.txt",
            "qf6AM5eIkR004034.bak",
            "qf6AM5eIkR00403",
            "df6AM5eIkR004034",
            "qf6AM5eIkR00403\u{e9}",
            "",
            "qf",
        ] {
            assert_eq!(entry_file(name), None, "{name:?}");
        }
        assert!(is_spool_name("wakeup") && is_spool_name("sf6AM5eIkR004034"));
        assert!(!is_spool_name("qfjunk") && !is_spool_name("notes.txt"));
    }

    /// `sort_keys` orders keys as sorting their octets does.
    #[test]
    fn keys_sort_as_their_octets() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let mut keys: Vec<IdKey> = (0..200)
                .map(|_| {
                    let mut k = [0u8; 14];
                    for o in k.iter_mut() {
                        // Few octets, so that long common prefixes are frequent.
                        let pick = [b'0', b'A', b'a', b'x', 0, 255].get((rnd() % 6) as usize);
                        *o = pick.copied().unwrap_or_default();
                    }
                    k
                })
                .collect();
            let mut want = keys.clone();
            want.sort_unstable();
            sort_keys(&mut keys);
            assert_eq!(keys, want);
        }
    }
}

//! The queue manager's wake-up endpoint: `SPOOLDIR/wakeup`, a FIFO.
//!
//! A periodic queue runner (`-q<interval>`, the packaged `rsendmail-queue.service`, a
//! `-bd -q<interval>` daemon) holds it open and waits on it; a background-mode submission
//! writes one line to it after its commit point ([`poke`]), and the runner delivers that
//! entry at once instead of at its next interval (`deliver/wake.rs`).
//!
//! A line is the entry argument of a background delivery, `ID[,[+]RID]` (the entry, then
//! the report of recipients refused at submission: see `deliver::runner::deliver_entry`),
//! and a newline: at most [`MAX_LINE`] octets, well under `PIPE_BUF` (512 on every
//! POSIX system), so each line is written whole by one `write(2)` and lines of
//! concurrent writers never mix.
//!
//! Why a FIFO and not a UNIX datagram socket (docs/ARCHITECTURE.md, "The wake-up
//! endpoint"): its permission bits are honoured everywhere (some BSDs ignore them on
//! sockets); "nobody listens" is told at once by `open(2)` (`ENXIO` for a FIFO without a
//! reader), so a FIFO a dead runner left is harmless, whereas a socket a dead runner left
//! must be unlinked and bound again by the next runner, and two runners of one spool (the
//! service and a daemon) would take it from each other; a pipe holds 64 KiB of lines
//! (thousands of pokes) where Linux queues 10 datagrams by default
//! (`net.unix.max_dgram_qlen`). Postfix wakes its `pickup` the same way.
//!
//! A poke never blocks and never fails a submission: a missing endpoint, one without a
//! reader, one that is not a FIFO (a file, a socket, a directory, a symlink) or a full
//! pipe each make [`poke`] return false, and the submission then starts its own
//! background delivery as it would without a runner.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The endpoint's file name in the spool.
pub const NAME: &str = "wakeup";

/// The longest line a poke writes, its newline included (two IDs, a comma and a `+` are
/// 31 octets); a reader drops longer lines.
pub const MAX_LINE: usize = 128;

/// Its mode: written by the spool's group (the submissions), read and written by the
/// runner that made it (its owner); nothing for others.
pub const MODE: u32 = 0o620;

/// `SPOOLDIR/wakeup`.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join(NAME)
}

/// Tell a listening runner that entry `line` (`ID[,[+]RID]`, no newline) is committed.
/// True when the whole line went into a FIFO that a runner holds open; false (and
/// nothing written) when there is no endpoint, no reader, something other than a FIFO
/// or no room in the pipe: the caller then delivers as if no runner existed. Never
/// blocks: the open and the write are non-blocking, and the endpoint is never followed
/// through a symlink.
pub fn poke(spool_dir: &Path, line: &str) -> bool {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    if bytes.len() > MAX_LINE || line.contains('\n') {
        return false;
    }
    let p = path(spool_dir);
    // O_NONBLOCK: a FIFO without a reader fails with ENXIO at once, and the open of
    // anything else never waits. O_NOCTTY: a terminal never becomes ours.
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&p);
    let mut f = match f {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound && e.raw_os_error() != Some(libc::ENXIO) {
                log::debug!("{}: {e}", p.display());
            }
            return false;
        }
    };
    // Only a FIFO is written: a regular file or a device in its place is left as it is.
    match f.metadata() {
        Ok(md) if md.file_type().is_fifo() => {}
        _ => {
            log::debug!("{}: not a FIFO; not used", p.display());
            return false;
        }
    }
    // One write of fewer than PIPE_BUF octets to a non-blocking pipe is all or nothing
    // (EAGAIN when the pipe is full).
    matches!(f.write(&bytes), Ok(n) if n == bytes.len())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::io::Read;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rsm-wake-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_poke_reaches_a_reader_and_fails_without_one() {
        let d = scratch("fifo");
        let p = path(&d);
        assert!(!poke(&d, "X"), "no endpoint");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o620)).unwrap();
        assert!(!poke(&d, "X"), "no reader");
        let mut r = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        assert!(poke(&d, "6AM5eIkR004034"));
        assert!(poke(&d, "6AM5eIkR004035,+6AM5eIkR004036"));
        let mut buf = [0u8; 256];
        let n = r.read(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"6AM5eIkR004034\n6AM5eIkR004035,+6AM5eIkR004036\n".as_slice()
        );
        // A full pipe: the poke fails rather than waits.
        let mut pokes = 0;
        while poke(&d, "6AM5eIkR004034") {
            pokes += 1;
            assert!(pokes < 1_000_000);
        }
        assert!(pokes > 100, "{pokes}");
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn anything_but_a_fifo_is_left_alone() {
        let d = scratch("other");
        let p = path(&d);
        std::fs::write(&p, b"").unwrap();
        assert!(!poke(&d, "X"));
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/null", &p).unwrap();
        assert!(!poke(&d, "X"));
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(!poke(&d, "X"));
        std::fs::remove_dir(&p).unwrap();
        let _sock = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        assert!(!poke(&d, "X"));
        assert!(!poke(&d, &"X".repeat(MAX_LINE)), "too long");
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! Deadlines for reading a TCP connection (RFC 5321 §4.5.3.2): a unit — a reply, a
//! command line, a block of a message — must arrive whole within its timeout, however
//! the peer splits it. A timeout per read would let a peer that sends one byte at a time
//! hold the connection (and what waits on it) for as long as it likes.
//!
//! [`TimedWrite`] and [`PolledWrite`] keep the same kind of deadline on what is written
//! to a peer that may read slowly (a group of replies must be taken whole in time).
//!
//! [`Timed`] keeps a deadline on a TCP connection, for the SMTP client and the SMTP
//! server (`-bd`) alike: before each read it sets the socket's read timeout to the time
//! left. [`Polled`] keeps the same deadline on any other descriptor (`-bs` reads stdin,
//! which may be a pipe, a socket or a terminal): before each read it waits in `poll(2)`
//! for the time left. Once the deadline has passed a read of either fails at once, with
//! the error a socket's own read timeout gives (`EAGAIN`, [`io::ErrorKind::WouldBlock`]),
//! so that everything after it sees what it saw before.
//!
//! A [`Timed`] may also be told to stop ([`Timed::stopped_by`]): while its reader is
//! idle ([`Deadline::idle`]: an SMTP session between transactions) it waits for input in
//! slices of [`STOP_CHECK`] and fails with [`stopped`]'s error once the flag is set.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A timeout as sendmail writes one: `5m`, `30s`, `1h` (under a second, `500ms`).
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What the next reads must keep to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No deadline: the socket's read timeout is left as it is.
    None,
    /// Everything read from now on, until the limit is set again, within this time.
    Whole(Duration),
    /// Each `bytes` read from now on within `timeout` (the deadline moves on by
    /// `timeout` each time a whole block has come).
    Blocks { bytes: usize, timeout: Duration },
}

/// A reader whose reads may be given a [`Limit`]. Readers that never wait on a peer
/// (in-memory input, a file, a pipe given by the caller) keep no deadline.
pub trait Deadline: Read {
    fn limit(&mut self, _limit: Limit) {}
    /// Whether the reader is idle (an SMTP session between transactions: nothing is
    /// lost if it stops here); see [`Timed::stopped_by`]. Ignored by other readers.
    fn idle(&mut self, _idle: bool) {}
}

/// How often an idle [`Timed`] that may be stopped looks at its flag while it waits.
pub const STOP_CHECK: Duration = Duration::from_millis(200);

/// The error of a read that was stopped ([`Timed::stopped_by`]); its text is the reason
/// given there.
#[derive(Debug)]
struct Stopped(&'static str);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Stopped {}

/// The reason given to [`Timed::stopped_by`] when `e` is the error of a read it stopped.
pub fn stopped(e: &io::Error) -> Option<&'static str> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Stopped>())
        .map(|s| s.0)
}

impl Deadline for &[u8] {}
impl Deadline for &std::fs::File {}

/// The deadline a reader keeps: set by [`Limit`], moved on by the bytes read.
#[derive(Debug, Default)]
struct Clock {
    deadline: Option<Instant>,
    /// With [`Limit::Blocks`]: the block size, its timeout, and the bytes of the current
    /// block read so far.
    block: Option<(usize, Duration)>,
    since: usize,
}

impl Clock {
    fn limit(&mut self, limit: Limit) {
        self.since = 0;
        (self.deadline, self.block) = match limit {
            Limit::None => (None, None),
            Limit::Whole(t) => (after(t), None),
            Limit::Blocks { bytes, timeout } => (after(timeout), Some((bytes.max(1), timeout))),
        };
    }

    /// The time left before the next read: `Ok(None)` with no deadline, the timeout
    /// error (`EAGAIN`) once the deadline has passed.
    fn left(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(timed_out())
                } else {
                    Ok(Some(left))
                }
            }
        }
    }

    /// `n` bytes were read (or written): a whole block moves the deadline on.
    fn read(&mut self, n: usize) {
        if let Some((bytes, timeout)) = self.block {
            self.since += n;
            if self.since >= bytes {
                self.since = 0;
                self.deadline = after(timeout);
            }
        }
    }
}

/// The error of a read that did not come within its deadline (`EAGAIN`, as a socket's
/// own read timeout gives it).
fn timed_out() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}

/// A TCP connection whose reads keep to a [`Limit`], and whose writes keep to another
/// ([`Timed::write_limit`]): the SMTP client's commands must be taken by the server
/// within the command's timeout and each block of a message within
/// `Timeout.datablock`, however slowly the server reads.
#[derive(Debug)]
pub struct Timed {
    sock: TcpStream,
    clock: Clock,
    wclock: Clock,
    /// The flag that stops idle reads, and the reason their error gives.
    stop: Option<(&'static std::sync::atomic::AtomicBool, &'static str)>,
    idle: bool,
    /// The read and the write timeout this value last gave the socket (`None`: not
    /// given yet, whatever the socket has).
    rset: Option<Duration>,
    wset: Option<Duration>,
}

/// How far from the time left a socket timeout given earlier may be and still serve a
/// read or write (instead of a `setsockopt(2)` before each one): a read or write that
/// gets nothing ends at most this much before or after its deadline.
pub const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// Whether the socket timeout `set` still serves an operation that must end within
/// `left`: at most [`TIMEOUT_SLACK`] longer or shorter.
fn serves(set: Option<Duration>, left: Duration) -> bool {
    set.is_some_and(|v| v.abs_diff(left) <= TIMEOUT_SLACK)
}

impl Timed {
    /// Reads and writes on `sock` with no deadline until [`Deadline::limit`] and
    /// [`Timed::write_limit`] set one. The socket's timeouts are this value's to set:
    /// nothing else may set them while it is in use.
    pub fn new(sock: TcpStream) -> Timed {
        Timed {
            sock,
            clock: Clock::default(),
            wclock: Clock::default(),
            stop: None,
            idle: false,
            rset: None,
            wset: None,
        }
    }

    /// Reads made while idle ([`Deadline::idle`]) fail with an error [`stopped`] gives
    /// `why` for, within [`STOP_CHECK`] of `flag` being set (before any octet is read);
    /// reads that are not idle are never stopped.
    pub fn stopped_by(
        mut self,
        flag: &'static std::sync::atomic::AtomicBool,
        why: &'static str,
    ) -> Timed {
        self.stop = Some((flag, why));
        self
    }

    /// What the next writes must keep to: [`Limit::Whole`] for a group of commands,
    /// [`Limit::Blocks`] for a message (each block taken within its timeout). Past the
    /// deadline a write fails with `EAGAIN` ([`io::ErrorKind::WouldBlock`]).
    /// [`Limit::None`] leaves the socket's write timeout as it is.
    pub fn write_limit(&mut self, limit: Limit) {
        self.wclock.limit(limit);
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.sock
    }
}

/// `now + d`, or no deadline when that is past what an `Instant` can hold.
fn after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

impl Deadline for Timed {
    fn limit(&mut self, limit: Limit) {
        self.clock.limit(limit);
    }

    fn idle(&mut self, idle: bool) {
        self.idle = idle;
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((flag, why)) = self.stop.filter(|_| self.idle) {
            // Wait for input in slices, looking at the flag between them.
            loop {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(io::Error::other(Stopped(why)));
                }
                let slice = self.clock.left()?.map_or(STOP_CHECK, |l| l.min(STOP_CHECK));
                match poll_within(self.sock.as_fd(), nix::poll::PollFlags::POLLIN, slice) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(left) = self.clock.left()?
            && !serves(self.rset, left)
        {
            // Under a millisecond is rounded up by the socket, never to "no timeout".
            self.rset = None;
            self.sock.set_read_timeout(Some(left))?;
            self.rset = Some(left);
        }
        let n = self.sock.read(buf)?;
        self.clock.read(n);
        Ok(n)
    }
}

/// Any readable descriptor (a pipe, a socket, a terminal, a file) whose reads keep to a
/// [`Limit`]: each read first waits in `poll(2)` for input, at most for the time left.
/// The descriptor's own blocking mode is left as it is (stdin is shared with whoever
/// started us). A descriptor that is always readable (a file, `/dev/null`) never waits.
#[derive(Debug)]
pub struct Polled<R> {
    inner: R,
    clock: Clock,
}

impl<R: Read + AsFd> Polled<R> {
    /// `inner` with no deadline until [`Deadline::limit`] sets one.
    pub fn new(inner: R) -> Polled<R> {
        Polled {
            inner,
            clock: Clock::default(),
        }
    }

    /// Wait until the descriptor is readable (or at its end, or in error: the read says
    /// which) within `left`; the timeout error when it is not.
    fn wait(&self, left: Duration) -> io::Result<()> {
        poll_within(self.inner.as_fd(), nix::poll::PollFlags::POLLIN, left)
    }
}

/// Wait in `poll(2)` until `fd` shows one of `flags` (or an error or hang-up: the next
/// read or write says which) within `left`, through interruptions; the timeout error
/// (`EAGAIN`) when it does not.
fn poll_within(
    fd: std::os::fd::BorrowedFd<'_>,
    flags: nix::poll::PollFlags,
    left: Duration,
) -> io::Result<()> {
    use nix::poll::{PollFd, PollTimeout, poll};
    let end = Instant::now().checked_add(left);
    let mut left = left;
    loop {
        // Whole milliseconds, rounded up (never 0 while time is left: no busy loop).
        let ms = left.as_millis().saturating_add(1);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, timeout) {
            Ok(0) => {}
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
        // Timed out, or interrupted: what is left of the deadline.
        left = match end {
            Some(end) => end.saturating_duration_since(Instant::now()),
            None => left,
        };
        if left.is_zero() {
            return Err(timed_out());
        }
    }
}

impl<R: Read + AsFd> Deadline for Polled<R> {
    fn limit(&mut self, limit: Limit) {
        self.clock.limit(limit);
    }
}

impl<R: Read + AsFd> Read for Polled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.clock.left()? {
            self.wait(left)?;
        }
        let n = self.inner.read(buf)?;
        self.clock.read(n);
        Ok(n)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.wclock.left()?
            && !serves(self.wset, left)
        {
            // Under a millisecond is rounded up by the socket, never to "no timeout".
            self.wset = None;
            self.sock.set_write_timeout(Some(left))?;
            self.wset = Some(left);
        }
        let n = self.sock.write(buf)?;
        self.wclock.read(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// A TCP connection's writing side whose output must be taken by the peer within a
/// timeout: everything written from the first write after a flush until the next flush
/// has completed (a group of replies, RFC 2920) within `timeout`, however slowly the
/// peer reads. A timeout per write call would let a peer that reads a few bytes at a
/// time hold the connection for as long as it likes. Past the deadline a write fails
/// (`EAGAIN`, [`io::ErrorKind::WouldBlock`]) and the bytes not yet taken stay unsent.
#[derive(Debug)]
pub struct TimedWrite {
    sock: TcpStream,
    timeout: Duration,
    deadline: Option<Instant>,
}

impl TimedWrite {
    /// Writes to `sock`; each group of output (up to a flush) must be taken within
    /// `timeout`.
    pub fn new(sock: TcpStream, timeout: Duration) -> TimedWrite {
        TimedWrite {
            sock,
            timeout,
            deadline: None,
        }
    }
}

impl Write for TimedWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.deadline.is_none() {
            self.deadline = after(self.timeout);
        }
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            // Under a millisecond is rounded up by the socket, never to "no timeout".
            self.sock.set_write_timeout(Some(left))?;
        }
        self.sock.write(buf)
    }

    /// Everything written was taken: the next write starts a new deadline.
    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()?;
        self.deadline = None;
        Ok(())
    }
}

/// Any writable descriptor (stdout of `-bs`: a pipe, a socket, a terminal) whose output
/// must be taken within a timeout, as [`TimedWrite`] keeps it on a socket: everything
/// written from the first write after a flush until the next flush within `timeout`.
/// Each write first waits in `poll(2)` for room, at most for the time left, then writes
/// at most [`PolledWrite::CHUNK`] bytes (what a pipe with room takes without blocking).
/// The descriptor's own blocking mode is left as it is (it is shared with whoever
/// started us). Past the deadline a write fails (`EAGAIN`).
#[derive(Debug)]
pub struct PolledWrite<W> {
    inner: W,
    timeout: Duration,
    deadline: Option<Instant>,
}

impl<W: Write + AsFd> PolledWrite<W> {
    /// The most bytes one write passes on: a pipe's atomic write size (`PIPE_BUF` on
    /// Linux), which a pipe that polls writable always has room for.
    pub const CHUNK: usize = 4096;

    /// Writes to `inner`; each group of output (up to a flush) must be taken within
    /// `timeout`.
    pub fn new(inner: W, timeout: Duration) -> PolledWrite<W> {
        PolledWrite {
            inner,
            timeout,
            deadline: None,
        }
    }

    /// Wait until the descriptor takes output (or is in error: the write says which)
    /// before `deadline`; the timeout error when it does not.
    fn wait(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        poll_within(self.inner.as_fd(), nix::poll::PollFlags::POLLOUT, left)
    }
}

impl<W: Write + AsFd> Write for PolledWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.deadline.is_none() {
            self.deadline = after(self.timeout);
        }
        if let Some(deadline) = self.deadline {
            self.wait(deadline)?;
        }
        let n = buf.len().min(Self::CHUNK);
        self.inner.write(buf.get(..n).unwrap_or(buf))
    }

    /// Everything written was taken: the next write starts a new deadline.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        self.deadline = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_socket_timeout_serves_only_within_its_slack() {
        use super::{TIMEOUT_SLACK, serves};
        let s = Duration::from_secs;
        assert!(!serves(None, s(5)));
        assert!(serves(Some(s(5)), s(5)));
        assert!(serves(Some(s(5)), s(5) - TIMEOUT_SLACK));
        // Longer by more than the slack: set again.
        assert!(!serves(
            Some(s(5)),
            s(5) - TIMEOUT_SLACK - Duration::from_millis(1)
        ));
        assert!(serves(Some(s(5)), s(5) + TIMEOUT_SLACK));
        // Shorter than the time left by more than the slack (a later deadline): set again.
        assert!(!serves(Some(s(5)), s(6)));
    }
    use super::*;
    use std::net::TcpListener;

    /// A connected pair: the peer's end, and ours as a [`Timed`].
    fn pair() -> (TcpStream, Timed) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        (peer, Timed::new(ours))
    }

    /// A peer that writes a byte every 50 ms, `n` times, from a thread.
    fn drip(mut peer: TcpStream, n: usize) {
        std::thread::spawn(move || {
            for _ in 0..n {
                if peer.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }

    /// Read `t` until it fails (its end an `UnexpectedEof`): how much came, and the error.
    fn read_until_error(t: &mut impl Read) -> (usize, io::Error) {
        let mut got = 0;
        let mut buf = [0u8; 16];
        loop {
            match t.read(&mut buf) {
                Ok(0) => return (got, io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => got += n,
                Err(e) => return (got, e),
            }
        }
    }

    #[test]
    fn a_whole_limit_ends_a_dripping_peer() {
        let (peer, mut t) = pair();
        drip(peer, 100);
        t.limit(Limit::Whole(Duration::from_millis(400)));
        let start = Instant::now();
        let (got, e) = read_until_error(&mut t);
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(got < 20, "{got}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn blocks_that_keep_coming_move_the_deadline_on() {
        let (peer, mut t) = pair();
        drip(peer, 20);
        // A block of 2 bytes comes every 100 ms, well within 400 ms: all of it is read.
        t.limit(Limit::Blocks {
            bytes: 2,
            timeout: Duration::from_millis(400),
        });
        let (got, e) = read_until_error(&mut t);
        assert_eq!((got, e.kind()), (20, io::ErrorKind::UnexpectedEof));
        // A block of 100 bytes does not come within 400 ms.
        let (peer, mut t) = pair();
        drip(peer, 100);
        t.limit(Limit::Blocks {
            bytes: 100,
            timeout: Duration::from_millis(400),
        });
        let (got, e) = read_until_error(&mut t);
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(got < 20, "{got}");
    }

    /// A pipe whose writer drips a byte every 50 ms, `n` times, from a thread.
    fn dripping_pipe(n: usize) -> Polled<std::io::PipeReader> {
        let (r, mut w) = std::io::pipe().unwrap();
        std::thread::spawn(move || {
            for _ in 0..n {
                if w.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Polled::new(r)
    }

    #[test]
    fn a_polled_pipe_keeps_the_deadlines() {
        // A whole limit ends a dripping writer.
        let mut p = dripping_pipe(100);
        p.limit(Limit::Whole(Duration::from_millis(400)));
        let start = Instant::now();
        let (got, e) = read_until_error(&mut p);
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(got < 20, "{got}");
        assert!(start.elapsed() < Duration::from_secs(2));
        // Blocks that keep coming move the deadline on; the end is the end.
        let mut p = dripping_pipe(20);
        p.limit(Limit::Blocks {
            bytes: 2,
            timeout: Duration::from_millis(400),
        });
        let (got, e) = read_until_error(&mut p);
        assert_eq!((got, e.kind()), (20, io::ErrorKind::UnexpectedEof));
        // No limit: reads wait as the pipe does.
        let mut p = dripping_pipe(3);
        p.limit(Limit::None);
        let (got, e) = read_until_error(&mut p);
        assert_eq!((got, e.kind()), (3, io::ErrorKind::UnexpectedEof));
    }

    /// A peer that reads `chunk` bytes every `every`, until the connection ends; how
    /// many bytes it got in all.
    fn slow_reader(
        mut peer: TcpStream,
        chunk: usize,
        every: Duration,
    ) -> std::thread::JoinHandle<usize> {
        std::thread::spawn(move || {
            let mut got = 0;
            let mut buf = vec![0u8; chunk];
            loop {
                match peer.read(&mut buf) {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got += n,
                }
                std::thread::sleep(every);
            }
        })
    }

    #[test]
    fn output_must_be_taken_whole_within_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        // A peer that reads 1 KiB every 50 ms: every write call makes progress, but the
        // 16 MiB are not taken within 400 ms.
        let reader = slow_reader(peer, 1024, Duration::from_millis(50));
        let mut w = TimedWrite::new(ours, Duration::from_millis(400));
        let start = Instant::now();
        let e = w.write_all(&vec![b'x'; 16 << 20]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        // (The reader still has what the kernel buffered; it is left to end alone.)
        drop(reader);
        // A peer that reads at once takes it all; each flush starts a new deadline.
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        let reader = slow_reader(peer, 64 * 1024, Duration::ZERO);
        let mut w = TimedWrite::new(ours, Duration::from_millis(400));
        for _ in 0..3 {
            w.write_all(&vec![b'x'; 1 << 20]).unwrap();
            w.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        drop(w);
        assert_eq!(reader.join().unwrap(), 3 << 20);
    }

    #[test]
    fn no_limit_reads_as_the_socket_does() {
        let (mut peer, mut t) = pair();
        peer.write_all(b"abc").unwrap();
        drop(peer);
        t.limit(Limit::None);
        let (got, e) = read_until_error(&mut t);
        assert_eq!((got, e.kind()), (3, io::ErrorKind::UnexpectedEof));
    }
}

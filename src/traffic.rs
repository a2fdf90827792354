//! The `-X file` traffic log, in sendmail 8.17's format (recorded:
//! compat-tests/cases/xlog-*): one line per line of traffic, each begun with the process
//! id and a direction —
//!
//! ```text
//! 1234 <<< Subject: hi          a line read: the message on stdin (then `<<< [EOF]`),
//!                               a command or message line a -bs/-bd client sent, or a
//!                               reply line of the server delivery talks to
//! 1234 >>> MAIL From:<a@b>      a line written: a command and the message's lines as
//!                               sent (dot-stuffed, the final `.`), or a reply of -bs/-bd
//! 1234 === CONNECT [127.0.0.1]  delivery connected to a server
//! ```
//!
//! Each line a `-v` delivery shows on standard output is logged as written (`>>> >>>
//! EHLO host`, `>>> 250 ...`, `>>> a@x... Sent (...)`; compat case xlog-v-ok), and the
//! body of a delivery report as it is queued (xlog-reject5), as sendmail logs both.
//!
//! A message saved in `~/dead.letter` is logged too, each line as written there
//! (`>>> From root ...`, the header, the body), and the line that tells the user so,
//! as sendmail logs both (recorded: compat-tests/cases/xlog-bounce-local-odi). So is a
//! message appended to a local mailbox, each line as the `--mbox` deliverer writes it
//! there: the log reaches it as descriptor [`INHERITED_FD`] through its supervisor
//! ([`raw_fd`], [`install_inherited`]; compat-tests/differences/xlog-local-mailbox-odi).
//!
//! The file is opened once per process ([`install`]) and each line appended with one
//! write, so the lines of several processes (a queue run's, a `-bs` session's) do not
//! mix within a line. Credentials sent for AUTH are logged as `(credentials not
//! shown)`, the command and its mechanism kept (`AUTH PLAIN (credentials not shown)`),
//! both those delivery sends and those a `-bs`/`-bd` client sends (the AUTH
//! command's initial response and the lines after it up to the next command:
//! [`redact_command`]). A file created here gets mode 0644 whatever the umask, as sendmail's.

use crate::exit::{Fatal, Sysexit};
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The direction of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `<<<`: read by this process.
    In,
    /// `>>>`: written by this process.
    Out,
    /// `===`: an event (`CONNECT [ip]`).
    Event,
}

impl Dir {
    fn mark(self) -> &'static [u8] {
        match self {
            Dir::In => b"<<<",
            Dir::Out => b">>>",
            Dir::Event => b"===",
        }
    }
}

static LOG: OnceLock<Mutex<File>> = OnceLock::new();

/// Open `path` for appending, creating it with mode 0644 (sendmail's) when it is not
/// there: sendmail's `cannot open FILE: reason`, EX_CANTCREAT, when this process may
/// not.
///
/// No open follows a symbolic link (`O_NOFOLLOW`): a path that leads through links is
/// resolved first, as the kernel resolves it, and the file it leads to is opened by
/// that resolved name, then found, by its open descriptor, to be the file the path
/// led to when it was checked (`-X /dev/stdout` is the terminal or file standard
/// output is; a pipe is refused, as any FIFO). A FIFO, a socket, a directory or a
/// block device is refused (EX_CANTCREAT). A root process writes no file anyone else
/// could change ([`crate::spool::safety::file_risks`]: the file, every directory and
/// link on its path must be root's alone, EX_CONFIG), and, by the open descriptor, only
/// a root-owned file nobody else may write that has no other name (a hard link a user
/// made in a sticky directory to a file of root's is refused); a character device
/// (`/dev/null`, a terminal) is written as it is.
pub fn open(path: &Path) -> Result<File, Fatal> {
    use crate::spool::safety::{Met, Trust, Walk, file_risks, root_process, with_acl_fd};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let fail = |e: io::Error| {
        Fatal::new(
            Sysexit::CantCreat,
            format!(
                "cannot open {}: {}",
                path.display(),
                crate::config::io_text(&e)
            ),
        )
    };
    let cant = |why: String| {
        Fatal::new(
            Sysexit::CantCreat,
            format!("cannot open {}: {why}", path.display()),
        )
    };
    let root = root_process();
    let refused = |why: String| {
        Fatal::new(
            Sysexit::Config,
            format!(
                "cannot open {} (-X) as root: {why}: whoever can change it chooses what root \
                 writes to, so it and every directory above it must be root's alone",
                path.display(),
            ),
        )
    };
    // Root never writes where someone else could have put the file, or could swap it
    // (a directory or link on its path she may change); a device such as /dev/null is
    // taken as it is.
    if root
        && let Some(r) = file_risks(path, &[])
            .into_iter()
            .find(|r| !r.file || r.md.is_file())
    {
        return Err(refused(r.text()));
    }
    // Where the path leads, every link resolved: that name is opened, never a link.
    let mut walk = Walk::new(path);
    let met: Vec<Met> = walk.by_ref().collect();
    let (target, checked) = if walk.complete() {
        let last = met.last().map(|m| (m.md.dev(), m.md.ino()));
        (walk.resolved().to_path_buf(), last)
    } else {
        if let Some(l) = met.last().filter(|m| m.md.file_type().is_symlink()) {
            // A link to nothing a name reaches: a pipe's or a socket's
            // (`/proc/self/fd/1` to `pipe:[N]`), one that leads nowhere, or a loop.
            let to = std::fs::read_link(&l.path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return Err(cant(format!(
                "the symbolic link {} on its path leads to {to}, which is no file it can \
                 open",
                l.path.display()
            )));
        }
        (path.to_path_buf(), None)
    };
    // What the path leads to is refused by its kind before it is opened: opening a FIFO
    // for writing reaches whoever reads it.
    if let Some(m) = met.last().filter(|_| checked.is_some()) {
        let t = m.md.file_type();
        if t.is_fifo() || t.is_socket() || t.is_dir() || t.is_block_device() {
            let what = crate::boundedfile::file_kind(t).unwrap_or("not a file");
            return Err(cant(format!("not a regular file ({what})")));
        }
    }
    // Never waiting on a FIFO (O_NONBLOCK) nor taking a terminal (O_NOCTTY); a FIFO or
    // a socket that opens is refused, as nothing could be appended to it without
    // blocking (a device such as /dev/null is written as it is). O_NOFOLLOW: a link
    // put in the file's place since is not followed.
    let flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    let f = match std::fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(flags)
        .open(&target)
    {
        // The umask took bits away: the mode is set as sendmail's is.
        Ok(f) => {
            f.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(fail)?;
            f
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(flags)
            .open(&target)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => cant(format!(
                    "{} is a symbolic link, which is not followed",
                    target.display()
                )),
                _ => fail(e),
            })?,
        Err(e) => return Err(fail(e)),
    };
    let md = f.metadata().map_err(fail)?;
    let t = md.file_type();
    if t.is_fifo() || t.is_socket() || t.is_dir() || t.is_block_device() {
        let what = crate::boundedfile::file_kind(t).unwrap_or("not a file");
        return Err(cant(format!("not a regular file ({what})")));
    }
    // The file opened is the one the path led to when it was looked at.
    if let Some(was) = checked
        && was != (md.dev(), md.ino())
    {
        return Err(cant(format!(
            "{} was replaced while it was opened",
            target.display()
        )));
    }
    if root {
        // What was opened, by its descriptor: root's alone, and no other name.
        let why = if t.is_file() {
            // Its group bits may be an access ACL's mask: the ACL's writers are named.
            with_acl_fd(std::os::fd::AsFd::as_fd(&f), &md, &Trust::ROOT_ALONE)
                .map(|(_, w)| format!("is {w}"))
        } else {
            None
        };
        let why = why.or_else(|| {
            (md.nlink() > 1).then(|| {
                format!(
                    "has {} names (hard links): one may be where a user put it, to have \
                     root write to a file of root's",
                    md.nlink()
                )
            })
        });
        if let Some(why) = why {
            return Err(refused(format!("the file {} {why}", target.display())));
        }
    }
    Ok(f)
}

/// Log this process's traffic to `file` from now on (the first call wins).
pub fn install(file: File) {
    let _ = LOG.set(Mutex::new(file));
}

/// The descriptor a local delivery's helper processes get the log as (the mailbox
/// deliverer logs what it writes).
pub const INHERITED_FD: std::os::fd::RawFd = 5;

/// The open log's descriptor, to be handed to a helper process as [`INHERITED_FD`].
pub fn raw_fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    LOG.get()
        .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).as_raw_fd())
}

/// Log to the descriptor [`INHERITED_FD`] this process was given by its caller, who
/// said so (an argument): made close-on-exec first, so that nothing this process runs
/// gets it. Nothing when it is not open.
pub fn install_inherited() {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD and F_SETFD on a descriptor number only.
    if unsafe { libc::fcntl(INHERITED_FD, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return;
    }
    // SAFETY: the caller handed this descriptor over for the log (checked open above);
    // nothing else in this process owns it.
    install(unsafe { File::from_raw_fd(INHERITED_FD) });
}

/// A line this program prints for the user on its standard output (`dead.letter...
/// Saved message in ...`): logged as written (`>>>`), as sendmail logs what it writes to
/// its output channel (recorded: `xlog-bounce-local-odi`).
pub fn told(text: &str) {
    for l in text.split('\n') {
        line(Dir::Out, l.as_bytes());
    }
}

/// Where a submission's log is while it reads the message: sendmail checks the command
/// line's addresses before it reads the message and the header's (`-t`) after it, and
/// logs what it says of each then (recorded: compat-tests/cases/xlog-argv-unbal,
/// xlog-t-egrp-nov). rsendmail reads the header before it expands any address, so the
/// lines read are kept back until what the command line's addresses said is logged
/// ([`Intake::argv_said`]), and what is said after that is kept back until the whole
/// message is read (`<<< [EOF]`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No submission is reading: every line is written as it comes.
    Free,
    /// The lines read are kept back.
    Argv,
    /// The lines said are kept back until the input's end.
    Reading,
}

struct Kept {
    phase: Phase,
    lines: Vec<Vec<u8>>,
    /// The input's end was among the lines kept back.
    ended: bool,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    phase: Phase::Free,
    lines: Vec::new(),
    ended: false,
});

/// A submission reading its message (see [`Phase`]); what is kept back is written when it
/// ends, whatever happened.
pub struct Intake(());

impl Intake {
    /// The submission begins: the lines read are kept back from now on.
    pub fn begin() -> Intake {
        if enabled() {
            let mut k = KEPT.lock().unwrap_or_else(|p| p.into_inner());
            k.phase = Phase::Argv;
            k.lines.clear();
            k.ended = false;
        }
        Intake(())
    }

    /// What the command line's addresses said is logged: the lines read so far follow it,
    /// and what is said from now on waits for the input's end.
    pub fn argv_said(&self) {
        let mut k = KEPT.lock().unwrap_or_else(|p| p.into_inner());
        if k.phase == Phase::Argv {
            k.phase = if k.ended { Phase::Free } else { Phase::Reading };
            let kept = std::mem::take(&mut k.lines);
            drop(k);
            kept.iter().for_each(|l| write_line(l));
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        let mut k = KEPT.lock().unwrap_or_else(|p| p.into_inner());
        k.phase = Phase::Free;
        let kept = std::mem::take(&mut k.lines);
        drop(k);
        kept.iter().for_each(|l| write_line(l));
    }
}

/// Write one formatted line, or keep it back while a submission's [`Phase`] says so.
fn write_or_keep(dir: Dir, text: &[u8], l: Vec<u8>) {
    let mut k = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    match (k.phase, dir) {
        (Phase::Argv, Dir::In) | (Phase::Reading, Dir::Out) => {
            k.ended |= dir == Dir::In && text == b"[EOF]";
            k.lines.push(l);
            return;
        }
        (Phase::Reading, Dir::In) if text == b"[EOF]" => {
            k.phase = Phase::Free;
            let kept = std::mem::take(&mut k.lines);
            drop(k);
            write_line(&l);
            kept.iter().for_each(|l| write_line(l));
            return;
        }
        _ => {}
    }
    drop(k);
    write_line(&l);
}

fn write_line(l: &[u8]) {
    let Some(log) = LOG.get() else { return };
    if let Ok(mut f) = log.lock() {
        let _ = f.write_all(l);
    }
}

/// Whether a traffic log is open.
pub fn enabled() -> bool {
    LOG.get().is_some()
}

/// Append one line in direction `dir`: `text` without its LF; a line read keeps its
/// CR, as sendmail logs what it read (`<<< HELO x\r`), a line written does not. A
/// failing write is not the traffic's business: it is ignored.
pub fn line(dir: Dir, text: &[u8]) {
    if LOG.get().is_none() {
        return;
    }
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = match dir {
        Dir::In => text,
        Dir::Out | Dir::Event => text.strip_suffix(b"\r").unwrap_or(text),
    };
    // A reply that echoes hidden credentials hides them too.
    let hidden;
    let text = if dir == Dir::Out {
        hidden = HIDDEN.with(|h| hide(text, &h.borrow()));
        &hidden[..]
    } else {
        text
    };
    let mut l = Vec::with_capacity(text.len() + 16);
    l.extend_from_slice(std::process::id().to_string().as_bytes());
    l.push(b' ');
    l.extend_from_slice(dir.mark());
    l.push(b' ');
    l.extend_from_slice(text);
    l.push(b'\n');
    write_or_keep(dir, text, l);
}

thread_local! {
    /// A `-bs`/`-bd` client sent AUTH and has not sent a command since: the lines it
    /// sends are SASL responses (base64 credentials).
    static IN_AUTH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The credentials hidden from the last command line, hidden from the replies to it
    /// too (a server echoing `500 5.5.1 Command unrecognized: "czNjcmV0"`).
    static HIDDEN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `text` with every occurrence of `secret` (when not empty) shown as `(credentials not
/// shown)`.
fn hide(text: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(secret) {
            out.extend_from_slice(b"(credentials not shown)");
            i += secret.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// The SMTP commands (RFC 5321, 1869, 3207, 4954, 1985 and sendmail's) whose line ends a
/// SASL exchange: anything else after AUTH is a response to it.
const COMMANDS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP",
    "ETRN", "STARTTLS", "AUTH", "VERB", "ONEX", "XVERP",
];

/// What the log shows of a command line an SMTP client sent (`line` with its line end):
/// the line, except that AUTH's arguments after the mechanism and the lines that follow
/// AUTH up to the next command (the SASL responses: user names, passwords, PLAIN
/// blobs) are `(credentials not shown)`, as the client side logs its own.
pub fn redact_command(line: &[u8]) -> Vec<u8> {
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    let (text, eol) = line.split_at(end);
    let word_end = text
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(text.len());
    let verb = String::from_utf8_lossy(&text[..word_end]).to_ascii_uppercase();
    let is_command = COMMANDS.contains(&verb.as_str());
    let mut out = Vec::with_capacity(line.len() + 24);
    HIDDEN.with(|h| h.borrow_mut().clear());
    if verb == "AUTH" {
        IN_AUTH.with(|c| c.set(true));
        let rest = &text[word_end..];
        let rest = rest.trim_ascii_start();
        let mech_end = rest
            .iter()
            .position(|b| *b == b' ' || *b == b'\t')
            .unwrap_or(rest.len());
        out.extend_from_slice(&text[..word_end]);
        if mech_end > 0 {
            out.push(b' ');
            out.extend_from_slice(&rest[..mech_end]);
        }
        let secret = rest.get(mech_end..).unwrap_or_default().trim_ascii();
        if !secret.is_empty() {
            out.extend_from_slice(b" (credentials not shown)");
            HIDDEN.with(|h| *h.borrow_mut() = secret.to_vec());
        }
    } else if is_command || !IN_AUTH.with(|c| c.get()) {
        IN_AUTH.with(|c| c.set(false));
        out.extend_from_slice(text);
    } else {
        out.extend_from_slice(b"(credentials not shown)");
        HIDDEN.with(|h| *h.borrow_mut() = text.trim_ascii().to_vec());
    }
    out.extend_from_slice(eol);
    out
}

/// Bytes of a stream logged line by line as they pass (a line once its LF has).
#[derive(Debug)]
pub struct Lines {
    dir: Dir,
    partial: Vec<u8>,
}

impl Lines {
    pub fn new(dir: Dir) -> Lines {
        Lines {
            dir,
            partial: Vec::new(),
        }
    }

    /// Log the complete lines of `data` (and keep the rest for the next call).
    pub fn feed(&mut self, data: &[u8]) {
        if !enabled() {
            return;
        }
        for piece in data.split_inclusive(|&b| b == b'\n') {
            self.partial.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                line(self.dir, &std::mem::take(&mut self.partial));
            }
        }
    }

    /// Log the line begun and not ended, if any (the stream is at its end).
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            line(self.dir, &std::mem::take(&mut self.partial));
        }
    }
}

/// A reader whose lines are logged as read (`<<<`), and `<<< [EOF]` at its end: the
/// message a submission takes from stdin.
pub struct ReadTee<R> {
    inner: R,
    lines: Lines,
    eof: bool,
}

impl<R> ReadTee<R> {
    pub fn new(inner: R) -> ReadTee<R> {
        ReadTee {
            inner,
            lines: Lines::new(Dir::In),
            eof: false,
        }
    }
}

/// Log the bytes read (each line once it ends); `data` empty is the end of the input.
fn log_read(lines: &mut Lines, eof: &mut bool, data: &[u8]) {
    if data.is_empty() {
        if !*eof {
            *eof = true;
            lines.finish();
            line(Dir::In, b"[EOF]");
        }
        return;
    }
    lines.feed(data);
}

impl<R: Read> Read for ReadTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(got) = buf.get(..n) {
            log_read(&mut self.lines, &mut self.eof, got);
        }
        Ok(n)
    }
}

/// Bytes are logged as they are consumed (what the reader took), the end when the
/// input has no more.
impl<R: BufRead> BufRead for ReadTee<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let b = self.inner.fill_buf()?;
        if b.is_empty() {
            log_read(&mut self.lines, &mut self.eof, b);
        }
        Ok(b)
    }

    fn consume(&mut self, amt: usize) {
        if amt > 0 {
            // The caller has just seen these bytes: the buffer is filled, no read waits.
            if let Ok(b) = self.inner.fill_buf() {
                let taken = b.get(..amt).unwrap_or(b);
                log_read(&mut self.lines, &mut self.eof, taken);
            }
        }
        self.inner.consume(amt);
    }
}

/// A writer whose lines are logged as written (`>>>`): the message as a client sends it.
pub struct WriteTee<W> {
    inner: W,
    lines: Lines,
}

impl<W> WriteTee<W> {
    pub fn new(inner: W) -> WriteTee<W> {
        WriteTee {
            inner,
            lines: Lines::new(Dir::Out),
        }
    }
}

impl<W: Write> Write for WriteTee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(done) = buf.get(..n) {
            self.lines.feed(done);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_0644_whatever_the_umask_and_an_old_one_keeps_its_mode() {
        let dir = std::env::temp_dir().join(format!("rsendmail-xlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let p = dir.join("x");
        drop(open(&p).unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        drop(open(&p).unwrap());
        let kept = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        nix::sys::stat::umask(old);
        assert_eq!(mode, 0o644);
        assert_eq!(kept, 0o600);
        let e = open(&dir.join("no/such")).unwrap_err();
        assert_eq!(e.code, Sysexit::CantCreat);
        assert!(e.message.starts_with("cannot open "), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn auth_credentials_from_a_client_are_hidden() {
        let r = |l: &str| String::from_utf8(redact_command(l.as_bytes())).unwrap();
        assert_eq!(r("EHLO c\r\n"), "EHLO c\r\n");
        assert_eq!(
            r("AUTH PLAIN YWxpY2UAYWxpY2UAczNjcmV0\r\n"),
            "AUTH PLAIN (credentials not shown)\r\n"
        );
        assert_eq!(r("auth login\r\n"), "auth login\r\n");
        assert_eq!(r("YWxpY2U=\r\n"), "(credentials not shown)\r\n");
        assert_eq!(
            HIDDEN.with(|h| hide(b"500 unrecognized: \"YWxpY2U=\"", &h.borrow())),
            b"500 unrecognized: \"(credentials not shown)\""
        );
        assert_eq!(r("czNjcmV0\r\n"), "(credentials not shown)\r\n");
        assert_eq!(r("NOOP\r\n"), "NOOP\r\n");
        assert_eq!(r("YWxpY2U=\r\n"), "YWxpY2U=\r\n");
    }
}

//! Appending a message to an mbox file: the `From ` line, mboxrd quoting, and an append
//! that is all or nothing.
//!
//! Format (mboxrd, what mutt, mailx and Python's `mailbox` read):
//! ```text
//! From sender@example.org Sun Nov 22 05:31:07 2026
//! Return-Path: <sender@example.org>
//! Delivered-To: bob@host.example
//! ...the message, each line matching ^>*From  given one more '>'...
//!                                       (a final newline added when missing)
//! (blank line)
//! ```
//! Locking: an fcntl write lock on the mailbox and a `<mailbox>.lock` dotlock together,
//! each waited for up to a bound; a dotlock older than [`STALE_DOTLOCK`] is removed (as
//! mutt and liblockfile do). When the directory does not let us create the dotlock (a
//! user's own mailbox in a sticky /var/mail without the mail group) only fcntl is used.
//! The append records the size first, writes, fsyncs, and on any failure truncates the
//! file back, so a failed delivery never leaves a partial message.
//!
//! Lines are written as queued, whatever their length: an mbox has no line limit (nor
//! has sendmail's local mailer one), so the SMTP rules of [`crate::message::wire`]
//! (998 octets, header folding) do not apply here.
//!
//! Any octets are a message: lines are read through `get`, never by index (the lints
//! below keep it so), so no message makes the append panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A dotlock this old is taken to be left over from a crash.
pub const STALE_DOTLOCK: Duration = Duration::from_secs(300);

/// The `From ` line (with its newline) for a message from `sender` (empty: the null
/// sender, written MAILER-DAEMON) received at `t`.
pub fn from_line(sender: &str, t: i64) -> String {
    let who = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    format!(
        "From {} {}\n",
        who.replace([' ', '\t'], "_"),
        crate::clock::ctime(&crate::clock::local(t))
    )
}

/// One mbox message: the `From ` line, `Return-Path:`, `extra_headers` (whole lines),
/// the message quoted, and the blank line that ends it.
pub fn write_message(
    w: &mut dyn Write,
    sender: &str,
    t: i64,
    extra_headers: &str,
    message: &mut dyn io::Read,
) -> io::Result<()> {
    w.write_all(from_line(sender, t).as_bytes())?;
    w.write_all(format!("Return-Path: <{sender}>\n{extra_headers}").as_bytes())?;
    copy_quoted(io::BufReader::new(message), w)?;
    w.write_all(b"\n")
}

/// Copy a message with mboxrd quoting; a missing final newline is added. Returns the
/// bytes written.
pub fn copy_quoted<R: BufRead, W: Write + ?Sized>(mut r: R, w: &mut W) -> io::Result<u64> {
    let mut line = Vec::with_capacity(1024);
    let mut n = 0u64;
    let mut last_nl = true;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let body = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if line.get(body..).is_some_and(|l| l.starts_with(b"From ")) {
            w.write_all(b">")?;
            n += 1;
        }
        w.write_all(&line)?;
        n += line.len() as u64;
        last_nl = line.ends_with(b"\n");
    }
    if !last_nl {
        w.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// Why an append did not happen. Every kind leaves the file as it was.
#[derive(Debug)]
pub enum AppendError {
    /// A lock was not obtained within the bound: try again later.
    Locked(String),
    /// The mailbox is not safe to write (a symlink, hard-linked, another's): refused.
    Unsafe(String),
    /// An I/O error: try again later.
    Io(String),
    /// No room for the message: a full file system, a quota, the file-size limit
    /// (ENOSPC, EDQUOT, EFBIG): try again later.
    Full(String),
    /// The file cannot be opened or created at all: its directory is missing or not a
    /// directory (ENOENT, ENOTDIR), no right to it (EACCES, EPERM, EROFS), or it is a
    /// directory (EISDIR). sendmail's `Can't create output`, for good for a file
    /// target.
    CantCreate(String),
    /// Not to be written after all: the caller's look once every lock was held
    /// ([`append_when_ready`]) said no. Nothing was written.
    Withheld(String),
}

/// Whether an error opening or creating a file is one that waiting does not mend
/// (see [`AppendError::CantCreate`]).
fn cannot_create(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOENT | libc::ENOTDIR | libc::EACCES | libc::EPERM | libc::EROFS | libc::EISDIR
        )
    )
}

impl AppendError {
    pub fn text(&self) -> &str {
        match self {
            AppendError::Locked(s)
            | AppendError::Unsafe(s)
            | AppendError::Io(s)
            | AppendError::Full(s)
            | AppendError::CantCreate(s)
            | AppendError::Withheld(s) => s,
        }
    }
}

/// How to open the file.
pub struct Target<'a> {
    pub path: &'a Path,
    /// The uid the file must belong to (a mailbox: its user); None for any owner.
    pub owner: Option<u32>,
    /// How long to wait for each lock.
    pub lock_wait: Duration,
    /// Use a dotlock beside the file.
    pub dotlock: bool,
}

/// A held dotlock, removed on drop.
pub struct DotLock(Option<PathBuf>);

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Take `<path>.lock`, waiting up to `wait`; a stale one is removed. Where the directory
/// does not let us create it, no dotlock is taken (fcntl still is).
pub fn dotlock(path: &Path, wait: Duration) -> Result<DotLock, AppendError> {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let start = Instant::now();
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock)
        {
            Ok(_) => return Ok(DotLock(Some(lock))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if let Ok(md) = std::fs::symlink_metadata(&lock) {
                    let age = crate::clock::now() - md.mtime();
                    if age > STALE_DOTLOCK.as_secs() as i64 {
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                }
            }
            // No right to create it (a user's own mailbox in /var/mail): fcntl alone.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(DotLock(None)),
            // No directory to put it in: the file itself cannot be created either.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Err(AppendError::CantCreate(format!(
                    "cannot create {}: {}",
                    path.display(),
                    crate::config::io_text(&e)
                )));
            }
            Err(e) => {
                return Err(AppendError::Io(format!(
                    "cannot create {}: {}",
                    lock.display(),
                    crate::config::io_text(&e)
                )));
            }
        }
        if start.elapsed() >= wait {
            // Held by another delivery to it, a mail reader, or left by a process that
            // died (then removed once older than [`STALE_DOTLOCK`]): which, we cannot tell.
            return Err(AppendError::Locked(format!(
                "{} is locked by another process ({})",
                path.display(),
                lock.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fcntl_lock(f: &File, path: &Path, wait: Duration) -> Result<(), AppendError> {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    loop {
        // SAFETY: a plain struct flock for F_SETLK on an open descriptor.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EAGAIN) | Some(libc::EACCES) | Some(libc::EINTR)
        ) {
            return Err(AppendError::Io(format!(
                "cannot lock {}: {}",
                path.display(),
                crate::config::io_text(&e)
            )));
        }
        if start.elapsed() >= wait {
            return Err(AppendError::Locked(format!(
                "{} is locked by another process (fcntl)",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Create a missing mailbox with mode 0600 for `uid`/`gid` (a root deliverer does this,
/// since users may not create files in the mail spool). An existing one is left alone.
pub fn create_mailbox(path: &Path, uid: u32, gid: u32) -> Result<(), AppendError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => {
            use std::os::fd::AsFd;
            nix::unistd::fchown(
                f.as_fd(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| AppendError::Io(format!("cannot chown {}: {e}", path.display())))?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AppendError::Io(format!(
            "cannot create {}: {}",
            path.display(),
            crate::config::io_text(&e)
        ))),
    }
}

/// Open for appending, not following a symbolic link; `create`: only a new file, 0600.
fn open_append(path: &Path, create: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY);
    if create {
        o.create_new(true).mode(0o600);
    }
    o.open(path)
}

/// Open (creating with mode 0600 when missing) and check the file.
fn open_checked(t: &Target<'_>) -> Result<File, AppendError> {
    let unsafe_file = |why: &str| AppendError::Unsafe(format!("{why}: {}", t.path.display()));
    let io_error = |what: &str, e: &io::Error| {
        let text = format!("{what} {}: {}", t.path.display(), crate::config::io_text(e));
        if cannot_create(e) {
            AppendError::CantCreate(text)
        } else {
            AppendError::Io(text)
        }
    };
    // What is at the path is looked at before it is opened: a FIFO (an open waits for a
    // reader, or reaches one), a device (an open can act), a socket or a symbolic link
    // is refused by its kind, never opened (a directory's open fails, `Is a
    // directory`, and does nothing). The file opened must be the one looked at.
    let looked = match std::fs::symlink_metadata(t.path) {
        Ok(md) if md.file_type().is_symlink() => {
            return Err(unsafe_file("refused, a symbolic link"));
        }
        Ok(md) if !md.file_type().is_file() && !md.is_dir() => {
            return Err(unsafe_file(&format!(
                "refused, {}, not a regular file",
                crate::spool::safety::kind_of(&md.file_type())
            )));
        }
        Ok(md) => Some((md.dev(), md.ino())),
        Err(_) => None,
    };
    let f = match open_append(t.path, false) {
        Ok(f) => f,
        // Missing: create it; if someone else just did, open theirs.
        Err(e) if e.kind() == io::ErrorKind::NotFound => open_append(t.path, true)
            .or_else(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    open_append(t.path, false)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| io_error("cannot create", &e))?,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_file("refused, a symbolic link"));
        }
        Err(e) => return Err(io_error("cannot open", &e)),
    };
    let md = f
        .metadata()
        .map_err(|e| AppendError::Io(format!("{}: {e}", t.path.display())))?;
    if !md.file_type().is_file() {
        return Err(unsafe_file(&format!(
            "refused, {}, not a regular file",
            crate::spool::safety::kind_of(&md.file_type())
        )));
    }
    if looked.is_some_and(|was| was != (md.dev(), md.ino())) {
        return Err(unsafe_file("refused, replaced while it was opened"));
    }
    if md.nlink() > 1 {
        return Err(unsafe_file("refused, more than one link"));
    }
    if let Some(uid) = t.owner
        && md.uid() != uid
    {
        return Err(unsafe_file(&format!(
            "refused, owned by uid {} not {uid}",
            md.uid()
        )));
    }
    Ok(f)
}

/// Append what `write` produces to the file, all or nothing, once `ready`, asked when
/// every lock is held and the file checked, before the first byte is written, says so:
/// its error is returned, the file left untouched and the locks let go. A delivery looks
/// there at what was asked of its message while it waited for the locks (a deletion:
/// nothing is written). Returns the bytes appended.
pub fn append_when_ready(
    t: &Target<'_>,
    ready: &mut dyn FnMut() -> Result<(), AppendError>,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, AppendError> {
    append_unless_last(t, None, Some(ready), write)
}

/// Append `text` to the file, all or nothing, unless the file already ends with it (a
/// process that wrote it was killed before it could record so, and this one repeats
/// its step). Returns the bytes appended: 0 when it was there.
pub fn append_once(t: &Target<'_>, text: &[u8]) -> Result<u64, AppendError> {
    append_unless_last(t, Some(text), None, &mut |w| w.write_all(text))
}

/// Whether `f`, of `len` octets, ends with `text` (read back in pieces, through a
/// descriptor of the same open file that may read: `f` only appends).
fn ends_with(f: &File, len: u64, text: &[u8]) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let n = text.len() as u64;
    if text.is_empty() || len < n {
        return Ok(false);
    }
    let f = &File::open(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let mut buf = vec![0u8; text.len().min(64 * 1024)];
    let mut at = len - n;
    for want in text.chunks(buf.len()) {
        let got = buf.get_mut(..want.len()).unwrap_or_default();
        f.read_exact_at(got, at)?;
        if got != want {
            return Ok(false);
        }
        at += want.len() as u64;
    }
    Ok(true)
}

/// [`append_when_ready`] (`ready` None: at once), or nothing when `last` is given and
/// the file already ends with it.
fn append_unless_last(
    t: &Target<'_>,
    last: Option<&[u8]>,
    ready: Option<&mut dyn FnMut() -> Result<(), AppendError>>,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, AppendError> {
    let _dot = if t.dotlock {
        Some(dotlock(t.path, t.lock_wait)?)
    } else {
        None
    };
    let f = open_checked(t)?;
    fcntl_lock(&f, t.path, t.lock_wait)?;
    // The lock is held: nobody else appends now, so the size is where we start.
    let start = f
        .metadata()
        .map_err(|e| AppendError::Io(format!("{}: {e}", t.path.display())))?
        .len();
    let io_err = |what: &str, e: &io::Error| {
        AppendError::Io(format!(
            "{what} {}: {}",
            t.path.display(),
            crate::config::io_text(e)
        ))
    };
    // Not read back (the open for reading refused): appended, as before this check.
    if let Some(text) = last
        && ends_with(&f, start, text).unwrap_or(false)
    {
        return Ok(0);
    }
    if let Some(ready) = ready {
        ready()?;
    }
    let result = (|| -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, &f);
        write(&mut w)?;
        w.flush()?;
        drop(w);
        f.sync_all()
    })();
    match result {
        Ok(()) => {
            let end = f.metadata().map(|m| m.len()).unwrap_or(start);
            Ok(end - start)
        }
        Err(e) => {
            // Take back whatever part was written, and make that durable too.
            // Shrinking is allowed past a file-size limit, so this works after EFBIG.
            let _ = f.set_len(start);
            let _ = f.sync_all();
            let failed = io_err("cannot write", &e);
            if crate::exit::is_no_space(Some(e.kind())) {
                Err(AppendError::Full(failed.text().to_string()))
            } else {
                Err(failed)
            }
        }
    }
}

/// The real user's `dead.letter`: in the home directory the password entry names (not
/// `$HOME`, as in sendmail), or None when the user has no entry.
pub fn dead_letter_path() -> Option<PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.dir.join("dead.letter"))
}

/// The line that tells the user `dead.letter` could not be written (`why`), and what
/// became of the message instead (`then`). None when the user's home directory does not
/// exist (`nobody`'s `/nonexistent`): such a user keeps no `dead.letter`, and the
/// message is mailed back without a word, as sendmail mails it (recorded:
/// `z-dl-user-nobody`, `z-dl-user-nobody-t`).
pub fn dead_letter_failed(why: &str, then: &str) -> Option<String> {
    let p = dead_letter_path();
    if let Some(home) = p.as_deref().and_then(Path::parent)
        && std::fs::symlink_metadata(home).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
    {
        return None;
    }
    let p = p.unwrap_or_else(|| PathBuf::from("~/dead.letter"));
    let p = p.display();
    Some(format!("{p}... Cannot save message: {why}; {then}"))
}

/// The header block of `message` (read up to and with its empty line, or to its end),
/// each field that is the first of a pair in `taken` (the whole field, continuation
/// lines included) written as the second. The reader is left at the body.
pub fn header_as_taken<R: BufRead>(
    message: &mut R,
    taken: &[(String, String)],
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let flush = |field: &mut Vec<u8>, out: &mut Vec<u8>| {
        let replaced = taken
            .iter()
            .find(|(queued, _)| queued.as_bytes() == field.as_slice())
            .map(|(_, t)| t.as_bytes());
        out.extend_from_slice(replaced.unwrap_or(field.as_slice()));
        field.clear();
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if message.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let continued = matches!(line.first(), Some(b' ' | b'\t'));
        if continued && !field.is_empty() {
            field.extend_from_slice(&line);
            continue;
        }
        flush(&mut field, &mut out);
        if line == b"\n" {
            out.extend_from_slice(&line);
            return Ok(out);
        }
        field.extend_from_slice(&line);
    }
    flush(&mut field, &mut out);
    Ok(out)
}

/// Append a message (header block and body) to the real user's `~/dead.letter` in mbox
/// format, as sendmail saves what it could not deliver in ErrorMode p. A new file is
/// made 0600 with the user's own group (not a set-id program's). Returns its path.
/// `taken`: header fields as queued and as taken in (`Envelope::taken_fields`): the copy
/// has them as taken, unqualified, as sendmail's has (it qualifies addresses only in
/// what it relays; recorded: compat-tests/cases/xlog-bounce-local-odi, xlog-dead-letter-fields-odi).
pub fn save_dead_letter(
    sender: &str,
    created: i64,
    taken: &[(String, String)],
    message: &mut dyn std::io::Read,
) -> Result<PathBuf, String> {
    let uid = nix::unistd::getuid();
    let path = dead_letter_path().ok_or("no home directory")?;
    // A new file gets the user's own group, not a set-id program's; an existing one is
    // checked by the append (owner, links).
    let _ = create_mailbox(&path, uid.as_raw(), nix::unistd::getgid().as_raw());
    let target = Target {
        path: &path,
        owner: Some(uid.as_raw()),
        lock_wait: Duration::from_secs(10),
        dotlock: false,
    };
    // Logged as written, in the traffic log of `-X`, as sendmail logs it.
    let text = dead_letter_text(sender, created, taken, message, true)
        .map_err(|e| crate::config::io_text(&e))?;
    // Saved once: a delivery killed after the save and before its record is made again
    // by the next run, which finds the same text (the same From_ line, the same queue
    // ID in its Received field) at the file's end.
    append_once(&target, &text).map_err(|e| e.text().to_string())?;
    Ok(path)
}

/// The octets [`save_dead_letter`] appends for this message (`logged`: as it writes
/// them, in the traffic log of `-X`).
fn dead_letter_text(
    sender: &str,
    created: i64,
    taken: &[(String, String)],
    message: &mut dyn std::io::Read,
    logged: bool,
) -> io::Result<Vec<u8>> {
    let mut message = io::BufReader::new(message);
    let mut text = Vec::new();
    {
        let mut tee;
        let out: &mut dyn Write = if logged {
            tee = crate::traffic::WriteTee::new(&mut text);
            &mut tee
        } else {
            &mut text
        };
        if taken.is_empty() {
            write_message(out, sender, created, "", &mut message)?;
        } else {
            let head = header_as_taken(&mut message, taken)?;
            write_message(
                out,
                sender,
                created,
                "",
                &mut io::Read::chain(io::Cursor::new(head), &mut message),
            )?;
        }
    }
    Ok(text)
}

/// Whether `path` (a `~/dead.letter` [`save_dead_letter`] wrote) ends with this
/// message as it saves it: a delivery killed after the save and before its record
/// made it (`false` when it cannot be read: the delivery is then made again, and its
/// save appends nothing when it finds the message there). Only a regular file named
/// `dead.letter` is read, never through a symbolic link (the path comes from a state
/// file, which the spool's group may write).
pub fn dead_letter_holds(
    path: &Path,
    sender: &str,
    created: i64,
    taken: &[(String, String)],
    message: &mut dyn std::io::Read,
) -> bool {
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.file_name() != Some(std::ffi::OsStr::new("dead.letter")) || !path.is_absolute() {
        return false;
    }
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let Ok(md) = f.metadata() else {
        return false;
    };
    if !md.is_file() {
        return false;
    }
    dead_letter_text(sender, created, taken, message, false)
        .and_then(|text| ends_with(&f, md.len(), &text))
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    /// [`append_when_ready`] with nothing to wait for.
    fn append(
        t: &Target<'_>,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<u64, AppendError> {
        append_when_ready(t, &mut || Ok(()), write)
    }

    #[test]
    fn quoting_is_mboxrd() {
        let mut out = Vec::new();
        let n = copy_quoted(
            &b"Subject: x\n\nFrom here\n>From there\nFrom\nnot From \nlast"[..],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "Subject: x\n\n>From here\n>>From there\nFrom\nnot From \nlast\n"
        );
        assert_eq!(n, out.len() as u64);
    }

    #[test]
    fn header_as_taken_replaces_whole_fields_only() {
        let taken = vec![
            (
                "From: root <root@h>\n".to_string(),
                "From: root <root>\n".to_string(),
            ),
            ("To: a@h,\n\tb@h\n".to_string(), "To: a,\n\tb\n".to_string()),
        ];
        let msg = b"Date: x\nFrom: root <root@h>\nTo: a@h,\n\tb@h\nCc: a@h\nX: From: root <root@h>\n\nFrom: root <root@h>\n";
        let mut r = &msg[..];
        let head = header_as_taken(&mut r, &taken).unwrap();
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "Date: x\nFrom: root <root>\nTo: a,\n\tb\nCc: a@h\nX: From: root <root@h>\n\n"
        );
        // The body is left to the reader, untouched.
        assert_eq!(r, b"From: root <root@h>\n");
        // A field cut by the message's end is still looked at.
        let mut r = &b"From: root <root@h>\n"[..];
        assert_eq!(
            header_as_taken(&mut r, &taken).unwrap(),
            b"From: root <root>\n"
        );
    }

    #[test]
    fn from_line_names_the_null_sender() {
        let l = from_line("", 0);
        assert!(l.starts_with("From MAILER-DAEMON "), "{l}");
        assert!(l.ends_with("\n"));
        assert!(from_line("a b@x", 0).starts_with("From a_b@x "));
    }

    /// A new, empty scratch directory for this test process (`rsendmail-NAME-PID`).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rsendmail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The mailbox `path`, no owner to give it, locks waited for 200 ms.
    fn target(path: &Path, dotlock: bool) -> Target<'_> {
        Target {
            path,
            owner: None,
            lock_wait: Duration::from_millis(200),
            dotlock,
        }
    }

    /// A text the file already ends with is not appended again; any other is, and so is
    /// the same text after something else.
    #[test]
    fn append_once_appends_a_repeat_once() {
        let dir = scratch("once");
        let mbox = dir.join("dead.letter");
        let t = target(&mbox, false);
        let mut a = Vec::new();
        write_message(&mut a, "alice", 1, "", &mut &b"Subject: a\n\nbody\n"[..]).unwrap();
        // Longer than one piece read back.
        let b = [b"From b\n\n".as_slice(), &vec![b'x'; 200_000], b"\n\n"].concat();
        assert_eq!(append_once(&t, &a).unwrap(), a.len() as u64);
        assert_eq!(append_once(&t, &a).unwrap(), 0);
        assert_eq!(append_once(&t, &b).unwrap(), b.len() as u64);
        assert_eq!(append_once(&t, &b).unwrap(), 0);
        assert_eq!(append_once(&t, &a).unwrap(), a.len() as u64);
        let text = std::fs::read(&mbox).unwrap();
        assert_eq!(text, [a.clone(), b, a].concat());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `ready` is asked with the locks held (the dotlock is there) and before anything
    /// is written: its refusal writes nothing and lets the locks go; its consent
    /// appends.
    #[test]
    fn append_when_ready_asks_with_the_locks_held_and_writes_nothing_on_a_no() {
        let dir = scratch("ready");
        let mbox = dir.join("bob");
        let t = target(&mbox, true);
        std::fs::write(&mbox, "From a\n\nold\n\n").unwrap();
        let lock = dir.join("bob.lock");
        let mut asked = 0;
        let mut wrote = false;
        let r = append_when_ready(
            &t,
            &mut || {
                asked += 1;
                assert!(lock.exists());
                Err(AppendError::Withheld("no".into()))
            },
            &mut |w| {
                wrote = true;
                w.write_all(b"x")
            },
        );
        assert!(matches!(r, Err(AppendError::Withheld(_))), "{r:?}");
        assert_eq!(asked, 1);
        assert!(!wrote);
        assert_eq!(std::fs::read(&mbox).unwrap(), b"From a\n\nold\n\n");
        assert!(!lock.exists());
        let n = append_when_ready(&t, &mut || Ok(()), &mut |w| {
            w.write_all(b"From b\n\nhi\n\n")
        })
        .unwrap();
        assert_eq!(n, 12);
        assert_eq!(
            std::fs::read(&mbox).unwrap(),
            b"From a\n\nold\n\nFrom b\n\nhi\n\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run that finds a save's key looks for the message at the end of the file, as
    /// the save writes it; only a regular file named dead.letter, never a link.
    #[test]
    fn dead_letter_holds_the_message_only_at_its_end() {
        let dir = std::env::temp_dir().join(format!("rsendmail-dl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dl = dir.join("dead.letter");
        let msg = b"Subject: x\n\nFrom here\nhello\n";
        let text = dead_letter_text("a@h", 1_700_000_000, &[], &mut &msg[..], false).unwrap();
        let holds = |p: &Path| dead_letter_holds(p, "a@h", 1_700_000_000, &[], &mut &msg[..]);
        assert!(!holds(&dl));
        std::fs::write(&dl, [b"From x\n\nold\n\n".to_vec(), text.clone()].concat()).unwrap();
        assert!(holds(&dl));
        // Another sender or time is another save.
        assert!(!dead_letter_holds(
            &dl,
            "b@h",
            1_700_000_000,
            &[],
            &mut &msg[..]
        ));
        // Something saved after it: not at the end.
        std::fs::write(&dl, [text.clone(), b"From y\n\nnew\n\n".to_vec()].concat()).unwrap();
        assert!(!holds(&dl));
        // Another name, a relative path, a symbolic link: never read.
        let other = dir.join("other");
        std::fs::write(&other, &text).unwrap();
        assert!(!holds(&other));
        std::fs::write(&dl, &text).unwrap();
        assert!(holds(&dl));
        let sub = dir.join("l");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::symlink(&dl, sub.join("dead.letter")).unwrap();
        assert!(!holds(&sub.join("dead.letter")));
        assert!(!holds(Path::new("dead.letter")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn append_refuses_symlinks_and_takes_back_failures() {
        let dir = scratch("mbox");
        let mbox = dir.join("bob");
        let t = target(&mbox, true);
        let n = append(&t, &mut |w| w.write_all(b"From a\n\nhi\n\n")).unwrap();
        assert_eq!(n, 12);
        // A failing writer leaves the file as it was.
        let r = append(&t, &mut |w| {
            w.write_all(b"From b\n\npartial")?;
            w.flush()?;
            Err(io::Error::other("disk full"))
        });
        assert!(matches!(r, Err(AppendError::Io(_))));
        assert_eq!(std::fs::metadata(&mbox).unwrap().len(), 12);
        assert!(!dir.join("bob.lock").exists());
        // A dotlock held by someone else: waited for, then given up.
        std::fs::write(dir.join("bob.lock"), "").unwrap();
        let r = append(&t, &mut |w| w.write_all(b"x"));
        assert!(matches!(r, Err(AppendError::Locked(_))));
        std::fs::remove_file(dir.join("bob.lock")).unwrap();
        // Symlinks and hard links are refused.
        std::os::unix::fs::symlink(&mbox, dir.join("link")).unwrap();
        let l = dir.join("link");
        let r = append(&Target { path: &l, ..t }, &mut |w| w.write_all(b"x"));
        assert!(matches!(r, Err(AppendError::Unsafe(_))), "{r:?}");
        std::fs::hard_link(&mbox, dir.join("hard")).unwrap();
        let r = append(&t, &mut |w| w.write_all(b"x"));
        assert!(matches!(r, Err(AppendError::Unsafe(_))), "{r:?}");
        // Another owner is refused.
        std::fs::remove_file(dir.join("hard")).unwrap();
        let other = nix::unistd::getuid().as_raw() + 1;
        let r = append(
            &Target {
                owner: Some(other),
                ..t
            },
            &mut |w| w.write_all(b"x"),
        );
        assert!(matches!(r, Err(AppendError::Unsafe(_))), "{r:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

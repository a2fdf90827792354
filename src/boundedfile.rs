//! Reading a file that the configuration, the command line or the environment names
//! (the config file itself, ALIASES, MAILNAME, RELAYTABLE, AUTHPATH, CERTFILE,
//! CACertFile, `:include:` files, `.forward`): only a regular file, and at most a
//! limit of octets of it, so that `/dev/zero` cannot fill memory, a FIFO cannot hang
//! the reader and a directory gets a clear reason.
//!
//! [`read_regular`] looks at the path first, so that a FIFO or a device is never opened;
//! the open does not block (`O_NONBLOCK`) nor take a terminal (`O_NOCTTY`), follows no
//! symbolic link when asked (`O_NOFOLLOW`), and the file opened must be the regular file
//! looked at (`fstat`); at most one octet over the limit is read, in case it grew.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest file the configuration names that is read: 1 MiB (a config file, an
/// aliases file, a relay or auth table, a certificate bundle, a list file).
pub const MAX_FILE: u64 = 1 << 20;

/// Why a named file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// Not a regular file: `a FIFO`, `a directory`, `a device`, `a socket`,
    /// `a symbolic link` (where none may be).
    NotRegular(&'static str),
    /// Larger than `limit` octets (`size`: the size seen).
    TooLarge { size: u64, limit: u64 },
    /// The path named another file when it was opened than when it was looked at.
    Replaced,
    /// The system's error (not found, permission denied, I/O).
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> ReadError {
        if e.raw_os_error() == Some(libc::ELOOP) {
            ReadError::NotRegular("a symbolic link")
        } else {
            ReadError::Io(e)
        }
    }
}

impl ReadError {
    /// The reason as a message's tail: `not a regular file (a FIFO)`, `larger than
    /// 1048576 bytes (2000000 bytes)`, `No such file or directory`.
    pub fn text(&self) -> String {
        match self {
            ReadError::NotRegular(what) => format!("not a regular file ({what})"),
            ReadError::TooLarge { size, limit } => {
                format!("larger than {limit} bytes, the limit ({size} bytes)")
            }
            ReadError::Replaced => "the file was replaced while it was opened".into(),
            ReadError::Io(e) => crate::config::io_text(e),
        }
    }

    /// The system error's kind, if it is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            ReadError::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// What a file that is not a regular one is, for messages; `None` for a regular file.
pub fn file_kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a file")
    }
}

/// `/dev/null` (character device 1, 3), read as an empty file: `ALIASES /dev/null` and
/// `-C /dev/null` are the usual ways to say "none".
fn is_dev_null(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    md.file_type().is_char_device() && md.rdev() == libc::makedev(1, 3)
}

/// Whether `path` is a file [`read_regular`] would read, looked at without opening it
/// (one `stat`): its metadata, or why not (`NotRegular`, `TooLarge`, or the system's
/// error). For a file this process only checks and another reads.
pub fn check_regular(
    path: &Path,
    no_follow: bool,
    limit: u64,
) -> Result<std::fs::Metadata, ReadError> {
    let seen = if no_follow {
        std::fs::symlink_metadata(path)?
    } else {
        std::fs::metadata(path)?
    };
    check_kind_and_size(&seen, limit)?;
    Ok(seen)
}

/// [`read_regular`]'s check of what it found: `/dev/null`, or a regular file of at most
/// `limit` octets.
fn check_kind_and_size(md: &std::fs::Metadata, limit: u64) -> Result<(), ReadError> {
    if is_dev_null(md) {
        return Ok(());
    }
    if let Some(what) = file_kind(md.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    if md.len() > limit {
        return Err(ReadError::TooLarge {
            size: md.len(),
            limit,
        });
    }
    Ok(())
}

/// Read the regular file `path` (or `/dev/null`, as empty), at most `limit` octets, with this process's rights:
/// its octets and its metadata (owner, mode). `no_follow`: a symbolic link is refused
/// (`NotRegular("a symbolic link")`). Never blocks on a FIFO or a device, never reads
/// more than `limit + 1` octets.
pub fn read_regular(
    path: &Path,
    no_follow: bool,
    limit: u64,
) -> Result<(Vec<u8>, std::fs::Metadata), ReadError> {
    let seen = if no_follow {
        std::fs::symlink_metadata(path)?
    } else {
        std::fs::metadata(path)?
    };
    let check = |md: &std::fs::Metadata| check_kind_and_size(md, limit);
    check(&seen)?;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let md = f.metadata()?;
    check(&md)?;
    if (md.dev(), md.ino()) != (seen.dev(), seen.ino()) {
        return Err(ReadError::Replaced);
    }
    // Room for the size seen and the read that finds the end: one read for a file that
    // did not grow, where a growing buffer would take several.
    let room = md.len().min(limit).saturating_add(1);
    let mut text = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    f.take(limit + 1)
        .read_to_end(&mut text)
        .map_err(ReadError::Io)?;
    if text.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: text.len() as u64,
            limit,
        });
    }
    Ok((text, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("rsm-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert!(matches!(
            read_regular(&fifo, false, MAX_FILE),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), false, MAX_FILE),
            Err(ReadError::NotRegular("a device"))
        ));
        assert!(matches!(
            read_regular(&dir, false, MAX_FILE),
            Err(ReadError::NotRegular("a directory"))
        ));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; 11]).unwrap();
        assert!(matches!(
            read_regular(&big, false, 10),
            Err(ReadError::TooLarge {
                size: 11,
                limit: 10
            })
        ));
        assert_eq!(read_regular(&big, false, 11).unwrap().0.len(), 11);
        assert!(
            read_regular(Path::new("/dev/null"), false, 10)
                .unwrap()
                .0
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

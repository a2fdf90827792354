//! SMTP DATA: the client's byte stream → the message in canonical form (LF line ends),
//! as a [`BufRead`] the intake reads like stdin.
//!
//! The rules (RFC 5321 §4.1.1.4, §4.5.2, and the SMTP smuggling fixes of 2023/24):
//! - only `<CRLF>.<CRLF>` ends the data; the `.` line must be exactly a dot between two
//!   CRLFs (the CRLF before it is the end of the previous line, or the 354 reply);
//! - a line that begins with a dot loses that dot (transparency);
//! - a bare LF (not after CR) or a bare CR (not before LF) anywhere in the data is a
//!   protocol error: sendmail 8.17 answers `421 4.5.0 Bare linefeed (LF) not allowed` or
//!   `421 4.5.0 Bare carriage return (CR) not allowed` and ends the session, and so do
//!   we. Such bytes never become line ends, so `<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CRLF>`
//!   and the other smuggling forms can never end the data early.
//!
//! Any bytes are accepted (a fault is the worst they can cause); the buffers are only
//! read through `get`, so no input makes the reader panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::io::{self, BufRead, Read};

/// Why the data did not end with `<CRLF>.<CRLF>`.
#[derive(Debug)]
pub enum Fault {
    BareLf,
    BareCr,
    /// The client went away.
    Eof,
    /// Reading failed (a timeout on a socket).
    Io(io::Error),
}

/// Decodes DATA from `inner`.
pub struct DataReader<'a, R> {
    inner: &'a mut R,
    out: Vec<u8>,
    pos: usize,
    /// The end-of-data line was read.
    pub done: bool,
    pub fault: Option<Fault>,
    at_line_start: bool,
    /// The current line so far is just the leading dot (which was dropped).
    dot_only: bool,
    cr_pending: bool,
    /// `-X`: the lines as they came, logged (`<<<`).
    traffic: crate::traffic::Lines,
}

const CHUNK: usize = 64 * 1024;

impl<'a, R: BufRead> DataReader<'a, R> {
    pub fn new(inner: &'a mut R) -> DataReader<'a, R> {
        DataReader {
            inner,
            out: Vec::with_capacity(CHUNK + 8),
            pos: 0,
            done: false,
            fault: None,
            at_line_start: true,
            dot_only: false,
            cr_pending: false,
            traffic: crate::traffic::Lines::new(crate::traffic::Dir::In),
        }
    }

    fn fail(&mut self, f: Fault) -> io::Error {
        let text = match &f {
            Fault::BareLf => "bare LF in DATA".to_string(),
            Fault::BareCr => "bare CR in DATA".to_string(),
            Fault::Eof => "connection closed in DATA".to_string(),
            Fault::Io(e) => e.to_string(),
        };
        self.fault = Some(f);
        io::Error::other(text)
    }

    /// Decode more input into `out` (which is empty): at least one byte, or the end.
    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() && !self.done {
            if self.fault.is_some() {
                return Err(io::Error::other("DATA already failed"));
            }
            let input = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.fail(Fault::Io(e))),
            };
            if input.is_empty() {
                return Err(self.fail(Fault::Eof));
            }
            let mut used = 0;
            let mut fault = None;
            for &b in input.iter().take(CHUNK) {
                used += 1;
                if self.cr_pending {
                    self.cr_pending = false;
                    if b != b'\n' {
                        fault = Some(Fault::BareCr);
                        break;
                    }
                    if self.dot_only {
                        self.done = true;
                        break;
                    }
                    self.out.push(b'\n');
                    self.at_line_start = true;
                    self.dot_only = false;
                    continue;
                }
                match b {
                    b'\r' => self.cr_pending = true,
                    b'\n' => {
                        fault = Some(Fault::BareLf);
                        break;
                    }
                    b'.' if self.at_line_start => {
                        self.at_line_start = false;
                        self.dot_only = true;
                    }
                    _ => {
                        self.at_line_start = false;
                        self.dot_only = false;
                        self.out.push(b);
                    }
                }
            }
            self.traffic.feed(input.get(..used).unwrap_or_default());
            self.inner.consume(used);
            if let Some(f) = fault {
                return Err(self.fail(f));
            }
        }
        Ok(())
    }

    /// Read and drop the rest of the data (after the intake stopped early), so that the
    /// session stays in step with the client. Returns false on a fault.
    pub fn drain(&mut self) -> bool {
        loop {
            if self.done {
                return true;
            }
            if self.fault.is_some() {
                return false;
            }
            self.pos = self.out.len();
            if self.refill().is_err() {
                return false;
            }
        }
    }
}

impl<R: BufRead> Read for DataReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), avail.get(..n)) {
            to.copy_from_slice(from);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for DataReader<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.out.len() {
            if self.done {
                return Ok(&[]);
            }
            self.refill()?;
        }
        Ok(self.out.get(self.pos..).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.out.len());
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// (decoded message, fault, bytes left unread after the data)
    fn decode(input: &[u8]) -> (Vec<u8>, Option<String>, Vec<u8>) {
        let mut r = io::BufReader::with_capacity(7, input);
        let mut d = DataReader::new(&mut r);
        let mut out = Vec::new();
        let res = d.read_to_end(&mut out);
        let fault = res
            .err()
            .map(|_| format!("{:?}", d.fault.as_ref().unwrap()));
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        (out, fault, rest)
    }

    #[test]
    fn crlf_dot_crlf_ends_and_dots_are_unstuffed() {
        let (m, f, rest) = decode(b"Subject: a\r\n\r\n..x\r\n.y\r\nz\r\n.\r\nQUIT\r\n");
        assert_eq!(m, b"Subject: a\n\n.x\ny\nz\n");
        assert!(f.is_none());
        assert_eq!(rest, b"QUIT\r\n");
        // The dot line right after the 354 reply: an empty message.
        let (m, f, rest) = decode(b".\r\nNOOP\r\n");
        assert_eq!(
            (m.as_slice(), f, rest.as_slice()),
            (&b""[..], None, &b"NOOP\r\n"[..])
        );
    }

    #[test]
    fn smuggling_forms_never_end_the_data() {
        for (input, want) in [
            (&b"a\r\n\n.\n\r\nMAIL\r\n.\r\n"[..], "BareLf"),
            (b"a\n.\r\nMAIL\r\n.\r\n", "BareLf"),
            (b"a\r\n.\n", "BareLf"),
            (b"a\r.\r\nMAIL\r\n.\r\n", "BareCr"),
            (b"a\r\n.\r.\r\n", "BareCr"),
            (b"a\r\n.\r", "Eof"),
            (b"a\r\n", "Eof"),
        ] {
            let (_, f, _) = decode(input);
            assert_eq!(
                f.as_deref(),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn drain_keeps_the_session_in_step() {
        let input = b"a\r\nb\r\n.\r\nRSET\r\n";
        let mut r = io::BufReader::new(&input[..]);
        let mut d = DataReader::new(&mut r);
        let mut one = [0u8; 1];
        d.read_exact(&mut one).unwrap();
        assert!(d.drain());
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "RSET\r\n");
    }
}

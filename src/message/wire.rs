//! A stored message as it goes to a peer: SMTP DATA lines (RFC 5321 §4.5.3.1.6, §4.5.2)
//! and header fields folded to fit them (RFC 5322 §2.2.3).
//!
//! Units are octets; a line's length never counts its line end. A queued message is in
//! canonical form (LF line ends, see [`crate::message`]); on the wire:
//! - Every stored LF is sent as CRLF, and only an LF ends a line: a CR inside a line is
//!   sent as it is (sendmail 8.17 passes `before\rafter` unchanged, and a stored `x\r`
//!   line goes out as `x\r\r\n`; recorded: compat-tests `content-bare-cr-body`,
//!   `content-cr-cr-lf`). The intake keeps CRs only in body lines. (A server that refuses
//!   a bare CR in DATA, as sendmail 8.17's own does with `421 4.5.0 Bare carriage return
//!   (CR) not allowed` (`bs-bare-cr-in-data`), refuses such a message from either.)
//! - A header line is at most [`MAX_LINE`] (998) octets, RFC 5321's 1,000 with its CRLF
//!   (the dot added for transparency is not counted, §4.5.3.1.6). A body line is at most
//!   [`MAX_BODY_LINE`] (2,040) octets, the line limit of Debian's sendmail relay mailer
//!   (`L=2040`): sendmail passes a body line of up to 2,040 octets unchanged
//!   (`content-long-1500`, `content-long-2040`), so that a line a signer saw (DKIM)
//!   reaches the next hop as it was. Lines within the limit go out byte for byte as
//!   stored. The body limit is the encoder's parameter ([`Wire::with_limit`]): a server
//!   that holds body lines to RFC 5321's limit too and refuses a longer one (aiosmtpd's
//!   `500 Line too long`, a 5yz at the end of the data, a closed connection) is sent the
//!   message again with body lines of at most [`MAX_LINE`] (the SMTP client's
//!   `Session::send`; sendmail returns such a message: `content-long-refused`).
//! - The header block is every line before the first empty line. An over-long header line
//!   is folded by [`fold_header_line`]: a CRLF is inserted before a white space octet
//!   (SP or HTAB), so that RFC 5322 unfolding (removing each CRLF that is followed by
//!   white space) gives the field back unchanged. Only where no white space can take the
//!   fold does it continue with CRLF SP (a "hard" break: there, and only there, unfolding
//!   adds one SP). No continuation line is white space alone; to keep that true, a run of
//!   more than [`MAX_BLANK_RUN`] blanks in a line that must be folded is cut to that
//!   length (the one case where octets are dropped; no mail program writes such runs).
//! - A body line longer than its limit is broken by [`body_break`] (CRLF SP at the limit,
//!   Postfix's `smtp_line_length_limit` rule): no octet is lost or replaced, and a header
//!   line of a MIME part inside the body stays a header line, continued. (sendmail ends
//!   such a line with `!` at 2,040 octets and continues it on a line of its own that
//!   begins with a blank: `content-long-edges`; the `!` is text the writer never wrote.)
//! - Neither rule splits a UTF-8 sequence: when the octets at the limit belong to a valid
//!   UTF-8 character, the break moves back to where that character begins.
//! - Every line start is dot-stuffed (a `.` doubled), continuation lines included, and
//!   the data ends with the `.` line; a message without a final line break gets one.
//!
//! Memory: one header line at a time is held (the intake caps the header block at
//! [`MAX_HEADER_BYTES`]; a longer line is treated as body from there on), and at most one
//! wire line (about 2 KB) of the body: a body of any size is streamed.
//!
//! Failures: only the I/O errors of the reader and the writer, passed on; any octets are
//! accepted (octets are read through `get` and `split_at_checked`, never by index, and
//! never as `str`; the lints below keep it so), so no input makes it panic.
//!
//! Local delivery (mbox, pipes, files) does not go through this module: mailboxes and
//! programs have no line limit, so they get the message as queued.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::MAX_HEADER_BYTES;
use std::io::{self, BufRead, Read, Write};

/// The longest header line on the wire, CRLF excluded (RFC 5321 §4.5.3.1.6: 1,000 with
/// CRLF).
pub const MAX_LINE: usize = 998;

/// The longest body line on the wire, CRLF excluded: the `L=2040` of Debian's sendmail
/// relay mailer, up to which sendmail 8.17 relays a body line unchanged (recorded:
/// compat-tests `content-long-1500`, `content-long-2040`).
pub const MAX_BODY_LINE: usize = 2040;

/// The longest run of white space an over-long header line keeps. A longer run could
/// not be folded without a continuation line made only of white space (which some
/// readers take for the empty line that ends the header block), so in a header line that
/// must be folded anyway such a run is cut to this length. No mail program writes one.
pub const MAX_BLANK_RUN: usize = 256;

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Where a break at `at` in `line` has to go so as not to split a UTF-8 character: the
/// start of the character when `at` falls inside a valid UTF-8 sequence that begins after
/// `floor`, else `at` itself (octets that are not UTF-8 are cut where the limit falls).
fn char_boundary(line: &[u8], at: usize, floor: usize) -> usize {
    if line.get(at).is_none_or(|&b| b & 0xC0 != 0x80) {
        return at;
    }
    for back in 1..=3 {
        let Some(s) = at.checked_sub(back) else { break };
        let Some(&lead) = line.get(s) else { break };
        if lead & 0xC0 == 0x80 {
            continue;
        }
        let width = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return at,
        };
        let valid = s + width > at
            && line
                .get(s..s + width)
                .is_some_and(|c| std::str::from_utf8(c).is_ok());
        return if valid && s > floor { s } else { at };
    }
    at
}

/// The body rule, the one place it is decided: `line` is a body line as stored (or its
/// remainder after earlier breaks), `used` the octets already on the wire line before
/// it (the SP of a continuation) and `limit` the longest body line in octets
/// ([`MAX_BODY_LINE`], or [`MAX_LINE`] for a server that holds body lines to RFC 5321's
/// limit). When `used + line.len()` exceeds `limit`, the line is broken after the
/// returned number of octets of `line` (at least 1) and the next wire line begins with
/// the returned prefix. Callers pass at least 3 octets past the limit when the line
/// has them, so that a UTF-8 character at the limit can be seen whole.
///
/// The rule is Postfix's `smtp_line_length_limit`: CRLF SP at the limit, so no octet is
/// lost and a folded header of a MIME part stays a header line.
pub fn body_break(line: &[u8], used: usize, limit: usize) -> (usize, &'static [u8]) {
    let room = limit.saturating_sub(used).max(1);
    (char_boundary(line, room, 0), b" ")
}

/// `line` with every white-space run longer than [`MAX_BLANK_RUN`] cut to that length.
fn cut_blank_runs(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut run = 0;
    for &b in line {
        if is_wsp(b) {
            run += 1;
            if run > MAX_BLANK_RUN {
                continue;
            }
        } else {
            run = 0;
        }
        out.push(b);
    }
    out
}

/// Fold one header line (without its line end) into lines of at most [`MAX_LINE`]
/// octets, returned without line ends. A line that fits is returned unchanged.
///
/// An over-long line is cut greedily, each output line as long as it may be:
/// - Folding: the break goes before the last white space octet within the limit, so the
///   next line begins with it (RFC 5322 §2.2.3). On a field's first line only after the
///   colon; never so that either side of the break is white space alone.
/// - Where no white space can take the break (a long word, a base64 run), a hard break:
///   the next line is SP and the octets that follow, at most 997 of them. Unfolding gives
///   the field back with one SP added at each hard break.
/// - Breaks do not split UTF-8 characters (see the module docs); runs of white space
///   longer than [`MAX_BLANK_RUN`] are cut to that length first, white space at the
///   end of the over-long line is dropped (it carries no meaning in a field body), and
///   a continuation that would begin with several blanks before a word too long for the
///   rest of its line keeps one blank of them, so the word is not split.
///
/// Every line after the first begins with SP or HTAB and holds an octet that is not
/// white space.
pub fn fold_header_line(line: &[u8]) -> Vec<Vec<u8>> {
    if line.len() <= MAX_LINE {
        return vec![line.to_vec()];
    }
    let mut line = cut_blank_runs(line);
    // Blanks at the end of a line that must be folded anyway carry nothing (a field's
    // white space unfolds to one blank, RFC 5322 §3.2.2) and could only be carried on a
    // continuation of white space alone, or by a hard break: they are dropped.
    let visible_end = line.iter().rposition(|&b| !is_wsp(b)).map_or(0, |p| p + 1);
    if visible_end > 0 {
        line.truncate(visible_end);
    }
    if line.len() <= MAX_LINE {
        return vec![line];
    }
    // A fold may go only after the colon of a field's first line.
    let min_fold = match line.first() {
        Some(&b) if !is_wsp(b) => line.iter().position(|&b| b == b':').map_or(1, |c| c + 1),
        _ => 1,
    };
    // Breaks stay before the last visible octet, so the last line holds one too.
    let Some(mut last) = line.iter().rposition(|&b| !is_wsp(b)) else {
        // Only white space, at most MAX_BLANK_RUN of it: it fitted above.
        return vec![line];
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut hard = false;
    loop {
        let room = MAX_LINE - usize::from(hard);
        let piece = |end: usize| {
            let text = line.get(start..end).unwrap_or_default();
            let mut p = Vec::with_capacity(text.len() + 1);
            if hard {
                p.push(b' ');
            }
            p.extend_from_slice(text);
            p
        };
        if line.len() - start <= room {
            out.push(piece(line.len()));
            return out;
        }
        let limit = start + room;
        // The first visible octet of this line: a break must come after it.
        let visible = line
            .get(start..)
            .and_then(|rest| rest.iter().position(|&b| !is_wsp(b)))
            .map_or(last, |p| start + p);
        let lowest = min_fold.max(visible + 1);
        let fold = (lowest..=limit.min(last))
            .rev()
            .find(|&p| line.get(p).is_some_and(|&b| is_wsp(b)));
        let (end, next_hard) = match fold {
            Some(p) => (p, false),
            // A continuation that begins with several blanks before a word too long for
            // the rest of the line: its blanks are cut to the one that folds, rather than
            // the word split by a hard break (a run of blanks unfolds to one SP, RFC 5322
            // §3.2.2; a split word is changed).
            None if !hard && start > 0 && visible > start + 1 => {
                let extra = visible - start - 1;
                line.drain(start + 1..visible);
                last -= extra;
                continue;
            }
            None => {
                let at = char_boundary(&line, limit.min(last), visible);
                // A break at or before the first visible octet cannot happen once white
                // space runs are cut; keep the loop moving all the same.
                (if at > visible { at } else { limit }, true)
            }
        };
        out.push(piece(end));
        start = end;
        hard = next_hard;
    }
}

/// Fold every over-long line of a header field in canonical form (LF line ends, as
/// queued): the field as [`fold_header_line`] folds each of its lines, LF-terminated
/// again. A field whose lines fit is returned unchanged.
pub fn fold_field(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len() + 8);
    for line in field.split_inclusive(|&b| b == b'\n') {
        let (text, eol) = match line.strip_suffix(b"\n") {
            Some(t) => (t, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        let pieces = fold_header_line(text);
        let n = pieces.len();
        for (i, p) in pieces.into_iter().enumerate() {
            out.extend_from_slice(&p);
            out.extend_from_slice(if i + 1 < n { b"\n" } else { eol });
        }
    }
    out
}

/// Copy a header block in canonical form from `r` to `w`, folding its over-long lines
/// with [`fold_header_line`]: up to and including the first empty line, or to the end of
/// `r`. A line longer than [`MAX_HEADER_BYTES`] is copied as it is and ends the header
/// block there. Returns the octets written. The body after it is left in `r`.
pub fn copy_folded_header<R: BufRead + ?Sized, W: Write + ?Sized>(
    r: &mut R,
    w: &mut W,
) -> io::Result<u64> {
    let mut n = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = r
            .take(MAX_HEADER_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if got == 0 {
            return Ok(n);
        }
        let Some(text) = line.strip_suffix(b"\n") else {
            // The end of `r`, or a line too long to be a header line.
            w.write_all(&line)?;
            return Ok(n + line.len() as u64);
        };
        if text.is_empty() {
            w.write_all(b"\n")?;
            return Ok(n + 1);
        }
        for p in fold_header_line(text) {
            w.write_all(&p)?;
            w.write_all(b"\n")?;
            n += p.len() as u64 + 1;
        }
    }
}

/// The SMTP DATA encoder: a stored message in, wire lines out (the rules are in the
/// module docs). Feed it with [`Wire::push`], end it with [`Wire::finish`].
pub struct Wire<W: Write> {
    w: W,
    /// The longest body line, in octets (see [`Wire::with_limit`]).
    limit: usize,
    /// Octets on the current wire line so far (a stuffed dot not counted).
    line_len: usize,
    /// The longest wire line written, in octets, its CRLF and a stuffed dot not counted.
    pub longest: usize,
    /// Still in the header block (before its empty line).
    header: bool,
    /// The current line's octets not yet written: in the header block the whole line,
    /// in the body at most the body line limit + 3.
    line: Vec<u8>,
    /// Octets already written on the current wire line (a continuation's SP).
    used: usize,
    /// Whether anything was written on the current wire line (for dot-stuffing).
    started: bool,
    /// Octets written, and dots added for transparency.
    pub written: u64,
    pub stuffed: u64,
}

impl<W: Write> Wire<W> {
    /// An encoder whose body lines are at most [`MAX_BODY_LINE`] octets (sendmail's).
    pub fn new(w: W) -> Wire<W> {
        Wire::with_limit(w, MAX_BODY_LINE)
    }

    /// An encoder whose body lines are at most `limit` octets (taken as at least 1):
    /// [`MAX_BODY_LINE`] as sendmail relays them, [`MAX_LINE`] for a server that holds
    /// every line to RFC 5321's 1,000 octets with its CRLF. Header lines are folded at
    /// [`MAX_LINE`] whatever the limit.
    pub fn with_limit(w: W, limit: usize) -> Wire<W> {
        let limit = limit.max(1);
        Wire {
            w,
            limit,
            line_len: 0,
            longest: 0,
            header: true,
            line: Vec::with_capacity(limit.min(MAX_BODY_LINE) + 4),
            used: 0,
            started: false,
            written: 0,
            stuffed: 0,
        }
    }

    /// Write octets of the current wire line, doubling a `.` that begins it.
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        if !self.started && b.first() == Some(&b'.') {
            self.w.write_all(b".")?;
            self.written += 1;
            self.stuffed += 1;
        }
        self.started = true;
        self.w.write_all(b)?;
        self.written += b.len() as u64;
        self.line_len += b.len();
        Ok(())
    }

    fn end_line(&mut self) -> io::Result<()> {
        self.w.write_all(b"\r\n")?;
        self.written += 2;
        self.started = false;
        self.used = 0;
        self.longest = self.longest.max(self.line_len);
        self.line_len = 0;
        Ok(())
    }

    /// Break the held body line while it is longer than the limit: with `all` (the line
    /// has ended) down to what fits, else while 3 octets past the limit are held, enough
    /// to see a UTF-8 character at the limit whole.
    fn break_body(&mut self, all: bool) -> io::Result<()> {
        loop {
            let avail = self.limit.saturating_sub(self.used);
            let needed = if all { avail + 1 } else { avail + 3 };
            if self.line.len() < needed {
                return Ok(());
            }
            let (at, prefix) = body_break(&self.line, self.used, self.limit);
            let at = at.clamp(1, self.line.len());
            let line = std::mem::take(&mut self.line);
            self.put(line.get(..at).unwrap_or_default())?;
            self.end_line()?;
            self.put(prefix)?;
            self.used = prefix.len();
            self.line = line;
            self.line.drain(..at);
        }
    }

    /// A line of the message ended (its terminator seen, or the end of the data).
    fn line_done(&mut self) -> io::Result<()> {
        if self.header && self.line.is_empty() {
            self.header = false;
        } else if !self.header {
            self.break_body(true)?;
        }
        let line = std::mem::take(&mut self.line);
        if self.header && line.len() > MAX_LINE {
            for (i, p) in fold_header_line(&line).iter().enumerate() {
                if i > 0 {
                    self.end_line()?;
                }
                self.put(p)?;
            }
        } else {
            self.put(&line)?;
        }
        self.line = line;
        self.line.clear();
        self.end_line()
    }

    /// Octets of one line, no terminator among them.
    fn text(&mut self, mut b: &[u8]) -> io::Result<()> {
        if self.header {
            if self.line.len() + b.len() <= MAX_HEADER_BYTES {
                self.line.extend_from_slice(b);
                return Ok(());
            }
            // Too long for a header line: the body rule from here on.
            self.header = false;
            self.break_body(false)?;
        }
        while !b.is_empty() {
            let hold = (self.limit + 3).saturating_sub(self.used).max(1);
            let take = hold.saturating_sub(self.line.len());
            let (now, later) = b.split_at_checked(take).unwrap_or((b, &[]));
            self.line.extend_from_slice(now);
            b = later;
            self.break_body(false)?;
        }
        Ok(())
    }

    /// More of the stored message.
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let Some((text, end)) = rest.split_at_checked(i) else {
                break;
            };
            self.text(text)?;
            self.line_done()?;
            rest = end.get(1..).unwrap_or_default();
        }
        self.text(rest)
    }

    /// End the data: a line break when the message lacks a final one, then the `.` line.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.line.is_empty() || self.started {
            self.line_done()?;
        }
        self.w.write_all(b".\r\n")?;
        self.written += 3;
        self.w.flush()
    }
}

/// The size of [`pump`]'s reads.
const PUMP_BUF_SIZE: usize = 64 * 1024;

thread_local! {
    /// [`pump`]'s buffer, zeroed once for each thread and reused for every message: a
    /// zeroed 64 KiB buffer per message cost each delivered 2 KB message more than its
    /// encoding, and a reader other than a file (the queue file read at offsets) gets
    /// its buffer zeroed before each fill.
    static PUMP_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Feed all of `data` to `wire`, 64 KiB at a time, through this thread's buffer.
fn pump<W: Write>(data: &mut dyn Read, wire: &mut Wire<W>) -> io::Result<()> {
    PUMP_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => pump_with(data, wire, &mut buf),
        // Not while it is in use (never by this module).
        Err(_) => pump_with(data, wire, &mut Vec::new()),
    })
}

fn pump_with<W: Write>(
    data: &mut dyn Read,
    wire: &mut Wire<W>,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    if buf.len() < PUMP_BUF_SIZE {
        buf.resize(PUMP_BUF_SIZE, 0);
    }
    loop {
        match data.read(buf) {
            Ok(0) => return wire.finish(),
            Ok(n) => {
                let chunk = buf
                    .get(..n)
                    .ok_or_else(|| io::Error::other("a read returned more than it was given"))?;
                wire.push(chunk)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Write a stored message as SMTP DATA, from its first header line to the final `.`
/// line (see the module docs for the rules), body lines of at most `limit` octets
/// ([`Wire::with_limit`]: [`MAX_BODY_LINE`] as sendmail relays them). The message is
/// streamed.
pub fn write_wire_limited<W: Write>(
    data: &mut dyn Read,
    w: &mut W,
    limit: usize,
) -> io::Result<()> {
    pump(data, &mut Wire::with_limit(w, limit))
}

/// What [`measure`] finds of a message as [`write_wire_limited`] sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    /// The size as RFC 1870 §3 counts it for `SIZE=`: every octet including the CRLF
    /// pairs, not the dots added for transparency nor the final `.` line.
    pub size: u64,
    /// The longest line on the wire, in octets, its CRLF and a transparency dot not
    /// counted: over [`MAX_LINE`] only when a body line is (header lines are folded).
    pub longest: usize,
}

/// Measure a stored message as [`write_wire_limited`] sends it with `limit`. Reads the
/// message once, holding no more of it than the encoder does.
pub fn measure(data: &mut dyn Read, limit: usize) -> io::Result<Measured> {
    let mut wire = Wire::with_limit(io::sink(), limit);
    pump(data, &mut wire)?;
    Ok(Measured {
        size: wire.written - wire.stuffed - 3,
        longest: wire.longest,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn wire(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_wire_limited(&mut &input[..], &mut out, MAX_BODY_LINE).unwrap();
        out
    }

    /// The size of a message as [`wire`] sends it, as RFC 1870 §3 counts it for `SIZE=`.
    fn wire_size(data: &mut dyn Read) -> io::Result<u64> {
        Ok(measure(data, MAX_BODY_LINE)?.size)
    }

    /// The same message fed `step` octets at a time.
    /// A reader that gives at most `step` octets a read, and is interrupted (EINTR)
    /// before every other read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_message_read_in_pieces_goes_out_whole() {
        // Larger than one 64 KiB read, in pieces that split lines and CRLF pairs, with
        // reads interrupted: the same as the message pushed in one piece, and the same
        // size measured.
        let mut input = Vec::new();
        for i in 0..3000 {
            input.extend_from_slice(format!("line {i} .of the message\r\n").as_bytes());
            if i % 7 == 0 {
                input.extend_from_slice(b".dot first\n");
            }
        }
        assert!(input.len() > 64 * 1024);
        let whole = wire_in_steps(&input, input.len());
        for step in [1, 3, 4096, 64 * 1024, 100_000] {
            let mut out = Vec::new();
            let mut r = Trickle {
                data: &input,
                step,
                interrupt: false,
            };
            write_wire_limited(&mut r, &mut out, MAX_BODY_LINE).unwrap();
            assert_eq!(out, whole, "read {step} octets at a time");
            let mut r = Trickle {
                data: &input,
                step,
                interrupt: false,
            };
            assert_eq!(
                measure(&mut r, MAX_BODY_LINE).unwrap().size,
                wire_size(&mut &input[..]).unwrap()
            );
        }
    }

    fn wire_in_steps(input: &[u8], step: usize) -> Vec<u8> {
        let mut w = Wire::new(Vec::new());
        for piece in input.chunks(step.max(1)) {
            w.push(piece).unwrap();
        }
        w.finish().unwrap();
        w.w
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// The message on the wire with body lines of at most `limit` octets, fed `step`
    /// octets at a time.
    fn wire_limited(input: &[u8], limit: usize, step: usize) -> Vec<u8> {
        let mut w = Wire::with_limit(Vec::new(), limit);
        for piece in input.chunks(step.max(1)) {
            w.push(piece).unwrap();
        }
        w.finish().unwrap();
        w.w
    }

    fn rep(s: &str, n: usize) -> String {
        s.repeat(n)
    }

    /// RFC 5322 §2.2.3 unfolding: every CRLF (or LF) followed by SP or HTAB removed.
    fn unfold(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let eol = if b[i..].starts_with(b"\r\n") {
                2
            } else if b[i] == b'\n' {
                1
            } else {
                0
            };
            if eol > 0 && b.get(i + eol).is_some_and(|&c| is_wsp(c)) {
                i += eol;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        out
    }

    #[test]
    fn wire_format() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
            (b"no final newline", b"no final newline\r\n.\r\n"),
            (
                b".leading\n..two\n.\n",
                b"..leading\r\n...two\r\n..\r\n.\r\n",
            ),
            // A CR is text: only an LF ends a line (sendmail passes `before\rafter`).
            (b"bare\rcr\n", b"bare\rcr\r\n.\r\n"),
            (b"cr\r\nkept\n", b"cr\r\r\nkept\r\n.\r\n"),
            (b"", b".\r\n"),
            (b"mid.dot\n", b"mid.dot\r\n.\r\n"),
            // The same in the body.
            (
                b"S: x\n\na\rb\r\nc\r",
                b"S: x\r\n\r\na\rb\r\r\nc\r\r\n.\r\n",
            ),
            (b"S: x\n\n.\n..\n", b"S: x\r\n\r\n..\r\n...\r\n.\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(text(&wire(input)), text(want), "{:?}", text(input));
            for step in [1, 2, 3] {
                assert_eq!(text(&wire_in_steps(input, step)), text(want), "step {step}");
            }
        }
        // Every LF on the wire is the end of a CRLF: no bare LF anywhere.
        let out = wire(b"a\rb\nc\r\r\nd\n\r");
        assert_eq!(text(&out), text(b"a\rb\r\nc\r\r\r\nd\r\n\r\r\n.\r\n"));
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(out[i - 1], b'\r');
            }
        }
    }

    /// Header fields: (label, hard breaks, field as queued without its LF, the field on
    /// the wire).
    fn header_cases() -> Vec<(&'static str, usize, String, String)> {
        let addrs: Vec<String> = (1..=60).map(|n| format!("user{n}@example.org")).collect();
        let ids: Vec<String> = (0..40)
            .map(|n| format!("<20240101.{n:04}.abcdef@mail.example.org>"))
            .collect();
        let words: Vec<String> = (0..240).map(|n| format!("w{n:03}")).collect();
        let tabbed: Vec<String> = (0..250).map(|n| format!("t{n:03}")).collect();
        let fits = format!("X-Fits: {}", rep("f", 990));
        vec![
            (
                // 1,193 octets; "To: " + addresses 1..=50 and the comma is 994 octets.
                "60 addresses fold before the last blank within the limit",
                0,
                format!("To: {}", addrs.join(", ")),
                format!(
                    "To: {},\r\n {}",
                    addrs[..50].join(", "),
                    addrs[50..].join(", ")
                ),
            ),
            (
                // 12 + 24 ids of 39 octets and their 23 blanks = 971.
                "References fold at single blanks",
                0,
                format!("References: {}", ids.join(" ")),
                format!(
                    "References: {}\r\n {}",
                    ids[..24].join(" "),
                    ids[24..].join(" ")
                ),
            ),
            (
                "no white space: CRLF SP at the limit",
                1,
                format!("X-Blob:{}", rep("a", 1493)),
                format!("X-Blob:{}\r\n {}", rep("a", 991), rep("a", 502)),
            ),
            (
                "no white space, several hard breaks of 997 after the SP",
                3,
                format!("X-Blob:{}", rep("a", 2993)),
                format!(
                    "X-Blob:{}\r\n {}\r\n {}\r\n {}",
                    rep("a", 991),
                    rep("a", 997),
                    rep("a", 997),
                    rep("a", 8)
                ),
            ),
            (
                "the only blank is after the colon: fold there, then hard breaks",
                1,
                format!("X-Long: {}", rep("b", 1200)),
                format!("X-Long:\r\n {}\r\n {}", rep("b", 997), rep("b", 203)),
            ),
            (
                "already folded within the limit: unchanged",
                0,
                format!("To: a@example.org,\n\tb@example.org,\n    c@example.org\n{fits}"),
                format!("To: a@example.org,\r\n\tb@example.org,\r\n    c@example.org\r\n{fits}"),
            ),
            (
                "exactly 998 octets: unchanged",
                0,
                format!("X-Edge: {}", rep("e w", 330)),
                format!("X-Edge: {}", rep("e w", 330)),
            ),
            (
                "a long second continuation line folds on its own",
                0,
                format!("X-List: first\n\t{}", words.join(" ")),
                format!(
                    "X-List: first\r\n\t{}\r\n {}",
                    words[..199].join(" "),
                    words[199..].join(" ")
                ),
            ),
            (
                // 5 + 496 two-octet characters = 997: the 497th would straddle the limit.
                "UTF-8 is not split by a hard break",
                1,
                format!("X-Ut:{}", rep("é", 700)),
                format!("X-Ut:{}\r\n {}", rep("é", 496), rep("é", 204)),
            ),
            (
                "three- and four-octet characters",
                1,
                format!("X-E:{}{}", rep("€", 331), rep("𝄞", 100)),
                // 4 + 993 = 997; then the 4-octet characters from the second line on.
                format!("X-E:{}\r\n {}", rep("€", 331), rep("𝄞", 100)),
            ),
            (
                "tabs are folding white space too",
                0,
                format!("Subject:\t{}", tabbed.join("\t")),
                format!(
                    "Subject:\t{}\r\n\t{}",
                    tabbed[..198].join("\t"),
                    tabbed[198..].join("\t")
                ),
            ),
            (
                "UTF-8 words fold at blanks",
                0,
                format!("Subject: {}", rep("héllo wörld ", 100).trim_end()),
                // 9 + 70 × 14 + "héllo" = 995: the blank after it is the last within.
                format!(
                    "Subject: {}héllo\r\n wörld {}",
                    rep("héllo wörld ", 70),
                    rep("héllo wörld ", 29).trim_end()
                ),
            ),
            (
                "never a fold before the colon (RFC 822's blank before it)",
                1,
                format!("Old-Style :{}", rep("q", 1200)),
                format!("Old-Style :{}\r\n {}", rep("q", 987), rep("q", 213)),
            ),
            (
                "trailing blanks of an over-long line are dropped",
                1,
                format!("X-T: {}{}", rep("z", 1100), rep(" ", 30)),
                format!("X-T:\r\n {}\r\n {}", rep("z", 997), rep("z", 103)),
            ),
            (
                "a line over the limit only by its trailing blanks is not broken",
                0,
                format!("X-T: {}{}", rep("a", 900), rep(" ", 200)),
                format!("X-T: {}", rep("a", 900)),
            ),
        ]
    }

    #[test]
    fn header_fields_fold_on_the_wire() {
        for (label, _, field, want) in header_cases() {
            let msg = format!("{field}\nSubject: s\nMIME-Version: 1.0\n\nbody\n");
            let out = wire(msg.as_bytes());
            let want_all =
                format!("{want}\r\nSubject: s\r\nMIME-Version: 1.0\r\n\r\nbody\r\n.\r\n");
            assert_eq!(text(&out), want_all, "{label}");
            assert_eq!(
                text(&wire_in_steps(msg.as_bytes(), 7)),
                want_all,
                "{label}, in steps"
            );
            for line in out.split(|&b| b == b'\n') {
                assert!(
                    line.len() <= MAX_LINE + 1,
                    "{label}: a line of {}",
                    line.len()
                );
            }
            // The canonical form, as delivery reports use it, is the same with LF.
            let folded = fold_field(format!("{field}\n").as_bytes());
            assert_eq!(
                text(&folded),
                format!("{}\n", want.replace("\r\n", "\n")),
                "{label}"
            );
        }
    }

    /// `unfolded` is `original` with `extra` SPs inserted, nothing else changed.
    fn with_sps_added(unfolded: &[u8], original: &[u8], extra: usize) -> bool {
        let (mut i, mut added) = (0, 0);
        for &b in unfolded {
            if original.get(i) == Some(&b) {
                i += 1;
            } else if b == b' ' {
                added += 1;
            } else {
                return false;
            }
        }
        i == original.len() && added == extra
    }

    #[test]
    fn unfolding_gives_the_field_back() {
        for (label, hard, field, want) in header_cases() {
            let unfolded = unfold(want.replace("\r\n", "\n").as_bytes());
            // Blanks at the end of an over-long line are not kept.
            let kept = if field.len() > MAX_LINE {
                field.trim_end_matches([' ', '\t'])
            } else {
                field.as_str()
            };
            let original = unfold(kept.as_bytes());
            if hard == 0 {
                assert_eq!(text(&unfolded), text(&original), "{label}");
            } else {
                assert_ne!(unfolded, original, "{label}");
                assert!(with_sps_added(&unfolded, &original, hard), "{label}");
            }
        }
        // The 60 addresses come back exactly.
        let (_, _, field, want) = &header_cases()[0];
        assert_eq!(&text(&unfold(want.as_bytes())), field);
        assert_eq!(field.len(), 1193);
    }

    #[test]
    fn over_long_blank_runs_are_cut() {
        let field = format!("X-Gap: a{}b{}", rep(" ", 2000), rep("c", 900));
        let lines = fold_header_line(field.as_bytes());
        for l in &lines[1..] {
            assert!(
                is_wsp(l[0]) && l.iter().any(|&b| !is_wsp(b)),
                "{:?}",
                text(l)
            );
        }
        let joined: Vec<u8> = lines.concat();
        assert_eq!(
            text(&joined),
            format!("X-Gap: a{}b{}", rep(" ", MAX_BLANK_RUN), rep("c", 900))
        );
        // A line that fits keeps its run, however long.
        let short = format!("X: {}y", rep(" ", 900));
        assert_eq!(fold_header_line(short.as_bytes()), vec![short.into_bytes()]);
    }

    #[test]
    fn a_word_after_blanks_at_a_fold_is_not_split() {
        // The blanks begin at octet 997: the first line folds after the first of them,
        // and the 997-octet word after them fits a continuation with one blank before
        // it, not with two or more.
        for blanks in [2, 3, 4, 190, MAX_BLANK_RUN] {
            let run: String = (0..blanks)
                .map(|i| if i % 2 == 0 { ' ' } else { '\t' })
                .collect();
            let head = format!("X:{} {}", rep("a", 800), rep("b", 194));
            assert_eq!(head.len(), 997);
            let field = format!("{head}{run}{}", rep("c", 997));
            let lines = fold_header_line(field.as_bytes());
            assert_eq!(lines.len(), 2, "{blanks} blanks: {} lines", lines.len());
            assert_eq!(text(&lines[0]), format!("{head} "), "{blanks}");
            assert!(is_wsp(lines[1][0]), "{blanks}");
            assert_eq!(text(&lines[1][1..]), rep("c", 997), "{blanks}");
        }
    }

    /// Body lines: (label, body line as queued; the line on the wire). The limit is
    /// [`MAX_BODY_LINE`], 2,040 octets.
    #[test]
    fn body_lines_continue_with_crlf_sp() {
        let cases: Vec<(&str, String, String)> = vec![
            ("999: unchanged", rep("x", 999), rep("x", 999)),
            ("1,500: unchanged", rep("x", 1500), rep("x", 1500)),
            ("2,040: unchanged", rep("x", 2040), rep("x", 2040)),
            ("2,041", rep("x", 2041), format!("{}\r\n x", rep("x", 2040))),
            (
                "5,000",
                rep("x", 5000),
                format!(
                    "{}\r\n {}\r\n {}",
                    rep("x", 2040),
                    rep("x", 2039),
                    rep("x", 921)
                ),
            ),
            (
                "a dot at the start of the continuation follows the SP",
                format!("{}.z", rep("y", 2040)),
                format!("{}\r\n .z", rep("y", 2040)),
            ),
            (
                "a long line starting with a dot is stuffed once",
                format!(".{}", rep("a", 2300)),
                format!("..{}\r\n {}", rep("a", 2039), rep("a", 261)),
            ),
            (
                "white space is kept as it is",
                format!("{} {}", rep("w", 2039), rep(" ", 10)),
                format!("{} \r\n {}", rep("w", 2039), rep(" ", 10)),
            ),
            (
                "UTF-8 is not split",
                format!("a{}", rep("€", 800)),
                format!("a{}\r\n {}", rep("€", 679), rep("€", 121)),
            ),
            (
                "a CR is text, counted in the line",
                format!("{}\r{}", rep("c", 1000), rep("d", 1500)),
                format!(
                    "{}\r{}\r\n {}",
                    rep("c", 1000),
                    rep("d", 1039),
                    rep("d", 461)
                ),
            ),
            (
                "a MIME part's header stays a header line",
                format!(
                    "Content-Disposition: attachment; filename=\"{}.pdf\"",
                    rep("n", 2100)
                ),
                format!(
                    "Content-Disposition: attachment; filename=\"{}\r\n {}.pdf\"",
                    rep("n", 2040 - 43),
                    rep("n", 103)
                ),
            ),
        ];
        for (label, line, want) in cases {
            let msg = format!("S: x\n\n{line}\nend\n");
            let want_all = format!("S: x\r\n\r\n{want}\r\nend\r\n.\r\n");
            assert_eq!(text(&wire(msg.as_bytes())), want_all, "{label}");
            for step in [1, 5, 999, 2041] {
                assert_eq!(
                    text(&wire_in_steps(msg.as_bytes(), step)),
                    want_all,
                    "{label}, {step}"
                );
            }
        }
        // Octets that are not UTF-8 are cut at the limit.
        let mut msg = b"S: x\n\n".to_vec();
        msg.extend(std::iter::repeat_n(0xE9u8, 2500));
        let out = wire(&msg);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines[2].len(), 2040 + 1);
        assert_eq!(lines[3].len(), 1 + 460 + 1);
    }

    /// The same rule at RFC 5321's limit, for a server that refuses longer lines.
    #[test]
    fn body_lines_at_the_rfc_5321_limit() {
        let long = format!(".{}", rep("y", 1499));
        let msg = format!("S: x\n\n{}\n{long}\n{}\n", rep("a", 998), rep("b", 2500));
        let want = format!(
            "S: x\r\n\r\n{}\r\n.{}\r\n {}\r\n{}\r\n {}\r\n {}\r\n.\r\n",
            rep("a", 998),
            &long[..998],
            &long[998..],
            rep("b", 998),
            rep("b", 997),
            rep("b", 505)
        );
        for step in [1, 7, 1000, 5000] {
            assert_eq!(text(&wire_limited(msg.as_bytes(), MAX_LINE, step)), want);
        }
        let got = measure(&mut msg.as_bytes(), MAX_LINE).unwrap();
        assert_eq!(got.longest, 998);
        assert_eq!(got.size as usize, want.len() - 3 - 1);
        // The same message as sendmail relays it: its lines as they are.
        let got = measure(&mut msg.as_bytes(), MAX_BODY_LINE).unwrap();
        assert_eq!(got.longest, 2040);
        let got = measure(&mut format!("S: x\n\n{long}\n").as_bytes(), MAX_BODY_LINE).unwrap();
        assert_eq!(got.longest, 1500);
        // Header lines are folded at 998 whatever the body limit; a UTF-8 character at
        // the limit moves the break back.
        let field = format!("To: {}", rep("a@b, ", 400));
        let body = format!("{}€{}", rep("e", 997), rep("f", 10));
        let out = text(&wire_limited(
            format!("{field}\n\n{body}\n").as_bytes(),
            MAX_LINE,
            64,
        ));
        assert!(out.split("\r\n").all(|l| l.len() <= MAX_LINE), "{out}");
        assert!(out.contains(&format!("{}\r\n €{}\r\n", rep("e", 997), rep("f", 10))));
    }

    #[test]
    fn a_header_line_too_long_for_the_intake_is_treated_as_body() {
        let mut msg = b"X-Huge: ".to_vec();
        msg.extend(std::iter::repeat_n(b'h', MAX_HEADER_BYTES + 10));
        msg.extend_from_slice(b"\n\nbody\n");
        let out = wire(&msg);
        assert!(
            out.split(|&b| b == b'\n')
                .all(|l| l.len() <= MAX_BODY_LINE + 1)
        );
        assert!(out.starts_with(b"X-Huge: hhh"));
        assert!(out.ends_with(b"\r\n\r\nbody\r\n.\r\n"));
        assert_eq!(wire_size(&mut &msg[..]).unwrap() as usize, out.len() - 3);
    }

    #[test]
    fn size_counts_what_is_sent() {
        let cases: &[&[u8]] = &[
            b"",
            b"S: x\n\nbody\n",
            b"S: x\n\n.dot\n..\n",
            b"no final newline",
            b"bare\rcr\r\n",
        ];
        let long = format!("To: {}\n\n{}\n", rep("a@b, ", 400), rep("x", 3000));
        for input in cases.iter().copied().chain([long.as_bytes()]) {
            let out = wire(input);
            let body = &out[..out.len() - 3];
            let stuffed = body
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"."))
                .count() as u64;
            assert_eq!(
                wire_size(&mut &input[..]).unwrap(),
                body.len() as u64 - stuffed,
                "{:?}",
                text(input)
            );
        }
    }

    #[test]
    fn copy_folded_header_stops_at_the_empty_line() {
        let addrs: Vec<String> = (1..=60).map(|n| format!("user{n}@example.org")).collect();
        let msg = format!(
            "To: {}\nSubject: s\n\n{}\n",
            addrs.join(", "),
            rep("x", 1500)
        );
        let mut r = msg.as_bytes();
        let mut out = Vec::new();
        let n = copy_folded_header(&mut r, &mut out).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(
            text(&out),
            format!(
                "To: {},\n {}\nSubject: s\n\n",
                addrs[..50].join(", "),
                addrs[50..].join(", ")
            )
        );
        assert_eq!(text(r), format!("{}\n", rep("x", 1500)), "the body is left");
        // Without an empty line (a header-only copy), to the end.
        let mut out = Vec::new();
        copy_folded_header(&mut &b"A: b\nC: d"[..], &mut out).unwrap();
        assert_eq!(out, b"A: b\nC: d");
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// One token of a header value: blanks (SP and HTAB), an ASCII word, a UTF-8
        /// word, or a long run without white space.
        fn token() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                4 => vec(prop_oneof![Just(b' '), Just(b'\t')], 1..6),
                1 => vec(prop_oneof![Just(b' '), Just(b'\t')], 1..=MAX_BLANK_RUN),
                6 => vec(0x21u8..0x7F, 1..30),
                2 => vec(proptest::sample::select(&["a", "é", "€", "𝄞", "<", "@", ","][..]), 1..20)
                    .prop_map(|v| v.concat().into_bytes()),
                1 => (0x21u8..0x7F, 300usize..2500).prop_map(|(c, n)| vec![c; n]),
            ]
        }

        /// A header field as queued (one line, no LF): a name, a colon, a value.
        fn field() -> impl Strategy<Value = Vec<u8>> {
            ("[A-Za-z][A-Za-z0-9-]{0,20}", vec(token(), 0..150)).prop_map(|(name, toks)| {
                let mut f = name.into_bytes();
                f.push(b':');
                for t in toks {
                    // Two runs of blanks in a row could make one longer than
                    // MAX_BLANK_RUN, which is cut (tested apart).
                    if is_wsp(t[0]) && f.last().is_some_and(|&b| is_wsp(b)) {
                        f.push(b'x');
                    }
                    f.extend_from_slice(&t);
                }
                f
            })
        }

        /// The longest run of octets that are not white space after the colon.
        fn longest_word(f: &[u8]) -> usize {
            let colon = f.iter().position(|&b| b == b':').unwrap_or(0);
            f[colon + 1..]
                .split(|&b| is_wsp(b))
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0)
        }

        /// Checks every folded line; returns the hard breaks (continuations that begin
        /// with an SP the field did not have there) and the blanks cut from the start of
        /// continuations.
        fn check_folded(field: &[u8], lines: &[Vec<u8>]) -> Result<(usize, usize), TestCaseError> {
            let field = &kept(field)[..];
            let mut at = 0;
            let mut hard = 0;
            let mut cut = 0;
            for (i, l) in lines.iter().enumerate() {
                prop_assert!(l.len() <= MAX_LINE, "a line of {}", l.len());
                prop_assert!(!l.contains(&b'\n'));
                if i == 0 {
                    prop_assert!(field.starts_with(l));
                } else {
                    prop_assert!(is_wsp(l[0]), "a continuation without white space");
                    prop_assert!(l.iter().any(|&b| !is_wsp(b)), "white space only");
                    let rest = &field[at..];
                    if rest.starts_with(l) && rest.first() == Some(&l[0]) {
                        // Folded before white space of the field.
                    } else if rest.first() == Some(&l[0]) && l.get(1).is_some_and(|&b| !is_wsp(b)) {
                        // Folded there, and the blanks after the fold cut to that one.
                        let blanks = rest.iter().take_while(|&&b| is_wsp(b)).count();
                        prop_assert!(blanks > 1, "a continuation neither folded nor hard");
                        prop_assert!(rest[blanks..].starts_with(&l[1..]), "octets changed");
                        cut += blanks - 1;
                        at += l.len() + blanks - 1;
                        continue;
                    } else {
                        prop_assert_eq!(l[0], b' ');
                        prop_assert!(rest.starts_with(&l[1..]));
                        hard += 1;
                        at += l.len() - 1;
                        continue;
                    }
                }
                at += l.len();
            }
            prop_assert_eq!(at, field.len(), "octets lost");
            Ok((hard, cut))
        }

        /// `b` with every run of white space made one SP: what a field's folding white
        /// space means (RFC 5322 §3.2.2).
        fn squash(b: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(b.len());
            for &c in b {
                if is_wsp(c) {
                    if out.last() != Some(&b' ') {
                        out.push(b' ');
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }

        /// What folding keeps of a header line: all of it when it fits; otherwise
        /// everything but the white space at its end.
        fn kept(line: &[u8]) -> Vec<u8> {
            if line.len() <= MAX_LINE {
                return line.to_vec();
            }
            let end = line
                .iter()
                .rposition(|&b| !is_wsp(b))
                .map_or(line.len(), |p| p + 1);
            line[..end].to_vec()
        }

        proptest! {
            #[test]
            fn folded_fields_fit_and_unfold(f in field()) {
                let lines = fold_header_line(&f);
                for l in &lines {
                    prop_assert!(std::str::from_utf8(l).is_ok(), "UTF-8 split");
                }
                if f.len() <= MAX_LINE {
                    prop_assert_eq!(&lines, &vec![f.clone()]);
                }
                let (hard, cut) = check_folded(&f, &lines)?;
                let word = longest_word(&f);
                if word < 900 {
                    prop_assert_eq!(hard, 0, "a hard break where a fold was possible");
                }
                if word + MAX_BLANK_RUN < MAX_LINE - 1 {
                    prop_assert_eq!(cut, 0, "blanks cut where the word fitted");
                }
                // RFC 5322 unfolding: the field, with one SP per hard break and the cut
                // blanks gone.
                let mut canonical = kept(&f);
                canonical.push(b'\n');
                let folded = fold_field(&canonical);
                let unfolded = unfold(&folded);
                prop_assert_eq!(unfolded.len() + cut, canonical.len() + hard);
                if cut == 0 {
                    prop_assert!(with_sps_added(&unfolded, &canonical, hard));
                } else {
                    prop_assert!(with_sps_added(&squash(&unfolded), &squash(&canonical), hard));
                }
                if hard == 0 && cut == 0 {
                    prop_assert_eq!(unfolded, canonical);
                }
            }

            #[test]
            fn any_octets_in_a_header_line(
                line in vec(any::<u8>(), 0..4000).prop_map(|v| {
                    // Any octet but LF, blanks and UTF-8 more often than by chance.
                    v.into_iter()
                        .map(|b| match b % 16 {
                            _ if b == b'\n' => b'x',
                            0 | 1 => b' ',
                            2 => b'\t',
                            3 => 0xC3,
                            4 => 0xA9,
                            5 => b':',
                            _ => b,
                        })
                        .collect::<Vec<u8>>()
                })
            ) {
                let lines = fold_header_line(&line);
                for (i, l) in lines.iter().enumerate() {
                    prop_assert!(l.len() <= MAX_LINE);
                    if i > 0 {
                        prop_assert!(is_wsp(l[0]));
                        prop_assert!(l.iter().any(|&b| !is_wsp(b)));
                    }
                }
                let longest_run = line
                    .split(|&b| !is_wsp(b))
                    .map(<[u8]>::len)
                    .max()
                    .unwrap_or(0);
                if longest_run <= MAX_BLANK_RUN {
                    check_folded(&line, &lines)?;
                }
            }

            #[test]
            fn bodies_on_the_wire(
                lines in vec(
                    (
                        // Mostly letters, with blanks, dots, lone CRs, `€` whole or
                        // in pieces and any other octet (bytes mapped, which is cheap);
                        // or only letters, blanks, dots and whole `€`s: valid UTF-8.
                        (vec(any::<u8>(), 0..2600), any::<bool>()).prop_map(|(v, utf8)| {
                            let mut out = Vec::with_capacity(v.len() + 8);
                            for b in v {
                                match b % 32 {
                                    0..=17 => out.push(b'a'),
                                    18..=21 => out.push(b' '),
                                    22 | 23 => out.push(b'.'),
                                    24 | 25 => out.extend_from_slice("€".as_bytes()),
                                    _ if utf8 => out.push(b'a'),
                                    26 => out.push(b'\r'),
                                    27 => out.push(0x82),
                                    _ => out.push(b),
                                }
                            }
                            out
                        }),
                        prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b""[..])],
                    ),
                    0..6,
                ),
                step in 1usize..5000,
                limit in prop_oneof![Just(MAX_BODY_LINE), Just(MAX_LINE)],
            ) {
                let mut msg = b"Subject: x\n\n".to_vec();
                for (text, eol) in &lines {
                    msg.extend_from_slice(text);
                    msg.extend_from_slice(eol);
                }
                let out = wire_limited(&msg, limit, 1 << 20);
                prop_assert_eq!(&wire_limited(&msg, limit, step), &out);
                if limit == MAX_BODY_LINE {
                    prop_assert_eq!(&wire_in_steps(&msg, step), &out);
                }
                prop_assert_eq!(
                    measure(&mut &msg[..], limit).unwrap().size as usize,
                    out.len() - 3 - out[..out.len() - 3]
                        .split(|&b| b == b'\n')
                        .filter(|l| l.starts_with(b"."))
                        .count()
                );
                // Only CRLF line ends, the last line the lone dot.
                prop_assert!(out.ends_with(b"\r\n.\r\n"));
                for (i, &b) in out.iter().enumerate() {
                    if b == b'\n' {
                        prop_assert_eq!(out[i - 1], b'\r');
                    }
                }
                // The canonical body: the lines as stored; a CR is text.
                let body_at = msg.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
                let mut canonical: Vec<&[u8]> = Vec::new();
                let mut rest = &msg[body_at..];
                while !rest.is_empty() {
                    let end = rest.iter().position(|&b| b == b'\n');
                    let Some(end) = end else {
                        canonical.push(rest);
                        break;
                    };
                    canonical.push(&rest[..end]);
                    rest = &rest[end + 1..];
                }
                // The wire lines without dot-stuffing; each stored line is its first
                // wire line and, when longer than the limit, continuations that begin
                // with the inserted SP.
                let wire_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let body_wire = &out[wire_at..out.len() - 3];
                // Each LF ends a line, with the CR before it (a CR before that one is
                // text of the line).
                let wire_lines: Vec<&[u8]> = body_wire
                    .split_inclusive(|&b| b == b'\n')
                    .map(|l| &l[..l.len() - 2])
                    .map(|l| l.strip_prefix(b".").unwrap_or(l))
                    .collect();
                let mut k = 0;
                for stored in canonical {
                    let first = wire_lines[k];
                    k += 1;
                    prop_assert!(first.len() <= limit);
                    prop_assert!(stored.starts_with(first));
                    if std::str::from_utf8(stored).is_ok() {
                        prop_assert!(std::str::from_utf8(first).is_ok(), "UTF-8 split");
                    }
                    let mut done = first.len();
                    let mut last_len = first.len();
                    while done < stored.len() {
                        // Broken only where the line was full (a UTF-8 character at
                        // the limit may move the break back by up to 3 octets).
                        prop_assert!(last_len >= limit - 3, "broken at {}", last_len);
                        let cont = wire_lines[k];
                        k += 1;
                        prop_assert!(cont.len() <= limit);
                        prop_assert!(cont.len() > 1);
                        prop_assert_eq!(cont[0], b' ');
                        prop_assert!(stored[done..].starts_with(&cont[1..]));
                        if std::str::from_utf8(stored).is_ok() {
                            prop_assert!(std::str::from_utf8(&cont[1..]).is_ok(), "UTF-8 split");
                        }
                        done += cont.len() - 1;
                        last_len = cont.len();
                    }
                }
                prop_assert_eq!(k, wire_lines.len(), "extra lines on the wire");
                let longest = wire_lines.iter().map(|l| l.len()).max().unwrap_or(0).max(10);
                prop_assert_eq!(measure(&mut &msg[..], limit).unwrap().longest, longest);
            }
        }
    }
}

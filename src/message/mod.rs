//! Message intake: bytes from stdin (never assumed UTF-8) → canonical header block + a body
//! streamed to the spool.
//!
//! Canonical form: every line ends in LF (CRLF becomes LF; a lone CR inside a body line is
//! kept, also one before the line end (`\r\r\n` keeps one CR), as sendmail 8.17 keeps it;
//! a CR that is the last octet of the input is dropped, as sendmail drops it; in a header
//! line a CR becomes a blank, and a CR before the line end is dropped, so a field stays one
//! field; the last line is kept without an LF if it had none). Recorded: compat-tests
//! `content-bare-cr-body`, `content-cr-cr-lf`, `content-cr-at-end`, `content-cr-line`.
//!
//! A NUL octet anywhere in the message is noted ([`LineReader::saw_nul`]): sendmail
//! refuses such a message (`NUL byte not allowed`, `content-nul-*`), and so does the
//! intake, after reading it whole. Without `-i` a line
//! holding only `.` (also `.\r`) ends the message and a line starting with `..` loses its
//! first dot, as sendmail reads the command line; with `-i` only EOF ends it and dots are
//! kept. Lines of any length are accepted: the reader works in 64 KiB pieces, so a 50 MB
//! single-line body is never held in memory.
//!
//! The header block is kept in memory (bounded by [`MAX_HEADER_BYTES`]) because `-t` needs
//! the recipients before anything is written, and because the added headers go in front.
//!
//! Any bytes are a message: header lines are cut only with `get`, `split` and the like,
//! never by byte index (the lints below keep it so), so no input makes intake panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

pub mod address;
pub mod wire;

use crate::exit::{Fatal, Sysexit};
use std::io::{self, BufRead, Read, Write};

/// The most header bytes accepted (sendmail's MaxHeadersLength is smaller by default).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
const PIECE: u64 = 64 * 1024;

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole line; the buffer holds it without its line ending.
    Line,
    /// Part of a long line; more of the same line follows.
    Partial,
    /// The message ended (EOF, or the lone-dot line without `-i`).
    End,
}

/// Reads a message in lines or pieces, applying the dot rule and CRLF → LF.
pub struct LineReader<R> {
    inner: R,
    ignore_dots: bool,
    at_line_start: bool,
    carry_cr: bool,
    done: bool,
    /// Whether the message ended with the lone-dot line (rather than EOF).
    pub ended_by_dot: bool,
    /// Whether any byte with the high bit set was read.
    pub saw_8bit: bool,
    /// Whether a NUL octet was read (the message is then refused).
    pub saw_nul: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, ignore_dots: bool) -> LineReader<R> {
        LineReader {
            inner,
            ignore_dots,
            at_line_start: true,
            carry_cr: false,
            done: false,
            ended_by_dot: false,
            saw_8bit: false,
            saw_nul: false,
        }
    }

    /// Read the next piece into `out` (cleared first).
    pub fn read_piece(&mut self, out: &mut Vec<u8>) -> io::Result<Piece> {
        out.clear();
        if self.done {
            return Ok(Piece::End);
        }
        let n = if self.carry_cr {
            // A CR held back from the previous piece: owed unless the input ends here
            // (a CR as the last octet of the input is dropped, as sendmail drops it).
            out.push(b'\r');
            let n = (&mut self.inner).take(PIECE).read_until(b'\n', out)?;
            self.carry_cr = false;
            if n == 0 {
                out.clear();
            }
            n
        } else {
            (&mut self.inner).take(PIECE).read_until(b'\n', out)?
        };
        if n == 0 {
            // EOF. An unterminated last line is kept as it is (sendmail adds no newline).
            self.done = true;
            return Ok(if out.is_empty() {
                Piece::End
            } else {
                Piece::Partial
            });
        }
        let complete = out.last() == Some(&b'\n');
        if complete {
            out.pop();
            if out.last() == Some(&b'\r') {
                out.pop();
            }
        }
        let dot_line = out.as_slice() == b"." || (!complete && out.as_slice() == b".\r");
        if self.at_line_start && !self.ignore_dots && dot_line && (complete || out.len() <= 2) {
            self.done = true;
            self.ended_by_dot = true;
            out.clear();
            return Ok(Piece::End);
        }
        // Without -i, sendmail removes the first of two leading dots (it treats the input
        // like SMTP DATA in that one respect).
        if self.at_line_start && !self.ignore_dots && out.starts_with(b"..") {
            out.remove(0);
        }
        if out.iter().any(|&b| b >= 0x80) {
            self.saw_8bit = true;
        }
        if out.contains(&0) {
            self.saw_nul = true;
        }
        if complete {
            self.at_line_start = true;
            Ok(Piece::Line)
        } else {
            if out.last() == Some(&b'\r') {
                out.pop();
                self.carry_cr = true;
            }
            self.at_line_start = false;
            Ok(Piece::Partial)
        }
    }

    /// A whole line, at most `limit` bytes (longer lines are an error for the caller).
    pub fn read_line(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<Option<bool>> {
        out.clear();
        let mut piece = Vec::new();
        loop {
            match self.read_piece(&mut piece)? {
                Piece::End => {
                    return Ok(if out.is_empty() { None } else { Some(true) });
                }
                Piece::Line => {
                    out.extend_from_slice(&piece);
                    return Ok(Some(out.len() <= limit));
                }
                Piece::Partial => {
                    out.extend_from_slice(&piece);
                    if out.len() > limit {
                        return Ok(Some(false));
                    }
                }
            }
        }
    }
}

/// One header field as written (name, and the raw text with continuation lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    /// `Name: value\n` plus any continuation lines, canonical LF endings.
    pub raw: Vec<u8>,
}

impl Header {
    pub fn new(name: &str, value: &str) -> Header {
        let mut raw = format!("{name}: {value}").into_bytes();
        if value.is_empty() {
            raw.pop();
        }
        raw.push(b'\n');
        Header {
            name: name.to_string(),
            raw,
        }
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value is empty or only blanks and line folds (`Date:`, `From: \n\t\n`).
    pub fn is_blank(&self) -> bool {
        let colon = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        self.raw
            .get(colon + 1..)
            .unwrap_or_default()
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    }

    /// The unfolded value, lossily decoded (for address parsing).
    pub fn value(&self) -> String {
        let colon = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        let v = self.raw.get(colon + 1..).unwrap_or_default();
        let mut s = String::from_utf8_lossy(v).into_owned();
        s = s.replace('\n', "");
        s.trim().to_string()
    }
}

/// The header name of a line, if it is a header line (`Name:` with printable name chars,
/// optionally followed by blanks before the colon, as RFC 822 allowed).
fn header_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, _) = line.split_at_checked(colon)?;
    let last = name.iter().rposition(|&b| b != b' ' && b != b'\t')?;
    let name = name.get(..=last)?;
    if name.iter().all(|&b| (33..=126).contains(&b) && b != b':') {
        Some(String::from_utf8_lossy(name).into_owned())
    } else {
        None
    }
}

/// A field's line with no blank between its name and the colon (`Subject : x` →
/// `Subject: x`), with its LF: sendmail relays every field so (recorded:
/// `bytes-space-colon`, `sc-t-to-bcc`, `sc-resent`).
fn without_blanks_before_colon(name: &str, line: &[u8]) -> Vec<u8> {
    let rest = line
        .iter()
        .position(|&b| b == b':')
        .and_then(|colon| line.split_at_checked(colon))
        .map_or(line, |(_, rest)| rest);
    let mut raw = Vec::with_capacity(name.len() + rest.len() + 1);
    raw.extend_from_slice(name.as_bytes());
    raw.extend_from_slice(rest);
    raw.push(b'\n');
    raw
}

/// The header section of a message read from stdin.
#[derive(Debug, Default)]
pub struct Head {
    pub headers: Vec<Header>,
    /// A line that was not a header and so began the body (with its LF).
    pub first_body_line: Option<Vec<u8>>,
    /// The message ended within the header section (no body follows).
    pub ended: bool,
    /// The bytes of the header fields as submitted, before any was rewritten (a blank
    /// before the colon) or removed: sendmail's queue priority counts them.
    pub submitted_bytes: u64,
}

/// Read the header section. A first line `From ...` (an mbox separator) is dropped, as
/// sendmail does.
pub fn read_head<R: BufRead>(reader: &mut LineReader<R>) -> Result<Head, Fatal> {
    let mut head = Head::default();
    let mut line = Vec::new();
    let mut total = 0usize;
    let mut first = true;
    loop {
        let got = reader
            .read_line(&mut line, MAX_HEADER_BYTES)
            .map_err(|e| read_error(&e))?;
        let Some(fits) = got else {
            head.ended = true;
            return Ok(head);
        };
        total += line.len() + 1;
        if !fits || total > MAX_HEADER_BYTES {
            return Err(Fatal::new(
                Sysexit::DataErr,
                format!("Headers too large ({MAX_HEADER_BYTES} max)"),
            ));
        }
        if first {
            first = false;
            if line.starts_with(b"From ") {
                continue;
            }
        }
        // A CR the line's end did not take (`\r\r\n`) is dropped; a line of nothing
        // else is the empty line.
        let text_end = line.iter().rposition(|&b| b != b'\r').map_or(0, |p| p + 1);
        if text_end == 0 {
            return Ok(head);
        }
        let is_continuation = matches!(line.first(), Some(b' ' | b'\t'));
        let name = if is_continuation {
            None
        } else {
            header_name(&line)
        };
        if is_continuation || name.is_some() {
            // A lone CR inside a field becomes a blank: a CR is a line end on the wire
            // and to many readers, and the field must stay one field (no header line
            // smuggled in as `Subject: x\rBcc: y`).
            line.truncate(text_end);
            for b in line.iter_mut().filter(|b| **b == b'\r') {
                *b = b' ';
            }
        }
        if is_continuation && let Some(last) = head.headers.last_mut() {
            last.raw.extend_from_slice(&line);
            last.raw.push(b'\n');
            head.submitted_bytes += line.len() as u64 + 1;
            continue;
        }
        if let Some(name) = name {
            head.submitted_bytes += line.len() as u64 + 1;
            head.headers.push(Header {
                raw: without_blanks_before_colon(&name, &line),
                name,
            });
            continue;
        }
        let mut body = line.clone();
        body.push(b'\n');
        head.first_body_line = Some(body);
        return Ok(head);
    }
}

/// Why copying the body stopped early.
#[derive(Debug)]
pub enum BodyError {
    Read(io::Error),
    Write(io::Error),
    TooBig(u64),
}

/// Copy the rest of the message to `out`; returns the number of body bytes written.
/// `limit` counts header and body bytes together (`header_bytes` already used).
pub fn copy_body<R: BufRead, W: Write>(
    reader: &mut LineReader<R>,
    out: &mut W,
    limit: Option<u64>,
    header_bytes: u64,
) -> Result<u64, BodyError> {
    // Grown as lines need (to PIECE and a CR at most): a message of short lines never
    // touches more than a page of it, nor makes the heap grow for it.
    let mut piece = Vec::with_capacity(1024);
    let mut written = 0u64;
    loop {
        let kind = reader.read_piece(&mut piece).map_err(BodyError::Read)?;
        if kind == Piece::End {
            return Ok(written);
        }
        if kind == Piece::Line {
            piece.push(b'\n');
        }
        written += piece.len() as u64;
        if let Some(max) = limit
            && written + header_bytes > max
        {
            return Err(BodyError::TooBig(max));
        }
        out.write_all(&piece).map_err(BodyError::Write)?;
    }
}

/// Read errors on stdin (the caller is told; nothing is queued).
pub fn read_error(e: &io::Error) -> Fatal {
    Fatal::new(
        Sysexit::IoErr,
        format!(
            "collect: read error on standard input: {}",
            crate::config::io_text(e)
        ),
    )
}

/// The address fields of sendmail's header table (`HdrInfo`, conf.c): the originator
/// fields (H_FROM) and the destination fields (H_RCPT). Their addresses are qualified
/// and their old-style lists written with commas; the others are left as written.
const SENDER_FIELDS: &[&str] = &[
    "Resent-Sender",
    "Resent-From",
    "Resent-Reply-To",
    "Sender",
    "From",
    "Reply-To",
    "Errors-To",
    "Disposition-Notification-To",
];
const RECIPIENT_FIELDS: &[&str] = &[
    "To",
    "Resent-To",
    "Cc",
    "Resent-Cc",
    "Bcc",
    "Resent-Bcc",
    "Apparently-To",
];

impl Header {
    /// An originator field (From, Sender, Reply-To, Errors-To, the Resent- forms,
    /// Disposition-Notification-To).
    pub fn is_sender_field(&self) -> bool {
        SENDER_FIELDS.iter().any(|n| self.is(n))
    }

    /// A destination field (To, Cc, Bcc, their Resent- forms, Apparently-To).
    pub fn is_recipient_field(&self) -> bool {
        RECIPIENT_FIELDS.iter().any(|n| self.is(n))
    }

    /// A `Resent-*` field (RFC 5322 §3.6.6).
    pub fn is_resent(&self) -> bool {
        self.name
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("resent-"))
    }

    /// The value as written: everything after the colon, continuation lines and their
    /// line breaks included, without the final line break. `None` when it is not UTF-8
    /// (such a field is never rewritten).
    fn raw_value(&self) -> Option<&str> {
        let colon = self.raw.iter().position(|&b| b == b':')?;
        let v = self.raw.get(colon + 1..)?;
        let v = v.strip_suffix(b"\n").unwrap_or(v);
        std::str::from_utf8(v).ok()
    }

    /// Replace the value, keeping the name as written.
    fn set_raw_value(&mut self, value: &str) {
        let colon = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        let mut raw = self.raw.get(..=colon).unwrap_or_default().to_vec();
        raw.extend_from_slice(value.as_bytes());
        raw.push(b'\n');
        self.raw = raw;
    }
}

/// The header fields sendmail counts as hops: those its `HdrInfo` table flags `H_TRACE`
/// (conf.c: `Received`, `X400-Received`, `Via`, `Mail-From`; recorded: `hop-via`,
/// `hop-mail-from`, `hop-x400-received`, and `hop-x-received` where `X-Received` is not
/// one).
pub const TRACE_FIELDS: [&str; 4] = ["Received", "X400-Received", "Via", "Mail-From"];

/// Whether `name` is one of [`TRACE_FIELDS`] (case-insensitive).
pub fn is_trace_field(name: &str) -> bool {
    TRACE_FIELDS.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// The number of trace fields ([`TRACE_FIELDS`]) in a parsed header block.
pub fn trace_count(headers: &[Header]) -> usize {
    headers.iter().filter(|h| is_trace_field(&h.name)).count()
}

/// The number of trace fields in a raw header block (`name:` at the start of a line,
/// blanks allowed before the colon), for a queued message whose header is read back.
pub fn trace_count_raw(header: &[u8]) -> usize {
    header
        .split(|&b| b == b'\n')
        .filter(|l| {
            let Some(colon) = l.iter().position(|&b| b == b':') else {
                return false;
            };
            let name = l.get(..colon).unwrap_or_default();
            let name = name.trim_ascii_end();
            !l.starts_with(b" ")
                && !l.starts_with(b"\t")
                && std::str::from_utf8(name).is_ok_and(is_trace_field)
        })
        .count()
}

/// The hop count sendmail gives a message at submission: the trace fields it came with
/// plus the `Received:` this host adds, or the `-h` starting count when that is larger
/// (recorded from 8.17: `-h 25` with no field passes `MaxHopCount=25`, `-h 26` does
/// not; `-h 10` with 15 fields passes, with 25 it does not: `hop-h-*`).
pub fn hop_count(headers: &[Header], start: Option<i64>) -> i64 {
    let counted = i64::try_from(trace_count(headers))
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    counted.max(start.unwrap_or(0))
}

/// Whether the message carries any `Resent-*` field: sendmail then takes `-t`
/// recipients from the Resent- destination fields only, and adds `Resent-Date:`,
/// `Resent-From:` and `Resent-Message-Id:` when missing.
pub fn is_resent(headers: &[Header]) -> bool {
    headers.iter().any(Header::is_resent)
}

/// Let every address field of the message clear [`address::OldStyle`] as sendmail's
/// `chompheader` does (a `,`, `;`, `<` or `(` in any of them ends old-style lists for
/// the whole message).
pub fn observe_style(headers: &[Header], style: &mut address::OldStyle) {
    for h in headers {
        if h.is_sender_field() || h.is_recipient_field() {
            style.list(&h.value());
        }
    }
}

/// Recipients for `-t`, in sendmail's order: each destination field in order, each list
/// in sendmail's order. A message with Resent- fields is being resent, and only its
/// `Resent-To`, `Resent-Cc` and `Resent-Bcc` count (every resent block; recorded in
/// compat-tests `field-resent-t`); otherwise `To`, `Cc`, `Bcc` and `Apparently-To`.
pub fn header_recipients(headers: &[Header], old_style: bool) -> Vec<address::Listed> {
    let resent = is_resent(headers);
    headers
        .iter()
        .filter(|h| h.is_recipient_field() && h.is_resent() == resent)
        .enumerate()
        .flat_map(|(k, h)| {
            let mut items = address::recipients_of_list(&h.value(), old_style);
            for l in &mut items {
                l.list = k;
            }
            items
        })
        .collect()
}

/// Apply sendmail's rules for the fields it treats specially on intake (collect.c and
/// putheader, recorded in compat-tests `field-*`):
/// - `Return-Path:`, `Content-Length:` and `Full-Name:` are removed (sendmail's H_ACHECK
///   fields: a Return-Path is the final delivery's to write, and a stale
///   Content-Length misleads mbox readers);
/// - `Bcc:` and `Resent-Bcc:` are removed when the message has a `To:`, `Cc:` or
///   `Apparently-To:` field, and emptied (`Bcc:`) when it has none, so the message
///   still has a destination field.
pub fn apply_field_rules(headers: &mut Vec<Header>) {
    headers.retain(|h| !(h.is("Return-Path") || h.is("Content-Length") || h.is("Full-Name")));
    let has_destination = headers
        .iter()
        .any(|h| h.is("To") || h.is("Cc") || h.is("Apparently-To"));
    if has_destination {
        headers.retain(|h| !(h.is("Bcc") || h.is("Resent-Bcc")));
    } else {
        for h in headers
            .iter_mut()
            .filter(|h| h.is("Bcc") || h.is("Resent-Bcc"))
        {
            h.set_raw_value("");
        }
    }
}

/// Qualify the unqualified addresses of every address field and write old-style lists
/// with commas, as sendmail does before relaying (compat-tests `hdr-*`): originator
/// fields with `sender_domain` (MASQUERADE's domain, else the mail name), destination
/// fields with `domain`. `old_style` is the message's [`address::OldStyle`] once
/// [`observe_style`] has seen every field (so no field of an old-style message has a
/// `, ; < (`). Fields that need nothing, and fields that are not UTF-8 or do not parse,
/// are kept byte for byte.
pub fn qualify_fields(headers: &mut [Header], domain: &str, sender_domain: &str, old_style: bool) {
    for h in headers.iter_mut() {
        let d = if h.is_sender_field() {
            sender_domain
        } else if h.is_recipient_field() {
            domain
        } else {
            continue;
        };
        let Some(value) = h.raw_value() else {
            continue;
        };
        if let Some(new) = address::qualify_list(value, d, old_style) {
            h.set_raw_value(&new);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {

    #[test]
    fn hop_count_is_trace_fields_plus_ours_or_the_start() {
        let head = |text: &str| {
            let mut r = LineReader::new(text.as_bytes(), false);
            read_head(&mut r).unwrap().headers
        };
        let h = head(
            "Received: a\nVia: b\nMail-From: c\nX400-Received: d\nX-Received: e\nSubject: s\n\n",
        );
        assert_eq!(trace_count(&h), 4);
        assert_eq!(hop_count(&h, None), 5);
        assert_eq!(hop_count(&h, Some(3)), 5);
        assert_eq!(hop_count(&h, Some(26)), 26);
        assert_eq!(hop_count(&h, Some(-5)), 5);
        assert_eq!(hop_count(&head("Subject: s\n\n"), None), 1);
    }

    use super::*;

    fn all(input: &[u8], ignore_dots: bool) -> (Head, Vec<u8>) {
        let mut r = LineReader::new(input, ignore_dots);
        let head = read_head(&mut r).unwrap();
        let mut body = head.first_body_line.clone().unwrap_or_default();
        if !head.ended {
            copy_body(&mut r, &mut body, None, 0).unwrap();
        }
        (head, body)
    }

    #[test]
    fn dot_rules() {
        let cases: &[(&[u8], bool, &[u8])] = &[
            (b"S: x\n\nbody\n.\nafter\n", false, b"body\n"),
            (b"S: x\n\nbody\n.\r\nafter\n", false, b"body\n"),
            (b"S: x\n\nbody\n.\nafter\n", true, b"body\n.\nafter\n"),
            (b"S: x\n\nbody\n..\nafter\n", false, b"body\n.\nafter\n"),
            (b"S: x\n\n..two\n", false, b".two\n"),
            (b"S: x\n\n..two\n", true, b"..two\n"),
            (b"S: x\n\nx..y\n", false, b"x..y\n"),
            (b"S: x\n\nbody\n. \nafter\n", false, b"body\n. \nafter\n"),
            (b"S: x\n\nbody\n.", false, b"body\n"),
            (b"S: x\n\nbody\r\nline2\r\n", false, b"body\nline2\n"),
            (b"S: x\n\nno newline", false, b"no newline"),
            (b"S: x\n\nends in cr\r", false, b"ends in cr"),
            (b"S: x\n\nafter\n\r", false, b"after\n"),
            (b"S: x\n\nline\r\r\nnext\n", false, b"line\r\nnext\n"),
            (b"S: x\n\nmid\rline\r", true, b"mid\rline"),
            (b"S: x\n\nbare\rcr\n", false, b"bare\rcr\n"),
            (b"S: x\n\nx.\ny\n", false, b"x.\ny\n"),
        ];
        for (input, dots, want) in cases {
            let (_, body) = all(input, *dots);
            assert_eq!(
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(want),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_nul_octet_is_noted_in_the_header_and_the_body() {
        for (input, nul) in [
            (&b"S: x\n\nbody\n"[..], false),
            (b"S: a\0b\n\nbody\n", true),
            (b"S: x\n\nbe\0fore\n", true),
            (b"S: x\n\nlast\0", true),
        ] {
            let mut r = LineReader::new(input, false);
            let head = read_head(&mut r).unwrap();
            if !head.ended {
                copy_body(&mut r, &mut Vec::new(), None, 0).unwrap();
            }
            assert_eq!(r.saw_nul, nul, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn dot_in_headers_ends_message() {
        let (head, body) = all(b"Subject: x\n.\nTo: y\n", false);
        assert!(head.ended);
        assert_eq!(head.headers.len(), 1);
        assert!(body.is_empty());
    }

    #[test]
    fn long_lines_stream_in_pieces() {
        let mut input = b"Subject: x\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', 200_000));
        input.extend_from_slice(b"\r\nend\r\n");
        let (_, body) = all(&input, false);
        assert_eq!(body.len(), 200_000 + 1 + 4);
        assert!(body.ends_with(b"a\nend\n"));
        // A CRLF split across the piece boundary still becomes LF.
        let mut input = b"S: x\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'b', PIECE as usize - 1));
        input.extend_from_slice(b"\r\nz\n");
        let (_, body) = all(&input, false);
        assert!(body.ends_with(b"b\nz\n"), "{:?}", &body[body.len() - 4..]);
        assert!(!body.contains(&b'\r'));
    }

    #[test]
    fn headers_parsed() {
        let (head, body) = all(
            b"From alice Mon Jan 1\nTo: a@x,\n  b@y\nSubject : hi\nX-8: \xff\xfe\n\nbody\n",
            false,
        );
        let names: Vec<&str> = head.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["To", "Subject", "X-8"]);
        assert_eq!(head.headers[0].value(), "a@x,  b@y");
        let r: Vec<String> = header_recipients(&head.headers, false)
            .into_iter()
            .map(|l| l.address)
            .collect();
        assert_eq!(r, ["b@y", "a@x"]);
        assert_eq!(body, b"body\n");
    }

    #[test]
    fn non_header_line_starts_body() {
        let (head, body) = all(b"Subject: x\nthis is body\nmore\n", false);
        assert_eq!(head.headers.len(), 1);
        assert_eq!(body, b"this is body\nmore\n");
        let (head, body) = all(b"just text\n", false);
        assert!(head.headers.is_empty());
        assert_eq!(body, b"just text\n");
    }

    #[test]
    fn bcc_removed_and_recipients() {
        let (mut head, _) = all(b"To: a@x\nCc: B <b@y>\nBcc: c@z, d@w\n\nb\n", false);
        let r: Vec<String> = header_recipients(&head.headers, false)
            .into_iter()
            .map(|l| l.address)
            .collect();
        assert_eq!(r, ["a@x", "b@y", "d@w", "c@z"]);
        apply_field_rules(&mut head.headers);
        assert_eq!(head.headers.len(), 2);
        assert!(head.headers.iter().all(|h| !h.is("Bcc")));
    }

    #[test]
    fn size_limit() {
        let mut r = LineReader::new(&b"aaaa\nbbbb\ncccc\n"[..], false);
        let mut out = Vec::new();
        assert!(matches!(
            copy_body(&mut r, &mut out, Some(8), 0),
            Err(BodyError::TooBig(8))
        ));
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// Octets with line ends, blanks, colons, dots and `From ` more often than by
        /// chance.
        fn octets() -> impl Strategy<Value = Vec<u8>> {
            static SHORT: &[&[u8]] = &[b"\n", b"\r\n", b"\r", b" ", b"\t", b":", b".", b"a"];
            static LONG: &[&[u8]] = &[b"From ", b"To: ", b"\n.\n", b"\n\n", b"\n ", b"\xc3\xa9"];
            vec(
                prop_oneof![
                    4 => any::<u8>().prop_map(|b| vec![b]),
                    4 => select(SHORT).prop_map(<[u8]>::to_vec),
                    1 => select(LONG).prop_map(<[u8]>::to_vec),
                ],
                0..400,
            )
            .prop_map(|v| v.concat())
        }

        /// The text of a header line after its first octets: any octet but LF, not
        /// ending in CR (which the line end would take).
        fn line_text() -> impl Strategy<Value = Vec<u8>> {
            vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..80).prop_map(|mut v| {
                while v.last() == Some(&b'\r') {
                    v.pop();
                }
                v
            })
        }

        /// A header field as lines without their line ends: `Name:` (blanks before the
        /// colon on all but the first field) and a value, then continuation lines.
        fn field(first: bool) -> impl Strategy<Value = (String, Vec<Vec<u8>>)> {
            let blanks = if first { "" } else { "[ \t]{0,2}" };
            (
                "[A-Za-z][A-Za-z0-9-]{0,15}",
                blanks,
                line_text(),
                vec((select(&[b' ', b'\t'][..]), line_text()), 0..3),
            )
                .prop_map(|(name, blanks, value, more)| {
                    let mut first = format!("{name}{blanks}:").into_bytes();
                    first.extend_from_slice(&value);
                    let mut lines = vec![first];
                    for (lead, text) in more {
                        let mut l = vec![lead];
                        l.extend_from_slice(&text);
                        lines.push(l);
                    }
                    (name, lines)
                })
        }

        fn header_block() -> impl Strategy<Value = Vec<(String, Vec<Vec<u8>>)>> {
            (field(true), vec(field(false), 0..8)).prop_map(|(first, rest)| {
                let mut v = vec![first];
                v.extend(rest);
                v
            })
        }

        /// Header fields as they reach the field rules: any name (the special ones
        /// often) and any octets, a colon or not.
        fn fields() -> impl Strategy<Value = Vec<Header>> {
            let name = prop_oneof![
                select(
                    &[
                        "To",
                        "Cc",
                        "Bcc",
                        "Resent-Bcc",
                        "Apparently-To",
                        "From",
                        "Sender",
                        "Reply-To",
                        "Return-Path",
                        "Content-Length",
                        "Full-Name",
                        "Subject",
                    ][..]
                )
                .prop_map(String::from),
                ".{0,12}",
            ];
            // The raw text: the name and a colon (or not), then an address list, any
            // text, or any octets, with a continuation line (or not).
            let value = prop_oneof![
                "[a-z@<>(),;:\" .é]{0,60}".prop_map(String::into_bytes),
                vec(any::<u8>(), 0..100),
            ];
            let raw = (
                any::<bool>(),
                value,
                proptest::option::of("[ \t][a-z@<>(), ]{0,20}"),
            );
            vec((name, raw), 0..8).prop_map(|v| {
                v.into_iter()
                    .map(|(name, (colon, value, more))| {
                        let mut raw = if colon {
                            format!("{name}:").into_bytes()
                        } else {
                            Vec::new()
                        };
                        raw.extend_from_slice(&value);
                        if let Some(m) = more {
                            raw.push(b'\n');
                            raw.extend_from_slice(m.as_bytes());
                        }
                        raw.push(b'\n');
                        Header { name, raw }
                    })
                    .collect()
            })
        }

        proptest! {
            #[test]
            fn any_octets_are_a_message(input in octets(), ignore_dots in any::<bool>()) {
                let mut r = LineReader::new(&input[..], ignore_dots);
                let Ok(head) = read_head(&mut r) else {
                    return Ok(());
                };
                for h in &head.headers {
                    prop_assert!(!h.name.is_empty());
                    prop_assert!(h.raw.ends_with(b"\n"));
                    prop_assert!(h.raw.starts_with(h.name.as_bytes()));
                    // Every line after the first is a continuation.
                    for l in h.raw.split(|&b| b == b'\n').skip(1).filter(|l| !l.is_empty()) {
                        prop_assert!(matches!(l[0], b' ' | b'\t'));
                    }
                    let _ = h.value();
                    let _ = h.is_resent();
                }
                let mut body = Vec::new();
                if !head.ended {
                    prop_assert!(copy_body(&mut r, &mut body, None, 0).is_ok());
                }
                let mut headers = head.headers;
                apply_field_rules(&mut headers);
                let mut style = address::OldStyle(true);
                observe_style(&headers, &mut style);
                let _ = header_recipients(&headers, style.0);
                qualify_fields(&mut headers, "example.net", "example.org", style.0);
            }

            #[test]
            fn header_fields_are_read_as_written(
                block in header_block(),
                crlf in vec(any::<bool>(), 40),
                ignore_dots in any::<bool>(),
                body in line_text(),
            ) {
                // The message, each line ending in LF or CRLF; the header block in its
                // canonical form (LF line ends).
                let mut input = Vec::new();
                let mut canonical = Vec::new();
                // The intake's rule for a CR inside a header line: dropped at the line's
                // end, a blank elsewhere.
                let canon = |l: &[u8]| -> Vec<u8> {
                    let end = l.iter().rposition(|&b| b != b'\r').map_or(0, |p| p + 1);
                    l[..end].iter().map(|&b| if b == b'\r' { b' ' } else { b }).collect()
                };
                let mut ends = crlf.iter().cycle();
                let mut end_line = |v: &mut Vec<u8>| {
                    v.extend_from_slice(if *ends.next().unwrap_or(&false) { b"\r\n" } else { b"\n" });
                };
                // A field's first line loses the blanks before its colon
                // (`A :` → `A:`), as sendmail relays it.
                let canon_line = |name: &str, i: usize, l: &[u8]| -> Vec<u8> {
                    let c = canon(l);
                    match c.iter().position(|&b| b == b':') {
                        Some(colon) if i == 0 => [name.as_bytes(), &c[colon..]].concat(),
                        _ => c,
                    }
                };
                let mut submitted = 0u64;
                for (name, lines) in &block {
                    for (i, l) in lines.iter().enumerate() {
                        input.extend_from_slice(l);
                        end_line(&mut input);
                        canonical.extend_from_slice(&canon_line(name, i, l));
                        canonical.push(b'\n');
                        submitted += canon(l).len() as u64 + 1;
                    }
                }
                end_line(&mut input);
                input.extend_from_slice(&body);
                let mut r = LineReader::new(&input[..], ignore_dots);
                let head = read_head(&mut r).unwrap();
                prop_assert!(!head.ended);
                prop_assert_eq!(head.first_body_line, None);
                prop_assert_eq!(head.headers.len(), block.len());
                let all: Vec<u8> = head.headers.iter().flat_map(|h| h.raw.clone()).collect();
                prop_assert_eq!(all, canonical);
                prop_assert_eq!(head.submitted_bytes, submitted);
                for (h, (name, lines)) in head.headers.iter().zip(&block) {
                    prop_assert_eq!(&h.name, name);
                    let want: Vec<u8> = lines
                        .iter()
                        .enumerate()
                        .flat_map(|(i, l)| [&canon_line(name, i, l)[..], b"\n"].concat())
                        .collect();
                    prop_assert_eq!(&h.raw, &want);
                }
                let mut rest = Vec::new();
                copy_body(&mut r, &mut rest, None, 0).unwrap();
                if ignore_dots || body != b"." {
                    let want = if !ignore_dots && body.starts_with(b"..") { &body[1..] } else { &body[..] };
                    prop_assert_eq!(rest, want);
                }
            }

            #[test]
            fn field_rules_take_any_fields(mut headers in fields(), old in any::<bool>()) {
                let names: Vec<String> = headers.iter().map(|h| h.name.clone()).collect();
                apply_field_rules(&mut headers);
                prop_assert!(!headers.iter().any(|h| h.is("Return-Path") || h.is("Content-Length") || h.is("Full-Name")));
                if headers.iter().any(|h| h.is("To") || h.is("Cc") || h.is("Apparently-To")) {
                    prop_assert!(!headers.iter().any(|h| h.is("Bcc") || h.is("Resent-Bcc")));
                }
                let before = headers.clone();
                qualify_fields(&mut headers, "example.net", "example.org", old);
                prop_assert_eq!(headers.len(), before.len());
                for (h, b) in headers.iter().zip(&before) {
                    prop_assert_eq!(&h.name, &b.name);
                    if !h.is_sender_field() && !h.is_recipient_field() {
                        prop_assert_eq!(&h.raw, &b.raw);
                    }
                }
                prop_assert!(headers.len() <= names.len());
            }
        }
    }
}

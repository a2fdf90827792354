//! A queued report in the form the server that takes it can take, decided when it is
//! sent (only then is the server known), as the `BODY=` of any message is.
//!
//! A report is queued as sendmail writes it: its 8-bit text (a UTF-8 address, an 8-bit
//! returned message) as it is, declared `BODY=8BITMIME` and `Content-Transfer-Encoding:
//! 8bit`, the `message/delivery-status` fields naming a UTF-8 address as it is. What a
//! server is sent of it:
//! - offering SMTPUTF8 (RFC 6531), when a recipient's or the sender's address is not
//!   US-ASCII: RFC 6533's internationalized report: `message/global-delivery-status`
//!   (`report-type=global-delivery-status`), those addresses of the `utf-8` type as they
//!   are, and the returned message `message/global` (`message/global-headers` for its
//!   header only) when its header holds UTF-8;
//! - offering 8BITMIME only: the report as queued, but the `message/delivery-status`
//!   part in US-ASCII (below);
//! - offering neither: a report all in US-ASCII (RFC 6152 §3 forbids 8-bit octets
//!   there): the explanation `quoted-printable`, the `message/delivery-status` fields
//!   naming a UTF-8 address of the `utf-8` type in RFC 6533 §3's `\x{HEX}` form
//!   (`Final-Recipient: utf-8; j\x{F6}rg@example.org`), and a returned message that
//!   holds 8-bit octets returned as its header only (`text/rfc822-headers`,
//!   quoted-printable when that holds 8-bit octets too), which the explanation says.
//!
//! A report written to a local mailbox, a `/file` or a `|program` gets the form a server
//! offering SMTPUTF8 gets ([`LOCAL`], [`for_local`]): a mailbox is 8-bit clean, and the
//! queued form's `rfc822` type naming a UTF-8 address is no report's right form.
//!
//! Ordinary mail to a server without 8BITMIME goes with its octets as they are (as
//! sendmail's): rsendmail did not write it. A report it did write, it can make 7-bit.
//!
//! The queued report is rsendmail's own text, but read back from the queue: anything
//! that is not its shape (a damaged entry) is sent as it is, never with a panic.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

/// What the server taking a report offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Takes {
    /// 8BITMIME (RFC 6152).
    pub eight_bit: bool,
    /// SMTPUTF8 (RFC 6531).
    pub utf8: bool,
}

/// One piece of the report as sent: text made here, or octets of the queued report
/// (from its start, as [`for_server`] was given it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Stored { start: u64, len: u64 },
}

/// A report made over for one server: its pieces, and whether it still holds 8-bit
/// octets (`BODY=8BITMIME`).
#[derive(Debug)]
pub struct Reformed {
    pub pieces: Vec<Piece>,
    pub eight_bit: bool,
}

/// The most octets of a report read to make it over (its header, explanation,
/// delivery-status fields and the returned message's header); a larger report is sent
/// as it is.
const MOST: u64 = 8 << 20;

/// The sentence the explanation gets when the returned message is cut to its header.
pub const HEADER_ONLY_NOTE: &str = "The original message held 8-bit text, which the mail server taking\n\
this report does not accept: only its header is returned.";

/// The queued report read from `data` (its first header line at the current position, as
/// sent) made over for a server that offers `takes`; `None` when it goes as queued
/// (nothing to change, or not a report of rsendmail's shape). `data` is left anywhere.
pub fn for_server<R: Read + Seek>(data: &mut R, takes: Takes) -> io::Result<Option<Reformed>> {
    let origin = data.stream_position()?;
    let end = data.seek(SeekFrom::End(0))?;
    data.seek(SeekFrom::Start(origin))?;
    let total = end.saturating_sub(origin);
    let Some(mut shape) = Shape::read(data, total)? else {
        return Ok(None);
    };
    // The queued report ends with the closing delimiter and a blank line.
    let closing = format!("\n--{}--\n\n", shape.boundary);
    shape.body_end = total.saturating_sub(closing.len() as u64);
    if shape.body_end < shape.body_start {
        return Ok(None);
    }
    data.seek(SeekFrom::Start(origin.saturating_add(shape.body_end)))?;
    let mut tail = Vec::new();
    (&mut *data)
        .take(closing.len() as u64 + 1)
        .read_to_end(&mut tail)?;
    if tail != closing.as_bytes() {
        return Ok(None);
    }
    // The returned part's octets: [body_start, body_end).
    data.seek(SeekFrom::Start(origin.saturating_add(shape.body_start)))?;
    let returned_len = shape.body_end.saturating_sub(shape.body_start);
    let returned_8bit = super::has_8bit(&mut (&mut *data).take(returned_len)).unwrap_or(true);
    data.seek(SeekFrom::Start(origin.saturating_add(shape.body_start)))?;
    let mut head = Vec::new();
    (&mut *data)
        .take(returned_len.min(MOST))
        .read_until_blank(&mut head)?;
    Ok(shape.reform(takes, returned_8bit, &head, returned_len))
}

/// What a local mailbox, a `/file` or a `|program` takes: 8-bit text and UTF-8 (a
/// mailbox is 8-bit clean; nothing there limits a header to US-ASCII), as a server that
/// offers SMTPUTF8.
pub const LOCAL: Takes = Takes {
    eight_bit: true,
    utf8: true,
};

/// The queued report in `data` (its first header line at the current position, `len`
/// octets to its end) as it is written to a local mailbox, a `/file` or a `|program`
/// (see [`LOCAL`]): RFC 6533's internationalized report when an address in it is not
/// US-ASCII, else as queued. The reader and its length in octets.
pub fn for_local<R: Read + Seek + Send + 'static>(
    mut data: R,
    len: u64,
) -> io::Result<(Box<dyn Read + Send>, u64)> {
    let origin = data.stream_position()?;
    match for_server(&mut data, LOCAL)? {
        Some(r) => {
            let s = Spliced::new(data, origin, r);
            let n = s.len();
            Ok((Box::new(s), n))
        }
        None => {
            data.seek(SeekFrom::Start(origin))?;
            Ok((Box::new(data.take(len)), len))
        }
    }
}

/// Read lines up to and including the first empty one (or the end).
trait ReadUntilBlank {
    fn read_until_blank(self, out: &mut Vec<u8>) -> io::Result<()>;
}

impl<R: Read> ReadUntilBlank for R {
    fn read_until_blank(self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut r = BufReader::new(self);
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let blank = line == b"\n";
            out.extend_from_slice(&line);
            if blank {
                return Ok(());
            }
        }
    }
}

/// A queued report's parts, as read.
struct Shape {
    /// The header block, without its blank line.
    header: Vec<String>,
    boundary: String,
    /// The lines between the header's blank line and the first delimiter.
    preamble: Vec<String>,
    /// The explanation and the delivery-status part: field lines and body lines (the
    /// blank line between them not included; the line ending before the next delimiter
    /// is the body's last line).
    parts: [(Vec<String>, Vec<String>); 2],
    /// The returned part's field lines.
    returned_fields: Vec<String>,
    /// Where the returned part's body starts and ends (before the CRLF of the closing
    /// delimiter), from the report's start.
    body_start: u64,
    body_end: u64,
}

impl Shape {
    fn read<R: Read>(data: &mut R, total: u64) -> io::Result<Option<Shape>> {
        let mut r = BufReader::new(data.take(MOST.min(total)));
        let mut offset = 0u64;
        let mut next = || -> io::Result<Option<String>> {
            let mut line = Vec::new();
            let n = r.read_until(b'\n', &mut line)?;
            offset += n as u64;
            if n == 0 || line.last() != Some(&b'\n') {
                return Ok(None);
            }
            line.pop();
            Ok(String::from_utf8(line).ok())
        };
        let mut header = Vec::new();
        loop {
            match next()? {
                None => return Ok(None),
                Some(l) if l.is_empty() => break,
                Some(l) => header.push(l),
            }
        }
        let Some(boundary) = header
            .iter()
            .find_map(|l| l.split_once("boundary=\"").map(|(_, b)| b))
            .and_then(|b| b.split_once('"'))
            .map(|(b, _)| b.to_string())
        else {
            return Ok(None);
        };
        let delimiter = format!("--{boundary}");
        let mut preamble = Vec::new();
        loop {
            match next()? {
                None => return Ok(None),
                Some(l) if l == delimiter => break,
                Some(l) => preamble.push(l),
            }
        }
        let mut parts: [(Vec<String>, Vec<String>); 2] = Default::default();
        for part in &mut parts {
            let mut in_fields = true;
            loop {
                match next()? {
                    None => return Ok(None),
                    Some(l) if l == delimiter => break,
                    Some(l) if in_fields && l.is_empty() => in_fields = false,
                    Some(l) if in_fields => part.0.push(l),
                    Some(l) => part.1.push(l),
                }
            }
            if in_fields {
                return Ok(None);
            }
        }
        let mut returned_fields = Vec::new();
        loop {
            match next()? {
                None => return Ok(None),
                Some(l) if l.is_empty() => break,
                Some(l) => returned_fields.push(l),
            }
        }
        let body_start = offset;
        Ok(Some(Shape {
            header,
            boundary,
            preamble,
            parts,
            returned_fields,
            body_start,
            body_end: 0,
        }))
    }

    /// The report made over (see the module doc), `None` when it goes as queued.
    fn reform(
        mut self,
        takes: Takes,
        returned_8bit: bool,
        returned_head: &[u8],
        returned_len: u64,
    ) -> Option<Reformed> {
        let status_8bit = self.parts[1].1.iter().any(|l| !l.is_ascii());
        let to_8bit = self
            .header
            .iter()
            .any(|l| l.starts_with("To:") && !l.is_ascii());
        let head_8bit = !returned_head.is_ascii();
        let delimiter = format!("--{}", self.boundary);
        let mut text: Vec<String> = Vec::new();
        let mut returned: Option<Vec<u8>> = None;
        let mut eight_bit = true;
        if takes.utf8 {
            if !status_8bit && !to_8bit {
                return None;
            }
            // RFC 6533: the internationalized report.
            for l in &mut self.header {
                if l.starts_with("Content-Type: multipart/report;") {
                    *l = l.replace(
                        "report-type=delivery-status",
                        "report-type=global-delivery-status",
                    );
                }
            }
            set_type(&mut self.parts[1].0, "message/global-delivery-status");
            for l in &mut self.parts[1].1 {
                *l = address_field(l, |v| v.to_string());
            }
            if head_8bit {
                let global = if is_type(&self.returned_fields, "message/rfc822") {
                    "message/global"
                } else {
                    "message/global-headers"
                };
                set_type(&mut self.returned_fields, global);
            }
        } else {
            if !status_8bit && takes.eight_bit {
                return None;
            }
            // The delivery-status fields in US-ASCII (RFC 6533 §3).
            for l in &mut self.parts[1].1 {
                *l = address_field(l, utf8_addr_xtext);
                if !l.is_ascii() {
                    *l = l
                        .chars()
                        .map(|c| if c.is_ascii() { c } else { '?' })
                        .collect();
                }
            }
            drop_cte(&mut self.parts[1].0);
            if !takes.eight_bit {
                eight_bit = false;
                drop_cte(&mut self.header);
                for l in &mut self.header {
                    if let Some(to) = l.strip_prefix("To: ")
                        && !to.is_ascii()
                        && let Some(a) = crate::message::address::ascii_address(to)
                    {
                        *l = format!("To: {a}");
                    }
                    if !l.is_ascii() {
                        *l = l
                            .chars()
                            .map(|c| if c.is_ascii() { c } else { '?' })
                            .collect();
                    }
                }
                if returned_8bit {
                    // The header only, 7-bit; the explanation says so when the whole
                    // message was to be returned.
                    let cut = is_type(&self.returned_fields, "message/rfc822");
                    self.returned_fields = vec!["Content-Type: text/rfc822-headers".into()];
                    let head = returned_head.strip_suffix(b"\n\n").unwrap_or(returned_head);
                    let head = head.strip_suffix(b"\n").unwrap_or(head);
                    let mut body = Vec::new();
                    if head.is_ascii() {
                        body.extend_from_slice(head);
                        body.push(b'\n');
                    } else {
                        self.returned_fields
                            .push("Content-Transfer-Encoding: quoted-printable".into());
                        for line in head.split(|&b| b == b'\n') {
                            body.extend_from_slice(quoted_printable(line).as_bytes());
                            body.push(b'\n');
                        }
                    }
                    returned = Some(body);
                    if cut {
                        // Before the line that ends the body (the delimiter's).
                        let body = &mut self.parts[0].1;
                        let at = body.len().saturating_sub(1);
                        let note = std::iter::once("").chain(HEADER_ONLY_NOTE.lines());
                        let tail = body.split_off(at);
                        body.extend(note.map(str::to_string));
                        body.extend(tail);
                    }
                }
                let body = &self.parts[0].1;
                if body.iter().any(|l| !l.is_ascii()) {
                    let fields = &mut self.parts[0].0;
                    drop_cte(fields);
                    if !fields.iter().any(|f| f.starts_with("Content-Type:")) {
                        fields.push("Content-Type: text/plain; charset=utf-8".into());
                    }
                    fields.push("Content-Transfer-Encoding: quoted-printable".into());
                    text = body
                        .iter()
                        .map(|l| quoted_printable(l.as_bytes()))
                        .collect();
                }
            }
        }
        if text.is_empty() {
            text = self.parts[0].1.clone();
        }
        let mut head = String::new();
        let mut line = |s: &str| {
            head.push_str(s);
            head.push('\n');
        };
        self.header.iter().for_each(|l| line(l));
        line("");
        self.preamble.iter().for_each(|l| line(l));
        line(&delimiter);
        self.parts[0].0.iter().for_each(|l| line(l));
        line("");
        text.iter().for_each(|l| line(l));
        line(&delimiter);
        self.parts[1].0.iter().for_each(|l| line(l));
        line("");
        self.parts[1].1.iter().for_each(|l| line(l));
        line(&delimiter);
        self.returned_fields.iter().for_each(|l| line(l));
        line("");
        let mut pieces = vec![Piece::Text(head.into_bytes())];
        match returned {
            Some(b) => pieces.push(Piece::Text(b)),
            None => pieces.push(Piece::Stored {
                start: self.body_start,
                len: returned_len,
            }),
        }
        pieces.push(Piece::Text(format!("\n{delimiter}--\n\n").into_bytes()));
        Some(Reformed { pieces, eight_bit })
    }
}

/// Whether the part's `Content-Type:` is `t`.
fn is_type(fields: &[String], t: &str) -> bool {
    fields
        .iter()
        .any(|f| f.strip_prefix("Content-Type: ").is_some_and(|v| v == t))
}

/// Make the part's `Content-Type:` `t`.
fn set_type(fields: &mut [String], t: &str) {
    for f in fields.iter_mut().filter(|f| f.starts_with("Content-Type:")) {
        *f = format!("Content-Type: {t}");
    }
}

/// Remove a `Content-Transfer-Encoding: 8bit` field.
fn drop_cte(fields: &mut Vec<String>) {
    fields.retain(|f| !f.eq_ignore_ascii_case("Content-Transfer-Encoding: 8bit"));
}

/// A delivery-status field naming an address (`Final-Recipient`, `Original-Recipient`,
/// `X-Actual-Recipient`) whose address is not US-ASCII, as the `utf-8` type with the
/// address as `form` writes it; any other line as it is.
fn address_field(line: &str, form: impl Fn(&str) -> String) -> String {
    if line.is_ascii() {
        return line.to_string();
    }
    let Some((name, value)) = line.split_once(':') else {
        return line.to_string();
    };
    let named = [
        "Final-Recipient",
        "Original-Recipient",
        "X-Actual-Recipient",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name));
    let Some((kind, addr)) = value.split_once(';') else {
        return line.to_string();
    };
    let kind = kind.trim();
    if !named || !(kind.eq_ignore_ascii_case("rfc822") || kind.eq_ignore_ascii_case("utf-8")) {
        return line.to_string();
    }
    format!("{name}: utf-8; {}", form(addr.trim()))
}

/// RFC 6533 §3's utf-8-addr-xtext: every character but printable US-ASCII other than
/// `\`, `+` and `=` as `\x{HEX}` (upper-case hex digits, no leading zero).
pub fn utf8_addr_xtext(addr: &str) -> String {
    let mut o = String::new();
    for c in addr.chars() {
        if ('!'..='~').contains(&c) && !matches!(c, '\\' | '+' | '=') {
            o.push(c);
        } else {
            o.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    o
}

/// One line (no line end) as quoted-printable (RFC 2045 §6.7): lines of at most 76
/// characters, continued with a soft line break (`=` at the end).
pub fn quoted_printable(line: &[u8]) -> String {
    let mut out = String::new();
    let mut width = 0;
    let n = line.len();
    for (k, &b) in line.iter().enumerate() {
        let last = k + 1 == n;
        let plain =
            ((b'!'..=b'~').contains(&b) && b != b'=') || (matches!(b, b' ' | b'\t') && !last);
        let piece = if plain {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        // Room for the piece and, unless this is the last, a soft break after it.
        let room = if last { 76 } else { 75 };
        if width + piece.len() > room {
            out.push_str("=\n");
            width = 0;
        }
        width += piece.len();
        out.push_str(&piece);
    }
    out
}

/// A [`Reformed`] report as one stream to send: its pieces in turn, the queued octets
/// read from `data` (where [`for_server`] found the report's start).
pub struct Spliced<R> {
    data: R,
    origin: u64,
    pieces: Vec<Piece>,
    /// Position in the whole.
    pos: u64,
}

impl<R: Read + Seek> Spliced<R> {
    /// The report `reformed` made over of the one in `data` that starts at `origin`.
    pub fn new(data: R, origin: u64, reformed: Reformed) -> Spliced<R> {
        Spliced {
            data,
            origin,
            pieces: reformed.pieces,
            pos: 0,
        }
    }

    fn len(&self) -> u64 {
        self.pieces.iter().map(piece_len).sum()
    }
}

fn piece_len(p: &Piece) -> u64 {
    match p {
        Piece::Text(t) => t.len() as u64,
        Piece::Stored { len, .. } => *len,
    }
}

impl<R: Read + Seek> Read for Spliced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut at = 0u64;
        for p in &self.pieces {
            let len = piece_len(p);
            if self.pos < at.saturating_add(len) {
                let within = self.pos - at;
                let want = usize::try_from(len - within)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let n = match p {
                    Piece::Text(t) => {
                        let from = usize::try_from(within).unwrap_or(usize::MAX);
                        let src = t.get(from..).unwrap_or_default();
                        let n = want.min(src.len());
                        if let (Some(d), Some(s)) = (buf.get_mut(..n), src.get(..n)) {
                            d.copy_from_slice(s);
                        }
                        n
                    }
                    Piece::Stored { start, .. } => {
                        self.data.seek(SeekFrom::Start(
                            self.origin.saturating_add(*start).saturating_add(within),
                        ))?;
                        let Some(d) = buf.get_mut(..want) else {
                            return Ok(0);
                        };
                        let n = self.data.read(d)?;
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the queued report is shorter than it was",
                            ));
                        }
                        n
                    }
                };
                self.pos += n as u64;
                return Ok(n);
            }
            at = at.saturating_add(len);
        }
        Ok(0)
    }
}

impl<R: Read + Seek> Seek for Spliced<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::dsn::{RcptReport, Report};
    use crate::spool::entry::test_envelope;
    use std::io::Cursor;

    #[test]
    fn quoted_printable_lines() {
        assert_eq!(quoted_printable(b"plain text"), "plain text");
        assert_eq!(
            quoted_printable("j\u{f6}rg = x ".as_bytes()),
            "j=C3=B6rg =3D x=20"
        );
        let long = quoted_printable("\u{e9}".repeat(40).as_bytes());
        for l in long.split('\n') {
            assert!(l.len() <= 76, "{l}");
        }
        assert!(long.split("=\n").all(|p| !p.ends_with('=')), "{long}");
        assert_eq!(long.replace("=\n", ""), "=C3=A9".repeat(40));
    }

    #[test]
    fn utf8_addr_xtext_form() {
        assert_eq!(
            utf8_addr_xtext("j\u{f6}rg@example.org"),
            "j\\x{F6}rg@example.org"
        );
        assert_eq!(utf8_addr_xtext("a+b=c\\d@x"), "a\\x{2B}b\\x{3D}c\\x{5C}d@x");
        assert_eq!(utf8_addr_xtext("\u{1F600}@x"), "\\x{1F600}@x");
    }

    /// A report queued with 8-bit text, as `Report::write` makes it.
    fn queued(headers_only: bool) -> Vec<u8> {
        queued_for("j\u{f6}rg@example.org", headers_only)
    }

    /// [`queued`] for a failed recipient `rcpt`.
    fn queued_for(rcpt: &str, headers_only: bool) -> Vec<u8> {
        let mut env = test_envelope("6AMxxxxx000011", &[rcpt]);
        env.sender = "s@example.org".into();
        let original = "Subject: caf\u{e9}\n\nbody caf\u{e9}\n";
        env.header_bytes = 16;
        let rep = Report {
            headers_only,
            eight_bit: true,
            ..Report::failure(
                &env,
                vec![RcptReport::failed(
                    rcpt,
                    crate::status::BAD_MAILBOX,
                    "553 5.6.7 no",
                    "SMTP",
                )],
            )
        };
        let mut out = b"ENVELOPE\n".to_vec();
        rep.write(
            "NEWID",
            0,
            "s@example.org",
            &mut original.as_bytes(),
            &mut out,
        )
        .unwrap();
        out
    }

    fn sent(q: &[u8], takes: Takes) -> Option<(Vec<u8>, bool)> {
        let mut c = Cursor::new(q.to_vec());
        c.set_position(9);
        let r = for_server(&mut c, takes).unwrap()?;
        let eight = r.eight_bit;
        let mut s = Spliced::new(Cursor::new(q.to_vec()), 9, r);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        // Read again from the start, as a second transaction does.
        s.seek(SeekFrom::Start(0)).unwrap();
        let mut again = Vec::new();
        s.read_to_end(&mut again).unwrap();
        assert_eq!(out, again);
        Some((out, eight))
    }

    #[test]
    fn each_server_gets_the_form_it_takes() {
        let neither = Takes {
            eight_bit: false,
            utf8: false,
        };
        for headers_only in [true, false] {
            let q = queued(headers_only);
            let (out, eight) = sent(&q, neither).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.is_ascii() && !eight, "{text}");
            assert!(text.contains("\nj=C3=B6rg@example.org\n"), "{text}");
            assert!(text.contains("Final-Recipient: utf-8; j\\x{F6}rg@example.org\n"));
            assert!(text.contains("Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: quoted-printable\n\nReturn-Path: <s@example.org>\nSubject: caf=C3=A9\n\n--"), "{text}");
            assert!(!text.contains("body caf"), "{text}");
            assert_eq!(text.contains(HEADER_ONLY_NOTE), !headers_only, "{text}");
            assert!(text.ends_with("--\n\n"), "{text}");
            // 8BITMIME only: the status fields alone change.
            let (out, eight) = sent(
                &q,
                Takes {
                    eight_bit: true,
                    utf8: false,
                },
            )
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(eight);
            let as_queued = String::from_utf8(q[9..].to_vec()).unwrap();
            assert_eq!(
                text,
                as_queued
                    .replace(
                        "RFC822; j\u{f6}rg@example.org",
                        "utf-8; j\\x{F6}rg@example.org"
                    )
                    .replace(
                        "rfc822; j\u{f6}rg@example.org",
                        "utf-8; j\\x{F6}rg@example.org"
                    )
                    .replace(
                        "message/delivery-status\nContent-Transfer-Encoding: 8bit\n",
                        "message/delivery-status\n"
                    )
            );
            // SMTPUTF8: the internationalized report.
            let (out, _) = sent(
                &q,
                Takes {
                    eight_bit: true,
                    utf8: true,
                },
            )
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("report-type=global-delivery-status;"),
                "{text}"
            );
            assert!(text.contains("Content-Type: message/global-delivery-status\n"));
            assert!(text.contains("Final-Recipient: utf-8; j\u{f6}rg@example.org\n"));
            let want = if headers_only {
                "Content-Type: message/global-headers\n"
            } else {
                "Content-Type: message/global\n"
            };
            assert!(text.contains(want), "{text}");
        }
    }

    /// What a local mailbox, file or command is given: the internationalized report
    /// when an address is not US-ASCII, as an SMTPUTF8 server gets it; a report naming
    /// only US-ASCII addresses (its returned message 8-bit) exactly as queued.
    #[test]
    fn a_local_destination_gets_the_smtputf8_form() {
        let read = |q: &[u8]| {
            let mut c = Cursor::new(q.to_vec());
            c.set_position(9);
            let (mut r, len) = for_local(c, (q.len() - 9) as u64).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out.len() as u64, len);
            out
        };
        for headers_only in [true, false] {
            let q = queued(headers_only);
            let utf8 = Takes {
                eight_bit: true,
                utf8: true,
            };
            assert_eq!(read(&q), sent(&q, utf8).unwrap().0);
            let text = String::from_utf8(read(&q)).unwrap();
            assert!(text.contains("Content-Type: message/global-delivery-status\n"));
            assert!(text.contains("Final-Recipient: utf-8; j\u{f6}rg@example.org\n"));
            assert!(!text.contains("RFC822; j"), "{text}");
            let ascii = queued_for("jorg@example.org", headers_only);
            assert!(!ascii.is_ascii());
            assert_eq!(read(&ascii), ascii[9..]);
        }
        // A damaged report goes as it is.
        let mut bad = queued(false);
        let n = bad.len();
        bad[n - 4] = b'x';
        assert_eq!(read(&bad), bad[9..]);
    }

    /// Whatever the queue file holds after the envelope, making it over never panics:
    /// a cut or damaged report goes as it is.
    #[test]
    fn a_damaged_report_goes_as_it_is() {
        let q = queued(false);
        let neither = Takes {
            eight_bit: false,
            utf8: false,
        };
        for cut in (9..q.len()).step_by(7) {
            let _ = sent(&q[..cut], neither);
        }
        let mut bad = q.clone();
        let n = bad.len();
        bad[n - 4] = b'x';
        assert!(sent(&bad, neither).is_none());
        assert!(sent(b"ENVELOPE\n\xff\xfe\n\n", neither).is_none());
    }
}

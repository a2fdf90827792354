//! Reading the server's replies (RFC 5321 §4.2): `ddd-text` continuation lines and a
//! final `ddd text` line, read from a buffered stream however the bytes are split across
//! reads; and the replies each command may get ([`Expect`]). The [`Reply`] value itself is
//! `deliver::reply`'s, shared with local delivery.
//!
//! The server's bytes are untrusted: any of them give a reply or an `InvalidData` error,
//! never a panic (the text is cut only where it was checked to be ASCII, through `get`
//! and `strip_prefix`; the lints below keep it so).
//!
//! Its text is made printable here, once, as it is read (`rsendmail::text::printable`):
//! RFC 5321 §4.2 allows only printable characters, SP and HT in it, and the text goes on
//! into delivery reports, the `-v` transcript, logs and the queue's state file. Every
//! control character (C0 including a bare CR and NUL, DEL, C1) becomes `?`, as in
//! Postfix's SMTP client, and HT becomes SP; printable UTF-8 (an SMTPUTF8 server's) is
//! kept, and octets that are not UTF-8 become U+FFFD. The line ends themselves (CRLF, or
//! a bare LF) are taken off first, with any CRs before them. So a server cannot make a
//! line break, a NUL or a terminal command out of its reply anywhere after this point;
//! the reply code and its separator are still judged on the octets as sent.
//! `rsendmail-admin check`'s network steps, which keep nothing of a reply, read it with
//! each such character and octet as its octets in octal instead ([`show_escaped`]), as
//! the check shows every other text from outside.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use super::Reply;
use rsendmail::text::printable;
use std::io::{self, BufRead};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether replies are read for `rsendmail-admin check` ([`show_escaped`]).
static ESCAPED: AtomicBool = AtomicBool::new(false);

/// From now on, a reply's text keeps each control character and each octet that is not
/// UTF-8 as its octets in octal (`\033`, `\377`: [`rsendmail::text::octets_escaped`])
/// instead of `?`: for the network steps of `rsendmail-admin check`, whose lines show
/// every text from outside so, and which write no report, log or state file. A process
/// that delivers never calls it.
pub fn show_escaped() {
    ESCAPED.store(true, Ordering::Relaxed);
}

/// `raw` as a reply's text is kept: printable (`?` for a control character, U+FFFD for
/// an octet that is not UTF-8), or escaped after [`show_escaped`].
fn shown(raw: &[u8]) -> String {
    if ESCAPED.load(Ordering::Relaxed) {
        rsendmail::text::octets_escaped(raw)
    } else {
        printable(&String::from_utf8_lossy(raw)).into_owned()
    }
}

/// The replies a command may get: its own positive replies, and any refusal (4yz, 5yz).
///
/// RFC 5321 §4.3.2 lists them per command: the greeting 220, EHLO/HELO, MAIL, RCPT and
/// RSET 250 (and 251 for RCPT), DATA 354 and the end of the data 250; RFC 3207 §4 gives
/// STARTTLS 220, RFC 4954 §4 gives AUTH 334 (a challenge) and 235 (done). As sendmail, any
/// 2yz completes a command that expects 250. Anything else is a protocol error: a 2yz
/// where a 3yz is due or the reverse, a 1yz, or a code outside 100-599.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 220: the greeting, STARTTLS.
    Ready,
    /// 2yz: EHLO, HELO, MAIL, RCPT, RSET, the end of the data.
    Completion,
    /// 354: DATA.
    StartData,
    /// 334 or 235: AUTH, and each answer to one of its challenges.
    Auth,
}

impl Expect {
    /// Whether the command this expectation belongs to may get `code`.
    pub fn allows(self, code: u16) -> bool {
        (400..600).contains(&code)
            || match self {
                Expect::Ready => code == 220,
                Expect::Completion => (200..300).contains(&code),
                Expect::StartData => code == 354,
                Expect::Auth => code == 334 || code == 235,
            }
    }

    /// The positive replies, as a protocol error names them.
    pub(super) fn wanted(self) -> &'static str {
        match self {
            Expect::Ready => "220",
            Expect::Completion => "2xx",
            Expect::StartData => "354",
            Expect::Auth => "334 or 235",
        }
    }
}

/// Longest reply line accepted, in octets with its line end (RFC 5321 §4.5.3.1.5 allows
/// 512; servers send more).
pub const MAX_LINE: usize = 4096;
/// Most lines one reply may have.
pub const MAX_LINES: usize = 1000;
/// How much of an over-long line its error shows, in characters.
const SHOWN: usize = 60;

/// Read one reply. `on_line` sees each line as it arrives (for `-v`), made printable as
/// the reply's text is.
///
/// Errors: `UnexpectedEof` when the server closed; `InvalidData` for a line that is not
/// a reply line (`bad SMTP reply line "..."`), for a line longer than [`MAX_LINE`]
/// octets (`SMTP reply line longer than 4096 octets: "220 xxx..."`, its start shown; the
/// rest is never read as replies of its own) and for a reply of more than [`MAX_LINES`]
/// lines (`SMTP reply of more than 1000 lines`).
pub fn read_reply<R: BufRead>(r: &mut R, mut on_line: impl FnMut(&str)) -> io::Result<Reply> {
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let mut buf = Vec::new();
        let n = std::io::Read::take(&mut *r, MAX_LINE as u64).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        if n == MAX_LINE && buf.last() != Some(&b'\n') {
            let start: String = shown(&buf).chars().take(SHOWN).collect();
            on_line(&format!("{start}..."));
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("SMTP reply line longer than {MAX_LINE} octets: \"{start}...\""),
            ));
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        // The code and its separator are judged on the octets as sent (a control
        // character there is a bad line, not a `?`); everything else is seen only
        // printable (`rsendmail::text`).
        let raw = String::from_utf8_lossy(&buf);
        let line = shown(&buf);
        on_line(&line);
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad SMTP reply line \"{line}\""),
            )
        };
        let digits = raw
            .get(..3)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        let Some(c) = digits.and_then(|d| d.parse::<u16>().ok()) else {
            return Err(bad());
        };
        if *code.get_or_insert(c) != c {
            return Err(bad());
        }
        let sep = raw.as_bytes().get(3).copied();
        // The text after the code and its separator, as octets (the escaped form of a
        // control character as the separator is longer than one character).
        let text = if ESCAPED.load(Ordering::Relaxed) {
            shown(buf.get(4..).unwrap_or_default())
        } else {
            line.get(4..).unwrap_or("").to_string()
        };
        lines.push(text);
        match sep {
            Some(b'-') if lines.len() < MAX_LINES => continue,
            Some(b'-') => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("SMTP reply of more than {MAX_LINES} lines"),
                ));
            }
            Some(b' ') | None => {
                return Ok(Reply {
                    code: c,
                    lines,
                    command: None,
                    local: false,
                    accepted_by: None,
                });
            }
            _ => return Err(bad()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    #[test]
    fn replies_each_command_may_get() {
        use Expect::*;
        // (what the command expects, the reply's code, whether it may get it)
        let cases: &[(Expect, u16, bool)] = &[
            (Ready, 220, true),
            (Ready, 250, false),
            (Ready, 354, false),
            (Ready, 421, true),
            (Ready, 554, true),
            (Completion, 250, true),
            (Completion, 251, true),
            (Completion, 220, true),
            (Completion, 354, false),
            (Completion, 334, false),
            (Completion, 199, false),
            (Completion, 0, false),
            (Completion, 600, false),
            (Completion, 999, false),
            (Completion, 452, true),
            (Completion, 550, true),
            (StartData, 354, true),
            (StartData, 250, false),
            (StartData, 220, false),
            (StartData, 334, false),
            (StartData, 451, true),
            (StartData, 554, true),
            (Auth, 334, true),
            (Auth, 235, true),
            (Auth, 250, false),
            (Auth, 354, false),
            (Auth, 454, true),
            (Auth, 535, true),
        ];
        for &(expect, code, ok) in cases {
            assert_eq!(expect.allows(code), ok, "{expect:?} {code}");
        }
    }

    /// A reader that hands out one byte per read, like a slow network.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn multiline_in_pieces() {
        let raw = b"250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n220 next\r\n";
        let mut r = BufReader::with_capacity(1, Trickle(raw));
        let mut seen = Vec::new();
        let rep = read_reply(&mut r, |l| seen.push(l.to_string())).unwrap();
        assert_eq!(rep.code, 250);
        assert_eq!(
            rep.lines,
            [
                "mx.example Hello",
                "PIPELINING",
                "SIZE 1000",
                "ENHANCEDSTATUSCODES"
            ]
        );
        assert_eq!(seen.len(), 4);
        assert_eq!(read_reply(&mut r, |_| {}).unwrap().code, 220);
        assert_eq!(
            read_reply(&mut r, |_| {}).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn classes_and_texts() {
        let mut r = &b"550 5.1.1 <bob@x>: Recipient address rejected\r\n"[..];
        let rep = read_reply(&mut r, |_| {}).unwrap();
        assert!(rep.is_permanent() && !rep.is_positive());
        assert_eq!(rep.enhanced().as_deref(), Some("5.1.1"));
        assert_eq!(
            rep.text_without_enhanced(),
            "<bob@x>: Recipient address rejected"
        );
        let mut r = &b"250 2.0.0 Ok: queued as SINK1\r\n"[..];
        assert_eq!(
            read_reply(&mut r, |_| {}).unwrap().text_without_enhanced(),
            "Ok: queued as SINK1"
        );
        let mut r = &b"250 Ok\n"[..];
        let rep = read_reply(&mut r, |_| {}).unwrap();
        assert_eq!(
            (rep.enhanced(), rep.text_without_enhanced().as_str()),
            (None, "Ok")
        );
        let mut r = &b"250\r\n"[..];
        assert_eq!(read_reply(&mut r, |_| {}).unwrap().lines, [""]);
    }

    #[test]
    fn control_characters_made_printable() {
        // (what the server sent, the lines read)
        let cases: &[(&[u8], &[&str])] = &[
            (
                b"550 5.1.1 no\rAction: delivered\rStatus: 2.0.0\r\n",
                &["5.1.1 no?Action: delivered?Status: 2.0.0"],
            ),
            (b"550 a\0b\x1b[2J\x07\x7f\r\n", &["a?b?[2J??"]),
            (
                b"451-one\ttab\r\n451 C1 \xc2\x9b31m\n",
                &["one tab", "C1 ?31m"],
            ),
            (b"250 Gr\xc3\xbc\xc3\x9fe \xff\r\n", &["Grüße \u{fffd}"]),
        ];
        for (raw, want) in cases {
            let mut shown = Vec::new();
            let rep = read_reply(&mut &raw[..], |l| shown.push(l.to_string())).unwrap();
            assert_eq!(rep.lines, *want, "{raw:?}");
            assert!(
                shown.iter().all(|l| !l.chars().any(char::is_control)),
                "{shown:?}"
            );
        }
        // A control character as the separator is still a bad line, shown printable.
        let e = read_reply(&mut &b"250\t\x1bok\r\n"[..], |_| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(!e.to_string().chars().any(char::is_control), "{e}");
    }

    #[test]
    fn garbage_refused() {
        for raw in [
            &b"hello\r\n"[..],
            b"250-a\r\n251 b\r\n",
            b"25\r\n",
            b"250xabc\r\n",
        ] {
            let mut r = raw;
            assert!(read_reply(&mut r, |_| {}).is_err(), "{raw:?}");
        }
    }

    /// Over the limits: a line over MAX_LINE octets, a reply over MAX_LINES lines, each
    /// named; a line of exactly MAX_LINE octets with its CRLF is read.
    #[test]
    fn over_long_replies_named_with_their_limit() {
        let exact = format!("250 {}\r\n", "y".repeat(MAX_LINE - 6));
        let r = read_reply(&mut exact.as_bytes(), |_| {}).unwrap();
        assert_eq!(r.lines[0].len(), MAX_LINE - 6);
        let long = format!("220 {}\r\n", "y".repeat(MAX_LINE));
        let e = read_reply(&mut long.as_bytes(), |_| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "SMTP reply line longer than 4096 octets: \"220 {}...\"",
                "y".repeat(56)
            )
        );
        let many = "250-a\r\n".repeat(MAX_LINES) + "250 b\r\n";
        let e = read_reply(&mut many.as_bytes(), |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "SMTP reply of more than 1000 lines");
        let fits = "250-a\r\n".repeat(MAX_LINES - 1) + "250 b\r\n";
        assert_eq!(
            read_reply(&mut fits.as_bytes(), |_| {})
                .unwrap()
                .lines
                .len(),
            MAX_LINES
        );
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// Read every reply `input` holds, as the client would (until an error).
        fn read_all(input: &[u8], capacity: usize) -> (Vec<Reply>, io::Error) {
            let mut r = BufReader::with_capacity(capacity, Trickle(input));
            let mut replies = Vec::new();
            loop {
                match read_reply(&mut r, |_| {}) {
                    Ok(rep) => replies.push(rep),
                    Err(e) => return (replies, e),
                }
            }
        }

        /// One reply as a server writes it: a code, an enhanced status (or not) on each
        /// line, text of any characters but line ends, CRLF or LF after each line.
        fn reply() -> impl Strategy<Value = (u16, Option<String>, Vec<String>, Vec<u8>)> {
            let enhanced = proptest::option::of(
                ("[245]", 0u16..1000, 0u16..1000).prop_map(|(c, s, d)| format!("{c}.{s}.{d}")),
            );
            (
                100u16..1000,
                enhanced,
                vec("[^\r\n0-9 ][^\r\n]{0,60}|", 1..20),
                any::<bool>(),
            )
                .prop_map(|(code, enhanced, texts, lf)| {
                    // What the server writes as each line's text after the code and
                    // its separator, and what the client reads: the same, printable.
                    let written: Vec<String> = texts
                        .iter()
                        .map(|t| match &enhanced {
                            Some(e) => format!("{e} {t}"),
                            None => t.clone(),
                        })
                        .collect();
                    let mut raw = Vec::new();
                    for (i, l) in written.iter().enumerate() {
                        let sep = if i + 1 < written.len() { '-' } else { ' ' };
                        raw.extend_from_slice(format!("{code}{sep}{l}").as_bytes());
                        raw.extend_from_slice(if lf { b"\n" } else { b"\r\n" });
                    }
                    let lines = written.iter().map(|l| printable(l).into_owned()).collect();
                    (code, enhanced, lines, raw)
                })
        }

        proptest! {
            #[test]
            fn any_octets_give_replies_or_an_error(
                input in vec(any::<u8>(), 0..600),
                digits in vec("[0-9]{3}[ -]?", 0..6),
                capacity in 1usize..9,
            ) {
                // Octets, and octets after lines that begin like replies.
                let mut start: Vec<u8> = digits.concat().into_bytes();
                start.extend_from_slice(&input);
                for raw in [&input[..], &start[..]] {
                    let (replies, e) = read_all(raw, capacity);
                    prop_assert!(matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                    ));
                    for r in &replies {
                        prop_assert!((0..1000).contains(&r.code));
                        prop_assert!(!r.lines.is_empty());
                        let _ = (r.enhanced(), r.text_without_enhanced(), r.summary());
                        let _ = r.transcript_lines();
                    }
                }
            }

            /// Whatever the server sends, no control character reaches a reply's text
            /// or the lines shown as they are read (`-v`).
            #[test]
            fn reply_text_has_no_control_character(
                lines in vec(
                    ("[1-5][0-9][0-9]", "[- ]?", vec(any::<u8>().prop_filter("a line end", |b| *b != b'\n'), 0..80)),
                    1..12,
                ),
                lf in any::<bool>(),
                capacity in 1usize..9,
            ) {
                let mut raw = Vec::new();
                for (code, sep, text) in &lines {
                    raw.extend_from_slice(code.as_bytes());
                    raw.extend_from_slice(sep.as_bytes());
                    raw.extend_from_slice(text);
                    raw.extend_from_slice(if lf { b"\n" } else { b"\r\n" });
                }
                let mut r = BufReader::with_capacity(capacity, Trickle(&raw));
                let mut shown = Vec::new();
                while let Ok(rep) = read_reply(&mut r, |l| shown.push(l.to_string())) {
                    for l in rep.lines.iter().chain(&rep.transcript_lines()) {
                        prop_assert!(!l.chars().any(char::is_control), "{:?}", l);
                    }
                    prop_assert!(!rep.summary().chars().any(char::is_control));
                }
                for l in &shown {
                    prop_assert!(!l.chars().any(char::is_control), "{:?}", l);
                }
            }

            #[test]
            fn replies_read_back_as_written(
                replies in vec(reply(), 1..4),
                capacity in 1usize..9,
            ) {
                let raw: Vec<u8> = replies.iter().flat_map(|r| r.3.clone()).collect();
                let (got, e) = read_all(&raw, capacity);
                prop_assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                prop_assert_eq!(got.len(), replies.len());
                for (g, (code, enhanced, lines, _)) in got.iter().zip(&replies) {
                    prop_assert_eq!(g.code, *code);
                    prop_assert_eq!(&g.lines, lines);
                    prop_assert_eq!(&g.enhanced(), enhanced);
                    if let (Some(e), [only]) = (enhanced, &lines[..]) {
                        let text = only.strip_prefix(e.as_str()).unwrap_or(only).trim_start();
                        prop_assert_eq!(g.text_without_enhanced(), text);
                    }
                }
            }
        }
    }
}

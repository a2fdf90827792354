//! The connection to the server: commands queued and written together (one write per
//! pipelined group), replies read and counted against the commands sent, the message data
//! written, each step under its RFC 5321 §4.5.3.2 timeout.
//!
//! A reply's timeout is a deadline for the whole reply, all its lines (RFC 5321
//! §4.5.3.2: the time to wait for the reply to a command), kept by the TCP stream under
//! the TLS layer ([`rsendmail::deadline::Timed`]): a server that sends a byte at a time
//! cannot make one reply last longer than its command's timeout. Writes are timed per
//! write, the data per block written (`Timeout.datablock`).
//!
//! Every line written is owed a reply (`Session::awaiting`): a reply that answers no
//! command, or data waiting once the last reply owed is read, is a protocol error, and
//! so is a reply outside what its command may get ([`Expect`]). Either ends the session
//! (the state becomes `Closed`, never reused), as does any I/O error or timeout, which
//! becomes a local `451 4.4.2` reply naming the phase ([`io_reply`]).

#![deny(clippy::string_slice)]

use super::auth::Credentials;
use super::reply::{Expect, read_reply};
use super::{Reply, SECRET_MASK, Session, State, Transcript};
use rsendmail::base64;
use rsendmail::config::io_text;
use rsendmail::deadline::{Deadline, Limit, Timed};
use rsendmail::message::wire;
use rsendmail::status;
use rsendmail::traffic;
use std::io::{self, BufWriter, Read, Write};
use std::time::Duration;

/// RFC 5321 §4.5.3.2 timeouts.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub initial: Duration,
    pub helo: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub datainit: Duration,
    pub datablock: Duration,
    pub datafinal: Duration,
    pub rset: Duration,
    pub quit: Duration,
}

impl Timeouts {
    /// The SMTP client's timeouts from the `Timeout.<name>` options in force (`t`, the
    /// effective settings: [`rsendmail::options::Settings::effective`], which holds the
    /// built-in values), each at least 1 second.
    pub fn of(t: &rsendmail::options::Timeouts) -> Timeouts {
        let s = |v: Option<u64>| Duration::from_secs(v.unwrap_or_default().max(1));
        Timeouts {
            connect: s(t.connect),
            initial: s(t.initial),
            helo: s(t.helo),
            mail: s(t.mail),
            rcpt: s(t.rcpt),
            datainit: s(t.datainit),
            datablock: s(t.datablock),
            datafinal: s(t.datafinal),
            rset: s(t.rset),
            quit: s(t.quit),
        }
    }
}

/// The connection: plain TCP, or TLS over it (after STARTTLS, or from the start).
pub enum Stream {
    Plain(Timed),
    Tls(Box<native_tls::TlsStream<Timed>>),
    /// While the stream is being replaced (STARTTLS); never seen from outside.
    Closed,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl Deadline for Stream {
    /// The deadline is kept under TLS too: on the TCP stream TLS reads from.
    fn limit(&mut self, limit: Limit) {
        match self {
            Stream::Plain(s) => s.limit(limit),
            Stream::Tls(s) => s.get_mut().limit(limit),
            Stream::Closed => {}
        }
    }
}

impl Stream {
    /// The deadline of the next writes, kept under TLS too (on the TCP stream TLS writes
    /// to): see [`Timed::write_limit`].
    pub fn write_limit(&mut self, limit: Limit) {
        match self {
            Stream::Plain(s) => s.write_limit(limit),
            Stream::Tls(s) => s.get_mut().write_limit(limit),
            Stream::Closed => {}
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Closed => Ok(()),
        }
    }
}

/// Whether an I/O error is the server ending the connection (not a timeout).
pub(super) fn closed_by_peer(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A local reply for an I/O error or timeout `during` the phase of `state`.
pub(super) fn io_reply(e: &io::Error, state: State, host: &str) -> Reply {
    let what = match e.kind() {
        // sendmail's words for a greeting that never comes.
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock if state == State::Greeting => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            return Reply::with_status(
                451,
                status::NO_ANSWER,
                format!("Connection timed out with [{bare}]"),
            );
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!(
                "timeout waiting for input from {host} during {}",
                state.phase()
            )
        }
        io::ErrorKind::UnexpectedEof => {
            format!("Connection lost to {host} during {}", state.phase())
        }
        _ => format!("{} with {host} during {}", io_text(e), state.phase()),
    };
    Reply::with_status(451, status::BAD_CONNECTION, what)
}

/// Whether `token` is an enhanced status code (RFC 3463: `4.2.0`).
fn is_enhanced(token: &[u8]) -> bool {
    let digits = |p: &&[u8]| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit);
    let parts: Vec<&[u8]> = token.split(|&c| c == b'.').collect();
    match parts.as_slice() {
        [class, subject, detail] => {
            matches!(class, [b'2' | b'4' | b'5']) && digits(subject) && digits(detail)
        }
        _ => false,
    }
}

/// Where the text of a reply's line begins, in octets: after the code and its separator
/// when the line is `coded` (as it came: `450-4.2.0 text`; a reply's kept lines are
/// not), then after an enhanced status code and the space after it. Only ASCII is
/// stepped over, so the offset is a character boundary.
fn text_start(line: &str, coded: bool) -> usize {
    let b = line.as_bytes();
    let mut at = 0;
    if coded && b.len() >= 3 && b.iter().take(3).all(u8::is_ascii_digit) {
        at = match b.get(3) {
            None => 3,
            Some(b'-' | b' ') => 4,
            Some(_) => 0,
        };
    }
    let rest = b.get(at..).unwrap_or_default();
    let token = rest.split(|&c| c == b' ').next().unwrap_or_default();
    if is_enhanced(token) {
        at += token.len();
        if rest.get(token.len()) == Some(&b' ') {
            at += 1;
        }
    }
    at
}

/// Where `secret` occurs in `text`, overlapping occurrences included: the octet range of
/// each (character boundaries, as both are UTF-8).
fn occurrences<'a>(text: &'a str, secret: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    let step = secret.chars().next().map_or(0, char::len_utf8);
    let mut from = 0;
    std::iter::from_fn(move || {
        if step == 0 {
            return None;
        }
        let at = from + text.get(from..)?.find(secret)?;
        from = at + step;
        Some((at, at + secret.len()))
    })
}

/// Mark the octets `start..end` of a line hidden.
fn hide(hidden: &mut [bool], start: usize, end: usize) {
    for h in hidden.iter_mut().take(end).skip(start) {
        *h = true;
    }
}

/// The lines of one reply with every occurrence of each of `secrets` masked: within each
/// line as it is, and within the lines' texts joined ([`text_start`] on: the text after
/// the code and enhanced status of each line, concatenated), so that a secret a server
/// splits across lines is masked in each line it falls in. Each run of masked
/// characters in a line becomes one [`SECRET_MASK`]. `coded`: the lines as they came,
/// their codes included (a reply's kept lines are not). A part of a secret that the
/// reply does not complete (its first half alone) is not a secret's occurrence, and is
/// shown.
fn mask_lines(secrets: &[String], lines: &mut [String], coded: bool) {
    if secrets.is_empty() || lines.is_empty() {
        return;
    }
    let mut hidden: Vec<Vec<bool>> = lines.iter().map(|l| vec![false; l.len()]).collect();
    for (l, h) in lines.iter().zip(hidden.iter_mut()) {
        for s in secrets {
            for (start, end) in occurrences(l, s) {
                hide(h, start, end);
            }
        }
    }
    // The texts joined; each line's part as (where it starts in `joined`, where in
    // the line).
    let mut joined = String::new();
    let mut parts = Vec::with_capacity(lines.len());
    for l in lines.iter() {
        let at = text_start(l, coded);
        parts.push((joined.len(), at));
        joined.push_str(l.get(at..).unwrap_or_default());
    }
    for s in secrets {
        for (start, end) in occurrences(&joined, s) {
            for (k, &(from, at)) in parts.iter().enumerate() {
                let to = parts.get(k + 1).map_or(joined.len(), |p| p.0);
                let (a, b) = (start.max(from), end.min(to));
                if a < b
                    && let Some(h) = hidden.get_mut(k)
                {
                    hide(h, a - from + at, b - from + at);
                }
            }
        }
    }
    for (l, h) in lines.iter_mut().zip(&hidden) {
        if !h.contains(&true) {
            continue;
        }
        let mut out = String::with_capacity(l.len());
        let mut inside = false;
        for (i, c) in l.char_indices() {
            if h.get(i) == Some(&true) {
                if !inside {
                    out.push_str(SECRET_MASK);
                }
                inside = true;
            } else {
                inside = false;
                out.push(c);
            }
        }
        *l = out;
    }
}

/// The forms of `c`'s password a server could echo in a reply's text: the password as
/// it is, as a reply's text would show it (printable, or escaped for `rsendmail-admin
/// check`), and base64 as AUTH PLAIN (`\0user\0password`) and AUTH LOGIN send it;
/// longest first, so that no form is masked only in part. CRAM-MD5 sends a digest, not
/// the secret. An empty password has nothing to hide.
pub(super) fn secret_forms(c: &Credentials) -> Vec<String> {
    let p = &c.password;
    if p.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![
        p.clone(),
        rsendmail::text::printable(p).into_owned(),
        rsendmail::text::octets_escaped(p.as_bytes()),
        base64::encode(format!("\0{}\0{p}", c.user).as_bytes()),
        base64::encode(p.as_bytes()),
    ];
    forms.retain(|f| !f.is_empty());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

impl Session {
    /// From now on, every reply text read (the reply, its `-v` transcript and `-X`
    /// traffic log lines, a protocol error naming it) has `c`'s password, in each form
    /// [`secret_forms`] gives, replaced by [`SECRET_MASK`]: a server may echo the
    /// credentials it refused, and the text goes on into logs, the queue's state,
    /// delivery reports and `rsendmail-admin check`'s lines.
    pub(super) fn hide_secret(&mut self, c: &Credentials) {
        for f in secret_forms(c) {
            if !self.secrets.contains(&f) {
                self.secrets.push(f);
            }
        }
        self.secrets.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// `r` with its text masked ([`Session::hide_secret`]).
    fn mask_reply(&self, mut r: Reply) -> Reply {
        mask_lines(&self.secrets, &mut r.lines, false);
        r
    }

    /// Read the next reply. One that answers no command (none is owed), or more data
    /// waiting once the last reply owed is read, is a protocol error.
    pub(super) fn read(
        &mut self,
        timeout: Duration,
        out: &mut Transcript<'_>,
    ) -> Result<Reply, Reply> {
        self.read_owed(timeout, out, false)
    }

    /// [`Session::read`]; with `last`, the reply is the transaction's last (to the end of
    /// the data), read after a dialogue that was in step up to its 354: data after it
    /// cannot change what it says about the message, so it stands, and the connection
    /// is only not used again (a protocol error here would send a message the server
    /// took again).
    pub(super) fn read_owed(
        &mut self,
        timeout: Duration,
        out: &mut Transcript<'_>,
        last: bool,
    ) -> Result<Reply, Reply> {
        let state = self.state;
        if self.awaiting == 0 {
            return Err(self.protocol_error(format!(
                "{} sent a reply that answers no command (during {})",
                self.host,
                state.phase()
            )));
        }
        // The whole reply, every line of it, within `timeout`.
        self.conn.get_mut().limit(Limit::Whole(timeout));
        // The lines as they came, shown once the reply is read whole: a secret split
        // across them is masked in each (`mask_lines`).
        let mut came = Vec::new();
        let res = read_reply(&mut self.conn, |l| came.push(l.to_string()));
        let last_came = came.last().cloned();
        mask_lines(&self.secrets, &mut came, true);
        for l in &came {
            // The reply line as it came: sendmail's traffic log keeps its CR.
            traffic::line(traffic::Dir::In, format!("{l}\r").as_bytes());
            if let Some(w) = out.as_deref_mut() {
                let _ = writeln!(w, "{l}");
            }
        }
        let r = res.map_err(|e| {
            self.state = State::Closed;
            self.peer_closed = closed_by_peer(&e);
            let mut r = io_reply(&e, state, &self.host);
            // An error that quotes the last line quotes it as masked with the lines
            // before it.
            if let (Some(raw), Some(shown)) = (last_came, came.last())
                && raw != *shown
            {
                for l in &mut r.lines {
                    *l = l.replace(raw.as_str(), shown);
                }
            }
            self.mask_reply(r)
        })?;
        let r = self.mask_reply(r);
        self.awaiting -= 1;
        if self.awaiting == 0 && self.unsolicited() {
            if last {
                log::warn!(
                    "{} sent more replies than commands (after {} during {}); connection closed",
                    self.host,
                    r.summary(),
                    state.phase()
                );
                self.spent = true;
                return Ok(r);
            }
            return Err(self.protocol_error(format!(
                "{} sent more replies than commands (after {} during {})",
                self.host,
                r.summary(),
                state.phase()
            )));
        }
        Ok(r)
    }

    /// Read the reply to `command` and check it is one the command may get.
    pub(super) fn read_expect(
        &mut self,
        timeout: Duration,
        out: &mut Transcript<'_>,
        expect: Expect,
        command: &str,
    ) -> Result<Reply, Reply> {
        let r = self.read(timeout, out)?;
        self.check(r, expect, command)
    }

    /// Whether `r` is a reply `command` may get; a protocol error if not.
    pub(super) fn check(
        &mut self,
        r: Reply,
        expect: Expect,
        command: &str,
    ) -> Result<Reply, Reply> {
        if expect.allows(r.code) {
            return Ok(r);
        }
        Err(self.protocol_error(format!(
            "{} answered {command} with {} ({} expected)",
            self.host,
            r.summary(),
            expect.wanted()
        )))
    }

    /// The server broke the protocol: the session ends (the connection is closed, not
    /// reused), and the reply to give every recipient of the transaction.
    fn protocol_error(&mut self, what: String) -> Reply {
        self.state = State::Closed;
        self.desynchronised = true;
        Reply::with_status(
            451,
            status::PROTOCOL_TEMP,
            format_args!("Protocol error: {what}"),
        )
    }

    /// Whether the server has sent anything that no command asked for yet: data left in
    /// the buffer, or (on a plain connection) waiting on the socket. Under TLS only the
    /// buffer is looked at: the socket may hold TLS records that carry no reply.
    fn unsolicited(&self) -> bool {
        if !self.conn.buffer().is_empty() {
            return true;
        }
        if !matches!(self.conn.get_ref(), Stream::Plain(_)) {
            return false;
        }
        use std::os::fd::AsRawFd;
        let mut byte = [0u8; 1];
        // SAFETY: a one-byte peek into a buffer we own, on our own socket, not waiting.
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n > 0
    }

    /// Queue a command line (written on the next flush).
    pub(super) fn put(&mut self, line: &str, out: &mut Transcript<'_>) -> Result<(), Reply> {
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, ">>> {line}");
        }
        traffic::line(traffic::Dir::Out, line.as_bytes());
        self.queue_line(line);
        Ok(())
    }

    /// Queue a line that is not echoed (credentials); the traffic log shows
    /// `(credentials not shown)` for it, after the command and mechanism when the line
    /// is an AUTH command with an initial response (`AUTH PLAIN (credentials not shown)`).
    pub(super) fn put_quiet(&mut self, line: &str) {
        // An AUTH command keeps its name and mechanism in the log, as the -v transcript
        // shows them (`AUTH PLAIN (credentials not shown)`); a bare SASL response is
        // all credentials.
        let shown = match line.strip_prefix("AUTH ").and_then(|r| r.split_once(' ')) {
            Some((mechanism, _)) => format!("AUTH {mechanism} (credentials not shown)"),
            None => "(credentials not shown)".into(),
        };
        traffic::line(traffic::Dir::Out, shown.as_bytes());
        self.queue_line(line);
    }

    /// Queue a line, not logged: [`Session::put`] logs what it queues; the commands
    /// sent after a message's final dot are logged as [`Session::write_data`] writes
    /// them. Every line sent is owed a reply.
    pub(super) fn queue_line(&mut self, line: &str) {
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        self.awaiting += 1;
    }

    /// Send the queued lines; the server must take them all within `timeout`.
    pub(super) fn flush(&mut self, timeout: Duration) -> Result<(), Reply> {
        self.conn.get_mut().write_limit(Limit::Whole(timeout));
        let buf = std::mem::take(&mut self.wbuf);
        let r = self
            .conn
            .get_mut()
            .write_all(&buf)
            .and_then(|_| self.conn.get_mut().flush());
        r.map_err(|e| {
            let st = self.state;
            self.state = State::Closed;
            self.peer_closed = closed_by_peer(&e);
            io_reply(&e, st, &self.host)
        })
    }

    /// Write the message (from where `data` stands) as `rsendmail::message::wire` makes it
    /// for the wire, body lines of at most `body_limit` octets; the final dot is part of
    /// it. The server must take each 64 KiB within the data block timeout
    /// (`Timeout.datablock`), however slowly it reads. The commands queued meanwhile
    /// (the next message's, sent ahead: [`super::State::Primed`]) follow the final dot
    /// in the same write.
    pub(super) fn write_data(&mut self, data: &mut dyn Read, body_limit: usize) -> io::Result<()> {
        self.conn.get_mut().write_limit(Limit::Blocks {
            bytes: 64 * 1024,
            timeout: self.timeouts.datablock,
        });
        let tail = std::mem::take(&mut self.wbuf);
        // The same encoding with or without -X: the traffic log only watches what is sent.
        fn send(
            data: &mut dyn Read,
            out: impl Write,
            body_limit: usize,
            tail: &[u8],
        ) -> io::Result<()> {
            // The data's end does not flush: the commands after the dot go in its write.
            struct Unflushed<'w, W: Write>(&'w mut W);
            impl<W: Write> Write for Unflushed<'_, W> {
                fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                    self.0.write(buf)
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let mut w = BufWriter::with_capacity(64 * 1024, out);
            wire::write_wire_limited(data, &mut Unflushed(&mut w), body_limit)?;
            w.write_all(tail)?;
            w.flush()
        }
        if traffic::enabled() {
            // -X: each line as sent, the final dot and the commands after it included
            // (those were queued unlogged: `Session::queue_line`).
            send(
                data,
                traffic::WriteTee::new(self.conn.get_mut()),
                body_limit,
                &tail,
            )
        } else {
            send(data, self.conn.get_mut(), body_limit, &tail)
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    /// One line, masked as a reply's kept line is.
    fn masked(secrets: &[String], text: &str) -> String {
        let mut lines = [text.to_string()];
        mask_lines(secrets, &mut lines, false);
        let [l] = lines;
        l
    }

    fn forms(password: &str) -> Vec<String> {
        secret_forms(&Credentials {
            user: "bob".into(),
            password: password.into(),
        })
    }

    #[test]
    fn each_form_of_the_password_is_masked() {
        let forms = forms("wr0ng-pass");
        let text = "535 failed for bob pw wr0ng-pass plain AGJvYgB3cjBuZy1wYXNz login \
                    d3IwbmctcGFzcw==";
        assert_eq!(
            masked(&forms, text),
            "535 failed for bob pw ******** plain ******** login ********"
        );
        // Nothing to hide: no password, no mask anywhere.
        let none = secret_forms(&Credentials {
            user: "bob".into(),
            password: String::new(),
        });
        assert!(none.is_empty());
        assert_eq!(masked(&none, text), text);
        // A password with a control character is masked as a reply's text shows it.
        let tab = secret_forms(&Credentials {
            user: "bob".into(),
            password: "a\u{1b}b".into(),
        });
        assert_eq!(masked(&tab, "pw a?b"), "pw ********");
        assert_eq!(masked(&tab, "pw a\\033b"), "pw ********");
        // Overlapping and adjacent occurrences: one mask for the run.
        assert_eq!(masked(&forms, "wr0ng-passwr0ng-pass!"), "********!");
        // Only a part: shown.
        assert_eq!(masked(&forms, "pw wr0ng-pa"), "pw wr0ng-pa");
    }

    /// A secret split across the lines of one reply is masked in each line it falls in,
    /// the lines as they came (codes, enhanced status) and as the reply keeps them.
    #[test]
    fn a_password_split_across_lines_is_masked_in_each() {
        let forms = forms("S3cr3tPassw0rdXYZ");
        let mut came = [
            "450-4.2.0 first half S3cr3tPa".to_string(),
            "450 4.2.0 ssw0rdXYZ second half".to_string(),
        ];
        mask_lines(&forms, &mut came, true);
        assert_eq!(
            came,
            [
                "450-4.2.0 first half ********",
                "450 4.2.0 ******** second half"
            ]
        );
        let mut kept = [
            "4.2.0 first half S3cr3tPa".to_string(),
            "4.2.0 ssw0rdXYZ second half".to_string(),
        ];
        mask_lines(&forms, &mut kept, false);
        assert_eq!(
            kept,
            ["4.2.0 first half ********", "4.2.0 ******** second half"]
        );
        // Over three lines, without enhanced codes, the base64 form too, in UTF-8 text.
        let mut three = [
            "250-é UzNjcjN0".to_string(),
            "250-UGFzc3cwcmRY".to_string(),
            "250 WVo= ü".to_string(),
        ];
        mask_lines(&forms, &mut three, true);
        assert_eq!(three, ["250-é ********", "250-********", "250 ******** ü"]);
        // A first half alone is not the secret.
        let mut half = [
            "450-4.2.0 S3cr3tPa".to_string(),
            "450 4.2.0 something else".to_string(),
        ];
        mask_lines(&forms, &mut half, true);
        assert_eq!(half[0], "450-4.2.0 S3cr3tPa");
    }

    /// Any lines, however cut, give masked lines and no panic.
    #[test]
    fn odd_lines_are_masked_without_a_panic() {
        let forms = forms("pé");
        for lines in [
            vec!["".to_string()],
            vec!["45".to_string(), "".to_string()],
            vec!["450".to_string(), "é".to_string()],
            vec!["450-4.2.".to_string(), "450 4.2.0".to_string()],
            vec!["p".to_string(), "é".to_string()],
            vec!["xyzp".to_string(), "\u{e9}".to_string()],
        ] {
            let mut m = lines.clone();
            mask_lines(&forms, &mut m, true);
            let mut k = lines.clone();
            mask_lines(&forms, &mut k, false);
        }
        let mut m = ["450-p".to_string(), "450 é".to_string()];
        mask_lines(&forms, &mut m, true);
        assert_eq!(m, ["450-********", "450 ********"]);
    }
}

//! The SMTP server: one session over a reader and a writer (stdin/stdout for `-bs`, a
//! socket for `-bd`), replying as sendmail 8.17 replies (recorded; see compat-tests).
//!
//! Each accepted message goes through the command line's intake
//! ([`crate::submit::write_entry`]) into the spool; `250 ... Message accepted for delivery`
//! is sent only after the commit point. What happens next (the delivery mode, ETRN, the
//! sender-domain check, which needs DNS) is the [`Backend`]'s: the server itself links
//! neither DNS nor TLS.
//!
//! Pipelining (RFC 2920): replies are buffered while more input is already waiting and
//! flushed before the server would wait for the client, so a pipelined group is answered
//! in order and in one write. sendmail 8.17 refuses input sent before its greeting
//! (`-bs` too); rsendmail accepts it (compat-tests/DIFFERENCES.md).
//!
//! Nothing the client sends makes the session panic: the client's text is only cut with
//! `str::get`, `split_once` and the like, never by byte index (the lints below keep it
//! so), and a reply never carries a bare CR or LF of the client's, since every reply
//! line is written by [`reply_line`].

#![deny(clippy::string_slice, clippy::indexing_slicing)]

pub mod data;
pub mod net;

use crate::cli::options::DeliveryMode;
use crate::clock;
use crate::message::{self, Header, LineReader, address};
use crate::spool::Spool;
use crate::spool::entry::{Envelope, Recipient};
use crate::submit::{self, StoreError};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;

/// The longest command line accepted (sendmail's MAXLINE); longer is an attack.
pub const MAX_COMMAND_LINE: usize = 2048;

/// What a DNS check of the sender's domain found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainCheck {
    Exists,
    /// NXDOMAIN: the domain does not exist.
    NotFound,
    /// The lookup failed for now.
    TempFail,
}

/// The parts of a session that need the delivery engine.
pub trait Backend {
    /// Look the sender's domain up (never called in deferred mode).
    fn sender_domain(&mut self, domain: &str) -> DomainCheck;
    /// `ETRN domain` (`subdomains` for `ETRN @domain`): start delivering its mail.
    /// Returns false when no flush could be started (458).
    fn etrn(&mut self, domain: &str, subdomains: bool) -> bool;
    /// A message was committed: act on the delivery mode.
    fn accepted(&mut self, id: &str, mode: DeliveryMode);
}

/// Who is on the other end.
#[derive(Clone, Debug)]
pub enum Client {
    /// `-bs`: the user who ran us.
    Local { login: String, uid: u32 },
    /// `-bd`: a TCP peer.
    Remote { ip: IpAddr },
}

/// A session's settings.
pub struct Server<'a> {
    pub host: String,
    pub spool: &'a Spool,
    pub mode: DeliveryMode,
    pub client: Client,
    /// The client may relay (it is in the trusted networks). Its messages are also
    /// treated as local submissions: unqualified header addresses get this host's name,
    /// as Postfix does for local clients only.
    pub trusted: bool,
    /// `O OldStyleHeaders` (see [`address::OldStyle`]).
    pub old_style: bool,
    /// Domains anyone may send to besides this host's own names (`O RelayDomains=`).
    pub relay_domains: Vec<String>,
    pub all_to_smarthost: bool,
    pub aliases: Option<crate::aliases::Aliases>,
    /// `O MaxMessageSize=`, advertised in EHLO.
    pub max_size: Option<u64>,
    /// `O MaxRecipientsPerMessage=`.
    pub max_recipients: usize,
}

/// How a session ended.
#[derive(Debug, Default)]
pub struct Ending {
    /// The `-bs` exit status, as sendmail leaves it: the first address error of the
    /// session counts (a sender's domain that does not exist 68, `RCPT TO:<>` 67, a
    /// route-only address 64); 0 otherwise.
    pub status: crate::exit::Sysexit,
    /// Messages accepted.
    pub accepted: Vec<String>,
}

impl Ending {
    fn note(&mut self, code: crate::exit::Sysexit) {
        if self.status == crate::exit::Sysexit::Ok {
            self.status = code;
        }
    }
}

#[derive(Default)]
struct Transaction {
    sender: Option<String>,
    recipients: Vec<Recipient>,
    size: Option<u64>,
    body: Option<String>,
    ret: Option<String>,
    envid: Option<String>,
    /// The sender's domain check, done at the first RCPT.
    sender_checked: Option<DomainCheck>,
}

/// RFC 3461 xtext → text (`+2B` → `+`). `None` for anything that is not xtext: a
/// character outside `!`..`~`, an `=`, or a `+` without two hex digits after it (as
/// sendmail's `xtextok`, either case); and for text that is not UTF-8 once decoded.
pub fn xtext_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'+' {
            let hi = bytes.next().and_then(hex_digit)?;
            let lo = bytes.next().and_then(hex_digit)?;
            out.push(hi << 4 | lo);
        } else if (33..=126).contains(&b) && b != b'=' {
            out.push(b);
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The value of one hex digit (either case).
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// One reply line as it goes out: the control characters a client's text may have put
/// in it (a CR or LF above all, which would end the line early) are written escaped
/// (`\r`), as [`address::shown`] writes them; a tab stays (HELP's lines hold tabs).
pub fn reply_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str("\r\n");
    out
}

/// A MAIL or RCPT path as the client wrote it.
struct Path<'t> {
    /// The path as written (`<a@b>`), for the reply.
    written: &'t str,
    /// Inside the angle brackets, source route dropped; `None` for `<>`.
    address: Option<String>,
    params: Vec<&'t str>,
}

/// Why a path is refused before its address is looked at.
enum PathError {
    /// The keyword or the path is missing: `501 5.5.2 Syntax error in parameters
    /// scanning "FROM"`.
    Syntax,
    /// The path itself is broken (`<` never closed, a source route with no mailbox);
    /// the reply names what was written.
    Invalid(String, address::Invalid),
}

/// Split `FROM:<addr> PARAMS` after the keyword (RFC 5321 §4.1.2 `Path`): the angle
/// brackets are matched outside quoted strings (`<"a>b"@x>` is one path), a `<` never
/// closed is sendmail's `Unbalanced '<'`, a source route (`<@a,@b:user@host>`, RFC 5321
/// §3.3) is dropped, and a route with no mailbox after it (`<@a:>`, `<@a>`) is `User
/// address required`, never the null path. A path without brackets (`FROM:root`) runs
/// to the first blank, as sendmail takes it.
fn split_path<'t>(arg: &'t str, keyword: &str) -> Result<Path<'t>, PathError> {
    let arg = arg.trim_start();
    // `get` rather than slicing: the client's bytes may put a multi-byte character
    // across the keyword's end (`FROé:`).
    let head = arg.get(..keyword.len()).ok_or(PathError::Syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(PathError::Syntax);
    }
    let rest = arg
        .get(keyword.len()..)
        .ok_or(PathError::Syntax)?
        .trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or(PathError::Syntax)?
        .trim_start();
    if rest.is_empty() {
        return Err(PathError::Syntax);
    }
    let end = if rest.starts_with('<') {
        let mut q = address::Quoting::default();
        let close = rest
            .char_indices()
            .skip(1)
            .find(|&(_, c)| q.plain(c) && c == '>')
            .map(|(i, _)| i + 1);
        match close {
            Some(e) => e,
            None => {
                let written = rest.split(' ').next().unwrap_or(rest).to_string();
                return Err(PathError::Invalid(
                    written,
                    address::Invalid::Unbalanced('<'),
                ));
            }
        }
    } else {
        rest.find(' ').unwrap_or(rest.len())
    };
    let (written, params) = rest.split_at_checked(end).ok_or(PathError::Syntax)?;
    let inner = written
        .strip_prefix('<')
        .and_then(|w| w.strip_suffix('>'))
        .unwrap_or(written);
    let address = if inner.starts_with('@') {
        // A source route: the mailbox is what follows its last colon.
        match inner.rsplit_once(':') {
            Some((_, after)) if !after.is_empty() => Some(after.to_string()),
            _ => {
                return Err(PathError::Invalid(
                    written.to_string(),
                    address::Invalid::UserRequired,
                ));
            }
        }
    } else if inner.is_empty() {
        None
    } else {
        Some(inner.to_string())
    };
    Ok(Path {
        written,
        address,
        params: params.split_ascii_whitespace().collect(),
    })
}

/// The reply refusing an address as written (`553 5.1.3 <a@@b>... Invalid route
/// address`); its status is noted for the `-bs` exit status.
fn refuse_address(end: &mut Ending, shown: &str, e: &address::Invalid) -> String {
    end.note(e.exit());
    format!("553 {} {shown}... {}", e.status(), e.text())
}

/// The reply refusing a MAIL (`keyword` FROM) or RCPT (TO) path.
fn refuse_path(end: &mut Ending, keyword: &str, e: &PathError) -> String {
    match e {
        PathError::Syntax => {
            format!("501 5.5.2 Syntax error in parameters scanning \"{keyword}\"")
        }
        PathError::Invalid(written, e) => refuse_address(end, written, e),
    }
}

/// The address of a MAIL or RCPT path, parsed and checked. A CR inside the path (the
/// line's own CRLF is gone; RFC 5321 §2.3.8 allows CR only there) is refused as the
/// control character it is, rather than read as the white space it is in a header field.
fn checked_path(path: &str) -> Result<String, address::Invalid> {
    match path.chars().find(|&c| c == '\r' || c == '\n') {
        Some(c) => Err(address::Invalid::Illegal(c)),
        None => address::parse_one(path),
    }
}

/// `KEY=value` (value may be empty or absent).
fn param(p: &str) -> (String, Option<&str>) {
    match p.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
        None => (p.to_ascii_uppercase(), None),
    }
}

/// Apply `KEY=value` parameters in order; the first refusal is the reply.
fn each_param(
    params: &[&str],
    mut apply: impl FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    for p in params {
        let (k, v) = param(p);
        apply(&k, v.unwrap_or(""))?;
    }
    Ok(())
}

/// One MAIL parameter (RFC 1870 SIZE, RFC 6152 BODY, RFC 3461 RET and ENVID), with
/// sendmail's replies.
fn mail_param(next: &mut Transaction, k: &str, v: &str) -> Result<(), String> {
    match k {
        // sendmail ignores a SIZE it cannot read.
        "SIZE" => next.size = v.parse().ok(),
        "BODY" => match v.to_ascii_uppercase().as_str() {
            b @ ("7BIT" | "8BITMIME") => next.body = Some(b.to_string()),
            _ => return Err(format!("501 5.5.4 Unknown BODY type {v}")),
        },
        "RET" if next.ret.is_some() => return Err("501 5.5.0 Duplicate RET parameter".into()),
        "ENVID" if next.envid.is_some() => {
            return Err("501 5.5.0 Duplicate ENVID parameter".into());
        }
        "RET" => match v.to_ascii_uppercase().as_str() {
            r @ ("FULL" | "HDRS") => next.ret = Some(r.to_string()),
            _ => return Err(format!("501 5.5.2 Bad argument \"{v}\" to RET")),
        },
        "ENVID" => match xtext_decode(v) {
            Some(e) if !e.is_empty() && e.len() <= 100 => next.envid = Some(e),
            _ => return Err("501 5.5.4 Syntax error in ENVID parameter value".into()),
        },
        _ => return Err(format!("555 5.5.4 {k} parameter unrecognized")),
    }
    Ok(())
}

/// One RCPT parameter (RFC 3461 NOTIFY and ORCPT), with sendmail's replies.
fn rcpt_param(r: &mut Recipient, k: &str, v: &str) -> Result<(), String> {
    match k {
        "NOTIFY" => {
            let words: Vec<String> = v.split(',').map(|w| w.to_ascii_uppercase()).collect();
            let ok = !v.is_empty()
                && (words == ["NEVER"]
                    || words
                        .iter()
                        .all(|w| matches!(w.as_str(), "SUCCESS" | "FAILURE" | "DELAY")));
            if !ok {
                // sendmail's text, two blanks included.
                return Err(format!("501 5.5.4 Bad argument \"{v}\"  to NOTIFY"));
            }
            r.notify = Some(words.join(","));
        }
        "ORCPT" => match xtext_decode(v) {
            Some(o) if o.contains(';') => r.orcpt = Some(o),
            _ => return Err("501 5.5.4 Syntax error in ORCPT parameter value".into()),
        },
        _ => return Err(format!("555 5.5.4 {k} parameter unrecognized")),
    }
    Ok(())
}

/// Free bytes for an unprivileged writer on the spool's file system.
fn free_bytes(spool: &Spool) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(&spool.dir).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// Read one command line into `buf` (without its line end): `Some(true)`, `Some(false)`
/// when it is longer than [`MAX_COMMAND_LINE`], `None` at EOF.
fn read_command<R: Read>(r: &mut BufReader<R>, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_COMMAND_LINE as u64 + 2)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_COMMAND_LINE as u64 + 2 {
            return Ok(Some(false));
        }
        // EOF in the middle of a line: the client went away.
        return Ok(None);
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(true))
}

impl Server<'_> {
    /// The client as replies and `Received:` name it: `user@localhost` or `[ip]`.
    pub fn client_text(&self) -> String {
        match &self.client {
            Client::Local { login, .. } => format!("{login}@localhost"),
            Client::Remote { ip } => format!("[{ip}]"),
        }
    }

    fn greeting(&self) -> String {
        format!(
            "220 {} ESMTP {}; {}",
            self.host,
            crate::PRODUCT,
            clock::rfc5322(&clock::local(clock::now()))
        )
    }

    /// Whether mail to `addr` may be accepted from this client.
    fn may_relay_to(&self, addr: &str) -> bool {
        if self.trusted || address::is_local(addr, &self.host, false) {
            return true;
        }
        match address::domain_of(addr) {
            Some(d) => self
                .relay_domains
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&d)),
            None => true,
        }
    }

    /// Run a session. Errors are the connection's (the client is gone).
    pub fn run<R: Read, W: Write>(
        &mut self,
        backend: &mut dyn Backend,
        input: &mut BufReader<R>,
        out: &mut W,
    ) -> io::Result<Ending> {
        let mut end = Ending::default();
        let mut helo: Option<(String, bool)> = None;
        let mut tx = Transaction::default();
        let mut line = Vec::new();
        macro_rules! reply {
            ($($t:tt)*) => {{
                out.write_all(reply_line(&format!($($t)*)).as_bytes())?;
            }};
        }
        reply!("{}", self.greeting());
        loop {
            // Flush before waiting: a pipelined group is answered in one write.
            if input.buffer().is_empty() {
                out.flush()?;
            }
            let got = match read_command(input, &mut line) {
                Ok(g) => g,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    reply!("421 4.4.2 {} Timeout waiting for input", self.host);
                    out.flush()?;
                    return Ok(end);
                }
                Err(e) => return Err(e),
            };
            match got {
                None => {
                    out.flush()?;
                    return Ok(end);
                }
                Some(false) => {
                    reply!(
                        "421 4.7.0 {} Command too long, possible attack {}",
                        self.host,
                        self.client_text()
                    );
                    out.flush()?;
                    return Ok(end);
                }
                Some(true) => {}
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let (verb, arg) = match text.split_once([' ', '\t']) {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (text.to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "HELO" | "EHLO" => {
                    if arg.is_empty() {
                        reply!("501 5.0.0 {verb} requires domain address");
                        continue;
                    }
                    tx = Transaction::default();
                    let hello = format!(
                        "{} Hello {}, pleased to meet you",
                        self.host,
                        self.client_text()
                    );
                    if verb == "HELO" {
                        reply!("250 {hello}");
                    } else {
                        reply!("250-{hello}");
                        reply!("250-ENHANCEDSTATUSCODES");
                        reply!("250-PIPELINING");
                        reply!("250-8BITMIME");
                        match self.max_size {
                            Some(n) => reply!("250-SIZE {n}"),
                            None => reply!("250-SIZE"),
                        }
                        reply!("250-DSN");
                        reply!("250-ETRN");
                        reply!("250 HELP");
                    }
                    helo = Some((
                        arg.split_whitespace().next().unwrap_or("").into(),
                        verb == "EHLO",
                    ));
                }
                "MAIL" => {
                    if helo.is_none() {
                        reply!("503 5.0.0 Polite people say HELO first");
                        continue;
                    }
                    if tx.sender.is_some() {
                        reply!("503 5.5.0 Sender already specified");
                        continue;
                    }
                    let Path {
                        written,
                        address: path,
                        params,
                    } = match split_path(&arg, "FROM") {
                        Ok(p) => p,
                        Err(e) => {
                            reply!("{}", refuse_path(&mut end, "FROM", &e));
                            continue;
                        }
                    };
                    // `<>` is the null sender; anything else is one checked address.
                    let path = match path.as_deref().map(checked_path) {
                        None => String::new(),
                        Some(Ok(a)) => a,
                        Some(Err(e)) => {
                            reply!("{}", refuse_address(&mut end, written, &e));
                            continue;
                        }
                    };
                    let mut next = Transaction::default();
                    if let Err(b) = each_param(&params, |k, v| mail_param(&mut next, k, v)) {
                        reply!("{b}");
                        continue;
                    }
                    if let (Some(max), Some(n)) = (self.max_size, next.size)
                        && n > max
                    {
                        reply!("552 5.2.3 Message size exceeds fixed maximum message size ({max})");
                        continue;
                    }
                    if let Some(n) = next.size
                        && free_bytes(self.spool).is_some_and(|free| n > free)
                    {
                        reply!("452 4.4.5 Insufficient disk space; try again later");
                        continue;
                    }
                    next.sender = Some(path);
                    tx = next;
                    reply!("250 2.1.0 {written}... Sender ok");
                }
                "RCPT" => {
                    let Some(sender) = tx.sender.clone() else {
                        reply!("503 5.0.0 Need MAIL before RCPT");
                        continue;
                    };
                    let Path {
                        written,
                        address: path,
                        params,
                    } = match split_path(&arg, "TO") {
                        Ok(p) => p,
                        Err(e) => {
                            reply!("{}", refuse_path(&mut end, "TO", &e));
                            continue;
                        }
                    };
                    let Some(path) = path else {
                        end.note(crate::exit::Sysexit::NoUser);
                        reply!("553 5.0.0 <>... User address required");
                        continue;
                    };
                    // Replies name the path as written, in brackets.
                    let shown = if written.starts_with('<') {
                        written.to_string()
                    } else {
                        format!("<{written}>")
                    };
                    let path = match checked_path(&path) {
                        Ok(a) => a,
                        Err(e) => {
                            reply!("{}", refuse_address(&mut end, &shown, &e));
                            continue;
                        }
                    };
                    let mut r = Recipient::new(path.clone());
                    if let Err(b) = each_param(&params, |k, v| rcpt_param(&mut r, k, v)) {
                        reply!("{b}");
                        continue;
                    }
                    // The sender's domain, once per transaction (sendmail checks at RCPT).
                    if self.mode != DeliveryMode::Deferred
                        && tx.sender_checked.is_none()
                        && let Some(d) = address::domain_of(&sender)
                        && !d.starts_with('[')
                        && !address::is_local(&sender, &self.host, false)
                    {
                        tx.sender_checked = Some(backend.sender_domain(&d));
                    }
                    match tx.sender_checked {
                        Some(DomainCheck::NotFound) => {
                            end.note(crate::exit::Sysexit::NoHost);
                            reply!(
                                "553 5.1.8 {shown}... Domain of sender address {sender} does not exist"
                            );
                            continue;
                        }
                        Some(DomainCheck::TempFail) => {
                            reply!("451 4.1.8 Domain of sender address {sender} does not resolve");
                            continue;
                        }
                        _ => {}
                    }
                    if !self.may_relay_to(&path) {
                        reply!("550 5.7.1 {shown}... Relaying denied");
                        continue;
                    }
                    if tx.recipients.len() >= self.max_recipients {
                        reply!("452 4.5.3 Too many recipients");
                        continue;
                    }
                    let local = address::is_local(&path, &self.host, self.all_to_smarthost);
                    let mut accepted = vec![r.clone()];
                    if local {
                        let host = self.host.clone();
                        let to_smarthost = self.all_to_smarthost;
                        let is_local = move |a: &str| address::is_local(a, &host, to_smarthost);
                        let (ok, refused) = submit::expand_local(
                            vec![r],
                            self.aliases.as_ref(),
                            &is_local,
                            &self.host,
                        );
                        if let Some(f) = refused.first() {
                            let why = f.text.split_once("... ").map(|(_, w)| w).unwrap_or(&f.text);
                            let code = if f.code == crate::exit::Sysexit::NoUser {
                                "550 5.1.1"
                            } else {
                                "550 5.7.1"
                            };
                            reply!("{code} {shown}... {why}");
                            continue;
                        }
                        accepted = ok;
                    }
                    for a in accepted {
                        if !tx
                            .recipients
                            .iter()
                            .any(|x| x.address.eq_ignore_ascii_case(&a.address))
                        {
                            tx.recipients.push(a);
                        }
                    }
                    if self.mode == DeliveryMode::Deferred && !local {
                        reply!("250 2.1.5 {shown}... Recipient ok (will queue)");
                    } else {
                        reply!("250 2.1.5 {shown}... Recipient ok");
                    }
                }
                "DATA" => {
                    if tx.sender.is_none() {
                        reply!("503 5.0.0 Need MAIL command");
                        continue;
                    }
                    if tx.recipients.is_empty() {
                        reply!("503 5.0.0 Need RCPT (recipient)");
                        continue;
                    }
                    reply!("354 End data with <CR><LF>.<CR><LF>");
                    out.flush()?;
                    let (proto_helo, esmtp) = helo.clone().unwrap_or_default();
                    let result = self.receive(&tx, &proto_helo, esmtp, input);
                    tx = Transaction::default();
                    match result {
                        Received::Accepted(id) => {
                            reply!("250 2.0.0 {id} Message accepted for delivery");
                            out.flush()?;
                            backend.accepted(&id, self.mode);
                            end.accepted.push(id);
                        }
                        Received::Refused(text) => reply!("{text}"),
                        Received::Fault(text) => {
                            if let Some(t) = text {
                                reply!("{t}");
                            }
                            out.flush()?;
                            return Ok(end);
                        }
                    }
                }
                "RSET" => {
                    tx = Transaction::default();
                    reply!("250 2.0.0 Reset state");
                }
                "NOOP" => reply!("250 2.0.0 OK"),
                "QUIT" => {
                    reply!("221 2.0.0 {} closing connection", self.host);
                    out.flush()?;
                    return Ok(end);
                }
                // sendmail's PrivacyOptions=novrfy,noexpn, always: the answers say nothing
                // about who exists here.
                "VRFY" => reply!(
                    "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)"
                ),
                "EXPN" => reply!("502 5.7.0 Sorry, we do not allow this operation"),
                "HELP" => {
                    for l in HELP {
                        reply!("214-2.0.0 {l}");
                    }
                    reply!("214 2.0.0 End of HELP info");
                }
                "ETRN" => {
                    if arg.is_empty() {
                        reply!("500 5.5.2 Parameter required");
                    } else if let Some(q) = arg.strip_prefix('#') {
                        reply!("459 4.5.4 Queue {q} unknown");
                    } else {
                        let (dom, sub) = match arg.strip_prefix('@') {
                            Some(d) => (d, true),
                            None => (arg.as_str(), false),
                        };
                        let valid = !dom.is_empty()
                            && dom.len() <= 255
                            && dom
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
                        if !valid {
                            reply!("501 5.5.4 Syntax error in ETRN parameter");
                        } else if backend.etrn(dom, sub) {
                            reply!("250 2.0.0 Queuing for node {arg} started");
                        } else {
                            reply!("458 4.5.0 Unable to queue messages for node {arg}");
                        }
                    }
                }
                "STARTTLS" | "AUTH" | "TURN" | "ATRN" | "VERB" | "BDAT" | "SEND" | "SOML"
                | "SAML" | "ONEX" | "XUSR" => {
                    reply!("502 5.5.1 Command not implemented: \"{verb}\"")
                }
                _ => {
                    let shown: String = text.chars().take(100).collect();
                    reply!("500 5.5.1 Command unrecognized: \"{shown}\"");
                }
            }
        }
    }

    /// Take the message after 354 into the spool.
    fn receive<R: Read>(
        &self,
        tx: &Transaction,
        helo: &str,
        esmtp: bool,
        input: &mut BufReader<R>,
    ) -> Received {
        let mut data = data::DataReader::new(input);
        let result = self.store(tx, helo, esmtp, &mut data);
        let fault_text = |d: &data::DataReader<'_, BufReader<R>>| -> Option<String> {
            match d.fault.as_ref()? {
                data::Fault::BareLf => Some("421 4.5.0 Bare linefeed (LF) not allowed".into()),
                data::Fault::BareCr => {
                    Some("421 4.5.0 Bare carriage return (CR) not allowed".into())
                }
                data::Fault::Eof => None,
                data::Fault::Io(_) => {
                    Some(format!("421 4.4.2 {} Timeout waiting for input", self.host))
                }
            }
        };
        match result {
            Ok(id) => Received::Accepted(id),
            Err(e) => {
                if data.fault.is_some() || (!data.done && !data.drain()) {
                    return Received::Fault(fault_text(&data));
                }
                Received::Refused(match e {
                    StoreError::TooBig(max) => {
                        format!("552 5.2.3 Message exceeds maximum fixed size ({max})")
                    }
                    StoreError::Read(e) => format!("554 5.6.0 {e}"),
                    StoreError::Fatal(f) => {
                        log::error!("{}", f.message);
                        if f.code == crate::exit::Sysexit::CantCreat
                            || f.message.contains("No space")
                        {
                            "452 4.3.1 Insufficient disk space; try again later".into()
                        } else {
                            "451 4.3.0 Temporary system failure; try again later".into()
                        }
                    }
                })
            }
        }
    }

    fn store<R: BufRead>(
        &self,
        tx: &Transaction,
        helo: &str,
        esmtp: bool,
        data: &mut R,
    ) -> Result<String, StoreError> {
        let now = clock::now();
        let mut entry = self.spool.begin(now).map_err(StoreError::Fatal)?;
        let id = entry.id.clone();
        let mut reader = LineReader::new(data, true);
        let mut head = message::read_head(&mut reader).map_err(|f| {
            if f.code == crate::exit::Sysexit::IoErr {
                StoreError::Read(io::Error::other(f.message))
            } else {
                // Headers too large: the size rule's reply.
                StoreError::TooBig(message::MAX_HEADER_BYTES as u64)
            }
        })?;
        message::apply_field_rules(&mut head.headers);
        if self.trusted {
            let mut style = address::OldStyle(self.old_style);
            message::observe_style(&head.headers, &mut style);
            message::qualify_fields(&mut head.headers, &self.host, &self.host, style.0);
        }
        let tm = clock::local(now);
        let date = clock::rfc5322(&tm);
        let sender = tx.sender.clone().unwrap_or_default();
        let from_where = self.client_text();
        let with = if esmtp { "ESMTP" } else { "SMTP" };
        let product = crate::PRODUCT;
        let received = match tx.recipients.as_slice() {
            [one] => format!(
                "from {helo} ({from_where})\n\tby {} ({product}) with {with} id {id}\n\tfor <{}>; {date}",
                self.host, one.address
            ),
            _ => format!(
                "from {helo} ({from_where})\n\tby {} ({product}) with {with} id {id};\n\t{date}",
                self.host
            ),
        };
        let mut added = vec![Header::new("Received", &received)];
        added.extend(submit::missing_headers(&head, &tm, &id, &self.host, || {
            if sender.is_empty() {
                format!("MAILER-DAEMON@{}", self.host)
            } else {
                sender.clone()
            }
        }));
        let header_bytes = submit::header_block_bytes(&added, &head);
        let (user, uid) = match &self.client {
            Client::Local { login, uid } => (login.clone(), *uid),
            Client::Remote { ip } => (format!("smtp [{ip}]"), nix::unistd::getuid().as_raw()),
        };
        let envelope = Envelope {
            id: id.clone(),
            created: now,
            sender,
            recipients: tx.recipients.clone(),
            user,
            uid,
            mode: self.mode.letter(),
            header_bytes,
            added_header_bytes: submit::added_bytes(&added),
            body_type: tx.body.clone(),
            envid: tx.envid.clone(),
            ret: tx.ret.clone(),
            ..Envelope::default()
        };
        submit::write_entry(
            self.spool,
            &mut entry,
            &envelope,
            &added,
            &head,
            &mut reader,
            self.max_size,
        )?;
        // The whole message must have been read up to the final dot.
        if !reader_done(&mut reader) {
            return Err(StoreError::Read(io::Error::other("DATA did not end")));
        }
        entry.commit(&envelope).map_err(StoreError::Fatal)?;
        // ---- commit point: the message is safe ----
        crate::log::submitted(
            &envelope,
            self.spool.qf_path(&id).metadata().map(|m| m.len()).ok(),
        );
        Ok(id)
    }
}

/// Whether the data stream under the line reader ended with the final dot.
fn reader_done<R: BufRead>(reader: &mut LineReader<R>) -> bool {
    let mut rest = Vec::new();
    matches!(reader.read_piece(&mut rest), Ok(message::Piece::End)) && rest.is_empty()
}

enum Received {
    Accepted(String),
    /// The message was read and refused; the session goes on.
    Refused(String),
    /// The session must end (after this reply, if any).
    Fault(Option<String>),
}

const HELP: &[&str] = &[
    concat!("This is rsendmail version ", env!("CARGO_PKG_VERSION")),
    "Topics:",
    "\tHELO\tEHLO\tMAIL\tRCPT\tDATA",
    "\tRSET\tNOOP\tQUIT\tHELP\tVRFY",
    "\tETRN",
    "For local information send email to Postmaster at your site.",
];

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;
    use crate::spool::ScratchSpool;

    #[test]
    fn paths_and_parameters() {
        let ok = |arg: &str, kw: &str| match split_path(arg, kw) {
            Ok(p) => (p.written.to_string(), p.address, p.params.join(" ")),
            Err(_) => panic!("{arg}"),
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            ok("FROM:<a@x> SIZE=10 BODY=8BITMIME", "FROM"),
            ("<a@x>".into(), some("a@x"), "SIZE=10 BODY=8BITMIME".into())
        );
        assert_eq!(
            ok("from: root", "FROM"),
            ("root".into(), some("root"), "".into())
        );
        assert_eq!(ok("TO:<@a,@b:u@h>", "TO").1, some("u@h"));
        assert_eq!(ok("TO:<>", "TO").1, None);
        // Brackets are matched outside quoted strings.
        assert_eq!(
            ok("TO:<\"a>b\"@x> NOTIFY=NEVER", "TO"),
            (
                "<\"a>b\"@x>".into(),
                some("\"a>b\"@x"),
                "NOTIFY=NEVER".into()
            )
        );
        // sendmail's refusals: no path, an unclosed `<`, a route with no mailbox.
        let refused = |arg: &str| match split_path(arg, "FROM") {
            Ok(_) => panic!("{arg}"),
            Err(PathError::Syntax) => "syntax".to_string(),
            Err(PathError::Invalid(w, e)) => e.message(&w),
        };
        assert_eq!(refused("FROM:"), "syntax");
        assert_eq!(refused("FROM:   "), "syntax");
        assert_eq!(refused("FROM:<"), "<... Unbalanced '<'");
        assert_eq!(refused("FROM:<a@b SIZE=1"), "<a@b... Unbalanced '<'");
        assert_eq!(refused("FROM:<@a:>"), "<@a:>... User address required");
        assert_eq!(refused("FROM:<@a>"), "<@a>... User address required");
        assert!(split_path("TO", "TO").is_err());
        assert!(split_path("FRM:<a>", "FROM").is_err());
        assert_eq!(
            xtext_decode("rfc822;a+2Bb@x").as_deref(),
            Some("rfc822;a+b@x")
        );
        assert_eq!(xtext_decode("a+2"), None);
        assert_eq!(xtext_decode("a b"), None);
        // `u8::from_str_radix` would take the sign of `+-1`; xtext wants hex digits.
        assert_eq!(xtext_decode("++1"), None);
        assert_eq!(xtext_decode("+-1"), None);
        assert_eq!(xtext_decode("+2b").as_deref(), Some("+"));
        // A multi-byte character across the keyword's end (`FROé`).
        assert!(split_path("FROé:<a@b>", "FROM").is_err());
        assert!(split_path("TÖ:<a@b>", "TO").is_err());
    }

    #[test]
    fn replies_never_carry_a_bare_line_end() {
        assert_eq!(reply_line("250 ok"), "250 ok\r\n");
        assert_eq!(
            reply_line("553 5.0.0 <a\rb\n\0>... Illegal"),
            "553 5.0.0 <a\\rb\\n\\u{0}>... Illegal\r\n"
        );
        assert_eq!(reply_line("214-2.0.0 \tHELO"), "214-2.0.0 \tHELO\r\n");
    }

    /// A backend that knows one domain that does not exist and one that does not
    /// resolve now, and flushes nothing.
    struct Stub;

    impl Backend for Stub {
        fn sender_domain(&mut self, domain: &str) -> DomainCheck {
            match domain {
                "nx.test" => DomainCheck::NotFound,
                "temp.test" => DomainCheck::TempFail,
                _ => DomainCheck::Exists,
            }
        }
        fn etrn(&mut self, domain: &str, _: bool) -> bool {
            domain != "fail.test"
        }
        fn accepted(&mut self, _: &str, _: DeliveryMode) {}
    }

    /// Run a session on `input`; the replies.
    fn session(spool: &Spool, input: &[u8], trusted: bool, mode: DeliveryMode) -> String {
        let aliases = crate::aliases::Aliases::parse(
            "postmaster: root\nlist: a@example.org, \"|/bin/true\"\n",
            std::path::Path::new("aliases"),
            false,
        );
        let mut server = Server {
            host: "mx.test".into(),
            spool,
            mode,
            client: Client::Local {
                login: "tester".into(),
                uid: nix::unistd::getuid().as_raw(),
            },
            trusted,
            old_style: true,
            relay_domains: vec!["relay.test".into()],
            all_to_smarthost: false,
            aliases: Some(aliases),
            max_size: Some(100_000),
            max_recipients: 3,
        };
        let mut out = Vec::new();
        let mut input = BufReader::with_capacity(64, input);
        server
            .run(&mut Stub, &mut input, &mut out)
            .expect("in-memory I/O does not fail");
        String::from_utf8(out).expect("replies are UTF-8")
    }

    /// The reply lines of a session, each checked: a 3-digit code, then ` ` or `-`, no
    /// CR or LF inside, CRLF after it, a continuation followed by its reply's code.
    fn reply_lines(out: &str) -> Vec<&str> {
        let body = out
            .strip_suffix("\r\n")
            .expect("the last reply ends in CRLF");
        let lines: Vec<&str> = body.split("\r\n").collect();
        for (i, l) in lines.iter().enumerate() {
            assert!(!l.contains(['\r', '\n']), "{l:?}");
            let b = l.as_bytes();
            assert!(b.len() >= 4, "{l:?}");
            assert!(b[..3].iter().all(u8::is_ascii_digit), "{l:?}");
            assert!(matches!(b[3], b' ' | b'-'), "{l:?}");
            if b[3] == b'-' {
                let next = lines.get(i + 1).expect("a continuation is followed");
                assert_eq!(next.get(..3), l.get(..3), "{l:?} then {next:?}");
            }
        }
        lines
    }

    #[test]
    fn a_verb_with_a_multibyte_character_is_refused_and_the_session_goes_on() {
        let s = ScratchSpool::new("verb");
        let input = [
            "EHLO c\r\nMAIL FROé:<a@b>\r\nMAIL FROM:<a@b>\r\nRCPT TÖ:<x@y>\r\né\r\n".as_bytes(),
            b"\x80\r\nMAIL\xff:<c@d>\r\n\xc2\x80\r\nQUIT\r\n",
        ]
        .concat();
        let out = session(&s.spool, &input, true, DeliveryMode::QueueOnly);
        let finals: Vec<&str> = reply_lines(&out)
            .into_iter()
            .filter(|l| l.as_bytes()[3] == b' ')
            .collect();
        assert_eq!(
            finals[2..],
            [
                "501 5.5.2 Syntax error in parameters scanning \"FROM\"",
                "250 2.1.0 <a@b>... Sender ok",
                "501 5.5.2 Syntax error in parameters scanning \"TO\"",
                "500 5.5.1 Command unrecognized: \"é\"",
                "500 5.5.1 Command unrecognized: \"\u{fffd}\"",
                "500 5.5.1 Command unrecognized: \"MAIL\u{fffd}:<c@d>\"",
                "500 5.5.1 Command unrecognized: \"\\u{80}\"",
                "221 2.0.0 mx.test closing connection",
            ]
        );
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;
        use proptest::test_runner::{Config, TestRunner};

        /// Octets of one command line (no LF), non-ASCII and the characters of paths
        /// more often than by chance.
        fn line_octets(max: usize) -> impl Strategy<Value = Vec<u8>> {
            // Octets mapped, which is cheap: about a third of them from the set.
            const SET: &[u8] = b"MAILFROMRCPTO:<>@ \t\r=+.x\xc3\xa9";
            vec(any::<u16>(), 0..max).prop_map(|v| {
                v.into_iter()
                    .map(|n| {
                        let [b, pick] = n.to_le_bytes();
                        match pick % 3 {
                            0 => SET.get(usize::from(b) % SET.len()).copied().unwrap_or(b'x'),
                            _ if b == b'\n' => b'x',
                            _ => b,
                        }
                    })
                    .collect()
            })
        }

        /// A path as a client may write it, good or not.
        fn path() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => select(
                    &[
                        "<a@example.org>", "<>", "<root>", "<list>", "<postmaster@mx.test>",
                        "<@r.test:b@relay.test>", "<a@nx.test>", "<a@temp.test>", "<b@far.test>",
                        "<\"x y\"@example.org>", "<a@@example.org>", "<a@[192.0.2.1]>", "<|cmd>",
                    ][..]
                )
                .prop_map(String::from),
                1 => "<[^>\r\n]{0,30}>",
                1 => "[^ \r\n]{0,30}",
            ]
        }

        fn params() -> impl Strategy<Value = String> {
            let param = prop_oneof![
                "SIZE=[0-9]{1,25}",
                "BODY=(8BITMIME|7BIT|x)",
                "RET=(FULL|HDRS|x)",
                "ENVID=[!-~]{0,20}",
                "NOTIFY=(SUCCESS|FAILURE,DELAY|NEVER|x)?",
                "ORCPT=rfc822;[!-~]{0,20}",
                "[A-Za-z]{1,6}(=[^ \r\n]{0,10})?",
            ];
            vec(param, 0..3).prop_map(|v| v.join(" "))
        }

        /// A DATA command and its message, through the final dot.
        fn data() -> impl Strategy<Value = Vec<u8>> {
            let line = prop_oneof![
                2 => "[A-Za-z-]{1,10}: [ -~é]{0,30}".prop_map(String::into_bytes),
                2 => "[ -~é]{0,40}".prop_map(String::into_bytes),
                1 => Just(b"".to_vec()),
                1 => Just(b"..".to_vec()),
                1 => line_octets(60),
            ];
            vec(line, 0..8).prop_map(|lines| {
                let mut v = b"DATA".to_vec();
                for l in lines {
                    v.extend_from_slice(b"\r\n");
                    v.extend_from_slice(&l);
                }
                v.extend_from_slice(b"\r\n.");
                v
            })
        }

        /// One command line (or DATA with its message), well-formed or not.
        fn command() -> impl Strategy<Value = Vec<u8>> {
            let verb = |v: &'static [&'static str]| select(v).prop_map(String::from);
            prop_oneof![
                2 => "(HELO|EHLO|helo|ehlo)( [a-z.]{0,10})?".prop_map(String::into_bytes),
                3 => (verb(&["MAIL FROM:", "mail from: ", "MAIL FROé:", "MAIL", "MAIL TO:"]), path(), params())
                    .prop_map(|(v, a, p)| format!("{v}{a} {p}").into_bytes()),
                3 => (verb(&["RCPT TO:", "rcpt to: ", "RCPT TÖ:", "RCPT", "RCPT FROM:"]), path(), params())
                    .prop_map(|(v, a, p)| format!("{v}{a} {p}").into_bytes()),
                2 => data(),
                2 => verb(&[
                    "RSET", "NOOP", "VRFY root", "EXPN list", "HELP", "ETRN example.org",
                    "ETRN @example.org", "ETRN #q", "ETRN", "ETRN fail.test", "ETRN b@d",
                    "STARTTLS", "AUTH PLAIN", "DATA",
                ])
                .prop_map(String::into_bytes),
                3 => line_octets(300),
                1 => line_octets(2100),
            ]
        }

        /// A transaction in order: MAIL, RCPTs, DATA and the message.
        fn transaction() -> impl Strategy<Value = Vec<Vec<u8>>> {
            let good = select(
                &[
                    "<a@example.org>",
                    "<>",
                    "<b@relay.test>",
                    "<root>",
                    "<\"x y\"@example.org>",
                ][..],
            );
            let rcpt = prop_oneof![3 => good.clone().prop_map(String::from), 1 => path()];
            (
                prop_oneof![3 => good.prop_map(String::from), 1 => path()],
                params(),
                vec((rcpt, params()), 1..5),
                data(),
            )
                .prop_map(|(from, p, rcpts, data)| {
                    let mut v = vec![format!("MAIL FROM:{from} {p}").into_bytes()];
                    for (to, p) in rcpts {
                        v.push(format!("RCPT TO:{to} {p}").into_bytes());
                    }
                    v.push(data);
                    v
                })
        }

        /// A session: EHLO (mostly), transactions and single commands with CRLF (or LF)
        /// line ends, then QUIT.
        fn session_input() -> impl Strategy<Value = Vec<u8>> {
            let step = prop_oneof![
                1 => transaction(),
                2 => command().prop_map(|c| vec![c]),
            ];
            (any::<bool>(), vec(step, 0..8), any::<bool>()).prop_map(|(ehlo, steps, lf)| {
                let mut v = Vec::new();
                if ehlo {
                    v.extend_from_slice(b"EHLO client.test\r\n");
                }
                for c in steps.into_iter().flatten() {
                    v.extend_from_slice(&c);
                    v.extend_from_slice(if lf { b"\n" } else { b"\r\n" });
                }
                v.extend_from_slice(b"QUIT\r\n");
                v
            })
        }

        /// The verb of a command line as the server reads it.
        fn verb(line: &[u8]) -> String {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = String::from_utf8_lossy(line);
            let verb = text.split_once([' ', '\t']).map_or(&*text, |(v, _)| v);
            verb.to_ascii_uppercase()
        }

        #[test]
        fn any_session_is_answered_line_by_line() {
            let scratch = ScratchSpool::new("session");
            let mut runner = TestRunner::new(Config::default());
            let strategy = (session_input(), any::<bool>(), any::<bool>());
            let result = runner.run(&strategy, |(input, trusted, deferred)| {
                let mode = if deferred {
                    DeliveryMode::Deferred
                } else {
                    DeliveryMode::QueueOnly
                };
                let out = session(&scratch.spool, &input, trusted, mode);
                let lines = reply_lines(&out);
                prop_assert!(lines[0].starts_with("220 "));
                let last = lines[lines.len() - 1];
                // QUIT's 221 ends the session, unless a fault did first (421), or a
                // message's data took the rest of the input (354, then the end).
                prop_assert!(
                    ["221 ", "421 ", "354 "].iter().any(|c| last.starts_with(c)),
                    "{:?}",
                    last
                );
                for l in &lines[..lines.len() - 1] {
                    prop_assert!(!l.starts_with("221 ") && !l.starts_with("421 "), "{:?}", l);
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }

        #[test]
        fn any_command_line_gets_one_reply() {
            let scratch = ScratchSpool::new("lines");
            let mut runner = TestRunner::new(Config::default());
            let prefix = select(
                &[
                    "",
                    "MAIL FROM:",
                    "RCPT TO:",
                    "EHLO ",
                    "ETRN ",
                    "VRFY ",
                    "MAIL FROé:",
                ][..],
            );
            let strategy = vec((prefix, line_octets(400)), 0..16);
            let result = runner.run(&strategy, |lines| {
                let lines: Vec<Vec<u8>> = lines
                    .into_iter()
                    .map(|(p, l)| [p.as_bytes(), &l[..]].concat())
                    .collect();
                let mut input = b"EHLO client.test\r\n".to_vec();
                for l in &lines {
                    input.extend_from_slice(l);
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(b"QUIT\r\n");
                let out = session(&scratch.spool, &input, true, DeliveryMode::QueueOnly);
                let lines_replied = reply_lines(&out);
                let verbs: Vec<String> = lines.iter().map(|l| verb(l)).collect();
                if verbs.iter().any(|v| v == "DATA") {
                    return Ok(());
                }
                // Every line up to a QUIT is answered once; the greeting and EHLO's
                // reply before them, QUIT's after.
                let answered = verbs
                    .iter()
                    .position(|v| v == "QUIT")
                    .unwrap_or(lines.len());
                let finals: Vec<&&str> = lines_replied
                    .iter()
                    .filter(|l| l.as_bytes()[3] == b' ')
                    .collect();
                prop_assert_eq!(finals.len(), answered + 3, "{:?}", finals);
                prop_assert!(finals[finals.len() - 1].starts_with("221 "));
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
        }

        proptest! {
            #[test]
            fn helpers_take_any_text(arg in "[\\PC\r\n\t\x00\u{85}]{0,40}|[ -~é]{0,40}", k in "[A-Za-z]{0,8}", v in "\\PC{0,20}") {
                for kw in ["FROM", "TO"] {
                    if let Ok(Path { written, params, .. }) = split_path(&arg, kw) {
                        prop_assert!(arg.contains(written));
                        prop_assert!(params.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace)));
                    }
                }
                let _ = param(&arg);
                let mut tx = Transaction::default();
                for k in [&k[..], "SIZE", "BODY", "RET", "ENVID"] {
                    if let Err(e) = mail_param(&mut tx, &k.to_ascii_uppercase(), &v) {
                        prop_assert!(e.as_bytes()[..3].iter().all(u8::is_ascii_digit), "{}", e);
                    }
                }
                let mut r = Recipient::new("a@b");
                for k in [&k[..], "NOTIFY", "ORCPT"] {
                    if let Err(e) = rcpt_param(&mut r, &k.to_ascii_uppercase(), &v) {
                        prop_assert!(e.as_bytes()[..3].iter().all(u8::is_ascii_digit), "{}", e);
                    }
                }
                if xtext_decode(&arg).is_some() {
                    prop_assert!(arg.bytes().all(|b| (33..=126).contains(&b) && b != b'='));
                }
                let line = reply_line(&arg);
                prop_assert!(line.ends_with("\r\n"));
                prop_assert_eq!(line.matches(['\r', '\n']).count(), 2);
            }
        }
    }
}

//! The SMTP client: one session to one server, written as an explicit state machine
//! (the state names what the session awaits), sending many messages per connection.
//!
//! Rules it keeps:
//! - EHLO, falling back to HELO when EHLO is refused; extensions used only when offered:
//!   PIPELINING (MAIL, every RCPT and DATA in one write, replies read in order — RFC 2920),
//!   SIZE, 8BITMIME (`BODY=`), DSN (NOTIFY/ORCPT/RET/ENVID, RFC 3461), SMTPUTF8 (RFC 6531:
//!   when the server does not offer it, a recipient whose address needs it is refused
//!   locally and the others are sent without it; a sender that needs it fails them all).
//! - The data goes out as `rsendmail::message::wire` writes it: CRLF lines of at most 998
//!   octets (RFC 5321 §4.5.3.1.6), dot-stuffed; an over-long header field is folded at
//!   white space (RFC 5322 §2.2.3), an over-long body line continued with CRLF SP; a
//!   message without a final line break gets one.
//! - `SIZE=` is the size of the message as sent (RFC 1870 §3: CRLF pairs counted, the
//!   transparency dots not), counted by one read of the message before MAIL; the data is
//!   then read again from the start of the message, also for a second transaction after
//!   a 452, so no message is held in memory.
//! - Per-recipient results in one transaction; a 452 for a recipient (RFC 5321 §4.5.3.1.10,
//!   too many recipients) sends it again in a following transaction on the same connection.
//! - Timeouts per RFC 5321 §4.5.3.2, each configurable as sendmail's `Timeout.<name>`.
//! - Any I/O error or timeout ends the session: every recipient still open gets a
//!   temporary failure, and the caller opens a new connection for the next message.
//! - Each reply is checked against what its command allows (RFC 5321 §4.3.2, RFC 3207
//!   §4, RFC 4954 §4; see [`Expect`]): a reply outside that set, or a reply that
//!   answers no command (more replies than commands), is a protocol error. The client
//!   and the server no longer agree on where the dialogue stands, so no reply of the
//!   transaction can be trusted: every recipient of it gets a temporary failure
//!   (`451 4.5.0 Protocol error: ...`, the message stays queued) and the connection is
//!   closed, never reused. A positive reply of the wrong kind (a 250 where 354 is due)
//!   therefore never counts as delivered. The one exception is data after the reply to
//!   the end of the data: the dialogue was in step up to the 354, so that reply stands
//!   (a protocol error would send a message the server took again); the connection is
//!   only not reused.
//!
//! What the server sends is untrusted: its replies are read by [`read_reply`], and its
//! EHLO keywords, AUTH challenges and error texts here without byte-index slicing, so no
//! reply makes the client panic (the lints below keep it so; the session's own tables,
//! indexed by recipient, are built here and are not input).

#![deny(clippy::string_slice)]

use super::reply::{Reply, read_reply};
use rsendmail::config::io_text;
use rsendmail::message::wire;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
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

impl Default for Timeouts {
    fn default() -> Timeouts {
        let m = |n: u64| Duration::from_secs(n * 60);
        Timeouts {
            connect: m(1),
            initial: m(5),
            helo: m(5),
            mail: m(5),
            rcpt: m(5),
            datainit: m(2),
            datablock: m(3),
            datafinal: m(10),
            rset: m(5),
            quit: m(2),
        }
    }
}

/// What the server offered in its EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub esmtp: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub dsn: bool,
    pub smtputf8: bool,
    pub enhanced: bool,
    pub starttls: bool,
    pub auth: Vec<String>,
}

#[deny(clippy::indexing_slicing)]
impl Caps {
    /// What an EHLO reply offers (its first line is the greeting; unknown keywords are
    /// ignored, and a SIZE without a number it can read states no limit).
    pub fn from_ehlo(reply: &Reply) -> Caps {
        let mut c = Caps {
            esmtp: true,
            ..Caps::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => c.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => c.eightbitmime = true,
                "DSN" => c.dsn = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => c.enhanced = true,
                "STARTTLS" => c.starttls = true,
                "AUTH" => c.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        c
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
    fn wanted(self) -> &'static str {
        match self {
            Expect::Ready => "220",
            Expect::Completion => "2xx",
            Expect::StartData => "354",
            Expect::Auth => "334 or 235",
        }
    }
}

/// What the session is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Greeting,
    EhloReply,
    HeloReply,
    StartTlsReply,
    AuthReply,
    /// Between transactions.
    Ready,
    MailReply,
    RcptReply,
    DataReply,
    DataFinalReply,
    RsetReply,
    QuitReply,
    /// The connection is unusable.
    Closed,
}

impl State {
    /// The phase named in deferral reasons (`... during MAIL`).
    pub fn phase(self) -> &'static str {
        match self {
            State::Greeting => "greeting wait",
            State::EhloReply | State::HeloReply => "EHLO",
            State::StartTlsReply => "STARTTLS",
            State::AuthReply => "AUTH",
            State::Ready => "idle",
            State::MailReply => "MAIL",
            State::RcptReply => "RCPT",
            State::DataReply => "DATA",
            State::DataFinalReply => "message transfer",
            State::RsetReply => "RSET",
            State::QuitReply => "QUIT",
            State::Closed => "closed connection",
        }
    }
}

/// One recipient's result in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered(Reply),
    TempFail(Reply),
    PermFail(Reply),
}

impl Outcome {
    /// The outcome a final reply gives: only a 2yz delivers, a 5yz fails for good, and
    /// anything else is temporary (the replies reaching here were checked against their
    /// command; this is the safe side for any that was not).
    pub fn from_reply(r: Reply) -> Outcome {
        if (200..300).contains(&r.code) {
            Outcome::Delivered(r)
        } else if (500..600).contains(&r.code) {
            Outcome::PermFail(r)
        } else {
            Outcome::TempFail(r)
        }
    }

    pub fn reply(&self) -> &Reply {
        match self {
            Outcome::Delivered(r) | Outcome::TempFail(r) | Outcome::PermFail(r) => r,
        }
    }
}

/// A stored message: read from a position, and sought back to it.
pub trait Stored: Read + Seek {}

impl<T: Read + Seek> Stored for T {}

/// A message to send.
pub struct Outgoing<'a> {
    /// Reverse path (empty: `<>`).
    pub sender: &'a str,
    pub recipients: Vec<OutRcpt<'a>>,
    /// The stored message (LF line ends), from its first header line to its end. It is
    /// read more than once (for `SIZE=`, and again for a second transaction after a 452),
    /// each time from where it stood when given.
    pub data: &'a mut dyn Stored,
    pub body: Option<&'a str>,
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

pub struct OutRcpt<'a> {
    pub address: &'a str,
    pub notify: Option<&'a str>,
    pub orcpt: Option<&'a str>,
}

/// Where `-v` output goes: the transcript of the dialogue, as sendmail -v prints it.
pub type Transcript<'a> = Option<&'a mut dyn Write>;

/// The connection: plain TCP, or TLS over it (after STARTTLS, or from the start).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
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

/// When to use TLS (dma's keywords): `SECURETRANSFER` alone is TLS from the first byte
/// (SMTPS); `STARTTLS` requires STARTTLS; `OPPORTUNISTIC_TLS` uses it when offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsMode {
    #[default]
    Off,
    Opportunistic,
    StartTls,
    Implicit,
}

/// How TLS is set up and what the server's certificate must satisfy.
#[derive(Clone, Debug, Default)]
pub struct TlsPolicy {
    pub mode: TlsMode,
    /// Verify the certificate chain and host name (default); `INSECURE` turns it off.
    pub verify: bool,
    /// `O CACertFile=`: trust this CA (PEM) in addition to the system store.
    pub ca_file: Option<std::path::PathBuf>,
    /// `FINGERPRINT`: the server certificate's SHA-256, lowercase hex. When set, it is the
    /// trust anchor (the chain is not checked, the fingerprint must match).
    pub fingerprint: Option<String>,
    /// `CERTFILE`: a PEM holding our client certificate and its key.
    pub client_cert: Option<std::path::PathBuf>,
    /// AUTH may be sent without TLS (`INSECURE`, as in dma).
    pub plain_auth_ok: bool,
}

/// Credentials for AUTH (from dma's auth.conf).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// A connection to one server.
pub struct Session {
    conn: BufReader<Stream>,
    /// The socket, for setting timeouts whatever the stream is wrapped in.
    sock: TcpStream,
    /// Commands not yet sent (pipelining writes them together).
    wbuf: Vec<u8>,
    pub tls: bool,
    pub caps: Caps,
    pub peer: SocketAddr,
    /// The host as named in the route (for logs: `relay=name [ip]`).
    pub host: String,
    pub state: State,
    timeouts: Timeouts,
    verbose: bool,
    /// The last message was refused permanently at DATA or after its final dot.
    pub data_refused: bool,
    /// A transaction has been started on this connection: the next one begins with
    /// RSET, as sendmail 8.17 begins each reuse of a cached connection.
    used: bool,
    /// Replies owed: commands sent (or the greeting) not yet answered. A reply read when
    /// none is owed, or data waiting once all are read, answers no command.
    awaiting: usize,
    /// The server broke the protocol: no reply of the current transaction can be trusted.
    desynchronised: bool,
    /// The server sent more than the last reply of a transaction: that reply stands, but
    /// the connection is not used again.
    spent: bool,
}

/// Base64 (RFC 4648), for AUTH.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

/// Base64 decoding (lenient: characters outside the alphabet are skipped).
#[deny(clippy::indexing_slicing)]
pub fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The CRAM-MD5 response (RFC 2195): `user hex(HMAC-MD5(password, challenge))`.
pub fn cram_md5(user: &str, password: &str, challenge: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<md5::Md5>::new_from_slice(password.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(challenge);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{user} {digest}")
}

/// RFC 3461 xtext: printable ASCII but `+` and `=` as it is, every other byte `+XX`.
#[deny(clippy::indexing_slicing)]
pub fn xtext(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            o.push(b as char);
        } else {
            o.push_str(&format!("+{b:02X}"));
        }
    }
    o
}

fn io_reply(e: &io::Error, state: State, host: &str) -> Reply {
    let what = match e.kind() {
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
    Reply::local(451, format!("4.4.2 {what}"))
}

impl Session {
    /// Connect and greet. `Err` is a temporary failure to report for every recipient.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        host: &str,
        port: u16,
        helo_name: &str,
        timeouts: &Timeouts,
        tls: &TlsPolicy,
        creds: Option<&Credentials>,
        out: &mut Transcript<'_>,
        label: &str,
        via: &str,
    ) -> Result<Session, Reply> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match (bare, port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                return Err(Reply::local(
                    451,
                    format!("4.4.3 Host name lookup failure for {host}: {}", io_text(&e)),
                ));
            }
        };
        let mut last = Reply::local(451, format!("4.4.1 No address for {host}"));
        for addr in addrs {
            if let Some(w) = out.as_deref_mut() {
                let _ = writeln!(
                    w,
                    "{label}... Connecting to [{}] port {port} via {via}...",
                    addr.ip()
                );
            }
            match TcpStream::connect_timeout(&addr, timeouts.connect) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let sock = stream
                        .try_clone()
                        .map_err(|e| io_reply(&e, State::Greeting, host))?;
                    let mut s = Session {
                        conn: BufReader::new(Stream::Plain(stream)),
                        sock,
                        wbuf: Vec::with_capacity(4096),
                        tls: false,
                        caps: Caps::default(),
                        peer: addr,
                        host: host.to_string(),
                        state: State::Greeting,
                        timeouts: timeouts.clone(),
                        verbose: out.is_some(),
                        data_refused: false,
                        used: false,
                        // The greeting.
                        awaiting: 1,
                        desynchronised: false,
                        spent: false,
                    };
                    match s.greet(helo_name, tls, creds, out) {
                        Ok(()) => return Ok(s),
                        Err(r) => {
                            s.close(out);
                            return Err(r);
                        }
                    }
                }
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::ConnectionRefused => {
                            format!("4.4.1 Connection refused by {}", addr.ip())
                        }
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                            format!("4.4.1 Connection timed out with {}", addr.ip())
                        }
                        _ => format!("4.4.1 {} with {}", io_text(&e), addr.ip()),
                    };
                    last = Reply::local(451, why);
                }
            }
        }
        Err(last)
    }

    /// Read the next reply. One that answers no command (none is owed), or more data
    /// waiting once the last reply owed is read, is a protocol error.
    fn read(&mut self, timeout: Duration, out: &mut Transcript<'_>) -> Result<Reply, Reply> {
        self.read_owed(timeout, out, false)
    }

    /// [`Session::read`]; with `last`, the reply is the transaction's last (to the end of
    /// the data), read after a dialogue that was in step up to its 354: data after it
    /// cannot change what it says about the message, so it stands, and the connection
    /// is only not used again (a protocol error here would send a message the server
    /// took again).
    fn read_owed(
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
        let _ = self.sock.set_read_timeout(Some(timeout));
        let res = read_reply(&mut self.conn, |l| {
            if let Some(w) = out.as_deref_mut() {
                let _ = writeln!(w, "{l}");
            }
        });
        let r = res.map_err(|e| {
            self.state = State::Closed;
            io_reply(&e, state, &self.host)
        })?;
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
    fn read_expect(
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
    fn check(&mut self, r: Reply, expect: Expect, command: &str) -> Result<Reply, Reply> {
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
        Reply::local(451, format!("4.5.0 Protocol error: {what}"))
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
    fn put(&mut self, line: &str, out: &mut Transcript<'_>) -> Result<(), Reply> {
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, ">>> {line}");
        }
        self.put_quiet(line);
        Ok(())
    }

    /// Queue a line that is not echoed (credentials). Every line sent is owed a reply.
    fn put_quiet(&mut self, line: &str) {
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        self.awaiting += 1;
    }

    fn flush(&mut self, timeout: Duration) -> Result<(), Reply> {
        let _ = self.sock.set_write_timeout(Some(timeout));
        let buf = std::mem::take(&mut self.wbuf);
        let r = self
            .conn
            .get_mut()
            .write_all(&buf)
            .and_then(|_| self.conn.get_mut().flush());
        r.map_err(|e| {
            let st = self.state;
            self.state = State::Closed;
            io_reply(&e, st, &self.host)
        })
    }

    fn ehlo(&mut self, helo_name: &str, out: &mut Transcript<'_>) -> Result<(), Reply> {
        self.state = State::EhloReply;
        self.put(&format!("EHLO {helo_name}"), out)?;
        self.flush(self.timeouts.helo)?;
        let r = self.read_expect(self.timeouts.helo, out, Expect::Completion, "EHLO")?;
        if r.is_positive() {
            self.caps = Caps::from_ehlo(&r);
        } else if r.code == 421 {
            return Err(r);
        } else {
            self.state = State::HeloReply;
            self.put(&format!("HELO {helo_name}"), out)?;
            self.flush(self.timeouts.helo)?;
            let r = self.read_expect(self.timeouts.helo, out, Expect::Completion, "HELO")?;
            if !r.is_positive() {
                return Err(r);
            }
            self.caps = Caps::default();
        }
        Ok(())
    }

    fn greet(
        &mut self,
        helo_name: &str,
        tls: &TlsPolicy,
        creds: Option<&Credentials>,
        out: &mut Transcript<'_>,
    ) -> Result<(), Reply> {
        if tls.mode == TlsMode::Implicit {
            self.handshake(tls)?;
        }
        self.state = State::Greeting;
        let g = self.read_expect(self.timeouts.initial, out, Expect::Ready, "the greeting")?;
        if g.code != 220 {
            return Err(g);
        }
        self.ehlo(helo_name, out)?;
        if !self.tls && matches!(tls.mode, TlsMode::StartTls | TlsMode::Opportunistic) {
            if self.caps.starttls {
                self.state = State::StartTlsReply;
                self.put("STARTTLS", out)?;
                self.flush(self.timeouts.helo)?;
                let r = self.read_expect(self.timeouts.helo, out, Expect::Ready, "STARTTLS")?;
                if r.code == 220 {
                    self.handshake(tls)?;
                    // RFC 3207 §4.2: forget what the server said before; ask again.
                    self.caps = Caps::default();
                    self.ehlo(helo_name, out)?;
                } else if tls.mode == TlsMode::StartTls {
                    return Err(Reply::local(
                        451,
                        format!("4.7.5 STARTTLS refused by {}: {}", self.host, r.summary()),
                    ));
                }
            } else if tls.mode == TlsMode::StartTls {
                return Err(Reply::local(
                    451,
                    format!(
                        "4.7.4 TLS is required but {} does not offer STARTTLS",
                        self.host
                    ),
                ));
            }
        }
        if let Some(c) = creds {
            self.authenticate(c, tls, out)?;
        }
        self.state = State::Ready;
        Ok(())
    }

    /// Wrap the connection in TLS and check the server's certificate.
    fn handshake(&mut self, policy: &TlsPolicy) -> Result<(), Reply> {
        let fail = |what: String| Reply::local(451, format!("4.7.5 {what}"));
        let mut b = native_tls::TlsConnector::builder();
        b.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if let Some(ca) = &policy.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| fail(format!("cannot read CACertFile {}: {e}", ca.display())))?;
            let cert = native_tls::Certificate::from_pem(&pem)
                .map_err(|e| fail(format!("bad CACertFile {}: {e}", ca.display())))?;
            b.add_root_certificate(cert);
        }
        if let Some(cf) = &policy.client_cert {
            let pem = std::fs::read(cf)
                .map_err(|e| fail(format!("cannot read CERTFILE {}: {e}", cf.display())))?;
            let id = native_tls::Identity::from_pkcs8(&pem, &pem).map_err(|e| {
                fail(format!(
                    "bad CERTFILE {} (certificate and PKCS#8 key in PEM): {e}",
                    cf.display()
                ))
            })?;
            b.identity(id);
        }
        if !policy.verify || policy.fingerprint.is_some() {
            b.danger_accept_invalid_certs(true);
            b.danger_accept_invalid_hostnames(true);
        }
        let connector = b
            .build()
            .map_err(|e| fail(format!("TLS setup failed: {e}")))?;
        let name = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let _ = self.sock.set_read_timeout(Some(self.timeouts.helo));
        let _ = self.sock.set_write_timeout(Some(self.timeouts.helo));
        let old = std::mem::replace(&mut self.conn, BufReader::new(Stream::Closed));
        // Anything the server sent before the handshake is dropped with the old buffer.
        let tcp = match old.into_inner() {
            Stream::Plain(t) => t,
            _ => return Err(fail("TLS started twice".into())),
        };
        let tls = match connector.connect(&name, tcp) {
            Ok(t) => t,
            Err(e) => {
                self.state = State::Closed;
                return Err(fail(format!(
                    "TLS handshake with {} failed: {e}",
                    self.host
                )));
            }
        };
        if let Some(want) = &policy.fingerprint {
            use sha2::Digest;
            let der = tls
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|c| c.to_der().ok())
                .unwrap_or_default();
            let got: String = sha2::Sha256::digest(&der)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if &got != want {
                self.state = State::Closed;
                return Err(fail(format!(
                    "certificate of {} does not match FINGERPRINT (SHA-256 {got})",
                    self.host
                )));
            }
        }
        self.conn = BufReader::new(Stream::Tls(Box::new(tls)));
        self.tls = true;
        Ok(())
    }

    /// AUTH PLAIN, CRAM-MD5 or LOGIN (RFC 4954, 2195); never in clear text unless INSECURE.
    fn authenticate(
        &mut self,
        c: &Credentials,
        tls: &TlsPolicy,
        out: &mut Transcript<'_>,
    ) -> Result<(), Reply> {
        if self.caps.auth.is_empty() {
            return Ok(());
        }
        if !self.tls && !tls.plain_auth_ok {
            return Err(Reply::local(
                451,
                format!(
                    "4.7.0 not sending AUTH to {} over an unencrypted connection (set STARTTLS or INSECURE)",
                    self.host
                ),
            ));
        }
        self.state = State::AuthReply;
        let has = |m: &str| self.caps.auth.iter().any(|a| a == m);
        let r = if has("PLAIN") {
            let token = base64(format!("\0{}\0{}", c.user, c.password).as_bytes());
            if let Some(w) = out.as_deref_mut() {
                let _ = writeln!(w, ">>> AUTH PLAIN (credentials not shown)");
            }
            self.put_quiet(&format!("AUTH PLAIN {token}"));
            self.flush(self.timeouts.helo)?;
            self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?
        } else if has("CRAM-MD5") {
            self.put("AUTH CRAM-MD5", out)?;
            self.flush(self.timeouts.helo)?;
            let r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            if r.code != 334 {
                r
            } else {
                let challenge = unbase64(r.lines.first().map(String::as_str).unwrap_or(""));
                if let Some(w) = out.as_deref_mut() {
                    let _ = writeln!(w, ">>> (credentials not shown)");
                }
                self.put_quiet(&base64(
                    cram_md5(&c.user, &c.password, &challenge).as_bytes(),
                ));
                self.flush(self.timeouts.helo)?;
                self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?
            }
        } else if has("LOGIN") {
            self.put("AUTH LOGIN", out)?;
            self.flush(self.timeouts.helo)?;
            let mut r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            for secret in [&c.user, &c.password] {
                if r.code != 334 {
                    break;
                }
                if let Some(w) = out.as_deref_mut() {
                    let _ = writeln!(w, ">>> (credentials not shown)");
                }
                self.put_quiet(&base64(secret.as_bytes()));
                self.flush(self.timeouts.helo)?;
                r = self.read_expect(self.timeouts.helo, out, Expect::Auth, "AUTH")?;
            }
            r
        } else {
            return Err(Reply::local(
                451,
                format!(
                    "4.7.0 {} offers no AUTH mechanism rsendmail knows (PLAIN, LOGIN)",
                    self.host
                ),
            ));
        };
        if r.code != 235 {
            // A refused login is deferred, never bounced: the configuration can be fixed.
            return Err(Reply::local(
                451,
                format!("4.7.0 AUTH refused by {}: {}", self.host, r.summary()),
            ));
        }
        Ok(())
    }

    pub fn is_usable(&self) -> bool {
        self.state == State::Ready
    }

    /// Whether MAIL carries `SIZE=`: when offered, but (as sendmail) not for delivery
    /// reports, sent from `<>`.
    fn wants_size(&self, m: &Outgoing<'_>) -> bool {
        self.caps.size.is_some() && !m.sender.is_empty()
    }

    fn mail_command(&self, m: &Outgoing<'_>, utf8: bool, data: &Data) -> String {
        let mut cmd = format!("MAIL From:<{}>", m.sender);
        if let Some(size) = data.size {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        if self.caps.eightbitmime
            && let Some(b) = m.body
        {
            cmd.push_str(&format!(" BODY={b}"));
        }
        if utf8 {
            cmd.push_str(" SMTPUTF8");
        }
        if self.caps.dsn {
            if let Some(r) = m.ret {
                cmd.push_str(&format!(" RET={r}"));
            }
            if let Some(e) = m.envid {
                cmd.push_str(&format!(" ENVID={}", xtext(e)));
            }
        }
        cmd
    }

    fn rcpt_command(&self, r: &OutRcpt<'_>) -> String {
        let mut cmd = format!("RCPT To:<{}>", r.address);
        if self.caps.dsn {
            if let Some(n) = r.notify {
                cmd.push_str(&format!(" NOTIFY={n}"));
            }
            match r.orcpt {
                Some(o) => cmd.push_str(&format!(" ORCPT={}", xtext(o))),
                None if r.notify.is_some() => {
                    cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(r.address)))
                }
                None => {}
            }
        }
        cmd
    }

    /// Send one message. Returns one outcome per recipient, in order. The session may be
    /// closed afterwards (check [`Session::is_usable`]).
    pub fn send(&mut self, m: &mut Outgoing<'_>, out: &mut Transcript<'_>) -> Vec<Outcome> {
        let n = m.recipients.len();
        self.data_refused = false;
        let mut results: Vec<Option<Outcome>> = vec![None; n];
        let mut pending: Vec<usize> = (0..n).collect();
        if !self.caps.smtputf8 {
            // RFC 6531 §3.2: without SMTPUTF8 an address that needs it cannot be sent.
            // That is the recipient's failure alone; a sender that needs it is every
            // recipient's.
            if !m.sender.is_ascii() {
                let r = Reply::local(
                    553,
                    "5.6.7 The server does not offer SMTPUTF8, which the sender's address needs",
                );
                return vec![Outcome::PermFail(r); n];
            }
            let r = Reply::local(
                553,
                "5.6.7 The server does not offer SMTPUTF8, which the address needs",
            );
            for (i, rcpt) in m.recipients.iter().enumerate() {
                if !rcpt.address.is_ascii()
                    && let Some(slot) = results.get_mut(i)
                {
                    *slot = Some(Outcome::PermFail(r.clone()));
                }
            }
            pending.retain(|&i| results.get(i).is_some_and(Option::is_none));
            if pending.is_empty() {
                return results.into_iter().flatten().collect();
            }
        }
        // Only with a server that offers it (checked above).
        let utf8_needed = !m.sender.is_ascii()
            || pending
                .iter()
                .any(|&i| m.recipients.get(i).is_some_and(|r| !r.address.is_ascii()));
        let data = match self.measure(m) {
            Ok(d) => d,
            Err(e) => {
                let r = Reply::local(451, format!("4.3.0 cannot read the queue file: {e}"));
                return vec![Outcome::TempFail(r); n];
            }
        };
        while !pending.is_empty() && self.state == State::Ready {
            let (accepted, retry) =
                match self.transaction(m, &pending, &mut results, utf8_needed, &data, out) {
                    Ok(v) => v,
                    Err(r) => {
                        // After a protocol error even the replies already read in this
                        // transaction may have answered other commands: none counts.
                        let untrusted = self.desynchronised;
                        for i in &pending {
                            if untrusted || results[*i].is_none() {
                                results[*i] = Some(Outcome::from_reply(r.clone()));
                            }
                        }
                        break;
                    }
                };
            if accepted == 0 || retry.is_empty() {
                break;
            }
            pending = retry;
            for i in &pending {
                results[*i] = None;
            }
        }
        let closed = Reply::local(451, format!("4.4.2 Connection lost to {}", self.host));
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Outcome::TempFail(closed.clone())))
            .collect()
    }

    /// One MAIL/RCPT/DATA transaction for `which` recipients. Returns how many were
    /// accepted and which got 452 (to send again).
    #[allow(clippy::too_many_arguments)]
    fn transaction(
        &mut self,
        m: &mut Outgoing<'_>,
        which: &[usize],
        results: &mut [Option<Outcome>],
        utf8: bool,
        data: &Data,
        out: &mut Transcript<'_>,
    ) -> Result<(usize, Vec<usize>), Reply> {
        let t = self.timeouts.clone();
        let mail = self.mail_command(m, utf8, data);
        let rcpts: Vec<String> = which
            .iter()
            .map(|&i| self.rcpt_command(&m.recipients[i]))
            .collect();
        let pipelined = self.caps.pipelining;
        let reuse = std::mem::replace(&mut self.used, true);
        if reuse && !pipelined {
            self.reset(out)?;
        } else if reuse {
            // With PIPELINING the RSET goes in the same group as MAIL (RFC 2920 3.1),
            // so the reuse costs no round trip; its reply is read first, below.
            self.put("RSET", out)?;
        }
        self.state = State::MailReply;
        self.put(&mail, out)?;
        if pipelined {
            for r in &rcpts {
                self.put(r, out)?;
            }
            self.put("DATA", out)?;
        }
        self.flush(t.mail)?;
        if reuse && pipelined {
            self.rset_reply(out)?;
            self.state = State::MailReply;
        }
        let mail_reply = self
            .read_expect(t.mail, out, Expect::Completion, "MAIL")?
            .to(&mail);
        let mut accepted = Vec::new();
        let mut retry = Vec::new();
        if !mail_reply.is_positive() {
            if pipelined {
                // Collect the RCPT and DATA replies the server still sends.
                self.state = State::RcptReply;
                for _ in &rcpts {
                    self.read_expect(t.rcpt, out, Expect::Completion, "RCPT")?;
                }
                self.state = State::DataReply;
                let d = self.read_expect(t.datainit, out, Expect::StartData, "DATA")?;
                if d.code == 354 {
                    self.end_empty_data(out)?;
                }
            }
            for &i in which {
                results[i] = Some(Outcome::from_reply(mail_reply.clone()));
            }
            self.reset(out)?;
            return Ok((0, retry));
        }
        self.state = State::RcptReply;
        for (k, &i) in which.iter().enumerate() {
            if !pipelined {
                self.put(&rcpts[k], out)?;
                self.flush(t.rcpt)?;
            }
            let r = self
                .read_expect(t.rcpt, out, Expect::Completion, "RCPT")?
                .to(&rcpts[k]);
            if r.is_positive() {
                accepted.push(i);
            } else if r.code == 452 {
                retry.push(i);
                results[i] = Some(Outcome::TempFail(r));
            } else {
                results[i] = Some(Outcome::from_reply(r));
            }
        }
        self.state = State::DataReply;
        if !pipelined {
            if accepted.is_empty() {
                self.reset(out)?;
                return Ok((0, retry));
            }
            self.put("DATA", out)?;
            self.flush(t.datainit)?;
        }
        let data_reply = self
            .read_expect(t.datainit, out, Expect::StartData, "DATA")?
            .to("DATA");
        if data_reply.code != 354 {
            if !accepted.is_empty() {
                self.data_refused |= data_reply.is_permanent();
                for &i in &accepted {
                    results[i] = Some(Outcome::from_reply(data_reply.clone()));
                }
            }
            self.reset(out)?;
            return Ok((0, retry));
        }
        if accepted.is_empty() {
            self.end_empty_data(out)?;
            return Ok((0, retry));
        }
        self.state = State::DataFinalReply;
        // From the message's start each time: it was read for SIZE=, and a 452 sends
        // it again in a second transaction.
        if let Err(e) = m.data.seek(SeekFrom::Start(data.origin)) {
            return Err(Reply::local(
                451,
                format!("4.3.0 cannot read the queue file: {e}"),
            ));
        }
        let sent = self.write_data(&mut *m.data);
        if let Err(e) = sent {
            let st = self.state;
            self.state = State::Closed;
            return Err(io_reply(&e, st, &self.host));
        }
        if self.verbose
            && let Some(w) = out.as_deref_mut()
        {
            let _ = writeln!(w, ">>> .");
        }
        self.flush(t.datafinal)?;
        // The final dot went out with the data: it is owed a reply too.
        self.awaiting += 1;
        let fin = self.read_owed(t.datafinal, out, true)?;
        let fin = self
            .check(fin, Expect::Completion, "the end of the data")?
            .to("DATA");
        self.data_refused |= fin.is_permanent();
        for &i in &accepted {
            results[i] = Some(Outcome::from_reply(fin.clone()));
        }
        self.state = if self.spent {
            State::Closed
        } else {
            State::Ready
        };
        Ok((accepted.len(), retry))
    }

    /// RFC 2920 §3.1: the server said 354 although no recipient (or no MAIL) was
    /// accepted; end the (empty) message and discard its reply.
    fn end_empty_data(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        self.state = State::DataFinalReply;
        self.put(".", out)?;
        self.flush(self.timeouts.datafinal)?;
        self.read_expect(
            self.timeouts.datafinal,
            out,
            Expect::Completion,
            "the end of the data",
        )?;
        self.state = State::Ready;
        Ok(())
    }

    fn reset(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        self.state = State::RsetReply;
        self.put("RSET", out)?;
        self.flush(self.timeouts.rset)?;
        self.rset_reply(out)
    }

    /// Read RSET's reply: anything but 2xx makes the connection unusable. That is the
    /// connection's failure, not the recipients': they are tried again later.
    fn rset_reply(&mut self, out: &mut Transcript<'_>) -> Result<(), Reply> {
        let r = self.read_expect(self.timeouts.rset, out, Expect::Completion, "RSET")?;
        if !r.is_positive() {
            self.state = State::Closed;
            return Err(Reply::local(
                451,
                format!("4.4.0 {} refused RSET: {}", self.host, r.summary()),
            ));
        }
        self.state = State::Ready;
        Ok(())
    }

    fn write_data(&mut self, data: &mut dyn Read) -> io::Result<()> {
        let _ = self.sock.set_write_timeout(Some(self.timeouts.datablock));
        let mut w = BufWriter::with_capacity(64 * 1024, self.conn.get_mut());
        wire::write_wire(data, &mut w)?;
        w.flush()
    }

    /// Where the message starts, and its size as sent when MAIL is to carry `SIZE=`
    /// (one more read of the message; the data is sent from `origin` again).
    fn measure(&self, m: &mut Outgoing<'_>) -> io::Result<Data> {
        let origin = m.data.stream_position()?;
        let size = if self.wants_size(m) {
            let n = wire::wire_size(&mut *m.data)?;
            m.data.seek(SeekFrom::Start(origin))?;
            Some(n)
        } else {
            None
        };
        Ok(Data { origin, size })
    }

    /// End the session politely.
    pub fn close(mut self, out: &mut Transcript<'_>) {
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, "Closing connection to [{}]", self.peer.ip());
        }
        if self.state == State::Ready {
            self.state = State::QuitReply;
            if self.put("QUIT", out).is_ok() && self.flush(self.timeouts.quit).is_ok() {
                let _ = self.read(self.timeouts.quit, out);
            }
        }
        self.state = State::Closed;
    }
}

/// The message of a [`Session::send`]: where it starts in its file, and `SIZE=`.
struct Data {
    origin: u64,
    size: Option<u64>,
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn caps_parsed() {
        let r = Reply {
            command: None,
            code: 250,
            lines: vec![
                "mx.example".into(),
                "PIPELINING".into(),
                "SIZE 10240000".into(),
                "8BITMIME".into(),
                "DSN".into(),
                "AUTH PLAIN login".into(),
                "STARTTLS".into(),
            ],
        };
        let c = Caps::from_ehlo(&r);
        assert!(c.pipelining && c.eightbitmime && c.dsn && c.starttls && !c.smtputf8);
        assert_eq!(c.size, Some(10_240_000));
        assert_eq!(c.auth, ["PLAIN", "LOGIN"]);
    }

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

    #[test]
    fn only_a_2yz_delivers() {
        let o = |code| match Outcome::from_reply(Reply::local(code, "x")) {
            Outcome::Delivered(_) => "delivered",
            Outcome::TempFail(_) => "temporary",
            Outcome::PermFail(_) => "permanent",
        };
        for (code, want) in [
            (250, "delivered"),
            (251, "delivered"),
            (354, "temporary"),
            (334, "temporary"),
            (199, "temporary"),
            (451, "temporary"),
            (554, "permanent"),
            (600, "temporary"),
        ] {
            assert_eq!(o(code), want, "{code}");
        }
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let challenge = unbase64("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
        assert_eq!(challenge, b"<1896.697170952@postoffice.reston.mci.net>");
        let resp = cram_md5("tim", "tanstaaftanstaaf", &challenge);
        assert_eq!(resp, "tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            base64(resp.as_bytes()),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("rfc822;a+b=c@x"), "rfc822;a+2Bb+3Dc@x");
        assert_eq!(xtext("a b"), "a+20b");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use rsendmail::server::xtext_decode;

        proptest! {
            #[test]
            fn xtext_decodes_to_what_was_encoded(s in any::<String>(), t in "[+=%a-zA-Z0-9 é\r\n]{0,30}") {
                for s in [&s, &t] {
                    let x = xtext(s);
                    prop_assert!(x.bytes().all(|b| (33..=126).contains(&b) && b != b'='), "{}", x);
                    prop_assert_eq!(xtext_decode(&x), Some(s.clone()));
                }
            }

            #[test]
            fn any_ehlo_reply_and_challenge_are_read(
                lines in proptest::collection::vec(any::<String>(), 0..6),
                keyword in "(SIZE|AUTH|PIPELINING|DSN|8BITMIME)( [^\r\n]{0,20})?",
            ) {
                let mut lines = lines;
                lines.push(keyword);
                let r = Reply { code: 250, lines: lines.clone(), command: None };
                let c = Caps::from_ehlo(&r);
                prop_assert!(c.esmtp);
                for l in &lines {
                    let _ = unbase64(l);
                }
            }
        }
    }
}

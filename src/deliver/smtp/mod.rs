//! The SMTP client: one session to one server, written as an explicit state machine
//! (the state names what the session awaits), sending many messages per connection.
//!
//! Rules it keeps:
//! - EHLO, falling back to HELO when EHLO is refused; extensions used only when offered:
//!   PIPELINING (MAIL, every RCPT and DATA in one write, replies read in order — RFC 2920;
//!   when the caller knows the next message already, its commands follow the final dot
//!   in the same write, RFC 2920 §3.1, and their replies follow the dot's),
//!   SIZE, 8BITMIME (`BODY=`), DSN (NOTIFY/ORCPT/RET/ENVID, RFC 3461), SMTPUTF8 (RFC 6531:
//!   when the server does not offer it, a recipient whose address needs it is refused
//!   locally and the others are sent without it; a sender that needs it fails them all).
//! - The data goes out as `rsendmail::message::wire` writes it: CRLF lines, dot-stuffed;
//!   a header line of at most 998 octets (RFC 5321 §4.5.3.1.6; an over-long field is
//!   folded at white space, RFC 5322 §2.2.3), a body line of at most 2,040 (sendmail's
//!   relay limit; a longer one continued with CRLF SP); a message without a final line
//!   break gets one. A message with a body line over 998 octets whose data the server
//!   refuses (a 5yz, or the connection closed during it) is sent once more with body
//!   lines broken at 998, after RSET or on a new connection ([`Session::send`]).
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
//! What the server sends is untrusted: its replies are read by [`reply::read_reply`], and
//! its EHLO keywords, AUTH challenges and error texts in these files without byte-index
//! slicing, so no reply makes the client panic (the lints in each file keep it so; the
//! session's own tables, indexed by recipient, are built here and are not input).
//!
//! The files, in the order of a session:
//! - `mod.rs` (this file): the [`Session`], its [`State`]s, opening a connection (greeting,
//!   EHLO, STARTTLS, AUTH) and closing it;
//! - `wire.rs`: the connection ([`Stream`]): commands queued and flushed, replies read and
//!   counted against the commands sent, the message data written, [`Timeouts`], I/O errors
//!   as replies;
//! - `reply.rs`: one multi-line reply read off the connection, and the replies each
//!   command may get ([`Expect`]); the [`Reply`] value itself is `deliver::reply`, shared
//!   with local delivery;
//! - `ehlo.rs`: EHLO (HELO when refused) and the extensions offered ([`Caps`]);
//! - `tls.rs`: STARTTLS and SMTPS with native-tls, the certificate checks ([`TlsPolicy`]);
//! - `auth.rs`: AUTH PLAIN, CRAM-MD5 and LOGIN ([`Credentials`]);
//! - `transaction.rs`: one message: MAIL/RCPT/DATA/RSET, pipelining, `SIZE=`, the 452
//!   retry, per-recipient [`Outcome`]s, and the next message's commands sent with the
//!   final dot ([`State::Primed`]).

#![deny(clippy::string_slice)]

mod auth;
mod ehlo;
mod probe;
mod reply;
mod tls;
mod transaction;
mod wire;

pub use auth::Credentials;
pub use ehlo::Caps;
pub use reply::{Expect, show_escaped};
pub use tls::{TlsMode, TlsPolicy};
pub use transaction::{Go, Next, OutRcpt, Outcome, Outgoing, Step};
pub use wire::{Stream, Timeouts};
// Public in the single-file client and kept at their `smtp::` paths, though the engine
// names none of them today.
#[allow(unused_imports)]
pub use auth::cram_md5;
#[allow(unused_imports)]
pub use probe::Probe;
pub use probe::{CERTIFICATE_WAIT, CHECK_LABEL, CONNECTED};
#[allow(unused_imports)]
pub use transaction::{Stored, xtext};

use super::reply::Reply;
use rsendmail::config::io_text;
use rsendmail::deadline::Timed;
use rsendmail::status::{self, StatusClass};
use std::io::{self, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use wire::io_reply;

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
    /// The next message's MAIL, RCPT and DATA went out right after the last message's
    /// final dot (RFC 2920 §3.1), their replies not read yet: only that message may go
    /// on ([`Session::send`] checks it is the one); anything else closes the connection
    /// without ending its data, so that the server takes nothing of it.
    Primed,
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
            State::Primed => "MAIL",
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

/// Where `-v` output goes: the transcript of the dialogue, as sendmail -v prints it.
pub type Transcript<'a> = Option<&'a mut dyn Write>;

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
    /// Whether a transaction has been started on this connection, and where the RSET
    /// before the next one goes.
    used: Used,
    /// The session was ended with QUIT in the middle (a 4yz to DATA): when it is
    /// replaced, sendmail says nothing of it; only the last connection's `Closing
    /// connection` line is printed, at the end (compat case reason-data4xx-init-q-v).
    pub quit_sent: bool,
    /// Replies owed: commands sent (or the greeting) not yet answered. A reply read when
    /// none is owed, or data waiting once all are read, answers no command.
    awaiting: usize,
    /// The server broke the protocol: no reply of the current transaction can be trusted.
    desynchronised: bool,
    /// The server sent more than the last reply of a transaction: that reply stands, but
    /// the connection is not used again.
    spent: bool,
    /// The session ended because the server closed the connection (not a timeout).
    peer_closed: bool,
    /// A transaction has been begun on this connection before (it is a reused one).
    carried: bool,
    /// The last [`Session::send`] found this reused connection gone before the server
    /// accepted its MAIL (no reply, a reset, a timeout or a 421 to RSET or MAIL): nothing
    /// of the message reached the server, which had ended the connection while it was
    /// cached, so the caller sends the message again over another connection
    /// (`deliver::attempt`) instead of deferring it.
    pub lost_unused: bool,
    /// The commands of the message sent ahead (see [`State::Primed`]).
    primed: Option<transaction::Primed>,
    /// The TLS handshake failed over the certificate the server sent (its chain, name or
    /// dates, or FINGERPRINT): see [`OpenFailure::certificate_refused`].
    certificate_refused: bool,
    /// The forms of the secret of the credentials configured for the host that a server
    /// could echo ([`Session::hide_secret`], from before the greeting on): every reply
    /// text read has each occurrence replaced by [`SECRET_MASK`].
    secrets: Vec<String>,
}

/// What a reply's text shows in place of the password configured for the host, or of
/// its base64 forms as AUTH sends them.
pub const SECRET_MASK: &str = "********";

/// `Session::used`: whether a transaction has been started on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Used {
    /// None since the connection was opened or last reset.
    No,
    /// One has: the next begins with RSET, as sendmail 8.17 begins each reuse of a
    /// cached connection ([`Session::reset_for_reuse`] sends it).
    Yes,
    /// A MAIL was refused and nothing followed it: the next transaction begins with
    /// RSET, which sendmail sends after its `Using cached ESMTP connection` line, not at
    /// the refusal (compat case reason-mail4xx-q-v).
    MailRefused,
}

/// Why no session could be opened: the reply to give every recipient (a temporary
/// failure), and, when a connection was made, sendmail's `Closing connection to [ip]`
/// line, which `-v` shows after the recipients' lines.
#[derive(Clone, Debug)]
pub struct OpenFailure {
    pub reply: Reply,
    pub closing: Option<String>,
    /// The step that failed once connected: [`State::Greeting`], [`State::EhloReply`],
    /// [`State::StartTlsReply`] (STARTTLS, or the handshake of either TLS mode) or
    /// [`State::AuthReply`]; `None` when no connection was made (or before one was
    /// tried).
    pub phase: Option<State>,
    /// The server named itself as this host in its EHLO (or HELO) reply: the mail
    /// would loop back here. The recipients fail for good with `reply` (`553 5.3.5
    /// system config error`), the report's transcript gives [`loop_line`], and the
    /// exit status is EX_SOFTWARE.
    pub loops: bool,
    /// The TLS handshake failed because the certificate the server sent was refused
    /// (not a timeout, a closed connection or an I/O error): the one failure after which
    /// `rsendmail-admin check` fetches the certificate again to show it.
    pub certificate_refused: bool,
}

impl OpenFailure {
    /// Whether the server took the connection but sent no (complete) greeting within
    /// `Timeout.initial`: the reply [`wire::io_reply`] makes of a timeout while the
    /// greeting is awaited (sendmail's `-v` words, `Connection timed out with [ip]`,
    /// which alone would read as a connection never made).
    pub fn no_greeting(&self) -> bool {
        self.phase == Some(State::Greeting)
            && self.reply.local
            && self.reply.enhanced() == Some(status::NO_ANSWER.to_string())
    }
}

/// sendmail's words when a server names itself as this host (usersmtp.c's loop check):
/// `<host> config error: mail loops back to me (MX problem?)`, the host as the route
/// names it (`[192.0.2.1]` for an address).
pub fn loop_text(host: &str) -> String {
    format!("{host} config error: mail loops back to me (MX problem?)")
}

/// Whether the name a server gives in its EHLO reply is this host's (`helo_name`, the
/// mail name EHLO sends): compared as domains are ([`rsendmail::message::address::domain_key`]:
/// case, one trailing dot, U-labels and A-labels do not count), so that a server naming
/// itself `Bücher.example.` is this host `xn--bcher-kva.example`. sendmail compares the
/// name with `$j` and class `w`, ignoring case.
pub fn names_this_host(name: &str, helo_name: &str) -> bool {
    use rsendmail::message::address::domain_key;
    !name.is_empty() && domain_key(name) == domain_key(helo_name)
}

/// sendmail's line for a server that is this host, as a report's transcript gives it:
/// `553 5.3.5 [192.0.2.1] config error: mail loops back to me (MX problem?)`.
pub fn loop_line(host: &str) -> String {
    format!(
        "553 {} {}",
        status::MISCONFIGURED,
        loop_text(&route_name(host))
    )
}

/// A route's host as sendmail names it in its messages: an address in brackets
/// (`[192.0.2.1]`), a name as it is.
pub fn route_name(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        format!("[{bare}]")
    } else {
        host.to_string()
    }
}

/// The reply the recipients of a looping connection fail with (sendmail's status for
/// the connection: `553 5.3.5 system config error`).
pub fn loop_reply() -> Reply {
    Reply {
        code: 553,
        lines: vec![format!("{} system config error", status::MISCONFIGURED)],
        command: None,
        local: false,
        accepted_by: None,
    }
}

impl From<Reply> for OpenFailure {
    fn from(reply: Reply) -> OpenFailure {
        OpenFailure {
            reply,
            closing: None,
            phase: None,
            loops: false,
            certificate_refused: false,
        }
    }
}

impl Session {
    /// Connect to `addrs` (the addresses of `host`, tried in order) and greet. When
    /// `host` is an address literal, each try is announced (`Connecting to [ip] port ...`);
    /// for a name the caller announced it before looking it up. A server that names
    /// itself as this host ([`OpenFailure::loops`]) is said so in the transcript,
    /// except in an `interactive` delivery, whose `-v` sendmail does not tell it.
    ///
    /// `creds` are the credentials `auth.conf` holds for `host`: every reply read on the
    /// connection, from the greeting on, has their password masked
    /// ([`Session::hide_secret`]), whether or not AUTH is tried (a server that was sent
    /// the password once may echo it on any later connection); with `auth`, the session
    /// authenticates with them once it has greeted.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        host: &str,
        port: u16,
        addrs: &[IpAddr],
        helo_name: &str,
        timeouts: &Timeouts,
        tls: &TlsPolicy,
        creds: Option<&Credentials>,
        auth: bool,
        out: &mut Transcript<'_>,
        label: &str,
        via: &str,
        interactive: bool,
    ) -> Result<Session, OpenFailure> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let literal = bare.parse::<IpAddr>().is_ok();
        let mut last = Reply::with_status(
            451,
            status::BAD_SYSTEM.with_class(StatusClass::Transient),
            super::dns::host_not_found(&format!("[{bare}]")),
        );
        for &ip in addrs {
            let addr = SocketAddr::new(ip, port);
            if literal && let Some(w) = out.as_deref_mut() {
                let _ = writeln!(
                    w,
                    "{label}... Connecting to [{}] port {port} via {via}...",
                    addr.ip()
                );
            }
            match TcpStream::connect_timeout(&addr, timeouts.connect) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    // The check says at once that the connection is made, before the
                    // wait for the greeting (never in a delivery's `-v` transcript).
                    if label == CHECK_LABEL
                        && let Some(w) = out.as_deref_mut()
                    {
                        let _ = writeln!(w, "{label}... {CONNECTED}[{}]", addr.ip());
                        let _ = w.flush();
                    }
                    rsendmail::traffic::line(
                        rsendmail::traffic::Dir::Event,
                        format!("CONNECT [{}]", addr.ip()).as_bytes(),
                    );
                    let sock = stream
                        .try_clone()
                        .map_err(|e| io_reply(&e, State::Greeting, host))?;
                    let mut s = Session::new(stream, sock, addr, host, timeouts, out.is_some());
                    if let Some(c) = creds {
                        s.hide_secret(c);
                    }
                    let closing = Some(format!("Closing connection to [{}]", addr.ip()));
                    match s.greet(helo_name, tls, creds.filter(|_| auth), out) {
                        Ok(()) => return Ok(s),
                        Err((State::Ready, _)) => {
                            // The server is this host: sendmail says so and ends the
                            // session with QUIT, reading its reply.
                            let text = loop_text(&route_name(host));
                            if !interactive && let Some(w) = out.as_deref_mut() {
                                let _ = writeln!(w, "{text}");
                            }
                            log::error!("{text}");
                            s.state = State::Ready;
                            s.quit(out);
                            return Err(OpenFailure {
                                reply: loop_reply(),
                                closing,
                                phase: Some(State::EhloReply),
                                loops: true,
                                certificate_refused: false,
                            });
                        }
                        Err((phase, reply)) => {
                            s.abandon(out);
                            return Err(OpenFailure {
                                reply,
                                closing,
                                phase: Some(phase),
                                loops: false,
                                certificate_refused: s.certificate_refused,
                            });
                        }
                    }
                }
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::ConnectionRefused => {
                            format!("Connection refused by [{}]", addr.ip())
                        }
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                            format!("Connection timed out with [{}]", addr.ip())
                        }
                        _ => format!("{} with [{}]", io_text(&e), addr.ip()),
                    };
                    last = Reply::with_status(451, status::NO_ANSWER, why);
                }
            }
        }
        Err(last.into())
    }

    /// A session on a connection just made, awaiting the greeting.
    fn new(
        stream: TcpStream,
        sock: TcpStream,
        peer: SocketAddr,
        host: &str,
        timeouts: &Timeouts,
        verbose: bool,
    ) -> Session {
        Session {
            conn: BufReader::new(Stream::Plain(Timed::new(stream))),
            sock,
            wbuf: Vec::with_capacity(4096),
            tls: false,
            caps: Caps::default(),
            peer,
            host: host.to_string(),
            state: State::Greeting,
            timeouts: timeouts.clone(),
            verbose,
            data_refused: false,
            used: Used::No,
            quit_sent: false,
            // The greeting.
            awaiting: 1,
            desynchronised: false,
            spent: false,
            peer_closed: false,
            carried: false,
            lost_unused: false,
            primed: None,
            certificate_refused: false,
            secrets: Vec::new(),
        }
    }

    /// Give up a session that failed before it was ready: a server that still listens
    /// (it refused the greeting or EHLO) is sent QUIT without waiting for its reply, as
    /// sendmail does.
    fn abandon(&mut self, out: &mut Transcript<'_>) {
        if self.state != State::Closed {
            self.state = State::QuitReply;
            if self.put("QUIT", out).is_ok() {
                let _ = self.flush(self.timeouts.quit);
            }
        }
        self.state = State::Closed;
    }

    /// Greeting, EHLO, STARTTLS when the policy asks for it, AUTH when given credentials.
    /// `Err` names the step that failed (see [`OpenFailure::phase`]).
    fn greet(
        &mut self,
        helo_name: &str,
        tls: &TlsPolicy,
        creds: Option<&Credentials>,
        out: &mut Transcript<'_>,
    ) -> Result<(), (State, Reply)> {
        let at = |phase: State| move |r: Reply| (phase, r);
        if tls.mode == TlsMode::Implicit {
            self.handshake(tls).map_err(at(State::StartTlsReply))?;
        }
        self.state = State::Greeting;
        let g = self
            .read_expect(self.timeouts.initial, out, Expect::Ready, "the greeting")
            .map_err(at(State::Greeting))?;
        if g.code != 220 {
            return Err((State::Greeting, g));
        }
        let name = self.ehlo(helo_name, out).map_err(at(State::EhloReply))?;
        // Talking to this host itself (a name or MX record not known to be ours, an
        // echo server): sendmail's check, the server's name against this host's
        // (`$j`, the name EHLO gives). `Err` at `State::Ready` says so to `open`.
        if names_this_host(&name, helo_name) {
            return Err((State::Ready, loop_reply()));
        }
        if !self.tls && matches!(tls.mode, TlsMode::StartTls | TlsMode::Opportunistic) {
            self.starttls(helo_name, tls, out)
                .map_err(at(State::StartTlsReply))?;
        }
        if let Some(c) = creds {
            self.authenticate(c, tls, out)
                .map_err(at(State::AuthReply))?;
        }
        self.state = State::Ready;
        Ok(())
    }

    /// AUTH on a session opened without credentials, as [`Session::open`] would do it,
    /// each reply waited for at most `wait` (or `Timeout.helo` when shorter):
    /// `rsendmail-admin check` prints the steps before it, then bounds this one.
    pub fn authenticate_within(
        &mut self,
        c: &Credentials,
        tls: &TlsPolicy,
        wait: std::time::Duration,
        out: &mut Transcript<'_>,
    ) -> Result<(), Reply> {
        let helo = self.timeouts.helo;
        self.timeouts.helo = helo.min(wait);
        let r = self.authenticate(c, tls, out);
        self.timeouts.helo = helo;
        r
    }

    pub fn is_usable(&self) -> bool {
        self.state == State::Ready
    }

    /// Whether the next message's commands went out ahead of its turn ([`State::Primed`]):
    /// the connection is kept for that message alone, outside the connection cache.
    pub fn is_primed(&self) -> bool {
        self.state == State::Primed
    }

    /// Whether a transaction has been started since the connection was opened or last
    /// reset: a connection that has not is not yet "cached" (a VERP transaction cut into
    /// one per recipient asks for it again before it sent anything). A connection whose
    /// MAIL was refused counts as used: sendmail says `Using cached ESMTP connection`
    /// before the RSET the next transaction begins with (compat cases reason-mail4xx-q-v,
    /// reason-mail5xx-v: the failure report on the same connection).
    pub fn was_used(&self) -> bool {
        self.used != Used::No
    }

    /// End the session politely.
    pub fn close(mut self, out: &mut Transcript<'_>) {
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, "Closing connection to [{}]", self.peer.ip());
        }
        self.quit(out);
    }

    /// [`Session::close`] while a delivery to `label` (its recipients) is under way:
    /// sendmail's line then names them (`RCPTS... Closing connection to [ip]`).
    pub fn close_for(mut self, label: &str, out: &mut Transcript<'_>) {
        if let Some(w) = out.as_deref_mut() {
            let _ = writeln!(w, "{label}... Closing connection to [{}]", self.peer.ip());
        }
        self.quit(out);
    }

    /// QUIT, its reply read, when the session is ready; the session is closed after.
    fn quit(&mut self, out: &mut Transcript<'_>) {
        if self.state == State::Ready {
            self.state = State::QuitReply;
            if self.put("QUIT", out).is_ok() && self.flush(self.timeouts.quit).is_ok() {
                let _ = self.read(self.timeouts.quit, out);
            }
        }
        self.state = State::Closed;
    }
}

#[cfg(test)]
mod tests {
    use super::names_this_host;

    /// The server's EHLO name is this host's in any case, with one trailing dot, and in
    /// either IDN form; another name, a longer one or none is not.
    #[test]
    fn a_server_naming_this_host_in_any_form_is_this_host() {
        for (name, ours, want) in [
            ("test.example", "test.example", true),
            ("TEST.Example", "test.example", true),
            ("test.example.", "test.example", true),
            ("Bücher.example", "xn--bcher-kva.example", true),
            ("xn--bcher-kva.example", "xn--bcher-kva.example", true),
            ("other.example", "test.example", false),
            ("sub.test.example", "test.example", false),
            ("", "test.example", false),
        ] {
            assert_eq!(names_this_host(name, ours), want, "{name} {ours}");
        }
    }
}

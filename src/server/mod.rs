//! The SMTP server: one session over a reader and a writer (stdin/stdout for `-bs`, a
//! socket for `-bd`), replying as sendmail 8.17 replies (recorded; see compat-tests).
//!
//! The files, in the order a command flows through them:
//! - `mod.rs` (this file): the interface the binaries use ([`Server`]'s settings,
//!   [`Backend`], [`Client`], [`Ending`]), every reply line's form ([`reply_line`]), and
//!   the way of an accepted message into the spool ([`Server::run`] hands the connection
//!   to the session; the session hands the data back to `receive`);
//! - `session.rs`: the command loop, the session's phase (RFC 5321 §4.1.4: Greeting,
//!   Helo, Mail, Rcpt, Data) which alone decides whether MAIL, RCPT and DATA may come,
//!   one handler per command, and pipelining;
//! - `path.rs`: the path of MAIL FROM and RCPT TO as written (brackets, source route);
//! - `params.rs`: their ESMTP parameters (SIZE, BODY, RET, ENVID, NOTIFY, ORCPT,
//!   SMTPUTF8, AUTH) as typed values, and xtext;
//! - `data.rs`: the DATA byte stream → the message (dot rules, bare CR/LF refused);
//! - `net.rs`: the listener's settings (`DaemonPortOptions`, trusted networks).
//!
//! Each accepted message goes through the command line's intake
//! ([`crate::submit::write_entry`]) into the spool; `250 ... Message accepted for delivery`
//! is sent only after the commit point. What happens next (the delivery mode, ETRN, the
//! sender-domain check, which needs DNS) is the [`Backend`]'s: the server itself links
//! neither DNS nor TLS. sendmail 8.17 refuses input sent before its greeting (`-bs`
//! too); rsendmail accepts it (compat-tests/DIFFERENCES.md).
//!
//! Nothing the client sends makes the session panic: the client's text is only cut with
//! `str::get`, `split_once` and the like, never by byte index (the lints in each file
//! keep it so), and a reply never carries a bare CR or LF of the client's, since every
//! reply line is written by [`reply_line`].

#![deny(clippy::string_slice, clippy::indexing_slicing)]

pub mod data;
pub mod net;
pub mod params;
mod path;
mod session;

pub use params::xtext_decode;

use crate::clock;
use crate::deadline::Deadline;
use crate::message::{self, Header, LineReader, address};
use crate::options::DeliveryMode;
use crate::spool::Spool;
use crate::spool::entry::Envelope;
use crate::submit::{self, StoreError};
use session::{Hello, Session, Transaction};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::time::Duration;

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

/// The `O PrivacyOptions=` flags the server acts on, with sendmail 8.17's meanings
/// (recorded: compat-tests/cases/bs-privacy-*). `goaway` stands for the flags it
/// implies ([`crate::options::Settings::privacy`] expands it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Privacy {
    /// `needmailhelo`: MAIL before HELO/EHLO gets `503 5.0.0 Polite people say HELO
    /// first`; without it MAIL may come first.
    pub need_mail_helo: bool,
    /// `needexpnhelo`, `needvrfyhelo`: EXPN, VRFY before HELO/EHLO get `503 5.0.0 I
    /// demand that you introduce yourself first`, unless `noexpn`/`novrfy` answer first.
    pub need_expn_helo: bool,
    pub need_vrfy_helo: bool,
    /// `noexpn`, `novrfy`. rsendmail answers EXPN and VRFY as sendmail does under these
    /// flags whether they are set or not (it never tells who exists here,
    /// compat-tests/DIFFERENCES.md); they decide only which reply comes before HELO.
    pub no_expn: bool,
    pub no_vrfy: bool,
    /// `noetrn`: ETRN is not offered in EHLO and every ETRN gets `502 5.7.0 Sorry, we
    /// do not allow this operation`.
    pub no_etrn: bool,
    /// `noverb`: VERB gets `502 5.7.0 Verbose unavailable`.
    pub no_verb: bool,
    /// `noreceipts`: DSN is not offered in EHLO and its parameters (RET, ENVID, NOTIFY,
    /// ORCPT) get `504 5.7.0 Sorry, RET not supported, we do not allow DSN`.
    pub no_receipts: bool,
    /// `authwarnings`: a message whose client gave no HELO/EHLO gets sendmail's
    /// `X-Authentication-Warning: HOST: CLIENT didn't use HELO protocol` (recorded:
    /// `bs-no-helo-authwarnings`, `bs-no-helo-received`).
    pub auth_warnings: bool,
}

impl Privacy {
    /// The server's flags from a test of each flag by name (`Settings::privacy`).
    pub fn from_flags(flag: impl Fn(&str) -> bool) -> Privacy {
        Privacy {
            need_mail_helo: flag("needmailhelo"),
            need_expn_helo: flag("needexpnhelo"),
            need_vrfy_helo: flag("needvrfyhelo"),
            no_expn: flag("noexpn"),
            no_vrfy: flag("novrfy"),
            no_etrn: flag("noetrn"),
            no_verb: flag("noverb"),
            no_receipts: flag("noreceipts"),
            auth_warnings: flag("authwarnings"),
        }
    }
}

/// The password entry's full name of `sender` when it names a user of this host
/// (`root@HOST`, `root`): what sendmail's `From:` for a local sender shows.
fn local_full_name(sender: &str, host: &str) -> Option<String> {
    if !address::is_local(sender, host, false) {
        return None;
    }
    let (local, _) = address::split_at_domain(sender);
    let user = nix::unistd::User::from_name(local).ok().flatten()?;
    submit::gecos_full_name(&user)
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
    /// Domains anyone may send to, with their subdomains, besides this host's own
    /// names (`O RelayDomains=`; [`crate::config::domain_covers`]).
    pub relay_domains: Vec<String>,
    pub all_to_smarthost: bool,
    pub aliases: Option<crate::aliases::Aliases>,
    /// `O DefaultUser=` (uid, gid): whose rights a session run by root reads an
    /// `:include:` file with that no user controls.
    pub default_user: (u32, u32),
    /// `O MaxMessageSize=`, advertised in EHLO.
    pub max_size: Option<u64>,
    /// Recipients per transaction (`O MaxRecipientsPerMessage=`; the caller passes
    /// `usize::MAX` for the option's 0, no limit); beyond, 452.
    pub max_recipients: usize,
    /// A command line must arrive whole within this (`O Timeout.command=`), on a
    /// connection that keeps deadlines ([`crate::deadline`]).
    pub command_timeout: Duration,
    /// Each [`DATA_BLOCK`] of a message must arrive within this (`O Timeout.datablock=`).
    pub data_timeout: Duration,
    /// `O PrivacyOptions=`.
    pub privacy: Privacy,
    /// Whether this client may start a queue run with ETRN: a `-bs` session run by a
    /// user whom `-q` refuses may not (`502 5.7.0 Sorry, we do not allow this
    /// operation`, as sendmail answers a `-bs` run by a user other than root;
    /// compat-tests/cases/bs-etrn-not-root).
    pub etrn_allowed: bool,
    /// The VERP delimiters a bare `XVERP` asks for (`O VerpDelimiters=`, else
    /// [`crate::verp::DEFAULT_DELIMITERS`]); two characters from `-=+`.
    pub verp_delimiters: String,
    /// `O Verp=true`: every message with a sender is queued for VERP (with
    /// `verp_delimiters`), as a command-line submission is; XVERP's own delimiters win.
    pub verp_all: bool,
    /// How a client repeating NOOP, HELO/EHLO, VRFY/EXPN or ETRN is slowed down.
    pub slowdown: Slowdown,
}

/// sendmail 8.17's slow-down of a client that repeats commands which carry no mail
/// (srvrsmtp.c `checksmtpattack`). Each of NOOP, HELO/EHLO, VRFY/EXPN and ETRN has a
/// count for the whole session (a mail transaction, RSET or a new HELO resets none); from
/// the count that reaches its limit on, each such command is answered late: the n-th
/// waits `2^(n - limit)` seconds (at least `n / limit`, at most 240), and the first late
/// one logs `possible SMTP attack: command=NOOP, count=20`. The wait is the session's
/// own (each `-bd` session is its own process); other sessions go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slowdown {
    /// `O MaxNOOPCommands=`: NOOPs before the slow-down (sendmail's 20; 0: no limit).
    pub noop: u32,
    /// HELO/EHLO before the slow-down (sendmail's MAXHELOCOMMANDS, 3; 0: no limit).
    pub helo: u32,
    /// VRFY/EXPN before the slow-down (sendmail's MAXVRFYCOMMANDS, 6; 0: no limit).
    pub vrfy: u32,
    /// ETRN before the slow-down (sendmail's MAXETRNCOMMANDS, 8; 0: no limit).
    pub etrn: u32,
    /// Whether a count at twice its limit ends the session, after its wait, with
    /// `421 4.7.0 host Too many bad commands; closing connection`: sendmail does so when
    /// `O MaxDaemonChildren=` is above 0.
    pub stop: bool,
}

impl Default for Slowdown {
    fn default() -> Self {
        Slowdown {
            noop: 20,
            helo: 3,
            vrfy: 6,
            etrn: 8,
            stop: false,
        }
    }
}

/// The block of the message `data_timeout` is for: the session's input buffer.
pub const DATA_BLOCK: usize = 64 * 1024;

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

/// One reply line as it goes out: the control characters a client's text may have put
/// in it (a CR or LF above all, which would end the line early) are written as `?`,
/// as [`address::shown`] writes them; a tab stays (HELP's lines hold tabs, and sendmail
/// echoes a tab in a path as it is: compat-tests/cases/addr-ctl-bs).
pub fn reply_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push(crate::text::REPLACEMENT);
        } else {
            out.push(c);
        }
    }
    out.push_str("\r\n");
    out
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
                .any(|r| crate::config::domain_covers(r, &d)),
            None => true,
        }
    }

    /// Run a session. Errors are the connection's (the client is gone).
    pub fn run<R: Deadline, W: Write>(
        &mut self,
        backend: &mut dyn Backend,
        input: &mut BufReader<R>,
        out: &mut W,
    ) -> io::Result<Ending> {
        Session::new(self, backend, input, out).run()
    }

    /// Take the message after 354 into the spool.
    fn receive<R: Read>(
        &self,
        tx: &Transaction,
        hello: &Hello,
        input: &mut BufReader<R>,
    ) -> Received {
        let mut data = data::DataReader::new(input);
        let result = self.store(tx, hello, &mut data);
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
                    // sendmail 8.17's reply (compat-tests `content-nul-bs`).
                    StoreError::Nul => format!("554 5.6.1 {}", submit::NUL_NOT_ALLOWED),
                    StoreError::Fatal(f) => {
                        log::error!("{}", f.message);
                        if f.code == crate::exit::Sysexit::CantCreat || f.is_no_space() {
                            "452 4.3.1 Insufficient disk space; try again later".into()
                        } else {
                            "451 4.3.0 Temporary system failure; try again later".into()
                        }
                    }
                })
            }
        }
    }

    /// Read the message (header fields, then body) and write its queue entry, with the
    /// fields this host adds (`Received:` first); the queue id once committed.
    fn store<R: BufRead>(
        &self,
        tx: &Transaction,
        hello: &Hello,
        data: &mut R,
    ) -> Result<String, StoreError> {
        let now = clock::now();
        // A spool made writable by everyone while the server runs is not used: the
        // client is told to try later (451) and keeps the message.
        self.spool.check_safe().map_err(StoreError::Fatal)?;
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
        let sender = tx.sender.clone();
        let from_where = self.client_text();
        // No HELO/EHLO taken: the client by the name sendmail gives it there (`localhost`
        // for `-bs`, the address literal for a TCP peer), never an empty `from  (`
        // (recorded: `bs-no-helo-received`).
        let no_helo = hello.name.trim().is_empty();
        let helo = if no_helo {
            match &self.client {
                Client::Local { .. } => "localhost".to_string(),
                Client::Remote { ip } => format!("[{ip}]"),
            }
        } else {
            hello.name.clone()
        };
        let with = if hello.esmtp { "ESMTP" } else { "SMTP" };
        let product = crate::PRODUCT;
        // The one recipient with A-labels (`u@xn--bcher-kva.example`), as submission's
        // `Received:` names it; one with a non-ASCII local part is not named, so that no
        // line rsendmail writes needs SMTPUTF8 of the next server.
        let for_whom = match tx.recipients.as_slice() {
            [one] => address::ascii_address(&one.address),
            _ => None,
        };
        let received = match for_whom {
            Some(one) => format!(
                "from {helo} ({from_where})\n\tby {} ({product}) with {with} id {id}\n\tfor <{one}>; {date}",
                self.host
            ),
            None => format!(
                "from {helo} ({from_where})\n\tby {} ({product}) with {with} id {id};\n\t{date}",
                self.host
            ),
        };
        let mut added = vec![Header::new("Received", &received)];
        added.extend(submit::missing_headers(
            &mut head,
            &tm,
            &id,
            &self.host,
            || {
                if sender.is_empty() {
                    format!("MAILER-DAEMON@{}", self.host)
                } else {
                    // With A-labels, as submission's `From:` (`From: s@xn--bcher-kva.example`).
                    let addr = address::ascii_address(&sender)
                        .map_or_else(|| sender.clone(), std::borrow::Cow::into_owned);
                    // A sender who is a user of this host is named with the password
                    // entry's full name, as sendmail names a local sender (recorded:
                    // `bs-no-helo-received`: `From: root <root@HOST>`).
                    match local_full_name(&sender, &self.host) {
                        Some(name) => format!("{} <{addr}>", submit::display_name(&name)),
                        None => addr,
                    }
                }
            },
        ));
        if no_helo && self.privacy.auth_warnings {
            added.push(Header::new(
                "X-Authentication-Warning",
                &format!("{}: {from_where} didn't use HELO protocol", self.host),
            ));
        }
        if let Client::Local { login, uid } = &self.client {
            added.extend(submit::bs_warning(*uid, login, &tx.sender, &self.host));
        }
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
            submitted_header_bytes: Some(head.submitted_bytes + 1),
            body_type: tx.params.body.map(|b| b.as_str().to_string()),
            envid: tx.params.envid.clone(),
            ret: tx.params.ret.map(|r| r.as_str().to_string()),
            verp: tx.verp.clone().or_else(|| {
                (self.verp_all && !tx.sender.is_empty()).then(|| self.verp_delimiters.clone())
            }),
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

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::params::{MailParams, Offered, RcptParams};
    use super::path::{Path, PathError, split_path};
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
        // sendmail's prescan reads on to the end while a `<` is open (recorded:
        // `bs-rcpt-malformed`, `<bad address <`).
        assert_eq!(refused("FROM:<a@b SIZE=1"), "<a@b SIZE=1... Unbalanced '<'");
        assert_eq!(refused("FROM:<\"a@b>"), "<\"a@b>... Unbalanced '\"'");
        assert_eq!(
            refused("FROM:<<a@b>> SIZE=1"),
            "<<a@b>>... Nested '<' in address"
        );
        assert_eq!(refused("FROM:<@a:>"), "<@a:>... User address required");
        assert_eq!(refused("FROM:<@a>"), "<@a>... User address required");
        assert!(split_path("TO", "TO").is_err());
        assert!(split_path("FRM:<a>", "FROM").is_err());
        // A multi-byte character across the keyword's end (`FROé`).
        assert!(split_path("FROé:<a@b>", "FROM").is_err());
        assert!(split_path("TÖ:<a@b>", "TO").is_err());
    }

    /// The slow-down's counts last the session (MAIL, RSET and a new HELO reset none);
    /// at twice the limit, with `stop`, the session ends with sendmail's 421 after its
    /// wait (here 1 + 2 seconds) and reads no further; without `stop` it goes on.
    #[test]
    fn repeated_noops_end_the_session_at_twice_the_limit() {
        let s = ScratchSpool::new("slowdown");
        let slowdown = Slowdown {
            noop: 1,
            helo: 0,
            vrfy: 0,
            etrn: 0,
            stop: true,
        };
        let input = b"HELO c.test\r\nNOOP\r\nRSET\r\nMAIL FROM:<a@example.org>\r\nHELO c.test\r\nNOOP\r\nQUIT\r\n";
        let t = std::time::Instant::now();
        let out = session_slowed(&s.spool, input, true, DeliveryMode::QueueOnly, slowdown);
        assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
        let lines = reply_lines(&out);
        assert_eq!(lines.len(), 7, "{out}");
        assert_eq!(lines.get(2), Some(&"250 2.0.0 OK"));
        assert_eq!(
            lines.last(),
            Some(&"421 4.7.0 mx.test Too many bad commands; closing connection")
        );
        let go_on = Slowdown {
            stop: false,
            ..slowdown
        };
        let out = session_slowed(&s.spool, input, true, DeliveryMode::QueueOnly, go_on);
        let lines = reply_lines(&out);
        assert_eq!(lines.get(6), Some(&"250 2.0.0 OK"), "{out}");
        assert!(lines.last().is_some_and(|l| l.starts_with("221 ")), "{out}");
    }

    #[test]
    fn replies_never_carry_a_bare_line_end() {
        assert_eq!(reply_line("250 ok"), "250 ok\r\n");
        assert_eq!(
            reply_line("553 5.0.0 <a\rb\n\0>... Illegal"),
            "553 5.0.0 <a?b??>... Illegal\r\n"
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
        session_with(
            spool,
            input,
            trusted,
            mode,
            no_slowdown(),
            &["relay.test"],
            helo_first(),
        )
    }

    /// The privacy flags the test sessions run with unless a test names others: MAIL
    /// needs a HELO first, as under Debian's sendmail.cf.
    fn helo_first() -> Privacy {
        Privacy {
            need_mail_helo: true,
            ..Privacy::default()
        }
    }

    /// Random sessions repeat commands: not slowed here.
    fn no_slowdown() -> Slowdown {
        Slowdown {
            noop: 0,
            helo: 0,
            vrfy: 0,
            etrn: 0,
            stop: false,
        }
    }

    /// [`session`] with `slowdown`.
    fn session_slowed(
        spool: &Spool,
        input: &[u8],
        trusted: bool,
        mode: DeliveryMode,
        slowdown: Slowdown,
    ) -> String {
        session_with(
            spool,
            input,
            trusted,
            mode,
            slowdown,
            &["relay.test"],
            helo_first(),
        )
    }

    /// [`session`] with these `RelayDomains`.
    fn session_relaying(
        spool: &Spool,
        input: &[u8],
        trusted: bool,
        mode: DeliveryMode,
        relay: &[&str],
    ) -> String {
        session_with(
            spool,
            input,
            trusted,
            mode,
            no_slowdown(),
            relay,
            helo_first(),
        )
    }

    /// [`session`] with `slowdown` and these `RelayDomains`.
    fn session_with(
        spool: &Spool,
        input: &[u8],
        trusted: bool,
        mode: DeliveryMode,
        slowdown: Slowdown,
        relay: &[&str],
        privacy: Privacy,
    ) -> String {
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
            relay_domains: relay.iter().map(|d| d.to_string()).collect(),
            all_to_smarthost: false,
            aliases: Some(aliases),
            default_user: (65534, 65534),
            max_size: Some(100_000),
            max_recipients: 3,
            command_timeout: Duration::from_secs(3600),
            data_timeout: Duration::from_secs(3600),
            privacy,
            etrn_allowed: true,
            verp_delimiters: crate::verp::DEFAULT_DELIMITERS.into(),
            verp_all: false,
            slowdown,
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

    /// RelayDomains and ETRN take an internationalised domain in either form, whichever
    /// the configuration holds and whichever the client writes.
    #[test]
    fn relay_domains_and_etrn_take_both_forms_of_an_idn_domain() {
        let s = ScratchSpool::new("idnrelay");
        for (config, asked) in [
            ("bücher.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "bücher.example"),
            ("XN--BCHER-KVA.example", "BÜCHER.example"),
        ] {
            let input = format!(
                "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@{asked}>\r\n\
                 RCPT TO:<u@sub.{asked}>\r\nRCPT TO:<u@bucher.example>\r\nRSET\r\n\
                 ETRN {asked}\r\nETRN @{config}\r\nQUIT\r\n"
            );
            let out = session_relaying(
                &s.spool,
                input.as_bytes(),
                false,
                DeliveryMode::QueueOnly,
                &[config],
            );
            let what = format!("RelayDomains {config}, asked {asked}");
            assert!(
                out.contains(&format!("250 2.1.5 <u@{asked}>... Recipient ok")),
                "{what}: {out}"
            );
            assert!(
                out.contains(&format!("250 2.1.5 <u@sub.{asked}>... Recipient ok")),
                "{what}: {out}"
            );
            assert!(
                out.contains("<u@bucher.example>... Relaying denied"),
                "{what}: {out}"
            );
            assert!(
                out.contains(&format!("250 2.0.0 Queuing for node {asked} started")),
                "{what}: {out}"
            );
            assert!(
                out.contains(&format!("250 2.0.0 Queuing for node @{config} started")),
                "{what}: {out}"
            );
        }
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
                // An octet that is not UTF-8 is echoed as `?`, never as a U+FFFD
                // the client did not send.
                "500 5.5.1 Command unrecognized: \"?\"",
                "500 5.5.1 Command unrecognized: \"MAIL?:<c@d>\"",
                "500 5.5.1 Command unrecognized: \"?\"",
                "221 2.0.0 mx.test closing connection",
            ]
        );
    }

    /// The message of the first `250 2.0.0 <id> Message accepted` reply in `out`, as
    /// queued (its added `Received:` field first).
    fn queued_message(spool: &Spool, out: &str) -> String {
        use std::io::{Seek, SeekFrom};
        let id = reply_lines(out)
            .into_iter()
            .find_map(|l| l.strip_prefix("250 2.0.0 "))
            .and_then(|l| l.split(' ').next())
            .expect("a message was accepted");
        let mut e = spool.read_entry(id).expect("queued");
        e.file.seek(SeekFrom::Start(e.data_offset)).expect("seek");
        let mut text = String::new();
        e.file.read_to_string(&mut text).expect("UTF-8 message");
        text
    }

    /// sendmail's HELO check, over every octet in the middle of a name, for HELO and
    /// EHLO: an ASCII letter or digit or one of `[].-_#:` is taken, any other octet
    /// (controls and NUL, blanks followed by more text, punctuation, 8-bit octets) gets
    /// `501 5.0.0 Invalid domain name`, the session keeps its name, and the `Received:`
    /// field names the last name taken (recorded: compat-tests/cases/bs-helo-*).
    #[test]
    fn helo_names_are_checked_as_sendmail_checks_them() {
        let s = ScratchSpool::new("helo-octets");
        let msg = "MAIL FROM:<a@b.test>\r\nRCPT TO:<root>\r\nDATA\r\nSubject: x\r\n\r\nb\r\n.\r\n";
        for verb in ["HELO", "EHLO"] {
            for octet in (0..=255u8).filter(|&o| o != b'\n') {
                let taken = octet.is_ascii_alphanumeric() || b"[].-_#:".contains(&octet);
                let mut input = format!("HELO first.example\r\n{verb} a").into_bytes();
                input.extend([octet]);
                input.extend(b"b.example\r\n");
                input.extend(msg.as_bytes());
                input.extend(b"QUIT\r\n");
                let out = session(&s.spool, &input, true, DeliveryMode::QueueOnly);
                let second = reply_lines(&out)[2];
                let name = if taken {
                    assert!(second.starts_with("250"), "{verb} {octet:#04x}: {out}");
                    String::from_utf8(vec![b'a', octet, b'b']).expect("ASCII") + ".example"
                } else {
                    assert_eq!(
                        second, "501 5.0.0 Invalid domain name",
                        "{verb} {octet:#04x}"
                    );
                    "first.example".into()
                };
                let message = queued_message(&s.spool, &out);
                let first_line = message.lines().next().unwrap_or_default();
                assert_eq!(
                    first_line,
                    format!("Received: from {name} (tester@localhost)"),
                    "{verb} {octet:#04x}"
                );
            }
        }
    }

    /// A message from a client that gave no HELO/EHLO (allowed without `needmailhelo`):
    /// its `Received:` names it `localhost` as sendmail's does, never `from  (`, and with
    /// `authwarnings` it carries sendmail's warning (recorded: `bs-no-helo-received`,
    /// `bs-no-helo-authwarnings`, which also show the full name of a local sender in the
    /// `From:` added).
    #[test]
    fn a_message_without_helo_names_the_client_and_warns() {
        let s = ScratchSpool::new("no-helo");
        let msg = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<root>\r\nDATA\r\nSubject: x\r\n\r\nb\r\n.\r\nQUIT\r\n";
        // The message a session with `input` queued, `authwarnings` set as `warn`.
        let queued = |input: &[u8], warn: bool| {
            let privacy = Privacy {
                auth_warnings: warn,
                ..Privacy::default()
            };
            let out = session_with(
                &s.spool,
                input,
                true,
                DeliveryMode::QueueOnly,
                no_slowdown(),
                &[],
                privacy,
            );
            queued_message(&s.spool, &out)
        };
        for warn in [false, true] {
            let message = queued(msg, warn);
            assert!(
                message.starts_with("Received: from localhost (tester@localhost)\n"),
                "{message}"
            );
            let warning =
                "X-Authentication-Warning: mx.test: tester@localhost didn't use HELO protocol\n";
            assert_eq!(message.contains(warning), warn, "{message}");
        }
        // With a HELO, no warning.
        let message = queued(&[b"HELO a.example\r\n".as_slice(), msg].concat(), true);
        assert!(!message.contains("didn't use HELO"), "{message}");
        assert!(message.starts_with("Received: from a.example (tester@localhost)"));
    }

    /// The blanks after a HELO/EHLO name end it (sendmail's "allow trailing
    /// whitespace"), a blank with text after it is refused; the name is at most 256
    /// octets; a refused HELO keeps the transaction.
    #[test]
    fn helo_blanks_length_and_the_open_transaction() {
        let s = ScratchSpool::new("helo-blanks");
        let long = |n: usize| "a".repeat(n);
        let cases: Vec<(String, &str)> = vec![
            ("HELO a.example \t\x0b\x0c\r".into(), "250 mx.test Hello"),
            ("HELO a.example x".into(), "501 5.0.0 Invalid domain name"),
            ("EHLO a.example\tx".into(), "501 5.0.0 Invalid domain name"),
            ("HELO    a.example".into(), "250 mx.test Hello"),
            (format!("HELO {}", long(256)), "250 mx.test Hello"),
            (
                format!("EHLO {}", long(257)),
                "501 5.0.0 Invalid domain name",
            ),
            (
                "HELO a.example\u{a0}".into(),
                "501 5.0.0 Invalid domain name",
            ),
            ("HELO [IPv6:::1]".into(), "250 mx.test Hello"),
        ];
        for (line, reply) in cases {
            let input = format!("{line}\r\nQUIT\r\n");
            let out = session(&s.spool, input.as_bytes(), true, DeliveryMode::QueueOnly);
            let got = reply_lines(&out)[1];
            assert!(got.starts_with(reply), "{line:?}: {got}");
        }
        let input = concat!(
            "HELO a.example\r\nMAIL FROM:<a@b.test>\r\nHELO bad/name\r\n",
            "RCPT TO:<root>\r\nDATA\r\nSubject: x\r\n\r\nb\r\n.\r\nQUIT\r\n"
        );
        let out = session(&s.spool, input.as_bytes(), true, DeliveryMode::QueueOnly);
        assert!(
            out.contains("501 5.0.0 Invalid domain name\r\n250 2.1.5 <root>"),
            "{out}"
        );
        let message = queued_message(&s.spool, &out);
        assert!(
            message.starts_with("Received: from a.example (tester@localhost)"),
            "{message}"
        );
    }

    /// Octets that are not UTF-8 (Latin-1, overlong, a surrogate, over U+10FFFF, cut
    /// short) anywhere in a MAIL or RCPT path or in any of their parameters: refused with
    /// `(not UTF-8)`, each such octet shown as `?`, nothing taken; the same text in valid
    /// UTF-8 is taken as it is. (compat-tests/differences/bs-addr-non-utf8,
    /// bs-param-non-utf8.)
    #[test]
    fn octets_that_are_not_utf8_in_mail_and_rcpt_are_refused() {
        let s = ScratchSpool::new("not-utf8");
        let bad: &[&[u8]] = &[
            b"\xf6",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc3",
        ];
        const FROM: &str = "501 5.1.7 Syntax error in mailbox address \"";
        const TO: &str = "501 5.1.3 Syntax error in mailbox address \"";
        const PARAM: &str = "501 5.5.4 Syntax error in parameter \"";
        // (command, `~` where the octets go; the reply's start)
        let commands = [
            ("MAIL FROM:<j~@b.test>", FROM),
            ("MAIL FROM:<a@b~.test>", FROM),
            ("MAIL FROM:j~@b.test", FROM),
            ("MAIL FROM:<a@b.test> BODY=8BITMIME~", PARAM),
            ("MAIL FROM:<a@b.test> SIZE=1~", PARAM),
            ("MAIL FROM:<a@b.test> RET=HDRS~", PARAM),
            ("MAIL FROM:<a@b.test> ENVID=x~", PARAM),
            ("MAIL FROM:<a@b.test> XVERP=-~", PARAM),
            ("MAIL FROM:<a@b.test> X~=1", PARAM),
            ("RCPT TO:<j~@relay.test>", TO),
            ("RCPT TO:<j@relay~.test>", TO),
            ("RCPT TO:<j@relay.test> NOTIFY=SUCCESS~", PARAM),
            ("RCPT TO:<j@relay.test> ORCPT=rfc822;j~@relay.test", PARAM),
            ("RCPT TO:<j@relay.test> X~=1", PARAM),
        ];
        for octets in bad {
            for (template, want) in commands {
                let cmd = template
                    .as_bytes()
                    .split(|&b| b == b'~')
                    .collect::<Vec<_>>()
                    .join(*octets);
                let prefix = if template.starts_with("MAIL") {
                    "EHLO c\r\n"
                } else {
                    "EHLO c\r\nMAIL FROM:<a@b.test>\r\n"
                };
                let input = [prefix.as_bytes(), &cmd, b"\r\nQUIT\r\n"].concat();
                let out = session(&s.spool, &input, true, DeliveryMode::QueueOnly);
                let lines = reply_lines(&out);
                let reply = lines.iter().rev().nth(1).copied().unwrap_or_default();
                let what = format!("{template} with {octets:x?}: {reply}");
                assert!(reply.starts_with(want), "{what}");
                assert!(reply.ends_with("\" (not UTF-8)"), "{what}");
                assert_eq!(reply.matches('?').count(), octets.len(), "{what}");
                assert!(!reply.contains('\u{fffd}'), "{what}");
            }
        }
        // The same in UTF-8 is text: taken as it is.
        let out = session(
            &s.spool,
            "EHLO c\r\nMAIL FROM:<jö@b.test>\r\nRCPT TO:<jö@relay.test>\r\nQUIT\r\n".as_bytes(),
            true,
            DeliveryMode::QueueOnly,
        );
        assert!(out.contains("250 2.1.0 <jö@b.test>... Sender ok"), "{out}");
        assert!(
            out.contains("250 2.1.5 <jö@relay.test>... Recipient ok"),
            "{out}"
        );
    }

    /// XVERP (Postfix's smtpd): offered to a client the server relays for, taken on
    /// MAIL and queued as the entry's `verp` line; refused with the null sender and with
    /// bad delimiters; neither offered nor taken from other clients (sendmail's 555).
    #[test]
    fn xverp_is_offered_to_trusted_clients_and_queued() {
        let s = ScratchSpool::new("xverp");
        let msg = "RCPT TO:<a@relay.test>\r\nRCPT TO:<b@relay.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
        let input = format!(
            "EHLO c\r\nMAIL FROM:<l@list.test> XVERP=-=\r\n{msg}\
             MAIL FROM:<l@list.test> XVERP\r\n{msg}\
             MAIL FROM:<> XVERP\r\nMAIL FROM:<l@list.test> XVERP=ab\r\n\
             MAIL FROM:<l@list.test>\r\n{msg}QUIT\r\n"
        );
        let out = session(&s.spool, input.as_bytes(), true, DeliveryMode::QueueOnly);
        let lines = reply_lines(&out);
        assert!(lines.contains(&"250-XVERP"), "{out}");
        let ids: Vec<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("250 2.0.0 "))
            .filter_map(|l| l.split(' ').next())
            .map(String::from)
            .collect();
        let verp: Vec<Option<String>> = ids
            .iter()
            .map(|id| s.spool.read_entry(id).expect("queued").envelope.verp)
            .collect();
        assert_eq!(verp, [Some("-=".into()), Some("+=".into()), None]);
        assert!(lines.contains(&"503 5.5.4 XVERP requires a sender other than the null sender <>"));
        assert!(lines.contains(&"501 5.5.4 XVERP needs two characters from -=+ (got \"ab\")"));

        let out = session(
            &s.spool,
            b"EHLO c\r\nMAIL FROM:<l@list.test> XVERP\r\nQUIT\r\n",
            false,
            DeliveryMode::QueueOnly,
        );
        let lines = reply_lines(&out);
        assert!(!lines.contains(&"250-XVERP"), "{out}");
        assert!(
            lines.contains(&"555 5.5.4 XVERP parameter unrecognized"),
            "{out}"
        );
    }

    #[test]
    fn phases_move_only_on_accepted_commands() {
        let s = ScratchSpool::new("phases");
        let input = concat!(
            "RSET\r\nMAIL FROM:<a@b>\r\nEHLO c\r\nDATA\r\nMAIL FROM:<a@b>\r\n",
            "HELO\r\nDATA\r\nRCPT TO:<root>\r\nMAIL FROM:<c@d>\r\n",
            "RSET\r\nRCPT TO:<root>\r\nQUIT\r\n"
        );
        let out = session(&s.spool, input.as_bytes(), true, DeliveryMode::QueueOnly);
        let finals: Vec<&str> = reply_lines(&out)
            .into_iter()
            .filter(|l| l.as_bytes()[3] == b' ')
            .collect();
        assert_eq!(
            finals[1..],
            [
                // RSET before a hello leaves the session awaiting it.
                "250 2.0.0 Reset state",
                "503 5.0.0 Polite people say HELO first",
                "250 HELP",
                "503 5.0.0 Need MAIL command",
                "250 2.1.0 <a@b>... Sender ok",
                // A refused HELO keeps the transaction.
                "501 5.0.0 HELO requires domain address",
                "503 5.0.0 Need RCPT (recipient)",
                "250 2.1.5 <root>... Recipient ok",
                "503 5.5.0 Sender already specified",
                // RSET ends it.
                "250 2.0.0 Reset state",
                "503 5.0.0 Need MAIL before RCPT",
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
                "(?i:xverp)(=[-=+@a]{0,3})?",
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
                let is_reply = |e: &params::ParamError| e.to_string().as_bytes()[..3].iter().all(u8::is_ascii_digit);
                let words: Vec<String> = [&k[..], "SIZE", "BODY", "RET", "ENVID"].iter().map(|k| format!("{k}={v}")).collect();
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                for w in (0..words.len()).map(|i| &words[..=i]) {
                    if let Err(e) = MailParams::parse(w, Offered::default()) {
                        prop_assert!(is_reply(&e), "{}", e);
                    }
                }
                for k in [&k[..], "NOTIFY", "ORCPT"] {
                    if let Err(e) = RcptParams::parse(&[&format!("{k}={v}")]) {
                        prop_assert!(is_reply(&e), "{}", e);
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

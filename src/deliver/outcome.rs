//! One recipient's outcome of one attempt ([`RcptOutcome`]): the value every transport
//! returns and every later step (record, report, transcript, log) reads. Its words are
//! RFC 3464's: the class decides the DSN action, the reply is kept as the server (or the
//! local transport) gave it, and its enhanced status (RFC 3463) is parsed once, here.

use super::reply::Reply;
use super::smtp::Outcome;
use rsendmail::exit::Sysexit;
use rsendmail::status::{EnhancedStatus, StatusClass};

/// What became of a recipient (RFC 3464 §2.3.3's actions before expiry is applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Delivered here: a mailbox, a program, a file (action `delivered`), or replaced by
    /// its alias or `.forward` targets (action `expanded`).
    Delivered,
    /// Accepted by a server that does not report further (action `relayed`).
    Relayed,
    /// Failed for now: tried again later (action `delayed` once a warning is due).
    Temporary,
    /// Failed for good (action `failed`).
    Permanent,
}

/// The mailer, as sendmail names it in logs and `-bv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mailer {
    /// A smarthost or a relay-table entry.
    Relay,
    /// The MX hosts of the recipient's domain.
    Esmtp,
    /// Local delivery (mailbox, program, file, alias, `.forward`).
    Local,
}

impl Mailer {
    pub fn as_str(self) -> &'static str {
        match self {
            Mailer::Relay => "relay",
            Mailer::Esmtp => "esmtp",
            Mailer::Local => "local",
        }
    }
}

/// One recipient's outcome of one attempt.
#[derive(Clone, Debug)]
pub struct RcptOutcome {
    /// The recipient's index in the entry.
    pub rcpt: usize,
    pub class: Class,
    /// The reply that decided it: the server's, or one made up locally (a refused
    /// connection, a lookup failure, a mailbox error) with sendmail's code and text.
    pub reply: Reply,
    /// The reply's enhanced status, or X.0.0 of the class when it has none (or one of
    /// another class, which RFC 3463 §2 does not allow).
    pub status: EnhancedStatus,
    pub mailer: Mailer,
    /// The server as logged (`mx.example.org [192.0.2.1]`), the host tried when none
    /// answered, or the domain whose lookup failed; None for local delivery.
    pub relay: Option<String>,
    /// The server took the recipient's DSN request (RFC 3461 §4.1): reporting its
    /// success is the server's job from here on.
    pub dsn_passed: bool,
    /// A local recipient replaced by its alias or `.forward` targets. It gets no
    /// report of its own (its targets do: one target inherits its NOTIFY and ORCPT,
    /// RFC 3461 §6.2.7.3), as an alias expanded at submission gets none.
    pub expanded: bool,
    /// Expanded to more than one target for a recipient whose NOTIFY asks for success
    /// notices: the attempt's transcript says `ADDR... expanded to multiple addresses`,
    /// as sendmail's does.
    pub expanded_to_multiple: bool,
    /// The recipient's domain does not exist or takes no mail (EX_NOHOST).
    pub no_host: bool,
    /// Decided by the lookup of the recipient's domain, no server tried: `relay` names
    /// the domain, not an MTA (a report has no Remote-MTA for it).
    pub looked_up: bool,
    /// The message itself was refused after DATA (EX_UNAVAILABLE).
    pub data_refused: bool,
    /// A `/file` target that could not be created or opened (EX_CANTCREAT, as
    /// sendmail's file mailer exits; compat cases file-perm, file-readonly).
    pub cant_create: bool,
    /// The server named itself as this host (`smtp::OpenFailure::loops`): sendmail's
    /// transcript line for it; the recipient failed with a configuration error
    /// (`Local configuration error`, exit status EX_SOFTWARE).
    pub loops: Option<String>,
    /// The exit status of an interactive delivery a local failure sets
    /// (`local::Failure::exit`).
    pub exit: Option<Sysexit>,
    /// sendmail's `stat=` text when it is not made from the reply
    /// (`local::Failure::stat`).
    pub stat: Option<String>,
    /// A local failure's lines in the report's transcript (`local::Failure::notes`).
    pub notes: Vec<String>,
    /// The report's Diagnostic-Code when it is not the reply (`local::Failure::diagnostic`).
    pub diagnostic: Option<String>,
    /// The mailer the log line names when it is not `mailer`, and then no `relay=`: a
    /// recipient `rsendmail-admin bounce` returned is decided here, but its line names
    /// the mailer it would have gone by (`mailer=esmtp`), and no relay, as none was
    /// contacted.
    pub logged_as: Option<Mailer>,
    /// Not sent in this attempt, nothing of its message given to a server, mailbox or
    /// command: the attempt's record could not be kept, or a mark (`rsendmail-admin
    /// delete`, `hold`, `bounce`) was found before it went (a temporary failure).
    pub held_back: bool,
}

/// sendmail's words (sysexits' EX_CONFIG) for a recipient whose server loops back here.
pub const LOCAL_CONFIG_ERROR: &str = "Local configuration error";

impl RcptOutcome {
    /// The outcome a final reply gives: 2yz delivered (`relayed` unless local), 5yz
    /// failed, anything else temporary.
    pub fn new(rcpt: usize, reply: Reply, mailer: Mailer, relay: Option<String>) -> RcptOutcome {
        let class = match reply.code {
            200..=299 if mailer == Mailer::Local => Class::Delivered,
            200..=299 => Class::Relayed,
            500..=599 => Class::Permanent,
            _ => Class::Temporary,
        };
        let want = match class {
            Class::Delivered | Class::Relayed => StatusClass::Success,
            Class::Temporary => StatusClass::Transient,
            Class::Permanent => StatusClass::Permanent,
        };
        let status = reply
            .lines
            .first()
            .and_then(|l| EnhancedStatus::at_start_of(l))
            .filter(|s| s.class == want)
            .unwrap_or(EnhancedStatus::undefined(want));
        RcptOutcome {
            rcpt,
            class,
            reply,
            status,
            mailer,
            relay,
            dsn_passed: false,
            expanded: false,
            expanded_to_multiple: false,
            no_host: false,
            looked_up: false,
            data_refused: false,
            cant_create: false,
            loops: None,
            exit: None,
            stat: None,
            notes: Vec::new(),
            diagnostic: None,
            logged_as: None,
            held_back: false,
        }
    }

    /// From an SMTP transaction's outcome for one recipient.
    pub fn from_smtp(rcpt: usize, o: Outcome, mailer: Mailer, relay: String) -> RcptOutcome {
        match o {
            // Nothing of the message went to the server: no relay to name.
            Outcome::Withheld(r) => {
                let mut o = RcptOutcome::new(rcpt, r, mailer, None);
                o.held_back = true;
                o
            }
            o => RcptOutcome::new(rcpt, o.reply().clone(), mailer, Some(relay)),
        }
    }

    /// A reply made up here (`451 4.4.1 ...`) for a recipient.
    pub fn local(
        rcpt: usize,
        code: u16,
        text: impl Into<String>,
        mailer: Mailer,
        relay: Option<String>,
    ) -> RcptOutcome {
        RcptOutcome::new(rcpt, Reply::local(code, text), mailer, relay)
    }

    pub fn is_success(&self) -> bool {
        matches!(self.class, Class::Delivered | Class::Relayed)
    }

    /// The reply as a reason: `code text` from a server, the text alone (sendmail's
    /// words) when it was made here for a remote recipient.
    pub fn reason(&self) -> String {
        if self.reply.local && self.mailer != Mailer::Local {
            self.reply.text_without_enhanced()
        } else {
            self.reply.summary()
        }
    }

    /// sendmail's `stat=` text (and its `-v` line after `addr... `): `Sent (text)`,
    /// `Deferred: code text`, or the permanent reply's `code text`.
    pub fn stat_text(&self) -> String {
        if let Some(stat) = &self.stat {
            return stat.clone();
        }
        match self.class {
            Class::Delivered | Class::Relayed => {
                format!("Sent ({})", self.reply.text_without_enhanced())
            }
            // A reason made up here reads as sendmail's, without a code
            // (`Deferred: Connection refused by [192.0.2.1]`); local delivery's keep it.
            // With no words at all, `Deferred` alone (a server known to refuse in this
            // run: `attempt::Conn`).
            Class::Temporary => match self.reason() {
                r if r.is_empty() => "Deferred".to_string(),
                r => format!("Deferred: {r}"),
            },
            Class::Permanent if self.loops.is_some() => LOCAL_CONFIG_ERROR.to_string(),
            Class::Permanent => self.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsendmail::status;

    #[test]
    fn class_and_status_from_the_reply() {
        let cases: &[(u16, &str, Mailer, Class, &str)] = &[
            (
                250,
                "2.0.0 Ok: queued as X",
                Mailer::Relay,
                Class::Relayed,
                "2.0.0",
            ),
            (250, "2.1.5 Ok", Mailer::Local, Class::Delivered, "2.1.5"),
            (250, "Ok", Mailer::Esmtp, Class::Relayed, "2.0.0"),
            (450, "4.2.0 busy", Mailer::Relay, Class::Temporary, "4.2.0"),
            (421, "closing", Mailer::Relay, Class::Temporary, "4.0.0"),
            (
                550,
                "5.1.1 <a@b>... User unknown",
                Mailer::Esmtp,
                Class::Permanent,
                "5.1.1",
            ),
            (554, "no", Mailer::Relay, Class::Permanent, "5.0.0"),
            // A status of another class than the code's is not taken.
            (550, "4.1.1 odd", Mailer::Relay, Class::Permanent, "5.0.0"),
            (199, "what", Mailer::Relay, Class::Temporary, "4.0.0"),
        ];
        for &(code, text, mailer, class, st) in cases {
            let o = RcptOutcome::local(0, code, text, mailer, None);
            assert_eq!(o.class, class, "{code} {text}");
            assert_eq!(o.status.to_string(), st, "{code} {text}");
        }
    }

    #[test]
    fn stat_text_as_sendmail_logs_it() {
        let sent = RcptOutcome::local(0, 250, "2.0.0 Ok: queued as X", Mailer::Relay, None);
        assert_eq!(sent.stat_text(), "Sent (Ok: queued as X)");
        let server = Reply {
            code: 451,
            lines: vec!["4.4.1 busy".into()],
            command: None,
            local: false,
            accepted_by: None,
        };
        let later = RcptOutcome::new(0, server, Mailer::Relay, None);
        assert_eq!(later.stat_text(), "Deferred: 451 4.4.1 busy");
        assert_eq!(later.status, status::NO_ANSWER);
        // A reason made up here, without the code, as sendmail words it; local
        // delivery's keep theirs.
        let refused = RcptOutcome::local(
            0,
            451,
            "4.4.1 Connection refused by [192.0.2.1]",
            Mailer::Relay,
            None,
        );
        assert_eq!(
            refused.stat_text(),
            "Deferred: Connection refused by [192.0.2.1]"
        );
        let nohost = RcptOutcome::local(
            0,
            550,
            "5.1.2 Host unknown (Name server: x: host not found)",
            Mailer::Esmtp,
            None,
        );
        assert_eq!(
            nohost.stat_text(),
            "Host unknown (Name server: x: host not found)"
        );
        let mailbox = RcptOutcome::local(0, 451, "4.2.0 locked", Mailer::Local, None);
        assert_eq!(mailbox.stat_text(), "Deferred: 451 4.2.0 locked");
        let no = RcptOutcome::new(
            0,
            Reply {
                code: 550,
                lines: vec!["5.1.1 unknown".into()],
                command: None,
                local: false,
                accepted_by: None,
            },
            Mailer::Relay,
            None,
        );
        assert_eq!(no.stat_text(), "550 5.1.1 unknown");
    }
}

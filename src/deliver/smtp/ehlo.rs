//! EHLO, and HELO when EHLO is refused (RFC 5321 §4.1.1.1): what the server offers.
//!
//! Only the keywords the client uses are read ([`Caps`]); unknown ones are ignored. The
//! EHLO reply is the server's text: its keywords are split on white space and never cut
//! by byte index (the lints below keep it so), so no reply makes the client panic. A
//! refused EHLO (but a 421) is followed by HELO and no extension is used; a 421, or a
//! refused HELO, is the session's failure.

#![deny(clippy::string_slice)]

use super::reply::Expect;
use super::{Reply, Session, State, Transcript};

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
    /// XVERP (Postfix's extension): the server makes each recipient's VERP sender
    /// itself from `MAIL FROM:<sender> XVERP=xy`.
    pub xverp: bool,
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
                "XVERP" => c.xverp = true,
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

impl Session {
    /// EHLO (HELO when refused); the extensions offered become [`Session::caps`]. `Ok`:
    /// the name the server gave for itself (the first word of its positive reply, as
    /// sendmail reads it for its loop check; empty when the reply has no text).
    pub(super) fn ehlo(
        &mut self,
        helo_name: &str,
        out: &mut Transcript<'_>,
    ) -> Result<String, Reply> {
        self.state = State::EhloReply;
        self.put(&format!("EHLO {helo_name}"), out)?;
        self.flush(self.timeouts.helo)?;
        let r = self.read_expect(self.timeouts.helo, out, Expect::Completion, "EHLO")?;
        if r.is_positive() {
            self.caps = Caps::from_ehlo(&r);
            Ok(server_name(&r))
        } else if r.code == 421 {
            Err(r)
        } else {
            self.state = State::HeloReply;
            self.put(&format!("HELO {helo_name}"), out)?;
            self.flush(self.timeouts.helo)?;
            let r = self.read_expect(self.timeouts.helo, out, Expect::Completion, "HELO")?;
            if !r.is_positive() {
                return Err(r);
            }
            self.caps = Caps::default();
            Ok(server_name(&r))
        }
    }
}

/// The first word of a reply's first line: the name a server gives itself in its
/// EHLO or HELO reply (`250-mx.example.org Hello ...`).
pub fn server_name(r: &Reply) -> String {
    r.lines
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn caps_parsed() {
        let r = Reply {
            command: None,
            local: false,
            accepted_by: None,
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

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_ehlo_reply_is_read(
                lines in proptest::collection::vec(any::<String>(), 0..6),
                keyword in "(SIZE|AUTH|PIPELINING|DSN|8BITMIME)( [^\r\n]{0,20})?",
            ) {
                let mut lines = lines;
                lines.push(keyword);
                let r = Reply { code: 250, lines, command: None, local: false, accepted_by: None };
                let c = Caps::from_ehlo(&r);
                prop_assert!(c.esmtp);
            }
        }
    }
}

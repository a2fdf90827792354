//! The ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2 `Mail-parameters`,
//! `Rcpt-parameters`): the client's `KEYWORD=value` words → typed values, or the reply
//! refusing them in sendmail 8.17's words.
//!
//! This module owns the keywords and the syntax of their values:
//! - MAIL: `SIZE` (RFC 1870), `BODY` (RFC 6152), `RET` and `ENVID` (RFC 3461 §4.3, §4.4),
//!   `SMTPUTF8` (RFC 6531 §3.4), `AUTH` (RFC 4954 §5), `XVERP` and `XVERP=xy` (Postfix's
//!   smtpd, VERP_README; [`crate::verp`]);
//! - RCPT: `NOTIFY` and `ORCPT` (RFC 3461 §4.1, §4.2);
//! - xtext (RFC 3461 §4), the encoding of ENVID, ORCPT and AUTH values.
//!
//! It does not judge a value against the session (SIZE against `MaxMessageSize` or the
//! free disk space): the session does, with the typed value.
//!
//! The words are read in order and the first refusal is the reply, as sendmail reads
//! them; keywords are case-insensitive, values are kept as written except where a
//! keyword's value is itself a keyword (`BODY=8bitmime`). A parameter of an extension
//! the server did not advertise is unrecognised (`555`, RFC 5321 §4.1.1.11): the server
//! advertises neither SMTPUTF8 nor AUTH, so today those two are refused like any
//! unknown keyword, and their own refusals below (not recorded from sendmail) are never
//! sent.
//!
//! Any text is accepted as input: values are only split with `split_once` and compared,
//! never cut by byte index, so no parameter makes the parser panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::fmt;

/// The extensions advertised in EHLO whose MAIL parameters are optional for the server
/// (SIZE, 8BITMIME and DSN are always advertised).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// AUTH (RFC 4954).
    pub auth: bool,
    /// DSN (RFC 3461) is not offered (`O PrivacyOptions=noreceipts`): its parameters
    /// get sendmail's `504 5.7.0 Sorry, RET not supported, we do not allow DSN`.
    pub no_dsn: bool,
    /// XVERP (Postfix's extension), offered to the clients the server relays for, as
    /// Postfix's `authorized_verp_clients = $mynetworks`.
    pub xverp: bool,
}

/// `BODY=` (RFC 6152).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

impl Body {
    /// The keyword as the queue file and the next hop take it.
    pub fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
        }
    }
}

/// `RET=` (RFC 3461 §4.3): what a failure report returns of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// `AUTH=` (RFC 4954 §5): who submitted the message, as the client vouches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `AUTH=<>`: the client does not know, or does not vouch.
    Unknown,
    /// The mailbox, xtext decoded.
    Mailbox(String),
}

/// The parameters of one MAIL command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=`; `None` also for a SIZE that is not a number, which sendmail ignores.
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub ret: Option<Ret>,
    /// `ENVID=`, xtext decoded: 1 to 100 octets.
    pub envid: Option<String>,
    pub smtputf8: bool,
    pub auth: Option<Auth>,
    /// `XVERP` (`Some(None)`: the server's delimiters) or `XVERP=xy` (`Some(Some("xy"))`,
    /// two characters from [`crate::verp::DELIMITER_FILTER`]): each recipient gets its
    /// own envelope sender. A later XVERP replaces an earlier one.
    pub xverp: Option<Option<String>>,
}

/// One `NOTIFY=` condition (RFC 3461 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyOn {
    Success,
    Failure,
    Delay,
}

impl NotifyOn {
    fn parse(word: &str) -> Option<NotifyOn> {
        match word.to_ascii_uppercase().as_str() {
            "SUCCESS" => Some(NotifyOn::Success),
            "FAILURE" => Some(NotifyOn::Failure),
            "DELAY" => Some(NotifyOn::Delay),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Success => "SUCCESS",
            NotifyOn::Failure => "FAILURE",
            NotifyOn::Delay => "DELAY",
        }
    }
}

/// `NOTIFY=` (RFC 3461 §4.1): `NEVER`, or the conditions in the order written (kept as
/// written, repeats included, so the next hop is told what this one was told).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notify {
    Never,
    On(Vec<NotifyOn>),
}

impl fmt::Display for Notify {
    /// The queue file's and the next hop's form: upper case, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notify::Never => f.write_str("NEVER"),
            Notify::On(on) => {
                for (i, w) in on.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(w.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// `ORCPT=` (RFC 3461 §4.2), xtext decoded: `addr-type ";" xtext`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orcpt {
    /// `rfc822`, `utf-8`, ... as written.
    pub addr_type: String,
    pub address: String,
}

impl fmt::Display for Orcpt {
    /// The queue file's and the next hop's form (before xtext encoding).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{}", self.addr_type, self.address)
    }
}

/// The parameters of one RCPT command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

/// Why a parameter is refused; [`fmt::Display`] is the whole reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// A keyword this server does not know or did not advertise, as written (sendmail
    /// names it so: `xverp parameter unrecognized`, compat-tests/cases/bs-xverp).
    Unrecognized(String),
    /// `BODY=` neither 7BIT nor 8BITMIME (the value as written).
    UnknownBody(String),
    DuplicateRet,
    BadRet(String),
    DuplicateEnvid,
    BadEnvid,
    /// A second `ORCPT=` in one RCPT (sendmail: `Duplicate ORCPT parameter`).
    DuplicateOrcpt,
    /// `SIZE=` with more digits than a 64-bit signed size holds (sendmail's `strtol`
    /// overflow: `552 5.2.3 Message size exceeds maximum value`; recorded: `bs-params-dup-orcpt-size`).
    SizeOverflow,
    BadNotify(String),
    BadOrcpt,
    /// `SMTPUTF8=...`: the keyword takes no value (RFC 6531 §3.4).
    SmtpUtf8Value,
    BadAuth,
    /// A DSN parameter (RET, ENVID, NOTIFY, ORCPT) when DSN is not offered.
    DsnRefused(String),
    /// `XVERP=` whose value is not two delimiters from `-=+` (the value as written).
    BadXverp(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unrecognized(k) => write!(f, "555 5.5.4 {k} parameter unrecognized"),
            ParamError::UnknownBody(v) => write!(f, "501 5.5.4 Unknown BODY type {v}"),
            ParamError::DuplicateRet => f.write_str("501 5.5.0 Duplicate RET parameter"),
            ParamError::BadRet(v) => write!(f, "501 5.5.2 Bad argument \"{v}\" to RET"),
            ParamError::DuplicateEnvid => f.write_str("501 5.5.0 Duplicate ENVID parameter"),
            ParamError::BadEnvid => f.write_str("501 5.5.4 Syntax error in ENVID parameter value"),
            ParamError::DuplicateOrcpt => f.write_str("501 5.5.0 Duplicate ORCPT parameter"),
            ParamError::SizeOverflow => f.write_str("552 5.2.3 Message size exceeds maximum value"),
            // sendmail's text, two blanks included.
            ParamError::BadNotify(v) => write!(f, "501 5.5.4 Bad argument \"{v}\"  to NOTIFY"),
            ParamError::BadOrcpt => f.write_str("501 5.5.4 Syntax error in ORCPT parameter value"),
            ParamError::SmtpUtf8Value => f.write_str("501 5.5.4 SMTPUTF8 takes no value"),
            ParamError::BadAuth => f.write_str("501 5.5.4 Syntax error in AUTH parameter value"),
            ParamError::DsnRefused(k) => {
                write!(f, "504 5.7.0 Sorry, {k} not supported, we do not allow DSN")
            }
            // Postfix's words (`XVERP needs two characters from -=+`), with the value.
            ParamError::BadXverp(v) => write!(
                f,
                "501 5.5.4 XVERP needs two characters from {} (got \"{v}\")",
                crate::verp::DELIMITER_FILTER
            ),
        }
    }
}

/// One parameter word: the keyword upper-cased, the keyword as written, and the value
/// after the first `=` (`None` without one).
fn keyword_value(word: &str) -> (String, &str, Option<&str>) {
    match word.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), k, Some(v)),
        None => (word.to_ascii_uppercase(), word, None),
    }
}

impl MailParams {
    /// Read MAIL's parameter words in order; the first refusal is the reply.
    pub fn parse(words: &[&str], offered: Offered) -> Result<MailParams, ParamError> {
        let mut p = MailParams::default();
        for word in words {
            let (k, written, value) = keyword_value(word);
            let v = value.unwrap_or("");
            match k.as_str() {
                // sendmail ignores a SIZE it cannot read (and a later SIZE wins), but
                // refuses one whose leading digits overflow its size.
                "SIZE" => {
                    let digits = v.strip_prefix('+').unwrap_or(v);
                    let end = digits
                        .bytes()
                        .position(|b| !b.is_ascii_digit())
                        .unwrap_or(digits.len());
                    let lead = digits.get(..end).unwrap_or_default();
                    if !lead.is_empty() && lead.parse::<i64>().is_err() {
                        return Err(ParamError::SizeOverflow);
                    }
                    p.size = v.parse().ok();
                }
                "BODY" => {
                    p.body = Some(match v.to_ascii_uppercase().as_str() {
                        "7BIT" => Body::SevenBit,
                        "8BITMIME" => Body::EightBitMime,
                        _ => return Err(ParamError::UnknownBody(v.to_string())),
                    });
                }
                "RET" | "ENVID" if offered.no_dsn => return Err(ParamError::DsnRefused(k)),
                // A second RET or ENVID is refused before its value is read.
                "RET" if p.ret.is_some() => return Err(ParamError::DuplicateRet),
                "ENVID" if p.envid.is_some() => return Err(ParamError::DuplicateEnvid),
                "RET" => {
                    p.ret = Some(match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err(ParamError::BadRet(v.to_string())),
                    });
                }
                "ENVID" => match xtext_decode(v) {
                    Some(e) if !e.is_empty() && e.len() <= 100 => p.envid = Some(e),
                    _ => return Err(ParamError::BadEnvid),
                },
                "SMTPUTF8" if offered.smtputf8 => match value {
                    None => p.smtputf8 = true,
                    Some(_) => return Err(ParamError::SmtpUtf8Value),
                },
                "AUTH" if offered.auth => {
                    p.auth = Some(match v {
                        "<>" => Auth::Unknown,
                        _ => match xtext_decode(v) {
                            Some(m) if !m.is_empty() => Auth::Mailbox(m),
                            _ => return Err(ParamError::BadAuth),
                        },
                    });
                }
                "XVERP" if offered.xverp => match value {
                    None => p.xverp = Some(None),
                    Some(d) if crate::verp::check_delimiters(d).is_ok() => {
                        p.xverp = Some(Some(d.to_string()));
                    }
                    Some(d) => return Err(ParamError::BadXverp(d.to_string())),
                },
                _ => return Err(ParamError::Unrecognized(written.to_string())),
            }
        }
        Ok(p)
    }
}

impl RcptParams {
    /// Read RCPT's parameter words in order; the first refusal is the reply. A later
    /// NOTIFY replaces an earlier one and a second ORCPT is refused, as in sendmail
    /// (recorded: `bs-params-dup-orcpt-size`).
    pub fn parse(words: &[&str]) -> Result<RcptParams, ParamError> {
        Self::parse_offered(words, Offered::default())
    }

    /// As [`RcptParams::parse`], with what EHLO offered: NOTIFY and ORCPT are refused
    /// when DSN is not ([`Offered::no_dsn`]).
    pub fn parse_offered(words: &[&str], offered: Offered) -> Result<RcptParams, ParamError> {
        let mut p = RcptParams::default();
        for word in words {
            let (k, written, value) = keyword_value(word);
            let v = value.unwrap_or("");
            match k.as_str() {
                "NOTIFY" | "ORCPT" if offered.no_dsn => return Err(ParamError::DsnRefused(k)),
                "NOTIFY" => p.notify = Some(notify(v)?),
                "ORCPT" if p.orcpt.is_some() => return Err(ParamError::DuplicateOrcpt),
                "ORCPT" => match xtext_decode(v).as_deref().and_then(|o| o.split_once(';')) {
                    Some((addr_type, address)) => {
                        p.orcpt = Some(Orcpt {
                            addr_type: addr_type.to_string(),
                            address: address.to_string(),
                        });
                    }
                    None => return Err(ParamError::BadOrcpt),
                },
                _ => return Err(ParamError::Unrecognized(written.to_string())),
            }
        }
        Ok(p)
    }
}

/// `NOTIFY=`: `NEVER` alone, or one or more of SUCCESS, FAILURE, DELAY.
fn notify(v: &str) -> Result<Notify, ParamError> {
    let bad = || ParamError::BadNotify(v.to_string());
    if v.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::Never);
    }
    // NEVER with other words: sendmail names the first word alone (its loop has cut
    // the value at each comma; recorded: `bs-dsn-bad-xtext`, `NEVER,SUCCESS` →
    // `Bad argument "NEVER"`).
    let words: Vec<&str> = v.split(',').collect();
    if words.len() > 1 && words.iter().any(|w| w.eq_ignore_ascii_case("NEVER")) {
        let first = words.first().copied().unwrap_or_default();
        return Err(ParamError::BadNotify(first.to_string()));
    }
    words
        .into_iter()
        .map(|w| NotifyOn::parse(w).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()
        .map(Notify::On)
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

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn mail(words: &str) -> Result<MailParams, String> {
        let words: Vec<&str> = words.split_ascii_whitespace().collect();
        MailParams::parse(&words, Offered::default()).map_err(|e| e.to_string())
    }

    /// PrivacyOptions=noreceipts: DSN is not offered, and each of its parameters gets
    /// sendmail's 504 (compat-tests/cases/bs-privacy-noreceipts); the others stay.
    #[test]
    fn dsn_parameters_when_dsn_is_not_offered() {
        let off = Offered {
            no_dsn: true,
            ..Offered::default()
        };
        for (words, kw) in [("RET=HDRS", "RET"), ("SIZE=1 envid=abc", "ENVID")] {
            let words: Vec<&str> = words.split_ascii_whitespace().collect();
            assert_eq!(
                MailParams::parse(&words, off)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(format!(
                    "504 5.7.0 Sorry, {kw} not supported, we do not allow DSN"
                ))
            );
        }
        assert!(MailParams::parse(&["BODY=8BITMIME", "SIZE=10"], off).is_ok());
        // An unknown keyword before it is refused as before.
        assert_eq!(
            MailParams::parse(&["FOO=1", "RET=FULL"], off)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("555 5.5.4 FOO parameter unrecognized".into())
        );
        for (word, kw) in [("NOTIFY=NEVER", "NOTIFY"), ("orcpt=rfc822;a@b", "ORCPT")] {
            assert_eq!(
                RcptParams::parse_offered(&[word], off)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(format!(
                    "504 5.7.0 Sorry, {kw} not supported, we do not allow DSN"
                ))
            );
            assert!(RcptParams::parse(&[word]).is_ok());
        }
    }

    fn mail_offered(words: &str) -> Result<MailParams, String> {
        let words: Vec<&str> = words.split_ascii_whitespace().collect();
        let all = Offered {
            smtputf8: true,
            auth: true,
            no_dsn: false,
            xverp: true,
        };
        MailParams::parse(&words, all).map_err(|e| e.to_string())
    }

    fn rcpt(words: &str) -> Result<RcptParams, String> {
        let words: Vec<&str> = words.split_ascii_whitespace().collect();
        RcptParams::parse(&words).map_err(|e| e.to_string())
    }

    #[test]
    fn mail_parameters() {
        let ok = |w: &str| mail(w).unwrap_or_else(|e| panic!("{w}: {e}"));
        assert_eq!(ok(""), MailParams::default());
        let p = ok("size=10 BODY=8bitmime ret=hdrs ENVID=a+2Bb");
        assert_eq!(p.size, Some(10));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("a+b"));
        assert_eq!(ok("BODY=7BIT").body.map(Body::as_str), Some("7BIT"));
        assert_eq!(ok("RET=Full").ret.map(Ret::as_str), Some("FULL"));
        // A SIZE that is not a number is ignored, and the last SIZE wins.
        assert_eq!(ok("SIZE=x").size, None);
        assert_eq!(ok("SIZE").size, None);
        assert_eq!(ok("SIZE=10 SIZE=x").size, None);
        assert_eq!(
            ok("SIZE=9223372036854775807").size,
            Some(9223372036854775807)
        );
        for overflow in ["SIZE=99999999999999999999", "SIZE=9223372036854775808x"] {
            assert_eq!(
                MailParams::parse(&[overflow], Offered::default())
                    .unwrap_err()
                    .to_string(),
                "552 5.2.3 Message size exceeds maximum value"
            );
        }
        assert_eq!(ok("SIZE=1 SIZE=2").size, Some(2));
        // A later BODY replaces an earlier one.
        assert_eq!(ok("BODY=7BIT BODY=8BITMIME").body, Some(Body::EightBitMime));
        assert_eq!(
            ok(&format!("ENVID={}", "x".repeat(100)))
                .envid
                .map(|e| e.len()),
            Some(100)
        );
    }

    #[test]
    fn mail_refusals_are_sendmails_replies() {
        for (words, reply) in [
            ("BODY=9BIT", "501 5.5.4 Unknown BODY type 9BIT"),
            ("BODY", "501 5.5.4 Unknown BODY type "),
            ("RET=x", "501 5.5.2 Bad argument \"x\" to RET"),
            ("RET=FULL RET=x", "501 5.5.0 Duplicate RET parameter"),
            ("ENVID=a ENVID=+zz", "501 5.5.0 Duplicate ENVID parameter"),
            ("ENVID=", "501 5.5.4 Syntax error in ENVID parameter value"),
            (
                "ENVID=a+2",
                "501 5.5.4 Syntax error in ENVID parameter value",
            ),
            (
                "ENVID=a=b",
                "501 5.5.4 Syntax error in ENVID parameter value",
            ),
            (
                "ENVID=+FF",
                "501 5.5.4 Syntax error in ENVID parameter value",
            ),
            (
                "ENVID=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "501 5.5.4 Syntax error in ENVID parameter value",
            ),
            ("x-foo=1", "555 5.5.4 x-foo parameter unrecognized"),
            ("=1", "555 5.5.4  parameter unrecognized"),
            ("NOTIFY=NEVER", "555 5.5.4 NOTIFY parameter unrecognized"),
            // Not advertised: unrecognised.
            ("SMTPUTF8", "555 5.5.4 SMTPUTF8 parameter unrecognized"),
            ("AUTH=<>", "555 5.5.4 AUTH parameter unrecognized"),
            // The first refusal is the reply.
            ("RET=x BODY=y", "501 5.5.2 Bad argument \"x\" to RET"),
            (
                "smtputf8 BODY=y",
                "555 5.5.4 smtputf8 parameter unrecognized",
            ),
        ] {
            assert_eq!(mail(words), Err(reply.to_string()), "{words}");
        }
    }

    #[test]
    fn offered_extensions() {
        let ok = |w: &str| mail_offered(w).unwrap_or_else(|e| panic!("{w}: {e}"));
        assert!(ok("SMTPUTF8").smtputf8);
        assert!(ok("smtputf8 BODY=8BITMIME").smtputf8);
        assert!(!ok("").smtputf8);
        assert_eq!(ok("AUTH=<>").auth, Some(Auth::Unknown));
        assert_eq!(
            ok("AUTH=bob+40example.org").auth,
            Some(Auth::Mailbox("bob@example.org".into()))
        );
        for (words, reply) in [
            ("SMTPUTF8=", "501 5.5.4 SMTPUTF8 takes no value"),
            ("SMTPUTF8=yes", "501 5.5.4 SMTPUTF8 takes no value"),
            ("AUTH", "501 5.5.4 Syntax error in AUTH parameter value"),
            ("AUTH=a+2", "501 5.5.4 Syntax error in AUTH parameter value"),
        ] {
            assert_eq!(mail_offered(words), Err(reply.to_string()), "{words}");
        }
    }

    /// XVERP (Postfix's smtpd): taken only when offered; `XVERP=` wants two delimiters
    /// from `-=+`; not offered, it is unrecognised as sendmail answers it, the keyword
    /// as written (compat-tests/cases/bs-xverp).
    #[test]
    fn xverp() {
        let ok = |w: &str| mail_offered(w).unwrap_or_else(|e| panic!("{w}: {e}"));
        assert_eq!(ok("").xverp, None);
        assert_eq!(ok("XVERP").xverp, Some(None));
        assert_eq!(ok("xverp").xverp, Some(None));
        assert_eq!(ok("XVERP=-=").xverp, Some(Some("-=".into())));
        assert_eq!(ok("SIZE=10 XVERP=+=").xverp, Some(Some("+=".into())));
        assert_eq!(ok("XVERP=-= XVERP").xverp, Some(None));
        for bad in ["", "ab", "+", "+=-", "+@", "é="] {
            assert_eq!(
                mail_offered(&format!("XVERP={bad}")),
                Err(format!(
                    "501 5.5.4 XVERP needs two characters from -=+ (got \"{bad}\")"
                )),
                "{bad}"
            );
        }
        assert_eq!(
            mail("xverp=ab"),
            Err("555 5.5.4 xverp parameter unrecognized".into())
        );
        assert_eq!(
            mail("XVERP"),
            Err("555 5.5.4 XVERP parameter unrecognized".into())
        );
        // Never a RCPT parameter.
        assert_eq!(
            rcpt("XVERP"),
            Err("555 5.5.4 XVERP parameter unrecognized".into())
        );
    }

    #[test]
    fn rcpt_parameters() {
        let ok = |w: &str| rcpt(w).unwrap_or_else(|e| panic!("{w}: {e}"));
        let notify = |w: &str| ok(w).notify.map(|n| n.to_string());
        assert_eq!(ok(""), RcptParams::default());
        assert_eq!(notify("NOTIFY=never").as_deref(), Some("NEVER"));
        assert_eq!(
            notify("NOTIFY=delay,Success").as_deref(),
            Some("DELAY,SUCCESS")
        );
        // Kept as written, repeats included; a later NOTIFY replaces an earlier one.
        assert_eq!(
            notify("NOTIFY=FAILURE,FAILURE").as_deref(),
            Some("FAILURE,FAILURE")
        );
        assert_eq!(
            notify("NOTIFY=NEVER NOTIFY=DELAY").as_deref(),
            Some("DELAY")
        );
        assert_eq!(
            rcpt("ORCPT=rfc822;a@example.org ORCPT=rfc822;b@example.org").unwrap_err(),
            "501 5.5.0 Duplicate ORCPT parameter"
        );
        let orcpt = ok("ORCPT=rfc822;a+2Bb@x").orcpt.expect("ORCPT");
        assert_eq!(
            (orcpt.addr_type.as_str(), orcpt.address.as_str()),
            ("rfc822", "a+b@x")
        );
        assert_eq!(orcpt.to_string(), "rfc822;a+b@x");
        assert_eq!(
            ok("ORCPT=;").orcpt.map(|o| o.to_string()).as_deref(),
            Some(";")
        );
        for (words, reply) in [
            ("NOTIFY", "501 5.5.4 Bad argument \"\"  to NOTIFY"),
            ("NOTIFY=", "501 5.5.4 Bad argument \"\"  to NOTIFY"),
            (
                "NOTIFY=NEVER,DELAY",
                "501 5.5.4 Bad argument \"NEVER\"  to NOTIFY",
            ),
            (
                "NOTIFY=SUCCESS,",
                "501 5.5.4 Bad argument \"SUCCESS,\"  to NOTIFY",
            ),
            (
                "NOTIFY=sometimes",
                "501 5.5.4 Bad argument \"sometimes\"  to NOTIFY",
            ),
            (
                "ORCPT=a@b",
                "501 5.5.4 Syntax error in ORCPT parameter value",
            ),
            (
                "ORCPT=rfc822;a+zz",
                "501 5.5.4 Syntax error in ORCPT parameter value",
            ),
            ("SIZE=1", "555 5.5.4 SIZE parameter unrecognized"),
            (
                "NOTIFY=x ORCPT=y",
                "501 5.5.4 Bad argument \"x\"  to NOTIFY",
            ),
        ] {
            assert_eq!(rcpt(words), Err(reply.to_string()), "{words}");
        }
    }

    #[test]
    fn xtext() {
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
        assert_eq!(xtext_decode("").as_deref(), Some(""));
        // Decoded bytes that are not UTF-8.
        assert_eq!(xtext_decode("+C3"), None);
        assert_eq!(xtext_decode("+C3+A9").as_deref(), Some("é"));
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// One parameter word, well-formed or not: the known keywords in any case with
        /// values near their syntax, and anything else.
        fn word() -> impl Strategy<Value = String> {
            prop_oneof![
                "(?i:size)(=[0-9]{0,22}|=[^ \t\r\n]{0,5})?",
                "(?i:body)(=(?i:7bit|8bitmime|[^ \t\r\n]{0,5}))?",
                "(?i:ret)(=(?i:full|hdrs|[^ \t\r\n]{0,5}))?",
                "(?i:envid|orcpt|auth)(=[!-~]{0,110}|=[^ \t\r\n]{0,10})?",
                "(?i:notify)(=((?i:never|success|failure|delay|x),?){0,4})?",
                "(?i:smtputf8)(=[^ \t\r\n]{0,3})?",
                "(?i:xverp)(=[-=+]{0,3}|=[^ \t\r\n]{0,3})?",
                "[^ \t\r\n]{1,20}",
            ]
        }

        /// A reply: three digits, a blank, no line end.
        fn is_reply(r: &str) -> bool {
            r.len() > 4
                && r.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && r.as_bytes()[3] == b' '
                && !r.contains(['\r', '\n'])
        }

        proptest! {
            #[test]
            fn any_words_are_parsed_or_refused_with_a_reply(
                words in vec(word(), 0..6),
                smtputf8 in any::<bool>(),
                auth in any::<bool>(),
            ) {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                match MailParams::parse(&words, Offered { smtputf8, auth, no_dsn: false, xverp: true }) {
                    Ok(p) => {
                        if let Some(e) = &p.envid {
                            prop_assert!(!e.is_empty() && e.len() <= 100);
                        }
                        prop_assert!(!p.smtputf8 || smtputf8);
                        prop_assert!(p.auth.is_none() || auth);
                        // Parsing is per word: each word alone is taken too.
                        for w in &words {
                            let alone = MailParams::parse(&[w], Offered { smtputf8, auth, no_dsn: false, xverp: true });
                            prop_assert!(alone.is_ok(), "{:?}", w);
                        }
                    }
                    Err(e) => {
                        let r = e.to_string();
                        prop_assert!(is_reply(&r), "{:?}", r);
                        // 552: a SIZE too large for any size (sendmail's words).
                        prop_assert!(
                            r.starts_with("501 ") || r.starts_with("555 ") || r.starts_with("552 "),
                            "{:?}",
                            r
                        );
                    }
                }
                match RcptParams::parse(&words) {
                    Ok(p) => {
                        // What is queued reads back as what was parsed.
                        if let Some(n) = &p.notify {
                            let again = format!("NOTIFY={n}");
                            prop_assert_eq!(RcptParams::parse(&[&again]).map(|q| q.notify), Ok(Some(n.clone())));
                        }
                        if let Some(o) = &p.orcpt {
                            prop_assert!(!o.addr_type.contains(';'));
                        }
                    }
                    Err(e) => prop_assert!(is_reply(&e.to_string()), "{:?}", e),
                }
            }

            #[test]
            fn xtext_takes_any_text(s in "[\\PC\r\n\t\x00\u{85}]{0,40}|[!-~]{0,40}") {
                if let Some(d) = xtext_decode(&s) {
                    prop_assert!(s.bytes().all(|b| (33..=126).contains(&b) && b != b'='));
                    prop_assert!(d.len() <= s.len());
                }
            }
        }
    }
}

//! Enhanced mail system status codes (RFC 3463): `class.subject.detail`, as carried by
//! SMTP replies (RFC 2034), delivery status notifications (RFC 3464 §2.3.4) and logs.
//!
//! A reply's text is parsed once into an [`EnhancedStatus`]; what follows (the record of
//! an attempt, a delivery report, a log line) uses the typed value. The statuses
//! rsendmail itself gives are the constants below, named for their RFC 3463 meaning.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::fmt;

/// RFC 3463 §3.1: the class of a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    /// 2: success.
    Success,
    /// 4: persistent transient failure.
    Transient,
    /// 5: permanent failure.
    Permanent,
}

impl StatusClass {
    pub fn digit(self) -> u8 {
        match self {
            StatusClass::Success => 2,
            StatusClass::Transient => 4,
            StatusClass::Permanent => 5,
        }
    }
}

/// `class.subject.detail` (RFC 3463 §2): subject and detail are 1 to 3 digits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnhancedStatus {
    pub class: StatusClass,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedStatus {
    pub const fn new(class: StatusClass, subject: u16, detail: u16) -> EnhancedStatus {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }

    /// X.0.0: the status of a reply or outcome that carries none, by its class.
    pub const fn undefined(class: StatusClass) -> EnhancedStatus {
        EnhancedStatus::new(class, 0, 0)
    }

    /// One word, `5.1.1`; None unless it has exactly RFC 3463's form.
    pub fn parse(word: &str) -> Option<EnhancedStatus> {
        let mut parts = word.split('.');
        let (Some(c), Some(s), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let class = match c {
            "2" => StatusClass::Success,
            "4" => StatusClass::Transient,
            "5" => StatusClass::Permanent,
            _ => return None,
        };
        let num = |p: &str| -> Option<u16> {
            (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        Some(EnhancedStatus::new(class, num(s)?, num(d)?))
    }

    /// The status at the start of a reply's text (`5.1.1 <a@b>... User unknown`), if any.
    pub fn at_start_of(text: &str) -> Option<EnhancedStatus> {
        EnhancedStatus::parse(text.split(' ').next()?)
    }

    /// The same subject and detail in another class (4.4.1 for a 5.4.1 that is only
    /// a deferral for the message).
    pub const fn with_class(self, class: StatusClass) -> EnhancedStatus {
        EnhancedStatus::new(class, self.subject, self.detail)
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class.digit(), self.subject, self.detail)
    }
}

use StatusClass::{Permanent, Success, Transient};

/// 2.0.0 Other or undefined success.
pub const OK: EnhancedStatus = EnhancedStatus::undefined(Success);
/// 4.0.0 Other or undefined transient failure.
pub const TEMP: EnhancedStatus = EnhancedStatus::undefined(Transient);
/// 5.0.0 Other or undefined permanent failure.
pub const PERM: EnhancedStatus = EnhancedStatus::undefined(Permanent);
/// 2.1.5 Destination address valid (RFC 3463 §3.2): what sendmail reports for a
/// recipient relayed to a server without DSN.
pub const VALID_ADDRESS: EnhancedStatus = EnhancedStatus::new(StatusClass::Success, 1, 5);
/// 5.1.0 Other address status (RFC 3463 §3.2).
pub const ADDRESS_PERM: EnhancedStatus = EnhancedStatus::new(Permanent, 1, 0);
/// 5.1.1 Bad destination mailbox address.
pub const BAD_MAILBOX: EnhancedStatus = EnhancedStatus::new(Permanent, 1, 1);
/// 5.1.2 Bad destination system address.
pub const BAD_SYSTEM: EnhancedStatus = EnhancedStatus::new(Permanent, 1, 2);
/// 5.1.3 Bad destination mailbox address syntax.
pub const BAD_MAILBOX_SYNTAX: EnhancedStatus = EnhancedStatus::new(Permanent, 1, 3);
/// 5.1.10 Recipient address has null MX (RFC 7505 §4.2).
pub const NULL_MX: EnhancedStatus = EnhancedStatus::new(Permanent, 1, 10);
/// 4.2.0 Other or undefined mailbox status.
pub const MAILBOX_TEMP: EnhancedStatus = EnhancedStatus::new(Transient, 2, 0);
/// 5.2.0 Other or undefined mailbox status.
pub const MAILBOX_PERM: EnhancedStatus = EnhancedStatus::new(Permanent, 2, 0);
/// 4.2.1 Mailbox disabled, not accepting messages.
pub const MAILBOX_DISABLED: EnhancedStatus = EnhancedStatus::new(Transient, 2, 1);
/// 5.2.4: a mailing list that cannot be expanded (RFC 3463 §3.3; an `:include:` that is
/// not an absolute path, or one anyone may write).
pub const LIST_EXPANSION: EnhancedStatus = EnhancedStatus::new(Permanent, 2, 4);
/// 4.2.2 Mailbox full: no room for the message (a full disk, a quota, a file-size limit).
pub const MAILBOX_FULL: EnhancedStatus = EnhancedStatus::new(Transient, 2, 2);
/// 4.3.0 Other or undefined mail system status (a local failure to try again).
pub const SYSTEM_TEMP: EnhancedStatus = EnhancedStatus::new(Transient, 3, 0);
/// 5.3.0 Other or undefined mail system status.
pub const SYSTEM_PERM: EnhancedStatus = EnhancedStatus::new(Permanent, 3, 0);
/// 5.3.5 System incorrectly configured.
pub const MISCONFIGURED: EnhancedStatus = EnhancedStatus::new(Permanent, 3, 5);
/// 4.4.0 Other or undefined network or routing status.
pub const NETWORK_TEMP: EnhancedStatus = EnhancedStatus::new(Transient, 4, 0);
/// 4.4.1 No answer from host.
pub const NO_ANSWER: EnhancedStatus = EnhancedStatus::new(Transient, 4, 1);
/// 4.4.2 Bad connection.
pub const BAD_CONNECTION: EnhancedStatus = EnhancedStatus::new(Transient, 4, 2);
/// 4.4.5 System congestion (no connection may be opened to the host now).
pub const CONGESTION: EnhancedStatus = EnhancedStatus::new(Transient, 4, 5);
/// 4.4.3 Directory server failure (DNS).
pub const DIRECTORY_TEMP: EnhancedStatus = EnhancedStatus::new(Transient, 4, 3);
/// 5.4.6 Routing loop detected.
pub const LOOP: EnhancedStatus = EnhancedStatus::new(Permanent, 4, 6);
/// 4.4.7 Delivery time expired.
pub const EXPIRED: EnhancedStatus = EnhancedStatus::new(Transient, 4, 7);
/// 4.5.0 Other or undefined protocol status.
pub const PROTOCOL_TEMP: EnhancedStatus = EnhancedStatus::new(Transient, 5, 0);
/// 5.5.0 Other or undefined protocol status.
pub const PROTOCOL_PERM: EnhancedStatus = EnhancedStatus::new(Permanent, 5, 0);
/// 5.6.0 Other or undefined media error.
pub const MEDIA_PERM: EnhancedStatus = EnhancedStatus::new(Permanent, 6, 0);
/// 5.6.7 Non-ASCII addresses not permitted for that sender or recipient (RFC 6531).
pub const NON_ASCII_ADDRESS: EnhancedStatus = EnhancedStatus::new(Permanent, 6, 7);
/// 4.7.0 Other or undefined security status.
pub const SECURITY_TEMP: EnhancedStatus = EnhancedStatus::new(Transient, 7, 0);
/// 5.7.0 Other or undefined security status.
pub const SECURITY_PERM: EnhancedStatus = EnhancedStatus::new(Permanent, 7, 0);
/// 5.7.1 Delivery not authorized, message refused.
pub const NOT_AUTHORIZED: EnhancedStatus = EnhancedStatus::new(Permanent, 7, 1);
/// 4.7.4 Security features not supported.
pub const SECURITY_UNSUPPORTED: EnhancedStatus = EnhancedStatus::new(Transient, 7, 4);
/// 4.7.5 Cryptographic failure.
pub const CRYPTO_FAILURE: EnhancedStatus = EnhancedStatus::new(Transient, 7, 5);

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_rfc3463_form_only() {
        assert_eq!(EnhancedStatus::parse("5.1.1"), Some(BAD_MAILBOX));
        assert_eq!(EnhancedStatus::parse("4.4.7"), Some(EXPIRED));
        assert_eq!(
            EnhancedStatus::parse("2.123.999").map(|s| s.to_string()),
            Some("2.123.999".into())
        );
        for bad in [
            "", "5", "5.1", "5.1.1.1", "3.1.1", "5..1", "5.1.", "5.1234.1", "5.a.1", "05.1.1",
            "5.1.1,", "+5.1.1", "5.-1.1",
        ] {
            assert_eq!(EnhancedStatus::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            EnhancedStatus::at_start_of("5.1.1 <a@b>... User unknown"),
            Some(BAD_MAILBOX)
        );
        assert_eq!(EnhancedStatus::at_start_of("User unknown 5.1.1"), None);
        assert_eq!(LOOP.with_class(StatusClass::Transient).to_string(), "4.4.6");
    }

    proptest! {
        #[test]
        fn any_text_parses_or_not_without_panic(s in any::<String>()) {
            let _ = EnhancedStatus::at_start_of(&s);
        }

        #[test]
        fn display_round_trips(c in prop::sample::select(vec![2u8, 4, 5]), s in 0u16..1000, d in 0u16..1000) {
            let text = format!("{c}.{s}.{d}");
            let parsed = EnhancedStatus::parse(&text).unwrap();
            prop_assert_eq!(parsed.to_string(), text);
        }
    }
}

//! VERP, variable envelope return paths (qmail's and Postfix's form): each recipient of
//! a message gets an envelope sender that names it, so that a bounce says by its address
//! alone which recipient failed. With the delimiters `+=`, the sender
//! `list-bounces@list.example` becomes `list-bounces+user=example.org@list.example` for
//! the recipient `user@example.org` (Postfix's `verp_sender`, VERP_README; D. J.
//! Bernstein's verp.txt).
//!
//! Requested per message with `-XV` / `-XVxy` (Postfix's sendmail(1)) or for every
//! message with `O Verp=true`; the delimiters are `O VerpDelimiters=` (`+=`, Postfix's
//! `default_verp_delimiters`). The request is kept in the queue file (`verp xy`), so a
//! queue run sends as the submission asked.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

/// The delimiters used when none are given (Postfix's `default_verp_delimiters`).
pub const DEFAULT_DELIMITERS: &str = "+=";

/// The characters a delimiter may be (Postfix's `verp_delimiter_filter`): none of them
/// has a meaning in an address or is part of a user or domain name.
pub const DELIMITER_FILTER: &str = "-=+";

/// Whether `d` is a pair of delimiters: exactly two characters, each from
/// [`DELIMITER_FILTER`]. `Err` says what is wrong, in Postfix's words.
pub fn check_delimiters(d: &str) -> Result<(), String> {
    if d.chars().count() == 2 && d.chars().all(|c| DELIMITER_FILTER.contains(c)) {
        Ok(())
    } else {
        Err(format!(
            "VERP delimiters must be two characters from {DELIMITER_FILTER} (got \"{}\")",
            crate::text::printable(d)
        ))
    }
}

/// The envelope sender for `recipient` of a message from `sender`, with the delimiters
/// `delims` (two characters, [`check_delimiters`]): `prefix@origin` and `user@domain`
/// give `prefix<d1>user<d2>domain@origin`. A recipient without a domain adds its local
/// part alone; the null sender stays null (there is nowhere to encode it).
///
/// Built from what the local parts say (their quotes and escapes taken away, split at
/// the last `@` outside quotes), as Postfix builds it from its internal form, and
/// written again as an RFC 5321 Mailbox: a local part that is not a Dot-string is
/// quoted whole (`"q x"@d.example` and `list-bounces@l.example` give
/// `"list-bounces+q x=d.example"@l.example`; `a..b@d.example` gives
/// `"list-bounces+a..b=d.example"@l.example`).
///
/// A recipient's domain with U-labels is encoded as its A-labels (`u@ü.example` gives
/// `l+u=xn--tda.example@o.example`, [`crate::message::address::ascii_domain`]): the same
/// mailbox, and a sender a server without SMTPUTF8 (RFC 6531) takes, as it takes the
/// recipient itself; a domain with no A-label form stays as written.
///
/// A VERP local part longer than RFC 5321's 64 octets ([`MAX_LOCAL_PART`], §4.5.3.1.1;
/// a long recipient address) is not made: the sender stays `sender` as given, so that
/// no server refuses the message for its sender (Postfix sends the long form as it is).
/// The message is delivered; a report on the recipient comes to the list's own bounce
/// address, naming the recipient in its `Final-Recipient:` field. [`overlong`] says
/// when this happens, for the log and `-v`.
pub fn sender(sender: &str, delims: &str, recipient: &str) -> String {
    match build(sender, delims, recipient) {
        Some((local, _)) if local.len() > MAX_LOCAL_PART => sender.to_string(),
        Some((mut out, origin)) => {
            if let Some(o) = origin {
                out.push('@');
                out.push_str(o);
            }
            out
        }
        None => String::new(),
    }
}

/// The longest local part RFC 5321 lets a server refuse no mailbox for (§4.5.3.1.1), in
/// octets as written on the wire (quotes and escapes counted).
pub const MAX_LOCAL_PART: usize = 64;

/// The length in octets of the VERP local part [`sender`] would make for `recipient`,
/// when it is over [`MAX_LOCAL_PART`] (and [`sender`] keeps the plain sender instead).
pub fn overlong(sender: &str, delims: &str, recipient: &str) -> Option<usize> {
    build(sender, delims, recipient)
        .map(|(local, _)| local.len())
        .filter(|&n| n > MAX_LOCAL_PART)
}

/// The VERP local part, written as RFC 5321 writes it (quoted when it must be), and the
/// sender's domain; `None` for the null sender.
fn build<'s>(sender: &'s str, delims: &str, recipient: &str) -> Option<(String, Option<&'s str>)> {
    use crate::message::address::{local_content, quote_local, split_at_domain};
    if sender.is_empty() {
        return None;
    }
    let mut d = delims.chars();
    let (first, second) = match (d.next(), d.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => ('+', '='),
    };
    let (prefix, origin) = split_at_domain(sender);
    let (user, domain) = split_at_domain(recipient);
    let user = local_content(user);
    let mut local = local_content(prefix);
    if !user.is_empty() {
        local.push(first);
        local.push_str(&user);
        if let Some(d) = domain.filter(|d| !d.is_empty()) {
            local.push(second);
            match crate::message::address::ascii_domain(d) {
                Some(a) => local.push_str(&a),
                None => local.push_str(d),
            }
        }
    }
    Some((quote_local(&local), origin.filter(|o| !o.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_as_postfix_makes_them() {
        let s = |snd: &str, d: &str, r: &str| sender(snd, d, r);
        assert_eq!(
            s("list-bounces@list.example", "+=", "user@example.org"),
            "list-bounces+user=example.org@list.example"
        );
        assert_eq!(
            s("owner-l@h.example", "-=", "a.b@c.example"),
            "owner-l-a.b=c.example@h.example"
        );
        assert_eq!(s("root", "+=", "u@d.example"), "root+u=d.example");
        assert_eq!(s("l@o.example", "+=", "bob"), "l+bob@o.example");
        assert_eq!(s("", "+=", "u@d.example"), "");
        // A U-label domain is encoded as its A-labels: the sender stays ASCII, as the
        // recipient sent to a server without SMTPUTF8 does.
        assert_eq!(
            s("l@o.example", "+=", "user@\u{fc}.example"),
            "l+user=xn--tda.example@o.example"
        );
        assert_eq!(
            s("l@o.example", "+=", "user@b\u{fc}cher.example"),
            "l+user=xn--bcher-kva.example@o.example"
        );
        // The last @ outside quotes splits; a local part that is no Dot-string is
        // quoted whole, in the sender and in the recipient, so that the result is
        // an RFC 5321 Mailbox.
        for (snd, rcpt, want) in [
            (
                "l@o.example",
                "\"a@b\"@d.example",
                "\"l+a@b=d.example\"@o.example",
            ),
            (
                "l@o.example",
                "\"a..b\"@d.example",
                "\"l+a..b=d.example\"@o.example",
            ),
            (
                "l@o.example",
                "\"q x\"@d.example",
                "\"l+q x=d.example\"@o.example",
            ),
            (
                "l@o.example",
                "\"q\\\"x\"@d.example",
                "\"l+q\\\"x=d.example\"@o.example",
            ),
            (
                "l@o.example",
                "\"plain\"@d.example",
                "l+plain=d.example@o.example",
            ),
            (
                "l@o.example",
                "a\\ b@d.example",
                "\"l+a b=d.example\"@o.example",
            ),
            (
                "\"list bounces\"@o.example",
                "v1@d.example",
                "\"list bounces+v1=d.example\"@o.example",
            ),
            (
                "\"l@x\"@o.example",
                "v@d.example",
                "\"l@x+v=d.example\"@o.example",
            ),
            (
                "\".l\"@o.example",
                "v@d.example",
                "\".l+v=d.example\"@o.example",
            ),
            ("\"q x\"", "v@d.example", "\"q x+v=d.example\""),
        ] {
            let got = s(snd, "+=", rcpt);
            assert_eq!(got, want, "{snd} {rcpt}");
            assert!(crate::message::address::is_rfc5321(&got), "{got}");
        }
        // Non-ASCII text is never cut inside a character; the recipient's domain is
        // written in A-labels.
        assert_eq!(s("ä@ö", "+=", "ü@é"), "ä+ü=xn--9ca@ö");
    }

    #[test]
    fn a_local_part_over_64_octets_keeps_the_plain_sender() {
        // list-bounces+ (13) + 39 + = (1) + example.org (11): 64 octets, made.
        let user = "u".repeat(39);
        let r = format!("{user}@example.org");
        let want = format!("list-bounces+{user}=example.org@list.example");
        assert_eq!(sender("list-bounces@list.example", "+=", &r), want);
        assert_eq!(overlong("list-bounces@list.example", "+=", &r), None);
        // One more: 65, not made.
        let r = format!("{user}u@example.org");
        assert_eq!(
            sender("list-bounces@list.example", "+=", &r),
            "list-bounces@list.example"
        );
        assert_eq!(overlong("list-bounces@list.example", "+=", &r), Some(65));
        // Quotes count, as they are written on the wire: 62 characters, 64 quoted.
        let r = format!("\"{} x\"@d.example", "q".repeat(48));
        assert_eq!(overlong("l@o.example", "+=", &r), None);
        let r = format!("\"{} x\"@d.example", "q".repeat(50));
        assert_eq!(overlong("l@o.example", "+=", &r), Some(66));
        assert_eq!(sender("l@o.example", "+=", &r), "l@o.example");
        assert_eq!(overlong("", "+=", &r), None);
    }

    #[test]
    fn delimiters_are_two_from_the_filter() {
        for good in ["+=", "-=", "==", "+-"] {
            assert!(check_delimiters(good).is_ok(), "{good}");
        }
        for bad in ["", "+", "+=-", "ab", "+@", "%=", "é="] {
            assert!(check_delimiters(bad).is_err(), "{bad}");
        }
    }
}

//! A MAIL or RCPT path as the client wrote it (RFC 5321 §4.1.2 `Reverse-path`,
//! `Forward-path`): where the path ends and its parameters begin, the angle brackets,
//! the source route, and the one address inside.
//!
//! This module owns the syntax of the argument after `MAIL FROM:` and `RCPT TO:`; the
//! parameters after the path are [`super::params`]', the address rules
//! [`crate::message::address`]'s. A refusal names the path as written, as sendmail's do.
//! The client's text is only cut with `get`, `split_once` and at positions found in the
//! same text, so no argument makes it panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::message::address;

/// A MAIL or RCPT path as the client wrote it.
pub(super) struct Path<'t> {
    /// The path as written (`<a@b>`), for the reply.
    pub written: &'t str,
    /// Inside the angle brackets, source route dropped; `None` for `<>`.
    pub address: Option<String>,
    /// The source route dropped (`@a,@b`), if the path had one: RFC 5321 §4.1.1.2
    /// and §4.1.1.3 say a server SHOULD ignore it (Appendix C), as sendmail 8.17 does
    /// (compat-tests/cases/bs-source-route); the session logs it.
    pub route: Option<&'t str>,
    pub params: Vec<&'t str>,
}

/// Why a path is refused before its address is looked at.
pub(super) enum PathError {
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
/// §3.3) is dropped (and given back in [`Path::route`]), and a route with no mailbox after it (`<@a:>`, `<@a>`) is `User
/// address required`, never the null path. A path without brackets (`FROM:root`) runs
/// to the first blank, as sendmail takes it.
pub(super) fn split_path<'t>(arg: &'t str, keyword: &str) -> Result<Path<'t>, PathError> {
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
        // The path ends at the `>` that closes its first `<`: `<<a@x>>` is one path
        // (a nested `<` is refused as on the command line), and a quote left open
        // is the unbalanced character (`<"a@x>`: `Unbalanced '"'`, as sendmail says;
        // recorded: `bs-rcpt-malformed`).
        let mut q = address::Quoting::default();
        let mut depth = 0usize;
        let mut nested = false;
        let close = rest
            .char_indices()
            .find(|&(_, c)| {
                if !q.plain(c) {
                    return false;
                }
                match c {
                    '<' => {
                        depth += 1;
                        nested |= depth > 1;
                        false
                    }
                    '>' => {
                        depth = depth.saturating_sub(1);
                        depth == 0
                    }
                    _ => false,
                }
            })
            .map(|(i, _)| i + 1);
        match close {
            Some(e) if nested => {
                let written = rest.get(..e).unwrap_or(rest).to_string();
                return Err(PathError::Invalid(written, address::Invalid::NestedAngle));
            }
            // A `>` right after the one that closes the path closes nothing:
            // sendmail's `<a@x>>... Unbalanced '>'` (recorded: `bs-rcpt-stray`), not a
            // parameter named `>`.
            Some(e) if rest.get(e..).is_some_and(|after| after.starts_with('>')) => {
                let to = rest
                    .get(e..)
                    .and_then(|after| after.find(' '))
                    .map_or(rest.len(), |blank| e + blank);
                let written = rest.get(..to).unwrap_or(rest).to_string();
                return Err(PathError::Invalid(
                    written,
                    address::Invalid::Unbalanced('>'),
                ));
            }
            Some(e) => e,
            None => {
                // The rest of the line, as sendmail shows it (`<bad address <`).
                let written = rest.trim_end().to_string();
                let open = if q.quoted { '"' } else { '<' };
                return Err(PathError::Invalid(
                    written,
                    address::Invalid::Unbalanced(open),
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
    let mut route = None;
    let address = if inner.trim_matches(' ') == "@" {
        // A lone `@`, blanks aside: sendmail's `<@>... List:; syntax illegal for
        // recipient addresses` (recorded: `bs-mail-path-at`, `bs-rcpt-path-odd`,
        // `bs-rcpt-at-angle`).
        return Err(PathError::Invalid(
            written.to_string(),
            address::Invalid::EmptyGroup,
        ));
    } else if inner.starts_with('@') {
        let (r, after) = strip_route(inner);
        if after.starts_with('@') || plain_ats(after) > 1 {
            // What is left is no mailbox: `<@:u@x>`, `<@a,@:u@x>`, `<@a,,@b:u@x>`,
            // `<@a u@x>` (sendmail 8.17's `553 5.1.3 ... Invalid route address`;
            // recorded: `bs-source-route-malformed-*`), or nothing at all (`<@a:>`,
            // `<@a>`: `User address required`, recorded: `bs-source-route`).
            let why = if plain_ats(after) > 1 || after.contains(',') {
                address::Invalid::InvalidRoute
            } else {
                address::Invalid::UserRequired
            };
            return Err(PathError::Invalid(written.to_string(), why));
        }
        route = Some(r);
        Some(after.to_string())
    } else if inner.is_empty() {
        None
    } else {
        Some(inner.to_string())
    };
    Ok(Path {
        written,
        address,
        route,
        params: params.split_ascii_whitespace().collect(),
    })
}

/// A source route taken off the front of `inner` (which begins with `@`) as sendmail
/// 8.17's ruleset 3 takes it (`R@ $+ , $+`, `R@ [ $* ] : $+`, `R@ $+ : $+`): first each
/// `@hop,` with something between its `@` and the comma, then each `@[literal]:`, then
/// each `@hop:` with something between its `@` and the colon; each hop ends at the first
/// comma or colon after it. (the route, what follows it). A route whose hops are not
/// host names (`@relay..example:`, `@[1.2.3]:`, `@-a:`) is still taken off, as
/// sendmail takes it: it is never used (RFC 5321 Appendix C). What is left begins with
/// `@` when a hop is empty (`@:u@x`, `@a,@:u@x`).
fn strip_route(inner: &str) -> (&str, &str) {
    let mut rest = inner;
    // `@ $+ , $+`: the first comma that has at least one character before it, after
    // the `@`, and one after it.
    while let Some(after_at) = rest.strip_prefix('@') {
        match after_at
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == ',')
            .and_then(|(i, _)| after_at.get(i + 1..))
        {
            Some(next) if !next.is_empty() => rest = next,
            _ => break,
        }
    }
    while let Some(after_at) = rest.strip_prefix('@') {
        let next = if after_at.starts_with('[') {
            after_at
                .split_once("]:")
                .map(|(_, n)| n)
                .filter(|n| !n.is_empty())
        } else {
            None
        };
        let next = next.or_else(|| {
            after_at
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ':')
                .and_then(|(i, _)| after_at.get(i + 1..))
                .filter(|n| !n.is_empty())
        });
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let route_len = inner.len() - rest.len();
    let route = inner
        .get(..route_len)
        .map(|r| r.strip_suffix([',', ':']).unwrap_or(r))
        .unwrap_or("");
    (route, rest)
}

/// How many `@` outside quoted strings and escapes `text` holds.
fn plain_ats(text: &str) -> usize {
    let mut q = address::Quoting::default();
    text.chars().filter(|&c| q.plain(c) && c == '@').count()
}

/// The address of a MAIL or RCPT path, parsed and checked. A CR inside the path (the
/// line's own CRLF is gone; RFC 5321 §2.3.8 allows CR only there) is refused as the
/// control character it is, rather than read as the white space it is in a header field.
pub(super) fn checked_path(path: &str) -> Result<String, address::Invalid> {
    match path.chars().find(|&c| c == '\r' || c == '\n') {
        Some(c) => Err(address::Invalid::Illegal(c)),
        None => address::parse_one(path),
    }
}

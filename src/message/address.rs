//! Addresses: RFC 5322 address lists (for `-t` and for argv recipients, which sendmail also
//! splits at commas) reduced to the addr-specs that go into the envelope.
//!
//! Handles comments (nested, with quoted pairs), quoted strings, display names, angle
//! addresses with source routes (`<@a,@b:user@host>` → `user@host`), and groups
//! (`team: a@x, b@y;`, `undisclosed-recipients:;`). Nothing here does DNS.

/// A lexical token of a header value, comments already removed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// An atom or a dot-atom piece.
    Atom(String),
    /// A quoted string, kept with its quotes.
    Quoted(String),
    /// A domain literal `[...]`, kept with its brackets.
    Literal(String),
    Special(char),
    /// Whitespace between tokens (it separates words of a display name).
    Space,
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                chars.next();
                if !matches!(out.last(), Some(Token::Space) | None) {
                    out.push(Token::Space);
                }
            }
            '(' => {
                // Comment: skip, honouring nesting and quoted pairs.
                let mut depth = 0;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if !matches!(out.last(), Some(Token::Space) | None) {
                    out.push(Token::Space);
                }
            }
            '"' => {
                chars.next();
                let mut q = String::from("\"");
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            q.push('\\');
                            if let Some(n) = chars.next() {
                                q.push(n);
                            }
                        }
                        '"' => break,
                        _ => q.push(c),
                    }
                }
                q.push('"');
                out.push(Token::Quoted(q));
            }
            '[' => {
                chars.next();
                let mut l = String::from("[");
                for c in chars.by_ref() {
                    l.push(c);
                    if c == ']' {
                        break;
                    }
                }
                if !l.ends_with(']') {
                    l.push(']');
                }
                out.push(Token::Literal(l));
            }
            '<' | '>' | ',' | ':' | ';' | '@' => {
                chars.next();
                out.push(Token::Special(c));
            }
            _ => {
                let mut a = String::new();
                while let Some(&c) = chars.peek() {
                    if " \t\r\n()\"[<>,:;@".contains(c) {
                        break;
                    }
                    a.push(c);
                    chars.next();
                }
                out.push(Token::Atom(a));
            }
        }
    }
    out
}

/// Join the tokens of an addr-spec: whitespace is dropped around `.` and `@`, as RFC 5322's
/// obsolete syntax allows (`bob @ example . org` → `bob@example.org`).
fn join_spec(tokens: &[Token]) -> String {
    let mut s = String::new();
    let mut pending_space = false;
    for t in tokens {
        match t {
            Token::Space => pending_space = true,
            other => {
                let text = match other {
                    Token::Atom(a) => a.as_str(),
                    Token::Quoted(q) => q.as_str(),
                    Token::Literal(l) => l.as_str(),
                    Token::Special('@') => "@",
                    Token::Special(_) => "",
                    Token::Space => unreachable!(),
                };
                if pending_space
                    && !s.is_empty()
                    && !s.ends_with(['@', '.'])
                    && !text.starts_with(['@', '.'])
                {
                    s.push(' ');
                }
                pending_space = false;
                s.push_str(text);
            }
        }
    }
    s
}

/// Parse an address list into addr-specs, in order.
pub fn parse_list(value: &str) -> Vec<String> {
    let tokens = tokenize(value);
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut angle: Option<String> = None;
    let mut i = 0;
    let flush = |current: &mut Vec<Token>, angle: &mut Option<String>, out: &mut Vec<String>| {
        if let Some(a) = angle.take() {
            if !a.is_empty() {
                out.push(a);
            }
        } else {
            let spec = join_spec(current);
            if !spec.is_empty() {
                out.push(spec);
            }
        }
        current.clear();
    };
    while i < tokens.len() {
        match &tokens[i] {
            Token::Special('<') => {
                let mut j = i + 1;
                let mut inner = Vec::new();
                while j < tokens.len() && tokens[j] != Token::Special('>') {
                    inner.push(tokens[j].clone());
                    j += 1;
                }
                // Drop a source route: everything up to the last ':' inside the brackets.
                if let Some(colon) = inner.iter().rposition(|t| *t == Token::Special(':')) {
                    inner.drain(..=colon);
                }
                angle = Some(join_spec(&inner));
                i = j + 1;
                continue;
            }
            Token::Special(',') | Token::Special(';') => {
                flush(&mut current, &mut angle, &mut out);
            }
            Token::Special(':') => {
                // Group name: what came before is the group's display name.
                current.clear();
                angle = None;
            }
            t => {
                if angle.is_none() {
                    current.push(t.clone());
                }
            }
        }
        i += 1;
    }
    flush(&mut current, &mut angle, &mut out);
    out
}

/// Split a list at its top-level commas (outside quotes, comments and angle brackets),
/// each piece trimmed, empty pieces dropped.
pub fn split_top_level(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quoted, mut angle, mut escaped) = (0u32, false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            '<' if !quoted && depth == 0 => angle = true,
            '>' if !quoted && depth == 0 => angle = false,
            ',' if !quoted && depth == 0 && !angle => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

/// One recipient taken from an address list, as sendmail keeps it: the text as written
/// (what `mailq` shows) and the addr-spec the envelope uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub text: String,
    pub address: String,
}

/// The recipients of one list (a header field or one argv argument) in sendmail's order,
/// which is the reverse of the written order within a list (recorded from 8.17:
/// `a, b, c` is queued as c, b, a; separate lists keep their order).
pub fn recipients_of_list(value: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    for piece in split_top_level(value).into_iter().rev() {
        for address in parse_list(&piece) {
            out.push(Listed {
                text: piece.clone(),
                address,
            });
        }
    }
    out
}

/// The domain of an address, lowercased (`None` for an unqualified local name).
pub fn domain_of(addr: &str) -> Option<String> {
    let at = addr.rfind('@')?;
    let d = &addr[at + 1..];
    (!d.is_empty()).then(|| d.to_ascii_lowercase())
}

/// Whether an address is delivered on this host: one of the local-only forms
/// (`\\user`, `|command`, `/file`), or, unless everything goes to the smarthost (a
/// NULLCLIENT with a SMARTHOST, as dma does), no domain, this host's name or `localhost`.
/// The one rule for submission and delivery.
pub fn is_local(addr: &str, host_name: &str, all_to_smarthost: bool) -> bool {
    if addr.starts_with(['|', '/', '\\']) {
        return true;
    }
    if all_to_smarthost {
        return false;
    }
    match domain_of(addr) {
        None => true,
        Some(d) => d.eq_ignore_ascii_case(host_name) || d == "localhost",
    }
}

/// Why an envelope address is refused, if it is.
pub fn check_envelope_address(addr: &str) -> Result<(), String> {
    if addr.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!(
            "{}... line breaks and NUL are not allowed in addresses",
            addr.escape_debug()
        ));
    }
    if addr.contains(['<', '>']) {
        return Err(format!("{addr}... Unbalanced '<' or '>'"));
    }
    if addr.len() > 512 {
        return Err(format!("{}...... Address too long", &addr[..64]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("bob@example.org", &["bob@example.org"]),
            ("a@x, b@y", &["a@x", "b@y"]),
            ("Bob Smith <bob@example.org>", &["bob@example.org"]),
            (
                "\"Smith, Bob\" <bob@example.org>, carol@x",
                &["bob@example.org", "carol@x"],
            ),
            ("bob@example.org (Bob (the) Builder)", &["bob@example.org"]),
            ("(c) bob (d) @ (e) example.org", &["bob@example.org"]),
            ("team: a@x, B <b@y>;, c@z", &["a@x", "b@y", "c@z"]),
            ("undisclosed-recipients:;", &[]),
            ("<@relay.a,@relay.b:user@host>", &["user@host"]),
            ("\"john doe\"@example.org", &["\"john doe\"@example.org"]),
            ("\"quoted\\\"q\" <q@x>", &["q@x"]),
            ("user@[192.0.2.1]", &["user@[192.0.2.1]"]),
            ("localuser", &["localuser"]),
            ("", &[]),
            (" ,, ", &[]),
            ("a@x,\n\tb@y", &["a@x", "b@y"]),
            ("<>", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_list(input), *want, "{input:?}");
        }
    }

    #[test]
    fn sendmail_list_order_and_text() {
        let r = recipients_of_list("Bob <bob@example.org>, carol@example.net");
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|l| (l.text.as_str(), l.address.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("carol@example.net", "carol@example.net"),
                ("Bob <bob@example.org>", "bob@example.org")
            ]
        );
        let g = recipients_of_list("team: a@example.org, b@example.org;");
        let got: Vec<(&str, &str)> = g
            .iter()
            .map(|l| (l.text.as_str(), l.address.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("b@example.org;", "b@example.org"),
                ("team: a@example.org", "a@example.org")
            ]
        );
        assert_eq!(
            split_top_level("\"a, b\" <x@y>, (c, d) z@w, <p,q@r>"),
            ["\"a, b\" <x@y>", "(c, d) z@w", "<p,q@r>"]
        );
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("bob@Example.ORG").as_deref(), Some("example.org"));
        assert_eq!(domain_of("bob"), None);
        assert_eq!(domain_of("\"a@b\"@c.d").as_deref(), Some("c.d"));
    }

    #[test]
    fn envelope_checks() {
        assert!(check_envelope_address("bob@x").is_ok());
        assert!(check_envelope_address("bob@x\r\nRCPT").is_err());
        assert!(check_envelope_address("bob\0").is_err());
        assert!(check_envelope_address("<bob@x>").is_err());
    }
}

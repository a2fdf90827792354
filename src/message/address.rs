//! Addresses: the one parser and the one validity check for every address rsendmail
//! takes from outside — argv recipients, `-t` header recipients, `-f`/`-r`, SMTP `MAIL`
//! and `RCPT` paths, aliases, `:include:` files and `.forward` targets.
//!
//! Two layers:
//! - [`lex`] and [`parse_list`] read RFC 5322 address lists: comments (nested, with
//!   quoted pairs), quoted strings, display names, angle addresses with source routes
//!   (`<@a,@b:user@host>` → `user@host`), groups (`team: a@x, b@y;`,
//!   `undisclosed-recipients:;`) and sendmail's old-style lists ([`OldStyle`]: under
//!   sendmail's default `OldStyleHeaders`, a list is blank-separated until some list of
//!   the message shows one of `, ; < (`). Blanks left inside an addr-spec become
//!   sendmail's `BlankSub` character (`.`, [`set_blank_sub`]): `x y@example.net` is
//!   `x.y@example.net`, as sendmail 8.17 sends it. Each item keeps where its addr-spec
//!   was written, so a header can be rewritten in place ([`qualify_list`]).
//! - [`check_mailbox`] decides whether an addr-spec may go into an envelope, with the
//!   refusals and words of sendmail 8.17 (its `prescan` and the rules of Debian's
//!   sendmail.cf, recorded in compat-tests `addr-*`): an unbalanced `<`, `(` or `"`, a
//!   control character, an over-long address, an empty local part (`User address
//!   required`), an empty domain (`Hostname required`), a second `@` (`Invalid route
//!   address`), an empty domain label (`Invalid host name`). The structure is RFC 5321
//!   §4.1.2's `Mailbox`: a local part of atext and dots, or a quoted string; a domain of
//!   letter-digit-hyphen labels (RFC 6531 U-labels too) or an IP address literal; UTF-8
//!   as RFC 6531 allows. A domain that cannot be a host name is refused with sendmail's
//!   words for a bad domain (`Invalid host name`), where sendmail lets it fail later. A
//!   local part sendmail takes but RFC 5321 does not (`a..b`, `.a`) is accepted
//!   and stored in its quoted form (`"a..b"`), which names the same mailbox and which
//!   strict relays accept; one with backslash-quoted characters (`a\b`, `c\"d`,
//!   `a\@b`) is kept as written, as sendmail's `prescan` keeps it and sendmail sends
//!   it (DIFFERENCES.md). A domain's trailing dot, the DNS root, is removed. So what is
//!   queued and sent is RFC 5321's form ([`normalise`], [`is_rfc5321`]). A local
//!   name without a domain is valid (it is qualified later).
//!
//! Nothing here does DNS, and nothing panics on any input: text is only cut at character
//! boundaries the lexer found itself.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::exit::Sysexit;
use crate::status::{self, EnhancedStatus};
use std::ops::Range;
use std::sync::OnceLock;

/// sendmail's MAXNAME: the longest address and the longest token, in octets.
pub const MAX_ADDRESS: usize = 256;

/// sendmail's `shortenstring` length for addresses in messages (MAXSHORTSTR).
const MAX_SHOWN: usize = 203;

static BLANK_SUB: OnceLock<Option<char>> = OnceLock::new();

/// Set sendmail's `BlankSub` option once for the process: the character unquoted blanks
/// inside an address become (`.` by default, as Debian's sendmail.cf sets it). A blank
/// (`O BlankSub= `) turns the substitution off, and such an address is then refused.
pub fn set_blank_sub(c: char) {
    let _ = BLANK_SUB.set((c != ' ' && c != '\t').then_some(c));
}

fn blank_sub() -> Option<char> {
    *BLANK_SUB.get_or_init(|| Some('.'))
}

/// What a lexical token of a header value or argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An atom or a dot-atom piece (`bob`, `example.org`).
    Atom,
    /// A quoted string, quotes included.
    Quoted,
    /// A domain literal `[...]`, brackets included.
    Literal,
    /// A comment `(...)`, parentheses included.
    Comment,
    /// A run of white space.
    Space,
    /// One of `< > , : ; @`.
    Special(char),
}

/// A token and where it was written (byte offsets into the lexed text, always at
/// character boundaries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub span: Range<usize>,
}

/// Why an address is refused: sendmail 8.17's words, status and exit code for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// An opening `<`, `(` or `"` without its closing partner, or a closing one without
    /// an opening one (sendmail's `prescan`: `Unbalanced '<'`).
    Unbalanced(char),
    /// A control character (C0 including TAB, CR, LF and NUL; DEL; C1): sendmail's
    /// `Syntax error in mailbox address "a?b@example.org" (non-printable character)`,
    /// the character shown as `?` (recorded: `addr-ctl-argv`, `addr-ctl-bs`); see
    /// [`Invalid::message`].
    Illegal(char),
    /// One token longer than [`MAX_ADDRESS`] (`prescan: token too long`).
    TokenTooLong,
    /// The whole address longer than [`MAX_ADDRESS`] (`Address too long`).
    TooLong,
    /// No local part (`@example.org`, `<@route>`): `User address required`.
    UserRequired,
    /// Nothing after the `@`: `Hostname required`.
    HostRequired,
    /// More than one unquoted `@`, or a comma inside: `Invalid route address`.
    InvalidRoute,
    /// An empty domain label (`a@example..org`, `a@.org`) or a character no host name
    /// has: `Invalid host name`.
    InvalidHost,
    /// A colon in the domain: `Colon illegal in host name part`.
    ColonInHost,
    /// Text after an address literal (`a@[192.0.2.1]x`): `Invalid address`.
    InvalidLiteral,
    /// A character that cannot be in a local part outside quotes.
    IllegalLocal(char),
    /// White space outside quotes, when `BlankSub` is turned off.
    Blank,
    /// A recipient naming no one: an empty route-addr (`<>`) or a lone `@`. sendmail
    /// takes it for a local user with an empty name: `<>... User unknown`, exit 67
    /// (recorded: `badrcpt-empty-angle-*`, `badrcpt-at-*`). Never dropped unnoticed.
    NoUser,
    /// A source route (`@relay:user@domain`, `<@a,@b:user@domain>`, RFC 5321 §4.1.2 and
    /// Appendix C). sendmail drops the route without a word and sends to the mailbox
    /// alone (recorded: `addr-source-route`); rsendmail refuses the address, so that mail
    /// meant to pass a given host never goes elsewhere unannounced.
    SourceRoute,
    /// A group with no member among recipients (`undisclosed-recipients:;`, `:;`):
    /// sendmail's `List:; syntax illegal for recipient addresses`, exit 64, on the
    /// command line, in `-t` headers and for `-bv` (recorded: `argv-group-empty`,
    /// `argv-group-named`, `argv-group-mixed`, `t-group-empty`, `t-group-empty-cc`,
    /// `bv-group-empty`). A group with members is its members. `<@>` without a display
    /// name is one too, as sendmail's rule set 0 reads it (`bv-at-angle-kind`).
    EmptyGroup,
    /// Octets that are not UTF-8 where an address was read as text (a `-t` header field,
    /// an alias target, an `:include:` or `.forward` line): they are decoded as U+FFFD,
    /// so an address holding U+FFFD is one whose octets were lost. Refused with the
    /// words the command line and `-bs` give (`Syntax error in mailbox address
    /// "j?hn@example.org" (not UTF-8)`, exit 64), never sent changed (sendmail relays
    /// the octets as they are; DIFFERENCES.md).
    NotUtf8,
    /// Angle brackets that balance but nest (`<<bob@example.org>>`). sendmail strips the
    /// outer pair and delivers; rsendmail refuses the address, naming the fault
    /// (DIFFERENCES.md; recorded: `rcpt-angle-angle`).
    NestedAngle,
    /// Two `<address>`es in one list item (`<a@example.org> <b@example.org>`, no comma
    /// between). sendmail delivers to the last and drops the first without a word;
    /// rsendmail refuses the item, so that no recipient vanishes (DIFFERENCES.md;
    /// recorded: `rcpt-two-angle-one-arg`).
    TwoAngle,
}

/// sendmail's words for a group without members among recipients ([`Invalid::EmptyGroup`]).
pub const LIST_SYNTAX_ILLEGAL: &str = "List:; syntax illegal for recipient addresses";

impl Invalid {
    /// sendmail's words for it (after `address... `).
    pub fn text(&self) -> String {
        match self {
            Invalid::Unbalanced(c) => format!("Unbalanced '{c}'"),
            Invalid::Illegal(_) => "non-printable character".into(),
            Invalid::TokenTooLong => "prescan: token too long".into(),
            Invalid::TooLong => "Address too long".into(),
            Invalid::UserRequired => "User address required".into(),
            Invalid::HostRequired => "Hostname required".into(),
            Invalid::InvalidRoute => "Invalid route address".into(),
            Invalid::InvalidHost => "Invalid host name".into(),
            Invalid::ColonInHost => "Colon illegal in host name part".into(),
            Invalid::InvalidLiteral => "Invalid address".into(),
            Invalid::IllegalLocal(c) => format!("Illegal character {c}"),
            Invalid::Blank => "Blank in address (BlankSub is off)".into(),
            Invalid::NoUser => "User unknown".into(),
            Invalid::EmptyGroup => LIST_SYNTAX_ILLEGAL.into(),
            Invalid::NotUtf8 => "not UTF-8".into(),
            Invalid::NestedAngle => "Nested '<' in address".into(),
            Invalid::TwoAngle => {
                "More than one <address> in one recipient (separate them with commas)".into()
            }
            Invalid::SourceRoute => {
                "Source route not supported (RFC 5321 Appendix C): write the address without it"
                    .into()
            }
        }
    }

    /// The RFC 3463 status of a 553 reply refusing it (sendmail's, where its rules give
    /// one; `prescan`'s own messages carry none and get 5.0.0 as in sendmail's replies).
    pub fn status(&self) -> EnhancedStatus {
        match self {
            Invalid::Unbalanced(_) | Invalid::Illegal(_) | Invalid::IllegalLocal(_) => status::PERM,
            Invalid::TokenTooLong | Invalid::Blank => status::ADDRESS_PERM,
            Invalid::TooLong | Invalid::NoUser => status::BAD_MAILBOX,
            Invalid::UserRequired
            | Invalid::HostRequired
            | Invalid::InvalidRoute
            | Invalid::SourceRoute
            | Invalid::EmptyGroup
            | Invalid::NotUtf8
            | Invalid::NestedAngle
            | Invalid::TwoAngle
            | Invalid::ColonInHost => status::BAD_MAILBOX_SYNTAX,
            Invalid::InvalidHost | Invalid::InvalidLiteral => status::BAD_SYSTEM,
        }
    }

    /// Whether refusing it decides the exit status when it is the first such refusal:
    /// sendmail's rules refuse most faults as an `error` mailer, whose status it keeps
    /// unless an earlier one was kept (`setstat`); an unbalanced address (repaired by
    /// `prescan`) and a token too long only print their error, which makes the status
    /// 64 when nothing else decides it (recorded: `alias-bad-order-odi`,
    /// `alias-unbalanced-empty-odi`). So do the addresses only rsendmail refuses
    /// (sendmail takes them: a source route, octets that are not UTF-8, nested or two
    /// `<address>`es, an empty group), so that the status stays the one sendmail gives.
    pub fn sets_status(&self) -> bool {
        !matches!(
            self,
            Invalid::Unbalanced(_)
                | Invalid::TokenTooLong
                | Invalid::SourceRoute
                | Invalid::NotUtf8
                | Invalid::NestedAngle
                | Invalid::TwoAngle
                | Invalid::EmptyGroup
        )
    }

    /// The exit status sendmail gives a submission that had it: its `dsntoexitstat`
    /// (5.1.2 → EX_NOHOST) and EX_USAGE for the rest (recorded: `Invalid host name` 68,
    /// `Invalid route address` 64, `Unbalanced '('` 64).
    pub fn exit(&self) -> Sysexit {
        if *self == Invalid::NoUser {
            Sysexit::NoUser
        } else if self.status() == status::BAD_SYSTEM {
            Sysexit::NoHost
        } else {
            Sysexit::Usage
        }
    }

    /// `address... text`, as sendmail prints it; for a control character sendmail's
    /// `Syntax error in mailbox address "address" (non-printable character)`. The
    /// address is [`shown`]: never a control character in it.
    pub fn message(&self, address: &str) -> String {
        match self {
            Invalid::Illegal(_) => format!(
                "Syntax error in mailbox address \"{}\" ({})",
                shown(address),
                self.text()
            ),
            // Each lost octet shown as `?`, as the command line and `-bs` show it.
            Invalid::NotUtf8 => format!(
                "Syntax error in mailbox address \"{}\" ({})",
                shown(address).replace(char::REPLACEMENT_CHARACTER, "?"),
                self.text()
            ),
            _ => format!("{}... {}", shown(address), self.text()),
        }
    }
}

/// An address as sendmail prints it in a message: each control character as `?`
/// (sendmail's, recorded: `addr-ctl-argv`), and one
/// longer than 203 characters shortened to its first and last 100 with `...` between
/// (sendmail's `shortenstring`). Cuts fall between characters, never inside one.
pub fn shown(address: &str) -> String {
    let mut clean: Vec<char> = Vec::with_capacity(address.len());
    for c in address.chars() {
        if c.is_control() {
            clean.push(crate::text::REPLACEMENT);
        } else {
            clean.push(c);
        }
    }
    if clean.len() <= MAX_SHOWN {
        return clean.into_iter().collect();
    }
    let keep = (MAX_SHOWN - 3) / 2;
    let mut out: String = clean.iter().take(keep).collect();
    out.push_str("...");
    out.extend(clean.iter().skip(clean.len() - keep));
    out
}

/// The text of a span, or "" if the span is not one of `text`'s (never panics).
fn at<'t>(text: &'t str, span: &Range<usize>) -> &'t str {
    text.get(span.clone()).unwrap_or("")
}

/// The fault to name for an unbalanced `found` at octet `at`: `Unbalanced '<'` when
/// a `<` opened before it (outside quotes) is still open there, else `found`.
fn first_unbalanced(text: &str, at: usize, found: char) -> Invalid {
    let mut q = Quoting::default();
    let mut open = 0usize;
    for c in text.get(..at).unwrap_or_default().chars() {
        if q.plain(c) {
            match c {
                '<' => open += 1,
                '>' => open = open.saturating_sub(1),
                _ => {}
            }
        }
    }
    Invalid::Unbalanced(if open > 0 { '<' } else { found })
}

/// Split `text` into tokens. Unbalanced quotes and comments are errors, as in sendmail's
/// `prescan`; angle brackets are balanced by [`parse_list`].
pub fn lex(text: &str) -> Result<Vec<Token>, Invalid> {
    let mut out: Vec<Token> = Vec::new();
    let mut chars = text.char_indices().peekable();
    let push = |out: &mut Vec<Token>, kind: Kind, start: usize, end: usize| {
        out.push(Token {
            kind,
            span: start..end,
        })
    };
    while let Some(&(start, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if !matches!(c, ' ' | '\t' | '\r' | '\n') {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                push(&mut out, Kind::Space, start, end);
            }
            '(' => {
                let mut depth = 0u32;
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                // A `<` still open before the `(` is the first fault, and the one
                // sendmail names first (`<b@x, c@x (y`: `Unbalanced '<'`).
                let end = end.ok_or_else(|| first_unbalanced(text, start, '('))?;
                push(&mut out, Kind::Comment, start, end);
            }
            ')' => return Err(Invalid::Unbalanced(')')),
            '"' => {
                chars.next();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or(Invalid::Unbalanced('"'))?;
                push(&mut out, Kind::Quoted, start, end);
            }
            '[' => {
                // A literal never closed does not hold a comma (sendmail's `prescan`
                // knows no brackets): it ends before the next one, and the items after
                // it are read as any others (recorded: `list-unclosed-bracket-*`), nor
                // a `<`: in a display name (`J [x Smith <a@x>`) it is the name's, and
                // the address in brackets after it is read as any other (recorded:
                // `hdr-name-lbracket`, `t-name-lbracket`).
                let (mut end, mut blanks) = (text.len(), text.len());
                while let Some(&(i, c)) = chars.peek() {
                    if (c == ',' || c == '<') && i > start {
                        // The blanks before the comma are no part of it.
                        let held = text.get(start..i).unwrap_or_default();
                        (end, blanks) = (start + held.trim_end().len(), i);
                        break;
                    }
                    chars.next();
                    if c == ']' {
                        (end, blanks) = (i + 1, i + 1);
                        break;
                    }
                }
                push(&mut out, Kind::Literal, start, end);
                if blanks > end {
                    push(&mut out, Kind::Space, end, blanks);
                }
            }
            '<' | '>' | ',' | ':' | ';' | '@' => {
                chars.next();
                push(&mut out, Kind::Special(c), start, start + 1);
            }
            _ => {
                // A backslash outside quotes takes the next character into the atom as
                // it is (sendmail's `prescan`: `a\b`, `c\"d`, `e\>f` are one word each,
                // kept with their backslash), except a blank or a comma, which still
                // end the address (`g\,h` is `g\` and `h`).
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if " \t\r\n()\"[<>,:;@".contains(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                    if c == '\\'
                        && let Some(&(j, n)) = chars.peek()
                        && !matches!(n, ' ' | '\t' | '\r' | '\n' | ',')
                    {
                        end = j + n.len_utf8();
                        chars.next();
                    }
                }
                push(&mut out, Kind::Atom, start, end);
            }
        }
    }
    Ok(out)
}

/// The characters sendmail's `prescan` ends a word at, besides blanks and the specials
/// [`lex`] knows (Debian's sendmail.cf `O OperatorChars=.:%@!^/[]+`): a dotted name is
/// several of its tokens (`ccc.ddd` is `ccc`, `.`, `ddd`).
const OPERATOR_CHARS: &[char] = &['.', ':', '%', '@', '!', '^', '/', '[', ']', '+'];

/// Whether one of sendmail's tokens in `text` (as [`lex`] gave `tokens`) is longer than
/// [`MAX_ADDRESS`] (`prescan: token too long`): a quoted string counts whole; an atom or
/// a domain literal only up to each operator character in it, so that a long dotted
/// domain of short labels is never a long token (it is an address too long; recorded:
/// `bs-path-edges`). A backslash-quoted operator character does not end a word.
pub fn has_token_too_long(text: &str, tokens: &[Token]) -> bool {
    tokens.iter().any(|t| match t.kind {
        Kind::Space => false,
        Kind::Atom | Kind::Literal => {
            let mut run = 0usize;
            let mut escaped = false;
            at(text, &t.span).chars().any(|c| {
                if !escaped && c == '\\' {
                    escaped = true;
                } else if !escaped && OPERATOR_CHARS.contains(&c) {
                    run = 0;
                    return false;
                } else {
                    escaped = false;
                }
                run += c.len_utf8();
                run > MAX_ADDRESS
            })
        }
        _ => t.span.len() > MAX_ADDRESS,
    })
}

/// Whether a list shows sendmail's "new style": a `,`, `;`, `<` or `(` anywhere in it
/// (sendmail looks at the raw text, quotes included).
pub fn has_new_style_chars(text: &str) -> bool {
    text.contains([',', ';', '<', '('])
}

/// sendmail's `EF_OLDSTYLE` for one message: lists are blank-separated (`alice bob`,
/// `a@x b@y`) while it is set. It starts as `OldStyleHeaders` (true in Debian's
/// sendmail.cf) and is cleared for the rest of the message by the first argv list or
/// address header field that has one of `, ; < (` (recipient.c `sendtolist`, headers.c
/// `chompheader`), so the order lists are seen in matters: argv first, then the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldStyle(pub bool);

impl OldStyle {
    /// Look at one list (an argv argument, or an address field's value) and say whether
    /// it is read blank-separated.
    pub fn list(&mut self, text: &str) -> bool {
        if has_new_style_chars(text) {
            self.0 = false;
        }
        self.0
    }
}

/// One address of a list, as written and as the envelope would use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The piece of the list as written, trimmed (what `mailq` shows for it).
    pub text: String,
    /// The addr-spec: comments and display name removed, source route dropped.
    pub address: String,
    /// Where the addr-spec's first token starts in the parsed text (`spec_end` when it
    /// has none).
    pub spec_start: usize,
    /// Where the addr-spec's last token ends in the parsed text (to qualify it in place).
    pub spec_end: usize,
    /// Whether the addr-spec was written inside angle brackets.
    pub angle: bool,
    /// Why the item cannot be an envelope address, if it cannot (syntax of the list, not
    /// yet [`check_mailbox`]).
    pub error: Option<Invalid>,
    /// Where a source route inside angle brackets was written (`@a,@b:` of
    /// `<@a,@b:user@example.org>`, with the blanks after it), for a header rewrite to
    /// drop as sendmail drops it.
    pub route: Option<Range<usize>>,
}

/// Join the tokens of an addr-spec: white space and comments are dropped around `.` and
/// `@`, as RFC 5322's obsolete syntax allows (`bob @ example . org` →
/// `bob@example.org`); between two words they become the `BlankSub` character, as in
/// sendmail's `cataddr` (`x y@example.net` → `x.y@example.net`), or a blank for
/// [`check_mailbox`] to refuse when `BlankSub` is off.
fn join_spec(text: &str, tokens: &[&Token]) -> String {
    let mut s = String::new();
    let mut pending_space = false;
    for t in tokens {
        match t.kind {
            Kind::Space | Kind::Comment => pending_space = true,
            Kind::Special(c) if c != '@' && c != ';' => {}
            _ => {
                let piece = at(text, &t.span);
                if pending_space
                    && !s.is_empty()
                    && !s.ends_with(['@', '.'])
                    && !piece.starts_with(['@', '.'])
                {
                    s.push(blank_sub().unwrap_or(' '));
                }
                pending_space = false;
                s.push_str(piece);
            }
        }
    }
    s
}

/// Where the item that leaves a quote or comment open begins (after the delimiter
/// before it), or `None` when none is left open. A comma inside angle brackets
/// delimits only when they are never closed (sendmail: a `<` does not hold the commas
/// after it), and a blank does when `old_style`.
fn open_item_start(text: &str, old_style: bool) -> Option<usize> {
    let mut n = Nesting::default();
    // Where the current item begins; where the last comma inside the open brackets
    // left it, if one did.
    let (mut item, mut held, mut angles) = (0usize, None::<usize>, 0usize);
    let mut opened = None;
    for (at, c) in text.char_indices() {
        let was_open = n.quoted || n.comment > 0;
        let syntax = n.syntax(c);
        match (was_open, n.quoted || n.comment > 0) {
            (false, true) => opened = Some(held.unwrap_or(item)),
            (true, false) => opened = None,
            _ => {}
        }
        if !syntax {
            continue;
        }
        match c {
            '<' => angles += 1,
            '>' => {
                angles = angles.saturating_sub(1);
                if angles == 0 {
                    held = None;
                }
            }
            ',' if angles > 0 => held = Some(at + 1),
            ',' => item = at + 1,
            _ if old_style && angles == 0 && c.is_whitespace() => item = at + c.len_utf8(),
            _ => {}
        }
    }
    opened
}

/// Where the item holding a `)` that closes nothing begins and ends (before the
/// delimiter after it), if the list has one before any quote or comment left open: a
/// comma outside quotes, comments and angle brackets delimits, and a blank does when
/// `old_style`.
fn stray_close_item(text: &str, old_style: bool) -> Option<(usize, usize)> {
    let mut n = Nesting::default();
    let (mut item, mut angles, mut stray) = (0usize, 0usize, None);
    for (at, c) in text.char_indices() {
        if !n.syntax(c) {
            continue;
        }
        let delimits = (c == ',' || (old_style && c.is_whitespace())) && angles == 0;
        match c {
            ')' if stray.is_none() => stray = Some(item),
            '<' => angles += 1,
            '>' => angles = angles.saturating_sub(1),
            _ if delimits => match stray {
                Some(start) => return Some((start, at)),
                None => item = at + c.len_utf8(),
            },
            _ => {}
        }
    }
    stray.map(|start| (start, text.len()))
}

/// A list with a `)` that closes nothing in the item from `start` to `end`: the items
/// before and after it are read as any others, and that item is refused as
/// `Unbalanced ')'`, named with the rest of the list as sendmail names it
/// (`b@x), g2@x... Unbalanced ')'`; recorded: `list-stray-paren-*`), so that no good
/// address beside it is lost.
fn parse_around_stray(text: &str, old_style: bool, start: usize, end: usize) -> Vec<Item> {
    let head = text.get(..start).unwrap_or_default().trim_end();
    let head = head.strip_suffix(',').unwrap_or(head).trim_end();
    let mut out = match head.trim() {
        "" => Vec::new(),
        _ => parse_list(head, old_style),
    };
    out.push(Item {
        text: text.get(start..).unwrap_or_default().trim().to_string(),
        address: text.get(start..end).unwrap_or_default().trim().to_string(),
        spec_start: text.len(),
        spec_end: text.len(),
        angle: false,
        error: Some(Invalid::Unbalanced(')')),
        route: None,
    });
    // The delimiter after the item is one character (a comma or a blank).
    let from = text
        .get(end..)
        .and_then(|rest| rest.chars().next())
        .map_or(text.len(), |c| end + c.len_utf8());
    if let Some(tail) = text.get(from..).filter(|t| !t.trim().is_empty()) {
        out.extend(parse_list(tail, old_style).into_iter().map(|mut i| {
            i.spec_start += from;
            i.spec_end += from;
            i.route = i.route.map(|r| r.start + from..r.end + from);
            i
        }));
    }
    out
}

/// Parse an address list into its items, in written order. `old_style` splits at white
/// space as well as commas (see [`OldStyle`]). An item that cannot be read carries the
/// error, so that nothing vanishes without a word; the items before it are read as any
/// others. A quote or comment never closed runs to the end of the list, as in
/// sendmail's `prescan`: the item that opens it is the rest of the list (`g1@x, "b@x,
/// g2@x` is `g1@x` and the refused `"b@x, g2@x`; recorded: `list-unclosed-*`).
pub fn parse_list(text: &str, old_style: bool) -> Vec<Item> {
    let tokens = match lex(text) {
        Ok(t) => t,
        Err(e) => {
            if e == Invalid::Unbalanced(')')
                && let Some((start, end)) = stray_close_item(text, old_style)
            {
                return parse_around_stray(text, old_style, start, end);
            }
            let start = open_item_start(text, old_style).unwrap_or(0);
            // The items before it, without the delimiter that ends them.
            let head = text.get(..start).unwrap_or_default().trim_end();
            let head = head.strip_suffix(',').unwrap_or(head).trim_end();
            let mut out = match head.trim() {
                "" => Vec::new(),
                _ => parse_list(head, old_style),
            };
            // A `<` left open before it is named with the rest of the list, as
            // sendmail names it (`<b@x, c@x (y... Unbalanced '<'`, then `c@x (y...
            // Unbalanced '('`; recorded: `alias-malformed`).
            if let Some(last) = out.last_mut()
                && last.error == Some(Invalid::Unbalanced('<'))
                && let Some(from) = head.len().checked_sub(last.text.len())
                && head.get(from..) == Some(last.text.as_str())
            {
                last.text = text.get(from..).unwrap_or_default().trim().to_string();
            }
            let rest = text.get(start..).unwrap_or(text).trim();
            let error = lex(rest).err().unwrap_or(e);
            out.push(Item {
                text: rest.to_string(),
                address: rest.to_string(),
                spec_start: text.len(),
                spec_end: text.len(),
                angle: false,
                error: Some(error),
                route: None,
            });
            return out;
        }
    };
    let mut parser = ListParser {
        text,
        out: Vec::new(),
        current: Vec::new(),
        angle: None,
        error: None,
        piece_start: 0,
        group: None,
    };
    let mut i = 0;
    while let Some(t) = tokens.get(i) {
        match t.kind {
            Kind::Special('<') => {
                // The route-addr: up to the matching `>`.
                let mut inner = Vec::new();
                let mut j = i + 1;
                let mut closed = false;
                let mut nested = false;
                while let Some(u) = tokens.get(j) {
                    match u.kind {
                        Kind::Special('>') => {
                            closed = true;
                            break;
                        }
                        Kind::Special('<') => {
                            nested = true;
                            break;
                        }
                        _ => inner.push(u),
                    }
                    j += 1;
                }
                if !closed {
                    // Brackets that nest but balance are named as such, not as
                    // unbalanced.
                    let mut depth = 0i64;
                    let mut balanced = None;
                    for (k, u) in tokens.iter().enumerate().skip(i) {
                        match u.kind {
                            Kind::Special('<') => depth += 1,
                            Kind::Special('>') => depth -= 1,
                            _ => continue,
                        }
                        if depth <= 0 {
                            balanced = (depth == 0).then_some(k);
                            break;
                        }
                    }
                    if let (true, Some(end)) = (nested, balanced) {
                        // The item ends where its brackets balance: the items after it
                        // are read as any others (`<<t>>, u`).
                        parser.error.get_or_insert(Invalid::NestedAngle);
                        parser.angle.get_or_insert_with(Vec::new);
                        i = end + 1;
                        continue;
                    }
                    parser.error.get_or_insert(Invalid::Unbalanced('<'));
                    // A `<` never closed does not hold the commas after it (sendmail's
                    // `prescan`): the item ends at the next one and the items after it
                    // are read as any others; it is named with the rest of the list,
                    // as sendmail names it (`<b@x, g@x... Unbalanced '<'`; recorded:
                    // `list-unclosed-angle-*`). A source route's commas are route
                    // (`<@r,@s:u@x`): that item runs to the end.
                    let route = inner
                        .iter()
                        .find(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
                        .is_some_and(|t| t.kind == Kind::Special('@'));
                    let comma = tokens
                        .iter()
                        .enumerate()
                        .skip(i + 1)
                        .find(|(_, t)| t.kind == Kind::Special(','));
                    match comma {
                        Some((k, t)) if !route => {
                            let named = text.get(parser.piece_start..).unwrap_or("").trim();
                            let named = named.to_string();
                            parser.flush(t.span.start, t.span.end);
                            if let Some(last) = parser.out.last_mut() {
                                last.text = named;
                            }
                            i = k + 1;
                            continue;
                        }
                        _ => {
                            parser.flush(text.len(), text.len());
                            return parser.out;
                        }
                    }
                }
                if parser.angle.is_some() {
                    parser.error.get_or_insert(Invalid::TwoAngle);
                }
                parser.angle = Some(inner);
                i = j + 1;
                continue;
            }
            Kind::Special('>') => {
                parser.error.get_or_insert(Invalid::Unbalanced('>'));
            }
            Kind::Special(',') => parser.flush(t.span.start, t.span.end),
            // Outside a group a `;` is part of the address, as in sendmail:
            // `a@x;b@y` is one address with two `@` (`Invalid route address`), never
            // two recipients, and `a;b@example.org` keeps its `;` (compat cases
            // addr-semicolon, addr-semicolon-local). One that ends the piece
            // (`a@example.org;`) is dropped, as sendmail drops it
            // (addr-semicolon-trailing).
            Kind::Special(';')
                if parser.group.is_none()
                    && tokens
                        .get(i + 1..)
                        .unwrap_or_default()
                        .iter()
                        .find(|n| !matches!(n.kind, Kind::Space | Kind::Comment))
                        .is_some_and(|n| n.kind != Kind::Special(',')) =>
            {
                if parser.angle.is_none() {
                    parser.current.push(t);
                }
            }
            // The end of a group: it belongs to the piece it ends (`b@y;`).
            Kind::Special(';') => {
                // A `;` with nothing before it in its piece and no group open (`;`
                // alone): sendmail's `;... List:; syntax illegal for recipient
                // addresses` (recorded: `rcpt-semicolon-only`).
                let bare = parser.group.is_none()
                    && parser.angle.is_none()
                    && parser.error.is_none()
                    && parser
                        .current
                        .iter()
                        .all(|c| matches!(c.kind, Kind::Space | Kind::Comment));
                parser.flush(t.span.end, t.span.end);
                if bare {
                    parser.out.push(Item {
                        address: ";".into(),
                        text: ";".into(),
                        spec_start: t.span.end,
                        spec_end: t.span.end,
                        angle: false,
                        error: Some(Invalid::EmptyGroup),
                        route: None,
                    });
                }
                // A group that named no one is refused, not dropped: no recipient may
                // vanish without a word.
                if let Some((start, items)) = parser.group.take()
                    && parser.out.len() == items
                {
                    let written = text.get(start..t.span.end).unwrap_or("").trim().to_string();
                    parser.out.push(Item {
                        address: written.clone(),
                        text: written,
                        spec_start: t.span.end,
                        spec_end: t.span.end,
                        angle: false,
                        error: Some(Invalid::EmptyGroup),
                        route: None,
                    });
                }
            }
            Kind::Special(':') if parser.angle.is_none() => {
                // A group's display name: what came before belongs to no address. A
                // phrase never starts with `@`: `@relay:user@domain` is a source route.
                if parser
                    .current
                    .iter()
                    .find(|p| !matches!(p.kind, Kind::Space | Kind::Comment))
                    .is_some_and(|p| p.kind == Kind::Special('@'))
                {
                    parser.error.get_or_insert(Invalid::SourceRoute);
                } else {
                    parser.group = Some((parser.piece_start, parser.out.len()));
                }
                parser.current.clear();
            }
            Kind::Space
                if old_style
                    && parser.angle.is_none()
                    && !parser
                        .current
                        .iter()
                        .rev()
                        .find(|p| p.kind != Kind::Comment)
                        .is_some_and(|p| p.kind == Kind::Special('@'))
                    && !tokens
                        .get(i + 1)
                        .is_some_and(|n| n.kind == Kind::Special('@')) =>
            {
                parser.flush(t.span.start, t.span.end);
            }
            _ => {
                if parser.angle.is_none() {
                    parser.current.push(t);
                }
            }
        }
        i += 1;
    }
    parser.flush(text.len(), text.len());
    parser.out
}

/// The state of [`parse_list`] between delimiters.
struct ListParser<'t> {
    text: &'t str,
    out: Vec<Item>,
    /// The tokens of the current piece outside angle brackets.
    current: Vec<&'t Token>,
    /// The tokens inside the piece's angle brackets, if it has them.
    angle: Option<Vec<&'t Token>>,
    error: Option<Invalid>,
    /// Where the current piece began (after the last delimiter).
    piece_start: usize,
    /// The open group: where its name began and how many items there were then.
    group: Option<(usize, usize)>,
}

impl<'t> ListParser<'t> {
    /// End the current piece at `end` (exclusive); the next begins at `next`.
    fn flush(&mut self, end: usize, next: usize) {
        let had_angle = self.angle.is_some();
        let mut route = None;
        let spec_tokens: Vec<&Token> = match self.angle.take() {
            // A source route (`<@a,@b:user@domain>`) is refused; anything else before a
            // colon inside the brackets is dropped.
            Some(inner) => match inner.iter().rposition(|t| t.kind == Kind::Special(':')) {
                Some(colon) => {
                    let mut cut = colon;
                    let mut significant = inner
                        .iter()
                        .filter(|p| !matches!(p.kind, Kind::Space | Kind::Comment));
                    if significant
                        .next()
                        .is_some_and(|p| p.kind == Kind::Special('@'))
                    {
                        // A route whose first hop names no host (`<@:y>`) is no route:
                        // sendmail's `User address required` (recorded:
                        // `t-route-empty-hop-odq`).
                        let empty_hop = significant
                            .next()
                            .is_some_and(|p| p.kind == Kind::Special(':'));
                        self.error.get_or_insert(if empty_hop {
                            Invalid::UserRequired
                        } else {
                            Invalid::SourceRoute
                        });
                        // The route's commas after its colon are route too (sendmail's
                        // rule set 3 makes every comma a colon): `<@r:v@x, w>` is `w`
                        // (recorded: `hdr-unclosed-more-a`).
                        cut = inner
                            .iter()
                            .rposition(|t| t.kind == Kind::Special(','))
                            .map_or(colon, |comma| comma.max(colon));
                        let rest = inner.get(cut + 1..).unwrap_or_default();
                        if let (Some(first), Some(c)) = (inner.first(), inner.get(cut)) {
                            let end = rest
                                .iter()
                                .find(|t| t.kind != Kind::Space)
                                .map_or(c.span.end, |t| t.span.start);
                            route = Some(first.span.start..end);
                        }
                    }
                    inner.into_iter().skip(cut + 1).collect()
                }
                None => inner,
            },
            None => std::mem::take(&mut self.current),
        };
        // A display name before the brackets (comments are none): `N <@>` is not `<@>`.
        let phrase = self
            .current
            .iter()
            .any(|t| !matches!(t.kind, Kind::Space | Kind::Comment));
        self.current.clear();
        let address = join_spec(self.text, &spec_tokens);
        let spec_end = spec_tokens
            .iter()
            .rev()
            .find(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
            .map(|t| t.span.end)
            .unwrap_or(end);
        let spec_start = spec_tokens
            .iter()
            .find(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
            .map_or(spec_end, |t| t.span.start)
            .min(spec_end);
        // A `>` that closes nothing is named with the rest of the list, as sendmail
        // names it (`b@x>, g2@x... Unbalanced '>'`; recorded: `list-stray-angle-*`);
        // the items after it are read as any others.
        let to = if self.error == Some(Invalid::Unbalanced('>')) {
            self.text.len()
        } else {
            end
        };
        let written = self
            .text
            .get(self.piece_start..to)
            .unwrap_or("")
            .trim()
            .to_string();
        self.piece_start = next;
        let mut error = self.error.take();
        // A source route that leads to no address (`@example.net:`, `g: <@r:>;`) names
        // no user: sendmail's `User address required` (recorded: `list-route-only-*`,
        // `bv-group-open-route`), as for the same path at RCPT.
        if error == Some(Invalid::SourceRoute)
            && address.strip_suffix(';').unwrap_or(&address).is_empty()
        {
            error = Some(Invalid::UserRequired);
        }
        // `<>` among recipients names no one; it is reported, not dropped.
        if address.is_empty() && had_angle && error.is_none() {
            error = Some(Invalid::NoUser);
        }
        // `<@>` (blanks and comments aside, no display name) is what sendmail's rule
        // set 0 makes of a group naming no one: `List:; syntax illegal for recipient
        // addresses`, exit 64, on the command line, in `-t` headers, for `-bv` and at
        // RCPT (recorded: `bv-at-angle-kind`, `rcpt-at-angle-*`, `bs-rcpt-at-angle`),
        // where a lone `@` without brackets is a local user with no name.
        if address == "@" && had_angle && !phrase && error.is_none() {
            error = Some(Invalid::EmptyGroup);
        }
        // A backslash alone quotes nothing and names no one: sendmail's `prescan` finds
        // no word in it and takes nothing from it (recorded: `backslash-forms-bv`), as
        // from an empty piece.
        let nothing = address.is_empty() || (address == "\\" && !had_angle);
        if !nothing || error.is_some() {
            self.out.push(Item {
                text: written,
                address,
                spec_start,
                spec_end,
                angle: had_angle,
                error,
                route,
            });
        }
    }
}

/// Split a list at its top-level commas (outside quotes, comments and angle brackets),
/// each piece trimmed, empty pieces dropped. Used where the pieces are not all
/// addresses (aliases' `"|command"` and `:include:` targets). A `<` never closed
/// before the next `<` or the end does not hold the commas after it: the list is split
/// there too, as sendmail splits it (`bad <x7@example.org, <>, ok8@example.org` is
/// three targets, the first refused as `Unbalanced '<'`; recorded:
/// `alias-unbalanced-odi`, `alias-unbalanced-empty-odi`), so that no other target
/// is lost with the unbalanced one.
pub fn split_top_level(value: &str) -> Vec<String> {
    fn push(out: &mut Vec<String>, piece: &str) {
        let t = piece.trim();
        if !t.is_empty() {
            out.push(t.to_string());
        }
    }
    // The pieces the commas inside an open `<` cut `cur` into.
    fn split_held(out: &mut Vec<String>, cur: &mut String, held: &mut Vec<usize>) {
        let mut from = 0;
        for &at in held.iter() {
            push(out, cur.get(from..at).unwrap_or_default());
            from = at + 1;
        }
        let rest = cur.get(from..).unwrap_or_default().to_string();
        *cur = rest;
        held.clear();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    // Byte offsets in `cur` of the commas met while a `<` was open.
    let mut held: Vec<usize> = Vec::new();
    let (mut depth, mut quoted, mut angle, mut escaped) = (0u32, false, false, false);
    for c in value.chars() {
        // A backslash quotes the next character, outside quotes too (`c\"d`, `e\>f`),
        // except a comma there, which still ends the target (sendmail's `prescan`).
        if escaped && !(c == ',' && !quoted && depth == 0) {
            escaped = false;
            cur.push(c);
            continue;
        }
        escaped = false;
        match c {
            '\\' => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            '<' if !quoted && depth == 0 => {
                if angle && !held.is_empty() {
                    split_held(&mut out, &mut cur, &mut held);
                }
                angle = true;
            }
            '>' if !quoted && depth == 0 => {
                angle = false;
                held.clear();
            }
            ',' if !quoted && depth == 0 && angle => held.push(cur.len()),
            ',' if !quoted && depth == 0 => {
                push(&mut out, &cur);
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if angle && !held.is_empty() {
        split_held(&mut out, &mut cur, &mut held);
    }
    push(&mut out, &cur);
    out
}

/// Whether `c` may appear in a local part outside quotes: RFC 5322 atext, RFC 6531's
/// UTF8-non-ascii, and the dot (anywhere, as sendmail and Postfix accept it).
fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii()
}

/// Where a scan of an address stands with quoting: inside a quoted string, and right
/// after a backslash (RFC 5322 quoted-pair). Feed it each character in turn.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quoting {
    pub quoted: bool,
    pub escaped: bool,
}

impl Quoting {
    /// Take the next character; whether it is plain: outside quotes, not escaped, and
    /// neither a quote nor a backslash itself. Only plain characters are syntax.
    pub fn plain(&mut self, c: char) -> bool {
        if self.escaped {
            self.escaped = false;
            return false;
        }
        match c {
            '\\' => {
                self.escaped = true;
                false
            }
            '"' => {
                self.quoted = !self.quoted;
                false
            }
            _ => !self.quoted,
        }
    }
}

/// How far into quotes and comments a list's reading is, character by character, as
/// sendmail's `prescan` reads them: a backslash quotes the next character (in quotes
/// and comments too), a `"` outside comments opens or closes a quoted string, and
/// comments nest.
#[derive(Clone, Copy, Debug, Default)]
struct Nesting {
    quoted: bool,
    escaped: bool,
    comment: usize,
}

impl Nesting {
    /// Take the next character; whether it is syntax of the list: outside quotes and
    /// comments, not escaped, and not itself a backslash, a quote or a comment's
    /// parenthesis. A `)` with no comment open is syntax (a stray one).
    fn syntax(&mut self, c: char) -> bool {
        if self.escaped {
            self.escaped = false;
            return false;
        }
        match c {
            '\\' => {
                self.escaped = true;
                false
            }
            '"' if self.comment == 0 => {
                self.quoted = !self.quoted;
                false
            }
            _ if self.quoted => false,
            '(' => {
                self.comment += 1;
                false
            }
            ')' if self.comment > 0 => {
                self.comment -= 1;
                false
            }
            _ => self.comment == 0,
        }
    }

    /// Whether a quote, a comment or a backslash is still open.
    fn is_open(&self) -> bool {
        self.quoted || self.escaped || self.comment > 0
    }
}

/// The local part and the domain of an addr-spec: split at the last `@` outside quotes.
pub fn split_at_domain(spec: &str) -> (&str, Option<&str>) {
    let mut q = Quoting::default();
    let last_at = spec
        .char_indices()
        .filter(|&(_, c)| q.plain(c) && c == '@')
        .last()
        .map(|(i, _)| i);
    match last_at {
        Some(i) => (
            spec.get(..i).unwrap_or(""),
            Some(spec.get(i + 1..).unwrap_or("")),
        ),
        None => (spec, None),
    }
}

/// A local part: words of [`is_local_char`] and quoted strings (RFC 5321's Dot-string
/// or Quoted-string, and RFC 5322's obsolete mix of both), no unquoted `@`.
fn local_part_ok(local: &str) -> Result<(), Invalid> {
    let mut q = Quoting::default();
    for c in local.chars() {
        if !q.plain(c) {
            continue;
        }
        match c {
            '@' | ',' => return Err(Invalid::InvalidRoute),
            c if is_local_char(c) => {}
            c => return Err(Invalid::IllegalLocal(c)),
        }
    }
    if q.quoted {
        return Err(Invalid::Unbalanced('"'));
    }
    // A backslash that ends the local part quotes nothing and is kept as a character
    // of the name, as sendmail keeps it (`g\` is a local user `g\`: `User unknown`).
    Ok(())
}

/// The IP address of an RFC 5321 §4.1.3 address literal, brackets included:
/// `[192.0.2.1]`, or `[IPv6:2001:db8::1]` (the tag in any case).
fn literal_ip(lit: &str) -> Option<std::net::IpAddr> {
    let inner = lit.strip_prefix('[')?.strip_suffix(']')?;
    match inner.split_once(':') {
        Some((tag, v6)) if tag.eq_ignore_ascii_case("IPv6") => {
            v6.parse::<std::net::Ipv6Addr>().ok().map(Into::into)
        }
        Some(_) => None,
        None => inner.parse::<std::net::Ipv4Addr>().ok().map(Into::into),
    }
}

/// RFC 5321 §4.1.3 address literals, brackets included: an IPv4 address, `IPv6:` and an
/// IPv6 address ([`literal_ip`]), or a standardized tag, a colon and `dcontent`.
fn literal_ok(lit: &str) -> bool {
    if literal_ip(lit).is_some() {
        return true;
    }
    let Some(inner) = lit.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    match inner.split_once(':') {
        Some((tag, _)) if tag.eq_ignore_ascii_case("IPv6") => false,
        Some((tag, content)) => {
            labels_problem(tag, false, false).is_none()
                && !tag.contains('.')
                && !content.is_empty()
                && content
                    .bytes()
                    .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b))
        }
        None => false,
    }
}

/// A domain: RFC 5321 labels (a trailing dot, the DNS root, is allowed here and removed
/// by [`normalise`]), at most 253 octets, or an address literal. sendmail refuses an
/// empty label (`Invalid host name`) and lets the rest through to fail at the relay or
/// in DNS; rsendmail refuses every name that cannot be a mail host at once, with the
/// same words (5.1.2, exit 68): `-bad.example`, `ex_ample.org`, a 64-octet label,
/// `[300.1.1.1]`.
fn domain_ok(domain: &str) -> Result<(), Invalid> {
    if domain.is_empty() {
        return Err(Invalid::HostRequired);
    }
    if domain.starts_with('[') {
        return match domain.find(']') {
            Some(end) if end + 1 == domain.len() && literal_ok(domain) => Ok(()),
            Some(end) if end + 1 == domain.len() => Err(Invalid::InvalidHost),
            Some(_) => Err(Invalid::InvalidLiteral),
            None => Err(Invalid::Unbalanced('[')),
        };
    }
    if domain.contains(':') {
        return Err(Invalid::ColonInHost);
    }
    let d = domain.strip_suffix('.').unwrap_or(domain);
    match labels_problem(d, false, true) {
        Some(_) => Err(Invalid::InvalidHost),
        None => Ok(()),
    }
}

/// Whether a local part is an RFC 5321 `Dot-string`: atoms of atext (UTF-8 allowed, RFC
/// 6531) separated by single dots.
fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(|c| c != '.' && is_local_char(c)))
}

/// Whether a local part is a Dot-string some of whose characters are written with a
/// backslash before them (`a\b`, `c\"d`, `e\>f`, `\@example.org`; a backslash that ends
/// it stands for itself): sendmail's `prescan` reads the backslash as quoting the next
/// character and keeps it, and sendmail sends such a local part as it was written
/// (recorded: `backslash-local-odi`, `backslash-special-odi`), so rsendmail does too,
/// rather than send another mailbox's name. Needs at least one backslash.
fn is_escaped_dot_string(local: &str) -> bool {
    if !local.contains('\\') {
        return false;
    }
    let mut atom_len = 0usize;
    let mut chars = local.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n.is_control() => return false,
                _ => atom_len += 1,
            },
            '.' if atom_len == 0 => return false,
            '.' => atom_len = 0,
            c if is_local_char(c) => atom_len += 1,
            _ => return false,
        }
    }
    atom_len > 0
}

/// Whether a local part is one RFC 5321 `Quoted-string` (qtextSMTP and quoted-pairSMTP,
/// UTF-8 allowed by RFC 6531).
fn is_quoted_string(local: &str) -> bool {
    let Some(inner) = local.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if !n.is_control() => {}
                _ => return false,
            },
            '"' => return false,
            c if c.is_control() => return false,
            _ => {}
        }
    }
    true
}

/// The RFC 5321 form of a local part that sendmail accepts but RFC 5321 does not
/// (`.a`, `a.`, `a..b`, `a\@b`, `"a b".c`): its characters, quotes and backslashes
/// removed, written as one quoted string (`".a"`, `"a@b"`), which names the same mailbox
/// (RFC 5322 §3.4.1) and which strict relays accept, as Postfix sends it. A local part
/// that is already a dot-string or a quoted string is kept as written.
fn canonical_local(local: &str) -> String {
    if is_dot_string(local) || is_quoted_string(local) || is_escaped_dot_string(local) {
        return local.to_string();
    }
    quote_local(&local_content(local))
}

/// What a local part says, its quotes and backslash escapes taken away (RFC 5322
/// §3.4.1: `"a b"`, `a\ b` and `"a"\ b` all say `a b`). Used to build a new local part
/// from it (VERP) and write it again with [`quote_local`].
pub fn local_content(local: &str) -> String {
    let mut content = String::new();
    let mut escaped = false;
    for c in local.chars() {
        if escaped {
            content.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => {}
            c => content.push(c),
        }
    }
    content
}

/// A local part's content written as RFC 5321 allows: as it is when it is a
/// Dot-string, else as one Quoted-string with `"` and `\` escaped (`a b` →
/// `"a b"`, `a..b` → `"a..b"`).
pub fn quote_local(content: &str) -> String {
    if is_dot_string(content) {
        return content.to_string();
    }
    let mut out = String::from("\"");
    for c in content.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether an addr-spec is an RFC 5321 `Mailbox` as it may be sent in MAIL or RCPT (or,
/// without a domain, a local name in its RFC 5321 form), or a Dot-string with
/// backslash-quoted characters, which sendmail sends as written.
pub fn is_rfc5321(spec: &str) -> bool {
    let (local, domain) = split_at_domain(spec);
    (is_dot_string(local) || is_quoted_string(local) || is_escaped_dot_string(local))
        && domain.is_none_or(|d| domain_ok(d).is_ok() && !d.ends_with('.'))
}

/// Whether an addr-spec may go into an envelope (see the module docs for the rules and
/// their sources). The local-only forms of aliases (`\user`, `|command`, `/file`) are
/// not addresses: [`check_recipient`] knows them.
pub fn check_mailbox(spec: &str) -> Result<(), Invalid> {
    if spec.is_empty() {
        return Err(Invalid::UserRequired);
    }
    if let Some(c) = spec.chars().find(|c| c.is_control()) {
        return Err(Invalid::Illegal(c));
    }
    if spec.contains(char::REPLACEMENT_CHARACTER) {
        return Err(Invalid::NotUtf8);
    }
    if has_token_too_long(spec, &lex(spec)?) {
        return Err(Invalid::TokenTooLong);
    }
    if spec.len() > MAX_ADDRESS {
        return Err(Invalid::TooLong);
    }
    let (local, domain) = split_at_domain(spec);
    let mut q = Quoting::default();
    if spec.chars().any(|c| q.plain(c) && matches!(c, ' ' | '\t')) {
        return Err(Invalid::Blank);
    }
    if local.is_empty() {
        return Err(Invalid::UserRequired);
    }
    local_part_ok(local)?;
    match domain {
        None => Ok(()),
        Some(d) => domain_ok(d),
    }
}

/// An address as it is stored and sent: RFC 5321's form ([`is_rfc5321`]). A domain's
/// trailing dot (the DNS root) is removed, as sendmail sends `a@example.org.` to
/// `<a@example.org>`, and a local part sendmail takes but RFC 5321 does not is quoted
/// (`a..b@x` → `"a..b"@x`; see [`canonical_local`]).
pub fn normalise(spec: &str) -> String {
    // The local-only forms of aliases are not mailboxes: `\user` (a user name after
    // the backslash) keeps its backslash.
    if let Some(user) = spec.strip_prefix('\\')
        && is_dot_string(user)
    {
        return spec.to_string();
    }
    if spec.starts_with(['|', '/']) {
        return spec.to_string();
    }
    let (local, domain) = split_at_domain(spec);
    let local = canonical_local(local);
    match domain {
        Some(d) if d.len() > 1 && d.ends_with('.') && !d.starts_with('[') => {
            format!("{local}@{}", d.trim_end_matches('.'))
        }
        Some(d) => format!("{local}@{d}"),
        None => local,
    }
}

/// [`check_mailbox`] for a recipient, which may also be one of the local-only forms:
/// `\user` (the mailbox, no aliasing) is checked without its backslash; `|command` and
/// `/file` pass here and are refused or allowed by whoever reads them (the command line
/// refuses them, aliases allow them).
pub fn check_recipient(addr: &str) -> Result<(), Invalid> {
    if addr.starts_with(['|', '/']) {
        return match addr.chars().find(|c| c.is_control()) {
            Some(c) => Err(Invalid::Illegal(c)),
            None if addr.contains(char::REPLACEMENT_CHARACTER) => Err(Invalid::NotUtf8),
            None => Ok(()),
        };
    }
    // `\user` only when a user name follows the backslash, as [`normalise`] reads it;
    // otherwise the backslash is the address's own (`\\@` is a quoted backslash and no
    // host: `Hostname required`, as sendmail says).
    match addr.strip_prefix('\\') {
        Some(user) if is_dot_string(user) => check_mailbox(user),
        // A backslash that quotes nothing (`<\>`) names no one.
        Some("") => Err(Invalid::NoUser),
        _ => check_mailbox(addr),
    }
}

/// The domain of an address, lowercased (`None` for an unqualified local name).
pub fn domain_of(addr: &str) -> Option<String> {
    match split_at_domain(addr) {
        (_, Some(d)) if !d.is_empty() => Some(d.to_ascii_lowercase()),
        _ => None,
    }
}

/// The one form in which two domains are compared, everywhere a domain is compared
/// (ETRN and `-qR` selection, the fast-flush lists, `RelayDomains`, the relay table,
/// this host's own names, duplicate recipients, the admin tool's filters): lower case
/// (RFC 5321 §2.4), without the one trailing dot of an absolute name (RFC 1034 §3.1),
/// and with U-labels as their A-labels (`Bücher.Example.` → `xn--bcher-kva.example`;
/// IDNA 2008 with UTS #46 mapping, RFC 5891, the `idna` crate), so that a domain in
/// U-label and in A-label form is one domain. A name with no A-label form (a label that
/// is not a valid U-label) is compared as its text, lower-cased. Never fails.
pub fn domain_key(domain: &str) -> String {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_ascii() {
        return d.to_ascii_lowercase();
    }
    ascii_domain(d).unwrap_or_else(|| d.to_lowercase())
}

/// [`domain_key`] of an address's domain (`None` for an unqualified local name).
pub fn domain_key_of(addr: &str) -> Option<String> {
    domain_of(addr).map(|d| domain_key(&d))
}

/// What makes two envelope recipients one (the second is dropped as a duplicate): the
/// address as written, except that a domain with U-labels counts as its A-labels
/// ([`domain_key`]), so `u@bücher.example` and `u@xn--bcher-kva.example`, which a server
/// without SMTPUTF8 is sent as the same `RCPT TO:<u@xn--bcher-kva.example>`, are one
/// recipient. ASCII addresses compare byte for byte, as sendmail 8.17 compares them
/// (recorded: `dup-case-argv`).
pub fn duplicate_key(addr: &str) -> String {
    match split_at_domain(addr) {
        (local, Some(d)) if !d.is_ascii() => format!("{local}@{}", domain_key(d)),
        _ => addr.to_string(),
    }
}

/// A domain in the form DNS and a server without SMTPUTF8 take: an ASCII name as it is,
/// a name with U-labels as its A-labels (`bücher.example` → `xn--bcher-kva.example`; IDNA
/// 2008 with UTS #46 mapping, RFC 5891, the `idna` crate). None for a name that has no
/// such form (a label that is not a valid U-label).
pub fn ascii_domain(domain: &str) -> Option<String> {
    if domain.is_ascii() {
        return Some(domain.to_string());
    }
    let trailing_dot = domain.ends_with('.');
    let a = idna::domain_to_ascii(domain.trim_end_matches('.')).ok()?;
    if a.is_empty() {
        return None;
    }
    Some(if trailing_dot { format!("{a}.") } else { a })
}

/// An address as a server without SMTPUTF8 can take it (RFC 6531 §3.2, RFC 5891): an
/// ASCII address as it is; one whose only non-ASCII part is its domain with the domain's
/// A-labels (`c@bücher.example` → `c@xn--bcher-kva.example`). None when the address
/// needs SMTPUTF8: a non-ASCII local part, or a domain with no A-label form.
pub fn ascii_address(addr: &str) -> Option<std::borrow::Cow<'_, str>> {
    if addr.is_ascii() {
        return Some(std::borrow::Cow::Borrowed(addr));
    }
    let (local, domain) = split_at_domain(addr);
    let domain = domain?;
    if !local.is_ascii() {
        return None;
    }
    let a = ascii_domain(domain)?;
    Some(std::borrow::Cow::Owned(format!("{local}@{a}")))
}

/// Whether a domain names this host: its name, `localhost`, or a loopback address
/// literal (`[127.0.0.1]`, `[IPv6:::1]`), which sendmail treats as local too. The name
/// is compared as a [`domain_key`] (`bücher.example` is `xn--bcher-kva.example`).
fn is_this_host(domain: &str, host_name: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    domain_key(d) == domain_key(host_name)
        || d.eq_ignore_ascii_case("localhost")
        || literal_ip(d).is_some_and(|ip| ip.is_loopback())
}

/// Whether an address is delivered on this host: one of the local-only forms
/// (`\\user`, `|command`, `/file`), or, unless everything goes to the smarthost (a
/// NULLCLIENT with a SMARTHOST, as dma does), no domain, this host's name, `localhost`
/// or a loopback address literal. The one rule for submission and delivery.
pub fn is_local(addr: &str, host_name: &str, all_to_smarthost: bool) -> bool {
    if addr.starts_with(['|', '/', '\\']) {
        return true;
    }
    if all_to_smarthost {
        return false;
    }
    match split_at_domain(addr) {
        (_, None) => true,
        (_, Some(d)) => is_this_host(d, host_name),
    }
}

/// One recipient taken from a list, as sendmail keeps it: the text as written (what
/// `mailq` shows) and the addr-spec the envelope uses, or why it is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub text: String,
    pub address: String,
    pub error: Option<Invalid>,
    /// Which list named it (0 for the first: the command line's arguments in order,
    /// then the header fields), for sendmail's order of what it says: each list is
    /// parsed, then its recipients expanded, before the next list is read.
    pub list: usize,
}

/// The recipients of one list (a header field or one argv argument) in sendmail's order,
/// which is the reverse of the written order within a list (recorded from 8.17:
/// `a, b, c` is queued as c, b, a; separate lists keep their order). `old_style` is the
/// message's [`OldStyle`] for this list. Every item is checked with
/// [`check_recipient`]; a refused one carries its error, and a good one is
/// [`normalise`]d.
pub fn recipients_of_list(value: &str, old_style: bool) -> Vec<Listed> {
    parse_list(value, old_style)
        .into_iter()
        .rev()
        .map(|item| {
            let error = item
                .error
                .or_else(|| check_recipient(&item.address).err())
                .map(|e| match e {
                    // A lone `@`: no local part and no domain, a local user with no
                    // name to sendmail (`@... User unknown`), where `@example.org` is
                    // `User address required`.
                    Invalid::UserRequired if item.address == "@" => Invalid::NoUser,
                    e => e,
                });
            let address = if error.is_none() {
                normalise(&item.address)
            } else {
                item.address
            };
            Listed {
                text: if item.text.is_empty() {
                    address.clone()
                } else {
                    item.text
                },
                address,
                error,
                list: 0,
            }
        })
        .collect()
}

/// Whether an addr-spec is in fact an RFC 2047 encoded word (`=?UTF-8?B?...?=`) that a
/// writer put where a display name belongs; it is never qualified.
fn is_encoded_word(spec: &str) -> bool {
    spec.starts_with("=?") && spec.ends_with("?=") && spec.len() > 4
}

/// Whether an unqualified local part is a UUCP bang path (`host!user`, `a!b!c`: an
/// unquoted `!` with something on each side), which names its own host and which
/// sendmail's rule set 3 takes as qualified (recorded: `hdr-bang-path`).
fn is_bang_path(spec: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    // Something was before an unquoted `!`; something is after it.
    let (mut before, mut bang) = (false, false);
    for c in spec.chars() {
        if c == '!' && !quoted && !escaped && before {
            bang = true;
            continue;
        }
        if bang {
            return true;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        }
        before = true;
    }
    false
}

/// A header field's value with what it leaves open closed, as sendmail's `prescan`
/// and `crackaddr` close it (recorded: `hdr-unclosed-*`, `hdr-unbal-more`, `hdr-more2`,
/// `hdr-group-combo`, `hdr-nested-group`): a `<` left open ends at the next comma and is
/// closed there, in place of the blanks before that comma (`<a@x , b` → `<a@x>, b`; in a
/// group a `;` before the comma stays inside: `g: <c;, d` → `g: <c;>, d`); a `<` whose
/// first character is `@` opens a source route, whose commas do not end it: it runs to
/// the end (`<@r:v@x, w` → `<@r:v@x, w>`); a quote or comment left open runs to the end;
/// what is open at the end is closed there, before the blanks that end the value. A `<`
/// is closed whether or not its item then parses (`bad <, x` → `bad <>, x`); a quote or
/// comment only when it then parses (`x7, (open <, x8` stays as written, recorded:
/// `hdr-unclosed-bad-item`). Returns the closed text (`None` when nothing is closed)
/// and, when the last item is left open, where the comma before it is: that item
/// is kept as written, and the items before it are rewritten on their own.
fn close_open(text: &str, old_style: bool) -> (Option<String>, Option<usize>) {
    // Where each closer goes (a byte offset into `text`), what it is, and how many
    // octets of blanks before it it replaces.
    let mut closers: Vec<(usize, String, usize)> = Vec::new();
    let mut n = Nesting::default();
    let (mut angles, mut route) = (0usize, false);
    // Where the item being read starts.
    let mut item = 0usize;
    // Whether the last item of `piece` parses as an address (a dropped source route is
    // no fault).
    let parses = |piece: &str| {
        parse_list(piece, old_style)
            .into_iter()
            .rfind(|i| i.error != Some(Invalid::EmptyGroup))
            .is_some_and(|i| {
                (i.error.is_none() || (i.error == Some(Invalid::SourceRoute) && i.route.is_some()))
                    && check_mailbox(i.address.strip_suffix(';').unwrap_or(&i.address)).is_ok()
            })
    };
    let close_at = |item: usize, at: usize, with: String| {
        let before = text.get(item..at).unwrap_or_default();
        let kept = before.trim_end();
        let blanks = before.len() - kept.len();
        (!with.contains(['"', ')']) || parses(&format!("{kept}{with}")))
            .then(|| (at - blanks, with, blanks))
    };
    let mut open_tail = None;
    for (at, c) in text.char_indices() {
        if !n.syntax(c) {
            continue;
        }
        match c {
            '<' => {
                if angles == 0 {
                    let rest = text.get(at + 1..).unwrap_or_default();
                    route = rest.trim_start().starts_with('@');
                }
                angles += 1;
            }
            '>' => angles = angles.saturating_sub(1),
            ',' if angles > 0 && route => {}
            ',' => {
                if angles > 0 {
                    closers.extend(close_at(item, at, ">".repeat(angles)));
                    angles = 0;
                }
                item = at + 1;
            }
            _ => {}
        }
    }
    if !n.escaped && (n.quoted || n.comment > 0 || angles > 0) {
        let with = format!(
            "{}{}{}",
            if n.quoted { "\"" } else { "" },
            ")".repeat(n.comment),
            ">".repeat(angles)
        );
        // Blanks that end the value stay after the closer.
        let end = text.trim_end().len();
        match close_at(item, end, with) {
            Some((_, w, _)) => closers.push((end, w, 0)),
            None => open_tail = item.checked_sub(1),
        }
    }
    if closers.is_empty() {
        return (None, open_tail);
    }
    let mut out = String::with_capacity(text.len() + closers.len() * 2);
    let mut from = 0;
    for (at, with, blanks) in closers {
        out.push_str(text.get(from..at).unwrap_or_default());
        out.push_str(&with);
        from = at + blanks;
    }
    out.push_str(text.get(from..).unwrap_or_default());
    (Some(out), open_tail)
}

/// How one parsed item's addr-spec is written in a header as sendmail writes it, if
/// not as it stands: qualified with `@domain` when `qualify`; a domain naming this host
/// (`localhost`, a loopback address literal) replaced by `domain` (recorded:
/// `hdr-own-names`); the root's trailing dot dropped (`u@example.org.`, which no header
/// address carries; `hdr-trailing-dot`); written with blanks or comments inside
/// (`x\n y@example.org`, `john.(c)smith@example.org`), written as it is sent
/// (`x.y@example.org`), its comments after it (`hdr-fold-in-address`,
/// `hdr-comment-in-address`).
fn rewrite_spec(
    base: &str,
    i: &Item,
    domain: &str,
    qualify: bool,
) -> Option<(Range<usize>, String)> {
    let region = base.get(i.spec_start..i.spec_end)?;
    let tokens = lex(region).ok()?;
    // A comma inside the brackets (`<@, x5>`) ends no item and makes no address: the
    // item is kept as written (recorded: `hdr-unclosed-bad-route`).
    if tokens.iter().any(|t| t.kind == Kind::Special(',')) {
        return None;
    }
    let comments: Vec<&str> = tokens
        .iter()
        .filter(|t| t.kind == Kind::Comment)
        .filter_map(|t| region.get(t.span.clone()))
        .collect();
    let loose = tokens.iter().any(|t| t.kind == Kind::Space) || !comments.is_empty();
    // Only what reads the same as the envelope's address is rewritten: an encoded word,
    // a comment inside angle brackets, or text `join_spec` changed otherwise is left.
    if (loose && ((i.angle && !comments.is_empty()) || i.address.contains("=?")))
        || (!loose && region != i.address)
    {
        return qualify.then(|| (i.spec_end..i.spec_end, format!("@{domain}")));
    }
    let mut new = i.address.clone();
    if let (local, Some(d)) = split_at_domain(&i.address) {
        let own =
            d.eq_ignore_ascii_case("localhost") || literal_ip(d).is_some_and(|ip| ip.is_loopback());
        if own && check_mailbox(&i.address).is_ok() {
            new = format!("{local}@{domain}");
        } else if d.len() > 1 && d.ends_with('.') && !d.ends_with("..") {
            // `z@[127.0.0.1].` loses its dot and stays a literal, as in sendmail.
            let bare = i.address.strip_suffix('.').unwrap_or_default();
            if check_mailbox(bare).is_ok() {
                new = bare.to_string();
            }
        }
    }
    if qualify {
        new.push('@');
        new.push_str(domain);
    }
    for c in comments {
        new.push(' ');
        new.push_str(c);
    }
    (new != region).then_some((i.spec_start..i.spec_end, new))
}

/// Rewrite an address field's value as sendmail sends it, item by item: every
/// unqualified address gets `@domain` (`root (Cron Daemon)` → `root@host (Cron
/// Daemon)`, `mdadm monitoring <root>` → `mdadm monitoring <root@host>`), a trailing dot
/// of a domain is dropped (`u@example.org.` → `u@example.org`), a source route inside
/// angle brackets is dropped (`<@r.example:u@example.org>` → `<u@example.org>`), a
/// `<`, quote or comment left open is closed where sendmail closes it (`close_open`),
/// an old-style list is written with commas (`alice bob` → `alice@host, bob@host`), and
/// the items are separated as sendmail separates them (`tidy_separators`), and display
/// names holding sendmail's `MustQuoteChars` are quoted as sendmail quotes them
/// (`quote_display_names`; a name no RFC 5322 phrase allows, `a;b <c@x>`, makes a
/// field rewritten). An item that does not parse (`<>`, `<a@x> <b@y>`) is kept as
/// written and does not stop the others being rewritten (as in sendmail; recorded:
/// `hdr-route-*`, `hdr-empty-angle`). Everything else — comments, white space inside an
/// item, folding after a comma, group names, encoded words, bang paths — is kept byte
/// for byte. `None` when nothing changes.
pub fn qualify_list(text: &str, domain: &str, old_style: bool) -> Option<String> {
    // A group without members names no address to qualify.
    let parse = |t: &str| -> Vec<Item> {
        parse_list(t, old_style)
            .into_iter()
            .filter(|i| i.error != Some(Invalid::EmptyGroup))
            .collect()
    };
    // Close what is left open, item by item.
    let (closed, open_tail) = close_open(text, old_style);
    if let Some(comma) = open_tail {
        // The last item stays open: the others are rewritten without it.
        let (head, tail) = text.split_at_checked(comma)?;
        let head = qualify_list(head, domain, old_style).unwrap_or_else(|| head.to_string());
        return Some(format!("{head}{tail}")).filter(|out| out != text);
    }
    let base = closed.as_deref().unwrap_or(text);
    let items = parse(base);
    let needs = |i: &Item| {
        i.error.is_none()
            && split_at_domain(&i.address).1.is_none()
            && !is_encoded_word(&i.address)
            && !is_bang_path(&i.address)
            && check_mailbox(&i.address).is_ok()
    };
    if old_style && items.len() > 1 {
        // A blank-separated list: each address as written, joined with commas.
        let parts: Vec<String> = items
            .iter()
            .map(|i| {
                if needs(i) {
                    format!("{}@{domain}", i.text)
                } else {
                    i.text.clone()
                }
            })
            .collect();
        let lead: String = base.chars().take_while(|c| c.is_whitespace()).collect();
        return Some(format!("{lead}{}", parts.join(", ")));
    }
    // Each edit replaces a range of `base` (an insertion is an empty one).
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for i in &items {
        match (&i.error, &i.route) {
            // A route that leads to no address (`g: <@r:>;`) is refused as `User
            // address required` and kept as written, as sendmail keeps it (recorded:
            // `hdr-odd-route-only-group`), by the arm for other faults below.
            (Some(Invalid::SourceRoute), Some(route)) => {
                // The route is dropped and what it led to is qualified as any other
                // address (`<@r.example:v, w` → `<w@host>`); the comments in the route
                // follow the address, as sendmail moves them (`<@r:p@x (c), q` →
                // `<q@host (c)>`; recorded: `hdr-odd-route-comment`), and so does a
                // `;` in it, which may end a group (`h: <@r:q;, c` → `h: <c@host;>`,
                // recorded: `hdr-odd-group-open-route`).
                edits.push((route.clone(), String::new()));
                let mut after = i.clone();
                after.error = None;
                let mut with = String::new();
                if needs(&after) && i.spec_start >= route.end {
                    with = format!("@{domain}");
                }
                let region = base.get(route.clone()).unwrap_or_default();
                let tokens = lex(region).unwrap_or_default();
                if i.spec_start >= route.end {
                    for t in tokens.iter().filter(|t| t.kind == Kind::Comment) {
                        with.push(' ');
                        with.push_str(at(region, &t.span));
                    }
                    if tokens.iter().any(|t| t.kind == Kind::Special(';')) {
                        with.push(';');
                    }
                }
                if !with.is_empty() {
                    edits.push((i.spec_end..i.spec_end, with));
                }
            }
            (Some(_), _) => {}
            (None, _) => {
                // A `;` inside the brackets (`g: <c;, d`, closed `<c;>`) is not part of
                // the address: it stays after it (`<c@host;>`).
                let bare = i.angle.then(|| i.address.strip_suffix(';')).flatten();
                let edit = match bare {
                    Some(address) => {
                        let region = base.get(i.spec_start..i.spec_end).unwrap_or_default();
                        let spec_end = i.spec_start
                            + region.strip_suffix(';').unwrap_or(region).trim_end().len();
                        let item = Item {
                            address: address.to_string(),
                            spec_end,
                            ..i.clone()
                        };
                        rewrite_spec(base, &item, domain, needs(&item))
                    }
                    None => rewrite_spec(base, i, domain, needs(i)),
                };
                edits.extend(edit);
            }
        }
    }
    // A field that needs nothing else is kept byte for byte (a signature made before
    // submission stays valid); one rewritten anyway is separated and has its display
    // names quoted as sendmail writes them. A display name that no RFC 5322 phrase
    // allows (`a;b <c@x>`) is such a need.
    if edits.is_empty() && closed.is_none() && quote_display_names(base, false).is_none() {
        return None;
    }
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(base.len() + edits.len() * (domain.len() + 1));
    let mut from = 0;
    for (range, with) in edits {
        if range.start < from {
            // Two edits of one place: never the case for items of one list.
            continue;
        }
        out.push_str(base.get(from..range.start)?);
        out.push_str(&with);
        from = range.end;
    }
    out.push_str(base.get(from..)?);
    let out = quote_display_names(&out, true).unwrap_or(out);
    Some(tidy_separators(&out))
}

/// The characters whose presence outside quotes and comments in a display name makes
/// sendmail quote the name when it rewrites the field: its `MustQuoteChars`
/// (`@,;:\()[].'`) less those that cannot stand in a name that lexes (a `,` or `:` ends
/// the item or opens a group, a comment's own parentheses do not count, and a `)` that
/// closes nothing makes the item refused and the field kept as written).
const MUST_QUOTE: &[char] = &['@', ';', '\\', '[', ']', '.', '\''];

/// The display names of an address list quoted as sendmail quotes them (`J. Smith <j>`
/// → `"J. Smith" <j>`, `a;b <c>` → `"a;b" <c>`, `x "y" z. <d>` → `"x \"y\" z." <d>`;
/// recorded: `hdr-name-*`): a name holding one of [`MUST_QUOTE`] outside quotes and
/// comments becomes one quoted string, its comments and quoted words inside it, the
/// blanks before the `<` after it. `all` takes every such character; otherwise only
/// those RFC 5322 allows in no phrase (`@ ; \ [ ]` and a domain literal), so that a name
/// that is an obsolete phrase (`J. Smith`, `O'Brien`) is left as written in a field
/// that is otherwise kept byte for byte. A name holding an encoded word is left as
/// written: quoted, it would no longer be decoded (RFC 2047 §5). `None` when nothing
/// changes or the list does not lex.
fn quote_display_names(text: &str, all: bool) -> Option<String> {
    let tokens = lex(text).ok()?;
    let triggers = |t: &Token| match t.kind {
        Kind::Special(c) => c == '@' || c == ';',
        Kind::Literal => true,
        Kind::Atom => at(text, &t.span)
            .chars()
            .any(|c| MUST_QUOTE.contains(&c) && (all || !matches!(c, '.' | '\''))),
        _ => false,
    };
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    // Where the current item's phrase begins; `None` after its first `<`, since what
    // follows that is no phrase (`<a@x> <b@x>` stays as written).
    let (mut start, mut angles, mut group) = (Some(0usize), 0usize, false);
    for (k, t) in tokens.iter().enumerate() {
        match t.kind {
            Kind::Special('<') => {
                if angles == 0
                    && let Some(from) = start.take()
                {
                    let phrase = tokens.get(from..k).unwrap_or_default();
                    let words: Vec<&Token> =
                        phrase.iter().filter(|t| t.kind != Kind::Space).collect();
                    let quote = words.iter().any(|t| triggers(t))
                        && !words
                            .iter()
                            .any(|t| t.kind == Kind::Atom && is_encoded_word(at(text, &t.span)));
                    if let (true, Some(first), Some(last)) = (quote, words.first(), words.last()) {
                        let mut q = String::from("\"");
                        for t in phrase
                            .iter()
                            .skip_while(|t| t.kind == Kind::Space)
                            .take_while(|t| t.span.end <= last.span.end)
                        {
                            let piece = at(text, &t.span);
                            match t.kind {
                                // A quoted word's own quotes are escaped, what is
                                // inside it kept (its quoted pairs mean the same).
                                Kind::Quoted => {
                                    let inner = piece
                                        .strip_prefix('"')
                                        .and_then(|p| p.strip_suffix('"'))
                                        .unwrap_or(piece);
                                    q.push_str("\\\"");
                                    q.push_str(inner);
                                    q.push_str("\\\"");
                                }
                                _ => q.push_str(piece),
                            }
                        }
                        // A backslash that ends the name must not take the closing
                        // quote.
                        let trailing = q.chars().rev().take_while(|&c| c == '\\').count();
                        if trailing % 2 == 1 {
                            q.push('\\');
                        }
                        q.push('"');
                        edits.push((first.span.start..last.span.end, q));
                    }
                }
                angles += 1;
            }
            Kind::Special('>') => angles = angles.saturating_sub(1),
            Kind::Special(',') if angles == 0 => start = Some(k + 1),
            Kind::Special(':') if angles == 0 => {
                group = true;
                start = Some(k + 1);
            }
            Kind::Special(';') if angles == 0 && group => {
                group = false;
                start = Some(k + 1);
            }
            _ => {}
        }
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + edits.len() * 4);
    let mut from = 0;
    for (range, with) in edits {
        out.push_str(text.get(from..range.start)?);
        out.push_str(&with);
        from = range.end;
    }
    out.push_str(text.get(from..)?);
    Some(out)
}

/// An address list with its items separated as sendmail's `commaize` writes them (for
/// a field rewritten anyway; sendmail rewrites every one, see `badrcpt-comma-t`): a
/// comma and one blank, no blanks before the comma, empty items dropped (`a1 ,a2` →
/// `a1, a2`, `d1,,d2` → `d1, d2`, `, e1` → `e1`, `c1,  c2,` → `c1, c2`; recorded:
/// `hdr-list-spacing`). A line break after a comma is kept as written (sendmail folds
/// the field anew, which a reader does not see). A list with a quote, comment or
/// bracket left open is returned as it is.
fn tidy_separators(text: &str) -> String {
    let mut n = Nesting::default();
    let mut angles = 0usize;
    let mut commas = Vec::new();
    for (at, c) in text.char_indices() {
        if !n.syntax(c) {
            continue;
        }
        match c {
            ')' => return text.to_string(),
            '<' => angles += 1,
            '>' if angles > 0 => angles -= 1,
            '>' => return text.to_string(),
            ',' if angles == 0 => commas.push(at),
            _ => {}
        }
    }
    if commas.is_empty() || n.is_open() || angles > 0 {
        return text.to_string();
    }
    let body = text.trim_end();
    let lead_len = body.len() - body.trim_start().len();
    let mut out = String::with_capacity(text.len() + commas.len());
    out.push_str(text.get(..lead_len).unwrap_or_default());
    let mut from = lead_len;
    let mut first = true;
    for end in commas.iter().copied().chain(std::iter::once(body.len())) {
        let piece = text.get(from..end).unwrap_or_default();
        from = end + 1;
        let item = piece.trim();
        if item.is_empty() {
            continue;
        }
        if !first {
            let blanks = piece
                .get(..piece.len() - piece.trim_start().len())
                .unwrap_or_default();
            out.push(',');
            out.push_str(if blanks.contains('\n') { blanks } else { " " });
        }
        first = false;
        out.push_str(item);
    }
    out.push_str(text.get(body.len()..).unwrap_or_default());
    out
}

/// Parse one address given alone (`-f`, an alias target, an SMTP path's inside):
/// `Name <addr>`, `addr (comment)` or a bare addr-spec, checked with [`check_mailbox`]
/// and [`normalise`]d.
pub fn parse_one(text: &str) -> Result<String, Invalid> {
    let items: Vec<Item> = parse_list(text, false)
        .into_iter()
        .filter(|i| i.error != Some(Invalid::EmptyGroup))
        .collect();
    match items.as_slice() {
        [] => Err(Invalid::UserRequired),
        [one] => {
            if let Some(e) = &one.error {
                return Err(e.clone());
            }
            check_mailbox(&one.address)?;
            Ok(normalise(&one.address))
        }
        // `a@x, b@y` where one address is wanted: sendmail's `Invalid route address`
        // for a comma inside an address. A quote, comment or bracket left open is the
        // fault to name (`a@x, "b`: `Unbalanced '"'`).
        [..] => Err(items
            .iter()
            .find_map(|i| match &i.error {
                Some(e @ Invalid::Unbalanced(_)) => Some(e.clone()),
                _ => None,
            })
            .unwrap_or(Invalid::InvalidRoute)),
    }
}

/// One target of an alias, an `:include:` file or a `.forward` file: as [`parse_one`],
/// but a target that names only a group without members or `<@>` (blanks and comments
/// aside) is sendmail's `List:; syntax illegal for recipient addresses`
/// ([`Invalid::EmptyGroup`], 553 5.1.3) there as on the command line (recorded:
/// `alias-at-target-bv`, `alias-at-target-odi`, `forward-at-target-odi`).
pub fn parse_target(text: &str) -> Result<String, Invalid> {
    let items = parse_list(text, false);
    if !items.is_empty() && items.iter().all(|i| i.error == Some(Invalid::EmptyGroup)) {
        return Err(Invalid::EmptyGroup);
    }
    match parse_one(text) {
        // A lone `@` or `N <@>`: a local user with no name, as among recipients
        // ([`recipients_of_list`]; recorded: `"x" <@>... User unknown`).
        Err(Invalid::UserRequired) if matches!(items.as_slice(), [one] if one.address == "@") => {
            Err(Invalid::NoUser)
        }
        r => r,
    }
}

/// The longest domain, in octets (RFC 1035 §2.3.4 less the root's dot and length).
const MAX_DOMAIN: usize = 253;

/// The longest label, in octets (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Why `name`, a domain as it is compared and sent (its A-labels, no trailing dot), is
/// longer than DNS allows (RFC 1035 §2.3.4): more than 253 octets in all, or a label of
/// more than 63; `None` when it is not. For the configured domains whose characters are
/// checked otherwise (`RELAYTABLE`'s patterns, `RelayDomains`, `FastFlushDomains`): no
/// such domain can be asked for or named by a recipient, so a longer one is a mistake.
pub fn domain_length_problem(name: &str) -> Option<String> {
    if name.len() > MAX_DOMAIN {
        return Some(format!(
            "longer than {MAX_DOMAIN} octets ({} octets)",
            name.len()
        ));
    }
    name.split('.')
        .map(str::len)
        .find(|&n| n > MAX_LABEL)
        .map(|n| format!("a label longer than {MAX_LABEL} octets ({n} octets)"))
}

/// Why `name` (no brackets, no trailing dot) is not a host name, if it is not: labels of
/// letters, digits and inner hyphens (RFC 5321 §4.1.2 `Let-dig [Ldh-str]`), 1 to 63
/// octets each, 253 in all. `underscore` also allows `_` (names resolvers look up, which
/// sendmail passes); `unicode` allows RFC 6531 U-labels (non-ASCII letters and digits).
/// The one label rule for recipients' domains and for the names in the config.
fn labels_problem(name: &str, underscore: bool, unicode: bool) -> Option<String> {
    if name.is_empty() {
        return Some("empty name".into());
    }
    if name.len() > MAX_DOMAIN {
        return Some(format!("longer than {MAX_DOMAIN} octets"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("empty label".into());
        }
        let ok = |c: char| {
            c.is_ascii_alphanumeric()
                || c == '-'
                || (underscore && c == '_')
                || (unicode && !c.is_ascii() && c.is_alphanumeric())
        };
        if let Some(c) = label.chars().find(|&c| !ok(c)) {
            return Some(format!(
                "{} is not a letter, digit, hyphen or dot",
                crate::text::named_char(c)
            ));
        }
        if label.len() > MAX_LABEL {
            return Some(format!("label longer than {MAX_LABEL} octets"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label {label} begins or ends with a hyphen"));
        }
    }
    None
}

/// Whether `name` is a domain as RFC 5321 §4.1.2 writes one: labels of letters, digits
/// and inner hyphens, 1 to 63 octets each, 253 in all, no trailing dot; or an address
/// literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]`. For the names this host gives itself
/// (MAILNAME, MASQUERADE's domain), which go into EHLO, the envelope sender and the
/// header as they are. `Err` says why not.
pub fn check_domain(name: &str) -> Result<(), String> {
    config_name(name, false)
}

/// A mail name (MAILNAME, or the first line of the file it names) in the form it is
/// used in: an ASCII name as it is ([`check_domain`]); a name with U-labels
/// (`bücher.example`) as its A-labels (`xn--bcher-kva.example`, [`ascii_domain`]), the
/// form that goes into EHLO, `Message-Id:`, `From:`, `Received:` and reports, which a
/// server without SMTPUTF8 takes. Its labels are checked as written (letters, digits
/// and inner hyphens, non-ASCII letters and digits too) and as A-labels. `Err` says
/// why it cannot be one.
pub fn ascii_mail_name(name: &str) -> Result<String, String> {
    if name.is_ascii() {
        return check_domain(name).map(|()| name.to_string());
    }
    if let Some(why) = labels_problem(name, false, true) {
        return Err(why);
    }
    let a = ascii_domain(name).ok_or("not a valid internationalized domain name")?;
    check_domain(&a).map_err(|why| format!("{why} (as {a})"))?;
    Ok(a)
}

/// Why `name` cannot be this host's mail name although [`check_domain`] takes it: an
/// address literal (`[192.0.2.1]`), an IP address (`192.168.1.1`: the last label all
/// digits, which no top-level domain is), or `localhost` (`localhost.localdomain`), which
/// every host calls itself; `None` when it can be one. The rule of the Debian package's
/// mail-name question (`packaging/debian/validate.sh`, `valid_mailname`, which also
/// refuses what `check_domain` refuses); `rsendmail-admin check` fails such a MAILNAME.
/// A one-label name passes here (check warns of it); a name with U-labels is judged by
/// its A-labels ([`ascii_mail_name`]).
pub fn mail_name_problem(name: &str) -> Option<String> {
    let name = match ascii_mail_name(name) {
        Ok(a) => a,
        Err(why) => return Some(why),
    };
    let name = name.as_str();
    if name.starts_with('[') {
        return Some("an address literal is no mail name: give a domain name".into());
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Some("an IP address is no mail name: give a domain name".into());
    }
    if name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.localdomain")
    {
        return Some(
            "localhost is what every host calls itself: give this host's domain name".into(),
        );
    }
    None
}

/// [`check_domain`] for a host this host connects to (a relay, a smarthost): labels may
/// also hold `_`, as resolvers look such names up and sendmail passes them.
pub fn check_host_name(name: &str) -> Result<(), String> {
    config_name(name, true)
}

fn config_name(name: &str, underscore: bool) -> Result<(), String> {
    if name.starts_with('[') {
        return match literal_ip(name) {
            Some(_) => Ok(()),
            None => Err("not an address literal ([IPv4] or [IPv6:IPv6])".into()),
        };
    }
    match labels_problem(name, underscore, false) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    /// `mail_name_problem` and the Debian package's validator (`valid_mailname` in
    /// packaging/debian/validate.sh, run by sh) take and refuse the same names.
    #[test]
    fn mail_name_rule_is_the_package_validators() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/debian/validate.sh");
        for name in [
            "host.example",
            "a.b1",
            "vm",
            "mail-1.example.org",
            "192.168.1.1",
            "10.0.0.300",
            "1.2.3.4.5",
            "example.123",
            "123.example",
            "localhost",
            "LocalHost",
            "localhost.localdomain",
            "LOCALHOST.LOCALDOMAIN",
            "localhost.example",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "::1",
            "2001:db8::1",
            "",
            "-bad.example",
            "bad-.example",
            "a..b",
            "host.example.",
            "has space.example",
            "under_score.example",
            "bücher.example",
            "Bücher.Example",
            "mail.bücher.example",
            "münchen",
            "bücher.123",
            "-bücher.example",
            "bücher-.example",
            "bü cher.example",
            "bücher..example",
            "bücher.example.",
        ] {
            let ours = mail_name_problem(name).is_none();
            let st = std::process::Command::new("sh")
                .args(["-c", ". \"$0\"; valid_mailname \"$1\"", script, name])
                .status()
                .unwrap();
            assert_eq!(
                ours,
                st.success(),
                "{name:?}: ours {:?}, the validator's {st}",
                mail_name_problem(name)
            );
        }
    }

    /// A control character in an address is named as sendmail names it, shown as `?`,
    /// never raw nor as a Rust escape (compat-tests/cases/addr-ctl-argv-*).
    #[test]
    fn control_characters_are_shown_as_sendmail_shows_them() {
        for (addr, shown) in [
            ("a\u{1}b@example.org", "a?b@example.org"),
            ("a\u{1b}[31mb@example.org", "a?[31mb@example.org"),
            ("e\u{7f}f@example.org", "e?f@example.org"),
            ("c\u{9b}1m@example.org", "c?1m@example.org"),
            ("a\rb\n@example.org", "a?b?@example.org"),
        ] {
            let e = check_mailbox(addr).unwrap_err();
            assert!(matches!(e, Invalid::Illegal(_)), "{e:?}");
            assert_eq!(
                e.message(addr),
                format!("Syntax error in mailbox address \"{shown}\" (non-printable character)")
            );
        }
    }

    fn addrs(input: &str) -> Vec<String> {
        parse_list(input, false)
            .into_iter()
            .map(|i| i.address)
            .collect()
    }

    /// A group naming no one is refused with sendmail's words (recorded:
    /// `argv-group-empty`, `argv-group-named`, `bv-group-empty`); a group with members
    /// is its members; qualification and single addresses pass over it.
    #[test]
    fn empty_groups() {
        for (input, text) in [(":;", ":;"), ("grp:;", "grp:;"), ("a@x, grp: ;", "grp: ;")] {
            let items = parse_list(input, false);
            let bad: Vec<_> = items.iter().filter(|i| i.error.is_some()).collect();
            assert_eq!(bad.len(), 1, "{input}");
            assert_eq!(bad[0].text, text);
            assert_eq!(bad[0].error, Some(Invalid::EmptyGroup));
            assert_eq!(
                Invalid::EmptyGroup.message(text),
                format!("{text}... List:; syntax illegal for recipient addresses")
            );
        }
        assert_eq!(Invalid::EmptyGroup.exit(), Sysexit::Usage);
        assert_eq!(addrs("grp: a@x, b@y;"), ["a@x", "b@y"]);
        assert!(
            parse_list("grp: a@x;", false)
                .iter()
                .all(|i| i.error.is_none())
        );
        assert_eq!(
            qualify_list("empty:;, bob", "host", false).as_deref(),
            Some("empty:;, bob@host")
        );
    }

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
            // A group naming no one is an item of its own, refused (`empty_groups`).
            ("undisclosed-recipients:;", &["undisclosed-recipients:;"]),
            ("<@relay.a,@relay.b:user@host>", &["user@host"]),
            ("\"john doe\"@example.org", &["\"john doe\"@example.org"]),
            ("\"quoted\\\"q\" <q@x>", &["q@x"]),
            ("user@[192.0.2.1]", &["user@[192.0.2.1]"]),
            ("localuser", &["localuser"]),
            ("", &[]),
            (" ,, ", &[]),
            ("a@x,\n\tb@y", &["a@x", "b@y"]),
            ("<>", &[""]),
        ];
        for (input, want) in cases {
            assert_eq!(addrs(input), *want, "{input:?}");
        }
    }

    /// A source route is refused wherever it is written; a group's name is not one.
    #[test]
    fn source_routes_are_refused() {
        let errors = |t: &str| -> Vec<Option<Invalid>> {
            parse_list(t, false).into_iter().map(|i| i.error).collect()
        };
        for routed in [
            "@relay.example:user@example.org",
            "<@relay.example:user@example.org>",
            "Name <@a.example,@b.example:user@example.org>",
            " ( c ) @relay.example:user@example.org",
        ] {
            assert_eq!(errors(routed), [Some(Invalid::SourceRoute)], "{routed}");
        }
        assert_eq!(errors("team: a@x.example, b@y.example;"), [None, None]);
        assert_eq!(errors("Name <user@example.org>"), [None]);
        assert_eq!(
            Invalid::SourceRoute.message("@r:u@d"),
            "@r:u@d... Source route not supported (RFC 5321 Appendix C): write the address without it"
        );
        assert_eq!(Invalid::SourceRoute.exit(), Sysexit::Usage);
    }

    #[test]
    fn old_style_lists() {
        // (list, style before it, items, style after it)
        let cases: &[(&str, bool, &[&str], bool)] = &[
            ("a@x b@y", true, &["a@x", "b@y"], true),
            ("alice bob", true, &["alice", "bob"], true),
            ("alice", true, &["alice"], true),
            ("a@x, b@y", true, &["a@x", "b@y"], false),
            ("a@x b@y", false, &["a@x.b@y"], false),
            ("Bob <b@y>", true, &["b@y"], false),
            ("b@y (Bob)", true, &["b@y"], false),
            ("\"john doe\"@x", true, &["\"john doe\"@x"], true),
            (
                "\"john doe\"@x other",
                true,
                &["\"john doe\"@x", "other"],
                true,
            ),
            ("bob @ example.org", true, &["bob@example.org"], true),
        ];
        for (input, before, want, after) in cases {
            let mut style = OldStyle(*before);
            let old = style.list(input);
            let got: Vec<String> = parse_list(input, old)
                .into_iter()
                .map(|i| i.address)
                .collect();
            assert_eq!(got, *want, "{input:?}");
            assert_eq!(style.0, *after, "{input:?}");
        }
        let r: Vec<String> = recipients_of_list("a@example.org b@example.net", true)
            .into_iter()
            .map(|l| l.address)
            .collect();
        assert_eq!(r, ["b@example.net", "a@example.org"]);
    }

    #[test]
    fn blanks_become_blank_sub() {
        assert_eq!(parse_one("x y@example.net"), Ok("x.y@example.net".into()));
        assert_eq!(parse_one("Bob Smith <bob@x>"), Ok("bob@x".into()));
        assert_eq!(
            parse_one("\"x y\"@example.net"),
            Ok("\"x y\"@example.net".into())
        );
        assert_eq!(parse_one("a@example.org."), Ok("a@example.org".into()));
    }

    #[test]
    fn sendmail_list_order_and_text() {
        let r = recipients_of_list("Bob <bob@example.org>, carol@example.net", false);
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
    }

    #[test]
    fn mailbox_syntax() {
        let ok = [
            "bob@example.org",
            "bob",
            "b.o.b@example.org",
            "bob+tag@sub.example.org",
            "\"john doe\"@example.org",
            "\"a\\\"b\"@example.org",
            "user@[192.0.2.1]",
            "user@[IPv6:2001:db8::1]",
            "jöhn@exämple.org",
            "o'brien@example.org",
            "bob@example.org.",
            "a@1.2.3.4",
            ".a@example.org",
            "a.@example.org",
            "a..b@example.org",
        ];
        for a in ok {
            assert_eq!(check_mailbox(a), Ok(()), "{a}");
        }
        // sendmail 8.17's refusals (compat-tests addr-*), and the shapes around them.
        let bad: &[(&str, Invalid, i32)] = &[
            ("", Invalid::UserRequired, 64),
            ("a b@example.org", Invalid::Blank, 64),
            ("a@@example.org", Invalid::InvalidRoute, 64),
            ("a@b@example.org", Invalid::InvalidRoute, 64),
            ("a@example..org", Invalid::InvalidHost, 68),
            ("a@.example.org", Invalid::InvalidHost, 68),
            ("a@example.org..", Invalid::InvalidHost, 68),
            ("a@exa!mple.org", Invalid::InvalidHost, 68),
            ("a@-bad.example.org", Invalid::InvalidHost, 68),
            ("a@bad-.example.org", Invalid::InvalidHost, 68),
            ("a@ex_ample.org", Invalid::InvalidHost, 68),
            ("user@[300.1.1.1]", Invalid::InvalidHost, 68),
            ("user@[]", Invalid::InvalidHost, 68),
            ("user@[IPv6:zz]", Invalid::InvalidHost, 68),
            ("@example.org", Invalid::UserRequired, 64),
            ("a@", Invalid::HostRequired, 64),
            ("a@exa:mple.org", Invalid::ColonInHost, 64),
            ("a@[192.0.2.1]x", Invalid::InvalidLiteral, 68),
            ("a\r\n@x", Invalid::Illegal('\r'), 64),
            ("a\0@x", Invalid::Illegal('\0'), 64),
            ("a[b@x", Invalid::IllegalLocal('['), 64),
            ("\"unterminated@x", Invalid::Unbalanced('"'), 64),
            ("j\u{FFFD}hn@example.org", Invalid::NotUtf8, 64),
        ];
        for (a, want, code) in bad {
            let got = check_mailbox(a);
            assert_eq!(got.as_ref(), Err(want), "{a:?}");
            assert_eq!(want.exit().code() as i32, *code, "{a:?}");
        }
        let label = format!("a@{}.org", "x".repeat(64));
        assert_eq!(check_mailbox(&label), Err(Invalid::InvalidHost));
        let long = format!("{}@example.org", "x".repeat(300));
        assert_eq!(check_mailbox(&long), Err(Invalid::TokenTooLong));
        let many = format!("{}x@example.org", "\"x\".".repeat(70));
        assert_eq!(check_mailbox(&many), Err(Invalid::TooLong));
        // Dots end sendmail's tokens: a long dotted name of short words is too long as
        // an address, not as a token (recorded: bs-path-edges).
        let dotted = format!("b@{}.example", vec!["c".repeat(60); 5].join("."));
        assert_eq!(check_mailbox(&dotted), Err(Invalid::TooLong));
        let dotted_local = format!("{}@example.org", vec!["x".repeat(60); 5].join("."));
        assert_eq!(check_mailbox(&dotted_local), Err(Invalid::TooLong));
        assert_eq!(
            Invalid::InvalidRoute.message("a@@example.org"),
            "a@@example.org... Invalid route address"
        );
    }

    /// What is stored and sent is RFC 5321's form: sendmail's lenient local parts are
    /// quoted (as Postfix sends them), valid forms are kept as written.
    #[test]
    fn normalised_to_rfc5321() {
        let cases: &[(&str, &str)] = &[
            ("bob@example.org", "bob@example.org"),
            ("a@example.org.", "a@example.org"),
            (".a@example.org", "\".a\"@example.org"),
            ("a.@example.org", "\"a.\"@example.org"),
            ("a..b@docomo.ne.jp", "\"a..b\"@docomo.ne.jp"),
            ("\"john doe\"@example.org", "\"john doe\"@example.org"),
            ("\"john\"@example.org", "\"john\"@example.org"),
            ("\"a b\".c@example.org", "\"a b.c\"@example.org"),
            ("a\\@b@example.org", "a\\@b@example.org"),
            ("a\\.b@example.org", "a\\.b@example.org"),
            ("a\\b@example.org", "a\\b@example.org"),
            ("c\\\"d@example.org", "c\\\"d@example.org"),
            ("e\\>f@example.org", "e\\>f@example.org"),
            ("g\\", "g\\"),
            ("\"x\".y@example.org", "x.y@example.org"),
            ("root", "root"),
            ("user@[IPv6:::1]", "user@[IPv6:::1]"),
            ("\\bob", "\\bob"),
            ("|/bin/cat", "|/bin/cat"),
        ];
        for (input, want) in cases {
            assert_eq!(check_recipient(input), Ok(()), "{input}");
            let got = normalise(input);
            assert_eq!(got, *want, "{input}");
            assert!(got.starts_with(['|', '\\']) || is_rfc5321(&got), "{got}");
        }
        // A backslash not followed by a user name is the address's own: `\\@` is a
        // quoted backslash and no host (sendmail: `\\@... Hostname required`).
        for input in ["\\\\@", "\\\\\\\\@"] {
            let listed = recipients_of_list(input, false);
            assert_eq!(listed.len(), 1, "{input}");
            assert_eq!(listed[0].error, Some(Invalid::HostRequired), "{input}");
        }
        assert_eq!(check_recipient("\\\\@x"), Ok(()));
        assert_eq!(normalise("\\\\@x"), "\\\\@x");
        // sendmail's prescan: a backslash outside quotes takes the next character into
        // the word with it, but a comma or a blank after it still ends the address,
        // and a backslash alone names no one (recorded: backslash-special-odi,
        // backslash-forms-bv).
        let addresses = |text: &str, old: bool| -> Vec<(String, Option<Invalid>)> {
            recipients_of_list(text, old)
                .into_iter()
                .rev()
                .map(|l| (l.address, l.error))
                .collect()
        };
        assert_eq!(
            addresses("c\\\"d@example.org, e\\>f@example.org", false),
            [
                ("c\\\"d@example.org".to_string(), None),
                ("e\\>f@example.org".to_string(), None)
            ]
        );
        assert_eq!(
            addresses("g\\,h@example.org", false),
            [
                ("g\\".to_string(), None),
                ("h@example.org".to_string(), None)
            ]
        );
        assert_eq!(
            addresses("a\\ b@example.org", true),
            [
                ("a\\".to_string(), None),
                ("b@example.org".to_string(), None)
            ]
        );
        assert_eq!(addresses("\\", true), []);
        assert_eq!(
            addresses("<\\>", false),
            [(String::new(), Some(Invalid::Unbalanced('<')))]
        );
        assert_eq!(
            addresses("<\\ >", false),
            [("\\".to_string(), Some(Invalid::NoUser))]
        );
        assert_eq!(
            parse_one("<a\\b@example.org>"),
            Ok("a\\b@example.org".into())
        );
        assert!(!is_rfc5321("a..b@example.org"));
        assert!(!is_rfc5321("a@example.org."));
        assert!(!is_rfc5321("a@ex_ample.org"));
    }

    #[test]
    fn unbalanced() {
        for (input, c) in [
            ("bad address <", '<'),
            ("a@example.org (x", '('),
            ("\"a@example.org", '"'),
            ("a@example.org>", '>'),
            ("a) b", ')'),
        ] {
            let r = recipients_of_list(input, false);
            assert_eq!(r.len(), 1, "{input}");
            assert_eq!(r[0].error, Some(Invalid::Unbalanced(c)), "{input}");
            assert_eq!(r[0].text, input.trim(), "{input}");
        }
    }

    #[test]
    fn recipients_naming_no_one_are_reported() {
        // `<>` and a lone `@` (sendmail: `User unknown`, 67); an empty list item is no
        // address at all and is skipped, as in sendmail (`badrcpt-comma-*`).
        for (input, want) in [
            ("<>", vec![("<>", Some(Invalid::NoUser))]),
            ("@", vec![("@", Some(Invalid::NoUser))]),
            (" <> ", vec![("<>", Some(Invalid::NoUser))]),
            ("Name <>", vec![("Name <>", Some(Invalid::NoUser))]),
            (
                "<>, b@example.org",
                vec![("b@example.org", None), ("<>", Some(Invalid::NoUser))],
            ),
            (
                "@example.org",
                vec![("@example.org", Some(Invalid::UserRequired))],
            ),
            // A source route that leads to no one (`list-route-only-*`,
            // `bv-group-open-route`).
            (
                "g1@x.org, @example.net:, g2@x.org",
                vec![
                    ("g2@x.org", None),
                    ("@example.net:", Some(Invalid::UserRequired)),
                    ("g1@x.org", None),
                ],
            ),
            (
                "g: <@r:>;",
                vec![("g: <@r:>;", Some(Invalid::UserRequired))],
            ),
            (",", vec![]),
        ] {
            let got: Vec<(String, Option<Invalid>)> = recipients_of_list(input, false)
                .into_iter()
                .map(|l| (l.text, l.error))
                .collect();
            let want: Vec<(String, Option<Invalid>)> =
                want.into_iter().map(|(t, e)| (t.to_string(), e)).collect();
            assert_eq!(got, want, "{input:?}");
        }
        assert_eq!(Invalid::NoUser.exit(), Sysexit::NoUser);
        assert_eq!(Invalid::NoUser.message("<>"), "<>... User unknown");
    }

    /// An alias, `:include:` or `.forward` target naming no one (`<@>` and its blank and
    /// comment forms, a group without members) is the empty list, as on the command
    /// line; `<@>` with a display name and a lone `@` are a user with no name.
    #[test]
    fn a_target_naming_no_one_is_an_empty_list() {
        for input in [
            "<@>",
            "< @ >",
            "(comment) <@>",
            "<@ >",
            "g:;",
            "g: ;",
            "(c) g:;",
        ] {
            assert_eq!(parse_target(input), Err(Invalid::EmptyGroup), "{input}");
        }
        assert_eq!(
            parse_target("a@example.org"),
            Ok("a@example.org".to_string())
        );
        for input in ["\"x\" <@>", "N <@>", "@"] {
            assert_eq!(parse_target(input), Err(Invalid::NoUser), "{input}");
        }
        assert_eq!(parse_target("@example.org"), Err(Invalid::UserRequired));
        assert_eq!(parse_target(""), parse_one(""));
    }

    /// `<@>` without a display name is sendmail's `List:; syntax illegal for recipient
    /// addresses` (64), however blanks and comments sit around it; a lone `@` and `N <@>`
    /// stay a local user with no name (67) (recorded: `bv-at-angle-kind`).
    #[test]
    fn an_empty_route_addr_of_at_is_an_empty_list() {
        for input in ["<@>", "< @ >", "(c) <@>", "<@(c)>", "<@ >", "<@> (c)"] {
            let r = recipients_of_list(input, false);
            assert_eq!(r.len(), 1, "{input}");
            assert_eq!(r[0].error, Some(Invalid::EmptyGroup), "{input}");
            assert_eq!(r[0].text, input, "{input}");
        }
        // Reversed, as a list is queued (see `recipients_of_list`).
        let r = recipients_of_list("a@example.org, <@>", false);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].error, Some(Invalid::EmptyGroup));
        assert_eq!(r[0].text, "<@>");
        assert_eq!(r[1].error, None);
        for input in ["@", "N <@>"] {
            let r = recipients_of_list(input, false);
            assert_eq!(r.len(), 1, "{input}");
            assert_eq!(r[0].error, Some(Invalid::NoUser), "{input}");
        }
    }

    #[test]
    fn qualified_in_place() {
        let h = "vm.example.test";
        let cases: &[(&str, Option<&str>)] = &[
            (
                "root (Cron Daemon)",
                Some("root@vm.example.test (Cron Daemon)"),
            ),
            ("root", Some("root@vm.example.test")),
            (
                "mdadm monitoring <root>",
                Some("mdadm monitoring <root@vm.example.test>"),
            ),
            ("bob@example.org", None),
            ("undisclosed-recipients:;", None),
            (
                "team: a, b@example.org;",
                Some("team: a@vm.example.test, b@example.org;"),
            ),
            (
                "=?UTF-8?B?SsO2cmc=?= <root>",
                Some("=?UTF-8?B?SsO2cmc=?= <root@vm.example.test>"),
            ),
            ("=?UTF-8?B?SsO2cmc=?=", None),
            (
                "\"Doe, John\" <john>",
                Some("\"Doe, John\" <john@vm.example.test>"),
            ),
            (
                "lee (Lee, the \"admin\")",
                Some("lee@vm.example.test (Lee, the \"admin\")"),
            ),
            (
                "carol,\n\tdave@example.org",
                Some("carol@vm.example.test,\n\tdave@example.org"),
            ),
            // sendmail closes a `<` left open even where its item does not parse
            // (recorded: `hdr-unclosed-bad-item`).
            ("bad address <", Some("bad address <>")),
            ("<>", None),
        ];
        // Old-style lists come out with commas, qualified or not.
        assert_eq!(
            qualify_list(" alice bob", h, true).as_deref(),
            Some(" alice@vm.example.test, bob@vm.example.test")
        );
        assert_eq!(
            qualify_list(" a@example.org b@example.net", h, true).as_deref(),
            Some(" a@example.org, b@example.net")
        );
        assert_eq!(
            qualify_list(" alice", h, true).as_deref(),
            Some(" alice@vm.example.test")
        );
        for (input, want) in cases {
            assert_eq!(qualify_list(input, h, false).as_deref(), *want, "{input:?}");
        }
    }

    /// A display name holding one of sendmail's `MustQuoteChars` is quoted as sendmail
    /// quotes it in a field rewritten anyway; in one otherwise kept as written only a
    /// name no RFC 5322 phrase allows is (compat-tests `hdr-name-*`).
    #[test]
    fn display_names_are_quoted_as_sendmail_quotes_them() {
        let h = "h.test";
        for (input, want) in [
            ("J. Smith <js>", Some("\"J. Smith\" <js@h.test>")),
            ("J. Smith <js@x.org>", None),
            ("J O'Brien <o@x.org>", None),
            ("J O'Brien <o>", Some("\"J O'Brien\" <o@h.test>")),
            ("a;b <c@x.org>", Some("\"a;b\" <c@x.org>")),
            ("x@y <d@x.org>, e", Some("\"x@y\" <d@x.org>, e@h.test")),
            ("J [x] Smith <a@x.org>", Some("\"J [x] Smith\" <a@x.org>")),
            ("J [x Smith <a@x.org>", Some("\"J [x Smith\" <a@x.org>")),
            ("J ] Smith <a@x.org>", Some("\"J ] Smith\" <a@x.org>")),
            ("J \\x Smith <a>", Some("\"J \\x Smith\" <a@h.test>")),
            ("J\\. Smith <a>", Some("\"J\\. Smith\" <a@h.test>")),
            (
                "J. \"x\" Smith <a>",
                Some("\"J. \\\"x\\\" Smith\" <a@h.test>"),
            ),
            ("J \"x\" Smith <a>", Some("J \"x\" Smith <a@h.test>")),
            ("\"J. Smith\" <a>", Some("\"J. Smith\" <a@h.test>")),
            ("J (c) Smith <a>", Some("J (c) Smith <a@h.test>")),
            ("J (c.d) Smith <a>", Some("J (c.d) Smith <a@h.test>")),
            ("J. Smith (c) <a>", Some("\"J. Smith (c)\" <a@h.test>")),
            ("J.\tSmith <a>", Some("\"J.\tSmith\" <a@h.test>")),
            (
                "J\u{f6}rg S. Smith <a>",
                Some("\"J\u{f6}rg S. Smith\" <a@h.test>"),
            ),
            (
                "=?UTF-8?Q?J=C3=B6rg?= S. Smith <a>",
                Some("=?UTF-8?Q?J=C3=B6rg?= S. Smith <a@h.test>"),
            ),
            ("J: Smith <a>", Some("J: Smith <a@h.test>")),
            (
                "g: J. Smith <t1>, K. Jones <t2@x.org>;",
                Some("g: \"J. Smith\" <t1@h.test>, \"K. Jones\" <t2@x.org>;"),
            ),
            ("f1 (J. Smith)", Some("f1@h.test (J. Smith)")),
            // A backslash that ends the name does not take the closing quote.
            ("J\\ <a>", Some("\"J\\\\\" <a@h.test>")),
        ] {
            assert_eq!(qualify_list(input, h, false).as_deref(), want, "{input:?}");
        }
    }

    /// Items are separated by a comma and one blank, empty items dropped, in a field
    /// that is rewritten anyway (recorded: `hdr-list-spacing`); one that needs nothing
    /// else is kept as written (`badrcpt-comma-t`).
    #[test]
    fn items_are_separated_as_sendmail_separates_them() {
        let h = "vm.example.test";
        for (input, want) in [
            (" a1 ,a2", " a1@vm.example.test, a2@vm.example.test"),
            // Nothing else to rewrite: kept as written.
            (
                " b1@example.org ,b2@example.org",
                " b1@example.org ,b2@example.org",
            ),
            (" c1,  c2,", " c1@vm.example.test, c2@vm.example.test"),
            (" d1,,d2", " d1@vm.example.test, d2@vm.example.test"),
            (" , e1", " e1@vm.example.test"),
            (
                " g: f1 ,f2; ,f3",
                " g: f1@vm.example.test, f2@vm.example.test;, f3@vm.example.test",
            ),
            (
                " (c) h1\t,\th2 (d)",
                " (c) h1@vm.example.test, h2@vm.example.test (d)",
            ),
            (" q1, <q2,", " q1@vm.example.test, <q2@vm.example.test>"),
            (" <t1 ,t2", " <t1@vm.example.test>, t2@vm.example.test"),
            (
                " a@example.org,\n\tb@example.org",
                " a@example.org,\n\tb@example.org",
            ),
        ] {
            let got = qualify_list(input, h, false);
            assert_eq!(got.as_deref().unwrap_or(input), want, "{input:?}");
        }
    }

    /// A `<` left open ends at the next comma (a source route's at the end), a quote or
    /// comment left open at the end, and each is closed there; every other item is
    /// qualified as usual (recorded: `hdr-unbal-more`, `hdr-more2`, `hdr-group-combo`,
    /// `hdr-bs-unbal`, `hdr-unclosed-more-a`, `hdr-unclosed-more-b`).
    #[test]
    fn what_is_left_open_is_closed_item_by_item() {
        let h = "vm.example.test";
        for (input, want) in [
            (
                "<a@example.org, plain1",
                "<a@example.org>, plain1@vm.example.test",
            ),
            // A route's comments follow the address it leads to; a route that leads
            // to none is kept (`hdr-odd-route-comment`, `hdr-odd-route-only-group`).
            ("<@r:p@x (c), q", "<q@vm.example.test (c)>"),
            ("g: <@r:>;, h", "g: <@r:>;, h@vm.example.test"),
            // A `;` in a dropped route stays after the address
            // (`hdr-odd-group-open-route`).
            ("h: <@r:q;, c", "h: <c@vm.example.test;>"),
            // A `[` left open holds no comma (`hdr-list-unclosed-bracket-first`).
            (
                "b@[127.0.0.1, g1, g2@example.org",
                "b@[127.0.0.1, g1@vm.example.test, g2@example.org",
            ),
            (
                "g: <x, y;, z",
                "g: <x@vm.example.test>, y@vm.example.test;, z@vm.example.test",
            ),
            (
                "p3, \"q <r>, s",
                "p3@vm.example.test, \"q <r>, s\"@vm.example.test",
            ),
            (
                "grp: <>;, p4, <@r.example:v@example.org",
                "grp: <>;, p4@vm.example.test, <v@example.org>",
            ),
            (
                "g3: c1, <c2@example.org;, after3",
                "g3: c1@vm.example.test, <c2@example.org;>, after3@vm.example.test",
            ),
            (
                "a1, <a2@example.org (c), a3",
                "a1@vm.example.test, <a2@example.org (c)>, a3@vm.example.test",
            ),
            (
                "\"unterminated, b1, b2",
                "\"unterminated, b1, b2\"@vm.example.test",
            ),
            ("<e1, e2", "<e1@vm.example.test>, e2@vm.example.test"),
            (
                "p3, \"open <r>",
                "p3@vm.example.test, \"open <r>\"@vm.example.test",
            ),
            ("d1 (x, d2", "d1@vm.example.test (x, d2)"),
            (
                "fa, <fb, fc",
                "fa@vm.example.test, <fb@vm.example.test>, fc@vm.example.test",
            ),
            ("<a@example.org , b1", "<a@example.org>, b1@vm.example.test"),
            (
                "g: <c2;, c3",
                "g: <c2@vm.example.test;>, c3@vm.example.test",
            ),
            (
                "g: <d1, d2;",
                "g: <d1@vm.example.test>, d2@vm.example.test;",
            ),
            ("<\"q, e1", "<\"q, e1\"@vm.example.test>"),
            (
                "f1, <@r.example:f2@example.org, f3",
                "f1@vm.example.test, <f3@vm.example.test>",
            ),
            ("g: <h1;", "g: <h1@vm.example.test;>"),
            ("s1, \"s2", "s1@vm.example.test, \"s2\"@vm.example.test"),
            (
                "<k1 (c, d), k2",
                "<k1@vm.example.test (c, d)>, k2@vm.example.test",
            ),
            (
                "<m1, <m2, m3",
                "<m1@vm.example.test>, <m2@vm.example.test>, m3@vm.example.test",
            ),
            (
                "g: <n1, n2;, <n3",
                "g: <n1@vm.example.test>, n2@vm.example.test;, <n3@vm.example.test>",
            ),
            (
                "<p1@example.org;, p2",
                "<p1@example.org;>, p2@vm.example.test",
            ),
            (
                "\"r1 <r2>\" <r3, r4",
                "\"r1 <r2>\" <r3@vm.example.test>, r4@vm.example.test",
            ),
            (
                "<@a.example,@b.example:s1@example.org, s2",
                "<s2@vm.example.test>",
            ),
            ("bad <, x1", "bad <>, x1@vm.example.test"),
            ("<>, <, x2", "<>, <>, x2@vm.example.test"),
            ("<a@b@c, x6", "<a@b@c>, x6@vm.example.test"),
            ("x7, (open <, x8", "x7@vm.example.test, (open <, x8"),
            ("y1, bad <", "y1@vm.example.test, bad <>"),
            ("z1, \"z2\" <a@b@c", "z1@vm.example.test, \"z2\" <a@b@c>"),
            ("bad address <", "bad address <>"),
            ("w1, <@, x5", "w1@vm.example.test, <@, x5>"),
            (
                "<c1@example.org, c2@example.org, c3",
                "<c1@example.org>, c2@example.org, c3@vm.example.test",
            ),
        ] {
            assert_eq!(
                qualify_list(input, h, false).as_deref(),
                Some(want),
                "{input:?}"
            );
        }
    }

    /// Each item is rewritten on its own: one that does not parse (a source route,
    /// `<>`, two `<>`s) is kept as written (a route dropped) and the others are still
    /// qualified; what is left open at the end is closed (recorded: `hdr-route-*`,
    /// `hdr-empty-angle`, `hdr-unclosed-*`, `hdr-nested-group`).
    #[test]
    fn each_item_is_qualified_on_its_own() {
        let h = "vm.example.test";
        for (input, want) in [
            (
                "<@r.example:u@example.org>, \"Q\" <q>, plain",
                "<u@example.org>, \"Q\" <q@vm.example.test>, plain@vm.example.test",
            ),
            (
                "plain, <@r.example:u@example.org>, other",
                "plain@vm.example.test, <u@example.org>, other@vm.example.test",
            ),
            (
                "<@a.example,@b.example:u@example.org>, plain",
                "<u@example.org>, plain@vm.example.test",
            ),
            (
                "grp: <@r.example:u@example.org>, g1;, plain",
                "grp: <u@example.org>, g1@vm.example.test;, plain@vm.example.test",
            ),
            (
                "< @r.example: u@example.org >, p",
                "<u@example.org >, p@vm.example.test",
            ),
            ("plain, <>", "plain@vm.example.test, <>"),
            ("<<t>>, u", "<<t>>, u@vm.example.test"),
            (
                "<a@example.org> <b@example.org>, plain",
                "<a@example.org> <b@example.org>, plain@vm.example.test",
            ),
            (
                "plain, <a@example.org",
                "plain@vm.example.test, <a@example.org>",
            ),
            ("x (unclosed", "x@vm.example.test (unclosed)"),
            ("x (a (b", "x@vm.example.test (a (b))"),
            (
                "g1: a, g2: b;, c;, d",
                "g1: a@vm.example.test, g2: b@vm.example.test;, c@vm.example.test;, d@vm.example.test",
            ),
            ("host!user, plain", "host!user, plain@vm.example.test"),
            (
                "u@example.org., plain",
                "u@example.org, plain@vm.example.test",
            ),
            ("<u@example.org.>", "<u@example.org>"),
            (
                "u@localhost, v@[127.0.0.1], w@[IPv6:::1], z@[127.0.0.1]., x@host.example",
                "u@vm.example.test, v@vm.example.test, w@vm.example.test, z@[127.0.0.1], x@host.example",
            ),
            (
                "\"Very\n Long Name\" <a@example.org>, user\n @example.org, x\n y@example.org",
                "\"Very\n Long Name\" <a@example.org>, user@example.org, x.y@example.org",
            ),
            (
                "john.(c)smith@example.org, j",
                "john.smith@example.org (c), j@vm.example.test",
            ),
        ] {
            assert_eq!(
                qualify_list(input, h, false).as_deref(),
                Some(want),
                "{input:?}"
            );
        }
        // Kept as written: nothing in them parses, closed or not.
        for kept in ["<>", "@r.example:u@example.org"] {
            assert_eq!(qualify_list(kept, h, false), None, "{kept:?}");
        }
        assert_eq!(
            qualify_list("!user, u!", h, false).as_deref(),
            Some("!user@vm.example.test, u!@vm.example.test")
        );
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("bob@Example.ORG").as_deref(), Some("example.org"));
        assert_eq!(domain_of("bob"), None);
        assert_eq!(domain_of("\"a@b\"@c.d").as_deref(), Some("c.d"));
    }

    #[test]
    fn shown_cuts_on_characters() {
        let a = format!("{}@example.org", "é".repeat(300));
        let s = shown(&a);
        assert_eq!(s.chars().count(), 203);
        assert_eq!(
            s,
            format!("{}...{}@example.org", "é".repeat(100), "é".repeat(88))
        );
        assert_eq!(shown("short@example.org"), "short@example.org");
        assert_eq!(shown("a\r\nb"), "a??b");
    }

    /// RFC 5321 §4.1.2 domains for the names this host uses; relays may also have `_`.
    #[test]
    fn domains_this_host_uses() {
        let long_label = "a".repeat(64);
        let long_name = ["a"; 128].join(".");
        let cases: &[(&str, Result<(), &str>)] = &[
            ("example.org", Ok(())),
            ("localhost", Ok(())),
            ("a-b.x1.example", Ok(())),
            ("1.example", Ok(())),
            ("[192.0.2.1]", Ok(())),
            ("[IPv6:2001:db8::1]", Ok(())),
            ("[ipv6:::1]", Ok(())),
            ("", Err("empty name")),
            ("bad host", Err("' ' is not a letter, digit, hyphen or dot")),
            ("bad..host", Err("empty label")),
            (".example.org", Err("empty label")),
            ("example.org.", Err("empty label")),
            (
                "a_b.example",
                Err("'_' is not a letter, digit, hyphen or dot"),
            ),
            ("b@c", Err("'@' is not a letter, digit, hyphen or dot")),
            (
                "ex\tample",
                Err("character 0x09 is not a letter, digit, hyphen or dot"),
            ),
            ("-a.example", Err("label -a begins or ends with a hyphen")),
            ("a-.example", Err("label a- begins or ends with a hyphen")),
            (
                "b\u{e9}.example",
                Err("'\u{e9}' is not a letter, digit, hyphen or dot"),
            ),
            (&long_label, Err("label longer than 63 octets")),
            (&long_name, Err("longer than 253 octets")),
            (
                "[192.0.2.300]",
                Err("not an address literal ([IPv4] or [IPv6:IPv6])"),
            ),
            (
                "[2001:db8::1]",
                Err("not an address literal ([IPv4] or [IPv6:IPv6])"),
            ),
            (
                "[192.0.2.1",
                Err("not an address literal ([IPv4] or [IPv6:IPv6])"),
            ),
            ("[]", Err("not an address literal ([IPv4] or [IPv6:IPv6])")),
        ];
        for (name, want) in cases {
            let want = want.map_err(String::from);
            assert_eq!(check_domain(name), want, "{name:?}");
        }
        assert_eq!(check_host_name("a_b.example"), Ok(()));
        assert_eq!(check_host_name("bad..host"), Err("empty label".into()));
        assert_eq!(check_domain(&"a".repeat(63)), Ok(()));
        assert_eq!(check_domain(&["a"; 127].join(".")), Ok(()));
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::{Index, select};

        /// Text for the parsers: the characters that mean something to them, blanks,
        /// control characters and multi-byte UTF-8 more often than by chance; or an
        /// over-long address whose multi-byte characters fall across every offset.
        fn text() -> impl Strategy<Value = String> {
            let chars = vec(
                prop_oneof![
                    6 => select(
                        &[
                            '<', '>', '(', ')', '"', ',', ':', ';', '@', '[', ']', '\\', '.',
                            ' ', '\t', '\r', '\n', '\0', 'a', 'b', 'é', '€', '𝄞',
                        ][..]
                    ),
                    2 => any::<char>(),
                ],
                0..300,
            )
            .prop_map(|v| v.into_iter().collect::<String>());
            let long = (0usize..260, select(&["é", "€", "𝄞"][..]), 100usize..250)
                .prop_map(|(k, c, n)| format!("{}{}@example.org", "a".repeat(k), c.repeat(n)));
            prop_oneof![4 => chars, 1 => long]
        }

        /// An RFC 5321 Mailbox: a dot-atom (with UTF-8, as RFC 6531 allows) or a quoted
        /// local part, then LDH labels or an IPv4 address literal.
        fn mailbox() -> impl Strategy<Value = String> {
            let atom = "[A-Za-z0-9!#$%&'*+/=?^`{|}~-]{1,10}|[a-zé€]{1,5}";
            let dot_atom = vec(atom, 1..4).prop_map(|v| v.join("."));
            let quoted = vec(
                prop_oneof![
                    4 => "[ a-zA-Z0-9.,:;<>@()\\[\\]]",
                    1 => Just("\\\"".to_string()),
                    1 => Just("\\\\".to_string()),
                ],
                0..12,
            )
            .prop_map(|v| format!("\"{}\"", v.concat()));
            let local = prop_oneof![3 => dot_atom, 1 => quoted];
            let label = "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?";
            let domain = prop_oneof![
                3 => vec(label, 1..4).prop_map(|v| v.join(".")),
                1 => any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("[{a}.{b}.{c}.{d}]")),
            ];
            (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
        }

        /// An address list as a header field holds it: mailboxes and unqualified local
        /// names, bare, after a display name or before a comment, some in a group,
        /// separated by commas and folding white space. No `_` anywhere in it.
        /// A separator of the generated lists as sendmail writes it: a comma and one
        /// blank, or a comma and the line break written after it.
        fn written_sep(sep: &str) -> &str {
            if sep.contains('\n') {
                sep.trim_start_matches(' ')
            } else {
                ", "
            }
        }

        fn list() -> impl Strategy<Value = String> {
            let local = "[a-z][a-z0-9.+-]{0,8}";
            let name = "[A-Za-z][A-Za-z ]{0,8}|\"[A-Za-z ,.<>@:;()]{0,8}\"";
            let comment = "\\([A-Za-z ,.<>@:;\"]{0,8}\\)";
            let spec = prop_oneof![mailbox(), local.prop_map(String::from)];
            let item = (spec, 0..3u8, name, comment).prop_map(|(s, form, n, c)| match form {
                0 => s,
                1 => format!("{n} <{s}>"),
                _ => format!("{s} {c}"),
            });
            let sep = select(&[",", ", ", ",\n\t", " , "][..]);
            let items = (vec(item, 1..5), sep).prop_map(|(v, sep)| v.join(sep));
            (items, proptest::option::of("[a-z]{1,6}")).prop_map(|(items, group)| match group {
                Some(g) => format!("{g}: {items};"),
                None => items,
            })
        }

        /// `shown`'s rule: control characters escaped, and over 203 characters the
        /// first and last 100 with `...` between.
        fn escaped(s: &str) -> Vec<char> {
            s.chars()
                .flat_map(|c| {
                    if c.is_control() {
                        vec![crate::text::REPLACEMENT]
                    } else {
                        vec![c]
                    }
                })
                .collect()
        }

        proptest! {
            #[test]
            fn any_text_is_parsed_or_refused(s in text(), old in any::<bool>()) {
                if let Ok(tokens) = lex(&s) {
                    // The tokens cover the text, each at character boundaries.
                    let mut at = 0;
                    for t in &tokens {
                        prop_assert_eq!(t.span.start, at);
                        prop_assert!(t.span.end > t.span.start);
                        prop_assert!(s.get(t.span.clone()).is_some(), "{:?}", t);
                        at = t.span.end;
                    }
                    prop_assert_eq!(at, s.len());
                }
                for item in parse_list(&s, old) {
                    prop_assert!(item.spec_end <= s.len());
                    let _ = check_mailbox(&item.address);
                }
                for l in recipients_of_list(&s, old) {
                    if l.error.is_none() {
                        prop_assert_eq!(check_recipient(&l.address), Ok(()));
                        // What is queued and sent is RFC 5321's form.
                        if !l.address.starts_with(['|', '/', '\\']) {
                            prop_assert!(is_rfc5321(&l.address), "{:?}", l.address);
                        }
                    }
                }
                let _ = qualify_list(&s, "example.net", old);
                let _ = check_mailbox(&s);
                let _ = check_recipient(&s);
                let _ = split_at_domain(&s);
                let _ = domain_of(&s);
                let _ = split_top_level(&s);
                let _ = is_local(&s, "host.example", old);
                if let Ok(a) = parse_one(&s) {
                    prop_assert_eq!(check_mailbox(&a), Ok(()));
                    if !a.starts_with(['|', '/', '\\']) {
                        prop_assert!(is_rfc5321(&a), "{:?}", a);
                    }
                    prop_assert_eq!(parse_one(&a), Ok(a.clone()));
                }
                if let Err(e) = check_mailbox(&s) {
                    let _ = e.message(&s);
                }
            }

            #[test]
            fn shown_is_short_and_cuts_between_characters(s in text()) {
                let want = escaped(&s);
                let got: Vec<char> = shown(&s).chars().collect();
                prop_assert!(got.len() <= MAX_SHOWN);
                prop_assert!(!got.iter().any(|c| c.is_control()));
                if want.len() <= MAX_SHOWN {
                    prop_assert_eq!(got, want);
                } else {
                    let dots: Vec<char> = "...".chars().collect();
                    prop_assert_eq!(got.get(..100), want.get(..100));
                    prop_assert_eq!(got.get(100..103), Some(&dots[..]));
                    prop_assert_eq!(got.get(103..), want.get(want.len() - 100..));
                }
            }

            #[test]
            fn valid_mailboxes_are_accepted_as_written(
                a in mailbox(),
                name in "[A-Za-z][A-Za-z ]{0,10}|\"[A-Za-z ,.<>@:;()]{0,10}\"",
                comment in "[A-Za-z ,.<>@:;\"]{0,10}",
            ) {
                prop_assert_eq!(check_mailbox(&a), Ok(()));
                prop_assert_eq!(check_recipient(&a), Ok(()));
                prop_assert_eq!(parse_one(&a), Ok(a.clone()));
                prop_assert_eq!(parse_one(&format!("{name} <{a}>")), Ok(a.clone()));
                prop_assert_eq!(parse_one(&format!("{a} ({comment})")), Ok(a.clone()));
                let listed = recipients_of_list(&format!("{name} <{a}>"), false);
                prop_assert_eq!(listed.len(), 1);
                prop_assert_eq!(&listed[0].address, &a);
                prop_assert_eq!(&listed[0].error, &None);
            }

            #[test]
            fn a_backslash_anywhere_is_kept_or_refused(
                a in mailbox(),
                at in any::<Index>(),
                next in select(&['b', '"', '>', '<', '@', '(', ')', ',', '.', ' ', '\\', '\0', 'é'][..]),
                old in any::<bool>(),
            ) {
                // A backslash (and a character after it) put anywhere: never a panic,
                // and an address taken is taken again as it is (round trip).
                let cuts: Vec<usize> = a.char_indices().map(|(i, _)| i).chain([a.len()]).collect();
                let i = cuts[at.index(cuts.len())];
                let b = format!("{}\\{next}{}", &a[..i], &a[i..]);
                if let Ok(got) = parse_one(&b) {
                    prop_assert_eq!(parse_one(&got), Ok(got.clone()), "{:?}", b);
                    prop_assert_eq!(normalise(&got), got.clone());
                    prop_assert_eq!(check_mailbox(&got), Ok(()));
                }
                for l in recipients_of_list(&b, old) {
                    if l.error.is_none() {
                        prop_assert_eq!(check_recipient(&l.address), Ok(()));
                        let again = recipients_of_list(&l.address, false);
                        prop_assert_eq!(again.len(), 1, "{:?} from {:?}", l.address, b);
                        prop_assert_eq!(&again[0].address, &l.address);
                    }
                }
                // Unquoted in the local part, a backslash keeps the next character as
                // written: `x\bc@d` is sent as `x\bc@d`.
                if next == 'b' && !a.starts_with('"') {
                    let local_end = a.rfind('@').unwrap_or(0);
                    if i > 0 && i <= local_end {
                        prop_assert_eq!(parse_one(&b), Ok(b.clone()));
                    }
                }
            }

            #[test]
            fn a_blank_outside_quotes_is_refused(a in mailbox(), at in any::<Index>(), tab in any::<bool>()) {
                // Where a blank may go outside the quoted local part.
                let mut outside = Vec::new();
                let (mut quoted, mut escaped) = (false, false);
                for (i, c) in a.char_indices() {
                    if !quoted {
                        outside.push(i);
                    }
                    if escaped {
                        escaped = false;
                        continue;
                    }
                    match c {
                        '\\' if quoted => escaped = true,
                        '"' => quoted = !quoted,
                        _ => {}
                    }
                }
                outside.push(a.len());
                let i = outside[at.index(outside.len())];
                let blank = if tab { '\t' } else { ' ' };
                let b = format!("{}{blank}{}", &a[..i], &a[i..]);
                let want = if tab { Invalid::Illegal('\t') } else { Invalid::Blank };
                prop_assert_eq!(check_mailbox(&b), Err(want), "{:?}", b);
            }

            #[test]
            fn one_bad_item_stops_no_other(
                goods in vec(("[a-z][a-z0-9]{0,6}", 0..3u8), 1..5),
                bad in select(&[
                    "<@r.example:u@example.org>",
                    "<@a.example,@b.example:u@example.org>",
                    "<>",
                    "<a@example.org> <b@example.org>",
                ][..]),
                at in any::<Index>(),
                sep in select(&[",", ", ", ",\n\t", " , "][..]),
                open_end in any::<bool>(),
            ) {
                let d = "_q.test";
                let forms = |q: &str, l: &str, form: u8| match form {
                    0 => format!("{l}{q}"),
                    1 => format!("N <{l}{q}>"),
                    _ => format!("{l}{q} (c)"),
                };
                let mut written: Vec<String> = goods.iter().map(|(l, f)| forms("", l, *f)).collect();
                let mut want: Vec<String> =
                    goods.iter().map(|(l, f)| forms("@_q.test", l, *f)).collect();
                let k = at.index(written.len() + 1);
                written.insert(k, bad.to_string());
                let routeless = bad
                    .replace("@r.example:", "")
                    .replace("@a.example,@b.example:", "");
                want.insert(k, routeless);
                if open_end {
                    written.push("<e@example.org".into());
                    want.push("<e@example.org>".into());
                }
                let text = written.join(sep);
                let out = qualify_list(&text, d, false);
                let want = want.join(written_sep(sep));
                prop_assert_eq!(out.as_deref(), Some(want.as_str()), "{:?}", text);
            }

            /// An item left open anywhere (a `<` up to the next comma, in or out of a
            /// group; a source route or a quote at the end) is closed where sendmail
            /// closes it, and every other item is still qualified.
            #[test]
            fn an_item_left_open_stops_no_other(
                goods in vec(("[a-z][a-z0-9]{0,6}", 0..3u8), 1..5),
                open in select(&[
                    ("<u", "<u@_q.test>"),
                    ("<e@example.org", "<e@example.org>"),
                    ("N <u (c)", "N <u@_q.test (c)>"),
                    ("g: <c;", "g: <c@_q.test;>"),
                    ("g: <c@example.org;", "g: <c@example.org;>"),
                    ("bad <", "bad <>"),
                    ("<a@b@c", "<a@b@c>"),
                ][..]),
                at in any::<Index>(),
                sep in select(&[",", ", ", ",\n\t", " , "][..]),
                tail in select(&[
                    ("", ""),
                    ("<@r.example:v@example.org", "<v@example.org>"),
                    ("<@r.example:v@example.org, w", "<w@_q.test>"),
                    ("\"o, p", "\"o, p\"@_q.test"),
                    ("\"o <p>", "\"o <p>\"@_q.test"),
                ][..]),
            ) {
                let d = "_q.test";
                let forms = |q: &str, l: &str, form: u8| match form {
                    0 => format!("{l}{q}"),
                    1 => format!("N <{l}{q}>"),
                    _ => format!("{l}{q} (c)"),
                };
                let mut written: Vec<String> = goods.iter().map(|(l, f)| forms("", l, *f)).collect();
                let mut want: Vec<String> =
                    goods.iter().map(|(l, f)| forms("@_q.test", l, *f)).collect();
                let k = at.index(written.len() + 1);
                written.insert(k, open.0.to_string());
                want.insert(k, open.1.to_string());
                if !tail.0.is_empty() {
                    written.push(tail.0.into());
                    want.push(tail.1.into());
                }
                let text = written.join(sep);
                let want = want.join(written_sep(sep));
                let out = qualify_list(&text, d, false);
                prop_assert_eq!(out.as_deref(), Some(want.as_str()), "{:?}", text);
            }

            /// A recipient list with one item left open, or with a `)`, `>`, `]` or
            /// `\` that closes nothing, or a route to no one: every item before it is
            /// taken, and so is every item after it that a `"` or `(` does not hold;
            /// the bad item is refused, named with the items it swallowed
            /// (compat-tests `list-unclosed-*`, `list-stray-*`, `list-route-only-*`).
            #[test]
            fn a_recipient_left_open_loses_no_other(
                goods in vec("[a-z][a-z0-9]{0,6}@example\\.org", 1..5),
                bad in select(&[
                    ("\"b@example.org", Invalid::Unbalanced('"'), true),
                    ("b@example.org (c", Invalid::Unbalanced('('), true),
                    ("<b@example.org", Invalid::Unbalanced('<'), false),
                    ("N <b@example.org", Invalid::Unbalanced('<'), false),
                    ("b@[127.0.0.1", Invalid::Unbalanced('['), false),
                    ("b@example.org)", Invalid::Unbalanced(')'), false),
                    ("N ) <b@example.org>", Invalid::Unbalanced(')'), false),
                    ("b@example.org>", Invalid::Unbalanced('>'), false),
                    ("b@example.org]", Invalid::InvalidHost, false),
                    ("b@example.org\\", Invalid::InvalidHost, false),
                    ("@example.net:", Invalid::UserRequired, false),
                    ("g: <@r:>;", Invalid::UserRequired, false),
                ][..]),
                at in any::<Index>(),
                sep in select(&[",", ", ", " , ", ",\n\t"][..]),
            ) {
                let (written, fault, swallows) = bad.clone();
                let k = at.index(goods.len() + 1);
                let mut list = goods.clone();
                list.insert(k, written.to_string());
                let text = list.join(sep);
                let mut got = recipients_of_list(&text, false);
                got.reverse();
                let taken: Vec<&str> = got
                    .iter()
                    .filter(|l| l.error.is_none())
                    .map(|l| l.address.as_str())
                    .collect();
                let kept = if swallows { &goods[..k] } else { &goods[..] };
                prop_assert_eq!(taken, kept.iter().map(String::as_str).collect::<Vec<_>>());
                let refused: Vec<_> = got.iter().filter(|l| l.error.is_some()).collect();
                prop_assert_eq!(refused.len(), 1, "{:?}", text);
                prop_assert_eq!(refused[0].error.clone(), Some(fault));
                prop_assert!(refused[0].text.starts_with(written), "{:?}", refused[0].text);
                for g in &goods[k..] {
                    prop_assert!(!swallows || refused[0].text.contains(g.as_str()));
                }
            }

            #[test]
            fn qualifying_only_adds_the_domain(text in list()) {
                // `_` is in no generated list, so every `@_q.test` is one that was added.
                let d = "_q.test";
                // A domain naming this host is replaced, not kept (`hdr-own-names`).
                prop_assume!(!parse_list(&text, false).iter().any(|i| {
                    split_at_domain(&i.address).1.is_some_and(|d| {
                        d.eq_ignore_ascii_case("localhost")
                            || literal_ip(d).is_some_and(|ip| ip.is_loopback())
                    })
                }));
                let has_domain = |t: &str| {
                    parse_list(t, false)
                        .iter()
                        .all(|i| split_at_domain(&i.address).1.is_some_and(|d| !d.is_empty()))
                };
                match qualify_list(&text, d, false) {
                    Some(out) => {
                        prop_assert_eq!(out.replace("@_q.test", ""), tidy_separators(&text));
                        prop_assert!(has_domain(&out), "{:?}", out);
                        prop_assert_eq!(qualify_list(&out, d, false), None);
                    }
                    None => prop_assert!(has_domain(&text), "{:?}", text),
                }
            }
        }
    }

    /// Angle brackets that nest but balance, and two `<address>`es in one item, are
    /// named as what they are (compat-tests `rcpt-angle-angle`,
    /// `rcpt-two-angle-one-arg`); brackets that do not balance stay `Unbalanced '<'`.
    #[test]
    fn angle_brackets_nested_or_twice_are_named_as_such() {
        for (text, want) in [
            ("<<bob@example.org>>", Invalid::NestedAngle),
            ("<a@example.org> <b@example.org>", Invalid::TwoAngle),
            ("<a@example.org", Invalid::Unbalanced('<')),
            ("b@example.org (x", Invalid::Unbalanced('(')),
            ("<a <b@example.org>", Invalid::Unbalanced('<')),
            ("<<a@example.org>", Invalid::Unbalanced('<')),
        ] {
            let got = recipients_of_list(text, false);
            assert_eq!(got.len(), 1, "{text}");
            assert_eq!(got[0].error.as_ref(), Some(&want), "{text}");
            assert_eq!(want.exit().code(), 64, "{text}");
        }
        assert_eq!(
            Invalid::NotUtf8.message("j\u{FFFD}hn@example.org"),
            "Syntax error in mailbox address \"j?hn@example.org\" (not UTF-8)"
        );
    }

    /// A list with a quote, comment, `<` or `[` left open: the items before it are
    /// taken, the open item is refused and named with what it swallowed, and the items
    /// a `<` or `[` does not hold are taken too (compat-tests `list-unclosed-*`).
    #[test]
    fn a_list_left_open_loses_no_item() {
        type Want<'a> = Vec<(&'a str, Option<char>)>;
        let q = Invalid::Unbalanced;
        for (text, old, want) in [
            (
                "g1@x.org, \"b@x.org, g2@x.org",
                false,
                vec![("g1@x.org", None), ("\"b@x.org, g2@x.org", Some('"'))],
            ),
            (
                "\"b@x.org, g1@x.org",
                false,
                vec![("\"b@x.org, g1@x.org", Some('"'))],
            ),
            (
                "g1@x.org, g2@x.org, \"b@x.org",
                false,
                vec![
                    ("g1@x.org", None),
                    ("g2@x.org", None),
                    ("\"b@x.org", Some('"')),
                ],
            ),
            (
                "g1@x.org, b@x.org (c, g2@x.org",
                false,
                vec![("g1@x.org", None), ("b@x.org (c, g2@x.org", Some('('))],
            ),
            (
                "g1@x.org, <b@x.org, g2@x.org",
                false,
                vec![
                    ("g1@x.org", None),
                    ("<b@x.org, g2@x.org", Some('<')),
                    ("g2@x.org", None),
                ],
            ),
            (
                "<b@x.org, g1@x.org, g2@x.org",
                false,
                vec![
                    ("<b@x.org, g1@x.org, g2@x.org", Some('<')),
                    ("g1@x.org", None),
                    ("g2@x.org", None),
                ],
            ),
            (
                "g1@x.org, b@[127.0.0.1, g2@x.org",
                false,
                vec![
                    ("g1@x.org", None),
                    ("b@[127.0.0.1", Some('[')),
                    ("g2@x.org", None),
                ],
            ),
            // The `<` comes first: it is named with the rest, then the `(`.
            (
                "<b@x.org, c@x.org (y",
                false,
                vec![
                    ("<b@x.org, c@x.org (y", Some('<')),
                    ("c@x.org (y", Some('(')),
                ],
            ),
            (
                "a@x.org b@x.org \"c",
                true,
                vec![("a@x.org", None), ("b@x.org", None), ("\"c", Some('"'))],
            ),
            // A `)` or `>` that closes nothing is named with the rest, as sendmail
            // names it; the items after it are taken.
            (
                "a), \"b",
                false,
                vec![("a), \"b", Some(')')), ("\"b", Some('"'))],
            ),
            (
                "g1@x.org, b@x.org), g2@x.org",
                false,
                vec![
                    ("g1@x.org", None),
                    ("b@x.org), g2@x.org", Some(')')),
                    ("g2@x.org", None),
                ],
            ),
            (
                "g1@x.org, b@x.org>, g2@x.org",
                false,
                vec![
                    ("g1@x.org", None),
                    ("b@x.org>, g2@x.org", Some('>')),
                    ("g2@x.org", None),
                ],
            ),
            // A source route's commas are route: the item runs to the end.
            ("<@r:v@x.org, w", false, vec![("<@r:v@x.org, w", Some('<'))]),
        ] {
            let mut got = recipients_of_list(text, old);
            got.reverse();
            let got: Vec<(String, Option<Invalid>)> =
                got.into_iter().map(|l| (l.text, l.error)).collect();
            let want: Want = want;
            let want: Vec<(String, Option<Invalid>)> = want
                .into_iter()
                .map(|(t, e)| (t.to_string(), e.map(q)))
                .collect();
            assert_eq!(got, want, "{text}");
        }
    }
}

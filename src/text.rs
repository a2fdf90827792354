//! Text from outside (a server's reply, a program's output, a file name, a list file's
//! address) made safe for the places it is shown and stored: a delivery report, the
//! terminal (`-v`, `mailq`) and the queue's state file.
//!
//! RFC 5321 §4.2 allows printable characters, SP and HT in a reply's text. Anything else
//! is dangerous where the text goes: a CR or LF starts a new line (a forged field in a
//! report's `message/delivery-status` part, a forged line in a transcript), a NUL ends a
//! C string, ESC, BEL and the C1 controls (U+0080–U+009F, CSI among them) are commands to
//! a terminal, DEL erases. So every control character (Unicode general category Cc: C0,
//! DEL, C1) becomes [`REPLACEMENT`], `?`, as Postfix's SMTP client replaces the
//! non-printable characters of a reply; HT becomes SP, so that a text stays one line of
//! one kind of blank. The invisible format characters ([`is_invisible`]: bidirectional
//! overrides and isolates, zero-width characters, the line and paragraph separators)
//! become [`REPLACEMENT`] too: they make a line on a terminal read otherwise than it is.
//! Printable non-ASCII (UTF-8 from an SMTPUTF8 server) is kept: it is text, not a
//! command. Octets that are not UTF-8 were already turned into U+FFFD when
//! the text was read.
//!
//! Made once where the text comes in (`smtp/reply.rs` `read_reply`, `Reply::local` in the
//! deliverer), so that every reply value, every reason in a state file and every line
//! after it is printable; the report writer (`dsn.rs`) and the transcript writer apply it
//! again as a last defence, and `mailq` shows what an old state file may still hold in
//! octal ([`crate::mailq`]).

use std::borrow::Cow;

/// What a control character becomes.
pub const REPLACEMENT: char = '?';

/// The first octets of a file of text lines (a config file, a table, a PEM file) that no
/// reader can take as text, as `(line, what)`: the line number (from 1) and a sentence
/// for `file: line N: what`. A UTF-8 byte order mark at the start is invisible in an
/// editor and would stick to the first keyword; one further on, or a NUL octet anywhere,
/// ends or breaks the word it is in. `None` for text without them. (Only the octets are
/// looked at: `EF BB BF`, `00`; other encodings' marks are not UTF-8 and fail as such.)
pub fn file_fault(text: &[u8]) -> Option<(usize, &'static str)> {
    if text.starts_with(BOM) {
        return Some((1, BOM_AT_START));
    }
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Some(what) = line_fault(line) {
            return Some((n + 1, what));
        }
    }
    None
}

/// A UTF-8 byte order mark's octets.
const BOM: &[u8] = b"\xef\xbb\xbf";
/// [`file_fault`]'s words for a byte order mark at the start of a file.
pub const BOM_AT_START: &str =
    "the file begins with a byte order mark (U+FEFF); save it without one";

/// Whether the text of a file of metadata `md` may be quoted in a message: only when
/// everyone may read it. A message (an error, a log line, a report mailed back) never
/// shows a line of a file its reader could not open herself (a file named by mistake,
/// `/etc/shadow`, or one read with root's rights or the spool's group).
pub fn readable_by_all(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o004 != 0
}

/// What a message says in place of a line of a file not everyone may read
/// ([`readable_by_all`]).
pub const NOT_QUOTED: &str = "its text is not shown: the file is not readable by everyone";

/// [`file_fault`]'s words for a NUL octet.
pub const NUL_OCTET: &str = "a NUL octet; the file is not text";
/// ... for a byte order mark after the start.
pub const BOM_INSIDE: &str = "an invisible byte order mark (U+FEFF) inside the line; remove it";

/// [`file_fault`] of one line, not the file's first (a mark at its start counts).
pub fn line_fault(line: &[u8]) -> Option<&'static str> {
    if line.contains(&0) {
        Some(NUL_OCTET)
    } else if line.windows(BOM.len()).any(|w| w == BOM) {
        Some(BOM_INSIDE)
    } else {
        None
    }
}

/// Whether `c` may stand in a one-line text as it is: not a control character
/// (Unicode general category Cc), not an invisible format character ([`is_invisible`]).
pub fn is_safe(c: char) -> bool {
    !c.is_control() && !is_invisible(c)
}

/// The invisible characters that change how the text around them is shown or read:
/// Unicode's format characters (general category Cf, Unicode 15.1), among them the
/// bidirectional controls (U+202A–U+202E embeddings and overrides, U+2066–U+2069
/// isolates, U+200E/U+200F marks, U+061C), zero-width characters (U+200B–U+200D,
/// U+2060, U+FEFF) and tag characters, which can make a terminal line read as
/// something else than what it holds (CVE-2021-42574, "Trojan Source"); and the line
/// and paragraph separators (U+2028, U+2029, categories Zl and Zp), line breaks that
/// are not LF.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// `s` with HT as SP and every other character that is not [`is_safe`] (C0 including
/// CR, LF and NUL, DEL, C1, the invisible format characters) as [`REPLACEMENT`];
/// borrowed when there is none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_safe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if is_safe(c) => c,
                _ => REPLACEMENT,
            })
            .collect(),
    )
}

/// `s` as every program prints text from outside (an address, a reason, a state file's
/// words) to a terminal or a log: each character that is not [`is_safe`] (C0, DEL, C1,
/// the invisible format characters, the bidirectional controls among them) as its UTF-8
/// octets, each `\ooo` in octal, as `mailq` and sendmail's logs write them; borrowed
/// when there is none. One form everywhere, so that what the log says can be found in
/// `mailq`, and no character reorders or hides what an admin reads.
pub fn escaped(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_safe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 12);
    for c in s.chars() {
        if is_safe(c) {
            out.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).as_bytes() {
                out.push_str(&format!("\\{b:03o}"));
            }
        }
    }
    Cow::Owned(out)
}

/// Lines of text as [`escaped`] writes one line, their line ends (LF) kept: for a
/// message of several lines (a refusal and, on its next line, the typo it may be), none
/// of which may hold a control character from outside.
pub fn escaped_lines(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| c == '\n' || is_safe(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.split('\n').map(escaped).collect::<Vec<_>>().join("\n"))
}

/// Octets from outside as text: UTF-8 as it is, each octet that is not part of a UTF-8
/// sequence (a Latin-1 `ö`, an overlong form, a surrogate, a code point over U+10FFFF, a
/// sequence cut short) as one U+FFFD; and whether there was any such octet. A reader that
/// must not change what it was given checks the flag and refuses, rather than going on
/// with the replacement characters as if the client had sent them.
pub fn octets(b: &[u8]) -> (Cow<'_, str>, bool) {
    if let Ok(s) = std::str::from_utf8(b) {
        return (Cow::Borrowed(s), false);
    }
    let mut out = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    (Cow::Owned(out), true)
}

/// Octets from outside shown in a message: [`printable`], with each octet that is not
/// UTF-8 as [`REPLACEMENT`] too (never sent back raw, never as a U+FFFD the client did
/// not write).
pub fn octets_shown(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&printable(chunk.valid()));
        out.extend(chunk.invalid().iter().map(|_| REPLACEMENT));
    }
    out
}

/// Octets from outside (a server's reply) as [`escaped`] shows text: UTF-8 as it is but
/// for each character that is not [`is_safe`], and each octet that is not part of a UTF-8
/// sequence, as `\ooo` in octal: what `rsendmail-admin check` shows of a server's reply,
/// as it shows every other text from outside.
pub fn octets_escaped(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escaped(chunk.valid()));
        for o in chunk.invalid() {
            out.push_str(&format!("\\{o:03o}"));
        }
    }
    out
}

/// The most characters of an argument a message echoes ([`argument_shown`]).
pub const ARGUMENT_SHOWN_MAX: usize = 256;

/// A command-line argument as an error message echoes it: [`escaped`], and of a long
/// one only its first [`ARGUMENT_SHOWN_MAX`] characters (cut between characters, never
/// inside one) followed by `...` and how long it was ([`cut_note`]: `... (100000
/// characters)`), so that a hostile argument never fills the terminal or the log.
pub fn argument_shown(s: &str) -> String {
    let head: String = s.chars().take(ARGUMENT_SHOWN_MAX).collect();
    let mut out = escaped(&head).into_owned();
    if head.len() < s.len() {
        out.push_str(&cut_note(s.chars().count()));
    }
    out
}

/// What follows the part of a text shown cut ([`argument_shown`]): `...` and the
/// length of the whole, `... (100000 characters)`.
pub fn cut_note(chars: usize) -> String {
    format!("... ({chars} characters)")
}

/// The longest run of characters without a blank that [`message_bounded`] shows whole:
/// `PATH_MAX`, so that a path in force, and a fix command naming it, stay whole.
pub const WORD_SHOWN_MAX: usize = 4096;

/// A message that echoes text from outside (a configuration line's value, a `check`
/// line): each run of characters without a blank longer than [`WORD_SHOWN_MAX`] shown as
/// [`argument_shown`] shows a long argument (its first characters, then `...`), so that
/// a 200 KB value never fills the terminal or the log; the rest as it is.
pub fn message_bounded(msg: &str) -> Cow<'_, str> {
    if msg
        .split([' ', '\t'])
        .all(|w| w.chars().nth(WORD_SHOWN_MAX).is_none())
    {
        return Cow::Borrowed(msg);
    }
    let mut out = String::new();
    for w in msg.split_inclusive([' ', '\t']) {
        let word = w.trim_end_matches([' ', '\t']);
        if word.chars().nth(WORD_SHOWN_MAX).is_some() {
            out.push_str(&argument_shown(word));
            out.push_str(w.get(word.len()..).unwrap_or(""));
        } else {
            out.push_str(w);
        }
    }
    Cow::Owned(out)
}

/// An argument given as octets (one that may not be UTF-8) as [`argument_shown`]
/// echoes it, each octet that is not part of a UTF-8 sequence as `\ooo` in octal (and
/// counted as one character in its length).
pub fn os_argument_shown(b: &[u8]) -> String {
    let mut out = String::new();
    let mut left = ARGUMENT_SHOWN_MAX;
    // Its length as it is counted: each character, and each octet that is not UTF-8.
    let total = || {
        b.utf8_chunks()
            .map(|c| c.valid().chars().count() + c.invalid().len())
            .sum::<usize>()
    };
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if left == 0 {
                out.push_str(&cut_note(total()));
                return out;
            }
            out.push_str(&escaped(c.encode_utf8(&mut [0u8; 4])));
            left -= 1;
        }
        for o in chunk.invalid() {
            if left == 0 {
                out.push_str(&cut_note(total()));
                return out;
            }
            out.push_str(&format!("\\{o:03o}"));
            left -= 1;
        }
    }
    out
}

/// Lines of text as [`printable`] makes one line, their line ends (LF) kept: for a
/// writer that gets whole lines, such as the `-v` transcript.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| c == '\n' || is_safe(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.split('\n').map(printable).collect::<Vec<_>>().join("\n"))
}

/// One character named for a message: `'x'` when printable, `character 0x1b` when a
/// control character (never the character itself, never a Rust escape such as `'\u{1b}'`).
pub fn named_char(c: char) -> String {
    if is_safe(c) {
        format!("'{c}'")
    } else {
        format!("character 0x{:02x}", u32::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octets_escaped_shows_controls_and_bad_octets_in_octal() {
        assert_eq!(octets_escaped(b"220 ok"), "220 ok");
        assert_eq!(
            octets_escaped(b"?\xff a\x1b[31m\tb\xc3\xa9"),
            "?\\377 a\\033[31m\\011b\u{e9}"
        );
    }

    #[test]
    fn escaped_writes_unsafe_characters_as_octal_octets() {
        assert_eq!(escaped("a@example.org"), "a@example.org");
        assert_eq!(escaped("evil\u{202e}gro"), "evil\\342\\200\\256gro");
        assert_eq!(escaped("a\u{1b}b\tc"), "a\\033b\\011c");
        assert_eq!(escaped("j\u{f6}hn"), "j\u{f6}hn");
        assert_eq!(escaped_lines("a\u{1b}\nb\rc\n"), "a\\033\nb\\015c\n");
    }

    #[test]
    fn file_faults_are_found_with_their_line() {
        assert_eq!(file_fault(b"a\nb\n"), None);
        assert_eq!(file_fault(b""), None);
        assert_eq!(file_fault(b"\xef\xbb\xbfa\n").map(|f| f.0), Some(1));
        assert_eq!(file_fault(b"a\nb\0c\n").map(|f| f.0), Some(2));
        assert_eq!(file_fault(b"a\n\nx \xef\xbb\xbfy").map(|f| f.0), Some(3));
        // A lone EF or a cut mark is not one.
        assert_eq!(file_fault(b"\xef\xbb\n\xbf"), None);
    }

    #[test]
    fn long_words_of_a_message_are_cut_and_blanks_kept() {
        let m = "invalid SMARTHOST  x:\ty";
        assert_eq!(message_bounded(m), m);
        let long = "\u{e9}".repeat(WORD_SHOWN_MAX + 1);
        let whole = "\u{e9}".repeat(WORD_SHOWN_MAX);
        let m = format!("a {long}\t{whole} {long}:");
        let head = "\u{e9}".repeat(ARGUMENT_SHOWN_MAX);
        let (n, colon) = (WORD_SHOWN_MAX + 1, WORD_SHOWN_MAX + 2);
        assert_eq!(
            message_bounded(&m),
            format!("a {head}... ({n} characters)\t{whole} {head}... ({colon} characters)")
        );
    }

    #[test]
    fn a_long_argument_is_cut_between_characters_with_its_length() {
        assert_eq!(argument_shown("short\u{1b}"), "short\\033");
        // Two-octet characters: cut after the 256th character, never inside one.
        let long = "\u{f6}".repeat(100_000);
        let shown = argument_shown(&long);
        assert_eq!(
            shown,
            format!(
                "{}... (100000 characters)",
                "\u{f6}".repeat(ARGUMENT_SHOWN_MAX)
            )
        );
        // Octets that are not UTF-8 count one each.
        let mut b = vec![b'a'; 300];
        b.push(0xff);
        assert_eq!(
            os_argument_shown(&b),
            format!("{}... (301 characters)", "a".repeat(ARGUMENT_SHOWN_MAX))
        );
    }

    #[test]
    fn octets_not_utf8_marked() {
        // (octets, text, any not UTF-8, shown)
        let table: &[(&[u8], &str, bool, &str)] = &[
            (b"j\xc3\xb6hn", "j\u{f6}hn", false, "j\u{f6}hn"),
            (b"j\xf6hn", "j\u{fffd}hn", true, "j?hn"),
            // Overlong `/`, a surrogate, over U+10FFFF, cut short: one mark an octet.
            (b"\xc0\xafx", "\u{fffd}\u{fffd}x", true, "??x"),
            (b"s\xed\xa0\x80", "s\u{fffd}\u{fffd}\u{fffd}", true, "s???"),
            (
                b"v\xf4\x90\x80\x80",
                "v\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
                true,
                "v????",
            ),
            (b"t\xc3", "t\u{fffd}", true, "t?"),
            // A U+FFFD the client wrote is text; controls are shown as `?`.
            (b"a\xef\xbf\xbdb", "a\u{fffd}b", false, "a\u{fffd}b"),
            (b"a\x1b\xf6", "a\x1b\u{fffd}", true, "a??"),
        ];
        for &(b, text, bad, shown) in table {
            assert_eq!(octets(b), (Cow::Borrowed(text), bad), "{b:?}");
            assert_eq!(octets_shown(b), shown, "{b:?}");
        }
    }

    #[test]
    fn controls_replaced() {
        // (text, shown)
        let table: &[(&str, &str)] = &[
            ("250 Ok", "250 Ok"),
            ("a\tb", "a b"),
            ("no\rAction: delivered", "no?Action: delivered"),
            ("a\nb\r\n", "a?b??"),
            ("nul\0here", "nul?here"),
            ("\u{1b}[2J\u{7}", "?[2J?"),
            ("del\u{7f}", "del?"),
            ("csi\u{9b}31m", "csi?31m"),
            ("\u{85}next line", "?next line"),
            ("Grüße 日本 \u{fffd}", "Grüße 日本 \u{fffd}"),
            // Bidirectional controls, marks, zero-width and tag characters, line and
            // paragraph separators: what would make a line read otherwise.
            ("a\u{202e}fdp.exe", "a?fdp.exe"),
            ("\u{2066}x\u{2067}y\u{2068}z\u{2069}", "?x?y?z?"),
            ("l\u{200e}r\u{200f}", "l?r?"),
            ("zero\u{200b}width\u{feff}", "zero?width?"),
            ("tag\u{e0041}", "tag?"),
            ("one\u{2028}two\u{2029}", "one?two?"),
            ("soft\u{ad}hyphen\u{61c}", "soft?hyphen?"),
            ("", ""),
        ];
        for (text, shown) in table {
            assert_eq!(printable(text), *shown, "{text:?}");
        }
        assert_eq!(named_char('_'), "'_'");
        assert_eq!(named_char('\u{1b}'), "character 0x1b");
        assert_eq!(named_char('\t'), "character 0x09");
        assert_eq!(named_char('\u{202e}'), "character 0x202e");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable_lines("a\rb\n<<< c\u{1b}\n"), "a?b\n<<< c?\n");
        assert!(matches!(printable_lines("a\nb\n"), Cow::Borrowed(_)));
    }
}

//! sendmail's command line → a typed [`Invocation`].
//!
//! sendmail 8.17 parses its argv with POSIX getopt and the option string
//! `A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtUV:vX:`, after a pass it calls
//! `obsolete()` that rewrites option-with-value flags given without one (`-q` → `-q0`,
//! `-C` → `-Csendmail.cf`, `-d` → `-d0-99.1`, `-Q` → `-Q.`). Parsing stops at the first
//! argument that is not an option (no GNU permutation: `sendmail bob -odq` has two
//! recipients), and at `--`. We reproduce that pass, then let lexopt split clusters
//! (`-ti`, `-odq`, `-oi`) and attached values.
//!
//! Errors, as sendmail prints them: syntax errors of getopt on stderr
//! (`<argv0>: illegal option -- Z`), everything else on stdout without a prefix, each with
//! its sysexits code. A bad delivery mode ends the program while argv is still being read,
//! before stdin is touched and whatever follows it.
//!
//! Arguments are any bytes: they are read with slice patterns, `strip_prefix` and
//! `chars`, never cut by byte index (the lints below keep it so), so no argument makes
//! the parser panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::exit::{Fatal, Sysexit};
use crate::options::{self, DeliveryMode, Settings, parse_duration};
use crate::selection::{FilterField, QueueFilter, QueueRunArgs};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// What the program was called as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    Sendmail,
    Mailq,
    Newaliases,
}

impl Personality {
    /// Dispatch on the basename of argv[0] (symlinks keep their own name).
    pub fn from_argv0(argv0: &[u8]) -> Personality {
        let base = argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0);
        match base {
            b"mailq" => Personality::Mailq,
            b"newaliases" => Personality::Newaliases,
            _ => Personality::Sendmail,
        }
    }
}

/// `-b<x>`: what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `-bm` (the default): deliver the message on stdin.
    Deliver,
    /// `-ba`: ARPANET mode (SMTP-like on stdin).
    Arpanet,
    /// `-bd`: daemon.
    Daemon,
    /// `-bD`: daemon in the foreground.
    DaemonForeground,
    /// `-bh`: print host status.
    HostStatus,
    /// `-bH`: purge host status.
    PurgeHostStatus,
    /// `-bi`: initialise the aliases.
    InitAliases,
    /// `-bp`: print the queue.
    PrintQueue,
    /// `-bP`: print the number of entries in the queues.
    PrintQueueCount,
    /// `-bs`: SMTP on stdin/stdout.
    Smtp,
    /// `-bt`: address test mode.
    AddressTest,
    /// `-bv`: verify addresses.
    Verify,
    /// `-q...`: a queue run (set by `-q` unless `-b` chose something else).
    QueueRun,
}

impl Operation {
    pub fn flag(self) -> &'static str {
        match self {
            Operation::Deliver => "-bm",
            Operation::Arpanet => "-ba",
            Operation::Daemon => "-bd",
            Operation::DaemonForeground => "-bD",
            Operation::HostStatus => "-bh",
            Operation::PurgeHostStatus => "-bH",
            Operation::InitAliases => "-bi",
            Operation::PrintQueue => "-bp",
            Operation::PrintQueueCount => "-bP",
            Operation::Smtp => "-bs",
            Operation::AddressTest => "-bt",
            Operation::Verify => "-bv",
            Operation::QueueRun => "-q",
        }
    }
}

/// `-N`: DSN NOTIFY.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// sendmail's rule: the whole value `never`, or a comma list of `success`,
    /// `failure` and `delay`, in any case, with nothing else between the commas (no
    /// blank, no empty word, no `never` in a list). Each word that is not one of them
    /// is one `Invalid -N argument` line, as sendmail says it for each (recorded:
    /// `N-spaces-odi`, `N-never-never-odi`, `N-empty-odi`), and the exit is EX_USAGE.
    pub fn parse(value: &str) -> Result<Notify, Fatal> {
        let mut n = Notify::default();
        if value.eq_ignore_ascii_case("never") {
            n.never = true;
            return Ok(n);
        }
        let mut bad = 0usize;
        for word in value.split(',') {
            match word.to_ascii_lowercase().as_str() {
                "success" => n.success = true,
                "failure" => n.failure = true,
                "delay" => n.delay = true,
                _ => bad += 1,
            }
        }
        if bad > 0 {
            return Err(Fatal::new(
                Sysexit::Usage,
                vec!["Invalid -N argument"; bad].join("\n"),
            ));
        }
        Ok(n)
    }

    /// The RFC 3461 keyword list (`NOTIFY=FAILURE,DELAY`).
    pub fn keywords(&self) -> String {
        if self.never {
            return "NEVER".into();
        }
        let mut v = Vec::new();
        if self.success {
            v.push("SUCCESS");
        }
        if self.failure {
            v.push("FAILURE");
        }
        if self.delay {
            v.push("DELAY");
        }
        v.join(",")
    }
}

/// `-R`: DSN RET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    /// The RFC 3461 keyword (`RET=HDRS`).
    pub fn keyword(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// `-B`: body type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
}

impl BodyType {
    /// The RFC 6152 keyword (`BODY=8BITMIME`).
    pub fn keyword(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
        }
    }
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub argv0: String,
    pub personality: Personality,
    pub operation: Operation,
    /// `-C file`: another config file (unsafe).
    pub config_file: Option<PathBuf>,
    /// `-O`/`-o` settings, which win over the config file.
    pub settings: Settings,
    /// Notes printed as options are read (`Option X used as abbreviation for Y`).
    pub notes: Vec<String>,
    /// `-f`/`-r`: envelope sender; `Some("")` is the null sender `<>`.
    pub sender: Option<String>,
    /// `-F`: full name.
    pub full_name: Option<String>,
    /// `-t`.
    pub read_recipients: bool,
    /// `-v`.
    pub verbose: bool,
    /// `-n`: no aliasing.
    pub no_alias: bool,
    /// `-q...`.
    pub queue_run: Option<QueueRunArgs>,
    pub notify: Option<Notify>,
    pub ret: Option<Ret>,
    /// `-V envid`.
    pub envid: Option<String>,
    pub body_type: Option<BodyType>,
    /// `-h N`: the starting hop count, read as sendmail's `strtol` reads it (leading
    /// blanks and a sign allowed, nothing after the digits).
    pub hop_count: Option<i64>,
    /// `-p proto[:host]`.
    pub protocol: Option<String>,
    /// `-L label`.
    pub log_label: Option<String>,
    /// `-X file`: traffic log (unsafe).
    pub traffic_log: Option<PathBuf>,
    /// `-XV` / `-XVxy` (Postfix's sendmail): send this message VERP style, with the
    /// delimiters `xy` or, for `None`, `O VerpDelimiters=` (see [`verp_request`]).
    pub verp: Option<Option<String>>,
    /// `-d...` / `-D file`: debugging (unsafe).
    pub debug: bool,
    /// `-A c|m`.
    pub alternate: Option<char>,
    /// `mailq --json`.
    pub json: bool,
    /// An `-O`/`-o` option that is not "safe" was given.
    pub unsafe_setting: bool,
    /// Those options and `-d`/`-D`, as named on the command line (`-O Timeout.connect`,
    /// `-oA`, `-d`), each once.
    pub unsafe_names: Vec<String>,
    pub recipients: Vec<String>,
    /// `--version` or `--help`: answered at once, nothing else is done.
    pub answer: Option<Answer>,
}

/// `--version` and `--help`, which sendmail 8.17 does not have (it takes either as the
/// end of its options and says `Recipient names must be specified`, exit 64): users and
/// packagers expect them of a program. Only in option position: after `--` or the first
/// recipient they are recipients, as any argument there is. Other long options stay
/// getopt's error (`illegal option -- -`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Version,
    Help,
}

const USAGE: &str = "\
Usage: sendmail [option...] [--] recipient...
       sendmail -bp | -bs | -bd | -bi | -bv address... | -q[time]
       mailq [-v] [--json]
       newaliases
Options are sendmail 8.17's, with its meanings: -t recipients from the header,
-i a lone dot is data, -f sender, -F full name, -od<b|i|q|d> delivery mode,
-v verbose, -C config file, -O name=value, -q[R|S|I]<text> queue runs.
--version prints the version. Manual pages: rsendmail(8), rsendmail.conf(5).
";

impl Answer {
    /// What is printed on stdout (the program then exits 0).
    pub fn text(self) -> String {
        match self {
            Answer::Version => format!("rsendmail {}\n", env!("CARGO_PKG_VERSION")),
            Answer::Help => USAGE.to_string(),
        }
    }
}

impl Invocation {
    /// A process that runs until stopped: the daemon (`-bd`, `-bD`) or the periodic queue
    /// runner (`-q<time>`); every other invocation is one-shot.
    pub fn is_long_running(&self) -> bool {
        match self.operation {
            Operation::Daemon | Operation::DaemonForeground => true,
            Operation::QueueRun => self
                .queue_run
                .as_ref()
                .is_some_and(|q| q.interval.is_some() || q.persistent),
            _ => false,
        }
    }

    fn new(argv0: String, personality: Personality) -> Invocation {
        let operation = match personality {
            Personality::Sendmail => Operation::Deliver,
            Personality::Mailq => Operation::PrintQueue,
            Personality::Newaliases => Operation::InitAliases,
        };
        Invocation {
            argv0,
            personality,
            operation,
            config_file: None,
            settings: Settings::default(),
            notes: Vec::new(),
            sender: None,
            full_name: None,
            read_recipients: false,
            verbose: false,
            no_alias: false,
            queue_run: None,
            notify: None,
            ret: None,
            envid: None,
            body_type: None,
            hop_count: None,
            protocol: None,
            log_label: None,
            traffic_log: None,
            verp: None,
            debug: false,
            alternate: None,
            json: false,
            unsafe_setting: false,
            unsafe_names: Vec::new(),
            recipients: Vec::new(),
            answer: None,
        }
    }

    /// Whether an option that may choose files was given (a set-id binary then drops its
    /// group before doing anything, as sendmail does for unsafe options).
    pub fn uses_unsafe_option(&self) -> bool {
        self.config_file.is_some()
            || self.traffic_log.is_some()
            || self.debug
            || self.unsafe_setting
    }

    /// The options `given` ([`Invocation::unsafe_options_given`]) as a sentence names
    /// them (`-C`, `-C and -O Timeout`, or `an option that chooses files` for none), and
    /// `it` or `them`.
    pub fn named_with_pronoun(given: &[String]) -> (String, &'static str) {
        match given {
            [] => ("an option that chooses files".to_string(), "it"),
            [one] => (one.clone(), "it"),
            [rest @ .., last] => (format!("{} and {last}", rest.join(", ")), "them"),
        }
    }

    /// Note `name` among [`Invocation::unsafe_names`] (once).
    fn note_unsafe(&mut self, name: &str) {
        if !self.unsafe_names.iter().any(|n| n == name) {
            self.unsafe_names.push(name.to_string());
        }
    }

    /// The options of this command line that cost a set-id program its group
    /// ([`Invocation::uses_unsafe_option`]), as the caller gave them: `-C`, `-X`, `-d`,
    /// `-d`/`-D`, then each unsafe `-O NAME` or `-oL`, in the order given.
    pub fn unsafe_options_given(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.config_file.is_some() {
            out.push("-C".to_string());
        }
        if self.traffic_log.is_some() {
            out.push("-X".to_string());
        }
        out.extend(self.unsafe_names.iter().cloned());
        out
    }
}

/// Options that take a value, as in sendmail's getopt string.
const TAKES_VALUE: &[u8] = b"ABbCDdeFfhLMNOopQqRrVX";

/// sendmail's `obsolete()` pass: give value-taking flags with nothing after them the value
/// sendmail supplies, and split `-X=value` so that lexopt does not eat the `=`.
fn preprocess(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter().peekable();
    while let Some(arg) = iter.next() {
        let b = arg.as_bytes().to_vec();
        let (letter, after) = match b.as_slice() {
            [b'-', letter, after @ ..] if *letter != b'-' => (*letter, after),
            _ => {
                // First non-option or "--": the rest is passed through untouched.
                out.push(arg);
                out.extend(iter);
                break;
            }
        };
        if TAKES_VALUE.contains(&letter) {
            if after.is_empty() {
                let next_is_value = iter
                    .peek()
                    .map(|n| !n.as_bytes().starts_with(b"-"))
                    .unwrap_or(false);
                if next_is_value && letter != b'd' {
                    out.push(arg);
                    if let Some(v) = iter.next() {
                        out.push(v);
                    }
                    continue;
                }
                let replacement: Option<&[u8]> = match letter {
                    b'q' => Some(b"-q0"),
                    b'C' => Some(b"-Csendmail.cf"),
                    b'Q' => Some(b"-Q."),
                    b'd' => Some(b"-d0-99.1"),
                    _ => None,
                };
                match replacement {
                    Some(r) => out.push(OsString::from_vec(r.to_vec())),
                    None => out.push(arg),
                }
                continue;
            }
            if after.starts_with(b"=") {
                out.push(OsString::from_vec(vec![b'-', letter]));
                out.push(OsString::from_vec(after.to_vec()));
                continue;
            }
        }
        out.push(arg);
    }
    out
}

/// No argument may smuggle a line break or NUL into a queue file or an SMTP command.
fn check_no_control(what: &str, value: &str) -> Result<(), Fatal> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Fatal::new(
            Sysexit::Usage,
            format!("{what}: line breaks and NUL are not allowed"),
        ));
    }
    Ok(())
}

fn to_string(what: &str, v: OsString) -> Result<String, Fatal> {
    let s = v.into_string().map_err(|v| {
        // Non-UTF-8 arguments are kept bytewise where they are data; here they are names.
        Fatal::new(
            Sysexit::Usage,
            format!(
                "{what}: argument is not valid text: {}",
                crate::text::octets_shown(v.as_bytes())
            ),
        )
    })?;
    check_no_control(what, &s)?;
    Ok(s)
}

fn parse_q(inv: &mut Invocation, value: &str) -> Result<(), Fatal> {
    let q = inv.queue_run.get_or_insert_with(QueueRunArgs::default);
    let (negate, rest) = match value.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, value),
    };
    let mut chars = rest.chars();
    let first = chars.next();
    let tail = chars.as_str();
    let field = match first {
        Some('I') => Some(FilterField::QueueId),
        Some('R') => Some(FilterField::Recipient),
        Some('S') => Some(FilterField::Sender),
        Some('Q') => Some(FilterField::Quarantine),
        _ => None,
    };
    if let Some(field) = field {
        // An empty `-qI`, `-qR` or `-qS` is a filter too, as in sendmail: it matches
        // every entry (negated, none) and makes the run a selection
        // ([`QueueRunArgs::is_selection`]; recorded: minqueueage-qR-empty, q-notR-empty).
        check_no_control("-q", tail)?;
        q.filters.push(QueueFilter {
            field,
            negate,
            substring: tail.to_string(),
        });
        return Ok(());
    }
    // sendmail ignores `!` before f, L and p and refuses it before G
    // (recorded: `q-not-f`, `q-not-L`, `q-not-G`).
    if negate && first == Some('G') {
        return Err(Fatal::new(Sysexit::Usage, "Can not use -q!G"));
    }
    if negate && !matches!(first, Some('f' | 'L' | 'p')) {
        return Err(Fatal::new(
            Sysexit::Usage,
            format!("Can only negate I, R, Q or S: -q{value}"),
        ));
    }
    match first {
        Some('f') => q.foreground = true,
        Some('G') => q.group = Some(tail.to_string()),
        Some('L') => q.lost = true,
        Some('p') => {
            q.persistent = true;
            if !tail.is_empty() {
                q.interval = Some(parse_duration(tail, 'm')?);
            }
        }
        _ => {
            let secs = parse_duration(value, 'm')?;
            q.interval = if secs == 0 { None } else { Some(secs) };
        }
    }
    Ok(())
}

fn parse_b(inv: &mut Invocation, value: &str) -> Result<(), Fatal> {
    let op = match value.chars().next() {
        Some('a') => Operation::Arpanet,
        Some('d') => Operation::Daemon,
        Some('D') => Operation::DaemonForeground,
        Some('h') => Operation::HostStatus,
        Some('H') => Operation::PurgeHostStatus,
        Some('i') => Operation::InitAliases,
        Some('m') => Operation::Deliver,
        Some('p') => Operation::PrintQueue,
        Some('P') => Operation::PrintQueueCount,
        Some('s') => Operation::Smtp,
        Some('t') => Operation::AddressTest,
        Some('v') => Operation::Verify,
        other => {
            let c = other.map(String::from).unwrap_or_default();
            return Err(Fatal::new(
                Sysexit::Usage,
                format!("Invalid operation mode {c}"),
            ));
        }
    };
    inv.operation = op;
    Ok(())
}

/// Apply `-O Name=value`.
fn apply_long(inv: &mut Invocation, text: &str) -> Result<(), Fatal> {
    check_no_control("-O", text)?;
    let (name, value) = options::split_assignment(text);
    let r = options::lookup_long(name)?;
    if let Some(note) = r.abbreviation_note {
        inv.notes.push(note);
    }
    if !r.def.safe {
        inv.unsafe_setting = true;
        inv.note_unsafe(&format!("-O {}", crate::text::printable(name.trim())));
    }
    inv.settings.apply(r.def, r.sub.as_deref(), value)?;
    inv.settings.note_spelled(
        &options::given_key(r.def, r.sub.as_deref()),
        &format!("-O {}=", crate::text::printable(name.trim())),
    );
    Ok(())
}

/// Apply `-o<letter><value>`; unknown letters are ignored, as by sendmail.
fn apply_letter(inv: &mut Invocation, text: &str) -> Result<(), Fatal> {
    check_no_control("-o", text)?;
    let mut chars = text.chars();
    let Some(letter) = chars.next() else {
        return Ok(());
    };
    let value = chars.as_str();
    if let Some(def) = options::lookup_letter(letter) {
        if !def.safe {
            inv.unsafe_setting = true;
            inv.note_unsafe(&format!("-o{letter}"));
        }
        inv.settings.apply(def, None, value)?;
        inv.settings
            .note_spelled(&options::given_key(def, None), &format!("-o{letter}"));
    }
    Ok(())
}

/// Parse argv (argv[0] first). An error that echoes an argument (`illegal option --
/// c`, `Unknown delivery mode c`, `Invalid operation mode c`, `readcf: unknown option
/// name X`, `Invalid value for NAME: VALUE`) shows each control character of it (BS,
/// SOH, ESC, DEL, C1) and each invisible format character as its octets in octal
/// (`illegal option -- \001`, [`crate::text::escaped_lines`]), as every other program
/// of rsendmail shows text from outside. sendmail 8.17 echoes the octet as it is
/// (recorded), which a terminal acts on or hides: compat-tests/DIFFERENCES.md.
pub fn parse(args: Vec<OsString>) -> Result<Invocation, Fatal> {
    parse_raw(args).map_err(Fatal::escaped)
}

/// [`parse`], its errors' arguments as given.
fn parse_raw(args: Vec<OsString>) -> Result<Invocation, Fatal> {
    let mut args = args.into_iter();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("sendmail"));
    let personality = Personality::from_argv0(argv0.as_bytes());
    let argv0 = argv0.to_string_lossy().into_owned();
    let mut inv = Invocation::new(argv0.clone(), personality);
    let mut rest: Vec<OsString> = args.collect();
    if personality == Personality::Mailq {
        // `mailq --json` (Postfix's `postqueue -j` in spirit), before getopt sees it.
        let before = rest.len();
        rest.retain(|a| a.as_bytes() != b"--json");
        inv.json = rest.len() != before;
    }
    let rest = preprocess(rest);
    let mut parser = lexopt::Parser::from_args(rest);
    let illegal =
        |c: char| Fatal::stderr(Sysexit::Usage, format!("{argv0}: illegal option -- {c}"));
    loop {
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(lexopt::Error::MissingValue { option }) => {
                let c = option
                    .as_deref()
                    .and_then(|o| o.trim_start_matches('-').chars().next())
                    .unwrap_or('?');
                return Err(Fatal::stderr(
                    Sysexit::Usage,
                    format!("{argv0}: option requires an argument -- {c}"),
                ));
            }
            Err(e) => return Err(Fatal::stderr(Sysexit::Usage, format!("{argv0}: {e}"))),
        };
        // Own the argument so that the parser can be asked for values below.
        enum A {
            Short(char),
            Long,
            Answer(Answer),
            Value(OsString),
        }
        let arg = match arg {
            lexopt::Arg::Short(c) => A::Short(c),
            lexopt::Arg::Long("version") => A::Answer(Answer::Version),
            lexopt::Arg::Long("help") => A::Answer(Answer::Help),
            lexopt::Arg::Long(_) => A::Long,
            lexopt::Arg::Value(v) => A::Value(v),
        };
        use A::{Long, Short, Value};
        let mut value = |what: &str| -> Result<String, Fatal> {
            let v = parser.value().map_err(|_| {
                Fatal::stderr(
                    Sysexit::Usage,
                    format!("{argv0}: option requires an argument -- {what}"),
                )
            })?;
            to_string(&format!("-{what}"), v)
        };
        match arg {
            Short('A') => inv.alternate = value("A")?.chars().next(),
            Short('B') => {
                let v = value("B")?;
                inv.body_type = Some(if v.eq_ignore_ascii_case("7BIT") {
                    BodyType::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    BodyType::EightBitMime
                } else {
                    return Err(Fatal::new(Sysexit::Usage, format!("Illegal body type {v}")));
                });
            }
            Short('b') => {
                let v = value("b")?;
                parse_b(&mut inv, &v)?;
            }
            Short('C') => inv.config_file = Some(PathBuf::from(value("C")?)),
            Short('c' | 'G' | 'I' | 'm' | 's' | 'T' | 'U') => {
                // Legacy letters: accepted quietly. (-I is the old -bi.)
                if let Short('I') = arg {
                    inv.operation = Operation::InitAliases;
                }
            }
            Short('D') => {
                value("D")?;
                inv.debug = true;
                inv.note_unsafe("-D");
            }
            Short('d') => {
                value("d")?;
                inv.debug = true;
                inv.note_unsafe("-d");
            }
            Short('e') => {
                let v = value("e")?;
                apply_letter(&mut inv, &format!("e{v}"))?;
            }
            Short('F') => inv.full_name = Some(value("F")?),
            Short('f' | 'r') => {
                let v = value("f")?;
                // A second -f or -r (the same value too, the empty one too) is refused
                // and nothing is sent, as sendmail does (compat cases f-twice,
                // f-twice-same, f-then-r, r-then-f, r-twice, f-twice-empty, f-twice-bv).
                if inv.sender.is_some() {
                    return Err(Fatal::new(Sysexit::Usage, "More than one \"from\" person"));
                }
                // `<>` is the null sender; `<addr>` is addr.
                let bare = match v.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
                    Some(inner) => inner.to_string(),
                    None => v,
                };
                inv.sender = Some(bare);
            }
            Short('h') => {
                let v = value("h")?;
                inv.hop_count =
                    Some(parse_hop_count(&v).ok_or_else(|| {
                        Fatal::new(Sysexit::Usage, format!("Bad hop count ({v})"))
                    })?);
            }
            Short('i') => inv.settings.ignore_dots = Some(true),
            Short('L') => inv.log_label = Some(value("L")?),
            Short('M') => {
                value("M")?;
            }
            Short('N') => inv.notify = Some(Notify::parse(&value("N")?)?),
            Short('n') => inv.no_alias = true,
            Short('O') => {
                let v = value("O")?;
                apply_long(&mut inv, &v)?;
            }
            Short('o') => {
                let v = value("o")?;
                apply_letter(&mut inv, &v)?;
            }
            Short('p') => inv.protocol = Some(value("p")?),
            Short('Q') => {
                let v = value("Q")?;
                return Err(Fatal::new(
                    Sysexit::Usage,
                    format!("Quarantining (-Q{v}) is not supported by rsendmail"),
                ));
            }
            Short('q') => {
                let v = value("q")?;
                parse_q(&mut inv, &v)?;
            }
            Short('R') => {
                let v = value("R")?;
                inv.ret = Some(if v.eq_ignore_ascii_case("full") {
                    Ret::Full
                } else if v.eq_ignore_ascii_case("hdrs") {
                    Ret::Hdrs
                } else {
                    return Err(Fatal::new(Sysexit::Usage, "Invalid -R value"));
                });
            }
            Short('t') => inv.read_recipients = true,
            Short('V') => {
                let v = value("V")?;
                // sendmail takes any length, but a server may refuse the MAIL of an
                // ENVID over RFC 3461 §4.4's 100 characters (DIFFERENCES.md; recorded:
                // `V-long-odi`): said before anything is queued, in words that say why.
                if envid_chars_ok(&v) && v.len() > MAX_ENVID {
                    return Err(Fatal::new(
                        Sysexit::Usage,
                        format!(
                            "Invalid -V flag: the envelope id is {} characters long, at most {MAX_ENVID} may be sent (RFC 3461 section 4.4)",
                            v.len()
                        ),
                    ));
                }
                if !valid_envid(&v) {
                    return Err(Fatal::new(Sysexit::Usage, "Invalid syntax in -V flag"));
                }
                inv.envid = Some(v);
            }
            Short('v') => inv.verbose = true,
            Short('X') => {
                // A value that begins with `V` is a VERP request, attached (`-XV`,
                // `-XV+=`) or given apart (`-X V`), as Postfix's sendmail reads it (its
                // getopt does not tell them apart); one whose delimiters are not two of
                // `-=+` is refused, never taken for a traffic log file named `V...`.
                // Every other value names the traffic log, as in sendmail.
                let v = match parser.optional_value() {
                    Some(v) => to_string("-X", v)?,
                    None => {
                        let v = parser.value().map_err(|_| {
                            Fatal::stderr(
                                Sysexit::Usage,
                                format!("{argv0}: option requires an argument -- X"),
                            )
                        })?;
                        to_string("-X", v)?
                    }
                };
                match verp_request(&v) {
                    Some(Ok(d)) => inv.verp = Some(d),
                    Some(Err(e)) => return Err(e),
                    None => inv.traffic_log = Some(PathBuf::from(v)),
                }
            }
            Short(c) => return Err(illegal(c)),
            Long => return Err(illegal('-')),
            // `--version=x` is not the option.
            A::Answer(_) if parser.optional_value().is_some() => return Err(illegal('-')),
            A::Answer(answer) => {
                inv.answer = Some(answer);
                return Ok(inv);
            }
            Value(first) => {
                inv.recipients.push(to_string("recipient", first)?);
                for more in parser
                    .raw_args()
                    .map_err(|e| Fatal::stderr(Sysexit::Usage, format!("{argv0}: {e}")))?
                {
                    inv.recipients.push(to_string("recipient", more)?);
                }
                break;
            }
        }
    }
    if inv.queue_run.is_some() && inv.operation == Operation::Deliver {
        inv.operation = Operation::QueueRun;
    }
    Ok(inv)
}

/// What the value of `-X` asks for when it is a VERP request (Postfix's sendmail(1)):
/// `V` alone is VERP with the configured delimiters (`Some(Ok(None))`), `V` and two
/// delimiters from `-=+` (`-XV-=`) is VERP with those (`Some(Ok(Some("-=")))`); `V` and
/// anything else is refused with EX_USAGE (`Some(Err(_))`: `-XVab`, `-XV=`, `-XV+=-`), as
/// Postfix's sendmail refuses it. `None`: not a VERP request (a traffic log file name,
/// as in sendmail; one that begins with `V` is written `./V...`).
pub fn verp_request(value: &str) -> Option<Result<Option<String>, Fatal>> {
    let rest = value.strip_prefix('V')?;
    if rest.is_empty() {
        return Some(Ok(None));
    }
    Some(match crate::verp::check_delimiters(rest) {
        Ok(()) => Ok(Some(rest.to_string())),
        Err(_) => Err(Fatal::new(
            Sysexit::Usage,
            format!(
                "Invalid -XV delimiters ({}): two characters from {} are required",
                crate::text::escaped(rest),
                crate::verp::DELIMITER_FILTER
            ),
        )),
    })
}

/// RFC 3461 ENVID: xtext, printable ASCII without `+`/`=` unescaped, at most 100 chars.
/// The longest ENVID a server must take (RFC 3461 §4.4), in characters.
const MAX_ENVID: usize = 100;

/// An ENVID as `-V` may give it: 1 to [`MAX_ENVID`] printable ASCII characters but `=`
/// (RFC 3461 §4.4's xchar; xtext-encoded on the wire).
fn valid_envid(v: &str) -> bool {
    envid_chars_ok(v) && v.len() <= MAX_ENVID
}

/// Whether an ENVID's characters are all ones it may have, whatever its length.
fn envid_chars_ok(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'=')
}

/// The delivery mode in force: `-v` means interactive whatever the order; otherwise the
/// last mode given wins (the command line over the config); background when none is given.
pub fn effective_mode(
    verbose: bool,
    command_line: Option<DeliveryMode>,
    config: Option<DeliveryMode>,
) -> DeliveryMode {
    if verbose {
        return DeliveryMode::Interactive;
    }
    command_line.or(config).unwrap_or(DeliveryMode::Background)
}

/// `-h`'s value as sendmail's `strtol(optarg, &ep, 10)` with `*ep == '\0'` takes it:
/// leading white space and one sign, then decimal digits and nothing else (no digits at
/// all is 0); `None` for anything else (`Bad hop count (abc)`). Values beyond `i64` are
/// clamped.
pub fn parse_hop_count(v: &str) -> Option<i64> {
    let t = v.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or("")),
        Some(b'+') => (false, t.get(1..).unwrap_or("")),
        _ => (false, t),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.is_empty() {
        // strtol reads nothing and leaves `ep` at the start: `-h ''` is 0, `-h -` is not.
        return v.is_empty().then_some(0);
    }
    let n = digits.bytes().fold(0i64, |n, b| {
        n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if neg { -n } else { n })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {

    #[test]
    fn hop_count_read_as_strtol() {
        for (v, want) in [
            ("25", Some(25)),
            (" 7", Some(7)),
            ("-5", Some(-5)),
            ("+3", Some(3)),
            ("", Some(0)),
            ("99999999999999999999999", Some(i64::MAX)),
            ("abc", None),
            ("5 ", None),
            ("5x", None),
            ("-", None),
            (" ", None),
            ("--5", None),
        ] {
            assert_eq!(parse_hop_count(v), want, "{v:?}");
        }
    }

    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, Fatal> {
        let mut v: Vec<OsString> = vec!["sendmail".into()];
        v.extend(args.iter().map(OsString::from));
        parse(v)
    }

    /// Every spelling of `-X` whose value begins with `V` is VERP or refused, attached or
    /// apart; never a traffic log file named `V...`. Other values name the traffic log.
    #[test]
    fn xv_is_verp_or_refused() {
        for (args, want) in [
            (&["-XV", "a"][..], None),
            (&["-X", "V", "a"], None),
            (&["-XV+=", "a"], Some("+=")),
            (&["-XV-=", "a"], Some("-=")),
            (&["-X", "V=+", "a"], Some("=+")),
            (&["-XV--", "a"], Some("--")),
        ] {
            let inv = p(args).unwrap_or_else(|e| panic!("{args:?}: {}", e.message));
            assert_eq!(inv.verp, Some(want.map(String::from)), "{args:?}");
            assert_eq!(inv.traffic_log, None, "{args:?}");
        }
        for (args, shown) in [
            (&["-XVab", "a"][..], "ab"),
            (&["-X", "Vab", "a"], "ab"),
            (&["-XV=", "a"], "="),
            (&["-XV+", "a"], "+"),
            (&["-XV+=-", "a"], "+=-"),
            (&["-X", "V+=-", "a"], "+=-"),
            (&["-XVlog", "a"], "log"),
            (&["-XV+\u{e9}", "a"], "+\u{e9}"),
            (&["-XV\t=", "a"], "\\011="),
        ] {
            let f = p(args).err().unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(f.code, Sysexit::Usage, "{args:?}");
            assert_eq!(
                f.message,
                format!("Invalid -XV delimiters ({shown}): two characters from -=+ are required"),
                "{args:?}"
            );
        }
        for (args, log) in [
            (&["-X", "./V", "a"][..], "./V"),
            (&["-X/tmp/Vlog", "a"], "/tmp/Vlog"),
            (&["-X", "log", "a"], "log"),
            (&["-Xv", "a"], "v"),
        ] {
            let inv = p(args).unwrap();
            assert_eq!(inv.traffic_log, Some(PathBuf::from(log)), "{args:?}");
            assert_eq!(inv.verp, None, "{args:?}");
        }
    }

    /// `--version` and `--help` answer in option position only; every sendmail flag
    /// around them keeps its meaning.
    #[test]
    fn version_and_help() {
        let answered: &[(&[&str], Answer)] = &[
            (&["--version"], Answer::Version),
            (&["--help"], Answer::Help),
            (&["-v", "--version"], Answer::Version),
            (&["-odq", "-i", "--help"], Answer::Help),
            (&["--help", "bob@example.org"], Answer::Help),
        ];
        for (args, want) in answered {
            assert_eq!(p(args).unwrap().answer, Some(*want), "{args:?}");
        }
        // Recipients after `--` or the first recipient; other long options illegal.
        let not: &[(&[&str], &[&str])] = &[
            (&["--", "--version"], &["--version"]),
            (&["bob", "--help"], &["bob", "--help"]),
            (&["-v", "--", "--help"], &["--help"]),
        ];
        for (args, rcpts) in not {
            let inv = p(args).unwrap();
            assert_eq!(inv.answer, None, "{args:?}");
            assert_eq!(inv.recipients, *rcpts, "{args:?}");
        }
        for args in [
            &["--versionx"][..],
            &["--version=1"],
            &["--hel"],
            &["--json"],
        ] {
            let f = p(args).err().unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(f.message, "sendmail: illegal option -- -", "{args:?}");
        }
        // -v is still verbose, with nothing answered.
        let inv = p(&["-v", "bob"]).unwrap();
        assert!(inv.verbose && inv.answer.is_none());
        assert_eq!(
            Answer::Version.text(),
            format!("rsendmail {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn delivery_mode_spellings() {
        use DeliveryMode::*;
        let cases: &[(&[&str], Option<DeliveryMode>)] = &[
            (&["-odq"], Some(QueueOnly)),
            (&["-odqueueonly"], Some(QueueOnly)),
            (&["-odd"], Some(Deferred)),
            (&["-odb"], Some(Background)),
            (&["-odi"], Some(Interactive)),
            (&["-od"], Some(Interactive)),
            (&["-o", "dq"], Some(QueueOnly)),
            (&["-O", "DeliveryMode=q"], Some(QueueOnly)),
            (&["-ODeliveryMode=d"], Some(Deferred)),
            (&["-O", "deliverymode = b"], Some(Background)),
            (&["-O", "DeliveryMode="], Some(Interactive)),
            (&["-O", "DeliveryMode"], Some(Interactive)),
            (&["-odq", "-O", "DeliveryMode=b"], Some(Background)),
            (&["-O", "DeliveryMode=b", "-odd"], Some(Deferred)),
            (&[], None),
        ];
        for (args, want) in cases {
            let inv = p(args).unwrap();
            assert_eq!(inv.settings.delivery_mode, *want, "{args:?}");
        }
    }

    #[test]
    fn bad_mode_stops_at_once() {
        for args in [
            &["-odQ"][..],
            &["-odQ", "-odq"],
            &["-O", "DeliveryMode=Q"],
            &["-oi", "-odQ", "bob"],
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.code, Sysexit::Usage, "{args:?}");
            assert_eq!(e.message, "Unknown delivery mode Q", "{args:?}");
            assert!(!e.to_stderr);
        }
        assert_eq!(p(&["-odx"]).unwrap_err().message, "Unknown delivery mode x");
    }

    #[test]
    fn verbose_means_interactive_in_any_order() {
        for args in [&["-v", "-odq"][..], &["-odq", "-v"]] {
            let inv = p(args).unwrap();
            assert_eq!(
                effective_mode(inv.verbose, inv.settings.delivery_mode, None),
                DeliveryMode::Interactive
            );
        }
        assert_eq!(effective_mode(false, None, None), DeliveryMode::Background);
        assert_eq!(
            effective_mode(false, None, Some(DeliveryMode::Deferred)),
            DeliveryMode::Deferred
        );
        assert_eq!(
            effective_mode(
                false,
                Some(DeliveryMode::QueueOnly),
                Some(DeliveryMode::Deferred)
            ),
            DeliveryMode::QueueOnly
        );
    }

    #[test]
    fn illegal_option_goes_to_stderr() {
        let e = p(&["-Z"]).unwrap_err();
        assert_eq!(e.message, "sendmail: illegal option -- Z");
        assert!(e.to_stderr);
        assert_eq!(e.code, Sysexit::Usage);
        assert_eq!(
            p(&["--foo"]).unwrap_err().message,
            "sendmail: illegal option -- -"
        );
    }

    /// A control character an error echoes from an argument is shown as its octets in
    /// octal, never as it is (sendmail 8.17 echoes it raw: a terminal hides BS, SOH and
    /// DEL, and acts on ESC) nor dropped; the status and stream stay sendmail's.
    #[test]
    fn control_characters_an_error_echoes_are_shown_in_octal() {
        for (args, message, code) in [
            (
                &["-\u{1}"][..],
                "sendmail: illegal option -- \\001",
                Sysexit::Usage,
            ),
            (
                &["-\u{8}"],
                "sendmail: illegal option -- \\010",
                Sysexit::Usage,
            ),
            (
                &["-\u{7f}"],
                "sendmail: illegal option -- \\177",
                Sysexit::Usage,
            ),
            (
                &["-\u{1b}"],
                "sendmail: illegal option -- \\033",
                Sysexit::Usage,
            ),
            (&["-od\u{1}"], "Unknown delivery mode \\001", Sysexit::Usage),
            (
                &["-b\u{7f}"],
                "Invalid operation mode \\177",
                Sysexit::Usage,
            ),
            (
                &["-O", "\u{8}x=1"],
                "readcf: unknown option name \\010x",
                Sysexit::Software,
            ),
            (
                &["-O", "MaxHopCount=\u{1b}[2J"],
                "Invalid value for MaxHopCount: \\033[2J",
                Sysexit::Usage,
            ),
            (
                &["-O", "DeliveryMode=\u{9b}"],
                "Unknown delivery mode \\302\\233",
                Sysexit::Usage,
            ),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!((e.message.as_str(), e.code), (message, code), "{args:?}");
        }
        assert!(p(&["-\u{1}"]).unwrap_err().to_stderr);
    }

    #[test]
    fn unknown_o_letter_ignored_unknown_long_name_fails() {
        assert!(p(&["-oZzz", "bob"]).is_ok());
        let e = p(&["-O", "Foo=bar"]).unwrap_err();
        assert_eq!(e.code, Sysexit::Software);
        assert_eq!(e.message, "readcf: unknown option name Foo");
    }

    #[test]
    fn no_permutation_after_first_recipient() {
        let inv = p(&["bob", "-odQ"]).unwrap();
        assert_eq!(inv.recipients, vec!["bob", "-odQ"]);
        let inv = p(&["-oi", "--", "-bob"]).unwrap();
        assert_eq!(inv.recipients, vec!["-bob"]);
    }

    #[test]
    fn real_callers() {
        let cron = p(&["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t"]).unwrap();
        assert_eq!(cron.full_name.as_deref(), Some("CronDaemon"));
        assert!(cron.read_recipients);
        assert_eq!(cron.settings.ignore_dots, Some(true));
        assert_eq!(cron.settings.error_mode, Some('m'));
        let mutt = p(&[
            "-oem",
            "-oi",
            "-N",
            "failure,delay",
            "-R",
            "full",
            "--",
            "a@b",
        ])
        .unwrap();
        assert_eq!(mutt.notify.as_ref().unwrap().keywords(), "FAILURE,DELAY");
        assert_eq!(mutt.ret, Some(Ret::Full));
        assert_eq!(mutt.recipients, vec!["a@b"]);
        let alpine = p(&["-bs", "-odb", "-oem"]).unwrap();
        assert_eq!(alpine.operation, Operation::Smtp);
        let php = p(&["-t", "-i"]).unwrap();
        assert!(php.read_recipients);
        let lettre = p(&["-i", "-f", "from@x", "--", "rcpt@y"]).unwrap();
        assert_eq!(lettre.sender.as_deref(), Some("from@x"));
        let ti = p(&["-ti"]).unwrap();
        assert!(ti.read_recipients);
        assert_eq!(ti.settings.ignore_dots, Some(true));
    }

    #[test]
    fn one_from_person_only() {
        for args in [
            &["-f", "a@x", "-f", "b@x"][..],
            &["-f", "a@x", "-f", "a@x"],
            &["-f", "a@x", "-r", "b@x"],
            &["-r", "a@x", "-f", "a@x"],
            &["-ra@x", "-rb@x"],
            &["-f", "", "-f", "a@x"],
            &["-f", "<>", "-f", "<>"],
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.code, Sysexit::Usage, "{args:?}");
            assert_eq!(e.message, "More than one \"from\" person", "{args:?}");
        }
        assert_eq!(p(&["-r", "a@x"]).unwrap().sender.as_deref(), Some("a@x"));
    }

    #[test]
    fn q_forms() {
        let q = |args: &[&str]| p(args).unwrap().queue_run.unwrap();
        assert_eq!(q(&["-q"]).interval, None);
        assert_eq!(p(&["-q"]).unwrap().operation, Operation::QueueRun);
        assert_eq!(q(&["-q30m"]).interval, Some(1800));
        assert_eq!(q(&["-q1h30m"]).interval, Some(5400));
        assert_eq!(q(&["-q", "15"]).interval, Some(900));
        assert!(q(&["-qf"]).foreground);
        assert!(q(&["-qp"]).persistent);
        assert_eq!(q(&["-qp5m"]).interval, Some(300));
        let f = q(&["-qRExample.ORG"]).filters;
        assert_eq!(f[0].field, FilterField::Recipient);
        assert!(f[0].matches("bob@example.org"));
        let f = q(&["-q!Sroot"]).filters;
        assert!(f[0].negate && f[0].field == FilterField::Sender);
        assert!(!f[0].matches("root@x"));
        // A filter in a separate argument is an empty filter: everything, and a
        // selection all the same (sendmail's rule for MinQueueAge).
        let inv = p(&["-qR", "example.org"]).unwrap();
        let f = &inv.queue_run.as_ref().unwrap().filters;
        assert_eq!(f.len(), 1);
        assert!(f[0].substring.is_empty() && f[0].matches("bob@example.org"));
        for form in ["-qR", "-qS", "-qI", "-q!R", "-q!S", "-q!I", "-qQx", "-qRa"] {
            assert!(q(&[form]).is_selection(), "{form}");
        }
        for form in ["-q", "-qf", "-q30m", "-qQ", "-qp", "-qL"] {
            assert!(!q(&[form]).is_selection(), "{form}");
        }
        assert_eq!(q(&["-qGmain"]).group.as_deref(), Some("main"));
        assert!(q(&["-qL"]).lost);
        assert_eq!(p(&["-q5x"]).unwrap_err().message, "Invalid time unit `x'");
        // sendmail ignores `!` before f, L and p, and refuses it before G (recorded:
        // `q-not-f`, `q-not-L`, `q-not-G`).
        assert!(q(&["-q!f"]).foreground);
        assert!(q(&["-q!L"]).lost);
        assert!(q(&["-q!p"]).persistent);
        assert_eq!(p(&["-q!Gmqueue"]).unwrap_err().message, "Can not use -q!G");
        assert_eq!(p(&["-q!30m"]).unwrap_err().code, Sysexit::Usage);
    }

    #[test]
    fn q_lost_quarantined_and_unknown_groups_select_nothing_queued() {
        let q = |args: &[&str]| p(args).unwrap().queue_run.unwrap();
        let plain = q(&["-q"]);
        assert!(plain.selects("X", "s@h", &["a@example.org"]));
        assert!(plain.selects_entry(true, "X", "s@h", &["a@example.org"]));
        for args in [
            &["-qL"][..],
            &["-qQ"],
            &["-q!Q"],
            &["-qQheld"],
            &["-qGnosuch"],
        ] {
            let r = q(args);
            assert!(!r.selects("X", "s@h", &["a@example.org"]), "{args:?}");
        }
        let g = q(&["-qGmqueue"]);
        assert!(g.unknown_group().is_none());
        assert!(g.selects("X", "s@h", &["a@example.org"]));
        assert_eq!(q(&["-qGnosuch"]).unknown_group(), Some("nosuch"));
        // `mailq -qQ` lists the held entries, those set aside as sendmail quarantines.
        assert!(q(&["-qQ"]).selects_entry(true, "X", "s@h", &["a@example.org"]));
        assert!(q(&["-qQhel"]).selects_entry(true, "X", "s@h", &["a@example.org"]));
        assert!(!q(&["-qQother"]).selects_entry(true, "X", "s@h", &["a@example.org"]));
        assert!(!q(&["-q!Q"]).selects_entry(true, "X", "s@h", &["a@example.org"]));
    }

    #[test]
    fn queue_selection_rules() {
        let inv = p(&["-qRexample.org", "-qRexample.net", "-qSalice"]).unwrap();
        let q = inv.queue_run.unwrap();
        assert!(q.selects("X", "alice@h", &["bob@example.net"]));
        assert!(!q.selects("X", "carol@h", &["bob@example.net"]));
        assert!(!q.selects("X", "alice@h", &["bob@example.com"]));
        let neg = p(&["-q!Rexample.org"]).unwrap().queue_run.unwrap();
        assert!(!neg.selects("X", "a", &["x@example.org", "y@other"]));
        assert!(neg.selects("X", "a", &["y@other"]));
    }

    #[test]
    fn b_modes() {
        assert_eq!(p(&["-bp"]).unwrap().operation, Operation::PrintQueue);
        assert_eq!(p(&["-bD"]).unwrap().operation, Operation::DaemonForeground);
        let e = p(&["-bx"]).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (Sysexit::Usage, "Invalid operation mode x")
        );
    }

    #[test]
    fn dsn_arguments_validated() {
        assert_eq!(
            p(&["-N", "bogus"]).unwrap_err().message,
            "Invalid -N argument"
        );
        assert_eq!(
            p(&["-N", "never,success"]).unwrap_err().code,
            Sysexit::Usage
        );
        assert!(p(&["-N", "never"]).unwrap().notify.unwrap().never);
        assert!(p(&["-N", "NEVER"]).unwrap().notify.unwrap().never);
        assert!(p(&["-N", "SUCCESS,Delay"]).unwrap().notify.unwrap().delay);
        // sendmail's words for each bad word, and no blank taken (recorded:
        // N-spaces-odi, N-never-never-odi, N-empty-odi, N-trailing-comma-odi).
        for (bad, lines) in [
            ("success, failure", 1),
            ("success ,failure", 1),
            (" success", 1),
            ("", 1),
            ("success,", 1),
            ("never,never", 2),
            ("never,success", 1),
            ("bogus,,x", 3),
        ] {
            let e = p(&["-N", bad]).unwrap_err();
            assert_eq!(e.code, Sysexit::Usage, "{bad:?}");
            assert_eq!(
                e.message,
                vec!["Invalid -N argument"; lines].join("\n"),
                "{bad:?}"
            );
        }
        assert_eq!(p(&["-R", "bogus"]).unwrap_err().message, "Invalid -R value");
        assert_eq!(p(&["-R", "hdrs"]).unwrap().ret, Some(Ret::Hdrs));
        assert_eq!(
            p(&["-V", "a b"]).unwrap_err().message,
            "Invalid syntax in -V flag"
        );
        // Over 100 characters: said as such (a bad character in it is syntax).
        assert!(p(&["-V", &"e".repeat(100)]).is_ok());
        let long = p(&["-V", &"e".repeat(101)]).unwrap_err();
        assert_eq!(long.code, Sysexit::Usage);
        assert_eq!(
            long.message,
            "Invalid -V flag: the envelope id is 101 characters long, at most 100 may be sent (RFC 3461 section 4.4)"
        );
        assert_eq!(
            p(&["-V", &format!("a b{}", "e".repeat(120))])
                .unwrap_err()
                .message,
            "Invalid syntax in -V flag"
        );
        assert_eq!(
            p(&["-B", "foo"]).unwrap_err().message,
            "Illegal body type foo"
        );
    }

    #[test]
    fn injection_refused() {
        for args in [
            &["-f", "a@b\r\nRCPT TO:<x>"][..],
            &["-F", "Name\nBcc: x"],
            &["bob@x\n"],
            &["-V", "id\r\n"],
            &["-O", "DeliveryMode=q\n"],
        ] {
            let e = p(args).unwrap_err();
            assert!(
                matches!(e.code, Sysexit::Usage | Sysexit::DataErr),
                "{args:?} gave {e:?}"
            );
        }
    }

    #[test]
    fn personalities_and_unsafe() {
        let v = |a0: &str, args: &[&str]| {
            let mut v: Vec<OsString> = vec![a0.into()];
            v.extend(args.iter().map(OsString::from));
            parse(v).unwrap()
        };
        assert_eq!(v("/usr/bin/mailq", &[]).operation, Operation::PrintQueue);
        assert!(v("mailq", &["--json"]).json);
        assert_eq!(v("newaliases", &[]).operation, Operation::InitAliases);
        assert_eq!(v("/usr/sbin/send-mail", &[]).operation, Operation::Deliver);
        assert!(v("sendmail", &["-C", "/tmp/x"]).uses_unsafe_option());
        assert!(v("sendmail", &["-oQ/tmp"]).uses_unsafe_option());
        assert!(v("sendmail", &["-O", "QueueDirectory=/tmp"]).uses_unsafe_option());
        assert!(!v("sendmail", &["-odq", "-oi", "-O", "DeliveryMode=b"]).uses_unsafe_option());
        assert_eq!(
            v("sendmail", &["-C"]).config_file,
            Some(PathBuf::from("sendmail.cf"))
        );
    }

    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// One argument: a flag (with its value or not), or any octets.
        fn arg() -> impl Strategy<Value = OsString> {
            let flag = select(
                &[
                    "-odq", "-oi", "-O", "-o", "-q", "-qR", "-q!I", "-qp", "-bp", "-bs", "-f",
                    "-F", "-N", "-R", "-V", "-X", "-h", "-B", "-t", "-v", "-C", "-d", "-e", "-L",
                    "-p", "-Q", "-M", "-A", "-b", "--", "-", "-O=", "-oé", "-ti", "-qI",
                ][..],
            );
            prop_oneof![
                3 => flag.clone().prop_map(OsString::from),
                2 => (flag, "\\PC{0,12}|[0-9smhdw]{0,25}").prop_map(|(f, v)| OsString::from(format!("{f}{v}"))),
                2 => "\\PC{0,20}".prop_map(OsString::from),
                1 => vec(any::<u8>(), 0..20).prop_map(OsString::from_vec),
            ]
        }

        proptest! {
            #[test]
            fn any_argv_is_parsed_or_refused(
                argv0 in select(&["sendmail", "mailq", "newaliases", "/usr/sbin/send-mail", ""][..]),
                args in vec(arg(), 0..10),
            ) {
                let mut v = vec![OsString::from(argv0)];
                v.extend(args);
                if let Err(e) = parse(v) {
                    prop_assert!(!e.message.is_empty());
                    prop_assert!(matches!(e.code, Sysexit::Usage | Sysexit::Software), "{:?}", e.code);
                }
            }
        }
    }
}

//! The one option table shared by `-O Name=value`, `-o<letter>value` and the config file's
//! `O Name=value` / `O<letter><value>` lines, and the typed [`Settings`] they fill in.
//!
//! This module owns the table ([`OPTION_TABLE`], [`OptDef`], [`ACTED_ON`]), the value
//! parsers (sendmail's `convtime` is [`parse_duration`]), [`Settings`] and
//! [`DeliveryMode`]. The command line ([`crate::cli`]) and the config file
//! ([`crate::config`]) fill a `Settings` through it; submission, the SMTP server, the
//! queue and the deliverer only read the typed fields. It does not read argv itself.
//!
//! Names and their order are sendmail 8.17's `OptionTab` (readcf.c): order matters because
//! sendmail resolves an abbreviation by prefix and, when it is ambiguous, names the first two
//! matches in table order (`readcf: ambiguous option name D (matches DeliveryMode and
//! DaemonPortOptions)`). Lookup is case-insensitive; blanks around `=` are allowed.
//!
//! Failure modes, as sendmail 8.17 shows them (stdout, no program prefix):
//! - unknown name: `readcf: unknown option name X`, EX_SOFTWARE (70);
//! - ambiguous prefix: `readcf: ambiguous option name X (matches A and B)`, EX_SOFTWARE;
//! - a unique prefix works and prints `Option X used as abbreviation for Y`;
//! - a bad delivery mode: `Unknown delivery mode c`, EX_USAGE (64), at once.
//!
//! Values: every option either program acts on ([`ACTED_ON`]) is parsed here, once, into
//! a typed field of [`Settings`], when the option is applied — on the command line or on
//! a config line — so a bad value ends the program before a message is read:
//! `Invalid value for NAME: VALUE`, EX_USAGE (the config file adds `file: line N:` and
//! makes it EX_CONFIG). The deliverer and the SMTP server read the typed fields and
//! nothing else, so they cannot refuse a value `rsendmail` accepted. Options rsendmail
//! does not act on are accepted with any value and kept unparsed in [`Settings::other`],
//! but for sendmail's timeouts: a `Timeout.` name sendmail knows has its value checked
//! as sendmail reads it, and one it does not know gets sendmail's
//! `settimeout: invalid timeout NAME`, EX_SOFTWARE ([`SENDMAIL_TIMEOUTS`]).
//! What is not checked here: whether DefaultUser's user exists (looked up at delivery),
//! and the files options name (see `Config::check_files`).
//!
//! Values are any text (from argv or a config file): they are parsed with `split_once`,
//! `chars` and the standard parsers, never cut by byte index (the lints below keep it
//! so), and numbers saturate or are refused, so no value makes a parser panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::exit::{Fatal, Sysexit};
use crate::server::net::{self, Net};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One entry of the option table.
#[derive(Debug)]
pub struct OptDef {
    /// sendmail's long name.
    pub name: &'static str,
    /// The one-letter name of `-o<letter>` and `O<letter>` lines, if it has one.
    pub letter: Option<char>,
    /// "Safe" options may be given by any user without costing a set-id binary its group.
    pub safe: bool,
}

const fn opt(name: &'static str, letter: Option<char>, safe: bool) -> OptDef {
    OptDef { name, letter, safe }
}

/// sendmail 8.17's option table, in its order.
pub static OPTION_TABLE: &[OptDef] = &[
    opt("SevenBitInput", Some('7'), true),
    opt("EightBitMode", Some('8'), true),
    opt("AliasFile", Some('A'), false),
    opt("AliasWait", Some('a'), false),
    opt("BlankSub", Some('B'), false),
    opt("MinFreeBlocks", Some('b'), true),
    opt("CheckpointInterval", Some('C'), true),
    opt("HoldExpensive", Some('c'), false),
    opt("DeliveryMode", Some('d'), true),
    opt("ErrorHeader", Some('E'), false),
    opt("ErrorMode", Some('e'), true),
    opt("TempFileMode", Some('F'), false),
    opt("SaveFromLine", Some('f'), false),
    opt("MatchGECOS", Some('G'), false),
    opt("HelpFile", Some('H'), false),
    opt("MaxHopCount", Some('h'), false),
    opt("ResolverOptions", Some('I'), false),
    opt("IgnoreDots", Some('i'), true),
    opt("ForwardPath", Some('J'), false),
    opt("SendMimeErrors", Some('j'), true),
    opt("ConnectionCacheSize", Some('k'), false),
    opt("ConnectionCacheTimeout", Some('K'), false),
    opt("UseErrorsTo", Some('l'), false),
    opt("LogLevel", Some('L'), true),
    opt("MeToo", Some('m'), true),
    opt("CheckAliases", Some('n'), false),
    opt("OldStyleHeaders", Some('o'), true),
    opt("DaemonPortOptions", Some('O'), false),
    opt("PrivacyOptions", Some('p'), true),
    opt("PostmasterCopy", Some('P'), false),
    opt("QueueFactor", Some('q'), false),
    opt("QueueDirectory", Some('Q'), false),
    opt("DontPruneRoutes", Some('R'), false),
    opt("StatusFile", Some('S'), false),
    opt("SuperSafe", Some('s'), true),
    opt("QueueTimeout", Some('T'), false),
    opt("Timeout", Some('r'), false),
    opt("TimeZoneSpec", Some('t'), false),
    opt("UserDatabaseSpec", Some('U'), false),
    opt("DefaultUser", Some('u'), false),
    opt("FallbackMXhost", Some('V'), false),
    opt("Verbose", Some('v'), true),
    opt("TryNullMXList", Some('w'), false),
    opt("QueueLA", Some('x'), false),
    opt("RefuseLA", Some('X'), false),
    opt("RecipientFactor", Some('y'), false),
    opt("ForkEachJob", Some('Y'), false),
    opt("ClassFactor", Some('z'), false),
    opt("RetryFactor", Some('Z'), false),
    opt("QueueSortOrder", None, true),
    opt("HostsFile", None, false),
    opt("MinQueueAge", None, true),
    opt("DefaultCharSet", None, true),
    opt("ServiceSwitchFile", None, false),
    opt("DialDelay", None, true),
    opt("NoRecipientAction", None, true),
    opt("SafeFileEnvironment", None, false),
    opt("MaxMessageSize", None, false),
    opt("ColonOkInAddr", None, true),
    opt("MaxQueueRunSize", None, true),
    opt("MaxDaemonChildren", None, false),
    opt("DontExpandCnames", None, false),
    opt("MustQuoteChars", None, false),
    opt("SmtpGreetingMessage", None, false),
    opt("UnixFromLine", None, false),
    opt("OperatorChars", None, false),
    opt("DontInitGroups", None, false),
    opt("SingleLineFromHeader", None, true),
    opt("AllowBogusHELO", None, true),
    opt("ConnectionRateThrottle", None, false),
    opt("UnsafeGroupWrites", None, true),
    opt("DoubleBounceAddress", None, false),
    opt("HostStatusDirectory", None, false),
    opt("SingleThreadDelivery", None, false),
    opt("RunAsUser", None, false),
    opt("RrtImpliesDsn", None, true),
    opt("PidFile", None, false),
    opt("DontBlameSendmail", None, false),
    opt("DontProbeInterfaces", None, false),
    opt("MaxRecipientsPerMessage", None, true),
    opt("DeadLetterDrop", None, false),
    opt("MaxAliasRecursion", None, false),
    opt("ConnectOnlyTo", None, false),
    opt("TrustedUser", None, false),
    opt("MaxMimeHeaderLength", None, false),
    opt("ControlSocketName", None, false),
    opt("MaxHeadersLength", None, false),
    opt("ProcessTitlePrefix", None, false),
    opt("DefaultAuthInfo", None, false),
    opt("AuthMechanisms", None, false),
    opt("ClientPortOptions", None, false),
    opt("DataFileBufferSize", None, false),
    opt("XscriptFileBufferSize", None, false),
    opt("ServerCertFile", None, false),
    opt("ServerKeyFile", None, false),
    opt("ClientCertFile", None, false),
    opt("ClientKeyFile", None, false),
    opt("CACertFile", None, false),
    opt("CACertPath", None, false),
    opt("DHParameters", None, false),
    opt("InputMailFilters", None, false),
    opt("AuthOptions", None, false),
    opt("QueueFileMode", None, false),
    opt("CertFingerprintAlgorithm", None, false),
    opt("CipherList", None, false),
    opt("RandFile", None, false),
    opt("TLSSrvOptions", None, false),
    opt("BadRcptThrottle", None, true),
    opt("DeliverByMin", None, false),
    opt("MaxQueueChildren", None, false),
    opt("MaxRunnersPerQueue", None, false),
    opt("DirectSubmissionModifiers", None, false),
    opt("NiceQueueRun", None, false),
    opt("SharedMemoryKey", None, false),
    opt("AuthMaxBits", None, false),
    opt("MailboxDatabase", None, false),
    opt("UseMSP", None, false),
    opt("DelayLA", None, false),
    opt("FastSplit", None, false),
    opt("SoftBounce", None, false),
    opt("SharedMemoryKeyFile", None, false),
    opt("RejectLogInterval", None, false),
    opt("RequiresDirfsync", None, false),
    opt("ConnectionRateWindowSize", None, false),
    opt("CRLFile", None, false),
    opt("FallbackSmartHost", None, false),
    opt("AuthRealm", None, false),
    opt("CRLPath", None, false),
    opt("HeloName", None, false),
    opt("MaxNOOPCommands", None, false),
    opt("BadRcptShutdown", None, false),
    opt("BadRcptShutdownGood", None, false),
    opt("ServerSSLOptions", None, false),
    opt("ClientSSLOptions", None, false),
    opt("MaxQueueAge", None, false),
    opt("RejectNUL", None, false),
    opt("UseCompressedIPv6Addresses", None, false),
    opt("SSLEngine", None, false),
    opt("SSLEnginePath", None, false),
    opt("TLSFallbacktoClear", None, false),
    opt("SetCertAltnames", None, false),
    opt("SmtpUTF8", None, false),
    opt("StrictTransportSecurity", None, false),
    opt("CipherSuites", None, false),
    // rsendmail's own options, after sendmail's so that its abbreviations keep their meaning.
    opt("MXPort", None, false),
    opt("SmarthostSplit", None, false),
    opt("MaxConnections", None, false),
    opt("MaxBackgroundDeliveries", None, false),
    opt("QueueRetryMin", None, false),
    opt("QueueRetryMax", None, false),
    opt("QueueRetryLocal", None, false),
    opt("TrustedNetworks", None, false),
    opt("RelayDomains", None, false),
    opt("FastFlushDomains", None, false),
    opt("Verp", None, false),
    opt("VerpDelimiters", None, false),
    opt("SortByDomain", None, false),
    opt("SmarthostRandom", None, false),
];

/// How many entries at the end of the table are rsendmail's own (not sendmail's).
const OWN_OPTIONS: usize = 14;

/// The result of resolving a long option name.
#[derive(Debug)]
pub struct Resolved {
    pub def: &'static OptDef,
    /// The part after a dot (`Timeout.queuereturn` → `queuereturn`).
    pub sub: Option<String>,
    /// `Option X used as abbreviation for Y`, when a prefix was used.
    pub abbreviation_note: Option<String>,
}

/// The option name of [`OPTION_TABLE`] that `name` (without a `.sub` part) is a typo of,
/// in any case, when there is exactly one within a few edits (`DeliverMode`:
/// DeliveryMode; `MaxHopCont`: MaxHopCount). sendmail's `readcf: unknown option name`
/// has no such hint; rsendmail's configuration file adds it.
pub fn close_option_name(name: &str) -> Option<&'static str> {
    let base = name
        .split_once('.')
        .map_or(name, |(b, _)| b)
        .to_ascii_lowercase();
    let mut close = OPTION_TABLE.iter().filter(|d| {
        crate::admin::elsewhere::close_names(
            std::path::Path::new(&d.name.to_ascii_lowercase()),
            std::path::Path::new(&base),
        )
    });
    match (close.next(), close.next()) {
        (Some(one), None) => Some(one.name),
        _ => None,
    }
}

/// Resolve a long name (case-insensitive, exact match first, then a unique prefix).
pub fn lookup_long(name: &str) -> Result<Resolved, Fatal> {
    let (base, sub) = match name.split_once('.') {
        Some((b, s)) => (b, Some(s.to_string())),
        None => (name, None),
    };
    if let Some(def) = OPTION_TABLE
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(base))
    {
        return Ok(Resolved {
            def,
            sub,
            abbreviation_note: None,
        });
    }
    let lower = base.to_ascii_lowercase();
    // sendmail's names first, so that rsendmail's own never make an abbreviation that
    // works with sendmail ambiguous (`Tru` stays TrustedUser).
    let (sendmail_names, own_names) = OPTION_TABLE.split_at(OPTION_TABLE.len() - OWN_OPTIONS);
    let find = |part: &'static [OptDef]| -> Vec<&'static OptDef> {
        part.iter()
            .filter(|d| d.name.to_ascii_lowercase().starts_with(&lower))
            .collect()
    };
    let matches: Vec<&OptDef> = if base.is_empty() {
        Vec::new()
    } else {
        let m = find(sendmail_names);
        if m.is_empty() { find(own_names) } else { m }
    };
    match matches.as_slice() {
        // `-O =` and `-O =value` (compat cases O-null-name, O-null-name-value).
        [] if base.is_empty() => Err(Fatal::new(Sysexit::Software, "readcf: null option name")),
        [] => Err(Fatal::new(
            Sysexit::Software,
            format!("readcf: unknown option name {base}"),
        )),
        [one] => Ok(Resolved {
            def: one,
            sub,
            abbreviation_note: Some(format!(
                "Option {base} used as abbreviation for {}",
                one.name
            )),
        }),
        [a, b, ..] => Err(Fatal::new(
            Sysexit::Software,
            format!(
                "readcf: ambiguous option name {base} (matches {} and {})",
                a.name, b.name
            ),
        )),
    }
}

/// The one-letter form (`-oi`, `-odq`, config `Odq`).
pub fn lookup_letter(c: char) -> Option<&'static OptDef> {
    OPTION_TABLE.iter().find(|d| d.letter == Some(c))
}

/// Split `Name=value` / `Name = value` / `Name` as sendmail does (blanks around `=`).
pub fn split_assignment(text: &str) -> (&str, &str) {
    match text.split_once('=') {
        Some((n, v)) => (n.trim(), v.trim_start()),
        None => (text.trim(), ""),
    }
}

/// sendmail's four delivery modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    Background,
    Interactive,
    QueueOnly,
    Deferred,
}

impl DeliveryMode {
    /// sendmail's rule: only the first character counts, it must be lowercase, and an empty
    /// value means interactive.
    pub fn parse(value: &str) -> Result<DeliveryMode, Fatal> {
        match value.chars().next() {
            None => Ok(DeliveryMode::Interactive),
            Some('b') => Ok(DeliveryMode::Background),
            Some('i') => Ok(DeliveryMode::Interactive),
            Some('q') => Ok(DeliveryMode::QueueOnly),
            Some('d') => Ok(DeliveryMode::Deferred),
            Some(c) => Err(Fatal::new(
                Sysexit::Usage,
                format!("Unknown delivery mode {c}"),
            )),
        }
    }

    /// A value of the configuration file's `O DeliveryMode=` of which the first
    /// character alone is read (sendmail's rule, kept) and the rest is neither nothing
    /// nor the rest of the mode's own name (`b extra`, `qx`): the character read, which
    /// `rsendmail-admin config` and `check` warn of. None for a value read whole
    /// (`q`, `queueonly`, `background`, empty) or refused.
    pub fn ignored_rest(value: &str) -> Option<char> {
        let v = value.trim();
        let mode = DeliveryMode::parse(v).ok()?;
        let first = v.chars().next()?;
        let whole = [mode.name(), "queue", "defer"];
        (v.chars().count() > 1 && !whole.contains(&v)).then_some(first)
    }

    pub fn letter(self) -> char {
        match self {
            DeliveryMode::Background => 'b',
            DeliveryMode::Interactive => 'i',
            DeliveryMode::QueueOnly => 'q',
            DeliveryMode::Deferred => 'd',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DeliveryMode::Background => "background",
            DeliveryMode::Interactive => "interactive",
            DeliveryMode::QueueOnly => "queueonly",
            DeliveryMode::Deferred => "deferred",
        }
    }
}

/// Whether the config file's setting of an option counts even when the command line
/// gave it too: `PrivacyOptions`, whose flags add up (sendmail keeps sendmail.cf's
/// `needmailhelo` under `-O PrivacyOptions=noetrn`; compat-tests/cases/bs-privacy-adds-up).
pub fn adds_up(def: &OptDef) -> bool {
    def.name == "PrivacyOptions"
}

/// How an option given on the command line is recorded, so that the config file does not
/// set it again: its name, and for `Timeout.<name>` the timeout's own name, lowercase
/// (sendmail keeps each timeout's command-line setting apart: `-O Timeout.connect=5s`
/// leaves the config's other timeouts in force).
pub fn given_key(def: &OptDef, sub: Option<&str>) -> String {
    match sub {
        Some(s) if def.name == "Timeout" => format!("Timeout.{}", s.to_ascii_lowercase()),
        _ => def.name.to_string(),
    }
}

/// The options rsendmail acts on, with the kind of value each takes. Every one of them is
/// parsed into a typed field of [`Settings`] when it is applied (on the command line or
/// on a config line), so that a bad value is refused at once, with its origin, before a
/// message is read; nothing reads these options from text later. Every other option of
/// [`OPTION_TABLE`] is accepted and kept unparsed in [`Settings::other`].
pub static ACTED_ON: &[(&str, Kind)] = &[
    ("DeliveryMode", Kind::DeliveryMode),
    ("ErrorMode", Kind::ErrorMode),
    ("IgnoreDots", Kind::Bool),
    ("Verbose", Kind::Bool),
    ("QueueDirectory", Kind::AbsolutePath),
    ("AliasFile", Kind::Path),
    ("CACertFile", Kind::Path),
    ("PidFile", Kind::Path),
    ("MaxMessageSize", Kind::Limit),
    ("MaxHopCount", Kind::Count),
    ("MaxRecipientsPerMessage", Kind::Limit),
    ("MaxDaemonChildren", Kind::Count),
    ("MaxNOOPCommands", Kind::Count),
    ("MaxConnections", Kind::Positive),
    ("MaxBackgroundDeliveries", Kind::Positive),
    ("ConnectionCacheSize", Kind::Count),
    ("ConnectionCacheTimeout", Kind::Time),
    ("SmarthostSplit", Kind::Positive),
    ("MXPort", Kind::Port),
    ("MinQueueAge", Kind::Time),
    ("QueueRetryMin", Kind::Time),
    ("QueueRetryMax", Kind::Time),
    ("QueueRetryLocal", Kind::Time),
    ("Timeout.connect", Kind::Time),
    ("Timeout.initial", Kind::Time),
    ("Timeout.helo", Kind::Time),
    ("Timeout.mail", Kind::Time),
    ("Timeout.rcpt", Kind::Time),
    ("Timeout.datainit", Kind::Time),
    ("Timeout.datablock", Kind::Time),
    ("Timeout.datafinal", Kind::Time),
    ("Timeout.rset", Kind::Time),
    ("Timeout.quit", Kind::Time),
    ("Timeout.queuereturn", Kind::Time),
    ("Timeout.queuewarn", Kind::Time),
    ("Timeout.resolver.retrans", Kind::Time),
    ("Timeout.resolver.retry", Kind::Count),
    ("Timeout.mboxlock", Kind::Time),
    ("Timeout.command", Kind::Time),
    ("DefaultUser", Kind::User),
    ("PrivacyOptions", Kind::Privacy),
    ("TrustedNetworks", Kind::Networks),
    ("DaemonPortOptions", Kind::Listen),
    ("RelayDomains", Kind::Domains),
    ("FastFlushDomains", Kind::Domains),
    ("OldStyleHeaders", Kind::Bool),
    ("CheckAliases", Kind::Bool),
    ("BlankSub", Kind::Char),
    ("Verp", Kind::Bool),
    ("VerpDelimiters", Kind::VerpDelimiters),
    ("SortByDomain", Kind::Bool),
    ("SmarthostRandom", Kind::Bool),
    ("QueueSortOrder", Kind::QueueSortOrder),
    ("MaxQueueRunSize", Kind::Limit),
];

/// What the value of an acted-on option is. A bad value is refused with
/// `Invalid value for NAME: VALUE` (EX_USAGE on the command line; the config file adds its
/// name and line and uses EX_CONFIG), except a bad delivery mode (sendmail's recorded
/// message) and a bad DaemonPortOptions (the listener's message, which names the option,
/// the value and what is wrong with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `b`, `i`, `q`, `d`: sendmail's `Unknown delivery mode c` otherwise.
    DeliveryMode,
    /// The first letter. Never refused: sendmail takes `-e x` quietly (recorded).
    ErrorMode,
    /// `true`/`false`, `yes`/`no`, `t`/`f`, `y`/`n` (any case); empty is true.
    Bool,
    /// sendmail's time syntax: numbers with units s, m, h, d, w (`1h30m`); a bare number
    /// is minutes. At most 100 years.
    Time,
    /// A whole number, 0 or more.
    Count,
    /// A whole number, 1 or more: rsendmail's own limits (MaxConnections,
    /// MaxBackgroundDeliveries, SmarthostSplit), for which 0 would mean "never deliver"
    /// (sendmail has none of them, so 0 has no meaning to keep).
    Positive,
    /// A limit sendmail applies only above 0 (`MaxMessageSize`, `MaxRecipientsPerMessage`,
    /// `MaxQueueRunSize`): 0 or a negative number is no limit, as there, and a number too
    /// large to hold a limit nothing reaches ([`parse_limit`]).
    Limit,
    /// A TCP port, 1 to 65535.
    Port,
    /// A file name (not empty).
    Path,
    /// A directory that must not depend on the caller's working directory: an absolute
    /// path (QueueDirectory: a relative one would be another spool in every directory).
    AbsolutePath,
    /// `user[:group]`, names or numbers (whether they exist is seen at delivery).
    User,
    /// sendmail's privacy flags, separated by commas or blanks; they add up over settings.
    Privacy,
    /// Networks in CIDR form, separated by commas or blanks (empty: none).
    Networks,
    /// sendmail's `Port=,Addr=,Family=` list; each setting adds a listener.
    Listen,
    /// Domain names, separated by commas or blanks (empty: none).
    Domains,
    /// One character.
    Char,
    /// Two VERP delimiters from `-=+` (`crate::verp::check_delimiters`).
    VerpDelimiters,
    /// sendmail's queue sort orders, by their first letter ([`QueueSortOrder::parse`]).
    QueueSortOrder,
}

/// `O QueueSortOrder=`: the order a queue run tries its entries in (sendmail's `sortq`,
/// queue.c; its value is read by its first letter, any case, as sendmail reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueSortOrder {
    /// The lowest priority first (size, recipients, tries: `crate::mailq::priority`);
    /// sendmail's default.
    Priority,
    /// By the domain of the entry's first recipient still open, read backwards
    /// (`org.example.mail`: the subdomains of a domain together), then the priority.
    Host,
    /// The oldest submission first.
    Time,
    /// By queue file name (the queue ID).
    Filename,
    /// The least recently changed entry first (its last try, else its submission).
    Modification,
    /// A random order.
    Random,
    /// No sorting: the spool's listing order (rsendmail lists by queue ID).
    None,
}

impl QueueSortOrder {
    /// The first letter decides (`t`, `Time`, `timely` are all Time), as in sendmail's
    /// readcf; anything else is refused.
    pub fn parse(name: &str, value: &str) -> Result<QueueSortOrder, Fatal> {
        Ok(
            match value.trim().bytes().next().map(|b| b.to_ascii_lowercase()) {
                Some(b'p') => QueueSortOrder::Priority,
                Some(b'h') => QueueSortOrder::Host,
                Some(b't') => QueueSortOrder::Time,
                Some(b'f') => QueueSortOrder::Filename,
                Some(b'm') => QueueSortOrder::Modification,
                Some(b'r') => QueueSortOrder::Random,
                Some(b'n') => QueueSortOrder::None,
                _ => return Err(invalid(name, value)),
            },
        )
    }

    /// The name shown for it (`rsendmail-admin config`).
    pub fn name(self) -> &'static str {
        match self {
            QueueSortOrder::Priority => "priority",
            QueueSortOrder::Host => "host",
            QueueSortOrder::Time => "time",
            QueueSortOrder::Filename => "filename",
            QueueSortOrder::Modification => "modification",
            QueueSortOrder::Random => "random",
            QueueSortOrder::None => "none",
        }
    }
}

/// The longest time an option may give (100 years): a larger number is a typo, and
/// clocks and timers are not made for it.
const MAX_TIME: u64 = 100 * 365 * 86400;

/// sendmail 8.17's privacy flags (readcf.c `PrivacyValues`).
pub const PRIVACY_FLAGS: &[&str] = &[
    "public",
    "needmailhelo",
    "needexpnhelo",
    "needvrfyhelo",
    "noexpn",
    "novrfy",
    "restrictexpand",
    "restrictmailq",
    "restrictqrun",
    "noetrn",
    "noverb",
    "authwarnings",
    "noreceipts",
    "nobodyreturn",
    "goaway",
    "noactualrecipient",
];

/// The flags `goaway` sets (sendmail 8.17's `PRIV_GOAWAY`, the low 16 bits of its
/// flags): not `noetrn`, `noreceipts`, `nobodyreturn`, `noactualrecipient` or the
/// `restrict*` ones (compat-tests/cases/bs-privacy-goaway: ETRN and DSN stay offered).
pub const GOAWAY: &[&str] = &[
    "needmailhelo",
    "needexpnhelo",
    "needvrfyhelo",
    "noexpn",
    "novrfy",
    "authwarnings",
    "noverb",
];

fn invalid(name: &str, value: &str) -> Fatal {
    Fatal::new(Sysexit::Usage, format!("Invalid value for {name}: {value}"))
}

/// A boolean. sendmail's `atobool` takes anything not starting with t or y as false
/// (`IgnoreDots=1` is false there); rsendmail refuses what is not clearly one or the other.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, Fatal> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "t" | "true" | "y" | "yes" => Ok(true),
        "f" | "false" | "n" | "no" => Ok(false),
        _ => Err(invalid(name, value)),
    }
}

/// A time in sendmail's syntax, in seconds: one or more numbers, each followed by a unit
/// (s, m, h, d, w) except the last, which is in minutes without one.
pub fn parse_time(name: &str, value: &str) -> Result<u64, Fatal> {
    parse_time_in(name, value, 'm')
}

/// [`parse_time`] where a bare number is in `default_unit`, as sendmail reads some
/// timeouts: `Timeout.queuereturn=5` is five days, `Timeout.queuewarn=4` four hours,
/// `Timeout.resolver.retrans=5` five seconds (readcf.c `settimeout`).
pub fn parse_time_in(name: &str, value: &str, default_unit: char) -> Result<u64, Fatal> {
    let v = value.trim();
    let mut after_digit = false;
    for c in v.chars() {
        if c.is_ascii_digit() {
            after_digit = true;
        } else if after_digit && "smhdw".contains(c) {
            after_digit = false;
        } else {
            return Err(invalid(name, value));
        }
    }
    if v.is_empty() {
        return Err(invalid(name, value));
    }
    match parse_duration(v, default_unit) {
        Ok(n) if n <= MAX_TIME => Ok(n),
        _ => Err(invalid(name, value)),
    }
}

/// sendmail's `convtime`: a number with an optional unit (s, m, h, d, w), several
/// concatenated (`1h30m`), default unit `default_unit`.
pub fn parse_duration(text: &str, default_unit: char) -> Result<u64, Fatal> {
    let mut total: u64 = 0;
    let mut num: u64 = 0;
    let mut have_num = false;
    let unit = |c: char| -> Result<u64, Fatal> {
        match c {
            's' => Ok(1),
            'm' => Ok(60),
            'h' => Ok(3600),
            'd' => Ok(86400),
            'w' => Ok(7 * 86400),
            other => Err(Fatal::new(
                Sysexit::Usage,
                format!("Invalid time unit `{other}'"),
            )),
        }
    };
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            num = num.saturating_mul(10).saturating_add(d as u64);
            have_num = true;
        } else {
            total = total.saturating_add(num.saturating_mul(unit(c)?));
            num = 0;
            have_num = false;
        }
    }
    if have_num {
        total = total.saturating_add(num.saturating_mul(unit(default_unit)?));
    }
    Ok(total)
}

/// A whole number (0 or more).
pub fn parse_count(name: &str, value: &str) -> Result<usize, Fatal> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, value));
    }
    v.parse().map_err(|_| invalid(name, value))
}

/// A whole number, 1 or more.
pub fn parse_positive(name: &str, value: &str) -> Result<usize, Fatal> {
    match parse_count(name, value)? {
        0 => Err(invalid(name, value)),
        n => Ok(n),
    }
}

/// A limit that sendmail reads with `atoi` and applies only when it is above 0
/// (`MaxMessageSize`, `MaxRecipientsPerMessage`, `MaxQueueRunSize`): 0 or a negative whole
/// number is no limit (0), as there (`-1` is the usual way to say so), and a number too
/// large to hold is a limit nothing reaches (sendmail's `atoi` overflows it to no limit;
/// recorded: `opt-maxrcpts-neg`, `opt-maxmsgsize-huge`, `q-maxrun-v-1`...). Anything that
/// is not a whole number is refused, as every acted-on option's bad value is.
pub fn parse_limit(name: &str, value: &str) -> Result<u64, Fatal> {
    let v = value.trim();
    let (negative, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, value));
    }
    if negative {
        return Ok(0);
    }
    // Only digits: the one way to fail is a number past u64::MAX.
    Ok(digits.parse().unwrap_or(u64::MAX))
}

/// [`parse_limit`] as a count.
fn parse_limit_count(name: &str, value: &str) -> Result<usize, Fatal> {
    parse_limit(name, value).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A TCP port, 1 to 65535.
pub fn parse_port(name: &str, value: &str) -> Result<u16, Fatal> {
    match parse_count(name, value)? {
        n @ 1..=65535 => Ok(n as u16),
        _ => Err(invalid(name, value)),
    }
}

/// A file name: anything but empty.
pub fn parse_path(name: &str, value: &str) -> Result<PathBuf, Fatal> {
    let v = value.trim_end();
    if v.is_empty() {
        return Err(invalid(name, value));
    }
    Ok(PathBuf::from(v))
}

/// An absolute file name.
pub fn parse_absolute_path(name: &str, value: &str) -> Result<PathBuf, Fatal> {
    let p = parse_path(name, value)?;
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(invalid(name, value))
    }
}

/// `user[:group]` (names or numbers).
pub fn parse_user(name: &str, value: &str) -> Result<String, Fatal> {
    let v = value.trim();
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c))
    };
    let ok = match v.split_once(':') {
        Some((u, g)) => word(u) && word(g),
        None => word(v),
    };
    if ok {
        Ok(v.to_string())
    } else {
        Err(invalid(name, value))
    }
}

/// sendmail's privacy flags, lowercase: separated by blanks or punctuation, as sendmail
/// splits them; every one must be one of [`PRIVACY_FLAGS`].
pub fn parse_privacy(name: &str, value: &str) -> Result<Vec<String>, Fatal> {
    value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|f| !f.is_empty())
        .map(|f| {
            let lower = f.to_ascii_lowercase();
            if PRIVACY_FLAGS.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(invalid(name, value))
            }
        })
        .collect()
}

/// Networks in CIDR form (`127.0.0.0/8 ::1`); empty is no network.
pub fn parse_networks(name: &str, value: &str) -> Result<Vec<Net>, Fatal> {
    value
        .split([' ', ',', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| Net::parse(s).ok_or_else(|| invalid(name, value)))
        .collect()
}

/// One `DaemonPortOptions=` setting: the addresses to listen on (the listener's parser,
/// whose messages name the option and the value).
pub fn parse_listen(_name: &str, value: &str) -> Result<Vec<SocketAddr>, Fatal> {
    net::daemon_port_options(value).map_err(|e| Fatal::new(Sysexit::Usage, e.message))
}

/// Domain names separated by blanks or commas; empty is none.
/// One character (`O BlankSub=.`).
pub fn parse_char(name: &str, value: &str) -> Result<char, Fatal> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(invalid(name, value)),
    }
}

/// Each as its [`crate::message::address::domain_key`]: a name with U-labels
/// (`bücher.example`) is taken as its A-labels (`xn--bcher-kva.example`); one with no
/// A-label form is refused.
pub fn parse_domains(name: &str, value: &str) -> Result<Vec<String>, Fatal> {
    value
        .split([' ', ',', '\t'])
        .filter(|d| !d.is_empty())
        .map(|d| {
            let key = if d.is_ascii() {
                d.to_ascii_lowercase()
            } else {
                crate::message::address::domain_key(d)
            };
            let ok = !d.starts_with('.')
                && !key.ends_with('-')
                && !key.contains("..")
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                return Err(invalid(name, value));
            }
            // Longer than DNS allows (RFC 1035 §2.3.4): no recipient has it.
            match crate::message::address::domain_length_problem(key.trim_end_matches('.')) {
                Some(why) => Err(Fatal::new(
                    Sysexit::Usage,
                    format!(
                        "Invalid value for {name}: {} ({why})",
                        crate::text::argument_shown(d)
                    ),
                )),
                None => Ok(key),
            }
        })
        .collect()
}

/// The `Timeout.<name>` options rsendmail acts on, in seconds (`resolver_retry` is a
/// count). `None`: not set here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Option<u64>,
    pub initial: Option<u64>,
    pub helo: Option<u64>,
    pub mail: Option<u64>,
    pub rcpt: Option<u64>,
    pub datainit: Option<u64>,
    pub datablock: Option<u64>,
    pub datafinal: Option<u64>,
    pub rset: Option<u64>,
    pub quit: Option<u64>,
    pub queuereturn: Option<u64>,
    pub queuewarn: Option<u64>,
    pub resolver_retrans: Option<u64>,
    pub resolver_retry: Option<usize>,
    pub mboxlock: Option<u64>,
    pub command: Option<u64>,
}

impl Timeouts {
    /// Parse and set `Timeout.<sub>`; `Ok(false)` when rsendmail does not act on `sub`.
    fn apply(&mut self, sub: &str, value: &str) -> Result<bool, Fatal> {
        let sub = sub.to_ascii_lowercase();
        let name = format!("Timeout.{sub}");
        let field = match sub.as_str() {
            "connect" => &mut self.connect,
            "initial" => &mut self.initial,
            "helo" => &mut self.helo,
            "mail" => &mut self.mail,
            "rcpt" => &mut self.rcpt,
            "datainit" => &mut self.datainit,
            "datablock" => &mut self.datablock,
            "datafinal" => &mut self.datafinal,
            "rset" => &mut self.rset,
            "quit" => &mut self.quit,
            "queuereturn" => &mut self.queuereturn,
            "queuewarn" => &mut self.queuewarn,
            "resolver.retrans" => &mut self.resolver_retrans,
            "mboxlock" => &mut self.mboxlock,
            "command" => &mut self.command,
            "resolver.retry" => {
                self.resolver_retry = Some(parse_count(&name, value)?);
                return Ok(true);
            }
            _ => return Ok(false),
        };
        let unit = match sub.as_str() {
            "queuereturn" => 'd',
            "queuewarn" => 'h',
            "resolver.retrans" => 's',
            _ => 'm',
        };
        *field = Some(parse_time_in(&name, value, unit)?);
        Ok(true)
    }

    fn overlay(&mut self, later: &Timeouts) {
        let pairs = [
            (&mut self.connect, later.connect),
            (&mut self.initial, later.initial),
            (&mut self.helo, later.helo),
            (&mut self.mail, later.mail),
            (&mut self.rcpt, later.rcpt),
            (&mut self.datainit, later.datainit),
            (&mut self.datablock, later.datablock),
            (&mut self.datafinal, later.datafinal),
            (&mut self.rset, later.rset),
            (&mut self.quit, later.quit),
            (&mut self.queuereturn, later.queuereturn),
            (&mut self.queuewarn, later.queuewarn),
            (&mut self.resolver_retrans, later.resolver_retrans),
            (&mut self.mboxlock, later.mboxlock),
            (&mut self.command, later.command),
        ];
        for (mine, theirs) in pairs {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        if later.resolver_retry.is_some() {
            self.resolver_retry = later.resolver_retry;
        }
    }
}

/// sendmail 8.17's timeout names (readcf.c `TimeOutTab`, matched without regard to
/// case). rsendmail acts on those [`Timeouts`] has; the others are accepted, their
/// value checked as sendmail reads it, and ignored. A name not here (nor rsendmail's own
/// `mboxlock`) is refused with sendmail's message (`check_timeout`).
pub const SENDMAIL_TIMEOUTS: &[&str] = &[
    "initial",
    "mail",
    "rcpt",
    "datainit",
    "datablock",
    "datafinal",
    "command",
    "rset",
    "helo",
    "quit",
    "misc",
    "ident",
    "fileopen",
    "connect",
    "iconnect",
    "queuewarn",
    "queuewarn.*",
    "queuewarn.normal",
    "queuewarn.urgent",
    "queuewarn.non-urgent",
    "queuereturn",
    "queuereturn.*",
    "queuereturn.normal",
    "queuereturn.urgent",
    "queuereturn.non-urgent",
    "hoststatus",
    "resolver.retrans",
    "resolver.retrans.normal",
    "resolver.retrans.first",
    "resolver.retry",
    "resolver.retry.normal",
    "resolver.retry.first",
    "control",
    "lhlo",
    "auth",
    "starttls",
    "aconnect",
    "queuewarn.dsn",
    "queuereturn.dsn",
];

/// A `Timeout.<sub>` rsendmail does not act on. A name sendmail knows is accepted when
/// its value is one sendmail reads: a count for the `resolver.retry` names (sendmail's
/// `atoi`), a time for the others (or sendmail's `now`). Any other name gets sendmail's
/// own message, `settimeout: invalid timeout NAME`, and its exit status, EX_SOFTWARE
/// (its `syserr` with no errno; the config file makes it EX_CONFIG with the file and
/// line).
fn check_timeout(sub: &str, value: &str) -> Result<(), Fatal> {
    let lower = sub.to_ascii_lowercase();
    if !SENDMAIL_TIMEOUTS.contains(&lower.as_str()) && lower != "mboxlock" {
        return Err(Fatal::new(
            Sysexit::Software,
            format!("settimeout: invalid timeout {sub}"),
        ));
    }
    let name = format!("Timeout.{lower}");
    if lower.starts_with("resolver.retry") {
        parse_count(&name, value).map(|_| ())
    } else if value.trim().eq_ignore_ascii_case("now") {
        Ok(())
    } else {
        parse_time(&name, value).map(|_| ())
    }
}

/// `Timeout=` without a name: sendmail's older list form (its `inittimeouts`), items
/// separated by commas, each a time alone or `name:time` (`name=time`). Each is checked
/// as sendmail reads it: the time, or the name and its value as `Timeout.name=`
/// ([`check_timeout`]); sendmail skips an item with neither, and so does this. The list
/// form is not acted on (`Timeout.name=time` is).
fn check_timeout_list(value: &str) -> Result<(), Fatal> {
    for item in value.split(',') {
        let item = item.trim_start();
        if item.starts_with(|c: char| c.is_ascii_digit()) {
            parse_time("Timeout", item)?;
        } else if let Some((name, v)) = item.split_once(':').or_else(|| item.split_once('=')) {
            check_timeout(name, v)?;
        }
    }
    Ok(())
}

/// What the options rsendmail acts on are set to, typed; `None` means "not given here".
/// Options rsendmail accepts without acting on them are kept in `other` (unparsed, for
/// `-d` to show one day).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub delivery_mode: Option<DeliveryMode>,
    pub ignore_dots: Option<bool>,
    pub queue_directory: Option<PathBuf>,
    pub max_message_size: Option<u64>,
    pub error_mode: Option<char>,
    pub verbose: Option<bool>,
    pub alias_file: Option<PathBuf>,
    /// `O CACertFile=`: a CA to trust for the smarthost.
    pub ca_cert_file: Option<PathBuf>,
    /// `O PidFile=`: where the daemon writes its process id.
    pub pid_file: Option<PathBuf>,
    pub max_hop_count: Option<usize>,
    pub max_recipients_per_message: Option<usize>,
    pub max_daemon_children: Option<usize>,
    /// `O MaxNOOPCommands=`: NOOPs an SMTP session answers at once before it slows
    /// down (sendmail's 20; 0: no limit; [`crate::server::Slowdown`]).
    pub max_noop_commands: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_background_deliveries: Option<usize>,
    /// `O ConnectionCacheSize=` (`-ok`): SMTP connections a deliverer keeps open while
    /// idle, for the next message to the same host (sendmail's MCI cache; 0: none).
    pub connection_cache_size: Option<usize>,
    /// `O ConnectionCacheTimeout=` (`-oK`), seconds: how long an idle cached connection
    /// is kept before QUIT.
    pub connection_cache_timeout: Option<u64>,
    pub smarthost_split: Option<usize>,
    pub mx_port: Option<u16>,
    /// Seconds.
    pub min_queue_age: Option<u64>,
    pub queue_retry_min: Option<u64>,
    pub queue_retry_max: Option<u64>,
    /// `O QueueRetryLocal=`, seconds: when the local recipients of an entry with remote
    /// ones still open are tried again after a temporary failure (1 minute).
    pub queue_retry_local: Option<u64>,
    pub timeouts: Timeouts,
    /// `O DefaultUser=user[:group]`, checked for syntax.
    pub default_user: Option<String>,
    /// Every privacy flag given, lowercase (they add up, as in sendmail).
    pub privacy_flags: Vec<String>,
    pub trusted_networks: Option<Vec<Net>>,
    /// Every `DaemonPortOptions=` setting's addresses (each one adds listeners);
    /// `None`: not given, the listener's default applies.
    pub daemon_addrs: Option<Vec<SocketAddr>>,
    pub relay_domains: Option<Vec<String>>,
    /// `O FastFlushDomains=`: the domains (and their subdomains) whose queued mail the
    /// spool's index lists per domain, for ETRN (Postfix's `fast_flush_domains`);
    /// `None`: those of `RelayDomains`.
    pub fast_flush_domains: Option<Vec<String>>,
    /// `O OldStyleHeaders=` (`-oo`): lists without `, ; < (` are blank-separated.
    pub old_style_headers: Option<bool>,
    /// `O CheckAliases=` (`-on`): `newaliases` checks every target.
    pub check_aliases: Option<bool>,
    /// `O BlankSub=` (`-oB`): what an unquoted blank in an address becomes.
    pub blank_sub: Option<char>,
    /// `O Verp=`: every message with a sender is sent VERP style (`crate::verp`).
    pub verp: Option<bool>,
    /// `O VerpDelimiters=`: the delimiters VERP uses when `-XV` names none (`+=`).
    pub verp_delimiters: Option<String>,
    /// `O SortByDomain=`: a message's recipients are sent in the order of their domains
    /// (fml's `$SMTP_SORT_DOMAIN`).
    pub sort_by_domain: Option<bool>,
    /// `O QueueSortOrder=`: the order of a queue run.
    pub queue_sort_order: Option<QueueSortOrder>,
    /// `O MaxQueueRunSize=`: a queue run tries at most this many entries, the first in
    /// its order (0: no limit).
    pub max_queue_run_size: Option<usize>,
    /// `O SmarthostRandom=`: the `SMARTHOST` hosts tried in a random order.
    pub smarthost_random: Option<bool>,
    /// Everything else, in the order given: (canonical name[.sub], value).
    pub other: Vec<(String, String)>,
    /// The options set here, by [`given_key`] (for sendmail's rule that an option given on
    /// the command line is not even read from the config file).
    pub given: Vec<String>,
    /// Each option's value as it was written, by [`given_key`], in the order first set:
    /// the last setting's, or for options whose settings add up (PrivacyOptions,
    /// DaemonPortOptions) all of them joined by `,` (`rsendmail-admin config`).
    pub written: Vec<(String, String)>,
    /// How each option was last named, by [`given_key`], as written where it was given
    /// (`-oA`, `-O AliasFile=`, `O AliasFile=`, `OA`), for messages that name the
    /// option and its value as the user wrote them ([`Settings::note_spelled`]).
    pub spelled: Vec<(String, String)>,
    /// Every setting of an option each of whose lines means one more thing
    /// ([`one_line_each`]), by [`given_key`], in the order given: `rsendmail-admin config`
    /// shows one line for each.
    pub each: Vec<(String, String)>,
}

/// Whether each setting of the option `key` means one more thing, so that its settings
/// are shown one line each, never merged (`rsendmail-admin config`): DaemonPortOptions
/// (each line one more listener) and ClientPortOptions (in sendmail each line sets one
/// address family's options).
pub fn one_line_each(key: &str) -> bool {
    key == "DaemonPortOptions" || key == "ClientPortOptions"
}

/// `O ConnectionCacheTimeout=`'s built-in value, in seconds: 5, where sendmail keeps 5
/// minutes. A deliverer here lives for one submission, one queue run or a runner's
/// wake-up; messages that follow each other come within milliseconds, and a server should
/// not have to hold a client's idle connection for minutes (Postfix's
/// `smtp_connection_cache_time_limit` is 2 seconds).
pub const CONNECTION_CACHE_TIMEOUT: u64 = 5;

/// How long the SMTP server waits for each block of a message's data when
/// `O Timeout.datablock=` is not given, in seconds: sendmail's 1 hour (the built-in
/// `Timeout.datablock`, 3 minutes, is the SMTP client's, RFC 5321 §4.5.3.2.5).
pub const SERVER_DATABLOCK: u64 = 3600;

/// How long a local delivery command (`|program` in aliases) may run when
/// `O Timeout.command=` is not given, in seconds (the built-in `Timeout.command`, 1
/// hour, is the SMTP server's wait for a command).
pub const LOCAL_COMMAND_TIMEOUT: u64 = 1000;

/// The ErrorMode letter a value names: `p`, `q`, `m`, `w` or `e` as given; any other
/// first letter is accepted without a word and acts as `p`, as sendmail's does (compat
/// cases `errormode-x-odi`, `errormode-x-O`); an empty value leaves the default (`None`).
fn error_mode_letter(value: &str) -> Option<char> {
    match value.chars().next() {
        Some(c @ ('p' | 'q' | 'm' | 'w' | 'e')) => Some(c),
        Some(_) => Some('p'),
        None => None,
    }
}

impl Settings {
    /// Apply one option: parse its value into its typed field. Errors end the program at
    /// once (EX_USAGE; the config file makes them its own).
    pub fn apply(
        &mut self,
        def: &'static OptDef,
        sub: Option<&str>,
        value: &str,
    ) -> Result<(), Fatal> {
        let key = given_key(def, sub);
        self.note_written(&key, value);
        if one_line_each(&key) {
            self.each.push((key.clone(), value.to_string()));
        }
        if !self.given.contains(&key) {
            self.given.push(key);
        }
        let name = def.name;
        match (name, sub) {
            ("DeliveryMode", _) => self.delivery_mode = Some(DeliveryMode::parse(value)?),
            ("ErrorMode", _) => self.error_mode = error_mode_letter(value),
            ("IgnoreDots", _) => self.ignore_dots = Some(parse_bool(name, value)?),
            ("Verbose", _) => self.verbose = Some(parse_bool(name, value)?),
            ("QueueDirectory", _) => self.queue_directory = Some(parse_absolute_path(name, value)?),
            ("AliasFile", _) => self.alias_file = Some(parse_path(name, value)?),
            ("CACertFile", _) => self.ca_cert_file = Some(parse_path(name, value)?),
            ("PidFile", _) => self.pid_file = Some(parse_path(name, value)?),
            ("MaxMessageSize", _) => self.max_message_size = Some(parse_limit(name, value)?),
            ("MaxHopCount", _) => self.max_hop_count = Some(parse_count(name, value)?),
            ("MaxRecipientsPerMessage", _) => {
                self.max_recipients_per_message = Some(parse_limit_count(name, value)?)
            }
            ("MaxDaemonChildren", _) => self.max_daemon_children = Some(parse_count(name, value)?),
            ("MaxNOOPCommands", _) => self.max_noop_commands = Some(parse_count(name, value)?),
            ("MaxConnections", _) => self.max_connections = Some(parse_positive(name, value)?),
            ("MaxBackgroundDeliveries", _) => {
                self.max_background_deliveries = Some(parse_positive(name, value)?)
            }
            ("ConnectionCacheSize", _) => {
                self.connection_cache_size = Some(parse_count(name, value)?)
            }
            ("ConnectionCacheTimeout", _) => {
                self.connection_cache_timeout = Some(parse_time(name, value)?)
            }
            ("SmarthostSplit", _) => self.smarthost_split = Some(parse_positive(name, value)?),
            ("MXPort", _) => self.mx_port = Some(parse_port(name, value)?),
            ("MinQueueAge", _) => self.min_queue_age = Some(parse_time(name, value)?),
            ("QueueRetryMin", _) => self.queue_retry_min = Some(parse_time(name, value)?),
            ("QueueRetryMax", _) => self.queue_retry_max = Some(parse_time(name, value)?),
            ("QueueRetryLocal", _) => self.queue_retry_local = Some(parse_time(name, value)?),
            ("DefaultUser", _) => self.default_user = Some(parse_user(name, value)?),
            ("PrivacyOptions", _) => self.privacy_flags.extend(parse_privacy(name, value)?),
            ("TrustedNetworks", _) => self.trusted_networks = Some(parse_networks(name, value)?),
            ("DaemonPortOptions", _) => self
                .daemon_addrs
                .get_or_insert_with(Vec::new)
                .extend(parse_listen(name, value)?),
            ("RelayDomains", _) => self.relay_domains = Some(parse_domains(name, value)?),
            ("FastFlushDomains", _) => {
                self.fast_flush_domains = Some(parse_domains(name, value)?);
            }
            ("OldStyleHeaders", _) => self.old_style_headers = Some(parse_bool(name, value)?),
            ("CheckAliases", _) => self.check_aliases = Some(parse_bool(name, value)?),
            ("BlankSub", _) => self.blank_sub = Some(parse_char(name, value)?),
            ("Verp", _) => self.verp = Some(parse_bool(name, value)?),
            ("VerpDelimiters", _) => {
                crate::verp::check_delimiters(value).map_err(|_| invalid(name, value))?;
                self.verp_delimiters = Some(value.to_string());
            }
            ("SortByDomain", _) => self.sort_by_domain = Some(parse_bool(name, value)?),
            ("QueueSortOrder", _) => {
                self.queue_sort_order = Some(QueueSortOrder::parse(name, value)?)
            }
            ("MaxQueueRunSize", _) => {
                self.max_queue_run_size = Some(parse_limit_count(name, value)?)
            }
            ("SmarthostRandom", _) => self.smarthost_random = Some(parse_bool(name, value)?),
            // sendmail's old name of the queue-return time, `RETURN[/WARN]` (readcf.c,
            // option `T`): both timeouts, for every message.
            ("QueueTimeout", _) => {
                let (ret, warn) = match value.split_once('/') {
                    Some((r, w)) => (r, Some(w)),
                    None => (value, None),
                };
                // A bad value is named as it was given.
                let named = |mut e: Fatal| {
                    e.message = format!("Invalid value for QueueTimeout: {value}");
                    e
                };
                if let Some(w) = warn {
                    self.timeouts.apply("queuewarn", w).map_err(named)?;
                }
                self.timeouts.apply("queuereturn", ret).map_err(named)?;
            }
            ("Timeout", Some(s)) if self.timeouts.apply(s, value)? => {}
            ("Timeout", Some(s)) => {
                check_timeout(s, value)?;
                self.other.push((format!("Timeout.{s}"), value.to_string()));
            }
            ("Timeout", None) => {
                check_timeout_list(value)?;
                self.other.push((name.to_string(), value.to_string()));
            }
            _ => {
                let name = match sub {
                    Some(s) => format!("{}.{s}", def.name),
                    None => def.name.to_string(),
                };
                self.other.push((name, value.to_string()));
            }
        }
        Ok(())
    }

    /// Note that the option `key` was last named `how` (`-oA`, `O AliasFile=`: what
    /// comes before its value).
    pub fn note_spelled(&mut self, key: &str, how: &str) {
        match self.spelled.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = how.to_string(),
            None => self.spelled.push((key.to_string(), how.to_string())),
        }
    }

    /// How the option `key` was last named ([`Settings::spelled`]), if it was given.
    pub fn spelling(&self, key: &str) -> Option<&str> {
        self.spelled
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Keep `value` as the written value of the option `key` ([`Settings::written`]).
    /// Note `value` as `key`'s written value ([`Settings::written`]).
    pub fn note_written(&mut self, key: &str, value: &str) {
        // The options each of whose settings adds to the last.
        let adds = key == "PrivacyOptions" || key == "DaemonPortOptions";
        match self.written.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) if adds => {
                v.push(',');
                v.push_str(value);
            }
            Some((_, v)) => *v = value.to_string(),
            None => self.written.push((key.to_string(), value.to_string())),
        }
    }

    /// Layer `later` over `self`: every option `later` sets wins; the options that add
    /// up (PrivacyOptions, DaemonPortOptions) add `later`'s.
    pub fn overlay(&mut self, later: &Settings) {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if later.$f.is_some() {
                    self.$f = later.$f.clone();
                }
            )*};
        }
        take!(
            delivery_mode,
            ignore_dots,
            queue_directory,
            max_message_size,
            error_mode,
            verbose,
            alias_file,
            ca_cert_file,
            pid_file,
            max_hop_count,
            max_recipients_per_message,
            max_daemon_children,
            max_noop_commands,
            max_connections,
            max_background_deliveries,
            connection_cache_size,
            connection_cache_timeout,
            smarthost_split,
            mx_port,
            min_queue_age,
            queue_retry_min,
            queue_retry_max,
            queue_retry_local,
            default_user,
            trusted_networks,
            relay_domains,
            fast_flush_domains,
            old_style_headers,
            check_aliases,
            blank_sub,
            verp,
            verp_delimiters,
            sort_by_domain,
            smarthost_random,
            queue_sort_order,
            max_queue_run_size
        );
        self.timeouts.overlay(&later.timeouts);
        self.privacy_flags
            .extend(later.privacy_flags.iter().cloned());
        if let Some(more) = &later.daemon_addrs {
            self.daemon_addrs
                .get_or_insert_with(Vec::new)
                .extend(more.iter().copied());
        }
        self.other.extend(later.other.iter().cloned());
        for (k, v) in &later.written {
            self.note_written(k, v);
        }
        for (k, v) in &later.spelled {
            self.note_spelled(k, v);
        }
        self.each.extend(later.each.iter().cloned());
        for g in &later.given {
            if !self.given.contains(g) {
                self.given.push(g.clone());
            }
        }
    }

    /// Whether `O PrivacyOptions=` names `flag`, or `goaway`, which stands for the
    /// flags in [`GOAWAY`] (sendmail's `PRIV_GOAWAY`). As in sendmail the flags add up
    /// over every setting (`-O PrivacyOptions=a` adds to the config's `b`).
    pub fn privacy(&self, flag: &str) -> bool {
        let named = |f: &str| self.privacy_flags.iter().any(|g| g.eq_ignore_ascii_case(f));
        named(flag) || (named("goaway") && GOAWAY.iter().any(|g| g.eq_ignore_ascii_case(flag)))
    }
}

/// The built-in value of an acted-on option nobody set, as `rsendmail-admin config`
/// shows it ([`builtin_default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// The value as `O NAME=VALUE` would write it (it parses to the typed value of
    /// [`Settings::builtin`]), and a note where a program reads the option otherwise.
    Value(String, Option<&'static str>),
    /// The value of this rsendmail.conf keyword (QueueDirectory: SPOOLDIR).
    Keyword(&'static str),
    /// No value of its own: what applies instead.
    Unset(&'static str),
}

/// Seconds as sendmail's time syntax writes them, in the largest of `d`, `h`, `m`, `s`
/// that divides them (`432000` → `5d`, `0` → `0s`); [`parse_duration`] reads it back.
pub fn format_time(secs: u64) -> String {
    for (unit, n) in [('d', 86400), ('h', 3600), ('m', 60)] {
        if secs > 0 && secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

impl Settings {
    /// Every option rsendmail acts on at its built-in value: what the programs use when
    /// neither the config file nor the command line sets it (the submission's
    /// `submit::DEFAULT_MAX_HOPS`, `cli::effective_mode`, the listener's and the trusted
    /// networks' defaults in `server::net`, sendmail.cf's PrivacyOptions that
    /// `app::setup` adds, and the deliverer's engine settings). MaxBackgroundDeliveries
    /// is twice this machine's processors. The options whose default is another
    /// setting's (QueueDirectory, AliasFile, FastFlushDomains) or none (CACertFile,
    /// PidFile, DefaultUser) stay `None` ([`builtin_default`] says what applies).
    /// These settings over the built-in ones ([`Settings::builtin`]): every option
    /// rsendmail acts on with a built-in value has one (`Some`). What the programs use,
    /// and what `rsendmail-admin config` shows as `default`, comes from here.
    pub fn effective(&self) -> Settings {
        let mut e = Settings::builtin();
        e.overlay(self);
        e
    }

    pub fn builtin() -> Settings {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Settings {
            delivery_mode: Some(crate::cli::effective_mode(false, None, None)),
            ignore_dots: Some(false),
            max_message_size: Some(0),
            error_mode: Some('p'),
            verbose: Some(false),
            max_hop_count: Some(crate::submit::DEFAULT_MAX_HOPS),
            max_recipients_per_message: Some(1000),
            max_daemon_children: Some(0),
            max_noop_commands: Some(20),
            max_connections: Some(4),
            max_background_deliveries: Some(2 * cores),
            connection_cache_size: Some(2),
            connection_cache_timeout: Some(CONNECTION_CACHE_TIMEOUT),
            smarthost_split: Some(1),
            mx_port: Some(25),
            min_queue_age: Some(0),
            queue_retry_min: Some(300),
            queue_retry_max: Some(4 * 3600),
            queue_retry_local: Some(60),
            timeouts: Timeouts {
                connect: Some(60),
                initial: Some(300),
                helo: Some(300),
                mail: Some(300),
                rcpt: Some(300),
                datainit: Some(120),
                datablock: Some(180),
                datafinal: Some(600),
                rset: Some(300),
                quit: Some(120),
                queuereturn: Some(5 * 86400),
                queuewarn: Some(4 * 3600),
                resolver_retrans: Some(5),
                resolver_retry: Some(2),
                mboxlock: Some(60),
                command: Some(3600),
            },
            privacy_flags: vec!["authwarnings".to_string()],
            trusted_networks: net::trusted_networks(None).ok(),
            daemon_addrs: net::daemon_port_options("").ok(),
            relay_domains: Some(Vec::new()),
            old_style_headers: Some(true),
            check_aliases: Some(false),
            blank_sub: Some('.'),
            verp: Some(false),
            verp_delimiters: Some(crate::verp::DEFAULT_DELIMITERS.to_string()),
            sort_by_domain: Some(false),
            smarthost_random: Some(false),
            queue_sort_order: Some(QueueSortOrder::Priority),
            max_queue_run_size: Some(0),
            ..Settings::default()
        }
    }

    /// The typed value of the acted-on option `name` (as [`ACTED_ON`] writes it), in the
    /// form `O NAME=VALUE` takes; `None` when it is not set here or `name` is not acted
    /// on.
    pub fn value_text(&self, name: &str) -> Option<String> {
        let flag = |b: Option<bool>| b.map(|b| b.to_string());
        let time = |t: Option<u64>| t.map(format_time);
        let num = |n: Option<usize>| n.map(|n| n.to_string());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let t = &self.timeouts;
        match name {
            "DeliveryMode" => self.delivery_mode.map(|m| m.letter().to_string()),
            "ErrorMode" => self.error_mode.map(String::from),
            "IgnoreDots" => flag(self.ignore_dots),
            "Verbose" => flag(self.verbose),
            "QueueDirectory" => path(&self.queue_directory),
            "AliasFile" => path(&self.alias_file),
            "CACertFile" => path(&self.ca_cert_file),
            "PidFile" => path(&self.pid_file),
            "MaxMessageSize" => self.max_message_size.map(|n| n.to_string()),
            "MaxHopCount" => num(self.max_hop_count),
            "MaxRecipientsPerMessage" => num(self.max_recipients_per_message),
            "MaxDaemonChildren" => num(self.max_daemon_children),
            "MaxNOOPCommands" => num(self.max_noop_commands),
            "MaxConnections" => num(self.max_connections),
            "MaxBackgroundDeliveries" => num(self.max_background_deliveries),
            "ConnectionCacheSize" => num(self.connection_cache_size),
            "ConnectionCacheTimeout" => time(self.connection_cache_timeout),
            "SmarthostSplit" => num(self.smarthost_split),
            "MXPort" => self.mx_port.map(|n| n.to_string()),
            "MinQueueAge" => time(self.min_queue_age),
            "QueueRetryMin" => time(self.queue_retry_min),
            "QueueRetryMax" => time(self.queue_retry_max),
            "QueueRetryLocal" => time(self.queue_retry_local),
            "Timeout.connect" => time(t.connect),
            "Timeout.initial" => time(t.initial),
            "Timeout.helo" => time(t.helo),
            "Timeout.mail" => time(t.mail),
            "Timeout.rcpt" => time(t.rcpt),
            "Timeout.datainit" => time(t.datainit),
            "Timeout.datablock" => time(t.datablock),
            "Timeout.datafinal" => time(t.datafinal),
            "Timeout.rset" => time(t.rset),
            "Timeout.quit" => time(t.quit),
            "Timeout.queuereturn" => time(t.queuereturn),
            "Timeout.queuewarn" => time(t.queuewarn),
            "Timeout.resolver.retrans" => time(t.resolver_retrans),
            "Timeout.resolver.retry" => num(t.resolver_retry),
            "Timeout.mboxlock" => time(t.mboxlock),
            "Timeout.command" => time(t.command),
            "DefaultUser" => self.default_user.clone(),
            "PrivacyOptions" => Some(self.privacy_flags.join(",")),
            "TrustedNetworks" => self.trusted_networks.as_ref().map(|v| {
                v.iter()
                    .map(|n| format!("{}/{}", n.addr, n.prefix))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            // The one setting that listens on every address given ([`net::daemon_port_options`]
            // without an address: loopback), or each address's own.
            "DaemonPortOptions" => self.daemon_addrs.as_ref().map(|addrs| {
                let port = addrs.first().map_or(25, SocketAddr::port);
                if net::daemon_port_options(&format!("Port={port}"))
                    .ok()
                    .as_ref()
                    == Some(addrs)
                {
                    format!("Port={port}")
                } else {
                    addrs
                        .iter()
                        .map(|a| format!("Port={},Addr={}", a.port(), a.ip()))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }),
            "RelayDomains" => self.relay_domains.as_ref().map(|d| d.join(",")),
            "FastFlushDomains" => self.fast_flush_domains.as_ref().map(|d| d.join(",")),
            "OldStyleHeaders" => flag(self.old_style_headers),
            "CheckAliases" => flag(self.check_aliases),
            "BlankSub" => self.blank_sub.map(String::from),
            "Verp" => flag(self.verp),
            "VerpDelimiters" => self.verp_delimiters.clone(),
            "SortByDomain" => flag(self.sort_by_domain),
            "SmarthostRandom" => flag(self.smarthost_random),
            "QueueSortOrder" => self.queue_sort_order.map(|o| o.name().to_string()),
            "MaxQueueRunSize" => num(self.max_queue_run_size),
            _ => None,
        }
    }
}

/// What applies to the acted-on option `name` (as [`ACTED_ON`] writes it,
/// `Timeout.connect`) when nothing sets it: its built-in value ([`Settings::builtin`]),
/// the keyword whose value it takes, or what happens without one. `None` for a name
/// rsendmail does not act on.
pub fn builtin_default(name: &str) -> Option<Builtin> {
    if !ACTED_ON.iter().any(|(n, _)| *n == name) {
        return None;
    }
    let note = match name {
        "Timeout.datablock" => Some("the SMTP client's; the SMTP server waits 1h"),
        "Timeout.command" => Some("the SMTP server's; a local delivery command may run 1000s"),
        "MaxBackgroundDeliveries" => Some("twice the processors"),
        "MaxMessageSize" | "MaxDaemonChildren" | "MaxQueueRunSize" => Some("0: no limit"),
        "MaxRecipientsPerMessage" => Some("the SMTP server's; 0: no limit"),
        "RelayDomains" => Some("none"),
        "DaemonPortOptions" => Some("loopback only: 127.0.0.1 and ::1"),
        _ => None,
    };
    Some(match name {
        "QueueDirectory" => Builtin::Keyword("SPOOLDIR"),
        "AliasFile" => Builtin::Keyword("ALIASES"),
        "CACertFile" => Builtin::Unset("the system's certificate authorities"),
        "PidFile" => Builtin::Unset("no pid file"),
        "DefaultUser" => Builtin::Unset("mailnull, else nobody, else 65534:65534"),
        "FastFlushDomains" => Builtin::Unset("those of RelayDomains"),
        _ => Builtin::Value(Settings::builtin().value_text(name)?, note),
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    /// The notes `rsendmail-admin config` shows beside two defaults name the bounds the
    /// programs use where the option is not given.
    #[test]
    fn default_notes_name_the_bounds_used() {
        let note = |name: &str| match builtin_default(name) {
            Some(Builtin::Value(_, Some(n))) => n,
            other => panic!("{name}: {other:?}"),
        };
        assert!(
            note("Timeout.command").ends_with(&format!(
                "a local delivery command may run {}",
                format_time(LOCAL_COMMAND_TIMEOUT)
            )),
            "{}",
            note("Timeout.command")
        );
        assert!(
            note("Timeout.datablock").ends_with(&format!(
                "the SMTP server waits {}",
                format_time(SERVER_DATABLOCK)
            )),
            "{}",
            note("Timeout.datablock")
        );
    }

    #[test]
    fn error_mode_unknown_letter_acts_as_p() {
        for (value, want) in [
            ("p", Some('p')),
            ("q", Some('q')),
            ("m", Some('m')),
            ("w", Some('w')),
            ("e", Some('e')),
            ("x", Some('p')),
            ("Q", Some('p')),
            ("mail", Some('m')),
            ("", None),
        ] {
            assert_eq!(error_mode_letter(value), want, "{value:?}");
        }
    }

    #[test]
    fn delivery_mode_first_lowercase_letter_only() {
        let cases: &[(&str, Result<DeliveryMode, &str>)] = &[
            ("", Ok(DeliveryMode::Interactive)),
            ("b", Ok(DeliveryMode::Background)),
            ("background", Ok(DeliveryMode::Background)),
            ("i", Ok(DeliveryMode::Interactive)),
            ("q", Ok(DeliveryMode::QueueOnly)),
            ("queueonly", Ok(DeliveryMode::QueueOnly)),
            ("qx", Ok(DeliveryMode::QueueOnly)),
            ("d", Ok(DeliveryMode::Deferred)),
            ("deferred", Ok(DeliveryMode::Deferred)),
            ("Q", Err("Unknown delivery mode Q")),
            ("B", Err("Unknown delivery mode B")),
            ("x", Err("Unknown delivery mode x")),
            (" q", Err("Unknown delivery mode  ")),
        ];
        for (input, want) in cases {
            let got = DeliveryMode::parse(input).map_err(|e| e.message);
            assert_eq!(got, want.map_err(|s| s.to_string()), "input {input:?}");
        }
    }

    #[test]
    fn bad_mode_is_usage() {
        assert_eq!(DeliveryMode::parse("z").unwrap_err().code, Sysexit::Usage);
    }

    #[test]
    fn long_names_resolve_like_sendmail() {
        assert_eq!(
            lookup_long("deliverymode").unwrap().def.name,
            "DeliveryMode"
        );
        assert!(
            lookup_long("DeliveryMode")
                .unwrap()
                .abbreviation_note
                .is_none()
        );
        let r = lookup_long("Ve").unwrap();
        assert_eq!(r.def.name, "Verbose");
        assert_eq!(
            r.abbreviation_note.as_deref(),
            Some("Option Ve used as abbreviation for Verbose")
        );
        let e = lookup_long("Deliv").unwrap_err();
        assert_eq!(
            e.message,
            "readcf: ambiguous option name Deliv (matches DeliveryMode and DeliverByMin)"
        );
        assert_eq!(e.code, Sysexit::Software);
        assert_eq!(
            lookup_long("D").unwrap_err().message,
            "readcf: ambiguous option name D (matches DeliveryMode and DaemonPortOptions)"
        );
        assert_eq!(
            lookup_long("T").unwrap_err().message,
            "readcf: ambiguous option name T (matches TempFileMode and Timeout)"
        );
        assert_eq!(
            lookup_long("Ti").unwrap_err().message,
            "readcf: ambiguous option name Ti (matches Timeout and TimeZoneSpec)"
        );
        assert_eq!(
            lookup_long("S").unwrap_err().message,
            "readcf: ambiguous option name S (matches SevenBitInput and SaveFromLine)"
        );
        assert_eq!(
            lookup_long("Foo").unwrap_err().message,
            "readcf: unknown option name Foo"
        );
        assert_eq!(
            lookup_long("").unwrap_err().message,
            "readcf: null option name"
        );
        let t = lookup_long("Timeout.queuereturn").unwrap();
        assert_eq!(
            (t.def.name, t.sub.as_deref()),
            ("Timeout", Some("queuereturn"))
        );
    }

    #[test]
    fn own_options_do_not_change_sendmail_abbreviations() {
        // Every prefix that resolved (or failed) one way among sendmail's names still does.
        let sendmail_names = &OPTION_TABLE[..OPTION_TABLE.len() - OWN_OPTIONS];
        for def in sendmail_names {
            for end in 1..=def.name.len() {
                let prefix = &def.name[..end];
                let lower = prefix.to_ascii_lowercase();
                let before: Vec<&str> = sendmail_names
                    .iter()
                    .filter(|d| d.name.to_ascii_lowercase().starts_with(&lower))
                    .map(|d| d.name)
                    .collect();
                if before.len() == 1 && !before[0].eq_ignore_ascii_case(prefix) {
                    assert_eq!(lookup_long(prefix).unwrap().def.name, before[0], "{prefix}");
                }
            }
        }
        assert_eq!(
            lookup_long("MaxConnections").unwrap().def.name,
            "MaxConnections"
        );
        assert_eq!(lookup_long("mxport").unwrap().def.name, "MXPort");
        assert_eq!(lookup_long("Tru").unwrap().def.name, "TrustedUser");
        assert_eq!(lookup_long("TrustedN").unwrap().def.name, "TrustedNetworks");
        assert_eq!(
            OPTION_TABLE[OPTION_TABLE.len() - OWN_OPTIONS].name,
            "MXPort"
        );
    }

    #[test]
    fn letters() {
        assert_eq!(lookup_letter('d').unwrap().name, "DeliveryMode");
        assert_eq!(lookup_letter('i').unwrap().name, "IgnoreDots");
        assert_eq!(lookup_letter('Q').unwrap().name, "QueueDirectory");
        assert!(lookup_letter('!').is_none());
    }

    #[test]
    fn assignment_blanks() {
        assert_eq!(split_assignment("deliverymode = q"), ("deliverymode", "q"));
        assert_eq!(split_assignment("DeliveryMode"), ("DeliveryMode", ""));
        assert_eq!(split_assignment("A=b=c"), ("A", "b=c"));
    }

    /// Each kind's parser, value by value: accepted (with what it gives) or refused.
    #[test]
    fn value_parsers_accept_and_refuse() {
        let times: &[(&str, Option<u64>)] = &[
            ("30s", Some(30)),
            ("5", Some(300)),
            ("5m", Some(300)),
            ("1h30m", Some(5400)),
            ("1h30", Some(5400)),
            ("2d", Some(2 * 86400)),
            ("1w", Some(7 * 86400)),
            ("0", Some(0)),
            (" 10s", Some(10)),
            ("100s ", Some(100)),
            ("", None),
            ("forever", None),
            ("5x", None),
            ("m", None),
            ("5mm", None),
            ("-5m", None),
            ("1 h", None),
            ("5.5m", None),
            ("99999999999999999999999", None),
            ("5300w", None),
        ];
        for (v, want) in times {
            let got = parse_time("Timeout.connect", v);
            match want {
                Some(n) => assert_eq!(got.map_err(|e| e.message), Ok(*n), "{v:?}"),
                None => {
                    let e = got.unwrap_err();
                    assert_eq!(e.code, Sysexit::Usage, "{v:?}");
                    assert_eq!(e.message, format!("Invalid value for Timeout.connect: {v}"));
                }
            }
        }
        let counts: &[(&str, Option<usize>)] = &[
            ("0", Some(0)),
            ("25", Some(25)),
            (" 7 ", Some(7)),
            ("", None),
            ("abc", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("2.5", None),
            ("99999999999999999999999", None),
        ];
        for (v, want) in counts {
            assert_eq!(parse_count("MaxHopCount", v).ok(), *want, "{v:?}");
            // The same, but 0: a limit of none would mean "never deliver".
            let positive = want.filter(|&n| n > 0);
            assert_eq!(parse_positive("MaxConnections", v).ok(), positive, "{v:?}");
        }
        assert_eq!(
            parse_positive("MaxConnections", "0").unwrap_err().message,
            "Invalid value for MaxConnections: 0"
        );
        assert_eq!(
            parse_count("MaxHopCount", "abc").unwrap_err().message,
            "Invalid value for MaxHopCount: abc"
        );
        let ports: &[(&str, Option<u16>)] = &[
            ("25", Some(25)),
            ("1", Some(1)),
            ("65535", Some(65535)),
            ("0", None),
            ("65536", None),
            ("smtp", None),
            ("", None),
        ];
        for (v, want) in ports {
            assert_eq!(parse_port("MXPort", v).ok(), *want, "{v:?}");
        }
        // sendmail's limits: 0 and below are none, past u64 nothing reaches them.
        let limits: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("10000000", Some(10_000_000)),
            (" 7 ", Some(7)),
            ("-1", Some(0)),
            ("-99999999999999999999999", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("18446744073709551615", Some(u64::MAX)),
            ("-", None),
            ("--1", None),
            ("+1", None),
            ("2x", None),
            ("10M", None),
            ("abc", None),
            ("", None),
        ];
        for (v, want) in limits {
            assert_eq!(parse_limit("MaxMessageSize", v).ok(), *want, "{v:?}");
        }
        let bools: &[(&str, Option<bool>)] = &[
            ("", Some(true)),
            ("true", Some(true)),
            ("True", Some(true)),
            ("T", Some(true)),
            ("yes", Some(true)),
            ("y", Some(true)),
            ("false", Some(false)),
            ("FALSE", Some(false)),
            ("f", Some(false)),
            ("no", Some(false)),
            ("n", Some(false)),
            ("1", None),
            ("0", None),
            ("ture", None),
            ("maybe", None),
        ];
        for (v, want) in bools {
            assert_eq!(parse_bool("IgnoreDots", v).ok(), *want, "{v:?}");
        }
        let paths: &[(&str, Option<&str>)] = &[
            ("/etc/ca.pem", Some("/etc/ca.pem")),
            ("relative/file", Some("relative/file")),
            ("/x ", Some("/x")),
            ("", None),
            ("  ", None),
        ];
        for (v, want) in paths {
            assert_eq!(
                parse_path("CACertFile", v).ok(),
                want.map(PathBuf::from),
                "{v:?}"
            );
            // A directory must not depend on the working directory.
            let absolute = want.filter(|p| p.starts_with('/')).map(PathBuf::from);
            assert_eq!(
                parse_absolute_path("QueueDirectory", v).ok(),
                absolute,
                "{v:?}"
            );
        }
        assert_eq!(
            parse_absolute_path("QueueDirectory", "relspool")
                .unwrap_err()
                .message,
            "Invalid value for QueueDirectory: relspool"
        );
        let users: &[(&str, bool)] = &[
            ("mailnull", true),
            ("mail:mail", true),
            ("8:12", true),
            ("nobody", true),
            ("", false),
            ("mail:", false),
            (":mail", false),
            ("a:b:c", false),
            ("two words", false),
        ];
        for (v, ok) in users {
            assert_eq!(parse_user("DefaultUser", v).is_ok(), *ok, "{v:?}");
        }
        let privacy: &[(&str, Option<&[&str]>)] = &[
            ("", Some(&[])),
            ("goaway", Some(&["goaway"])),
            (
                "authwarnings,NoVrfy noexpn",
                Some(&["authwarnings", "novrfy", "noexpn"]),
            ),
            ("nobodyreturn,,", Some(&["nobodyreturn"])),
            ("noexpm", None),
            ("novrfy,bogus", None),
        ];
        for (v, want) in privacy {
            let got = parse_privacy("PrivacyOptions", v).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{v:?}");
        }
        let nets: &[(&str, Option<usize>)] = &[
            ("", Some(0)),
            ("127.0.0.1/32", Some(1)),
            ("10.0.0.0/8, ::1 192.0.2.7", Some(3)),
            ("10.0.0.0/33", None),
            ("localhost", None),
            ("10.0.0.0/8,10.1", None),
        ];
        for (v, want) in nets {
            let got = parse_networks("TrustedNetworks", v).ok().map(|n| n.len());
            assert_eq!(got, *want, "{v:?}");
        }
        let listen: &[(&str, Option<usize>)] = &[
            ("Port=2525,Addr=127.0.0.1", Some(1)),
            ("Name=MTA", Some(2)),
            ("Port=x", None),
            ("Addr=nowhere", None),
            ("Family=ipx", None),
        ];
        for (v, want) in listen {
            let got = parse_listen("DaemonPortOptions", v);
            assert_eq!(got.as_ref().ok().map(|a| a.len()), *want, "{v:?}");
            if let Err(e) = got {
                assert_eq!(e.code, Sysexit::Usage, "{v:?}");
                assert!(e.message.contains("DaemonPortOptions"), "{}", e.message);
            }
        }
        let domains: &[(&str, Option<&[&str]>)] = &[
            ("", Some(&[])),
            ("Partner.Example", Some(&["partner.example"])),
            (
                "a.example, b.example c",
                Some(&["a.example", "b.example", "c"]),
            ),
            ("ex/ample", None),
            ("a..example", None),
            (".example", None),
            ("<a.example>", None),
            // U-labels as A-labels; a name with no A-label form is refused.
            (
                "B\u{dc}cher.example, xn--bcher-kva.example",
                Some(&["xn--bcher-kva.example", "xn--bcher-kva.example"]),
            ),
            ("b\u{fc}cher..example", None),
        ];
        for (v, want) in domains {
            let got = parse_domains("RelayDomains", v).ok();
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{v:?}");
        }
        // Longer than DNS allows (RFC 1035): refused, the domain shown cut; 253 octets
        // and labels of 63 are taken.
        let label = |n: usize| "a".repeat(n);
        let longest = format!("{}.{}.{}.{}", label(63), label(63), label(63), label(61));
        assert!(parse_domains("RelayDomains", &format!("b.example {longest}")).is_ok());
        for (v, why) in [
            (
                format!("x{longest}"),
                "(longer than 253 octets (254 octets))",
            ),
            (
                format!("b.example,{}.example", label(64)),
                "(a label longer than 63 octets (64 octets))",
            ),
            (label(300_000), "(longer than 253 octets (300000 octets))"),
        ] {
            let e = parse_domains("FastFlushDomains", &v).unwrap_err();
            assert!(
                e.message
                    .starts_with("Invalid value for FastFlushDomains: ")
                    && e.message.ends_with(why)
                    && e.message.len() < 600,
                "{}",
                e.message
            );
        }
    }

    /// A good and a bad value of each kind, for the table tests.
    fn samples(kind: Kind) -> (&'static str, Option<&'static str>) {
        match kind {
            Kind::DeliveryMode => ("q", Some("Z")),
            Kind::ErrorMode => ("m", None),
            Kind::Bool => ("true", Some("maybe")),
            Kind::Time => ("30s", Some("forever")),
            Kind::Count => ("3", Some("abc")),
            Kind::Positive => ("3", Some("0")),
            Kind::Limit => ("-1", Some("10M")),
            Kind::Port => ("2525", Some("70000")),
            Kind::Path => ("/tmp/x", Some("")),
            Kind::AbsolutePath => ("/tmp/x", Some("relspool")),
            Kind::User => ("nobody", Some("a:b:c")),
            Kind::Privacy => ("goaway", Some("noexpm")),
            Kind::Networks => ("127.0.0.1/32", Some("10.0.0.0/33")),
            Kind::Listen => ("Port=2525,Addr=127.0.0.1", Some("Port=x")),
            Kind::Domains => ("partner.example", Some("ex/ample")),
            Kind::Char => (".", Some("ab")),
            Kind::VerpDelimiters => ("-=", Some("+@")),
            Kind::QueueSortOrder => ("time", Some("xyz")),
        }
    }

    fn apply(s: &mut Settings, name: &str, value: &str) -> Result<(), Fatal> {
        let r = lookup_long(name).unwrap();
        s.apply(r.def, r.sub.as_deref(), value)
    }

    /// `rsendmail-admin config` shows every acted-on option's built-in value as text;
    /// that text, applied as `O NAME=TEXT`, gives exactly the typed built-in value, so
    /// what is shown is what the programs use. The values decided outside this module
    /// are checked against their sources.
    #[test]
    fn shown_defaults_parse_to_the_builtin_values() {
        let builtin = Settings::builtin();
        let bare = |mut s: Settings| {
            s.given.clear();
            s.written.clear();
            s.each.clear();
            s
        };
        for (name, _) in ACTED_ON {
            let shown = builtin_default(name).unwrap_or_else(|| panic!("{name}: no default"));
            let Builtin::Value(text, _) = shown else {
                // No value of its own: nothing typed may claim one.
                assert_eq!(builtin.value_text(name), None, "{name}");
                continue;
            };
            let mut got = Settings::default();
            apply(&mut got, name, &text).unwrap_or_else(|e| panic!("{name}={text}: {e:?}"));
            assert_ne!(
                bare(got.clone()),
                Settings::default(),
                "{name}={text} set nothing"
            );
            // Over the built-in values, the parsed text changes nothing (the lists that
            // add up start empty so that the parsed one replaces them).
            let mut base = builtin.clone();
            if *name == "PrivacyOptions" {
                base.privacy_flags.clear();
            }
            if *name == "DaemonPortOptions" {
                base.daemon_addrs = None;
            }
            base.overlay(&got);
            assert_eq!(bare(base), builtin, "{name}={text}");
            assert_eq!(got.value_text(name), Some(text.clone()), "{name}");
        }
        assert_eq!(builtin.max_hop_count, Some(crate::submit::DEFAULT_MAX_HOPS));
        assert_eq!(
            builtin.delivery_mode,
            Some(crate::cli::effective_mode(false, None, None))
        );
        assert_eq!(builtin.trusted_networks, net::trusted_networks(None).ok());
        for (secs, text) in [
            (0, "0s"),
            (5, "5s"),
            (90, "90s"),
            (300, "5m"),
            (432000, "5d"),
        ] {
            assert_eq!(format_time(secs), text);
            assert_eq!(parse_duration(text, 'm').unwrap(), secs);
        }
        assert_eq!(builtin_default("HelpFile"), None);
        assert_eq!(builtin_default("Timeout.ident"), None);
    }

    /// Every acted-on option is typed: a good value fills a field (nothing lands in
    /// `other`) and a bad one is refused naming the option; every other option of the
    /// table is kept unparsed in `other`.
    /// A bare number is in sendmail's unit for the timeout: days for queuereturn,
    /// hours for queuewarn, seconds for resolver.retrans, minutes for the rest.
    #[test]
    fn bare_numbers_in_sendmails_units() {
        let mut s = Settings::default();
        for (name, v) in [
            ("Timeout.queuereturn", "5"),
            ("Timeout.queuewarn", "4"),
            ("Timeout.resolver.retrans", "7"),
            ("Timeout.connect", "2"),
        ] {
            apply(&mut s, name, v).unwrap();
        }
        let t = &s.timeouts;
        assert_eq!(t.queuereturn, Some(5 * 86400));
        assert_eq!(t.queuewarn, Some(4 * 3600));
        assert_eq!(t.resolver_retrans, Some(7));
        assert_eq!(t.connect, Some(120));
        apply(&mut s, "Timeout.queuereturn", "90m").unwrap();
        assert_eq!(s.timeouts.queuereturn, Some(5400));
    }

    #[test]
    fn acted_on_options_are_typed_and_checked() {
        for (name, kind) in ACTED_ON {
            let (good, bad) = samples(*kind);
            let mut s = Settings::default();
            apply(&mut s, name, good).unwrap_or_else(|e| panic!("{name}={good}: {e:?}"));
            assert!(s.other.is_empty(), "{name} was not typed: {:?}", s.other);
            let blank = Settings {
                given: s.given.clone(),
                ..Settings::default()
            };
            assert_ne!(blank, s, "{name}={good} set nothing");
            let Some(bad) = bad else { continue };
            let e = apply(&mut Settings::default(), name, bad).unwrap_err();
            assert_eq!(e.code, Sysexit::Usage, "{name}={bad}");
            if *kind == Kind::DeliveryMode {
                assert_eq!(e.message, "Unknown delivery mode Z");
            } else if *kind == Kind::Listen {
                assert!(e.message.starts_with("DaemonPortOptions="), "{}", e.message);
            } else {
                assert_eq!(e.message, format!("Invalid value for {name}: {bad}"));
            }
        }
        for def in OPTION_TABLE {
            if ACTED_ON.iter().any(|(n, _)| n == &def.name)
                || def.name == "Timeout"
                || def.name == "QueueTimeout"
            {
                continue;
            }
            let mut s = Settings::default();
            apply(&mut s, def.name, "some value").unwrap();
            assert_eq!(s.other, [(def.name.to_string(), "some value".to_string())]);
        }
        // Timeouts rsendmail does not act on are kept unparsed, once their value is
        // checked.
        let mut s = Settings::default();
        apply(&mut s, "Timeout.ident", "5s").unwrap();
        apply(&mut s, "Timeout", "5m").unwrap();
        assert_eq!(s.other.len(), 2);
        assert_eq!(s.timeouts, Timeouts::default());
        // Sub-names are case-insensitive, as in sendmail.
        apply(&mut s, "timeout.CONNECT", "1m").unwrap();
        assert_eq!(s.timeouts.connect, Some(60));
    }

    /// sendmail's old `QueueTimeout` (`T`): `RETURN[/WARN]` sets the queue-return time and
    /// the warning time, in their default units (days, hours), as readcf.c does.
    #[test]
    fn queue_timeout_sets_the_queue_times() {
        let mut s = Settings::default();
        apply(&mut s, "QueueTimeout", "3/2").unwrap();
        assert_eq!(s.timeouts.queuereturn, Some(3 * 86400));
        assert_eq!(s.timeouts.queuewarn, Some(2 * 3600));
        assert!(s.other.is_empty(), "{:?}", s.other);
        apply(&mut s, "QueueTimeout", "1h").unwrap();
        assert_eq!(s.timeouts.queuereturn, Some(3600));
        assert_eq!(s.timeouts.queuewarn, Some(2 * 3600));
        let e = apply(&mut s, "QueueTimeout", "4d/soon").unwrap_err();
        assert_eq!(e.message, "Invalid value for QueueTimeout: 4d/soon");
    }

    /// Every timeout name of sendmail 8.17 is taken: the ones rsendmail acts on set their
    /// field, the others are kept unparsed with their value checked as sendmail reads
    /// it; a name sendmail does not know gets its `settimeout` message and EX_SOFTWARE.
    #[test]
    fn timeout_names_are_sendmails() {
        for name in SENDMAIL_TIMEOUTS.iter().copied().chain(["mboxlock"]) {
            let count = name.starts_with("resolver.retry");
            let (good, bad) = if count { ("3", "abc") } else { ("30s", "abc") };
            let mut s = Settings::default();
            apply(&mut s, &format!("Timeout.{name}"), good).unwrap();
            let acted_on = ACTED_ON
                .iter()
                .any(|(n, _)| *n == format!("Timeout.{name}"));
            assert_eq!(
                s.other.is_empty(),
                acted_on,
                "Timeout.{name}: {:?}",
                s.other
            );
            let e = apply(&mut s, &format!("Timeout.{name}"), bad).unwrap_err();
            assert_eq!(
                (e.code, e.message),
                (
                    Sysexit::Usage,
                    format!("Invalid value for Timeout.{name}: {bad}")
                )
            );
        }
        let unknown: &[(&str, &str)] = &[
            ("Timeout.bogus", "abc"),
            ("Timeout.bogus", "5m"),
            ("Timeout.queuereturn.bogus", "5d"),
            ("Timeout.Queuereturn.Normal2", "5d"),
            ("Timeout.", "5m"),
            ("Timeout.resolver", "5s"),
        ];
        for (name, value) in unknown {
            let e = apply(&mut Settings::default(), name, value).unwrap_err();
            let sub = name.strip_prefix("Timeout.").unwrap();
            assert_eq!(
                (e.code, e.message),
                (
                    Sysexit::Software,
                    format!("settimeout: invalid timeout {sub}")
                ),
                "{name}={value}"
            );
        }
        // Case does not matter, as in sendmail; messages name the option in lowercase.
        let mut s = Settings::default();
        apply(&mut s, "Timeout.QueueReturn.Normal", "5d").unwrap();
        assert_eq!(
            s.other,
            [("Timeout.QueueReturn.Normal".into(), "5d".into())]
        );
        // sendmail's `now` is a time there too.
        apply(&mut s, "Timeout.queuereturn.urgent", "now").unwrap();
        assert_eq!(
            apply(&mut s, "Timeout.QueueReturn.Normal", "abc")
                .unwrap_err()
                .message,
            "Invalid value for Timeout.queuereturn.normal: abc"
        );
        // sendmail's older list form: `Timeout=time` and `Timeout=name:time,...`,
        // checked item by item, not acted on.
        let lists: &[(&str, Result<(), &str>)] = &[
            ("5m", Ok(())),
            ("connect:30s, ident=5s,queuereturn.normal:5d", Ok(())),
            ("nonsense", Ok(())),
            ("", Ok(())),
            ("5x", Err("Invalid value for Timeout: 5x")),
            (
                "connect:forever",
                Err("Invalid value for Timeout.connect: forever"),
            ),
            ("mail:5m,bogus:5m", Err("settimeout: invalid timeout bogus")),
            ("bogus=abc", Err("settimeout: invalid timeout bogus")),
        ];
        for (value, want) in lists {
            let mut s = Settings::default();
            let got = apply(&mut s, "Timeout", value).map_err(|e| e.message);
            assert_eq!(got, want.map_err(String::from), "Timeout={value}");
            if want.is_ok() {
                assert_eq!(s.timeouts, Timeouts::default());
                assert_eq!(s.other, [("Timeout".into(), value.to_string())]);
            }
        }
    }

    #[test]
    fn each_timeout_is_given_on_its_own() {
        let mut s = Settings::default();
        apply(&mut s, "DeliveryMode", "q").unwrap();
        apply(&mut s, "Timeout.Connect", "5s").unwrap();
        apply(&mut s, "Timeout", "5m").unwrap();
        assert_eq!(s.given, ["DeliveryMode", "Timeout.connect", "Timeout"]);
    }

    #[test]
    fn options_that_add_up() {
        let mut config = Settings::default();
        apply(&mut config, "PrivacyOptions", "goaway").unwrap();
        apply(&mut config, "DaemonPortOptions", "Port=2525,Addr=127.0.0.1").unwrap();
        let mut argv = Settings::default();
        apply(&mut argv, "PrivacyOptions", "nobodyreturn").unwrap();
        apply(&mut argv, "DaemonPortOptions", "Port=2526,Addr=127.0.0.1").unwrap();
        config.overlay(&argv);
        assert!(config.privacy("goaway") && config.privacy("NoBodyReturn"));
        // goaway stands for the low flags, not for noetrn or noreceipts.
        assert!(config.privacy("novrfy") && config.privacy("needmailhelo"));
        assert!(!config.privacy("noetrn") && !config.privacy("noreceipts"));
        assert!(!argv.privacy("novrfy"));
        assert_eq!(config.daemon_addrs.as_ref().map(Vec::len), Some(2));
        // The others: the later setting wins.
        let mut a = Settings::default();
        apply(&mut a, "MaxHopCount", "10").unwrap();
        apply(&mut a, "Timeout.connect", "10s").unwrap();
        let mut b = Settings::default();
        apply(&mut b, "MaxHopCount", "20").unwrap();
        a.overlay(&b);
        assert_eq!(a.max_hop_count, Some(20));
        assert_eq!(a.timeouts.connect, Some(10));
    }

    #[test]
    fn settings_overlay_later_wins() {
        let mut a = Settings::default();
        a.apply(lookup_letter('d').unwrap(), None, "b").unwrap();
        let mut b = Settings::default();
        b.apply(lookup_letter('d').unwrap(), None, "q").unwrap();
        a.overlay(&b);
        assert_eq!(a.delivery_mode, Some(DeliveryMode::QueueOnly));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::{Index, select};

        /// An option value: any text, numbers of any size (with units), lists.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,20}",
                "[\\PC\r\n\t]{0,20}",
                "-?[0-9]{1,25}",
                "[0-9smhdwx]{0,30}",
                "[a-zA-Z0-9:,=./\\[\\] ]{0,30}",
            ]
        }

        /// A `Timeout.<sub>` name: the ones acted on, and any.
        fn sub() -> impl Strategy<Value = Option<String>> {
            proptest::option::of(prop_oneof![
                select(
                    &[
                        "connect",
                        "QUEUERETURN",
                        "queuewarn",
                        "resolver.retry",
                        "resolver.retrans",
                        "command",
                        "mboxlock",
                        "x",
                    ][..]
                )
                .prop_map(String::from),
                "\\PC{0,10}",
            ])
        }

        proptest! {
            #[test]
            fn any_value_of_any_option_is_taken_or_refused(
                i in any::<Index>(),
                sub in sub(),
                value in value(),
            ) {
                let def = &OPTION_TABLE[i.index(OPTION_TABLE.len())];
                let mut s = Settings::default();
                match s.apply(def, sub.as_deref(), &value) {
                    Ok(()) => prop_assert!(s.given.contains(&given_key(def, sub.as_deref()))),
                    // An unknown timeout name: sendmail's message and status.
                    Err(e) if e.code == Sysexit::Software => {
                        prop_assert_eq!(def.name, "Timeout");
                        prop_assert!(e.message.starts_with("settimeout: invalid timeout "), "{}", e.message);
                    }
                    Err(e) => {
                        prop_assert_eq!(e.code, Sysexit::Usage);
                        prop_assert!(!e.message.is_empty());
                    }
                }
                // Every acted-on option as its name is written (`Timeout.connect`).
                let (name, _) = ACTED_ON[i.index(ACTED_ON.len())];
                let r = lookup_long(name);
                prop_assert!(r.is_ok(), "{}", name);
                if let Ok(r) = r {
                    let mut s = Settings::default();
                    if let Err(e) = s.apply(r.def, r.sub.as_deref(), &value) {
                        prop_assert_eq!(e.code, Sysexit::Usage);
                    }
                }
            }

            #[test]
            fn any_name_resolves_or_is_refused(text in "[\\PC\r\n]{0,30}|[A-Za-z.]{0,12}") {
                let (name, value) = split_assignment(&text);
                prop_assert!(text.contains(name) && text.contains(value));
                if let Err(e) = lookup_long(name) {
                    prop_assert_eq!(e.code, Sysexit::Software);
                }
                if let Some(c) = text.chars().next() {
                    let _ = lookup_letter(c);
                }
                let _ = DeliveryMode::parse(&text);
                let _ = parse_time("t", &text);
                let _ = parse_duration(&text, 'm');
            }
        }
    }
}

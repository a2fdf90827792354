//! The one option table shared by `-O Name=value`, `-o<letter>value` and the config file's
//! `O Name=value` / `O<letter><value>` lines, and the typed [`Settings`] they fill in.
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

use crate::exit::{Fatal, Sysexit};
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
    opt("TrustedNetworks", None, false),
    opt("RelayDomains", None, false),
];

/// How many entries at the end of the table are rsendmail's own (not sendmail's).
const OWN_OPTIONS: usize = 8;

/// The result of resolving a long option name.
#[derive(Debug)]
pub struct Resolved {
    pub def: &'static OptDef,
    /// The part after a dot (`Timeout.queuereturn` → `queuereturn`).
    pub sub: Option<String>,
    /// `Option X used as abbreviation for Y`, when a prefix was used.
    pub abbreviation_note: Option<String>,
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

/// sendmail's `atobool`: empty or a value starting with t/T/y/Y is true.
pub fn parse_bool(value: &str) -> bool {
    matches!(value.chars().next(), None | Some('t' | 'T' | 'y' | 'Y'))
}

/// A size such as `MaxMessageSize=10000000` (bytes; sendmail takes a plain number).
fn parse_size(name: &str, value: &str) -> Result<u64, Fatal> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| Fatal::new(Sysexit::Usage, format!("Invalid value for {name}: {value}")))
}

/// What the options rsendmail acts on are set to; `None` means "not given here".
/// Options rsendmail accepts without acting on them are kept in `other` so later
/// parts (delivery, the listener) can read them and `-d` could show them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub delivery_mode: Option<DeliveryMode>,
    pub ignore_dots: Option<bool>,
    pub queue_directory: Option<PathBuf>,
    pub max_message_size: Option<u64>,
    pub error_mode: Option<char>,
    pub verbose: Option<bool>,
    pub alias_file: Option<PathBuf>,
    /// Everything else, in the order given: (canonical name[.sub], value).
    pub other: Vec<(String, String)>,
    /// The names of the options set here (for sendmail's rule that an option given on
    /// the command line is not even read from the config file).
    pub given: Vec<&'static str>,
}

impl Settings {
    /// Apply one option. Errors are sendmail's and end the program at once.
    pub fn apply(
        &mut self,
        def: &'static OptDef,
        sub: Option<&str>,
        value: &str,
    ) -> Result<(), Fatal> {
        if !self.given.contains(&def.name) {
            self.given.push(def.name);
        }
        match def.name {
            "DeliveryMode" => self.delivery_mode = Some(DeliveryMode::parse(value)?),
            "IgnoreDots" => self.ignore_dots = Some(parse_bool(value)),
            "QueueDirectory" => self.queue_directory = Some(PathBuf::from(value)),
            "MaxMessageSize" => self.max_message_size = Some(parse_size(def.name, value)?),
            "ErrorMode" => self.error_mode = value.chars().next(),
            "Verbose" => self.verbose = Some(parse_bool(value)),
            "AliasFile" => self.alias_file = Some(PathBuf::from(value)),
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

    /// Layer `later` over `self`: every option `later` sets wins.
    pub fn overlay(&mut self, later: &Settings) {
        macro_rules! take {
            ($f:ident) => {
                if later.$f.is_some() {
                    self.$f = later.$f.clone();
                }
            };
        }
        take!(delivery_mode);
        take!(ignore_dots);
        take!(queue_directory);
        take!(max_message_size);
        take!(error_mode);
        take!(verbose);
        take!(alias_file);
        self.other.extend(later.other.iter().cloned());
        for g in &later.given {
            if !self.given.contains(g) {
                self.given.push(g);
            }
        }
    }

    /// Every value given for an option kept in `other`, in order.
    pub fn other_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.other
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A time option kept in `other` (`O Timeout.queuereturn=5d`, `O MinQueueAge=30m`)
    /// in seconds; a bare number is minutes, as in sendmail. `default` when not set.
    pub fn duration(&self, name: &str, default: i64) -> Result<i64, Fatal> {
        match self.other_value(name) {
            Some(v) => super::parse_duration(v, 'm').map(|n| n as i64),
            None => Ok(default),
        }
    }

    /// Whether `O PrivacyOptions=` names `flag`. As in sendmail the flags add up over
    /// every setting (`-O PrivacyOptions=a` adds to the config's `b`).
    pub fn privacy(&self, flag: &str) -> bool {
        self.other_values("PrivacyOptions").any(|v| {
            v.split([',', ' ', '\t'])
                .any(|f| f.trim().eq_ignore_ascii_case(flag))
        })
    }

    /// The last value given for an option kept in `other`.
    pub fn other_value(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn settings_overlay_later_wins() {
        let mut a = Settings::default();
        a.apply(lookup_letter('d').unwrap(), None, "b").unwrap();
        let mut b = Settings::default();
        b.apply(lookup_letter('d').unwrap(), None, "q").unwrap();
        a.overlay(&b);
        assert_eq!(a.delivery_mode, Some(DeliveryMode::QueueOnly));
        assert!(parse_bool(""));
        assert!(parse_bool("True"));
        assert!(!parse_bool("false"));
    }
}

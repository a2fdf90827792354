//! rsendmail.conf: dma.conf's keywords, two of ours, and sendmail `O` option lines.
//!
//! Syntax (dma's): one `KEYWORD [value]` per line, `#` starts a comment line, blank lines
//! are skipped. A dma.conf is read unchanged. Sendmail option lines share the option table
//! of `-O`: `O Name=value` and the deprecated `O<letter><value>` (e.g. `Odq`).
//!
//! Every `O` line's value is parsed (typed, once) as the line is read, by the option
//! table's parsers ([`Settings::apply`]), so a bad value is refused before anything is
//! taken, never later by the deliverer.
//!
//! Values delivery uses as they are written are checked on their line too: MAILNAME and
//! MASQUERADE's domain must be domains as RFC 5321 §4.1.2 writes them (they go into
//! EHLO, the envelope and the header), SMARTHOST, RESOLVER and the relay table's relays
//! hosts with a port from 1 to 65535 ([`check_host_port`]), SPOOLDIR an absolute path.
//! The mail name is settled once, when the config is read ([`Config::resolve_mail_name`]:
//! the file MAILNAME names, or the host name), and read by everyone from there.
//!
//! Errors name the file and line and exit EX_CONFIG (78), except a bad delivery mode, which
//! is sendmail's `Unknown delivery mode VALUE` with file and line and EX_USAGE (64) (for
//! `rsendmail-admin config` and `check`, EX_CONFIG as every other line in error).
//! With no file at the default path, the built-in defaults apply (see [`Paths`]).
//!
//! The files the configuration names for delivery (RELAYTABLE, AUTHPATH, CERTFILE,
//! `O CACertFile=`) are checked by [`Config::check_files`] before a message is read or a
//! queue run or the SMTP server starts: a missing or broken one (for the certificate
//! files: not the PEM text the deliverer's TLS code reads) is refused there (EX_CONFIG,
//! with the path and the reason, or the file and line), and nothing is queued.
//!
//! Any text is a config file that is read or refused with its file and line: lines are
//! cut with `split_once` and `strip_prefix`, never by byte index (the lints below keep it
//! so), and no value makes the parser panic.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::exit::{Fatal, Sysexit};
use crate::message::address::{ascii_mail_name, check_domain, check_host_name, check_mailbox};
use crate::options::{self, DeliveryMode, OptDef, Settings};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `MAILLOG /dev/null`: no log file ([`Config::maillog_file`]).
pub const MAILLOG_OFF: &str = "/dev/null";

/// The default config file: the system configuration ([`system_config`]).
pub const DEFAULT_CONFIG: &str = "/etc/rsendmail/rsendmail.conf";

/// The variable a debug build reads for the system configuration's path (tests only; see
/// [`system_config`]).
pub const SYSTEM_CONFIG_ENV: &str = "RSENDMAIL_SYSTEM_CONFIG";

/// The system configuration file, read when no `-C` is given: [`DEFAULT_CONFIG`]. Whether
/// it exists decides where the mail of a caller without privileges goes
/// (`app::default_paths`): the system spool when it does, a per-user spool only when
/// there is no system configuration at all.
///
/// For tests only: a debug build (what `cargo test` runs) without set-id privileges takes
/// the path from `RSENDMAIL_SYSTEM_CONFIG` (an absolute path) when it is set, so that the
/// tests of these rules never read or write under `/etc` or `/var`. A release build never
/// reads the variable, and neither does a set-id process of any build, so the environment
/// cannot redirect a privileged program.
pub fn system_config() -> PathBuf {
    if cfg!(debug_assertions)
        && !crate::privs::is_setid()
        && let Some(p) = std::env::var_os(SYSTEM_CONFIG_ENV)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    {
        return p;
    }
    PathBuf::from(DEFAULT_CONFIG)
}

/// Whether a configuration file is there: anything at `path` but "no such file" counts
/// (a file the caller may not read is there, and reading it says why it cannot be read).
pub fn exists(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Where files live when the config does not say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub spool_dir: PathBuf,
    pub mail_spool: PathBuf,
    pub aliases: PathBuf,
}

impl Paths {
    /// The system paths (root, or a set-id install).
    pub fn system() -> Paths {
        Paths {
            spool_dir: PathBuf::from("/var/spool/rsendmail"),
            mail_spool: PathBuf::from("/var/mail"),
            aliases: PathBuf::from("/etc/aliases"),
        }
    }

    /// A user's own paths under `$XDG_STATE_HOME/rsendmail` (or `~/.local/state/rsendmail`).
    pub fn per_user(state_home: &Path) -> Paths {
        let base = state_home.join("rsendmail");
        Paths {
            spool_dir: base.join("spool"),
            mail_spool: base.join("mail"),
            aliases: PathBuf::from("/etc/aliases"),
        }
    }
}

/// The configuration in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    pub smarthost: Vec<String>,
    pub port: Option<u16>,
    pub aliases: PathBuf,
    pub spool_dir: PathBuf,
    pub auth_path: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub secure_transfer: bool,
    pub starttls: bool,
    pub opportunistic_tls: bool,
    pub insecure: bool,
    pub verify_cert: bool,
    pub fingerprint: Option<String>,
    /// MAILNAME as written (a name or an absolute path to a file holding it).
    pub mailname: Option<String>,
    /// The mail name in force, checked: MAILNAME's name, the first line of the file it
    /// names, or the host name. Read through [`Config::host_name`].
    mail_name: String,
    pub masquerade: Option<String>,
    pub null_client: bool,
    pub full_bounce: bool,
    pub mail_spool: PathBuf,
    pub resolver: Vec<String>,
    pub relay_table: Option<PathBuf>,
    /// `NOPIPELINING`: never pipeline, for servers that mishandle it.
    pub no_pipelining: bool,
    /// `MAILLOG path`: log lines go to this file instead of syslog (see `log.rs`).
    pub maillog: Option<PathBuf>,
    /// `O` lines and DEFER, in file order.
    pub settings: Settings,
    /// Where each keyword ([`KEYWORDS`]) and each `O` option was last set: the keyword,
    /// or `O ` and the option's [`options::given_key`] (`O MaxHopCount`,
    /// `O Timeout.connect`) → `file: line N`; for messages about the files keywords name,
    /// for `rsendmail-admin config`, and (`QueueDirectory`, for `O QueueDirectory`) for the
    /// message about a missing spool.
    pub origin: std::collections::BTreeMap<String, String>,
    /// Each line of an option each of whose lines means one more thing
    /// ([`options::one_line_each`]): its [`options::given_key`], its value and `file: line N`.
    pub each: Vec<(String, String, String)>,
}

/// The keywords of rsendmail.conf (dma.conf's and rsendmail's own), in the order
/// `rsendmail-admin config` prints them; [`Config::keyword_value`] gives each one's value.
pub const KEYWORDS: &[&str] = &[
    "SMARTHOST",
    "PORT",
    "ALIASES",
    "SPOOLDIR",
    "AUTHPATH",
    "CERTFILE",
    "SECURETRANSFER",
    "STARTTLS",
    "OPPORTUNISTIC_TLS",
    "INSECURE",
    "VERIFYCERT",
    "FINGERPRINT",
    "MAILNAME",
    "MASQUERADE",
    "NULLCLIENT",
    "DEFER",
    "FULLBOUNCE",
    "MAILSPOOL",
    "RESOLVER",
    "RELAYTABLE",
    "NOPIPELINING",
    "MAILLOG",
];

/// The keywords of [`KEYWORDS`] that are flags: given alone on their line, with no value
/// (`STARTTLS`); [`Config::keyword_value`] says `yes` or `no` for them.
pub const FLAG_KEYWORDS: &[&str] = &[
    "SECURETRANSFER",
    "STARTTLS",
    "OPPORTUNISTIC_TLS",
    "INSECURE",
    "VERIFYCERT",
    "NULLCLIENT",
    "DEFER",
    "FULLBOUNCE",
    "NOPIPELINING",
];

impl Config {
    /// A keyword's value in force, as text: a flag is `yes` or `no`; `None` for a keyword
    /// that is not set and has no built-in value (SMARTHOST, AUTHPATH...). `keyword` is
    /// one of [`KEYWORDS`] (`None` for any other word). Never a credential: AUTHPATH is
    /// the file's name, not what it holds.
    pub fn keyword_value(&self, keyword: &str) -> Option<String> {
        let flag = |b: bool| Some(if b { "yes" } else { "no" }.to_string());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(" "));
        match keyword {
            "SMARTHOST" => list(&self.smarthost),
            "PORT" => Some(self.port.unwrap_or(25).to_string()),
            "ALIASES" => Some(self.aliases.display().to_string()),
            "SPOOLDIR" => Some(self.spool_dir.display().to_string()),
            "AUTHPATH" => path(&self.auth_path),
            "CERTFILE" => path(&self.cert_file),
            "SECURETRANSFER" => flag(self.secure_transfer),
            "STARTTLS" => flag(self.starttls),
            "OPPORTUNISTIC_TLS" => flag(self.opportunistic_tls),
            "INSECURE" => flag(self.insecure),
            "VERIFYCERT" => flag(self.verify_cert),
            "FINGERPRINT" => self.fingerprint.clone(),
            "MAILNAME" => self.mailname.clone(),
            "MASQUERADE" => self.masquerade.clone(),
            "NULLCLIENT" => flag(self.null_client),
            "DEFER" => flag(self.settings.delivery_mode == Some(DeliveryMode::Deferred)),
            "FULLBOUNCE" => flag(self.full_bounce),
            "MAILSPOOL" => Some(self.mail_spool.display().to_string()),
            "RESOLVER" => list(&self.resolver),
            "RELAYTABLE" => path(&self.relay_table),
            "NOPIPELINING" => flag(self.no_pipelining),
            "MAILLOG" => path(&self.maillog),
            _ => None,
        }
    }

    pub fn builtin(paths: &Paths) -> Config {
        Config {
            file: None,
            smarthost: Vec::new(),
            port: None,
            aliases: paths.aliases.clone(),
            spool_dir: paths.spool_dir.clone(),
            auth_path: None,
            cert_file: None,
            secure_transfer: false,
            starttls: false,
            opportunistic_tls: false,
            insecure: false,
            verify_cert: false,
            fingerprint: None,
            mailname: None,
            // Set by `resolve_mail_name` (the host name is asked for only when MAILNAME
            // does not give the name); `host_name` asks itself where it was not called.
            mail_name: String::new(),
            masquerade: None,
            null_client: false,
            full_bounce: false,
            mail_spool: paths.mail_spool.clone(),
            resolver: Vec::new(),
            relay_table: None,
            maillog: None,
            no_pipelining: false,
            settings: Settings::default(),
            origin: Default::default(),
            each: Vec::new(),
        }
    }

    /// Read `path`. `required` is true for `-C`: a missing file is then an error; the default
    /// file may be absent.
    /// `sticky` names the options given on the command line: sendmail does not read those
    /// from the config at all (so a bad value there is not an error either).
    /// Errors: what is wrong (the file's name, `FILE: line N: ...` for each line in
    /// error), each control character from outside (of the name, of a line) as its
    /// octets in octal ([`crate::text::escaped_lines`]), as `check` shows them.
    pub fn load(
        path: &Path,
        required: bool,
        paths: &Paths,
        sticky: &[String],
    ) -> Result<Config, Fatal> {
        Config::load_raw(path, required, paths, sticky).map_err(Fatal::escaped)
    }

    /// [`Config::load`], its errors' text as made.
    fn load_raw(
        path: &Path,
        required: bool,
        paths: &Paths,
        sticky: &[String],
    ) -> Result<Config, Fatal> {
        // Only a regular file of at most 1 MiB: `-C /dev/zero` or a FIFO is refused,
        // never read or waited on.
        let text = match crate::boundedfile::read_regular(path, false, crate::boundedfile::MAX_FILE)
        {
            Ok(got) => got,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) && !required => {
                let mut cfg = Config::builtin(paths);
                cfg.resolve_mail_name()?;
                return Ok(cfg);
            }
            Err(e) => {
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!("cannot open {}: {}", path.display(), e.text()),
                ));
            }
        };
        if let Some((line, octet)) = non_utf8_line(&text.0) {
            return Err(Fatal::new(
                Sysexit::Config,
                non_utf8_message(&path.display().to_string(), line, octet),
            ));
        }
        let mut cfg = Config::builtin(paths);
        cfg.file = Some(path.to_path_buf());
        // A line is quoted in an error only from a file everyone may read: never one of
        // a file named by mistake (`-C /etc/shadow`) or one only root may read.
        cfg.parse_quoting(
            &String::from_utf8_lossy(&text.0),
            &path.display().to_string(),
            sticky,
            crate::text::readable_by_all(&text.1),
        )?;
        cfg.resolve_mail_name()?;
        Ok(cfg)
    }

    /// Parse config text; `name` is used in messages.
    ///
    /// As in dma (`conf.c`), `NULLCLIENT` without `SMARTHOST` is refused: everything
    /// would have to go to a smarthost there is none of (`name: line N: NULLCLIENT
    /// requires SMARTHOST`, EX_CONFIG, N the NULLCLIENT line).
    pub fn parse(&mut self, text: &str, name: &str, sticky: &[String]) -> Result<(), Fatal> {
        self.parse_quoting(text, name, sticky, true)
    }

    /// [`Config::parse`]; with `quoted` false (a file not everyone may read:
    /// [`crate::text::readable_by_all`]) an error names the line and its keyword when
    /// the keyword is one rsendmail knows, never the line's text.
    pub fn parse_quoting(
        &mut self,
        text: &str,
        name: &str,
        sticky: &[String],
        quoted: bool,
    ) -> Result<(), Fatal> {
        let mut null_client_line = None;
        // A UTF-8 byte order mark (some editors write one) or a NUL is invisible: named
        // with its line, rather than blamed on the keyword it sticks to.
        fault(text.as_bytes(), name)?;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = raw.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // dma (conf.c) ends a keyword line at a `#` wherever it stands (`STARTTLS  #
            // relay`); an `O` line ends as sendmail.cf's lines do ([`strip_cf_comment`]).
            let first = line.split([' ', '\t', '#']).next().unwrap_or("");
            let stripped;
            let line = if is_keyword_shaped(first) {
                line.split('#').next().unwrap_or(line).trim_end()
            } else {
                stripped = strip_cf_comment(line);
                stripped.as_str()
            };
            let (keyword, value) = match line.split_once([' ', '\t']) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            let err = |code: Sysexit, msg: String| {
                let msg = match quoted {
                    true => msg,
                    false => hidden_line_problem(keyword),
                };
                // A long value is echoed cut, as a long argument is.
                let msg = crate::text::message_bounded(&msg);
                Fatal::new(code, format!("{name}: line {lineno}: {msg}"))
            };
            if KEYWORDS.contains(&keyword) {
                self.origin
                    .insert(keyword.to_string(), format!("{name}: line {lineno}"));
            }
            let value = (!value.is_empty()).then_some(value);
            let need = |v: Option<&str>| -> Result<String, Fatal> {
                v.map(str::to_string)
                    .ok_or_else(|| err(Sysexit::Config, format!("{keyword} requires a value")))
            };
            let flag = |v: Option<&str>| -> Result<bool, Fatal> {
                match v {
                    None => Ok(true),
                    Some(v) => Err(err(
                        Sysexit::Config,
                        format!("{keyword} takes no value (found \"{v}\")"),
                    )),
                }
            };
            // A relative path would be another file in every working directory: the
            // queue runner would never see what was queued, nor log where others do.
            let absolute = |v: Option<&str>| -> Result<PathBuf, Fatal> {
                let v = need(v)?;
                if !v.starts_with('/') {
                    return Err(err(
                        Sysexit::Config,
                        format!("invalid {keyword} {v}: not an absolute path"),
                    ));
                }
                Ok(PathBuf::from(v))
            };
            match keyword {
                "SMARTHOST" => {
                    self.smarthost = host_list(&need(value)?).map_err(|(h, why)| {
                        err(Sysexit::Config, format!("invalid SMARTHOST {h}: {why}"))
                    })?;
                }
                "PORT" => {
                    let v = need(value)?;
                    match v.parse::<u16>() {
                        Ok(p) if p > 0 => self.port = Some(p),
                        _ => return Err(err(Sysexit::Config, format!("invalid PORT {v}"))),
                    }
                }
                "ALIASES" => self.aliases = PathBuf::from(need(value)?),
                "SPOOLDIR" => self.spool_dir = absolute(value)?,
                "AUTHPATH" => self.auth_path = Some(PathBuf::from(need(value)?)),
                "CERTFILE" => self.cert_file = Some(PathBuf::from(need(value)?)),
                "SECURETRANSFER" => self.secure_transfer = flag(value)?,
                "STARTTLS" => self.starttls = flag(value)?,
                "OPPORTUNISTIC_TLS" => self.opportunistic_tls = flag(value)?,
                "INSECURE" => self.insecure = flag(value)?,
                "VERIFYCERT" => self.verify_cert = flag(value)?,
                "FINGERPRINT" => {
                    let v = need(value)?;
                    let hex: String = v.chars().filter(|c| *c != ':').collect();
                    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(err(
                            Sysexit::Config,
                            format!("FINGERPRINT must be a SHA-256 digest in hex: {v}"),
                        ));
                    }
                    self.fingerprint = Some(hex.to_ascii_lowercase());
                }
                "MAILNAME" => {
                    // A name is checked here; a file is read by `resolve_mail_name`.
                    let v = need(value)?;
                    if !v.starts_with('/') {
                        // A name with U-labels is used as its A-labels.
                        self.mail_name = ascii_mail_name(&v).map_err(|why| {
                            err(
                                Sysexit::Config,
                                format!(
                                    "invalid MAILNAME {}: {why}",
                                    crate::text::argument_shown(&v)
                                ),
                            )
                        })?;
                    }
                    self.mailname = Some(v);
                }
                "MASQUERADE" => {
                    let v = need(value)?;
                    // A host with U-labels is used as its A-labels, as MAILNAME is.
                    let v = check_masquerade(&v).map_err(|why| {
                        err(Sysexit::Config, format!("invalid MASQUERADE {v}: {why}"))
                    })?;
                    self.masquerade = Some(v);
                }
                "NULLCLIENT" => {
                    self.null_client = flag(value)?;
                    null_client_line = Some(lineno);
                }
                "DEFER" => {
                    flag(value)?;
                    // `O DeliveryMode=d` at this line: what a later one (or the
                    // command line) overrides, and what `rsendmail-admin config` shows.
                    self.settings.delivery_mode = Some(DeliveryMode::Deferred);
                    self.settings.note_written("DeliveryMode", "d");
                    self.origin.insert(
                        "O DeliveryMode".into(),
                        format!("{name}: line {lineno} (DEFER)"),
                    );
                }
                "FULLBOUNCE" => self.full_bounce = flag(value)?,
                "MAILSPOOL" => self.mail_spool = PathBuf::from(need(value)?),
                "RESOLVER" => {
                    let servers = host_list(&need(value)?).map_err(|(h, why)| {
                        err(Sysexit::Config, format!("invalid RESOLVER {h}: {why}"))
                    })?;
                    // Name servers are asked by address (the deliverer's resolver).
                    if let Some(h) = servers.iter().find(|h| {
                        let (host, _) = parse_host_port(h).unwrap_or_default();
                        let bare = host.trim_start_matches('[').trim_end_matches(']');
                        bare.parse::<std::net::IpAddr>().is_err()
                    }) {
                        return Err(err(
                            Sysexit::Config,
                            format!("invalid RESOLVER {h}: not an IP address"),
                        ));
                    }
                    self.resolver = servers;
                }
                "RELAYTABLE" => self.relay_table = Some(PathBuf::from(need(value)?)),
                "NOPIPELINING" => self.no_pipelining = flag(value)?,
                "MAILLOG" => self.maillog = Some(absolute(value)?),
                "O" => {
                    let text = need(value)?;
                    let (oname, ovalue) = options::split_assignment(&text);
                    let resolved = options::lookup_long(oname).map_err(|e| {
                        let mut message = e.message;
                        if message.starts_with("readcf: unknown option name")
                            && let Some(w) = options::close_option_name(oname.trim())
                        {
                            message.push_str(&format!(" (did you mean {w}?)"));
                        }
                        err(
                            if e.code == Sysexit::Software {
                                Sysexit::Config
                            } else {
                                e.code
                            },
                            message,
                        )
                    })?;
                    if sticky.contains(&options::given_key(resolved.def, resolved.sub.as_deref()))
                        && !options::adds_up(resolved.def)
                    {
                        continue;
                    }
                    self.settings
                        .apply(resolved.def, resolved.sub.as_deref(), ovalue)
                        .map_err(|e| value_error(resolved.def, ovalue, e, &err))?;
                    let key = options::given_key(resolved.def, resolved.sub.as_deref());
                    self.settings
                        .note_spelled(&key, &format!("O {}=", oname.trim()));
                    if options::one_line_each(&key) {
                        self.each.push((
                            key.clone(),
                            ovalue.to_string(),
                            format!("{name}: line {lineno}"),
                        ));
                    }
                    self.origin
                        .insert(format!("O {key}"), format!("{name}: line {lineno}"));
                    if resolved.def.name == "QueueDirectory" {
                        self.origin
                            .insert("QueueDirectory".into(), format!("{name}: line {lineno}"));
                    }
                }
                k if is_keyword_shaped(k) => {
                    return Err(err(Sysexit::Config, unknown_keyword(k)));
                }
                k if k.len() >= 2 && k.starts_with('O') => {
                    // Deprecated one-letter form: `Odq`, `OQ/var/spool/x` (value may follow).
                    let mut chars = k.strip_prefix('O').unwrap_or(k).chars();
                    let letter = chars.next().unwrap_or(' ');
                    let mut v = chars.as_str().to_string();
                    if let Some(rest) = value {
                        v.push_str(rest);
                    }
                    let Some(def) = options::lookup_letter(letter) else {
                        return Err(err(
                            Sysexit::Config,
                            format!("unknown option letter {letter} in {k}"),
                        ));
                    };
                    if sticky.contains(&options::given_key(def, None)) && !options::adds_up(def) {
                        continue;
                    }
                    self.settings
                        .apply(def, None, &v)
                        .map_err(|e| value_error(def, &v, e, &err))?;
                    let key = options::given_key(def, None);
                    self.settings.note_spelled(&key, &format!("O{letter}"));
                    if options::one_line_each(&key) {
                        self.each
                            .push((key.clone(), v.clone(), format!("{name}: line {lineno}")));
                    }
                    self.origin
                        .insert(format!("O {key}"), format!("{name}: line {lineno}"));
                }
                k => return Err(err(Sysexit::Config, unknown_keyword(k))),
            }
        }
        if let Some(lineno) = null_client_line
            && self.smarthost.is_empty()
        {
            return Err(Fatal::new(
                Sysexit::Config,
                format!("{name}: line {lineno}: NULLCLIENT requires SMARTHOST"),
            ));
        }
        Ok(())
    }

    /// Whether a NULLCLIENT sends everything, local names included, to the smarthost.
    pub fn all_to_smarthost(&self) -> bool {
        self.null_client && !self.smarthost.is_empty()
    }

    /// This host's mail name: MAILNAME (a name, or the first line of the file it names),
    /// else the bare host name, checked when the config was read
    /// ([`Config::resolve_mail_name`]). Every user of the name (EHLO, the envelope
    /// sender, the added header fields, qualifying, reports) reads it here. Never a
    /// DNS query (deferred mode depends on it).
    pub fn host_name(&self) -> String {
        if self.mail_name.is_empty() {
            return system_host_name();
        }
        self.mail_name.clone()
    }

    /// The file log lines go to: MAILLOG's, but none for `MAILLOG /dev/null`, what
    /// sendmail and Postfix admins write for "no log file": lines then go where they go
    /// without MAILLOG (syslog), and nothing warns of a device.
    pub fn maillog_file(&self) -> Option<&Path> {
        self.maillog
            .as_deref()
            .filter(|p| *p != Path::new(MAILLOG_OFF))
    }

    /// `file: line N: ` where `keyword` was set in the config, or nothing.
    pub fn where_set(&self, keyword: &str) -> String {
        self.origin
            .get(keyword)
            .map(|o| format!("{o}: "))
            .unwrap_or_default()
    }

    /// Settle the mail name once, after the config is read, so that a name delivery
    /// would send is refused now (EX_CONFIG) instead: the file MAILNAME names must be
    /// readable and hold a domain ([`check_domain`]) on its first line; without
    /// MAILNAME, the host name must be one. (A MAILNAME name was checked on its line.)
    pub fn resolve_mail_name(&mut self) -> Result<(), Fatal> {
        let refuse = |msg: String| Err(Fatal::new(Sysexit::Config, msg));
        match &self.mailname {
            Some(path) if path.starts_with('/') => {
                let text = match crate::boundedfile::read_regular(
                    Path::new(path),
                    false,
                    crate::boundedfile::MAX_FILE,
                ) {
                    Ok((t, md)) => {
                        // Only the first line is read.
                        let first = t.split(|&b| b == b'\n').next().unwrap_or_default();
                        fault(first, path)?;
                        (String::from_utf8_lossy(&t).into_owned(), md)
                    }
                    Err(e) => {
                        // Names its config line, as the other files' refusals do
                        // (`Config::check_files`).
                        let at = self.where_set("MAILNAME");
                        return refuse(format!("{at}cannot open MAILNAME {path}: {}", e.text()));
                    }
                };
                let (text, md) = text;
                let first = text.lines().next().unwrap_or("").trim();
                if first.is_empty() {
                    return refuse(format!("MAILNAME {path}: no mail name on its first line"));
                }
                match ascii_mail_name(first) {
                    Ok(a) => self.mail_name = a,
                    // Its text is quoted only from a file everyone may read: never a
                    // line of a file named by mistake (`/etc/shadow`) into an error a
                    // log or a report shows.
                    Err(_) if !crate::text::readable_by_all(&md) => {
                        return refuse(format!(
                            "{path}: line 1: not a valid mail name ({})",
                            crate::text::NOT_QUOTED
                        ));
                    }
                    Err(why) => {
                        return refuse(format!(
                            "{path}: line 1: invalid mail name {}: {why}",
                            crate::text::argument_shown(first)
                        ));
                    }
                }
            }
            Some(_) => {}
            None => {
                let host = system_host_name();
                if let Err(why) = check_domain(&host) {
                    return refuse(format!(
                        "the host name {} is not a valid mail name ({why}); set MAILNAME",
                        crate::text::argument_shown(&host)
                    ));
                }
                self.mail_name = host;
            }
        }
        Ok(())
    }
}

/// MASQUERADE's `[user@][host]`: a user that is a valid local part (`user@host` a valid
/// mailbox, [`check_mailbox`]) and a host that is a domain ([`check_domain`]; one with
/// U-labels is taken as its A-labels, [`ascii_mail_name`]), at least one of them. The
/// value as it is used (the host's A-labels); `Err` says why not.
fn check_masquerade(v: &str) -> Result<String, String> {
    let (user, host) = match v.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, v),
    };
    // A user with letters beyond ASCII has no A-label form: every message would need
    // SMTPUTF8 of the next server, and one without it would return them all.
    if let Some(c) = user.and_then(|u| u.chars().find(|c| !c.is_ascii())) {
        return Err(format!(
            "{} in the user is not ASCII: every server would have to offer SMTPUTF8",
            crate::text::named_char(c)
        ));
    }
    if !host.is_ascii() && !host.contains('@') {
        let a = ascii_mail_name(host)?;
        let ascii = match user {
            Some(u) => format!("{u}@{a}"),
            None => a,
        };
        check_masquerade_ascii(&ascii)?;
        return Ok(ascii);
    }
    check_masquerade_ascii(v).map(|()| v.to_string())
}

/// [`check_masquerade`] of a value whose host has no U-labels.
fn check_masquerade_ascii(v: &str) -> Result<(), String> {
    let mailbox = |m: &str| check_mailbox(m).map_err(|e| e.text());
    if let Some(c) = v
        .chars()
        .find(|c| matches!(c, '<' | '>' | '"') || c.is_whitespace())
    {
        return Err(format!("{} is not allowed", crate::text::named_char(c)));
    }
    match v.split_once('@') {
        None => check_domain(v),
        Some(("", "")) => Err("neither a user nor a host".into()),
        Some(("", host)) => check_domain(host),
        Some((_, "")) => mailbox(v.strip_suffix('@').unwrap_or(v)),
        // A second `@` is the mailbox's fault (`Invalid route address`); otherwise the
        // domain's reason says more than the mailbox's.
        Some((_, host)) if host.contains('@') => mailbox(v),
        Some((_, host)) => {
            check_domain(host)?;
            mailbox(v)
        }
    }
}

/// A bad option value on a config line (`err` adds the file and line): a configuration
/// error (EX_CONFIG), except a bad delivery mode, which keeps sendmail's EX_USAGE for
/// the programs (`rsendmail-admin config` and `check` say EX_CONFIG) and names the whole
/// value it was given, not its first character alone as the command line's does.
fn value_error(
    def: &OptDef,
    value: &str,
    e: Fatal,
    err: &dyn Fn(Sysexit, String) -> Fatal,
) -> Fatal {
    if def.name == "DeliveryMode" {
        err(
            e.code,
            format!(
                "Unknown delivery mode {} (the mode is b, i, q or d)",
                value.trim()
            ),
        )
    } else {
        err(Sysexit::Config, e.message)
    }
}

impl Config {
    /// Check the files delivery will need, as this process may read them: RELAYTABLE
    /// (read and parsed), AUTHPATH (present, not readable by others, parsed), CERTFILE and
    /// `O CACertFile=` (present, and PEM text of the form the deliverer's TLS code reads:
    /// [`check_pem`]). Called before a message is read and before a queue run
    /// or the SMTP server starts, so that nothing is accepted that delivery would then
    /// refuse. A set-gid `rsendmail` reads them with its group only when the config is
    /// the system's (the unsafe options `-C`, `-O CACertFile=` cost it the group first).
    ///
    /// One file may exist and still be out of reach for a caller who is not root: an
    /// AUTHPATH, CERTFILE or CA file the administrator made readable by root alone. That
    /// is not refused: the root queue runner reads it, and this caller's own deliverer
    /// defers with the reason.
    pub fn check_files(&self, settings: &Settings) -> Result<(), Fatal> {
        use crate::boundedfile::{MAX_FILE, ReadError, check_regular, read_regular};
        // Each file is read once, as the one reader would read it. All are looked at
        // first: a FIFO, a device, a directory or a file over 1 MiB is refused here with
        // its reason and config line, never read (`/dev/zero`) or waited on (a FIFO).
        // Errors of the system (missing, not readable) are told below, file by file.
        let alias_file = settings.alias_file.as_ref().unwrap_or(&self.aliases);
        // Where the config names the file (`test.conf: line 3: `): a keyword, or an `O`
        // option's line.
        let at = |what: &str| {
            let keyword = self.where_set(what);
            if keyword.is_empty() {
                self.where_set(&format!("O {what}"))
            } else {
                keyword
            }
        };
        // Where the value in force was set and how it was named, as written: the aliases
        // file and the CA file may come from the command line (`-O AliasFile=`), which
        // then overrides the file's line, and is named instead of it.
        let named = |what: &str| match what {
            "ALIASES" => self.file_named(settings, what),
            "CACertFile" => (self.file_named(settings, what).0, format!("{what} ")),
            _ => (at(what), format!("{what} ")),
        };
        // A file of addresses that is a credentials file: its lines would be shown in
        // reasons and `-bv` as aliases or relays.
        let secrets = self.secret_files();
        for (what, path) in [
            ("ALIASES", Some(alias_file)),
            ("RELAYTABLE", self.relay_table.as_ref()),
        ] {
            let Some(p) = path else { continue };
            if let Some(why) = crate::spool::safety::secret_file(p, &secrets) {
                let (at, named) = named(what);
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!(
                        "{at}{named}{} is refused: {why}, which holds credentials and is \
                         never read as {}",
                        p.display(),
                        if what == "ALIASES" {
                            "aliases"
                        } else {
                            "a relay table"
                        },
                    ),
                ));
            }
        }
        // The system's password, shadow and group files, a device, the kernel's: never
        // credentials nor a certificate. Refused from their names, the same for root,
        // who could read them, and for a user's set-gid submission, which cannot (it
        // used to skip them, leaving the refusal to the root queue runner).
        for (what, path) in [
            ("AUTHPATH", self.auth_path.as_ref()),
            ("CERTFILE", self.cert_file.as_ref()),
        ] {
            let Some(p) = path else { continue };
            if let Some(it) = crate::spool::safety::system_path(p) {
                let it = if it.is_empty() { "a device" } else { it };
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!(
                        "{}{what} {} is {it}, not a file of {}; correct the line",
                        at(what),
                        p.display(),
                        if what == "AUTHPATH" {
                            "credentials"
                        } else {
                            "a certificate"
                        }
                    ),
                ));
            }
        }
        let mut read = Vec::new();
        for (what, path) in [
            ("RELAYTABLE", self.relay_table.as_ref()),
            ("AUTHPATH", self.auth_path.as_ref()),
            ("CERTFILE", self.cert_file.as_ref()),
            ("CACertFile", settings.ca_cert_file.as_ref()),
            ("ALIASES", Some(alias_file)),
        ] {
            let Some(p) = path else { continue };
            // The aliases file is only looked at, never read: a submission with no local
            // recipient does not need it, and delivery reads it (one `stat`, where
            // reading it whole cost a submission up to 1 MiB).
            let refused = |e: ReadError| {
                let (at, named) = named(what);
                Fatal::new(
                    Sysexit::Config,
                    format!("{at}cannot open {named}{}: {}", p.display(), e.text()),
                )
            };
            if what == "ALIASES" {
                match check_regular(p, false, MAX_FILE) {
                    Ok(_) | Err(ReadError::Io(_)) => continue,
                    Err(e) => return Err(refused(e)),
                }
            }
            match read_regular(p, false, MAX_FILE) {
                Ok(got) => read.push((what, p, Ok(got))),
                Err(ReadError::Io(e)) => read.push((what, p, Err(e))),
                Err(e) => return Err(refused(e)),
            }
        }
        let out_of_reach = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::PermissionDenied && !crate::privs::is_root()
        };
        for (what, p, got) in read {
            match (what, got) {
                ("RELAYTABLE", got) => {
                    let quoted = got
                        .as_ref()
                        .is_ok_and(|(_, md)| crate::text::readable_by_all(md));
                    let text = got.map_err(ReadError::Io).and_then(|(t, _)| utf8(t));
                    relay_table_of(p, &at(what), text, self.port.unwrap_or(25), quoted)?;
                }
                ("AUTHPATH", Err(e)) if out_of_reach(&e) => {}
                ("AUTHPATH", Err(e)) => {
                    return Err(cannot_read_auth(p, &at(what), ReadError::Io(e)));
                }
                ("AUTHPATH", Ok((t, md))) => {
                    auth_of(p, &at(what), &md, utf8(t))?;
                }
                (_, Err(e)) if out_of_reach(&e) => {}
                (_, Err(e)) => {
                    let (at, named) = named(what);
                    return Err(Fatal::new(
                        Sysexit::Config,
                        format!("{at}cannot open {named}{}: {}", p.display(), io_text(&e)),
                    ));
                }
                (_, Ok((t, _))) => {
                    fault(&t, &p.display().to_string())?;
                    check_pem(what, &t).map_err(|why| {
                        let (at, named) = named(what);
                        Fatal::new(
                            Sysexit::Config,
                            format!("{at}{named}{}: {why}", p.display()),
                        )
                    })?
                }
            }
        }
        Ok(())
    }
}

/// [`UntrustedFile::what`] of the configuration file itself (no keyword).
pub const CONFIG_FILE: &str = "CONFIG";

/// A file the configuration names that someone root does not trust could change
/// ([`Config::untrusted_files`]).
#[derive(Debug)]
pub struct UntrustedFile {
    /// Its keyword or option (`ALIASES`, `CACertFile`), or `CONFIG` for the configuration
    /// file itself.
    pub what: &'static str,
    /// Where the configuration names it (`FILE: line N: `, `the command line: `), or
    /// empty.
    pub at: String,
    /// How it was named, as written, before its path: `ALIASES `, `O AliasFile=`, `-oA`.
    pub named: String,
    /// The file as named.
    pub path: PathBuf,
    /// What on its path could be changed, and by whom, in the order met.
    pub risks: Vec<crate::spool::safety::FileRisk>,
}

impl UntrustedFile {
    /// The refusal: `FILE: line N: ALIASES /path is refused: the directory ... is
    /// owned by bob, ...: whoever can change it chooses ...`.
    pub fn problem(&self) -> String {
        let what = self
            .risks
            .iter()
            .map(|r| r.text())
            .collect::<Vec<_>>()
            .join("; ");
        let owner = if crate::spool::safety::privileged_process() {
            "root's alone"
        } else {
            "root's or this user's alone"
        };
        format!(
            "{}{}{} is refused: {what}: whoever can change it, or a directory or link on \
             its path, {}, so it and every directory above it must be {owner}",
            self.at,
            self.named,
            self.path.display(),
            match self.what {
                "ALIASES" => "chooses where local mail goes and which commands run for it",
                "RELAYTABLE" => "chooses the servers mail is sent to",
                "AUTHPATH" => "chooses the credentials given to a server",
                "CERTFILE" => "chooses the certificate and key shown to servers",
                "CACertFile" => "chooses which servers are believed",
                "MAILNAME" => "chooses which addresses are local",
                CONFIG_FILE => {
                    "chooses where mail goes, the credentials given to servers and the files \
                     read and written for it"
                }
                "MAILSPOOL" => {
                    "chooses the files root writes users' mail to (only a sticky spool, or \
                     one group mail may write, is allowed others' writes)"
                }
                _ if crate::spool::safety::root_process() => {
                    "chooses what root writes to and where"
                }
                _ => "chooses what the programs write to and where",
            }
        )
    }
}

impl Config {
    /// Where the file `what` names was set and how it was named, as written: (`FILE:
    /// line N: ` or `the command line: `, `ALIASES `, `O AliasFile=`, `-oA`): the text
    /// before its path. The aliases file is the `AliasFile` option's when one is given
    /// (`O AliasFile=`, `OA`, `-oA`, `-O AliasFile=`), else ALIASES'.
    pub fn file_named(&self, settings: &Settings, what: &str) -> (String, String) {
        let option = match what {
            "ALIASES" if settings.alias_file.is_some() => Some("AliasFile"),
            "CACertFile" | "PidFile" | "AliasFile" => Some(what),
            _ => None,
        };
        let Some(key) = option else {
            return (self.where_set(what), format!("{what} "));
        };
        let at = self.where_set(&format!("O {key}"));
        let how = settings
            .spelling(key)
            .map(str::to_string)
            .unwrap_or_else(|| format!("O {key}="));
        if at.is_empty() && settings.spelling(key).is_some() {
            ("the command line: ".to_string(), how)
        } else {
            (at, how)
        }
    }

    /// Where the value in force of `what` (a keyword, or `ALIASES` for the aliases file
    /// however named, `CACertFile`, `PidFile`) was set, as every message names it:
    /// `FILE: line N`, `the command line (-O AliasFile=)`, or empty for a built-in
    /// value ([`Config::file_named`]).
    pub fn set_at(&self, settings: &Settings, what: &str) -> String {
        let (at, named) = self.file_named(settings, what);
        if at == "the command line: " {
            format!("the command line ({})", named.trim_end())
        } else {
            at.trim_end_matches(": ").to_string()
        }
    }

    /// The configuration file itself (`CONFIG`, when one was read) and the files it
    /// names that a process reads for routing or
    /// credentials, or writes, each with what on its path someone the process does not
    /// trust could change ([`crate::spool::safety::file_risks`]: a root process trusts
    /// root alone): ALIASES (or `O AliasFile=`), RELAYTABLE, AUTHPATH, CERTFILE,
    /// `O CACertFile=`, a MAILNAME file, MAILLOG (writable by `spool_group`, the shared
    /// spool's group, or root's, as the programs make it) and `O PidFile=`. Only those with a risk.
    pub fn untrusted_files(
        &self,
        settings: &Settings,
        spool_group: Option<u32>,
    ) -> Vec<UntrustedFile> {
        self.untrusted_files_among(settings, spool_group, |_| true)
    }

    /// [`Config::untrusted_files`] of the kinds `wanted` takes (by their keyword:
    /// `CONFIG`, `ALIASES`, ..., `MAILSPOOL`); the paths of the others are not walked.
    fn untrusted_files_among(
        &self,
        settings: &Settings,
        spool_group: Option<u32>,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<UntrustedFile> {
        let alias_file = settings.alias_file.as_ref().unwrap_or(&self.aliases);
        let mailname = self
            .mailname
            .as_deref()
            .filter(|m| m.starts_with('/'))
            .map(PathBuf::from);
        // MAILLOG is made 0660 with the shared spool's group, else the process's.
        let log_groups: Vec<u32> = spool_group.into_iter().chain([0]).collect();
        let mut out = Vec::new();
        // The configuration file itself chooses all of them, and where mail goes: held
        // to the same rule.
        if let Some(p) = self.file.as_ref().filter(|_| wanted("CONFIG")) {
            let risks = crate::spool::safety::file_risks_trusting(p, &[], spool_group);
            if !risks.is_empty() {
                out.push(UntrustedFile {
                    what: "CONFIG",
                    at: String::new(),
                    named: "the configuration file ".to_string(),
                    path: p.clone(),
                    risks,
                });
            }
        }
        for (what, path, groups) in [
            ("ALIASES", Some(alias_file), &[][..]),
            ("RELAYTABLE", self.relay_table.as_ref(), &[]),
            ("AUTHPATH", self.auth_path.as_ref(), &[]),
            ("CERTFILE", self.cert_file.as_ref(), &[]),
            ("CACertFile", settings.ca_cert_file.as_ref(), &[]),
            ("MAILNAME", mailname.as_ref(), &[]),
            (
                "MAILLOG",
                self.maillog
                    .as_ref()
                    .filter(|_| self.maillog_file().is_some()),
                &log_groups,
            ),
            ("PidFile", settings.pid_file.as_ref(), &[]),
        ] {
            let Some(p) = path.filter(|_| wanted(what)) else {
                continue;
            };
            let risks = crate::spool::safety::file_risks_trusting(p, groups, spool_group);
            if risks.is_empty() {
                continue;
            }
            let (at, named) = self.file_named(settings, what);
            out.push(UntrustedFile {
                what,
                at,
                named,
                path: p.clone(),
                risks,
            });
        }
        // The mail spool, where root makes and writes users' mailboxes: a root process
        // holds it to the rule too ([`crate::spool::safety::mail_spool_risks`]); any
        // other writes there only its own user's mailbox.
        if wanted("MAILSPOOL") && crate::spool::safety::root_process() {
            let risks = crate::spool::safety::mail_spool_risks(&self.mail_spool);
            if !risks.is_empty() {
                let (at, named) = self.file_named(settings, "MAILSPOOL");
                out.push(UntrustedFile {
                    what: "MAILSPOOL",
                    at,
                    named,
                    path: self.mail_spool.clone(),
                    risks,
                });
            }
        }
        out
    }

    /// The files the configuration names that hold credentials, with what each is:
    /// AUTHPATH and CERTFILE (which holds the private key).
    pub fn secret_files(&self) -> Vec<(String, PathBuf)> {
        [
            ("the credentials file (AUTHPATH)", self.auth_path.as_ref()),
            (
                "the certificate and key file (CERTFILE)",
                self.cert_file.as_ref(),
            ),
        ]
        .into_iter()
        .filter_map(|(w, p)| Some((w.to_string(), p?.clone())))
        .collect()
    }

    /// The first file [`Config::untrusted_files`] names, refused (EX_CONFIG) with who
    /// could change it; run before anything is read for delivery or written. MAILLOG is
    /// not among them: the log writer never opens an unsafe one
    /// ([`crate::log::open_log_file_for`]) and says so, logging to syslog instead, so an
    /// unsafe log file (Ubuntu's `/var/log` is group-writable) stops no mail, and its
    /// path is not walked here a second time.
    pub fn check_trust(&self, settings: &Settings, spool_group: Option<u32>) -> Result<(), Fatal> {
        self.refuse_untrusted(settings, spool_group, |what| what != "MAILLOG")
    }

    /// [`Config::check_trust`] for the configuration file alone: for what reads no file
    /// it names but acts on the spool it chooses (`rsendmail-admin`'s queue commands).
    pub fn check_config_trust(
        &self,
        settings: &Settings,
        spool_group: Option<u32>,
    ) -> Result<(), Fatal> {
        self.refuse_untrusted(settings, spool_group, |what| what == "CONFIG")
    }

    /// The first of [`Config::untrusted_files`] of the kinds `which` takes, refused
    /// (EX_CONFIG).
    fn refuse_untrusted(
        &self,
        settings: &Settings,
        spool_group: Option<u32>,
        which: impl Fn(&str) -> bool,
    ) -> Result<(), Fatal> {
        match self
            .untrusted_files_among(settings, spool_group, which)
            .first()
        {
            Some(u) => Err(Fatal::new(
                Sysexit::Config,
                format!(
                    "{} (`{}` says how)",
                    u.problem(),
                    crate::spool::safety::admin_command("check")
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The PEM text `what` (CERTFILE or CACertFile) must be, as the deliverer's TLS code
/// reads it (`rsendmail` links no TLS library, so the text and the DER framing are what
/// is checked here): for CACertFile, at least one certificate block; for CERTFILE, the
/// certificate, its chain and one unencrypted private key in any order
/// ([`identity_parts`]). Every certificate and key block must be base64 of one whole DER
/// structure. `Err` says what is wrong, with the line where there is one.
pub fn check_pem(what: &str, text: &[u8]) -> Result<(), String> {
    if what == "CERTFILE" {
        return identity_parts(text).map(|_| ());
    }
    let blocks = pem_blocks(text)?;
    certificates(&blocks)?;
    Ok(())
}

/// The labels of the private key blocks the deliverer reads: PKCS#8 (RFC 5208), PKCS#1
/// RSA (RFC 8017 appendix A.1.2) and SEC1 EC (RFC 5915), as `openssl` writes them.
const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// A CERTFILE's parts ([`identity_parts`]): its certificates as PEM blocks in file order
/// and its private key's PEM block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityParts {
    pub certificates: Vec<String>,
    pub key: String,
}

/// Split a CERTFILE into its certificates and its one private key, in whatever order
/// the file has them: certificate then key, key then certificate, a chain before or after
/// the key. Text outside the blocks (`openssl pkcs12`'s `Bag Attributes`, comments) is
/// ignored, and so are blocks of other kinds, except `EC PARAMETERS` (which `openssl
/// ecparam -genkey` writes before the key). Refused, with the reason and line: no
/// certificate, no key, a second key, an encrypted key (`ENCRYPTED PRIVATE KEY` or a
/// `Proc-Type: 4,ENCRYPTED` header: no one is there to give its pass phrase), a key form
/// other than [`KEY_LABELS`] (DSA, OpenSSH), a block that is not base64 of one whole DER
/// structure, a BEGIN line without its END.
pub fn identity_parts(text: &[u8]) -> Result<IdentityParts, String> {
    let blocks = pem_blocks(text)?;
    let certificates = certificates(&blocks)?;
    let mut key: Option<&PemBlock> = None;
    for b in &blocks {
        let is_key = KEY_LABELS.contains(&b.label.as_str());
        if b.label == "ENCRYPTED PRIVATE KEY" || (is_key && b.encrypted) {
            return Err(format!(
                "line {}: the private key is encrypted, and no one is there to give its pass \
                 phrase (write it without one: openssl pkey -in FILE -out NEWFILE)",
                b.line
            ));
        }
        if !is_key && b.label.ends_with("PRIVATE KEY") {
            return Err(format!(
                "line {}: a {} block, a key form rsendmail does not read (PRIVATE KEY, RSA \
                 PRIVATE KEY or EC PRIVATE KEY; openssl pkey -in FILE converts it)",
                b.line, b.label
            ));
        }
        if !is_key {
            continue;
        }
        if key.is_some() {
            return Err(format!(
                "line {}: a second private key (one key and its certificate chain per file)",
                b.line
            ));
        }
        if !b.whole_der {
            return Err(format!(
                "line {}: the {} block is not base64 of one whole DER structure",
                b.line, b.label
            ));
        }
        key = Some(b);
    }
    let Some(key) = key else {
        return Err(
            "no private key in it (-----BEGIN PRIVATE KEY-----, or RSA PRIVATE KEY \
                    or EC PRIVATE KEY)"
                .into(),
        );
    };
    // The key's public half against the certificates', where the DER says both (RSA, and
    // EC keys that carry their public point; a certificate of another algorithm, such as
    // Ed25519, is never an RSA or EC key's): a key of another certificate is refused
    // here; anything this reading cannot tell is left to the TLS library at delivery.
    let key_public = private_key_public(&key.label, &key.der);
    let cert_publics: Option<Vec<PublicKey>> = blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| certificate_public(&b.der))
        .collect();
    if let (Some(k), Some(certs)) = (key_public, cert_publics)
        && !certs.contains(&k)
    {
        return Err(format!(
            "line {}: the private key belongs to none of its certificates",
            key.line
        ));
    }
    Ok(IdentityParts {
        certificates,
        key: key.text.clone(),
    })
}

/// A public key as DER states it, for comparing a private key with certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PublicKey {
    /// RSA's modulus and public exponent (DER INTEGER contents, minimal).
    Rsa(Vec<u8>, Vec<u8>),
    /// An EC public point in uncompressed form (`04 || X || Y`).
    Ec(Vec<u8>),
    /// A certificate's key of another algorithm (Ed25519, Ed448, DSA): no RSA or EC
    /// key is its key.
    Other,
}

/// One DER TLV (X.690 §8.1): its tag, its contents and what follows it.
fn der_tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = d.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        (
            len_bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// The contents of a TLV with tag `want` at the start of `d`, and what follows.
fn der_take(d: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    der_tlv(d).and_then(|(t, c, r)| (t == want).then_some((c, r)))
}

/// rsaEncryption (1.2.840.113549.1.1.1) and id-ecPublicKey (1.2.840.10045.2.1), as DER
/// OBJECT IDENTIFIER contents.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// RSAPublicKey's or RSAPrivateKey's modulus and exponent (RFC 8017 A.1): `skip_version`
/// for the private form.
fn rsa_public(d: &[u8], skip_version: bool) -> Option<PublicKey> {
    let (mut seq, _) = der_take(d, 0x30)?;
    if skip_version {
        seq = der_take(seq, 0x02)?.1;
    }
    let (n, rest) = der_take(seq, 0x02)?;
    let (e, _) = der_take(rest, 0x02)?;
    Some(PublicKey::Rsa(n.to_vec(), e.to_vec()))
}

/// An uncompressed EC point from a BIT STRING's contents (no unused bits).
fn ec_point(bits: &[u8]) -> Option<PublicKey> {
    match bits {
        [0, point @ ..] if point.first() == Some(&4) => Some(PublicKey::Ec(point.to_vec())),
        _ => None,
    }
}

/// The public key of an X.509 certificate (RFC 5280 §4.1): `None` when it is not one
/// this reading knows.
fn certificate_public(der: &[u8]) -> Option<PublicKey> {
    let (cert, _) = der_take(der, 0x30)?;
    let (tbs, _) = der_take(cert, 0x30)?;
    let mut r = tbs;
    if let Some((0xa0, _, rest)) = der_tlv(r) {
        r = rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        r = der_tlv(r)?.2;
    }
    let (spki, _) = der_take(r, 0x30)?;
    let (alg, rest) = der_take(spki, 0x30)?;
    let (oid, _) = der_take(alg, 0x06)?;
    let (bits, _) = der_take(rest, 0x03)?;
    match oid {
        OID_RSA => rsa_public(bits.get(1..)?, false),
        OID_EC => ec_point(bits),
        _ => Some(PublicKey::Other),
    }
}

/// SEC1's ECPrivateKey (RFC 5915 §3): its public point, when it carries one.
fn sec1_public(der: &[u8]) -> Option<PublicKey> {
    let (seq, _) = der_take(der, 0x30)?;
    let (_, rest) = der_take(seq, 0x02)?;
    let (_, mut rest) = der_take(rest, 0x04)?;
    while let Some((tag, contents, next)) = der_tlv(rest) {
        if tag == 0xa1 {
            return ec_point(der_take(contents, 0x03)?.0);
        }
        rest = next;
    }
    None
}

/// The public half of a private key block, `None` when this reading cannot tell it.
fn private_key_public(label: &str, der: &[u8]) -> Option<PublicKey> {
    match label {
        "RSA PRIVATE KEY" => rsa_public(der, true),
        "EC PRIVATE KEY" => sec1_public(der),
        "PRIVATE KEY" => {
            // PKCS#8 (RFC 5208 §5): version, algorithm, the key in an OCTET STRING.
            let (seq, _) = der_take(der, 0x30)?;
            let (_, rest) = der_take(seq, 0x02)?;
            let (alg, rest) = der_take(rest, 0x30)?;
            let (oid, _) = der_take(alg, 0x06)?;
            let (inner, _) = der_take(rest, 0x04)?;
            match oid {
                OID_RSA => rsa_public(inner, true),
                OID_EC => sec1_public(inner),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The certificate blocks of `blocks`, each checked; at least one.
fn certificates(blocks: &[PemBlock]) -> Result<Vec<String>, String> {
    const CERT: &str = "CERTIFICATE";
    let mut out = Vec::new();
    for b in blocks.iter().filter(|b| b.label == CERT) {
        if !b.whole_der {
            return Err(format!(
                "line {}: the {CERT} block is not base64 of one whole DER structure",
                b.line
            ));
        }
        out.push(b.text.clone());
    }
    if out.is_empty() {
        return Err(format!("no certificate in it (-----BEGIN {CERT}-----)"));
    }
    Ok(out)
}

/// One PEM block (RFC 7468; RFC 1421 headers allowed).
#[derive(Clone, Debug)]
struct PemBlock {
    label: String,
    /// The line of its BEGIN line, from 1.
    line: usize,
    /// It has a `Proc-Type: 4,ENCRYPTED` header (an encrypted traditional key).
    encrypted: bool,
    /// Its base64 decodes to one DER structure (a SEQUENCE) filling it exactly.
    whole_der: bool,
    /// What its base64 decodes to (empty when it is not base64).
    der: Vec<u8>,
    /// The block, BEGIN to END, with LF line ends.
    text: String,
}

/// The PEM blocks of `text`, in order. A BEGIN line without its END (another BEGIN comes
/// first, or the text ends) is an error.
fn pem_blocks(text: &[u8]) -> Result<Vec<PemBlock>, String> {
    let text = String::from_utf8_lossy(text);
    let mut blocks = Vec::new();
    let mut open: Option<(PemBlock, String)> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        let begin = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"));
        match (&mut open, begin) {
            (None, Some(label)) => {
                let block = PemBlock {
                    label: label.to_string(),
                    line: i + 1,
                    encrypted: false,
                    whole_der: false,
                    der: Vec::new(),
                    text: format!("{line}\n"),
                };
                open = Some((block, String::new()));
            }
            (None, None) => {}
            (Some((b, _)), Some(_)) => {
                return Err(format!(
                    "line {}: -----BEGIN {}----- has no END line",
                    b.line, b.label
                ));
            }
            (Some((b, body)), None) => {
                b.text.push_str(line);
                b.text.push('\n');
                if line == format!("-----END {}-----", b.label) {
                    if let Some((mut b, body)) = open.take() {
                        b.der = crate::base64::decode_strict(&body).unwrap_or_default();
                        b.whole_der = whole_der(&b.der);
                        blocks.push(b);
                    }
                } else if let Some((name, value)) = line.split_once(':') {
                    // RFC 1421 headers (Proc-Type, DEK-Info).
                    if name.trim().eq_ignore_ascii_case("Proc-Type") && value.contains("ENCRYPTED")
                    {
                        b.encrypted = true;
                    }
                } else {
                    body.push_str(line.trim());
                }
            }
        }
    }
    if let Some((b, _)) = open {
        return Err(format!(
            "line {}: -----BEGIN {}----- has no END line",
            b.line, b.label
        ));
    }
    Ok(blocks)
}

/// Whether `der` is one DER SEQUENCE (X.690 §8.1: tag 0x30, a definite length in short
/// or long form) that fills it exactly.
fn whole_der(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, rest) = if *first < 0x80 {
        (*first as usize, rest)
    } else {
        let n = (*first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return false;
        }
        let (len_bytes, rest) = rest.split_at(n);
        (
            len_bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            rest,
        )
    };
    len == rest.len()
}

/// gethostname(2), no DNS.
pub fn system_host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// An io::Error's text without Rust's " (os error N)" suffix, as strerror prints it.
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.split_once(" (os error") {
        Some((text, _)) => text.to_string(),
        None => s,
    }
}

/// The lines of `text` (numbered from 1) that are not UTF-8 before their comment, each
/// with its first octet that is not: a path or a value read from it would change (each
/// such octet read as U+FFFD). A comment (a whole line, or the rest of one from its
/// `#`, as [`strip_cf_comment`] ends a line) may hold any octets: an old ISO 8859-1 note
/// changes nothing.
pub fn non_utf8_lines(text: &[u8]) -> Vec<(usize, u8)> {
    if std::str::from_utf8(text).is_ok() {
        return Vec::new();
    }
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let end = if line.first() == Some(&b'#') {
                0
            } else {
                comment_start(line).unwrap_or(line.len())
            };
            let value = line.get(..end).unwrap_or(line);
            match std::str::from_utf8(value) {
                Ok(_) => None,
                Err(e) => value.get(e.valid_up_to()).map(|&b| (i + 1, b)),
            }
        })
        .collect()
}

/// The first of [`non_utf8_lines`].
fn non_utf8_line(text: &[u8]) -> Option<(usize, u8)> {
    non_utf8_lines(text).into_iter().next()
}

/// The refusal of line `line` of configuration file `name` that is not UTF-8 at `octet`
/// ([`non_utf8_lines`]): the same words from every program and from `check`.
pub fn non_utf8_message(name: &str, line: usize, octet: u8) -> String {
    format!(
        "{name}: line {line}: not UTF-8 text (the octet \\{octet:03o}): a value read from \
         it would not be the one written; save the file as UTF-8"
    )
}

/// A sendmail.cf line without its trailing comment, as sendmail 8.17 reads one (readcf.c,
/// configuration level 3 and later): a `#` after the line's start ends it, with the blanks
/// before it (`O MaxHopCount=7   # note` → `O MaxHopCount=7`, `O MaxHopCount=8#x` →
/// `O MaxHopCount=8`); `\#` is a `#` of the value (the backslash dropped), and `$#` stays
/// as written.
pub fn strip_cf_comment(line: &str) -> String {
    match comment_start(line.as_bytes()) {
        // `#` is one octet: `end` is a character boundary.
        Some(end) => line
            .get(..end)
            .unwrap_or(line)
            .replace("\\#", "#")
            .trim_end()
            .to_string(),
        None => line.replace("\\#", "#"),
    }
}

/// Where the comment after a value begins in a configuration line ([`strip_cf_comment`],
/// [`non_utf8_lines`]): the first `#` after the line's first octet that follows neither
/// `\` (a `#` of the value) nor `$` (sendmail's `$#`). `None` when there is none.
fn comment_start(line: &[u8]) -> Option<usize> {
    (1..line.len())
        .find(|&j| line.get(j) == Some(&b'#') && !matches!(line.get(j - 1), Some(b'\\' | b'$')))
}

/// `UPPER_CASE` words are keywords; anything else starting with `O` may be an `O<letter>` line.
/// `unknown keyword K`, with the keyword of [`KEYWORDS`] it is a typo of, in any case,
/// when there is one (`STARTLS`: `(did you mean STARTTLS?)`; `smarthost`: SMARTHOST).
fn unknown_keyword(k: &str) -> String {
    let upper = k.to_ascii_uppercase();
    let close = KEYWORDS.iter().find(|w| {
        **w == upper || crate::admin::elsewhere::close_names(Path::new(w), Path::new(&upper))
    });
    match close {
        Some(w) => format!("unknown keyword {k} (did you mean {w}?)"),
        None => format!("unknown keyword {k}"),
    }
}

fn is_keyword_shaped(k: &str) -> bool {
    k.len() > 1
        && k.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A list of `host[:port]` separated by blanks or commas; `Err` names the first bad one
/// and why ([`check_host_port`]).
fn host_list(v: &str) -> Result<Vec<String>, (String, String)> {
    v.split([' ', '\t', ','])
        .filter(|h| !h.is_empty())
        .map(|h| match check_host_port(h) {
            Ok(_) => Ok(h.to_string()),
            Err(why) => Err((h.to_string(), why)),
        })
        .collect()
}

/// Split `host[:port]` / `[host]:port` / a bare IPv6 address ([`check_host_port`]);
/// `None` when it is not one.
pub fn parse_host_port(s: &str) -> Option<(String, Option<u16>)> {
    check_host_port(s).ok()
}

/// Split and check a host to connect to (SMARTHOST, RESOLVER, a relay of the relay
/// table): `host[:port]`, `[host][:port]` (a literal host: no MX lookup), or a bare IPv6
/// address. The host is an IP address or a name a resolver can look up
/// ([`check_host_name`]: `bad..host` is not one); the port is 1 to 65535, as for `PORT`.
/// Whatever is taken here the deliverer can connect to, or try to. `Err` says why not.
pub fn check_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let port_of = |p: &str| match p.parse::<u16>() {
        _ if p.is_empty() => Err("no port after ':'".to_string()),
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("port {p} is not a number from 1 to 65535")),
    };
    let host_ok = |h: &str| -> Result<(), String> {
        if h.is_empty() {
            return Err("no host".into());
        }
        if h.parse::<std::net::IpAddr>().is_ok() {
            return Ok(());
        }
        check_host_name(h)
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("no ']' after '['".into());
        };
        let port = match after.strip_prefix(':') {
            Some(p) => Some(port_of(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("{after} after ']'")),
        };
        host_ok(host)?;
        Ok((format!("[{host}]"), port))
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address, without a port.
        s.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "not an IPv6 address (with a port: [address]:port)".to_string())?;
        Ok((s.to_string(), None))
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(port_of(p)?)),
            None => (s, None),
        };
        host_ok(host)?;
        Ok((host.to_string(), port))
    }
}

/// A domain as every configured domain list compares it (`RelayDomains`,
/// `FastFlushDomains`, `RELAYTABLE`): lower case (RFC 5321 §2.4: domain names are
/// case-insensitive), without the one trailing dot of an absolute name
/// (`Relay.Example.` is `relay.example`, RFC 1034 §3.1), U-labels as A-labels
/// (`bücher.example` is `xn--bcher-kva.example`): [`crate::message::address::domain_key`].
pub fn domain_key(d: &str) -> String {
    crate::message::address::domain_key(d)
}

/// Whether `domain` is `entry` or one of its subdomains, compared as [`domain_key`]s:
/// `relay.example` covers `relay.example`, `Sub.Relay.Example.` and `a.b.relay.example`,
/// never `notrelay.example`. sendmail's relay-domains (class R) cover the subdomains of
/// what they list (cf/README, `relay_hosts_only` for the other way), as Postfix's
/// `relay_domains` and `fast_flush_domains` do by default
/// (`parent_domain_matches_subdomains`). An empty entry covers nothing.
pub fn domain_covers(entry: &str, domain: &str) -> bool {
    let (e, d) = (domain_key(entry), domain_key(domain));
    !e.is_empty()
        && (d == e
            || d.strip_suffix(e.as_str())
                .is_some_and(|head| head.ends_with('.')))
}

/// One line of the relay table (like sendmail's mailertable or Postfix's transport):
/// `domain relay[:port]`, `.domain relay` (its subdomains), `* relay` (everything else).
/// `[host]` names the host itself; a bare host is used as it is too: the deliverer
/// connects to its addresses and never looks up MX records for a relay (MX lookups are
/// for domains routed to their MX hosts). The relay `mx:` (the word and a colon: no host
/// is written so) sends the domain's mail to its own MX hosts, everything else still
/// going through `SMARTHOST` or the table's other lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayRule {
    pub pattern: String,
    /// Empty for `mx:`.
    pub host: String,
    /// 0 for `mx:` (MX hosts get `O MXPort=`).
    pub port: u16,
    /// `mx:`: the domain's MX hosts, not a relay.
    pub by_mx: bool,
}

/// The relay-table value that means "this domain by its MX hosts".
pub const RELAY_BY_MX: &str = "mx:";

/// A table file's text: a regular file of at most 1 MiB
/// ([`crate::boundedfile::read_regular`]), UTF-8 ([`utf8`]).
fn read_text(path: &Path) -> Result<String, crate::boundedfile::ReadError> {
    let (t, _) = crate::boundedfile::read_regular(path, false, crate::boundedfile::MAX_FILE)?;
    utf8(t)
}

/// A table file's octets as text: an invalid UTF-8 sequence is an error, as
/// `read_to_string`'s.
fn utf8(t: Vec<u8>) -> Result<String, crate::boundedfile::ReadError> {
    String::from_utf8(t).map_err(|_| {
        crate::boundedfile::ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// What [`Config::parse_quoting`] says of a line in error of a file not everyone may
/// read: its keyword when rsendmail knows it (a word of the program, not of the file),
/// else that it is none; never the line's text.
fn hidden_line_problem(keyword: &str) -> String {
    if KEYWORDS.contains(&keyword) || keyword == "O" {
        format!(
            "the {keyword} line is not valid ({})",
            crate::text::NOT_QUOTED
        )
    } else {
        format!(
            "not a keyword rsendmail knows ({})",
            crate::text::NOT_QUOTED
        )
    }
}

/// Read the relay table; errors name the file (and line) and are EX_CONFIG.
pub fn load_relay_table(path: &Path, default_port: u16) -> Result<Vec<RelayRule>, Fatal> {
    if let Some(why) = crate::spool::safety::secret_file(path, &[]) {
        return Err(Fatal::new(
            Sysexit::Config,
            format!(
                "RELAYTABLE {} is refused: {why}, which holds credentials and is never \
                 read as a relay table",
                path.display()
            ),
        ));
    }
    let quoted = std::fs::metadata(path).is_ok_and(|md| crate::text::readable_by_all(&md));
    relay_table_of(path, "", read_text(path), default_port, quoted)
}

/// The relay table from the text read from `path` ([`load_relay_table`]); `at` is
/// where the config names it (`file: line N: `, or empty), for a file that cannot be
/// read.
fn relay_table_of(
    path: &Path,
    at: &str,
    text: Result<String, crate::boundedfile::ReadError>,
    default_port: u16,
    quoted: bool,
) -> Result<Vec<RelayRule>, Fatal> {
    let text = text.map_err(|e| {
        Fatal::new(
            Sysexit::Config,
            format!(
                "{at}cannot open RELAYTABLE {}: {}",
                path.display(),
                e.text()
            ),
        )
    })?;
    parse_relay_table_quoting(&text, &path.display().to_string(), default_port, quoted)
}

/// Parse the relay table's text; `name` is used in messages (`name: line N: ...`).
pub fn parse_relay_table(
    text: &str,
    name: &str,
    default_port: u16,
) -> Result<Vec<RelayRule>, Fatal> {
    parse_relay_table_quoting(text, name, default_port, true)
}

/// [`parse_relay_table`]; with `quoted` false (a file not everyone may read:
/// [`crate::text::readable_by_all`]) an error names the line and what is wrong, never
/// the line's text.
pub fn parse_relay_table_quoting(
    text: &str,
    name: &str,
    default_port: u16,
    quoted: bool,
) -> Result<Vec<RelayRule>, Fatal> {
    let shown = |word: &str| {
        if quoted {
            word.to_string()
        } else {
            format!("({})", crate::text::NOT_QUOTED)
        }
    };
    fault(text.as_bytes(), name)?;
    let mut out = Vec::new();
    // Each compared pattern's first line and spelling: a second line for the same
    // domain (`Example.ORG` and `example.org`, `bücher.example` and
    // `xn--bcher-kva.example`) is refused, never left for the first line to hide.
    let mut first_at: std::collections::HashMap<String, (usize, String)> =
        std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| {
            let why = crate::text::message_bounded(why);
            Fatal::new(Sysexit::Config, format!("{name}: line {}: {why}", n + 1))
        };
        let mut words = line.split_whitespace();
        let (Some(pattern), Some(relay), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad("expected: domain relay[:port]"));
        };
        let by_mx = relay.eq_ignore_ascii_case(RELAY_BY_MX);
        // `mx:host`, `mx:25`: `mx:` alone means the domain's MX hosts; read as a host
        // named `mx`, the rest would be called a bad port.
        let mx_with_more = relay
            .get(..RELAY_BY_MX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(RELAY_BY_MX));
        if mx_with_more && !by_mx {
            return Err(bad(&format!(
                "invalid relay {}: mx: takes no host or port (mx: alone sends to the domain's MX hosts; a host named mx is [mx] or mx.domain)",
                shown(relay)
            )));
        }
        let (host, port) = if by_mx {
            (String::new(), Some(0))
        } else {
            check_host_port(relay).map_err(|why| match quoted {
                true => bad(&format!("invalid relay {relay}: {why}")),
                false => bad(&format!("invalid relay {}", shown(relay))),
            })?
        };
        // A U-label pattern is its A-labels (`bücher.example`), as it is compared.
        let keyed = match pattern.strip_prefix('.') {
            _ if pattern == "*" => pattern.to_string(),
            Some(parent) => format!(".{}", domain_key(parent)),
            None => domain_key(pattern),
        };
        let valid_pattern = pattern == "*"
            || keyed
                .trim_start_matches('.')
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
        if !valid_pattern || pattern == "." {
            return Err(bad(&format!("invalid domain {}", shown(pattern))));
        }
        // A domain longer than DNS allows (RFC 1035 §2.3.4) is no domain a recipient
        // has: a mistake, said with the domain cut (a long one is shown as a long
        // argument is).
        if pattern != "*"
            && let Some(why) = crate::message::address::domain_length_problem(
                keyed.trim_start_matches('.').trim_end_matches('.'),
            )
        {
            return Err(bad(&match quoted {
                true => format!(
                    "invalid domain {}: {why}",
                    crate::text::argument_shown(pattern)
                ),
                false => format!("invalid domain {}: {why}", shown(pattern)),
            }));
        }
        if let Some((m, was)) = first_at.get(&keyed) {
            return Err(bad(&match quoted {
                true => format!("domain {pattern} is already routed by {name}: line {m} ({was})"),
                false => format!("its domain is already routed by {name}: line {m}"),
            }));
        }
        first_at.insert(keyed.clone(), (n + 1, pattern.to_string()));
        // `a.example.` is `a.example`, as everywhere a domain is compared.
        out.push(RelayRule {
            pattern: keyed,
            host,
            port: port.unwrap_or(default_port),
            by_mx,
        });
    }
    Ok(out)
}

/// Read dma's auth.conf, refusing one that others may read (it holds passwords). Errors
/// never quote the file's text.
pub fn load_auth(path: &Path) -> Result<Vec<AuthEntry>, Fatal> {
    let md = std::fs::metadata(path)
        .map_err(|e| cannot_read_auth(path, "", crate::boundedfile::ReadError::Io(e)))?;
    // A file that is not rsendmail's (one with other links, a system file, one in
    // another program's place), which `rsendmail-admin check` fails by the same rule:
    // no credentials are read from it, and no delivery sends any.
    if let Some(why) = crate::spool::safety::not_rsendmails_file(path, &md, false) {
        return Err(Fatal::new(
            Sysexit::Config,
            format!(
                "AUTHPATH {} is not rsendmail's ({why}): its credentials are not sent; \
                 correct AUTHPATH",
                path.display()
            ),
        ));
    }
    auth_of(path, "", &md, read_text(path))
}

/// dma's auth.conf from its metadata (`md`: the mode is checked first) and the text read
/// from `path` ([`load_auth`]).
fn auth_of(
    path: &Path,
    at: &str,
    md: &std::fs::Metadata,
    text: Result<String, crate::boundedfile::ReadError>,
) -> Result<Vec<AuthEntry>, Fatal> {
    // The repair of a file that is not rsendmail's (`/etc/passwd`) is never a change
    // of its mode (the one rule of `check`): the line naming it is corrected.
    let repair = |cmd: &str| match crate::spool::safety::not_rsendmails_own(path) {
        Some(why) => {
            let line = at.trim_end_matches(": ");
            let line = if line.is_empty() { "AUTHPATH" } else { line };
            format!("; it is not rsendmail's ({why}), so it is left as it is: correct {line}")
        }
        None => format!(" ({cmd})"),
    };
    if md.mode() & 0o004 != 0 {
        return Err(Fatal::new(
            Sysexit::Config,
            format!(
                "AUTHPATH {} is readable by others; refusing to use it{}",
                path.display(),
                repair("chmod o-r")
            ),
        ));
    }
    // A reader an access ACL names is one of the others, whatever the mode says.
    if let Some(who) = crate::spool::safety::acl_readers(path) {
        return Err(Fatal::new(
            Sysexit::Config,
            format!(
                "AUTHPATH {} is readable by others (an access ACL lets {who} read it); \
                 refusing to use it{}",
                path.display(),
                repair("setfacl -b")
            ),
        ));
    }
    let text = text.map_err(|e| cannot_read_auth(path, at, e))?;
    parse_auth(&text, &path.display().to_string())
}

/// AUTHPATH cannot be read; `at` is where the config names it (`file: line N: `).
fn cannot_read_auth(path: &Path, at: &str, e: crate::boundedfile::ReadError) -> Fatal {
    Fatal::new(
        Sysexit::Config,
        format!("{at}cannot read AUTHPATH {}: {}", path.display(), e.text()),
    )
}

/// A byte order mark or NUL in the text file `name` ([`crate::text::file_fault`]):
/// `name: line N: ...`, EX_CONFIG.
fn fault(text: &[u8], name: &str) -> Result<(), Fatal> {
    match crate::text::file_fault(text) {
        Some((n, what)) => Err(Fatal::new(
            Sysexit::Config,
            format!("{name}: line {n}: {what}"),
        )),
        None => Ok(()),
    }
}

/// One line of dma's auth.conf: `user|host:password`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthEntry {
    pub user: String,
    pub host: String,
    pub password: String,
}

/// Parse dma's auth.conf (the file's mode is checked where it is opened for delivery).
/// Every bad line is named (`name: line N: why`, joined by `; ` on one line), not only
/// the first, as the configuration file's are: one correction does not reveal the next.
pub fn parse_auth(text: &str, name: &str) -> Result<Vec<AuthEntry>, Fatal> {
    fault(text.as_bytes(), name)?;
    let mut out = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut hosts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        match auth_line(line, name, &hosts) {
            Ok(entry) => {
                hosts.insert(crate::message::address::domain_key(&entry.host), i + 1);
                out.push(entry);
            }
            Err(why) => errors.push(format!(
                "{name}: line {}: {}",
                i + 1,
                crate::text::message_bounded(&why)
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Fatal::new(Sysexit::Config, first_few(&errors)))
    }
}

/// How many of a file's faulty lines a message names before `and N more`.
const FAULTS_NAMED: usize = 3;

/// `errors` joined by `; `, the first [`FAULTS_NAMED`] of them and `and N more lines`:
/// a file that is not of its kind at all (`AUTHPATH /etc/shadow`) makes one short line.
fn first_few(errors: &[String]) -> String {
    let mut text = errors
        .iter()
        .take(FAULTS_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > FAULTS_NAMED {
        text.push_str(&format!("; and {} more lines", errors.len() - FAULTS_NAMED));
    }
    text
}

/// One line of auth.conf `name`, or what is wrong with it (never its
/// text); `hosts`: the hosts of the lines before it, with their numbers.
fn auth_line(
    line: &str,
    name: &str,
    hosts: &std::collections::HashMap<String, usize>,
) -> Result<AuthEntry, String> {
    let bad = || "expected user|host:password".to_string();
    let (user, rest) = line.split_once('|').ok_or_else(bad)?;
    let (host, password) = rest.split_once(':').ok_or_else(bad)?;
    if user.is_empty() {
        return Err("no user before '|' (expected user|host:password)".to_string());
    }
    if host.is_empty() {
        return Err("no host between '|' and ':' (expected user|host:password)".to_string());
    }
    let host = auth_host(host)?;
    if password.is_empty() {
        return Err(
            "empty password after ':' (a server that needs AUTH needs one; remove the line \
             for a server without AUTH)"
                .to_string(),
        );
    }
    // Delivery takes the first line for a host (compared as a domain is:
    // `Smtp.Example` is `smtp.example`, U-labels are their A-labels), so a second
    // line for it would never be used: refused, naming both lines (not their text).
    let key = crate::message::address::domain_key(&host);
    if let Some(m) = hosts.get(&key) {
        return Err(format!(
            "the host of {name}: line {m} again; one line per host"
        ));
    }
    Ok(AuthEntry {
        user: user.to_string(),
        host,
        password: password.to_string(),
    })
}

/// The host of an auth.conf line as delivery compares it with the host it connects to:
/// a host name, an IP address, or an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`),
/// kept as its bare address (delivery compares bare addresses). Errors: what is wrong
/// with it, never its text (the line may be a password put in the wrong place).
fn auth_host(host: &str) -> Result<String, String> {
    let malformed = |why: &str| {
        format!("the host is not a host name or IP address ({why}; expected user|host:password)")
    };
    if host.trim() != host {
        return Err(malformed("blanks around it"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host.to_string());
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let bare = inner
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
            .and_then(|_| inner.get(5..))
            .unwrap_or(inner);
        return match bare.parse::<std::net::IpAddr>() {
            Ok(_) => Ok(bare.to_string()),
            Err(_) => Err(malformed("not an address literal")),
        };
    }
    let ascii = crate::message::address::ascii_domain(host)
        .ok_or_else(|| malformed("not a valid internationalized name"))?;
    // An absolute name (`smtp.example.org.`) is the name.
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    crate::message::address::check_host_name(name).map_err(|why| malformed(&why))?;
    Ok(host.to_string())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    /// A file that is no auth.conf at all (`/etc/shadow`'s lines) is refused with its
    /// first few faulty lines and how many more, not one fragment for each.
    #[test]
    fn an_auth_file_of_many_bad_lines_names_the_first_few() {
        let text = "root:x:1:\n".repeat(28);
        let e = parse_auth(&text, "f").unwrap_err();
        assert_eq!(
            e.message,
            "f: line 1: expected user|host:password; f: line 2: expected \
             user|host:password; f: line 3: expected user|host:password; and 25 more lines"
        );
        let e = parse_auth("x\ny\n", "f").unwrap_err();
        assert_eq!(
            e.message,
            "f: line 1: expected user|host:password; f: line 2: expected user|host:password"
        );
    }

    /// An auth file others may read that is not rsendmail's (`/etc/motd`) is refused
    /// with the line to correct, never a command that would change it.
    #[test]
    fn a_readable_auth_file_not_rsendmails_gets_no_chmod() {
        let p = Path::new("/etc/motd");
        let Ok(md) = std::fs::metadata(p) else {
            return;
        };
        if md.mode() & 0o004 == 0 {
            return;
        }
        let e = auth_of(p, "c.conf: line 4: ", &md, Ok(String::new())).unwrap_err();
        assert!(
            e.message.starts_with("AUTHPATH /etc/motd is readable by others; refusing to use it; it is not rsendmail's (")
                && e.message.ends_with("so it is left as it is: correct c.conf: line 4")
                && !e.message.contains("chmod"),
            "{}",
            e.message
        );
    }

    fn parse(text: &str) -> Result<Config, Fatal> {
        let mut c = Config::builtin(&Paths::system());
        c.parse(text, "test.conf", &[])?;
        Ok(c)
    }

    /// Every configured domain list compares as `domain_covers` does: case and one
    /// trailing dot on either side do not count; a subdomain is covered, a name that only
    /// ends in the same letters is not.
    #[test]
    fn configured_domains_cover_their_subdomains_whatever_the_case_or_trailing_dot() {
        for (entry, domain, want) in [
            ("relay.example", "relay.example", true),
            ("relay.example.", "relay.example", true),
            ("relay.example", "relay.example.", true),
            ("Relay.Example", "RELAY.example", true),
            ("relay.example", "sub.relay.example", true),
            ("relay.example.", "a.b.Relay.Example.", true),
            ("relay.example", "notrelay.example", false),
            ("relay.example", "relay.example.org", false),
            ("sub.relay.example", "relay.example", false),
            ("", "relay.example", false),
            (".", "relay.example", false),
        ] {
            assert_eq!(domain_covers(entry, domain), want, "{entry} / {domain}");
        }
        assert_eq!(domain_key("A.Example."), "a.example");
        let t = parse_relay_table("Trail.Example. 127.0.0.1:31401\n.Sub.Example. x\n", "t", 25)
            .unwrap();
        let patterns: Vec<&str> = t.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(patterns, ["trail.example", ".sub.example"]);
    }

    #[test]
    fn netbsd_example_verbatim() {
        let c = parse(include_str!("../tests/fixtures/netbsd-dma.conf")).unwrap();
        assert_eq!(c.smarthost, vec!["mail.stupin.su"]);
        assert_eq!(c.port, Some(587));
        assert_eq!(c.aliases, PathBuf::from("/etc/mail/aliases"));
        assert_eq!(
            c.auth_path,
            Some(PathBuf::from("/usr/pkg/etc/dma/auth.conf"))
        );
        assert!(c.secure_transfer && c.starttls);
        assert_eq!(c.mailname.as_deref(), Some("sysbuild.vm.stupin.su"));
        assert_eq!(c.host_name(), "sysbuild.vm.stupin.su");
        assert_eq!(c.masquerade.as_deref(), Some("sysbuild@stupin.su"));
    }

    #[test]
    fn debian_dma_conf_verbatim() {
        let c = parse(include_str!("../tests/fixtures/debian-dma.conf")).unwrap();
        assert_eq!(c.mailname.as_deref(), Some("/etc/mailname"));
        assert!(c.smarthost.is_empty());
        let auth = parse_auth(include_str!("../tests/fixtures/debian-auth.conf"), "a").unwrap();
        assert!(auth.is_empty());
        let auth = parse_auth("bob|smtp.example.org:se:cret\n", "a").unwrap();
        assert_eq!(auth[0].password, "se:cret");
        assert!(parse_auth("nonsense\n", "a").is_err());
        // Every bad line is named, not only the first.
        let e = parse_auth("alice|localhost:secret\nbob|localhost:x\nnohost\n", "a").unwrap_err();
        assert_eq!(
            e.message,
            "a: line 2: the host of a: line 1 again; one line per host; \
             a: line 3: expected user|host:password"
        );
    }

    /// auth.conf lines that could never be used are refused with their line: no user,
    /// no host, a host that is no host name or address, no password; an address literal
    /// is kept as the bare address delivery compares.
    #[test]
    fn auth_lines_need_a_user_a_host_and_a_password() {
        for (text, why) in [
            ("|h.example:pw\n", "no user before '|'"),
            ("u|:pw\n", "no host between '|' and ':'"),
            (
                "u|h example:pw\n",
                "the host is not a host name or IP address",
            ),
            (
                "u|h.example :pw\n",
                "the host is not a host name or IP address",
            ),
            ("u|h/x:pw\n", "the host is not a host name or IP address"),
            (
                "u|[IPv6:2001:pw\n",
                "the host is not a host name or IP address",
            ),
            (
                "u|[300.1.1.1]:pw\n",
                "the host is not a host name or IP address",
            ),
            (
                "u|-h.example:pw\n",
                "the host is not a host name or IP address",
            ),
            ("u|h.example:\n", "empty password after ':'"),
            ("u|h.example:\r\n", "empty password after ':'"),
        ] {
            let e = parse_auth(&format!("# c\n{text}"), "auth").unwrap_err();
            assert_eq!(e.code, Sysexit::Config, "{text:?}");
            assert!(
                e.message.starts_with(&format!("auth: line 2: {why}")),
                "{text:?}: {}",
                e.message
            );
        }
        let ok = parse_auth(
            "a|[192.0.2.1]:p\nb|192.0.2.2:p\nc|Smtp.Example.:p:w\nd|bücher.example:p\n",
            "auth",
        )
        .unwrap();
        let hosts: Vec<&str> = ok.iter().map(|a| a.host.as_str()).collect();
        assert_eq!(
            hosts,
            ["192.0.2.1", "192.0.2.2", "Smtp.Example.", "bücher.example"]
        );
        assert_eq!(ok[2].password, "p:w");
    }

    #[test]
    fn a_line_not_utf8_is_found_and_a_comment_is_let_be() {
        assert_eq!(non_utf8_line(b"SPOOLDIR /x\nMAILNAME a.b\n"), None);
        assert_eq!(
            non_utf8_line(b"SPOOLDIR /x\nO MaxHopCount=5\xff\n"),
            Some((2, 0o377))
        );
        assert_eq!(non_utf8_line(b"# M\xfcller\n  # \xe9\nSPOOLDIR /x\n"), None);
        // A comment after a value, as a line ends at its `#`; `\#` is the value's.
        assert_eq!(non_utf8_line(b"SMARTHOST a.b:25 # r\xe9lais\n"), None);
        assert_eq!(non_utf8_line(b"MAILNAME a\\#\xe9\n"), Some((1, 0xe9)));
        assert_eq!(
            non_utf8_line(b"# M\xfcller\nSPOOLDIR /var/sp\xf6ol\n"),
            Some((2, 0xf6))
        );
        // A UTF-8 sequence cut short at the line's end.
        assert_eq!(non_utf8_line(b"MAILNAME \xc3\n\xa9\n"), Some((1, 0xc3)));
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            (
                "SMARTHOST\n",
                "test.conf: line 1: SMARTHOST requires a value",
                Sysexit::Config,
            ),
            (
                "# c\nSTARTLS\n",
                "test.conf: line 2: unknown keyword STARTLS (did you mean STARTTLS?)",
                Sysexit::Config,
            ),
            (
                "STARTTLS yes\n",
                "test.conf: line 1: STARTTLS takes no value (found \"yes\")",
                Sysexit::Config,
            ),
            (
                "PORT 99999\n",
                "test.conf: line 1: invalid PORT 99999",
                Sysexit::Config,
            ),
            (
                "\u{feff}SPOOLDIR /var/spool/x\n",
                "test.conf: line 1: the file begins with a byte order mark (U+FEFF); save it without one",
                Sysexit::Config,
            ),
            (
                "O DeliveryMode=x\n",
                "test.conf: line 1: Unknown delivery mode x (the mode is b, i, q or d)",
                Sysexit::Usage,
            ),
            (
                "\nOdQ\n",
                "test.conf: line 2: Unknown delivery mode Q (the mode is b, i, q or d)",
                Sysexit::Usage,
            ),
            (
                "O Bogus=1\n",
                "test.conf: line 1: readcf: unknown option name Bogus",
                Sysexit::Config,
            ),
            (
                "O DeliverMode=q\n",
                "test.conf: line 1: readcf: unknown option name DeliverMode (did you mean DeliveryMode?)",
                Sysexit::Config,
            ),
            (
                "O maxhopcont=3\n",
                "test.conf: line 1: readcf: unknown option name maxhopcont (did you mean MaxHopCount?)",
                Sysexit::Config,
            ),
            (
                "O Timout.queuereturn=1h\n",
                "test.conf: line 1: readcf: unknown option name Timout (did you mean Timeout?)",
                Sysexit::Config,
            ),
            (
                "smarthost x\n",
                "test.conf: line 1: unknown keyword smarthost (did you mean SMARTHOST?)",
                Sysexit::Config,
            ),
            (
                "FINGERPRINT abc\n",
                "test.conf: line 1: FINGERPRINT must be a SHA-256 digest in hex: abc",
                Sysexit::Config,
            ),
            // Option values are parsed as the line is read: EX_CONFIG, file and line.
            (
                "\nO MaxHopCount=abc\n",
                "test.conf: line 2: Invalid value for MaxHopCount: abc",
                Sysexit::Config,
            ),
            (
                "O Timeout.connect=forever\n",
                "test.conf: line 1: Invalid value for Timeout.connect: forever",
                Sysexit::Config,
            ),
            (
                "Ohabc\n",
                "test.conf: line 1: Invalid value for MaxHopCount: abc",
                Sysexit::Config,
            ),
            (
                "O MaxMessageSize=10M\n",
                "test.conf: line 1: Invalid value for MaxMessageSize: 10M",
                Sysexit::Config,
            ),
            (
                "O PrivacyOptions=goaway,noexpm\n",
                "test.conf: line 1: Invalid value for PrivacyOptions: goaway,noexpm",
                Sysexit::Config,
            ),
            (
                "O DaemonPortOptions=Port=x\n",
                "test.conf: line 1: DaemonPortOptions=Port=x: invalid port \"x\"",
                Sysexit::Config,
            ),
            // The mail name and MASQUERADE go out as written: they must be a domain
            // and a mailbox.
            (
                "MAILNAME bad host\n",
                "test.conf: line 1: invalid MAILNAME bad host: ' ' is not a letter, digit, hyphen or dot",
                Sysexit::Config,
            ),
            (
                "# c\nMAILNAME bad..host\n",
                "test.conf: line 2: invalid MAILNAME bad..host: empty label",
                Sysexit::Config,
            ),
            (
                "MAILNAME host.example.\n",
                "test.conf: line 1: invalid MAILNAME host.example.: empty label",
                Sysexit::Config,
            ),
            (
                "MAILNAME relative/file\n",
                "test.conf: line 1: invalid MAILNAME relative/file: '/' is not a letter, digit, hyphen or dot",
                Sysexit::Config,
            ),
            (
                "MASQUERADE a@b@c\n",
                "test.conf: line 1: invalid MASQUERADE a@b@c: Invalid route address",
                Sysexit::Config,
            ),
            (
                "MASQUERADE bad..dom\n",
                "test.conf: line 1: invalid MASQUERADE bad..dom: empty label",
                Sysexit::Config,
            ),
            (
                "MASQUERADE john@bad..dom\n",
                "test.conf: line 1: invalid MASQUERADE john@bad..dom: empty label",
                Sysexit::Config,
            ),
            (
                "MASQUERADE @bad_dom\n",
                "test.conf: line 1: invalid MASQUERADE @bad_dom: '_' is not a letter, digit, hyphen or dot",
                Sysexit::Config,
            ),
            (
                "MASQUERADE john@bad_dom\n",
                "test.conf: line 1: invalid MASQUERADE john@bad_dom: '_' is not a letter, digit, hyphen or dot",
                Sysexit::Config,
            ),
            (
                "MASQUERADE jo(hn@\n",
                "test.conf: line 1: invalid MASQUERADE jo(hn@: Unbalanced '('",
                Sysexit::Config,
            ),
            (
                "MASQUERADE j\u{f6}rg@stra\u{df}e.example\n",
                "test.conf: line 1: invalid MASQUERADE j\u{f6}rg@stra\u{df}e.example: '\u{f6}' in the user is not ASCII: every server would have to offer SMTPUTF8",
                Sysexit::Config,
            ),
            (
                "MASQUERADE @\n",
                "test.conf: line 1: invalid MASQUERADE @: neither a user nor a host",
                Sysexit::Config,
            ),
            (
                "MASQUERADE <john@example.org>\n",
                "test.conf: line 1: invalid MASQUERADE <john@example.org>: '<' is not allowed",
                Sysexit::Config,
            ),
            (
                "MASQUERADE \"j d\"@example.org\n",
                "test.conf: line 1: invalid MASQUERADE \"j d\"@example.org: '\"' is not allowed",
                Sysexit::Config,
            ),
            // A relative spool would be another one in each working directory.
            (
                "SPOOLDIR relspool\n",
                "test.conf: line 1: invalid SPOOLDIR relspool: not an absolute path",
                Sysexit::Config,
            ),
            (
                "O QueueDirectory=relspool\n",
                "test.conf: line 1: Invalid value for QueueDirectory: relspool",
                Sysexit::Config,
            ),
            (
                "OQrelspool\n",
                "test.conf: line 1: Invalid value for QueueDirectory: relspool",
                Sysexit::Config,
            ),
            // Timeout names: sendmail's message for one it does not know.
            (
                "O Timeout.bogus=abc\n",
                "test.conf: line 1: settimeout: invalid timeout bogus",
                Sysexit::Config,
            ),
            (
                "O Timeout.queuereturn.normal=abc\n",
                "test.conf: line 1: Invalid value for Timeout.queuereturn.normal: abc",
                Sysexit::Config,
            ),
            (
                "O MaxConnections=0\n",
                "test.conf: line 1: Invalid value for MaxConnections: 0",
                Sysexit::Config,
            ),
        ];
        for (text, msg, code) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!((e.message.as_str(), e.code), (msg, code), "{text:?}");
        }
    }

    /// The forms MASQUERADE takes, as dma's.
    #[test]
    fn masquerade_forms() {
        for v in [
            "john@",
            "example.org",
            "@example.org",
            "john@example.org",
            "j.doe+x@[192.0.2.1]",
        ] {
            assert_eq!(check_masquerade(v), Ok(v.to_string()), "{v}");
        }
        // A host with U-labels is taken as its A-labels, with or without a user.
        for (v, want) in [
            ("Bücher.example", "xn--bcher-kva.example"),
            ("@bücher.example", "@xn--bcher-kva.example"),
            ("john@bücher.example", "john@xn--bcher-kva.example"),
        ] {
            assert_eq!(check_masquerade(v), Ok(want.to_string()), "{v}");
        }
        assert!(check_masquerade("john@bü_cher.example").is_err());
        assert_eq!(
            parse("MASQUERADE john@bücher.example\n")
                .unwrap()
                .masquerade
                .as_deref(),
            Some("john@xn--bcher-kva.example")
        );
    }

    /// MAILNAME naming a file, or no MAILNAME: the mail name is settled once, checked,
    /// and every user reads that one value.
    #[test]
    fn mail_name_from_a_file_or_the_host_name() {
        let d = scratch("mailname");
        let file = |name: &str, text: &str| {
            let p = d.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let good = file("good", "  mail.example.org  \nignored line\n");
        let empty = file("empty", "");
        let blank = file("blank", "\nmail.example.org\n");
        let bad = file("bad", "bad host\n");
        let bad2 = file("bad2", "bad..host\n");
        let missing = d.join("missing").display().to_string();
        let dir = d.display().to_string();
        let resolve = |text: &str| -> Result<String, Fatal> {
            let mut c = parse(text)?;
            c.resolve_mail_name()?;
            Ok(c.host_name())
        };
        assert_eq!(
            resolve(&format!("MAILNAME {good}\n")).unwrap(),
            "mail.example.org"
        );
        // The last MAILNAME line wins, a name or a file.
        assert_eq!(
            resolve(&format!("MAILNAME {good}\nMAILNAME b.example\n")).unwrap(),
            "b.example"
        );
        assert_eq!(
            resolve(&format!("MAILNAME b.example\nMAILNAME {good}\n")).unwrap(),
            "mail.example.org"
        );
        // A name with U-labels, on the line or in the file, is taken and used as its
        // A-labels; one with no A-label form is refused with the reason.
        let idn = file("idn", "Mail.Bücher.example\n");
        for text in [
            "MAILNAME Mail.Bücher.example\n".to_string(),
            format!("MAILNAME {idn}\n"),
        ] {
            assert_eq!(
                resolve(&text).unwrap(),
                "mail.xn--bcher-kva.example",
                "{text}"
            );
        }
        let e = resolve("MAILNAME bü_cher.example\n").unwrap_err();
        assert_eq!(
            e.message,
            "test.conf: line 1: invalid MAILNAME bü_cher.example: '_' is not a letter, digit, hyphen or dot"
        );
        let errors = [
            (
                missing.clone(),
                format!(
                    "test.conf: line 1: cannot open MAILNAME {missing}: No such file or directory"
                ),
            ),
            (
                dir.clone(),
                format!(
                    "test.conf: line 1: cannot open MAILNAME {dir}: not a regular file (a directory)"
                ),
            ),
            (
                empty.clone(),
                format!("MAILNAME {empty}: no mail name on its first line"),
            ),
            (
                blank.clone(),
                format!("MAILNAME {blank}: no mail name on its first line"),
            ),
            (
                bad.clone(),
                format!(
                    "{bad}: line 1: invalid mail name bad host: ' ' is not a letter, digit, hyphen or dot"
                ),
            ),
            (
                bad2.clone(),
                format!("{bad2}: line 1: invalid mail name bad..host: empty label"),
            ),
        ];
        for (path, want) in errors {
            let e = resolve(&format!("MAILNAME {path}\n")).unwrap_err();
            assert_eq!((e.code, e.message), (Sysexit::Config, want), "{path}");
        }
        // Without MAILNAME: the host name, when it is a domain.
        let host = system_host_name();
        match check_domain(&host) {
            Ok(()) => assert_eq!(resolve("").unwrap(), host),
            Err(why) => assert_eq!(
                resolve("").unwrap_err().message,
                format!("the host name {host} is not a valid mail name ({why}); set MAILNAME")
            ),
        }
        // Config::load settles it.
        let conf = file("conf", &format!("MAILNAME {bad2}\n"));
        let e = Config::load(Path::new(&conf), true, &Paths::system(), &[]).unwrap_err();
        assert_eq!(
            e.message,
            format!("{bad2}: line 1: invalid mail name bad..host: empty label")
        );
        let conf = file("conf", &format!("MAILNAME {good}\n"));
        let c = Config::load(Path::new(&conf), true, &Paths::system(), &[]).unwrap();
        assert_eq!(c.host_name(), "mail.example.org");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn defer_and_o_lines_in_order() {
        let c = parse("DEFER\n").unwrap();
        assert_eq!(c.settings.delivery_mode, Some(DeliveryMode::Deferred));
        let c = parse("DEFER\nO DeliveryMode=b\n").unwrap();
        assert_eq!(c.settings.delivery_mode, Some(DeliveryMode::Background));
        let c = parse("O DeliveryMode=q\nDEFER\n").unwrap();
        assert_eq!(c.settings.delivery_mode, Some(DeliveryMode::Deferred));
        let c = parse("Odi\n").unwrap();
        assert_eq!(c.settings.delivery_mode, Some(DeliveryMode::Interactive));
        let c = parse("O MaxMessageSize=1000\nO Timeout.queuereturn=5d\n").unwrap();
        assert_eq!(c.settings.max_message_size, Some(1000));
        assert_eq!(c.settings.timeouts.queuereturn, Some(5 * 86400));
    }

    #[test]
    fn command_line_options_are_not_read_from_the_config() {
        let mut c = Config::builtin(&Paths::system());
        c.parse(
            "O DeliveryMode=x\nOdZ\nO MaxMessageSize=5\nO Timeout.connect=x\n\
             O Timeout.datafinal=7s\n",
            "t",
            &["DeliveryMode".to_string(), "Timeout.connect".to_string()],
        )
        .unwrap();
        assert_eq!(c.settings.delivery_mode, None);
        assert_eq!(c.settings.max_message_size, Some(5));
        // Each timeout on its own, as in sendmail: the others are still read.
        assert_eq!(c.settings.timeouts.connect, None);
        assert_eq!(c.settings.timeouts.datafinal, Some(7));
    }

    /// dma's rule (conf.c): a `#` ends a keyword line wherever it stands.
    #[test]
    fn comments_end_keyword_lines_as_in_dma() {
        let c = parse(
            "SMARTHOST relay.example:587 # the relay\nSTARTTLS\t# yes\nINSECURE#\n\
             MAILNAME m.example #x\nPORT 2525#\n",
        )
        .unwrap();
        assert_eq!(c.smarthost, ["relay.example:587"]);
        assert!(c.starttls && c.insecure);
        assert_eq!(c.host_name(), "m.example");
        assert_eq!(c.port, Some(2525));
        assert_eq!(
            parse("SMARTHOST # none\n").unwrap_err().message,
            "test.conf: line 1: SMARTHOST requires a value"
        );
    }

    /// sendmail 8.17's rule for sendmail.cf lines (recorded: `sendmail -C cf -d37.1 -bt`
    /// with each line): a `#` after the start ends an `O` line, `\#` is a `#`, `$#` stays.
    #[test]
    fn comments_end_o_lines_as_in_sendmail_cf() {
        let c = parse(
            "O MaxHopCount=7 # a note\nO DeliveryMode=q\t# tab note\n\
             O QueueDirectory=/var/spool/a\\#b  #c\nOh9#x\nO Timeout.connect=8s#\n",
        )
        .unwrap();
        assert_eq!(c.settings.max_hop_count, Some(9));
        assert_eq!(c.settings.delivery_mode, Some(DeliveryMode::QueueOnly));
        assert_eq!(c.settings.timeouts.connect, Some(8));
        assert_eq!(
            c.settings.queue_directory.as_deref(),
            Some(Path::new("/var/spool/a#b"))
        );
        assert_eq!(strip_cf_comment("O MaxHopCount=8#x"), "O MaxHopCount=8");
        assert_eq!(strip_cf_comment("O X=a$#b"), "O X=a$#b");
        assert_eq!(strip_cf_comment("O X=a\\\\#b #c"), "O X=a\\#b");
        assert_eq!(strip_cf_comment("O X=é # ü"), "O X=é");
        // A comment does not hide a bad value.
        let f = parse("O MaxHopCount=x # note\n").unwrap_err();
        assert!(
            f.message.starts_with("test.conf: line 1: "),
            "{}",
            f.message
        );
    }

    /// dma's rule (conf.c): NULLCLIENT needs SMARTHOST, wherever in the file it is.
    #[test]
    fn null_client_requires_smarthost() {
        let f = parse("PORT 25\nNULLCLIENT\nDEFER\n").unwrap_err();
        assert_eq!(f.code, Sysexit::Config);
        assert_eq!(
            f.message,
            "test.conf: line 2: NULLCLIENT requires SMARTHOST"
        );
        let c = parse("NULLCLIENT\nSMARTHOST relay.example\n").unwrap();
        assert!(c.all_to_smarthost());
        assert!(parse("SMARTHOST relay.example\nNULLCLIENT\n").is_ok());
        assert!(parse("PORT 25\n").is_ok());
    }

    /// Every keyword of [`KEYWORDS`] is one `parse` takes and `keyword_value` knows.
    #[test]
    fn keywords_table_matches_the_parser() {
        for k in KEYWORDS {
            let value = match *k {
                "PORT" => " 25",
                "SPOOLDIR" | "MAILLOG" | "ALIASES" | "AUTHPATH" | "CERTFILE" | "MAILSPOOL"
                | "RELAYTABLE" => " /x",
                "FINGERPRINT" => {
                    " 1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF"
                }
                "RESOLVER" => " 127.0.0.1",
                "MASQUERADE" | "MAILNAME" | "SMARTHOST" => " a.example",
                _ => "",
            };
            let extra = if *k == "NULLCLIENT" {
                "SMARTHOST a.example\n"
            } else {
                ""
            };
            let c = parse(&format!("{extra}{k}{value}\n")).unwrap_or_else(|e| panic!("{k}: {e:?}"));
            assert!(c.keyword_value(k).is_some(), "{k}");
            assert!(c.origin.contains_key(*k), "{k}");
            // A flag is one given without a value, and it is then on.
            assert_eq!(
                FLAG_KEYWORDS.contains(k),
                value.is_empty(),
                "{k} is a flag exactly when it takes no value"
            );
            if value.is_empty() {
                assert_eq!(c.keyword_value(k).as_deref(), Some("yes"), "{k}");
            }
        }
        assert_eq!(
            Config::builtin(&Paths::system()).keyword_value("BOGUS"),
            None
        );
    }

    #[test]
    fn all_keywords_accepted() {
        let c = parse(
            "SMARTHOST a.example b.example:2525\nPORT 25\nALIASES /a\nSPOOLDIR /s\nAUTHPATH /x\n\
             CERTFILE /c\nSECURETRANSFER\nSTARTTLS\nOPPORTUNISTIC_TLS\nINSECURE\nVERIFYCERT\n\
             FINGERPRINT 1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF\n\
             MAILNAME m.example\nMASQUERADE john@\nNULLCLIENT\nFULLBOUNCE\nMAILSPOOL /m\n\
             RESOLVER 127.0.0.1:5353 [::1]:53\nRELAYTABLE /r\nNOPIPELINING\n",
        )
        .unwrap();
        assert_eq!(c.smarthost.len(), 2);
        assert_eq!(c.resolver.len(), 2);
        assert!(c.null_client && c.full_bounce && c.insecure && c.verify_cert && c.no_pipelining);
        assert_eq!(c.spool_dir, PathBuf::from("/s"));
        assert_eq!(c.mail_spool, PathBuf::from("/m"));
    }

    /// PEM blocks framed as the deliverer's TLS code reads them: each one DER SEQUENCE
    /// (30 03 02 01 00); what is inside is for OpenSSL to read.
    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";

    /// A scratch directory for file checks.
    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("rsendmail-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Every file the configuration reads (the config itself, as `-C` names it, the
    /// MAILNAME file, RELAYTABLE, AUTHPATH, CERTFILE, CACertFile) names a byte order
    /// mark at its start, one inside a line and a NUL with the file and the line; a
    /// file it refers to that is missing is named with the config's file and line where
    /// it is referred to. All EX_CONFIG.
    #[test]
    fn every_file_names_a_byte_order_mark_a_nul_and_a_missing_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("faults");
        let conf = d.join("test.conf");
        let conf_name = conf.display().to_string();
        let missing = d.join("missing").display().to_string();
        const BOM: &str = "\u{feff}";
        let begins = "line 1: the file begins with a byte order mark (U+FEFF); save it without one";
        let nul2 = "line 2: a NUL octet; the file is not text";
        let inside2 = "line 2: an invisible byte order mark (U+FEFF) inside the line; remove it";
        // (the config line naming the file, with {f}; the file's good text; its mode)
        let files: [(&str, String, u32); 5] = [
            ("MAILNAME {f}", "mail.example\n".into(), 0o644),
            (
                "RELAYTABLE {f}",
                "example.org [127.0.0.1]:2525\n".into(),
                0o644,
            ),
            ("AUTHPATH {f}", "bob|smtp.example:pw\n".into(), 0o600),
            ("CERTFILE {f}", format!("{KEY_PEM}{CERT_PEM}"), 0o644),
            ("O CACertFile={f}", CERT_PEM.into(), 0o644),
        ];
        let run = |config: &str| -> Result<(), (Sysexit, String)> {
            std::fs::write(&conf, config).unwrap();
            let c = Config::load(&conf, true, &Paths::system(), &[])
                .map_err(|e| (e.code, e.message))?;
            c.check_files(&c.settings).map_err(|e| (e.code, e.message))
        };
        let base = "MAILNAME test.example\n";
        // The config file itself.
        for (text, want) in [
            (format!("{BOM}{base}"), begins),
            (format!("{base}SPOOL\0DIR /x\n"), nul2),
            (format!("{base}# a {BOM}comment\n"), inside2),
        ] {
            assert_eq!(
                run(&text),
                Err((Sysexit::Config, format!("{conf_name}: {want}"))),
                "{text:?}"
            );
        }
        for (line, good, mode) in files {
            let f = d.join("file").display().to_string();
            let config = |path: &str| {
                let named = line.replace("{f}", path);
                // The file is named on the config's line 2.
                if named.starts_with("MAILNAME") {
                    format!("# c\n{named}\n")
                } else {
                    format!("{base}{named}\n")
                }
            };
            let write = |text: &str| {
                std::fs::write(&f, text).unwrap();
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            };
            write(&good);
            assert_eq!(run(&config(&f)), Ok(()), "{line}");
            let (first, rest) = good.split_once('\n').unwrap();
            for (text, want) in [
                (format!("{BOM}{good}"), begins),
                (format!("{first}\n\0{rest}"), nul2),
                (format!("{first}\n{BOM}{rest}"), inside2),
            ] {
                write(&text);
                let got = run(&config(&f));
                if line.starts_with("MAILNAME") && !want.starts_with("line 1") {
                    // Only the MAILNAME file's first line is read.
                    assert_eq!(got, Ok(()), "{line}: {text:?}");
                    continue;
                }
                assert_eq!(
                    got,
                    Err((Sysexit::Config, format!("{f}: {want}"))),
                    "{line}: {text:?}"
                );
            }
            let got = run(&config(&missing));
            let verb = if line.starts_with("AUTHPATH") {
                "read"
            } else {
                "open"
            };
            let keyword = line
                .split([' ', '='])
                .find(|w| *w != "O")
                .unwrap_or_default();
            assert_eq!(
                got,
                Err((
                    Sysexit::Config,
                    format!(
                        "{conf_name}: line 2: cannot {verb} {keyword} {missing}: No such file or directory"
                    )
                )),
                "{line}"
            );
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn files_for_delivery_are_checked() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("files");
        let write = |name: &str, text: &str, mode: u32| {
            let p = d.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p.display().to_string()
        };
        let relays = write("relays", "example.org [127.0.0.1]:2525\n", 0o644);
        let bad_relays = write("bad-relays", "# c\nexample.org\n", 0o644);
        let auth = write("auth", "bob|smtp.example:pw\n", 0o600);
        let open_auth = write("open-auth", "bob|smtp.example:pw\n", 0o644);
        let bad_auth = write("bad-auth", "bob smtp.example pw\n", 0o600);
        let ca = write("ca.pem", CERT_PEM, 0o644);
        let key_and_cert = write("client.pem", &format!("{KEY_PEM}{CERT_PEM}"), 0o644);
        let cert_and_key = write("cert-key.pem", &format!("{CERT_PEM}{KEY_PEM}"), 0o644);
        let rsa_key = write(
            "rsa.pem",
            &format!("{}{CERT_PEM}", KEY_PEM.replace("PRIVATE", "RSA PRIVATE")),
            0o644,
        );
        let key_only = write("key.pem", KEY_PEM, 0o644);
        let begin_only = write("begin.pem", "-----BEGIN CERTIFICATE-----\n", 0o644);
        let passwd = write("passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644);
        // A file that is not the PEM text wanted: named with the line that names it.
        let no_cert = |p: &str| format!("{p}: no certificate in it (-----BEGIN CERTIFICATE-----)");
        let no_key = |p: &str| {
            format!(
                "test.conf: line 1: CERTFILE {p}: no private key in it (-----BEGIN PRIVATE KEY-----, or RSA \
                 PRIVATE KEY or EC PRIVATE KEY)"
            )
        };
        let dir = d.display();
        let missing = d.join("missing").display().to_string();
        let cases: Vec<(String, Option<String>)> = vec![
            (String::new(), None),
            (format!("RELAYTABLE {relays}\n"), None),
            (
                format!("RELAYTABLE {missing}\n"),
                Some(format!(
                    "test.conf: line 1: cannot open RELAYTABLE {missing}: No such file or directory"
                )),
            ),
            (
                format!("RELAYTABLE {bad_relays}\n"),
                Some(format!(
                    "{bad_relays}: line 2: expected: domain relay[:port]"
                )),
            ),
            (format!("AUTHPATH {auth}\n"), None),
            (
                format!("AUTHPATH {missing}\n"),
                Some(format!(
                    "test.conf: line 1: cannot read AUTHPATH {missing}: No such file or directory"
                )),
            ),
            (
                format!("AUTHPATH {open_auth}\n"),
                Some(format!(
                    "AUTHPATH {open_auth} is readable by others; refusing to use it (chmod o-r)"
                )),
            ),
            (
                format!("AUTHPATH {bad_auth}\n"),
                Some(format!("{bad_auth}: line 1: expected user|host:password")),
            ),
            (format!("O CACertFile={ca}\n"), None),
            (
                format!("O CACertFile={missing}\n"),
                Some(format!(
                    "test.conf: line 1: cannot open CACertFile {missing}: No such file or directory"
                )),
            ),
            (
                format!("O CACertFile={dir}\n"),
                Some(format!(
                    "test.conf: line 1: cannot open CACertFile {dir}: not a regular file (a directory)"
                )),
            ),
            (
                format!("CERTFILE {missing}\n"),
                Some(format!(
                    "test.conf: line 1: cannot open CERTFILE {missing}: No such file or directory"
                )),
            ),
            // The text is what the deliverer's TLS code reads: a certificate for
            // CACertFile; a PKCS#8 key first, then the certificate, for CERTFILE.
            (format!("O CACertFile={key_and_cert}\n"), None),
            (
                format!("O CACertFile={passwd}\n"),
                Some(format!(
                    "test.conf: line 1: CACertFile {}",
                    no_cert(&passwd)
                )),
            ),
            (
                format!("O CACertFile={key_only}\n"),
                Some(format!(
                    "test.conf: line 1: CACertFile {}",
                    no_cert(&key_only)
                )),
            ),
            (
                format!("O CACertFile={begin_only}\n"),
                Some(format!(
                    "test.conf: line 1: CACertFile {begin_only}: line 1: -----BEGIN CERTIFICATE----- \
                     has no END line"
                )),
            ),
            (format!("CERTFILE {key_and_cert}\n"), None),
            (
                format!("CERTFILE {passwd}\n"),
                Some(format!("test.conf: line 1: CERTFILE {}", no_cert(&passwd))),
            ),
            (format!("CERTFILE {ca}\n"), Some(no_key(&ca))),
            // Certificate and key in either order, the key in PKCS#8, PKCS#1 or SEC1 form.
            (format!("CERTFILE {cert_and_key}\n"), None),
            (format!("CERTFILE {rsa_key}\n"), None),
            (
                format!("CERTFILE {key_only}\n"),
                Some(format!(
                    "test.conf: line 1: CERTFILE {}",
                    no_cert(&key_only)
                )),
            ),
        ];
        for (text, want) in cases {
            let c = parse(&text).unwrap();
            let got = c.check_files(&c.settings).map_err(|e| {
                assert_eq!(e.code, Sysexit::Config, "{text:?}");
                e.message
            });
            assert_eq!(got, want.map_or(Ok(()), Err), "{text:?}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Every form of CERTFILE `openssl` writes is split into its parts, whatever the
    /// order; every broken one is refused with the reason and line.
    #[test]
    fn certfile_parts_in_any_order_and_form() {
        let block = |label: &str, body: &str| {
            format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
        };
        let der = "MAMCAQA=";
        let cert = block("CERTIFICATE", der);
        let cert2 = block("CERTIFICATE", "MAQCAgEB");
        for (label, extra) in [
            ("PRIVATE KEY", ""),
            ("RSA PRIVATE KEY", ""),
            (
                "EC PRIVATE KEY",
                "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n",
            ),
        ] {
            let key = format!("{extra}{}", block(label, der));
            for text in [
                format!("{key}{cert}"),
                format!("{cert}{key}"),
                format!("{cert}{key}{cert2}"),
                format!("Bag Attributes\n    localKeyID: 01\n{cert2}\r\n{cert}{key}"),
            ] {
                let parts =
                    identity_parts(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert_eq!(parts.key, block(label, der), "{text}");
                assert!(parts.certificates.contains(&cert), "{text}");
            }
        }
        let encrypted_rsa = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                             DEK-Info: AES-128-CBC,00\n\nMAMCAQA=\n-----END RSA PRIVATE KEY-----\n";
        // A key block cut, padded wrongly, not base64, empty, not a SEQUENCE, too long.
        let bad_key = ["MAMCAQ", "MAMC", "MAMC!QA=", "", "AgEA", "MAMCAQAA"].map(|body| {
            (
                format!("{cert}{}", block("PRIVATE KEY", body)),
                "line 4: the PRIVATE KEY block is not base64",
            )
        });
        for (text, why) in bad_key.into_iter().chain([
            (cert.clone(), "no private key in it"),
            (block("PRIVATE KEY", der), "no certificate in it"),
            (
                format!("{cert}{}", block("ENCRYPTED PRIVATE KEY", der)),
                "line 4: the private key is encrypted",
            ),
            (
                format!("{cert}{encrypted_rsa}"),
                "line 4: the private key is encrypted",
            ),
            (
                format!("{cert}{}", block("DSA PRIVATE KEY", der)),
                "line 4: a DSA PRIVATE KEY block",
            ),
            (
                format!("{cert}{}", block("OPENSSH PRIVATE KEY", der)),
                "line 4: a OPENSSH PRIVATE KEY block",
            ),
            (
                format!(
                    "{}{cert}{}",
                    block("PRIVATE KEY", der),
                    block("PRIVATE KEY", der)
                ),
                "line 7: a second private key",
            ),
            (
                format!(
                    "{}{}",
                    block("CERTIFICATE", "MAMC"),
                    block("PRIVATE KEY", der)
                ),
                "line 1: the CERTIFICATE block is not base64",
            ),
            (
                format!("{cert}-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n"),
                "line 4: -----BEGIN PRIVATE KEY----- has no END line",
            ),
            (
                format!("-----BEGIN CERTIFICATE-----\n{}", block("PRIVATE KEY", der)),
                "line 1: -----BEGIN CERTIFICATE----- has no END line",
            ),
            (String::new(), "no certificate in it"),
        ]) {
            let got = identity_parts(text.as_bytes()).expect_err(&text);
            assert!(got.starts_with(why), "{text}: {got}");
            assert_eq!(check_pem("CERTFILE", text.as_bytes()).err(), Some(got));
        }
        // Long-form DER lengths.
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend([0u8; 256]);
        assert!(whole_der(&long));
        assert!(!whole_der(&long[..long.len() - 1]));
        assert!(!whole_der(&[0x30, 0x80]));
        assert!(!whole_der(&[]));
    }

    #[test]
    fn relay_table_syntax() {
        let t = parse_relay_table(
            "# comment\nexample.org a.relay\n.example.org b.relay:26 # near\n* [c.relay]\n\
             a.example [192.0.2.1]:65535\nb.example [::1]:1\nc.example ::1\nd.example a_b.relay\n",
            "t",
            25,
        )
        .unwrap();
        let got: Vec<(&str, &str, u16)> = t
            .iter()
            .map(|r| (r.pattern.as_str(), r.host.as_str(), r.port))
            .collect();
        assert_eq!(
            got,
            [
                ("example.org", "a.relay", 25),
                (".example.org", "b.relay", 26),
                ("*", "[c.relay]", 25),
                ("a.example", "[192.0.2.1]", 65535),
                ("b.example", "[::1]", 1),
                ("c.example", "::1", 25),
                ("d.example", "a_b.relay", 25),
            ]
        );
        assert!(t.iter().all(|r| !r.by_mx));
        let mx = parse_relay_table("direct.example mx:\n* MX:\n", "t", 25).unwrap();
        assert!(mx.iter().all(|r| r.by_mx && r.host.is_empty()));
        // `mx` without the colon is a host named mx, as before.
        assert!(!parse_relay_table("a.example mx\n", "t", 25).unwrap()[0].by_mx);
        let errors = [
            ("example.org\n", "rt: line 1: expected: domain relay[:port]"),
            ("\na b c\n", "rt: line 2: expected: domain relay[:port]"),
            ("ex/ample relay\n", "rt: line 1: invalid domain ex/ample"),
            (". relay\n", "rt: line 1: invalid domain ."),
            // A relay the deliverer could never reach is refused with its line.
            (
                "example.org relay:x\n",
                "rt: line 1: invalid relay relay:x: port x is not a number from 1 to 65535",
            ),
            (
                "remote.example 127.0.0.1:0\n",
                "rt: line 1: invalid relay 127.0.0.1:0: port 0 is not a number from 1 to 65535",
            ),
            (
                "remote.example relay:65536\n",
                "rt: line 1: invalid relay relay:65536: port 65536 is not a number from 1 to 65535",
            ),
            (
                "remote.example relay:+25\n",
                "rt: line 1: invalid relay relay:+25: port +25 is not a number from 1 to 65535",
            ),
            (
                "remote.example relay:\n",
                "rt: line 1: invalid relay relay:: no port after ':'",
            ),
            // `mx:` takes nothing after it, in any case.
            (
                "d2.example mx:127.0.0.2\n",
                "rt: line 1: invalid relay mx:127.0.0.2: mx: takes no host or port (mx: alone sends to the domain's MX hosts; a host named mx is [mx] or mx.domain)",
            ),
            (
                "d2.example MX:25\n",
                "rt: line 1: invalid relay MX:25: mx: takes no host or port (mx: alone sends to the domain's MX hosts; a host named mx is [mx] or mx.domain)",
            ),
            (
                "d2.example mx::\n",
                "rt: line 1: invalid relay mx::: mx: takes no host or port (mx: alone sends to the domain's MX hosts; a host named mx is [mx] or mx.domain)",
            ),
            (
                "remote.example [relay]:\n",
                "rt: line 1: invalid relay [relay]:: no port after ':'",
            ),
            (
                "remote.example bad..host\n",
                "rt: line 1: invalid relay bad..host: empty label",
            ),
            (
                "remote.example -relay.example\n",
                "rt: line 1: invalid relay -relay.example: label -relay begins or ends with a hyphen",
            ),
            (
                "remote.example [bad..host]:25\n",
                "rt: line 1: invalid relay [bad..host]:25: empty label",
            ),
            (
                "remote.example :25\n",
                "rt: line 1: invalid relay :25: no host",
            ),
            (
                "remote.example []\n",
                "rt: line 1: invalid relay []: no host",
            ),
            (
                "remote.example [relay\n",
                "rt: line 1: invalid relay [relay: no ']' after '['",
            ),
            (
                "remote.example [relay]x\n",
                "rt: line 1: invalid relay [relay]x: x after ']'",
            ),
            (
                "remote.example 1::2::3\n",
                "rt: line 1: invalid relay 1::2::3: not an IPv6 address (with a port: [address]:port)",
            ),
            (
                "example.org re lay\n",
                "rt: line 1: expected: domain relay[:port]",
            ),
        ];
        for (text, want) in errors {
            let e = parse_relay_table(text, "rt", 25).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (Sysexit::Config, want),
                "{text:?}"
            );
        }
    }

    /// A relay table's domain longer than DNS allows (RFC 1035: 253 octets, a label 63),
    /// as written or as its A-labels, is refused with its line (EX_CONFIG), a long one
    /// shown cut with its length; 253 octets and labels of 63 are taken.
    #[test]
    fn a_relay_table_domain_longer_than_dns_allows_is_refused() {
        let label = |n: usize| "a".repeat(n);
        let longest = format!("{}.{}.{}.{}", label(63), label(63), label(63), label(61));
        assert_eq!(longest.len(), 253);
        for ok in [
            longest.clone(),
            format!(".{longest}"),
            format!("{}.example", label(63)),
        ] {
            let text = format!("{ok} relay.example\n");
            assert!(parse_relay_table(&text, "rt", 25).is_ok(), "{ok}");
        }
        let huge = format!("{}.example", label(300_000));
        for (domain, why) in [
            (
                format!("x{longest}"),
                "longer than 253 octets (254 octets)".to_string(),
            ),
            (
                format!(".x{longest}"),
                "longer than 253 octets (254 octets)".to_string(),
            ),
            (
                format!("{}.example", label(64)),
                "a label longer than 63 octets (64 octets)".to_string(),
            ),
            (
                format!("{}\u{fc}.example", label(60)),
                "a label longer than 63 octets (68 octets)".to_string(),
            ),
            (
                huge.clone(),
                "longer than 253 octets (300008 octets)".to_string(),
            ),
        ] {
            let text = format!("# relays\n{domain} relay.example\n");
            let e = parse_relay_table(&text, "rt", 25).unwrap_err();
            assert_eq!(e.code, Sysexit::Config, "{domain}");
            assert!(
                e.message.starts_with("rt: line 2: invalid domain ")
                    && e.message.ends_with(&format!(": {why}")),
                "{}",
                e.message
            );
            assert!(e.message.len() < 600, "{} octets", e.message.len());
        }
        // A file not everyone may read: its text is not quoted.
        let e = parse_relay_table_quoting(&format!("{huge} r\n"), "rt", 25, false).unwrap_err();
        assert!(!e.message.contains("aaaa"), "{}", e.message);
    }

    /// A domain on two lines of the relay table, however it is written (case, a
    /// trailing dot, U-labels or A-labels), is refused with both lines; so is a host on
    /// two lines of auth.conf (which never quotes the file's text). Different patterns
    /// for one domain (`a.example`, `.a.example`) are not the same line.
    #[test]
    fn a_domain_or_host_on_two_lines_of_a_table_is_refused_with_both_lines() {
        for (text, want) in [
            (
                "Example.ORG r1\nexample.org r2\n",
                "rt: line 2: domain example.org is already routed by rt: line 1 (Example.ORG)",
            ),
            (
                "bücher.example r1\n# c\nxn--bcher-kva.example r2\n",
                "rt: line 3: domain xn--bcher-kva.example is already routed by rt: line 1 (bücher.example)",
            ),
            (
                "a.example. r1\nA.example r2\n",
                "rt: line 2: domain A.example is already routed by rt: line 1 (a.example.)",
            ),
            (
                ".Bücher.example r1\n.xn--bcher-kva.example. mx:\n",
                "rt: line 2: domain .xn--bcher-kva.example. is already routed by rt: line 1 (.Bücher.example)",
            ),
            (
                "* r1\nz.example r\n* mx:\n",
                "rt: line 3: domain * is already routed by rt: line 1 (*)",
            ),
        ] {
            let e = parse_relay_table(text, "rt", 25).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (Sysexit::Config, want),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_relay_table("a.example r1\n.a.example r2\n", "rt", 25)
                .unwrap()
                .len(),
            2
        );
        for text in [
            "u|Smtp.Example:secret1\nv|smtp.example:secret2\n",
            "u|bücher.example:secret1\nu|xn--bcher-kva.example:secret2\n",
        ] {
            let e = parse_auth(text, "auth").unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    Sysexit::Config,
                    "auth: line 2: the host of auth: line 1 again; one line per host"
                ),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_auth("u|a.example:p\nu|b.example:p\n", "auth")
                .unwrap()
                .len(),
            2
        );
    }

    /// SMARTHOST and RESOLVER take the relay table's hosts, and RESOLVER addresses only.
    #[test]
    fn hosts_are_checked_as_relays_are() {
        let c = parse("SMARTHOST a.example [192.0.2.1]:587,b.example:2525\n").unwrap();
        assert_eq!(
            c.smarthost,
            ["a.example", "[192.0.2.1]:587", "b.example:2525"]
        );
        let c = parse("RESOLVER 127.0.0.1:5353 [::1]:53 ::1\n").unwrap();
        assert_eq!(c.resolver.len(), 3);
        let errors = [
            (
                "SMARTHOST a.example h:0\n",
                "invalid SMARTHOST h:0: port 0 is not a number from 1 to 65535",
            ),
            (
                "SMARTHOST bad..host\n",
                "invalid SMARTHOST bad..host: empty label",
            ),
            ("SMARTHOST []:25\n", "invalid SMARTHOST []:25: no host"),
            (
                "RESOLVER 127.0.0.1:0\n",
                "invalid RESOLVER 127.0.0.1:0: port 0 is not a number from 1 to 65535",
            ),
            (
                "RESOLVER dns.example\n",
                "invalid RESOLVER dns.example: not an IP address",
            ),
        ];
        for (text, want) in errors {
            let e = parse(text).unwrap_err();
            assert_eq!(
                (e.code, e.message),
                (Sysexit::Config, format!("test.conf: line 1: {want}")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn host_port() {
        assert_eq!(parse_host_port("a.b:25"), Some(("a.b".into(), Some(25))));
        assert_eq!(
            parse_host_port("[::1]:53"),
            Some(("[::1]".into(), Some(53)))
        );
        assert_eq!(parse_host_port("a b"), None);
        assert_eq!(parse_host_port("a:x"), None);
    }

    mod props {
        use super::*;
        use crate::options::{ACTED_ON, OPTION_TABLE};
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// A config line: a keyword (dma's, ours, `O`, `O<letter>`, or any word), a blank
        /// or not, and a value (an option assignment, a number, or any text).
        fn line() -> impl Strategy<Value = String> {
            let keywords: Vec<String> = KEYWORDS
                .iter()
                .chain(&[
                    "O",
                    "O",
                    "O",
                    "Od",
                    "Odq",
                    "OQ",
                    "Oé",
                    "O\u{2028}",
                    "#",
                    "UNKNOWN",
                ])
                .map(|k| k.to_string())
                .collect();
            let names: Vec<String> = ACTED_ON
                .iter()
                .map(|(n, _)| n.to_string())
                .chain(OPTION_TABLE.iter().map(|d| d.name.to_string()))
                .chain(["Timeout.é", "Deliv", "D", "", "Timeout"].map(String::from))
                .collect();
            let value = prop_oneof![
                3 => (select(names), select(&["=", " = ", "", "=="][..]), "\\PC{0,12}|[0-9smhdw]{0,30}|-?[0-9]{1,25}")
                    .prop_map(|(n, eq, v)| format!("{n}{eq}{v}")),
                1 => "[0-9]{0,25}|[\\[\\]a-z0-9.:, ]{0,30}",
                1 => "\\PC{0,40}",
            ];
            let keyword = prop_oneof![4 => select(keywords), 1 => "\\PC{0,8}"];
            (
                keyword,
                select(&[" ", "\t", "  ", "", " \u{3000}"][..]),
                proptest::option::of(value),
                any::<bool>(),
            )
                .prop_map(|(k, sep, v, cr)| {
                    let mut l = format!("{k}{sep}{}", v.unwrap_or_default());
                    if cr {
                        l.push('\r');
                    }
                    l
                })
        }

        /// Lines that are read without an error (and blank and comment lines).
        fn good_line() -> impl Strategy<Value = String> {
            select(
                &[
                    "",
                    "# comment",
                    "   ",
                    "\r",
                    "SMARTHOST mx.example.org:587",
                    "PORT 2525",
                    "O DeliveryMode=q",
                    "O Timeout.connect = 30s",
                    "Odb",
                    "DEFER",
                    "STARTTLS",
                    "MASQUERADE example.org",
                    "O MaxMessageSize=1000",
                    "  # indented comment",
                ][..],
            )
            .prop_map(String::from)
        }

        fn text() -> impl Strategy<Value = String> {
            let any_line = prop_oneof![2 => good_line(), 1 => line()];
            prop_oneof![
                4 => vec(any_line, 0..10).prop_map(|v| v.join("\n")),
                1 => "[\\PC\r\n\t]{0,200}",
            ]
        }

        /// The comment rule as a scan of characters: a `#` after the first character
        /// ends the value unless `\\` (dropped) or `$` is before it.
        fn strip_by_chars(line: &str) -> String {
            let mut out = String::new();
            for c in line.chars() {
                if c == '#' && !out.is_empty() {
                    if out.ends_with('\\') {
                        out.pop();
                    } else if !out.ends_with('$') {
                        return out.trim_end().to_string();
                    }
                }
                out.push(c);
            }
            out
        }

        proptest! {
            #[test]
            fn a_comment_ends_a_line_where_the_character_scan_ends_it(
                line in "[a# \\\\$é=O]{0,24}"
            ) {
                prop_assert_eq!(strip_cf_comment(&line), strip_by_chars(&line));
            }

            #[test]
            fn any_config_text_is_read_or_refused_with_its_line(text in text()) {
                let Err(f) = parse(&text) else {
                    return Ok(());
                };
                let rest = f.message.strip_prefix("test.conf: line ");
                prop_assert!(rest.is_some(), "{}", f.message);
                let (n, why) = rest.unwrap_or_default().split_once(": ").unwrap_or_default();
                prop_assert!(!why.is_empty(), "{}", f.message);
                let n: usize = n.parse().map_err(|_| TestCaseError::fail(f.message.clone()))?;
                // The line exists, and it is one the parser reads (not blank, not a
                // comment).
                let line = text.lines().nth(n.wrapping_sub(1));
                prop_assert!(line.is_some(), "line {} of {:?}", n, text);
                let line = line.unwrap_or_default().trim_end_matches('\r').trim();
                prop_assert!(!line.is_empty() && !line.starts_with('#'), "{:?}", line);
                prop_assert!(matches!(f.code, Sysexit::Config | Sysexit::Usage), "{:?}", f.code);
            }

            /// A trailing comment changes nothing: on a keyword line (dma's rule) and on
            /// an `O` line (sendmail.cf's), after blanks or none.
            #[test]
            fn a_trailing_comment_changes_nothing(
                lines in vec(good_line(), 1..8),
                sep in select(&[" ", "\t", "   ", ""][..]),
                // Not a NUL or a byte order mark: those are named on any line
                // (`every_file_names_a_byte_order_mark_a_nul_and_a_missing_file`).
                note in "[^\r\n\0\u{feff}]{0,20}",
            ) {
                let plain = parse(&lines.join("\n"));
                let noted: Vec<String> = lines
                    .iter()
                    .map(|l| format!("{}{sep}#{note}", l.trim_end_matches('\r')))
                    .collect();
                prop_assert_eq!(parse(&noted.join("\n")), plain);
            }

            /// Any PEM-ish text (blocks of the labels the check knows, any base64 or
            /// bytes, DER-framed or not, in any order) is split or refused with a reason,
            /// never a panic; a refusal with a line names one that exists.
            #[test]
            fn any_pem_text_is_split_or_refused(
                blocks in vec(
                    (
                        select(&["CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
                                 "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY", "EC PARAMETERS", "X"][..]),
                        prop_oneof![
                            vec(any::<u8>(), 0..80).prop_map(|d| {
                                let mut der = vec![0x30, d.len().min(127) as u8];
                                der.extend(d.iter().take(127));
                                crate::base64::encode(&der)
                            }),
                            "[A-Za-z0-9+/=]{0,40}",
                            "\\PC{0,20}",
                        ],
                        any::<bool>(),
                    ),
                    0..5,
                ),
                junk in "[\\PC\r\n]{0,30}",
            ) {
                let mut text = junk.clone();
                for (label, body, end) in &blocks {
                    text.push_str(&format!("\n-----BEGIN {label}-----\n{body}\n"));
                    if *end {
                        text.push_str(&format!("-----END {label}-----\n"));
                    }
                }
                for r in [identity_parts(text.as_bytes()).map(|_| ()), check_pem("CACertFile", text.as_bytes())] {
                    if let Err(why) = r {
                        prop_assert!(!why.is_empty());
                        if let Some(n) = why.strip_prefix("line ").and_then(|r| r.split_once(':')).and_then(|(n, _)| n.parse::<usize>().ok()) {
                            prop_assert!(n >= 1 && n <= text.split('\n').count(), "{}", why);
                        }
                    }
                }
                let _ = der_tlv(text.as_bytes());
                let _ = certificate_public(text.as_bytes());
                let _ = private_key_public("PRIVATE KEY", text.as_bytes());
            }

            #[test]
            fn relay_tables_and_auth_files_are_read_or_refused_with_their_line(text in text()) {
                for r in [
                    parse_relay_table(&text, "relays", 25).err(),
                    parse_auth(&text, "auth").err(),
                ]
                .into_iter()
                .flatten()
                {
                    let n = r
                        .message
                        .split_once(": line ")
                        .and_then(|(_, rest)| rest.split_once(':'))
                        .and_then(|(n, _)| n.parse::<usize>().ok());
                    prop_assert!(n.is_some_and(|n| n >= 1 && n <= text.lines().count()), "{}", r.message);
                }
                let _ = host_list(&text);
                let _ = parse_host_port(&text);
            }
        }
    }
}

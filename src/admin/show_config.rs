//! `rsendmail-admin config [-O NAME=VALUE]... [-o LETTERVALUE]...`: the effective
//! configuration, one line a setting: every keyword of rsendmail.conf
//! ([`config::KEYWORDS`]) and every option of sendmail's table and rsendmail's
//! ([`options::OPTION_TABLE`]), each with its value and, after `#`, where it came from:
//! `default`, `FILE: line N`, or `command line` (the `-O`/`-o` given after `config`, read
//! as sendmail reads them on its own command line: such an option is not read from the
//! file at all). An option rsendmail acts on that is not set shows its built-in value
//! ([`options::builtin_default`]: `O MaxHopCount=25    # default`), or the keyword whose
//! value it takes (`O QueueDirectory=/var/spool/rsendmail    # default (SPOOLDIR)`), or
//! what applies without one, as a comment (`# O PidFile    # default: no pid file`); each
//! `Timeout.<name>` rsendmail uses is listed so. An option rsendmail accepts for
//! sendmail's sake without acting on it says so (`# O HelpFile    # not used by
//! rsendmail`). A keyword not set and
//! without a built-in value says `default (not set)`.
//!
//! Values are shown as written (`O Timeout.connect=30s`), PrivacyOptions, whose settings
//! add up, all of them joined by commas; an option each of whose lines means one more
//! thing ([`options::one_line_each`]: DaemonPortOptions, ClientPortOptions) one line a
//! setting, each with its own origin; a boolean given
//! without a value as `true` (`O Verp=true    # FILE: line 3 (given without a value)`).
//! MAILNAME not set names the host name used instead; the queue timeouts set by
//! sendmail's `QueueTimeout` show the value in force and what set it; a `-o` letter of no option is named in a `#` line (ignored, as sendmail
//! ignores it). Credentials are
//! never shown: AUTHPATH is the name of the file that holds them, which is not read for
//! this. A configuration or option in error is refused as every program refuses it
//! (its message, with the file and line, on stderr; EX_CONFIG, a bad option given after
//! `config` too, as `check` fails it); when the file has several lines in error, each is named,
//! as `check` names them. A file's line for an option also given after `config`
//! is still checked: it is refused as a run without that option would refuse it.
//!
//! The output read back as a configuration file (`-C`) means the same: a flag keyword
//! that is on is shown alone (`STARTTLS    # FILE: line 4`), one that is off as a
//! comment (`# STARTTLS    # default (off)`), and so is a keyword not set
//! (`# CERTFILE    # default (not set)`).
//!
//! `O QueueDirectory` overrides SPOOLDIR: the SPOOLDIR line then shows the spool in force
//! and what set it (`SPOOLDIR /dir    # command line (O QueueDirectory), over FILE: line 1`).
//!
//! `DEFER` is `O DeliveryMode=d` at its line: a later `O DeliveryMode` line or the
//! command line overrides it, and both lines say so (`# DEFER    # FILE: line 1,
//! overridden by O DeliveryMode=b (FILE: line 2)`, commented out as it is off;
//! `O DeliveryMode=d    # FILE: line 1 (DEFER)` when DEFER is the last word).

use super::Context;
use crate::app;
use crate::config;
use crate::exit::Sysexit;
use crate::options::{self, ACTED_ON, Builtin, OPTION_TABLE};
use std::ffi::OsString;

/// The sendmail argv that reads the configuration `ctx` names, with its options
/// ([`Context::options`]).
pub fn config_argv(ctx: &Context) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["sendmail".into()];
    if let Some(c) = &ctx.config {
        argv.push("-C".into());
        argv.push(c.clone().into_os_string());
    }
    argv.extend(ctx.options.iter().cloned());
    argv
}

/// `f` with each character of its message that is not [`crate::text::is_safe`] (a
/// control character of the line or the `-O` value it quotes) as its octets in octal,
/// its line ends kept ([`crate::text::escaped_lines`]: a message of two lines, such as a
/// missing spool and the typo it may be).
fn escaped(mut f: crate::exit::Fatal) -> crate::exit::Fatal {
    f.message = crate::text::escaped_lines(&f.message).into_owned();
    f
}

/// The refusal of a configuration in error: when it is a line of the file, every line
/// of the file in error, as `check` lists them (each set aside and the file read
/// again), so that one typo does not hide the next; else `f` alone. EX_CONFIG.
pub fn refused(ctx: &Context, mut f: crate::exit::Fatal) -> Sysexit {
    // A line of the file in error is a configuration in error here, whatever status
    // the programs give it (a bad delivery mode keeps sendmail's EX_USAGE there).
    if f.code == Sysexit::Usage {
        f.code = Sysexit::Config;
    }
    let path = ctx.config.clone().unwrap_or_else(config::system_config);
    let name = path.display().to_string();
    let problems = match super::check::read_config_text(ctx, &path) {
        Ok((text, quoted, mut not_utf8)) => {
            not_utf8.extend(super::check::file_problems(&text, &name, quoted));
            not_utf8
        }
        Err(_) => Vec::new(),
    };
    if problems.len() < 2 || !problems.contains(&f.message) {
        return app::report(&super::on_stderr(escaped(f)));
    }
    for p in &problems {
        // A line of the file quoted in it: its control characters as octets in octal.
        let p = crate::text::escaped_lines(p);
        crate::errln!("{p}");
        if !crate::log::to_stderr() {
            log::error!("{p}");
        }
    }
    f.code
}

/// One line of [`show`]'s listing: every character that is not
/// [`crate::text::is_safe`] (ESC, CR, DEL, C1, ...) in a value of the file or of `-O`,
/// a path, the mail name or the host name as its octets in octal
/// ([`crate::text::escaped`], as mailq and the log show them), and each long word cut
/// ([`crate::text::message_bounded`]): nothing from outside acts on the terminal.
macro_rules! shown {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        let line = crate::text::escaped(&line);
        crate::outln!("{}", crate::text::message_bounded(&line));
    }};
}

/// Print the configuration; see the module.
pub fn show(ctx: &Context, options_given: &[String], letters: &[String]) -> Sysexit {
    // An option given here is not read from the file at all (sendmail's rule, which the
    // programs follow), so a bad line for it would go unseen: the file is read alone
    // first, and its errors are reported as every program run without the option
    // reports them.
    if !(options_given.is_empty() && letters.is_empty())
        && let Err(f) = app::setup(config_argv(ctx))
    {
        return refused(ctx, f);
    }
    let mut argv = config_argv(ctx);
    for l in letters {
        argv.push(format!("-o{l}").into());
    }
    for o in options_given {
        argv.push("-O".into());
        argv.push(o.into());
    }
    let s = match app::setup(argv) {
        Ok(s) => s,
        // The file read alone was fine: the options given are in error. A setting
        // tried and refused is a configuration in error, as `check` says of it (one
        // fault, one code), not sendmail's status for its command line (70, 64).
        Err(mut f) => {
            f.code = Sysexit::Config;
            let words = super::Context::option_words(letters, options_given);
            f.message = super::options_shown(&f.message, &words);
            return refused(ctx, f);
        }
    };
    // What it says is the configuration's: one someone the caller does not trust could
    // change (a user's file, or a link she made to another) is refused, as every
    // program refuses it, never shown as what is in force.
    if let Err(f) = s
        .cfg
        .check_config_trust(&s.settings, app::maillog_group(&s))
    {
        return app::report(&super::on_stderr(escaped(f)));
    }
    // A configuration every program refuses (a spool in another spool's tree, a file it
    // names in error: an auth.conf with a repeated host or an empty password, a relay
    // table, a certificate) is refused here too, by their own checks, with the file and
    // line: 78, never shown as what is in force.
    if let Err(f) = s
        .spool
        .check_not_nested()
        .and_then(|()| s.cfg.check_files(&s.settings))
    {
        return app::report(&super::on_stderr(escaped(f)));
    }
    if let Some(w) = super::check::delivery_mode_rest(&s.cfg) {
        crate::errln!("rsendmail-admin: warning: {}", crate::text::escaped(&w));
    }
    let file = match &s.cfg.file {
        Some(p) => p.display().to_string(),
        None => "none (built-in settings)".to_string(),
    };
    shown!("# configuration file: {file}");
    let command_line = &s.inv.settings.given;
    for k in config::KEYWORDS {
        let origin = s.cfg.origin.get(*k).map(String::as_str);
        if let (&"DEFER", Some(o)) = (k, origin) {
            // DEFER is `O DeliveryMode=d` at its line: a later `O DeliveryMode` or the
            // command line overrides it, as the programs decide the mode.
            let deferred = s.settings.delivery_mode == Some(options::DeliveryMode::Deferred);
            let by_line = command_line.iter().any(|g| g == "DeliveryMode");
            let winner = s.cfg.origin.get("O DeliveryMode").map(String::as_str);
            let overridden = by_line || winner.is_some_and(|w| !w.ends_with("(DEFER)"));
            // Off: the line as a comment, so that the output read as a file means
            // what it says.
            let line = if deferred { "DEFER" } else { "# DEFER" };
            match s.settings.written.iter().find(|(k, _)| k == "DeliveryMode") {
                Some((_, v)) if overridden => shown!(
                    "{line}    # {o}, overridden by O DeliveryMode={v} ({})",
                    if by_line {
                        "command line"
                    } else {
                        winner.unwrap_or("default")
                    }
                ),
                _ => shown!("{line}    # {o}"),
            }
            continue;
        }
        // `O QueueDirectory` (the file's or the command line's) overrides SPOOLDIR: the
        // line shows the spool in force and what set it, as the option's line does.
        if *k == "SPOOLDIR"
            && let Some(q) = &s.settings.queue_directory
        {
            let by = if command_line.iter().any(|g| g == "QueueDirectory") {
                "command line".to_string()
            } else {
                s.cfg
                    .origin
                    .get("QueueDirectory")
                    .cloned()
                    .unwrap_or_else(|| "default".into())
            };
            let over = origin.map(|o| format!(", over {o}")).unwrap_or_default();
            // Cut when huge, as the option's own line is.
            let q = q.display().to_string();
            let q = crate::text::escaped(&q);
            shown!(
                "{k} {}    # {by} (O QueueDirectory){over}",
                crate::text::message_bounded(&q)
            );
            continue;
        }
        // `O AliasFile` (the file's or the command line's) overrides ALIASES: the line
        // says so and which is in force, as the option's line does. It stays a line (read
        // back, the option still wins), its value as set.
        if *k == "ALIASES"
            && s.settings.alias_file.is_some()
            && let Some(v) = s.cfg.keyword_value(k)
        {
            let by = if command_line.iter().any(|g| g == "AliasFile") {
                "command line".to_string()
            } else {
                s.cfg
                    .origin
                    .get("O AliasFile")
                    .cloned()
                    .unwrap_or_else(|| "default".into())
            };
            let over = s
                .settings
                .written
                .iter()
                .find(|(k, _)| k == "AliasFile")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            shown!(
                "{k} {}    # {}, overridden by O AliasFile={} ({by})",
                crate::text::message_bounded(&v),
                origin.unwrap_or("default"),
                crate::text::message_bounded(over)
            );
            continue;
        }
        // A flag is given alone; one that is off, or a keyword not set, is shown as a
        // comment: the output read back as a configuration file means the same.
        let flag = config::FLAG_KEYWORDS.contains(k);
        match (s.cfg.keyword_value(k), origin) {
            (Some(v), Some(o)) if flag && v == "yes" => shown!("{k}    # {o}"),
            (Some(_), Some(o)) if flag => shown!("# {k}    # {o} (off)"),
            (Some(_), None) if flag => shown!("# {k}    # default (off)"),
            (Some(v), Some(o)) => {
                shown!("{k} {}    # {o}", crate::text::message_bounded(&v))
            }
            (Some(v), None) => {
                shown!("{k} {}    # default", crate::text::message_bounded(&v))
            }
            // The name in force without one is the host's (what `check` says too).
            (None, _) if *k == "MAILNAME" => {
                shown!("# {k}    # default: the host name ({})", s.cfg.host_name())
            }
            (None, _) => shown!("# {k}    # default (not set)"),
        }
    }
    let origin_of = |def: &options::OptDef, key: &str| {
        let in_file = s.cfg.origin.get(&format!("O {key}"));
        let on_line = command_line.iter().any(|g| g == key);
        match (in_file, on_line) {
            (Some(f), true) if options::adds_up(def) => format!("{f}, command line"),
            (_, true) => "command line".to_string(),
            (Some(f), false) => f.clone(),
            (None, false) => "default".to_string(),
        }
    };
    let written = |key: &str| {
        s.settings
            .written
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    // What sets a queue timeout besides its own name (sendmail's old `QueueTimeout`),
    // with where it was set.
    // `QueueTimeout=RETURN[/WARN]` sets the warning time only with its `/WARN` part.
    let also_set_by = |name: &str| -> Vec<String> {
        let others: &[&str] = match name {
            "Timeout.queuereturn" | "Timeout.queuewarn" => &["QueueTimeout"],
            _ => &[],
        };
        others
            .iter()
            .filter(|o| match written(o) {
                Some(v) if name == "Timeout.queuewarn" => v.contains('/'),
                Some(_) => true,
                None => false,
            })
            .map(|o| {
                let def = options::lookup_long(o).map(|r| r.def);
                let at = def.map(|d| origin_of(d, o)).unwrap_or_default();
                format!("O {o}, {at}")
            })
            .collect()
    };
    // An acted-on option: its value and origin, or its built-in value.
    // The value the programs use: the settings', else the built-in one.
    let in_force = |name: &str| {
        s.settings
            .value_text(name)
            .filter(|v| !v.is_empty())
            .or_else(|| match options::builtin_default(name) {
                Some(Builtin::Value(v, _)) => Some(v),
                _ => None,
            })
    };
    let acted_on = |def: &options::OptDef, name: &str| match written(name) {
        _ if !also_set_by(name).is_empty() => shown!(
            "O {name}={}    # set by {}{}",
            in_force(name).unwrap_or_else(|| "?".into()),
            also_set_by(name).join("; "),
            written(name)
                .map(|_| format!("; O {name}, {}", origin_of(def, name)))
                .unwrap_or_default()
        ),
        // A boolean given without a value is true, as in sendmail.
        Some("") if ACTED_ON.contains(&(name, options::Kind::Bool)) => shown!(
            "O {name}=true    # {} (given without a value)",
            origin_of(def, name)
        ),
        // Given empty (`O DeliveryMode=`): what that means to the programs.
        Some("") => match in_force(name) {
            Some(v) => shown!(
                "O {name}={}    # {} (given empty)",
                crate::text::message_bounded(&v),
                origin_of(def, name)
            ),
            None => shown!("O {name}    # {} (given empty)", origin_of(def, name)),
        },
        // The aliases file in force, over ALIASES (whose line says so too).
        // A file's delivery mode of which the first character alone is read.
        Some(v)
            if name == "DeliveryMode"
                && !command_line.iter().any(|g| g == name)
                && let Some(c) = options::DeliveryMode::ignored_rest(v) =>
        {
            shown!(
                "O {name}={c}    # {} (written {}: only its first character is read)",
                origin_of(def, name),
                crate::text::message_bounded(v)
            )
        }
        Some(v) if name == "AliasFile" => shown!(
            "O {name}={}    # {} (in effect, over ALIASES)",
            crate::text::message_bounded(v),
            origin_of(def, name)
        ),
        Some(v) => shown!(
            "O {name}={}    # {}",
            crate::text::message_bounded(v),
            origin_of(def, name)
        ),
        // QueueTimeout without its `/WARN` part: the warning time is the built-in one.
        None if name == "Timeout.queuewarn" && written("QueueTimeout").is_some() => {
            shown!(
                "O {name}={}    # default (O QueueTimeout={} sets no warning time: it has \
                 no /WARN part)",
                in_force(name).unwrap_or_else(|| "?".into()),
                written("QueueTimeout").unwrap_or_default()
            )
        }
        None => match options::builtin_default(name) {
            // PrivacyOptions' default is added by `app::setup` and is in the settings.
            _ if name == "PrivacyOptions" => shown!(
                "O {name}={}    # default",
                s.settings.privacy_flags.join(",")
            ),
            // No value by default (RelayDomains): said in words, never `NAME=`.
            Some(Builtin::Value(v, note)) if v.is_empty() => {
                shown!("# O {name}    # default: {}", note.unwrap_or("not set"))
            }
            Some(Builtin::Value(v, Some(note))) => {
                shown!("O {name}={v}    # default ({note})")
            }
            Some(Builtin::Value(v, None)) => shown!("O {name}={v}    # default"),
            Some(Builtin::Keyword(k)) => shown!(
                "O {name}={}    # default ({k})",
                s.cfg.keyword_value(k).unwrap_or_default()
            ),
            Some(Builtin::Unset(what)) => shown!("# O {name}    # default: {what}"),
            None => shown!("# O {name}    # default"),
        },
    };
    for def in OPTION_TABLE {
        if def.name == "Timeout" {
            // Each timeout rsendmail uses, then those given that it does not use.
            for (name, _) in ACTED_ON.iter().filter(|(n, _)| n.starts_with("Timeout.")) {
                acted_on(def, name);
            }
            for (key, value) in s.settings.written.iter().filter(|(k, _)| {
                (k == "Timeout" || k.starts_with("Timeout."))
                    && options::builtin_default(k).is_none()
            }) {
                shown!(
                    "O {key}={}    # {} (not used by rsendmail)",
                    crate::text::message_bounded(value),
                    origin_of(def, key)
                );
            }
        } else if options::one_line_each(def.name) && written(def.name).is_some() {
            // Each line means one more thing (one more listener): one line each, with
            // its own origin, so that the output read back means the same.
            let used = if ACTED_ON.iter().any(|(n, _)| *n == def.name) {
                ""
            } else {
                " (not used by rsendmail)"
            };
            let from_file = s
                .cfg
                .each
                .iter()
                .filter(|(k, _, _)| k == def.name)
                .map(|(_, v, o)| (v.as_str(), o.as_str()));
            let from_line = s
                .inv
                .settings
                .each
                .iter()
                .filter(|(k, _)| k == def.name)
                .map(|(_, v)| (v.as_str(), "command line"));
            for (v, o) in from_file.chain(from_line) {
                shown!(
                    "O {}={}    # {o}{used}",
                    def.name,
                    crate::text::message_bounded(v)
                );
            }
        } else if ACTED_ON.iter().any(|(n, _)| *n == def.name) {
            acted_on(def, def.name);
        } else if def.name == "QueueTimeout" {
            match written(def.name) {
                Some(v) => shown!(
                    "O QueueTimeout={}    # {} (sendmail's old name: sets \
                     Timeout.queuereturn[/queuewarn])",
                    crate::text::message_bounded(v),
                    origin_of(def, def.name)
                ),
                None => shown!(
                    "# O QueueTimeout    # default: see Timeout.queuereturn, Timeout.queuewarn"
                ),
            }
        } else {
            match written(def.name) {
                Some(v) => shown!(
                    "O {}={}    # {} (not used by rsendmail)",
                    def.name,
                    crate::text::message_bounded(v),
                    origin_of(def, def.name)
                ),
                None => shown!("# O {}    # not used by rsendmail", def.name),
            }
        }
    }
    // A `-o` letter of no option (sendmail ignores it on its command line, as the
    // programs do): said, not silently dropped.
    for l in letters {
        if let Some(c) = l.chars().next()
            && options::lookup_letter(c).is_none()
        {
            shown!(
                "# -o{l}: {c} is no option letter of sendmail 8.17: ignored, as sendmail \
                 ignores it"
            );
        }
    }
    Sysexit::Ok
}

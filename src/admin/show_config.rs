//! `rsendmail-admin config [-O NAME=VALUE]... [-o LETTERVALUE]...`: the effective
//! configuration, one line a setting: every keyword of rsendmail.conf
//! ([`config::KEYWORDS`]) and every option of sendmail's table and rsendmail's
//! ([`options::OPTION_TABLE`]), each with its value and, after `#`, where it came from:
//! `default`, `FILE: line N`, or `command line` (the `-O`/`-o` given after `config`, read
//! as sendmail reads them on its own command line: such an option is not read from the
//! file at all). An option not set shows its name alone (its built-in value applies); a
//! keyword not set and without a built-in value says `default (not set)`.
//!
//! Values are shown as written (`O Timeout.connect=30s`), the options whose settings add
//! up (PrivacyOptions, DaemonPortOptions) all of them, joined by commas. Credentials are
//! never shown: AUTHPATH is the name of the file that holds them, which is not read for
//! this. A configuration or option in error is refused as every program refuses it
//! (its message, with the file and line; EX_CONFIG, or sendmail's status for a bad
//! command-line option).

use super::Context;
use crate::app;
use crate::config;
use crate::exit::Sysexit;
use crate::options::{self, OPTION_TABLE};
use std::ffi::OsString;

/// The sendmail argv that reads the configuration `ctx` names.
pub fn config_argv(ctx: &Context) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["sendmail".into()];
    if let Some(c) = &ctx.config {
        argv.push("-C".into());
        argv.push(c.clone().into_os_string());
    }
    argv
}

/// Print the configuration; see the module.
pub fn show(ctx: &Context, options_given: &[String], letters: &[String]) -> Sysexit {
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
        Err(f) => return app::report(&f),
    };
    let file = match &s.cfg.file {
        Some(p) => p.display().to_string(),
        None => "none (built-in settings)".to_string(),
    };
    crate::outln!("# configuration file: {file}");
    for k in config::KEYWORDS {
        let origin = s.cfg.origin.get(*k).map(String::as_str);
        match (s.cfg.keyword_value(k), origin) {
            (Some(v), Some(o)) => crate::outln!("{k} {v}    # {o}"),
            (Some(v), None) => crate::outln!("{k} {v}    # default"),
            (None, _) => crate::outln!("{k}    # default (not set)"),
        }
    }
    let command_line = &s.inv.settings.given;
    for def in OPTION_TABLE {
        let set: Vec<&(String, String)> = s
            .settings
            .written
            .iter()
            .filter(|(k, _)| {
                k == def.name || (def.name == "Timeout" && k.strip_prefix("Timeout.").is_some())
            })
            .collect();
        if set.is_empty() {
            // PrivacyOptions has a default of its own (sendmail.cf's, `app::setup`).
            match def.name {
                "PrivacyOptions" if !s.settings.privacy_flags.is_empty() => crate::outln!(
                    "O {}={}    # default",
                    def.name,
                    s.settings.privacy_flags.join(",")
                ),
                _ => crate::outln!("O {}    # default", def.name),
            }
        }
        for (key, value) in set {
            let in_file = s.cfg.origin.get(&format!("O {key}"));
            let on_line = command_line.contains(key);
            let origin = match (in_file, on_line) {
                (Some(f), true) if options::adds_up(def) => format!("{f}, command line"),
                (_, true) => "command line".to_string(),
                (Some(f), false) => f.clone(),
                (None, false) => "default".to_string(),
            };
            crate::outln!("O {key}={value}    # {origin}");
        }
    }
    Sysexit::Ok
}

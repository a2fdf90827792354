//! `rsendmail-admin`'s work (the program's command line is in
//! `src/bin/rsendmail-admin.rs`): [`queue`] (list, show, delete, hold, release, retry,
//! bounce), [`check`] (can this host send mail?), [`show_config`] (the effective
//! configuration) and [`init`] (create the spool).

pub mod check;
pub mod elsewhere;
pub mod init;
pub mod queue;
pub mod show_config;

use std::path::PathBuf;

/// What every subcommand is given: the global options.
pub struct Context {
    /// `-C FILE`: a configuration file instead of the system one.
    pub config: Option<PathBuf>,
    /// Options for the programs the subcommand reads the configuration as and runs
    /// (`check`'s `-O NAME=VALUE` and `-o LETTERVALUE`), as argv words (`-O`,
    /// `NAME=VALUE`, `-oLETTERVALUE`) put after `-C`: they mean what they mean on
    /// sendmail's command line. Empty for the other subcommands.
    pub options: Vec<std::ffi::OsString>,
}

impl Context {
    /// The argv words of `-o LETTERVALUE` and `-O NAME=VALUE` options, in that order (as
    /// `config` applies them).
    pub fn option_words(letters: &[String], options: &[String]) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = Vec::new();
        for l in letters {
            out.push(format!("-o{l}").into());
        }
        for o in options {
            out.push("-O".into());
            out.push(o.into());
        }
        out
    }
}

/// The deliverer's command: `rsendmail-deliver` (beside this program,
/// [`crate::app::deliver_path`]) with the log's inherited arguments, `prefix` (its
/// internal arguments, e.g. `--entry ID --queued --`, `--check --`), then the sendmail
/// argv that reads the configuration `ctx` names with its options (`rsendmail [-C FILE]
/// [OPTION...]`). Its
/// environment is scrubbed as `rsendmail`'s own exec of the deliverer scrubs it
/// ([`crate::privs::deliverer_env`]): a set-id program passes none but `PATH`, so no
/// variable of the caller (`SSL_CERT_FILE`, `OPENSSL_CONF`, `RES_OPTIONS`, ...) reaches
/// a process that holds the spool group and reads `auth.conf`.
pub fn deliverer(ctx: &Context, prefix: &[&str]) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(crate::app::deliver_path());
    cmd.arg0("rsendmail-deliver")
        .args(crate::log::inherited_args())
        .args(prefix)
        .arg("rsendmail");
    if let Some(c) = &ctx.config {
        cmd.arg("-C").arg(c);
    }
    cmd.args(&ctx.options);
    crate::privs::deliverer_env(&mut cmd);
    cmd
}

/// `config`'s refusal of a spool that is not there, before anything is printed: the
/// configuration `ctx` names with those of `config`'s own `-oQ`/`-O QueueDirectory=`
/// that name the queue directory, set up as `rsendmail` sets it up, then
/// [`crate::spool::Spool::check_present`] (EX_CONFIG with the keyword's file and line, as
/// every entry point refuses it, with the spool a typo left behind when there is one,
/// [`crate::app::with_typo_hint`]). Errors: the setup's, or the missing spool's.
pub fn spool_present(
    ctx: &Context,
    options_given: &[String],
    letters: &[String],
) -> Result<(), crate::exit::Fatal> {
    // Only the options that may name the queue directory: the others are `config`'s
    // own to read (and to say what is wrong with), once.
    let mut argv = show_config::config_argv(ctx);
    argv.extend(
        letters
            .iter()
            .filter(|l| l.starts_with('Q'))
            .map(|l| format!("-o{l}").into()),
    );
    for o in options_given {
        let name = o.split('=').next().unwrap_or("").trim();
        if name.len() >= 2 && "queuedirectory".starts_with(&name.to_ascii_lowercase()) {
            argv.push("-O".into());
            argv.push(o.into());
        }
    }
    let s = crate::app::setup(argv)?;
    s.spool
        .check_present()
        .map_err(|f| crate::app::with_typo_hint(f, &s))
}

/// `message` (an error about the options given, `words`: their argv words as
/// [`Context::option_words`] makes them) with each long name or value of them shown as
/// [`crate::text::argument_shown`] shows an argument: its first characters and `...`,
/// so that a hostile option never fills the terminal or the log.
pub fn options_shown(message: &str, words: &[std::ffi::OsString]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for w in words {
        let w = w.to_string_lossy();
        // `-oLETTERVALUE`: the value after its letter; `NAME=VALUE`: both.
        let w: String = match w.strip_prefix("-o") {
            Some(lv) => lv.chars().skip(1).collect(),
            None => w.into_owned(),
        };
        for p in w.splitn(2, '=') {
            if p.chars().count() > crate::text::ARGUMENT_SHOWN_MAX {
                parts.push(p.to_string());
            }
        }
    }
    // The longest first: a shorter one may be part of it.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = message.to_string();
    for p in parts {
        out = out.replace(&p, &crate::text::argument_shown(&p));
    }
    out
}

/// A fatal error as this program prints it: on stderr (every subcommand's errors,
/// `config`'s too; the listing alone is on stdout).
pub fn on_stderr(mut f: crate::exit::Fatal) -> crate::exit::Fatal {
    f.to_stderr = true;
    f
}

/// The note a non-root caller gets when an option she gave made the program give up its
/// set-group-id privilege (the spool's group, [`crate::app::Setup::dropped_group`]),
/// naming those options (`-C`, an unsafe `-O NAME`: [`crate::cli::Invocation::unsafe_options_given`]):
/// what she sees next (a spool she may not read, entries not found) comes from that.
pub fn dropped_group_note(inv: &crate::cli::Invocation) -> String {
    let given = inv.unsafe_options_given();
    let (names, it) = crate::cli::Invocation::named_with_pronoun(&given);
    let system = if inv.config_file.is_some() {
        " (without -C the system configuration is read)"
    } else {
        ""
    };
    format!(
        "{names} gave up the set-group-id privilege of rsendmail-admin (the spool's \
         group), so only what this user may reach herself is seen; leave {it} out{system}, \
         or run as root"
    )
}

//! `rsendmail-admin`: operating rsendmail (queue administration, a check that this host
//! can send mail, the effective configuration, creating the spool). Its own program, with
//! conventional subcommands, so that the sendmail personality keeps sendmail's meanings
//! (`sendmail check` mails the local user `check`), as Postfix keeps `postsuper` and
//! `postconf` apart from its `sendmail`.
//!
//! Like `rsendmail` it links no TLS and no DNS code: `check` execs `rsendmail-deliver`
//! for the steps that talk to the network. The work is in the library
//! (`rsendmail::admin`); this file only parses the command line.

use clap::{CommandFactory, Parser, Subcommand};
use rsendmail::admin;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rsendmail-admin",
    version,
    about = "Administer rsendmail: its queue, its configuration and its spool"
)]
struct Cli {
    /// Read this configuration file instead of the system one (a set-gid program then
    /// gives up its group, as `sendmail -C` does).
    #[arg(short = 'C', long = "config", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the queue (the `mailq` listing).
    List {
        /// One JSON object per entry instead of the listing.
        #[arg(long)]
        json: bool,
    },
    /// Show one entry: envelope, each recipient's state and reason, next attempt, header.
    Show {
        #[arg(value_name = "ID", value_parser = Text)]
        id: String,
    },
    /// Delete entries from the queue.
    #[command(
        override_usage = "rsendmail-admin delete [--dry-run] ID...\n       rsendmail-admin delete [--dry-run] --all\n       rsendmail-admin delete [--dry-run] --recipient SUBSTR"
    )]
    Delete {
        #[arg(value_name = "ID", value_parser = Text)]
        ids: Vec<String>,
        /// Every entry the caller may act on.
        #[arg(long, conflicts_with_all = ["ids", "recipient"])]
        all: bool,
        /// Entries with a recipient containing SUBSTR (case-insensitive).
        #[arg(long, value_name = "SUBSTR", conflicts_with = "ids", value_parser = Text)]
        recipient: Option<String>,
        /// Print each entry that would be deleted (ID, sender, open recipients) and
        /// delete nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Hold entries: no queue run selects them until they are released.
    Hold {
        #[arg(value_name = "ID", required = true, value_parser = Text)]
        ids: Vec<String>,
    },
    /// Release held entries.
    Release {
        #[arg(value_name = "ID", required = true, value_parser = Text)]
        ids: Vec<String>,
    },
    /// Make entries due now.
    Retry {
        #[arg(value_name = "ID", required = true, value_parser = Text)]
        ids: Vec<String>,
    },
    /// Return entries to their senders now, with a reason.
    Bounce {
        #[arg(value_name = "ID", required = true, value_parser = Text)]
        ids: Vec<String>,
        /// The reason given in the report.
        #[arg(long, value_name = "TEXT", value_parser = Text)]
        reason: Option<String>,
    },
    /// Check that this host can send mail: configuration, spool, names, DNS, the
    /// smarthost's connection, TLS and AUTH, and with --to a MAIL/RCPT probe.
    Check {
        /// Probe delivery to this address (MAIL and RCPT, then RSET: nothing is sent).
        #[arg(long, value_name = "ADDRESS", value_parser = Text)]
        to: Option<String>,
        /// Check with this option as sendmail's `-O NAME=VALUE` sets it, over the
        /// file's (a setting tried before it is written).
        #[arg(short = 'O', value_name = "NAME=VALUE", value_parser = Text)]
        options: Vec<String>,
        /// Check with this option as sendmail's `-o<letter><value>` sets it (`-o dq`).
        #[arg(short = 'o', value_name = "LETTERVALUE", value_parser = Text)]
        letters: Vec<String>,
    },
    /// Print the effective configuration: each keyword and option, its value and where
    /// it came from.
    Config {
        /// Apply this option as sendmail's `-O NAME=VALUE` does (shown as `command line`).
        #[arg(short = 'O', value_name = "NAME=VALUE", value_parser = Text)]
        options: Vec<String>,
        /// Apply this option as sendmail's `-o<letter><value>` does (`-o dq`).
        #[arg(short = 'o', value_name = "LETTERVALUE", value_parser = Text)]
        letters: Vec<String>,
    },
    /// Create the spool with its modes and group (as an install does), or repair them.
    /// Root only.
    Init {
        /// The spool's group (default: rsendmail).
        #[arg(long, value_name = "GROUP", value_parser = Text)]
        group: Option<String>,
        /// Make the spool the configuration names even while another spool (the queue
        /// runner's, the built-in one, one beside it) holds entries.
        #[arg(long)]
        new_spool: bool,
    },
}

/// An argument as text: UTF-8, or a usage error naming the argument and showing its
/// octets (bounded, escaped: [`rsendmail::text::os_argument_shown`]), where clap's own
/// says only that some argument was not UTF-8.
#[derive(Clone)]
struct Text;

impl clap::builder::TypedValueParser for Text {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        match value.to_str() {
            Some(s) => Ok(s.to_string()),
            None => {
                let name = arg.map_or_else(|| "an argument".to_string(), ToString::to_string);
                let shown = rsendmail::text::os_argument_shown(value.as_bytes());
                let mut cmd = cmd.clone();
                Err(cmd.error(
                    clap::error::ErrorKind::InvalidUtf8,
                    format!("{name}: not UTF-8 text: {shown}"),
                ))
            }
        }
    }
}

/// Clap's usage error as printed, each argument of the command line longer than
/// [`rsendmail::text::ARGUMENT_SHOWN_MAX`] characters, not UTF-8 or with a character
/// that must not reach a terminal in it as [`rsendmail::text::os_argument_shown`]
/// shows it (clap
/// echoes an argument it does not know whole), and no line longer than
/// [`USAGE_LINE_MAX`] characters. `e` comes from a command without styles
/// ([`plain_usage_error`]) and is rendered as it is: clap's own rendering drops the
/// control characters of what it echoes (a BS, SOH or DEL vanishes, ESC and what follows
/// it go as an escape sequence), which would leave the argument shown without them.
fn bounded_usage_error(e: &clap::Error) -> String {
    let mut text = e.render().ansi().to_string();
    // Each as clap echoes it (not UTF-8: with U+FFFD) and as it is shown instead.
    let mut args: Vec<(String, String)> = std::env::args_os()
        .skip(1)
        .map(|a| {
            (
                a.to_string_lossy().into_owned(),
                rsendmail::text::os_argument_shown(a.as_bytes()),
            )
        })
        .filter(|(echoed, shown)| echoed != shown)
        .collect();
    // The longest first: a shorter one may be part of it.
    args.sort_by_key(|(echoed, _)| std::cmp::Reverse(echoed.len()));
    for (echoed, shown) in args {
        text = text.replace(&echoed, &shown);
    }
    // What is left of one clap changed first (it strips terminal escape sequences
    // from what it echoes): each line escaped and bounded.
    text.lines()
        .map(|l| {
            let l = rsendmail::text::escaped(l);
            if l.chars().count() > USAGE_LINE_MAX {
                let mut cut: String = l.chars().take(USAGE_LINE_MAX).collect();
                cut.push_str("...");
                cut
            } else {
                l.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest line of a usage error printed whole ([`bounded_usage_error`]).
const USAGE_LINE_MAX: usize = 600;

/// The usage error `e` as the command line gives it to a command without styles, whose
/// rendering holds no escape sequence of clap's own: what it echoes is then the
/// argument as given, for [`bounded_usage_error`] to show. `e` itself when that parse
/// says nothing else.
fn plain_usage_error(e: clap::Error) -> clap::Error {
    match Cli::command()
        .styles(clap::builder::Styles::plain())
        .try_get_matches()
    {
        Err(plain) if plain.kind() == e.kind() => plain,
        _ => e,
    }
}

fn main() -> ExitCode {
    // Before anything is opened: no spool file may become a caller's stdout.
    rsendmail::privs::fix_std_fds();
    rsendmail::log::init("rsendmail-admin");
    // clap's usage errors exit 64 (EX_USAGE), its message on stderr; --help and
    // --version print on stdout and exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let e = plain_usage_error(e);
            rsendmail::errln!("{}", bounded_usage_error(&e).trim_end());
            return ExitCode::from(rsendmail::exit::Sysexit::Usage.code());
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(0);
        }
    };
    let options = match &cli.command {
        Command::Check {
            options, letters, ..
        } => admin::Context::option_words(letters, options),
        _ => Vec::new(),
    };
    let ctx = admin::Context {
        // Made absolute against the current directory (links not resolved): the file
        // is judged by where it is (`check`'s places rule cannot place a relative path),
        // and the commands printed with it work from any directory.
        config: cli.config.map(|c| std::path::absolute(&c).unwrap_or(c)),
        options,
    };
    // Only the commands that change the queue (or make the spool) log: a look logs
    // nothing, not even its own failures, which it prints.
    if matches!(
        cli.command,
        Command::List { .. }
            | Command::Show { .. }
            | Command::Config { .. }
            | Command::Check { .. }
            | Command::Delete { dry_run: true, .. }
    ) {
        rsendmail::log::looks_only();
    }
    let status = match cli.command {
        Command::List { json } => admin::queue::list(&ctx, json),
        Command::Show { id } => admin::queue::show(&ctx, &id),
        Command::Delete {
            ids,
            all,
            recipient,
            dry_run,
        } => admin::queue::delete(&ctx, &ids, all, recipient.as_deref(), dry_run),
        Command::Hold { ids } => admin::queue::hold(&ctx, &ids),
        Command::Release { ids } => admin::queue::release(&ctx, &ids),
        Command::Retry { ids } => admin::queue::retry(&ctx, &ids),
        Command::Bounce { ids, reason } => admin::queue::bounce(&ctx, &ids, reason.as_deref()),
        Command::Check { to, .. } => admin::check::check(&ctx, to.as_deref()),
        Command::Config { options, letters } => {
            match admin::spool_present(&ctx, &options, &letters) {
                Ok(()) => admin::show_config::show(&ctx, &options, &letters),
                // Where `config` says every other problem of the configuration (each
                // line of the file in error, `show_config::refused`).
                Err(f) => admin::show_config::refused(&ctx, f),
            }
        }
        Command::Init { group, new_spool } => admin::init::init(&ctx, group.as_deref(), new_spool),
    };
    ExitCode::from(status.code())
}

//! `rsendmail-admin check [--to ADDRESS]`: can this host send mail? One line a step, in
//! plain words, each beginning with its mark ([`Mark`]): `ok`, `FAIL`, `warn` (worth a
//! look, does not fail the check), `skip` (a step that does not apply) or `info` (more
//! about the step before).
//!
//! The steps made here, without the network: the configuration (every problem with its
//! file and line, then the files it names; options rsendmail accepts but does not act
//! on, keywords that change nothing and lines another overrides are `warn` lines; the
//! file and its directory writable by root alone), the mail name and host name, the
//! spool (its group, never one a user acts with, and modes; the directories above it,
//! root's alone ([`crate::spool::safety`]); a missing spool while another spool holds
//! entries, failed as a likely typo with the line to correct, never `init`
//! ([`super::elsewhere`]); a spool everyone may write
//! in the words of the programs that refuse it; its sub-directories, the files
//! submissions write in them and the queue entries, as `rsendmail-admin init` leaves
//! them; an entry's file that is not a regular file, a symbolic link above all, fails
//! with the removal of the name itself; a file left without its entry (a state file,
//! a journal, a mark, in the spool, `hold/` or `corrupt/`) and a name that is no
//! entry's are `warn` lines), the installed `rsendmail` and this program (set-gid to the spool's
//! group) and `rsendmail-deliver` (root's alone, not set-id, in a directory root's
//! alone), the queue runner's wake-up FIFO (`SPOOLDIR/wakeup`; no runner holding it
//! open is a `warn`, or a failure when nothing else would send the mail: the delivery
//! mode queue-only or deferred, users' submissions that cannot deliver themselves) and
//! the modes of `auth.conf` (never readable by others, readable by the spool's group)
//! and `MAILLOG` (root's, written by the spool's group, as the programs make it).
//! Run by a user without the spool's group, what she cannot see (the FIFO and what is
//! inside the 2770 spool) is a `warn` line saying it could not be checked and why, never
//! a missing item or a failure; an auth.conf she may not read leaves AUTH untried (a
//! `warn` line of the deliverer), the other network steps still run. The aliases file
//! with a NUL octet fails (no delivery uses it).
//! A mail name that is an IP address, an address literal or localhost fails
//! ([`crate::message::address::mail_name_problem`]). Each mode or owner problem ends
//! with `(fix: COMMANDS)`: shell commands that, run as printed, make the step pass.
//! None changes a path someone other than root could swap for a symbolic link first
//! ([`unless_swappable`]): a directory on its way that a user owns or others may write
//! (but a sticky one of root's above the spool, or the spool's own group in the spool)
//! makes the line end `(no fix yet: DIR ...; put DIR right first, then check again)`,
//! that directory's own line carrying its fix, and a spool so held is one `FAIL spool`
//! line, nothing in it listed or given a fix (`skip wakeup`) until it is put right.
//! The options given after `check` (`-O`, `-o`: [`Context::options`]) apply to every
//! step. The network steps (DNS, TCP, the greeting,
//! EHLO, TLS and the certificate, AUTH, the `--to` probe) are the deliverer's, which
//! holds the TLS and DNS code: `rsendmail-deliver --check [--to ADDRESS] -- ARGV`
//! prints their lines (`deliver/check.rs`); they are skipped when the configuration has
//! errors. So are, without `--to`, the lines of the `:include:` files the aliases file
//! names, which the deliverer reads as a delivery reads them (as root, with
//! DefaultUser's rights), before the network steps.
//!
//! Exit status: 0 when every step passed; else the first failure's: EX_CONFIG (78) for
//! the configuration, the names, the spool, the binary, the FIFO and `auth.conf`;
//! EX_UNAVAILABLE (69) for a permanent refusal on the network (a name that does not
//! exist, AUTH refused, a 5yz to MAIL or RCPT); EX_TEMPFAIL (75) for other network
//! failures (no connection, a timeout, TLS, a 4yz, a DNS failure); EX_NOUSER (67) for a
//! local `--to` that names no user; EX_USAGE (64) for an `--to` that is no address or
//! a list.

use super::Context;
use super::init;
use super::show_config::config_argv;
use crate::app;
use crate::config::{self, Config};
use crate::exit::Sysexit;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How a step went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Fail,
    Warn,
    Skip,
    /// More about the step before (the certificate a server offered that did not pass).
    Info,
}

impl Mark {
    fn word(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Fail => "FAIL",
            Mark::Warn => "warn",
            Mark::Skip => "skip",
            Mark::Info => "info",
        }
    }
}

/// The steps' lines, and the status of the first failure.
#[derive(Debug, Default)]
pub struct Tally {
    first_failure: Option<Sysexit>,
    /// While set, a failed step is a `warn` line and its status goes to
    /// [`Tally::soft_failure`]: one of several hosts, whose failure fails the check
    /// only when no other host works.
    pub soft: bool,
    /// The first failure while [`Tally::soft`] was set.
    pub soft_failure: Option<Sysexit>,
    /// The steps that failed, in order (each once).
    pub failed_steps: Vec<String>,
    /// The programs refuse the configuration (the config step failed it: each exits
    /// 78 with it, a queue runner too): no step says to start a program with it.
    pub config_refused: bool,
}

impl Tally {
    /// Print one step's line: `ok   STEP DETAIL`, or `FAIL STEP: DETAIL` (`warn`,
    /// `skip` alike), the mark padded to four columns; U+FFFD in DETAIL as `?`, every
    /// character that is not [`crate::text::is_safe`] (ESC, CR, DEL, C1, ...) but LF as
    /// its octets in octal ([`crate::text::escaped_lines`]).
    pub fn say(&mut self, mark: Mark, step: &str, detail: &str) {
        let sep = match (mark, detail.is_empty()) {
            (_, true) => "",
            (Mark::Ok, false) => " ",
            _ => ": ",
        };
        // An octet a server sent that is not UTF-8 is read as U+FFFD: shown as `?`, as a
        // control character is.
        let detail = detail.replace(char::REPLACEMENT_CHARACTER, "?");
        // Text from outside (a value of the file or of `-O`, the mail name, a host name,
        // a path) reaches the terminal with no control character in it: each as its
        // octets in octal (`\033`, `\015`), as mailq and the log show them, so that no
        // escape sequence acts and no CR overwrites the line. A line end is the
        // message's own (a refusal and the typo it may be): no value from outside holds
        // one (a file's line ends at it, `-O` refuses it, a reply's was made `?`).
        let detail = crate::text::escaped_lines(&detail);
        // A long value from the configuration is shown cut, as a long argument is.
        let detail = crate::text::message_bounded(&detail);
        let step = crate::text::escaped(step);
        crate::outln!("{:<4} {step}{sep}{detail}", mark.word());
    }

    /// A failed step, with the exit status it gives when it is the first.
    pub fn fail(&mut self, code: Sysexit, step: &str, detail: &str) {
        if self.soft {
            self.soft_failure.get_or_insert(code);
            self.say(Mark::Warn, step, detail);
            return;
        }
        self.first_failure.get_or_insert(code);
        if !self.failed_steps.iter().any(|f| f == step) {
            self.failed_steps.push(step.to_string());
        }
        self.say(Mark::Fail, step, detail);
    }

    /// 0 when nothing failed, else the first failure's status.
    pub fn status(&self) -> Sysexit {
        self.first_failure.unwrap_or(Sysexit::Ok)
    }
}

/// Run the check; see the module.
pub fn check(ctx: &Context, to: Option<&str>) -> Sysexit {
    // The check changes nothing itself: nothing is logged, no MAILLOG is made or
    // opened.
    crate::log::looks_only();
    // An address `--to` cannot take (empty, `<>`, a list in every list style) is a
    // usage error at once, before any step: the deliverer, which parses it in the
    // configuration's list style, would refuse it only after every other step ran.
    if let Some(a) = to {
        use crate::message::address::OldStyle;
        if let (Err(why), Err(_)) = (
            crate::submit::one_address(a, OldStyle(true)),
            crate::submit::one_address(a, OldStyle(false)),
        ) {
            crate::errln!("rsendmail-admin check --to: {why}");
            return Sysexit::Usage;
        }
    }
    let mut t = Tally::default();
    // The network steps' line when they cannot run: what failed, each step named.
    let skip = |t: &mut Tally, why: &[String]| {
        t.say(
            Mark::Skip,
            "network",
            &format!("not checked: {}", why.join("; ")),
        );
    };
    let Some((mut s, mut unusable)) = config_step(&mut t, ctx) else {
        skip(&mut t, &[CONFIG_HAS_ERRORS.to_string()]);
        return t.status();
    };
    s.spool.private = spool_is_callers_own(&s);
    if s.dropped_group {
        // What the spool and binary steps say next comes from it.
        t.say(Mark::Info, "privileges", &super::dropped_group_note(&s.inv));
    }
    names_step(&mut t, &s.cfg);
    aliases_step(&mut t, &s);
    mail_spool_step(&mut t, &s);
    if !trust_step(&mut t, &s) {
        unusable
            .push("a file the configuration names failed (the files or maillog step above)".into());
    }
    install_steps(&mut t, &s);
    program_paths_step(&mut t, &s);
    config_readable_step(&mut t, &s);
    // An auth.conf others may read, when the install steps could not come to it (a
    // spool they stopped at): said here, once. One the files step failed (someone
    // other than root could change it) is made anew by its repair, with the owner and
    // mode the auth.conf step wants: no second repair of it, which the first would undo
    // (a user's own install excepted: root's check leaves it to her, and her own check
    // asks for the same).
    if let Some(p) = s.cfg.auth_path.as_ref().filter(|p| {
        auth_readable_by_others(&s.cfg)
            && !t.failed_steps.iter().any(|f| f == "auth.conf")
            && (crate::spool::safety::file_risks(p, &[]).is_empty()
                || std::fs::metadata(&s.spool.dir).is_ok_and(|md| her_install(&s, &md).is_some()))
    }) {
        // A device, a directory, a system file: said, never repaired here.
        if let Some(why) = std::fs::metadata(p)
            .ok()
            .and_then(|md| not_rsendmails(&s.cfg, "AUTHPATH", p, &md, false))
        {
            t.fail(Sysexit::Config, "auth.conf", &why);
        } else {
            let cmd = match crate::spool::safety::acl_readers(p) {
                Some(_) => format!("setfacl -b {}", sh_word(p)),
                None => format!("chmod o-r {}", sh_word(p)),
            };
            let repair = crate::spool::safety::repair_text(p, &[cmd]);
            t.fail(
                Sysexit::Config,
                "auth.conf",
                &format!(
                    "{} is readable by others: its passwords must not be, and every program \
                     refuses it{}",
                    p.display(),
                    repair
                ),
            );
        }
    }
    // An AUTHPATH the auth.conf step refused as not rsendmail's (a file with other links,
    // a system file, a device): its credentials are never sent by this check, which
    // has just said the file is not to be used.
    if t.failed_steps.iter().any(|f| f == "auth.conf")
        && let Some(p) = s.cfg.auth_path.as_ref()
        && std::fs::metadata(p)
            .ok()
            .and_then(|md| not_rsendmails(&s.cfg, "AUTHPATH", p, &md, false))
            .is_some()
    {
        unusable.push(format!(
            "AUTHPATH names {}, which is not rsendmail's (the auth.conf step above): its \
             credentials are not sent",
            p.display()
        ));
    }
    pid_file_step(&mut t, &s);
    reload_step(&mut t, &s);
    corrupt_step(&mut t, &s);
    if s.system_config.is_some() {
        sendmail_step(&mut t, &s);
        other_names_step(&mut t, &s);
    }
    if !unusable.is_empty() {
        skip(&mut t, &unusable);
        return t.status();
    }
    // The network steps, by the deliverer (it prints their lines).
    // Started as the queue commands start it: the caller's environment scrubbed.
    let deliver = app::deliver_path();
    let mut prefix = vec!["--check"];
    if let Some(a) = to {
        prefix.extend(["--to", a]);
    }
    prefix.push("--");
    let mut cmd = super::deliverer(ctx, &prefix);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if let Some(why) = crate::spool::safety::refused_exec(&deliver) {
        t.fail(Sysexit::Config, "network", &why);
        return t.status();
    }
    match cmd.status() {
        Ok(st) => {
            let code = st
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .and_then(Sysexit::from_code)
                .unwrap_or(Sysexit::Software);
            if code != Sysexit::Ok && t.first_failure.is_none() {
                t.first_failure = Some(code);
            }
        }
        Err(e) => t.fail(
            Sysexit::Unavailable,
            "network",
            &match app::refused_deliverer() {
                Some(why) => format!(
                    "cannot run {}: {} ({why})",
                    deliver.display(),
                    config::io_text(&e)
                ),
                None => format!("cannot run {}: {}", deliver.display(), config::io_text(&e)),
            },
        ),
    }
    t.status()
}

/// Whether every step judges the spool as the caller's own (0700, hers) rather than as
/// the shared system spool (2770 root's and the spool's group). The setup's answer is
/// the caller's ([`crate::spool::Spool::private`]: a caller without the set-gid group,
/// the group given up by `-C` or an unsafe `-O` included), but a spool root owns is
/// never a user's own: a user's check of root's configuration judges root's shared
/// spool as the system spool, as root's check does, what she cannot see in it a `warn`
/// line, never a fix that would make it hers.
fn spool_is_callers_own(s: &app::Setup) -> bool {
    s.spool.private
        && !crate::privs::is_root()
        && !std::fs::metadata(&s.spool.dir).is_ok_and(|md| md.uid() == 0)
}

/// A file a step could not reach (`e`, permission denied) because an option gave up the
/// set-group-id group ([`app::Setup::dropped_group`]), which would have let this user
/// reach it: the `warn` line's text saying it could not be checked and why, never a
/// failure. None for another error, or when no group was given up.
fn unseen_without_group(s: &app::Setup, p: &Path, e: &std::io::Error) -> Option<String> {
    if !s.dropped_group || e.kind() != std::io::ErrorKind::PermissionDenied {
        return None;
    }
    let given = s.inv.unsafe_options_given();
    let (names, it) = crate::cli::Invocation::named_with_pronoun(&given);
    Some(format!(
        "{} could not be checked: {} (the spool's group, which may reach it, was given up \
         for {names}; leave {it} out, or run the check as root)",
        p.display(),
        config::io_text(e)
    ))
}

/// Why the network steps are not run when the configuration's lines are in error.
const CONFIG_HAS_ERRORS: &str = "the configuration has errors";

/// The configuration: every problem of the file with its line (each line in error is
/// set aside and the file read again, so that one typo does not hide the next), then
/// the whole setup as the programs make it (the mail name, the files named).
/// `Some((setup, unusable))`: the setup, and why what it names is not fit for delivery
/// (the network steps need it), each naming the step that fails for it (empty: fit);
/// `None`: the configuration cannot be read.
fn config_step(t: &mut Tally, ctx: &Context) -> Option<(app::Setup, Vec<String>)> {
    let path = ctx.config.clone().unwrap_or_else(config::system_config);
    let name = path.display().to_string();
    if ctx.config.is_none() && !config::exists(&path) {
        t.say(
            Mark::Ok,
            "config",
            &format!("{name}: not there, the built-in settings apply"),
        );
    } else {
        match read_config_text(ctx, &path) {
            Ok((text, quoted, not_utf8)) => {
                let mut problems = not_utf8;
                problems.extend(file_problems(&text, &name, quoted));
                for p in &problems {
                    t.fail(Sysexit::Config, "config", p);
                }
                if !problems.is_empty() {
                    return None;
                }
                for w in overridden_lines(&text, &name) {
                    t.say(Mark::Warn, "config", &w);
                }
            }
            Err(e) => {
                // A user's check of a system configuration she may not read: what users'
                // programs need of it, and that root's check says how.
                let cause = match &e {
                    crate::boundedfile::ReadError::Io(io)
                        if ctx.config.is_none()
                            && io.kind() == std::io::ErrorKind::PermissionDenied
                            && !crate::privs::is_root() =>
                    {
                        format!(" ({})", app::config_unreadable_cause())
                    }
                    _ => String::new(),
                };
                t.fail(
                    Sysexit::Config,
                    "config",
                    &format!("cannot open {name}: {}{cause}", e.text()),
                );
                return None;
            }
        }
    }
    let s = match app::setup(config_argv(ctx)) {
        Ok(s) => s,
        Err(f) => {
            t.fail(
                Sysexit::Config,
                "config",
                &super::options_shown(&f.message, &ctx.options),
            );
            return None;
        }
    };
    // The file itself, held to the rule of the files it names (the file, every
    // directory and link on its path, ACLs): the programs refuse it as they refuse
    // those, and nothing is tried over the network with what it says.
    // A user's own (root's check of her per-user install): the spool step says so, and
    // nothing is tried with it.
    let (theirs, unsafe_config): (Vec<_>, Vec<_>) = s
        .cfg
        .untrusted_files(&s.settings, maillog_group(&s))
        .into_iter()
        .filter(|u| u.what == "CONFIG")
        .partition(|u| hers(&s, u));
    // Its fix only when the file and what the fix changes are rsendmail's (a
    // configuration given with -C may be any file: `-C /var/log/wtmp`).
    for u in &unsafe_config {
        let otherwise = by_hand(
            ctx.config
                .is_some()
                .then_some("or give another file with -C"),
        );
        t.fail(
            Sysexit::Config,
            "config",
            &format!(
                "{}{}",
                u.problem(),
                placed_repair(u, repair(&s, u), &otherwise)
            ),
        );
    }
    // The files it names: a problem there fails the check, and the steps without the
    // network still run (the auth.conf step says more of its file). An auth.conf
    // others may read, which the programs refuse, is the auth.conf step's to tell with
    // its fix: one problem, one line; the other files are looked at without it.
    let auth_open = auth_readable_by_others(&s.cfg);
    let files = match s.cfg.check_files(&s.settings) {
        Err(_) if auth_open => {
            let mut others = s.cfg.clone();
            others.auth_path = None;
            others.check_files(&s.settings)
        }
        got => got,
    };
    match &files {
        Err(f) => t.fail(Sysexit::Config, "config", &f.message),
        Ok(()) if config::exists(&path) && unsafe_config.is_empty() => {
            t.say(Mark::Ok, "config", &name)
        }
        Ok(()) => {}
    }
    for w in idle_settings(&s.cfg) {
        t.say(Mark::Warn, "config", &w);
    }
    if let Some(w) = delivery_mode_rest(&s.cfg) {
        t.say(Mark::Warn, "config", &w);
    }
    let mut unusable = Vec::new();
    if files.is_err() || !unsafe_config.is_empty() {
        unusable.push(CONFIG_HAS_ERRORS.to_string());
    }
    t.config_refused = files.is_err() || !unsafe_config.is_empty() || auth_open;
    // Root's check of a user's own install: the spool step fails, saying whose it is
    // and how to check it; the configuration itself has no error.
    if !theirs.is_empty() {
        unusable.push(
            "the spool failed (a user's own install: check it as she uses it, as the spool \
             step says)"
                .to_string(),
        );
    }
    if auth_open {
        unusable.push("auth.conf failed (others may read it)".to_string());
    }
    Some((s, unusable))
}

/// Whether the configuration's auth.conf is one the programs refuse as readable by
/// others (`config::load_auth`): its mode lets others read it, or an access ACL names
/// a reader.
fn auth_readable_by_others(cfg: &Config) -> bool {
    let Some(p) = &cfg.auth_path else {
        return false;
    };
    std::fs::metadata(p)
        .is_ok_and(|md| md.mode() & 0o004 != 0 || crate::spool::safety::acl_readers(p).is_some())
}

/// The configuration file at `path` (the one `ctx` names), read as the programs read
/// it: with the caller's own group when given with -C (the set-gid program's is given
/// up for it before anything else reads it, `app::setup`: never one of the spool's
/// group she could not read herself). `(text, quoted, not_utf8)`: its text, whether its
/// values are quoted in messages ([`crate::text::readable_by_all`]), and the refusal of
/// each line that is not UTF-8 ([`config::non_utf8_lines`], in the programs' words),
/// such a line blanked in the text (never read with replacement characters).
pub fn read_config_text(
    ctx: &Context,
    path: &std::path::Path,
) -> Result<(String, bool, Vec<String>), crate::boundedfile::ReadError> {
    let read = || crate::boundedfile::read_regular(path, false, crate::boundedfile::MAX_FILE);
    let (bytes, md) = match &ctx.config {
        Some(_) => crate::privs::as_real_group(read)
            .unwrap_or_else(|e| Err(crate::boundedfile::ReadError::Io(std::io::Error::from(e))))?,
        None => read()?,
    };
    let bad = config::non_utf8_lines(&bytes);
    let name = path.display().to_string();
    let not_utf8 = bad
        .iter()
        .map(|&(line, octet)| config::non_utf8_message(&name, line, octet))
        .collect();
    let text = if bad.is_empty() {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        bytes
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, l)| {
                if bad.iter().any(|&(n, _)| n == i + 1) {
                    String::new()
                } else {
                    String::from_utf8_lossy(l).into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok((text, crate::text::readable_by_all(&md), not_utf8))
}

/// The most problems [`file_problems`] lists of one file.
pub const MAX_FILE_PROBLEMS: usize = 100;

/// Each problem `Config::parse` finds in `text`, with its file and line: the line of
/// each is blanked and the text read again (at most [`MAX_FILE_PROBLEMS`]; when more
/// remain, a last item says how many: `FILE: and 19,900 more problems (only the first
/// 100 shown)`). With `quoted` false (a file not everyone may read) no problem quotes
/// the line's text ([`Config::parse_quoting`]).
pub fn file_problems(text: &str, name: &str, quoted: bool) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = Vec::new();
    let prefix = format!("{name}: line ");
    let line_of = |f: &crate::exit::Fatal| {
        f.message
            .strip_prefix(&prefix)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
    };
    let parse = |text: &str| {
        Config::builtin(&config::Paths::system()).parse_quoting(text, name, &[], quoted)
    };
    while let Err(f) = parse(&lines.join("\n")) {
        let line = line_of(&f);
        if out.len() == MAX_FILE_PROBLEMS {
            // The rest are counted, not listed: each line from the next problem's on
            // read on its own (reading the whole text again for each would take as
            // long as the lines' count squared).
            let more = line
                .map(|n| {
                    lines
                        .iter()
                        .skip(n.saturating_sub(1))
                        .filter(|l| !l.trim().is_empty() && parse(l).is_err())
                        .count()
                })
                .unwrap_or(0)
                .max(1);
            out.push(format!(
                "{name}: and {} more {} (only the first {MAX_FILE_PROBLEMS} shown)",
                grouped(more),
                if more == 1 { "problem" } else { "problems" }
            ));
            break;
        }
        out.push(f.message);
        match line.and_then(|n| lines.get_mut(n.wrapping_sub(1))) {
            Some(l) => l.clear(),
            None => break,
        }
    }
    out
}

/// `n` with its thousands set apart by commas (`19,900`).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Each keyword or option set on more than one line of `text`: the earlier line changes
/// nothing (`FILE: line 2: SMARTHOST is set again on line 10, which overrides it`).
/// Options whose settings add up ([`crate::options::adds_up`]) are not listed.
pub fn overridden_lines(text: &str, name: &str) -> Vec<String> {
    let mut last: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split([' ', '\t', '#']).next().unwrap_or("");
        let key = if first == "O" {
            let rest = line.get(1..).unwrap_or("").trim_start();
            let (oname, _) = crate::options::split_assignment(rest);
            match crate::options::lookup_long(oname) {
                Ok(r) if !crate::options::adds_up(r.def) => {
                    format!("O {}", crate::options::given_key(r.def, r.sub.as_deref()))
                }
                _ => continue,
            }
        } else if first.len() >= 2 && first.starts_with('O') && !config::KEYWORDS.contains(&first) {
            match first.chars().nth(1).and_then(crate::options::lookup_letter) {
                Some(def) if !crate::options::adds_up(def) => {
                    format!("O {}", crate::options::given_key(def, None))
                }
                _ => continue,
            }
        } else if config::KEYWORDS.contains(&first) {
            first.to_string()
        } else {
            continue;
        };
        match last.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                out.push(format!(
                    "{name}: line {n}: {key} is set again on line {}, which overrides it",
                    i + 1
                ));
                *n = i + 1;
            }
            None => last.push((key, i + 1)),
        }
    }
    out
}

/// The group MAILLOG may be writable by, for check ([`app::maillog_group`]): the
/// shared spool's when it has one the spool step takes; otherwise (a `SPOOLDIR` typo,
/// a spool given a wrong group, both failed by the spool step with their fix) the group
/// that fix gives it ([`SpoolOwner::wanted`]: the group the installed `rsendmail` is
/// set-gid to, else `rsendmail`), with which the programs log once it is followed: a
/// log file they share, made 0660 with that group as they make it, is not refused
/// because of the spool's fault, nor "fixed" into one they may no longer write.
fn maillog_group(s: &app::Setup) -> Option<u32> {
    if s.spool.private {
        return app::maillog_group(s);
    }
    let md = std::fs::metadata(&s.spool.dir).ok();
    let want = SpoolOwner::wanted(s, md.as_ref());
    match md {
        Some(md) if want.group_fits(md.gid()) => Some(md.gid()),
        _ => want.gid.or_else(|| app::maillog_group(s)),
    }
}

/// The files the configuration names that the programs read for routing or credentials,
/// or write ([`Config::untrusted_files`]): each that someone the programs do not trust
/// could change (the file, a directory or link on its path) is a `FAIL files` line, which
/// every program that uses it refuses too. The repair offered never changes the owner or
/// mode of a path a user can change (she could swap it for a link to any file first):
/// when every item at fault is root's and only writable by others, `chmod go-w` of each,
/// from the top down (followed, the step passes); anything else (a file or link a user
/// owns: she chose what is in it) is made anew in a directory that is root's alone.
/// Whether none failed.
fn trust_step(t: &mut Tally, s: &app::Setup) -> bool {
    let clash = maillog_clash_step(t, s);
    let found: Vec<_> = s
        .cfg
        .untrusted_files(&s.settings, maillog_group(s))
        .into_iter()
        .filter(|u| u.what != "CONFIG" && !hers(s, u))
        .collect();
    for u in &found {
        // Another of rsendmail's files: the maillog step says so, with no repair.
        if u.what == "MAILLOG" && clash {
            continue;
        }
        // A device, a FIFO, a system file: said, never repaired here.
        let md = match u.what {
            "MAILLOG" => std::fs::symlink_metadata(&u.path).ok(),
            "AUTHPATH" => std::fs::metadata(&u.path).ok(),
            _ => None,
        };
        let repair = repair(s, u);
        if let Some(why) = md
            .filter(|_| {
                repair.starts_with(" (fix: ")
                    || crate::spool::safety::system_path(&u.path).is_some()
            })
            .and_then(|md| not_rsendmails(&s.cfg, u.what, &u.path, &md, false))
        {
            t.fail(Sysexit::Config, "files", &why);
            continue;
        }
        // A fix changes only what is rsendmail's: the file and each directory it
        // would change (a system log's directory, /etc/aliases are not).
        let at = u.at.trim_end_matches(": ");
        let otherwise = by_hand(Some(&if at.is_empty() {
            format!(
                "or name another file in {}",
                u.named.trim_end_matches([' ', '='])
            )
        } else {
            format!("or correct {at}")
        }));
        t.fail(
            Sysexit::Config,
            "files",
            &format!("{}{}", u.problem(), placed_repair(u, repair, &otherwise)),
        );
    }
    found.is_empty() && !clash
}

/// What root is to do with a file not rsendmail's that others may write, when no fix
/// is printed for it, and the other way out (`or correct FILE: line N`), if any.
fn by_hand(or: Option<&str>) -> String {
    let what = "have root make it writable by root alone by hand if nothing else needs to \
                write it";
    match or {
        Some(or) => format!("{what}, {or}"),
        None => what.to_string(),
    }
}

/// `repair` ([`repair`] of `u`) held to the places rule ([`placed_fix`]): a fix whose
/// commands would change a path that is not rsendmail's (the file, a directory on its
/// path) is no fix, and `otherwise` says what to do.
fn placed_repair(u: &crate::config::UntrustedFile, repair: String, otherwise: &str) -> String {
    let Some(cmds) = repair
        .strip_prefix(" (fix: ")
        .and_then(|c| c.strip_suffix(')'))
    else {
        return repair;
    };
    let touched: Vec<&Path> = std::iter::once(u.path.as_path())
        .chain(u.risks.iter().map(|r| r.path.as_path()))
        .collect();
    let placed = placed_fix(&touched, &[cmds.to_string()], otherwise);
    // A file the programs read (the configuration, auth.conf, the aliases, a table)
    // that others could change: whoever could may have changed what it says already,
    // which no mode shows; root reads it through once it is put right (by its fix, or
    // by hand where none is printed).
    if !matches!(u.what, "MAILLOG" | "MAILSPOOL") {
        format!(
            "; read {} through once it is put right: whoever could write it may have \
             changed what it says{placed}",
            sh_word(&u.path)
        )
    } else {
        placed
    }
}

/// The repair [`trust_step`] and [`config_step`] offer for `u`: never a change of the
/// owner or mode of a path a user can change (she could swap it for a link to any file
/// first); `chmod go-w` of each item, from the top down, when only their modes are
/// wrong; else the file made anew where root's alone.
fn repair(s: &app::Setup, u: &crate::config::UntrustedFile) -> String {
    match u.risks.first() {
        // A log file under a directory others may write (Ubuntu's /var/log, the
        // system logger's group's): its mode is the logger's, not to be changed.
        // The programs log to syslog instead of such a file (they run on).
        // A log file under a directory a user owns: her directory, not a mode, is the
        // fault; nothing of hers is adopted.
        Some(r)
            if u.what == "MAILLOG"
                && !r.file
                && r.kind == crate::spool::safety::RiskKind::Owner =>
        {
            format!(
                " (the programs log to syslog instead, and deliver; repair: remove MAILLOG \
                 to log through syslog, or name a file in a directory that is root's alone \
                 all the way down; {} belongs to {}, who chose what is in it: never change \
                 its owner or mode, she can swap it for a link first)",
                sh_word(&r.path),
                crate::spool::safety::the_user_id(r.md.uid())
            )
        }
        Some(r) if u.what == "MAILLOG" && !r.file => format!(
            " (the programs log to syslog instead, and deliver; repair: remove MAILLOG \
                 to log through syslog, or name a file in a directory that is root's alone \
                 all the way down; never change the mode of {}, which others, such as the \
                 system logger, may need to write)",
            sh_word(&r.path)
        ),
        // The mail spool itself, root's, that others may write: sticky, as the
        // usual spools are, others can still make their mailboxes in it but replace
        // nothing of anyone else's.
        Some(r) if u.what == "MAILSPOOL" && r.file && r.mode_only() => {
            fix(&[format!("chmod +t {}", sh_word(&r.path))])
        }
        // Each only of a wrong mode, root's or this user's and no link: `chmod go-w`
        // of each from the top down, each one made safe before the next is changed,
        // so that no one could swap what is changed next; followed, the step passes.
        // One a user owns or a link is never adopted (its owner chose what is in it).
        // An access ACL that lets others write is removed first (`chmod go-w` alone
        // only narrows its mask, which a later `chmod g+w` widens again).
        Some(_) if u.risks.iter().all(|r| r.mode_only()) => fix(&u
            .risks
            .iter()
            .flat_map(|r| {
                let p = sh_word(&r.path);
                let acl = (r.kind == RiskKind::Acl).then(|| format!("setfacl -b {p}"));
                acl.into_iter().chain([format!("chmod go-w {p}")])
            })
            .collect::<Vec<_>>()),
        Some(_) if u.what == "CONFIG" && u.path == config::system_config() => format!(
            " (repair: have root remove what is at fault and make {} anew, from a copy \
                 it has checked, with the file and every directory and link on its path \
                 root's alone; never change the owner or mode of a path a user can \
                 change: she can swap it for a link to any file first)",
            sh_word(&u.path)
        ),
        Some(_) if u.what == "CONFIG" => " (repair: have root make the file anew in a \
                 directory that is root's alone all the way down, from a copy it has \
                 checked, and give that path with -C; never change the owner or mode of a \
                 path a user can change: she can swap it for a link to any file first)"
            .to_string(),
        // Only the file itself is at fault (a user owns it, or it is a link), in a
        // directory that is root's alone: made anew in its place, nothing of it kept.
        Some(_)
            if u.risks.iter().all(|r| r.file)
                && !matches!(u.what, "MAILLOG" | "MAILSPOOL" | config::CONFIG_FILE) =>
        {
            format!(
                " (repair: have root remove {p} and write it anew in its place from a copy \
                 it has checked, {made} (its directory already is); never change its \
                 owner or mode: its owner can swap it for a link to any file first)",
                p = sh_word(&u.path),
                made = made_as(s, u.what)
            )
        }
        Some(_) if u.what == "MAILSPOOL" => " (repair: have root make the mail spool \
                 anew in a directory that is root's alone all the way down, root:mail 2775 \
                 or 1777, move the mailboxes into it, and name it in MAILSPOOL; never change \
                 the owner or mode of a path a user can change: she can swap it for a link \
                 to any file first)"
            .to_string(),
        _ => format!(
            " (repair: have root make the file anew in a directory that is root's alone \
                 all the way down, from a copy it has checked, {}, and name that path in {}; \
                 never change the owner or mode of a path a user can change: she can \
                 swap it for a link to any file first)",
            made_as(s, u.what),
            u.named.trim_end_matches([' ', '='])
        ),
    }
}

/// Whose, and of which mode, a file the configuration names (`what`, as
/// [`crate::config::UntrustedFile::what`]) is made anew by root so that every step
/// passes: auth.conf of a shared spool is read by users' deliveries with the spool's
/// group (the auth.conf step's rule), so `root's, of the group G, mode 0640`; of any
/// other spool `root's alone, mode 0600`; any other file `root's alone`.
fn made_as(s: &app::Setup, what: &str) -> String {
    if what != "AUTHPATH" {
        return "root's alone".to_string();
    }
    let spool_md = std::fs::metadata(&s.spool.dir).ok();
    let want = SpoolOwner::wanted(s, spool_md.as_ref());
    if s.spool.private || want.root_only {
        "root's alone, mode 0600".to_string()
    } else {
        format!("root's, of the spool's group {}, mode 0640", want.group)
    }
}

/// The configuration file's `O DeliveryMode=` value of which the first character alone
/// is read (sendmail's rule) and the rest is not the mode's name (`b extra`): the
/// warning, with its file and line, that the rest is not read
/// ([`crate::options::DeliveryMode::ignored_rest`]).
pub fn delivery_mode_rest(cfg: &Config) -> Option<String> {
    let (_, v) = cfg
        .settings
        .written
        .iter()
        .find(|(k, _)| k == "DeliveryMode")?;
    let c = crate::options::DeliveryMode::ignored_rest(v)?;
    let at = cfg
        .origin
        .get("O DeliveryMode")
        .map(|o| format!("{o}: "))
        .unwrap_or_default();
    Some(format!(
        "{at}O DeliveryMode={v}: only its first character, {c}, is read (write O \
         DeliveryMode={c})"
    ))
}

/// Settings that change nothing, with their file and line: `O` options rsendmail
/// accepts for sendmail's sake and does not act on, VERIFYCERT without INSECURE,
/// FINGERPRINT, CERTFILE and `O CACertFile` where no TLS is configured,
/// OPPORTUNISTIC_TLS where SECURETRANSFER makes TLS start at once.
pub fn idle_settings(cfg: &Config) -> Vec<String> {
    let at = |key: &str| {
        cfg.origin
            .get(key)
            .map(|o| format!("{o}: "))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for (name, _) in &cfg.settings.other {
        let key = match name.split_once('.') {
            Some(("Timeout", sub)) => format!("O Timeout.{}", sub.to_ascii_lowercase()),
            Some((base, _)) => format!("O {base}"),
            None => format!("O {name}"),
        };
        if seen.contains(&key) {
            continue;
        }
        out.push(format!(
            "{}O {name} is accepted for sendmail's sake and has no effect in rsendmail",
            at(&key)
        ));
        seen.push(key);
    }
    if cfg.verify_cert && !cfg.insecure {
        out.push(format!(
            "{}VERIFYCERT has no effect without INSECURE (certificates are verified unless INSECURE is given)",
            at("VERIFYCERT")
        ));
    }
    // What only TLS uses, given where no TLS is configured: the relay is not pinned
    // nor shown a certificate, and mail goes in clear text.
    // (The deliverer's `tls_mode` is off exactly so.)
    let no_tls = !cfg.secure_transfer && !cfg.starttls && !cfg.opportunistic_tls;
    for (key, set, what) in [
        (
            "FINGERPRINT",
            cfg.fingerprint.is_some(),
            "no certificate is pinned",
        ),
        (
            "CERTFILE",
            cfg.cert_file.is_some(),
            "no client certificate is shown",
        ),
        (
            "O CACertFile",
            cfg.settings.ca_cert_file.is_some(),
            "no certificate is verified with it",
        ),
    ] {
        if no_tls && set {
            out.push(format!(
                "{}{key} has no effect without TLS (no STARTTLS, SECURETRANSFER or \
                 OPPORTUNISTIC_TLS line): {what}, and mail goes in clear text",
                at(key)
            ));
        }
    }
    if cfg.opportunistic_tls && cfg.secure_transfer && !cfg.starttls {
        out.push(format!(
            "{}OPPORTUNISTIC_TLS has no effect: SECURETRANSFER without STARTTLS is TLS from the first byte",
            at("OPPORTUNISTIC_TLS")
        ));
    }
    out
}

/// The aliases file, read as delivery reads it, when it is there: one that is not text
/// (a NUL octet) is used by no delivery, and fails with its line; one this user may not
/// read is a `warn` (the root queue runner reads it); one the configuration names that
/// is not there fails with the line that names it. Its other problems are
/// `newaliases`'s to list; a file that is not regular fails in the config step.
fn aliases_step(t: &mut Tally, s: &app::Setup) {
    if s.inv.no_alias {
        return;
    }
    let path = s.settings.alias_file.as_ref().unwrap_or(&s.cfg.aliases);
    match crate::aliases::Aliases::load(path) {
        Err(e) if let Some(why) = unseen_without_group(s, path, &e) => {
            t.say(Mark::Warn, "aliases", &why)
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && !nix::unistd::geteuid().is_root() =>
        {
            t.say(
                Mark::Warn,
                "aliases",
                &format!(
                    "{} could not be checked: {} (this user may not read it; run the \
                     check as root to check it)",
                    path.display(),
                    config::io_text(&e)
                ),
            )
        }
        Ok(a) => {
            if let Some(why) = a.unusable() {
                t.fail(
                    Sysexit::Config,
                    "aliases",
                    &format!(
                        "{why}: no delivery uses it, and every local recipient waits in \
                         the queue until it is made a text file again"
                    ),
                );
            } else {
                aliases_lines_step(t, &a);
                aliases_readers_step(t, s, path);
            }
        }
        // A file the configuration names that is not there: every alias is off, with
        // no word from delivery (sendmail's `newaliases` only says it cannot open it,
        // and exits 0): a typo of the line is failed where it is written.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (at, named) = s.cfg.file_named(&s.settings, "ALIASES");
            if at.is_empty() {
                // The built-in file, not there: no alias applies (mail to postmaster
                // and the system's accounts goes to their mailboxes, unread).
                t.say(
                    Mark::Warn,
                    "aliases",
                    &format!(
                        "there is no {}: no alias applies (postmaster, root's mail to \
                         another user); make one, with at least `postmaster: root`{}",
                        path.display(),
                        // Its mode set, whatever root's umask: one others may write
                        // is refused by every program.
                        unless_swappable(
                            s,
                            path,
                            false,
                            &[
                                format!("install -m 644 /dev/null {}", sh_word(path)),
                                format!("printf 'postmaster: root\\n' > {}", sh_word(path))
                            ]
                        )
                    ),
                );
            } else {
                // The option given on the command line is no line to correct.
                let correct = if at == "the command line: " {
                    "give another file"
                } else {
                    "correct the line"
                };
                t.fail(
                    Sysexit::Config,
                    "aliases",
                    &format!(
                        "{at}cannot open {named}{}: {} (no alias applies while it is \
                         missing: {correct}, or make the file)",
                        path.display(),
                        config::io_text(&e)
                    ),
                );
            }
        }
        Err(_) => {}
    }
}

/// The mail spool (MAILSPOOL, `/var/mail` built in), where local mail is delivered
/// (root, postmaster, an alias's local targets, the reports of returned mail): a
/// directory that is not there (a typo of the line) fails, since every local delivery
/// waits in the queue until it is there; a NULLCLIENT hands local mail to SMARTHOST
/// too and has no use for it. Its modes are the trust step's.
fn mail_spool_step(t: &mut Tally, s: &app::Setup) {
    if s.cfg.null_client {
        return;
    }
    let dir = &s.cfg.mail_spool;
    let why = match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => return,
        Ok(_) => "not a directory".to_string(),
        Err(e) if let Some(why) = unseen_without_group(s, dir, &e) => {
            t.say(Mark::Warn, "mailboxes", &why);
            return;
        }
        Err(e) => config::io_text(&e),
    };
    let at = s.cfg.where_set("MAILSPOOL");
    let what = if at.is_empty() {
        format!("MAILSPOOL {} (built in)", dir.display())
    } else {
        format!("{at}MAILSPOOL {}", dir.display())
    };
    if s.spool.private {
        // A user's own spool: her local mail is hers alone, to her own directory.
        t.say(
            Mark::Warn,
            "mailboxes",
            &format!(
                "{what}: {why}: local mail waits in the queue until it is there{}",
                unless_swappable(
                    s,
                    dir,
                    false,
                    &[format!("mkdir -p -m 700 {}", sh_word(dir))]
                )
            ),
        );
        return;
    }
    t.fail(
        Sysexit::Config,
        "mailboxes",
        &format!(
            "{what}: {why}: local mail (root, postmaster, an alias's local targets, the \
             reports of returned mail) waits in the queue until it is there; correct the \
             line, or have root make it, root:mail 2775 or 1777"
        ),
    );
}

/// `O PidFile=`, when set: the daemon replaces the file with its process id and removes
/// it when it stops, so something there that is not a pid file (`/etc/motd`), or a place
/// where no pid file goes ([`crate::spool::safety::pid_file_place_problem`]:
/// `/etc/cron.d/rsendmail`), fails with the line to correct; the daemon refuses both,
/// writing nothing.
fn pid_file_step(t: &mut Tally, s: &app::Setup) {
    let Some(p) = s.settings.pid_file.as_deref() else {
        return;
    };
    // The file's line, or the command line's option, whichever set the value in force.
    let at = s.cfg.set_at(&s.settings, "PidFile");
    let correct = if at.is_empty() {
        "correct O PidFile".to_string()
    } else {
        format!("correct {at}")
    };
    let why = crate::spool::safety::pid_file_problem(p)
        .or_else(|| crate::spool::safety::pid_file_place_problem(p));
    match why {
        Some(why) => t.fail(
            Sysexit::Config,
            "pid file",
            &format!(
                "O PidFile names {}: {why}; the daemon would replace it and remove it at \
                 its stop, so it writes no pid file there; {correct}",
                p.display()
            ),
        ),
        None => t.say(Mark::Ok, "pid file", &p.display().to_string()),
    }
}

/// The root queue runner keeps the configuration it read at its start (or its last
/// SIGHUP restart), and so the relay table, auth.conf and the aliases: a `warn` line
/// for each of these files changed since, with the reload that makes it read them anew.
/// The runner names itself and that time in `slots/runner`, which it holds locked while
/// it runs; nothing is said when no runner holds it, or it cannot be read (a user
/// without the spool's group).
fn reload_step(t: &mut Tally, s: &app::Setup) {
    let Some((pid, started)) = runner_started(&s.spool.dir) else {
        return;
    };
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(c) = s.cfg.file.clone() {
        files.push(("the configuration", c));
    }
    if !s.inv.no_alias {
        let a = s.settings.alias_file.as_ref().unwrap_or(&s.cfg.aliases);
        files.push(("the aliases", a.clone()));
    }
    if let Some(a) = &s.cfg.auth_path {
        files.push(("AUTHPATH", a.clone()));
    }
    if let Some(r) = &s.cfg.relay_table {
        files.push(("RELAYTABLE", r.clone()));
    }
    let changed: Vec<String> = files
        .iter()
        .filter_map(|(what, p)| {
            let md = std::fs::metadata(p).ok()?;
            // What changes what the runner reads: the contents (the modification
            // time) or the file itself, replaced by another moved into its place
            // (its birth time: `mv` keeps the new file's older modification time).
            // Not the change time: a chmod or chown alone changes nothing it read.
            // Where the file system keeps no birth time, the change time stands in.
            let born = md
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .unwrap_or(md.ctime());
            let at = md.mtime().max(born);
            (at > started).then(|| {
                format!(
                    "{what} {} (changed {})",
                    p.display(),
                    crate::clock::ctime(&crate::clock::local(at))
                )
            })
        })
        .collect();
    if changed.is_empty() {
        return;
    }
    t.say(
        Mark::Warn,
        "reload",
        &format!(
            "the queue runner (pid {pid}) read its configuration at {}, before {} last changed: it delivers with what it read then until it is reloaded{}",
            crate::clock::ctime(&crate::clock::local(started)),
            changed.join(", "),
            fix(&[reload_command(pid)])
        ),
    );
}

/// The systemd unit of the root queue runner, when installed (the package's, or a copy
/// made as README says).
fn queue_unit_installed() -> bool {
    [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/local/lib/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ]
    .iter()
    .any(|d| Path::new(d).join(QUEUE_UNIT).exists())
}

const QUEUE_UNIT: &str = "rsendmail-queue.service";

/// The way to make the runner `pid` read its configuration anew: its unit's reload when
/// systemd runs it, else SIGHUP.
fn reload_command(pid: u32) -> String {
    let by_unit = queue_unit_installed()
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.contains(&format!("/{QUEUE_UNIT}")));
    if by_unit {
        "systemctl reload rsendmail-queue".to_string()
    } else {
        format!("kill -HUP {pid}")
    }
}

/// The root queue runner that holds `slots/runner` locked in `spool`: its process id and
/// when it read its configuration. None when no runner holds it, or it cannot be read.
fn runner_started(spool: &Path) -> Option<(u32, i64)> {
    let path = spool.join("slots").join("runner");
    let f = crate::spool::open_safely(
        &path,
        std::fs::OpenOptions::new().read(true),
        crate::spool::Kind::File,
    )
    .ok()?;
    // Held by a runner: a shared lock is refused.
    if !matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)) {
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(&f, 64), &mut text).ok()?;
    let (pid, at) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, at.parse().ok()?))
}

/// The damaged entries a queue run moved into `corrupt/`: a warning, since a run in the
/// background says it to no one (its stdout goes nowhere, and without syslog or MAILLOG
/// its log line too).
fn corrupt_step(t: &mut Tally, s: &app::Setup) {
    if let Some(note) = s.spool.corrupt_note() {
        t.say(Mark::Warn, "corrupt", &note);
    }
}

/// The lines of the aliases file that no delivery uses, as `newaliases` says them
/// (`FILE: line 3: missing colon`): a failure each, since the alias is silently missing.
fn aliases_lines_step(t: &mut Tally, a: &crate::aliases::Aliases) {
    for e in a.errors() {
        t.fail(
            Sysexit::Config,
            "aliases",
            &format!(
                "{}: this line is left out of every delivery (correct it; `newaliases` \
                 says the same)",
                crate::text::escaped(e)
            ),
        );
    }
}

/// The aliases file must be readable by the users' submissions, which expand aliases
/// with the caller's rights and the spool's group: readable by all, or by the spool's
/// group. Otherwise every local recipient's mail waits for the root queue runner, and a
/// user's `-bv` says `alias not read`.
fn aliases_readers_step(t: &mut Tally, s: &app::Setup, path: &Path) {
    // A user's own spool: her own submissions read it with her rights.
    if s.spool.private {
        return;
    }
    let Ok(md) = std::fs::metadata(path) else {
        return;
    };
    let spool_gid = std::fs::metadata(&s.spool.dir).ok().map(|m| m.gid());
    // One the files step fails (a user owns it, or a directory above it): its repair,
    // root's copy made anew, is the one that makes both pass; no second, other fix.
    if !crate::spool::safety::file_risks_trusting(path, &[], spool_gid).is_empty() {
        return;
    }
    let by_group = md.mode() & 0o040 != 0 && Some(md.gid()) == spool_gid;
    if crate::text::readable_by_all(&md) || by_group {
        return;
    }
    t.fail(
        Sysexit::Config,
        "aliases",
        &format!(
            "{} ({}): users' submissions cannot read it, so every local recipient of \
             theirs waits for the root queue runner, and their -bv says `alias not \
             read`{}",
            path.display(),
            owner_mode(&md),
            own_repair(
                s,
                "ALIASES",
                path,
                &[format!("chmod a+r {}", sh_word(path))],
                "if it holds nothing secret, have root make it readable by all by hand"
            )
        ),
    );
}

/// The mail name in force and the host name.
fn names_step(t: &mut Tally, cfg: &Config) {
    let name = cfg.host_name();
    let from = match &cfg.mailname {
        Some(m) if m.starts_with('/') => format!("MAILNAME {m}, {}", cfg.where_set("MAILNAME")),
        Some(_) => format!("MAILNAME, {}", cfg.where_set("MAILNAME")),
        None => "the host name".to_string(),
    };
    let from = from.trim_end_matches([' ', ':', ',']).to_string();
    // A name read from a file not everyone may read is not quoted in a problem.
    let private_file = cfg.mailname.as_deref().is_some_and(|m| {
        m.starts_with('/')
            && std::fs::metadata(m).is_ok_and(|md| !crate::text::readable_by_all(&md))
    });
    let shown = if private_file {
        format!("the name on line 1 ({})", crate::text::NOT_QUOTED)
    } else {
        name.clone()
    };
    if let Some(why) = crate::message::address::mail_name_problem(&name) {
        let why = if private_file {
            "not a name other hosts take".to_string()
        } else {
            why
        };
        // What the Debian package's question refuses (an IP address, an address
        // literal, localhost): other hosts refuse or misroute mail from such a name.
        t.fail(
            Sysexit::Config,
            "mailname",
            &format!("{shown} ({from}): {why}; set MAILNAME"),
        );
    } else if name.contains('.') {
        t.say(Mark::Ok, "mailname", &format!("{name} ({from})"));
    } else {
        t.say(
            Mark::Warn,
            "mailname",
            &format!(
                "{shown} ({from}) is not a domain name: other hosts may refuse mail from \
                 it; set MAILNAME"
            ),
        );
    }
    t.say(Mark::Ok, "hostname", &config::system_host_name());
}

use crate::spool::safety::{RiskKind, group_name, group_unfit, shell_word as sh_word, user_name};

/// The end of a line for a mode or owner problem: the commands that put it right, which
/// make that step pass when run as they are (`(fix: chgrp mail /etc/x && chmod 640
/// /etc/x)`).
/// The system's `sendmail` (/usr/sbin/sendmail), through which mail, cron and most
/// programs send: a warning when it is not this rsendmail (another mail system's, or
/// none), with the links to make. Only for the system configuration: a user's own
/// configuration is used with its own command line.
fn sendmail_step(t: &mut Tally, s: &app::Setup) {
    let link = Path::new(SYSTEM_SENDMAIL);
    let bin = rsendmail_path();
    let ours = std::fs::canonicalize(&bin).unwrap_or_else(|_| bin.clone());
    let uninstalled = not_installed(&ours, link);
    let make = uninstalled.clone().unwrap_or_else(|| {
        unless_swappable(
            s,
            link,
            false,
            &[format!("ln -s {} {}", sh_word(&bin), sh_word(link))],
        )
    });
    match std::fs::canonicalize(link) {
        Ok(p) if p == ours => t.say(
            Mark::Ok,
            "sendmail",
            &format!("{} runs {}", link.display(), bin.display()),
        ),
        Ok(p) => t.say(
            Mark::Warn,
            "sendmail",
            &match &uninstalled {
                Some(why) => format!(
                    "{} runs {}, not rsendmail ({}): mail sent with it (mail, cron, most \
                     programs) does not go through rsendmail{why}",
                    link.display(),
                    p.display(),
                    bin.display(),
                ),
                None => format!(
                    "{} runs {}, not rsendmail ({}): mail sent with it (mail, cron, most \
                     programs) does not go through rsendmail (repair: remove the other mail \
                     system's package, or move its programs aside: `mv {l} {l}.orig`, then \
                     `ln -s {b} {l}`, and the same for mailq and newaliases)",
                    link.display(),
                    p.display(),
                    bin.display(),
                    l = sh_word(link),
                    b = sh_word(&bin),
                ),
            },
        ),
        Err(_) => t.say(
            Mark::Warn,
            "sendmail",
            &format!(
                "there is no {}: mail, cron and most programs send with it{make}",
                link.display()
            ),
        ),
    }
}

/// Where programs look for sendmail.
const SYSTEM_SENDMAIL: &str = "/usr/sbin/sendmail";

/// The directories an install puts programs in (the package's /usr/sbin, README's
/// /usr/local/sbin, /opt for a vendor's tree): a system name (`/usr/sbin/sendmail`) is
/// linked only to a program below one of them.
const INSTALLED_UNDER: [&str; 4] = ["/usr", "/bin", "/sbin", "/opt"];

/// Why no link is offered from the system name `link` to the rsendmail at `real`
/// (resolved): ` (no link offered: ...)` when it is not an installed program (a build
/// tree's, a copy in /tmp): the system's sendmail would then be a scratch binary that
/// goes with its directory. None when it is below one of [`INSTALLED_UNDER`].
fn not_installed(real: &Path, link: &Path) -> Option<String> {
    if INSTALLED_UNDER.iter().any(|d| real.starts_with(d)) {
        return None;
    }
    Some(format!(
        " (no link offered: {} is not an installed program, not being under /usr, /bin, \
         /sbin or /opt; install rsendmail first, as README says, then link {} to the \
         installed one)",
        real.display(),
        link.display()
    ))
}

/// The other names of the system's mail programs: `newaliases` (in /usr/sbin with
/// Debian's sendmail, Postfix and exim, first in root's PATH; /usr/bin elsewhere) and
/// `mailq`. One that is there and runs another program is a warning: the admin's
/// `newaliases` checks another mail system's aliases file, `mailq` lists another queue.
const OTHER_NAMES: [&str; 4] = [
    "/usr/sbin/newaliases",
    "/usr/bin/newaliases",
    "/usr/bin/mailq",
    "/usr/sbin/mailq",
];

/// [`OTHER_NAMES`] that run another program than this rsendmail, one line each.
fn other_names_step(t: &mut Tally, s: &app::Setup) {
    let bin = rsendmail_path();
    let ours = std::fs::canonicalize(&bin).unwrap_or_else(|_| bin.clone());
    for name in OTHER_NAMES {
        let link = Path::new(name);
        if std::fs::symlink_metadata(link).is_err() {
            continue;
        }
        match std::fs::canonicalize(link) {
            Ok(p) if p == ours => {}
            other => {
                let runs = match other {
                    Ok(p) => format!("runs {}", p.display()),
                    Err(e) => format!("cannot be followed ({})", config::io_text(&e)),
                };
                let uninstalled = not_installed(&ours, link);
                t.say(
                    Mark::Warn,
                    "sendmail",
                    &format!(
                        "{name} {runs}, not rsendmail ({}){}",
                        bin.display(),
                        uninstalled.unwrap_or_else(|| unless_swappable(
                            s,
                            link,
                            false,
                            &[
                                format!("mv {n} {n}.orig", n = sh_word(link)),
                                format!("ln -s {} {}", sh_word(&bin), sh_word(link)),
                            ]
                        ))
                    ),
                );
            }
        }
    }
}

/// Why `path`, which the configuration's `keyword` names, is not rsendmail's, so that no
/// printed fix changes its mode or owner or moves it: a well-known system path (the
/// password file, `/`, `/tmp`, `/home`, anything under `/dev`, `/proc` or `/sys`), for a
/// file anything but a regular file or one with other links (a `dir`, the spool, must be
/// a directory), or one a system user other than root owns. Every fix of a mode or owner
/// of a file the configuration names goes through it; None when it is rsendmail's to
/// repair. The reason is the whole `FAIL` text: `MAILLOG names /etc/passwd, which is not
/// rsendmail's (the system's password file): correct /etc/rsendmail/rsendmail.conf:
/// line 9`.
fn not_rsendmails(
    cfg: &Config,
    keyword: &str,
    path: &Path,
    md: &std::fs::Metadata,
    dir: bool,
) -> Option<String> {
    let at = cfg.where_set(keyword);
    not_rsendmails_at(keyword, at.trim_end_matches(": "), path, md, dir)
}

/// [`not_rsendmails`] of a path named by `keyword` at `at` (`FILE: line N`, `the command
/// line`; empty: the configuration).
fn not_rsendmails_at(
    keyword: &str,
    at: &str,
    path: &Path,
    md: &std::fs::Metadata,
    dir: bool,
) -> Option<String> {
    let why = crate::spool::safety::not_rsendmails_file(path, md, dir)?;
    Some(format!(
        "{keyword} names {}, which is not rsendmail's ({why}): correct {}",
        path.display(),
        if at.is_empty() {
            "the configuration"
        } else {
            at
        }
    ))
}

/// Whether a member of group `gid` (neither root nor the owner) can read `path`: every
/// directory above it searchable by others or by that group, the file readable by
/// others or by that group (access ACLs aside).
fn group_reads(path: &Path, gid: u32) -> bool {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let may = |md: &std::fs::Metadata, bits: u32| {
        md.mode() & bits != 0 || (md.gid() == gid && md.mode() & (bits << 3) != 0)
    };
    real.ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|md| may(&md, 0o001)))
        && std::fs::metadata(&real).is_ok_and(|md| may(&md, 0o004))
}

/// The repair of a CERTFILE or CACertFile (`keyword`) at `src` the spool's group cannot
/// read: a copy of root's, of that group, mode 0640, in `tls/` of rsendmail's
/// configuration directory (`/etc/rsendmail/tls/client.pem` for CERTFILE,
/// `.../ca.pem` for CACertFile: never the same name, nor one of its other files), and
/// its line pointed at the copy. Offered only for a regular file that parses as what the
/// keyword must hold ([`config::check_pem`]: no password file, no lone private key, no
/// `/proc` file), reached through no link someone else owns, when the configuration's
/// directory is rsendmail's own and the copy's place holds nothing else (the same
/// text: only the line is changed). A file already at the copy's place is given the
/// group and mode instead. Else no command: why, and what to do by hand.
fn cert_copy_fix(s: &app::Setup, keyword: &str, src: &Path, at: &str, group: &str) -> String {
    use crate::spool::safety::{foreign_link, not_rsendmails_own};
    let by_hand = |why: &str| {
        format!(
            " (no fix: {why}; rsendmail copies only a {keyword} file it can use to a place \
             of its own; correct {})",
            if at.is_empty() {
                "the configuration"
            } else {
                at
            }
        )
    };
    if let Some(why) = foreign_link(src) {
        return by_hand(&format!("{} is {why}", src.display()));
    }
    if let Some(what) = crate::spool::safety::system_path(src) {
        let what = if what.is_empty() { "a device" } else { what };
        return by_hand(&format!("{} is {what}", src.display()));
    }
    let text = match std::fs::metadata(src) {
        Ok(md) if !md.is_file() => {
            return by_hand(&format!("{} is not a regular file", src.display()));
        }
        Ok(md) if md.len() > 1 << 20 => {
            return by_hand(&format!(
                "{} is too big for a certificate file",
                src.display()
            ));
        }
        Ok(_) => match std::fs::read(src) {
            Ok(t) => t,
            Err(e) => {
                return by_hand(&format!("{}: {}", src.display(), config::io_text(&e)));
            }
        },
        Err(e) => return by_hand(&format!("{}: {}", src.display(), config::io_text(&e))),
    };
    if let Err(why) = config::check_pem(keyword, &text) {
        return by_hand(&format!(
            "{} is not a {keyword} file ({})",
            src.display(),
            crate::text::escaped(&why)
        ));
    }
    let conf_dir = s
        .cfg
        .file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/etc/rsendmail"));
    if let Some(why) = not_rsendmails_own(&conf_dir) {
        return by_hand(&format!(
            "the configuration's directory {} is not rsendmail's ({why})",
            conf_dir.display()
        ));
    }
    let name = if keyword == "CERTFILE" {
        "client.pem"
    } else {
        "ca.pem"
    };
    let tls = conf_dir.join("tls");
    let copy = tls.join(name);
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    let mut cmds = Vec::new();
    // `tls` itself: a real directory (never a link, which could lead anywhere, /etc),
    // root's and written by root alone; or not there, then made so.
    match std::fs::symlink_metadata(&tls) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            cmds.push(format!(
                "install -d -o root -g {group} -m 750 {}",
                sh_word(&tls)
            ));
        }
        Ok(md) if md.file_type().is_symlink() => {
            return by_hand(&format!(
                "{} is a symbolic link, which could lead anywhere",
                tls.display()
            ));
        }
        Ok(md) if !md.is_dir() => {
            return by_hand(&format!(
                "{} is {}, not a directory",
                tls.display(),
                crate::spool::safety::kind_of(&md.file_type())
            ));
        }
        Ok(md) if md.uid() != 0 => {
            return by_hand(&format!(
                "{} is owned by {}, not root: whoever owns it chooses what is in it",
                tls.display(),
                crate::spool::safety::the_user_id(md.uid())
            ));
        }
        Ok(md)
            if md.mode() & 0o022 != 0
                || crate::spool::safety::others_may_write(&tls, &md, false) =>
        {
            return by_hand(&format!(
                "{} ({}) may be written by others than root",
                tls.display(),
                owner_mode(&md)
            ));
        }
        Ok(_) => {}
        Err(e) => return by_hand(&format!("{}: {}", tls.display(), config::io_text(&e))),
    }
    if real(src).is_some_and(|r| Some(r) == real(&copy)) {
        // Already the copy: given the group and mode.
        cmds.push(format!("chgrp {group} {}", sh_word(&copy)));
        cmds.push(format!("chmod 640 {}", sh_word(&copy)));
        return unless_swappable(s, &copy, false, &cmds);
    }
    match std::fs::symlink_metadata(&copy) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Its PEM blocks alone: no text around them (a note, a password) is copied
            // where the spool's group reads it.
            cmds.push(format!(
                "install -o root -g {group} -m 640 /dev/null {}",
                sh_word(&copy)
            ));
            cmds.push(format!(
                "sed -n '/^-----BEGIN /,/^-----END /p' {} >> {}",
                sh_word(src),
                sh_word(&copy)
            ));
        }
        Ok(md) if md.is_file() && std::fs::read(&copy).is_ok_and(|c| c == pem_blocks(&text)) => {
            // The same text there already (an earlier copy): the line alone.
        }
        _ => {
            return by_hand(&format!(
                "the copy's place {} holds another file, which is never replaced: copy \
                 {} by hand to a new name in {}, root's, of the group {group}, mode 0640, \
                 and name that",
                copy.display(),
                src.display(),
                tls.display()
            ));
        }
    }
    let line = if keyword == "CERTFILE" {
        format!("CERTFILE {}", copy.display())
    } else {
        format!("O CACertFile={}", copy.display())
    };
    // Its line pointed at the copy (never a chgrp of the file another group reads), found
    // by its text, not its number ([`super::elsewhere::line_edit`]).
    let edit = at
        .rsplit_once(": line ")
        .and_then(|(file, n)| Some((file, n.parse::<u32>().ok()?)))
        .filter(|_| copy.to_str().is_some())
        .and_then(|(file, n)| super::elsewhere::line_edit(Path::new(file), n, &line).ok());
    match edit {
        Some(cmd) => {
            cmds.push(cmd);
            unless_swappable(s, &copy, false, &cmds)
        }
        None if cmds.is_empty() => format!(" (correct {at} to read `{line}`)"),
        None => format!(
            "{}, then correct {at} to read `{line}`",
            unless_swappable(s, &copy, false, &cmds)
        ),
    }
}

/// The PEM blocks of `text`, each line from a `-----BEGIN ` line to the next `-----END `
/// line, as `sed -n '/^-----BEGIN /,/^-----END /p'` prints them: what the certificate
/// copy ([`cert_copy_fix`]) holds.
fn pem_blocks(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if !inside && line.starts_with(b"-----BEGIN ") {
            inside = true;
        }
        if inside {
            out.extend_from_slice(line);
            inside = !line.starts_with(b"-----END ");
        }
    }
    out
}

/// The end of a line for a problem of `path`, which the configuration's `keyword`
/// names: [`crate::spool::safety::repair_text`] of `cmds` when the path is rsendmail's
/// own ([`crate::spool::safety::not_rsendmails_own`]), else no command: why rsendmail
/// changes nothing of it, what root may do by hand (`by_hand`), or the line to correct.
fn own_repair(
    s: &app::Setup,
    keyword: &str,
    path: &Path,
    cmds: &[String],
    by_hand: &str,
) -> String {
    match crate::spool::safety::not_rsendmails_own(path) {
        None => crate::spool::safety::repair_text(path, cmds),
        // Where the value in force was set: ALIASES' line, or `-O AliasFile=`.
        Some(why) => {
            let (at, named) = s.cfg.file_named(&s.settings, keyword);
            let named = named.trim_end_matches([' ', '=']);
            not_own_text(&at, named, path, &why, by_hand)
        }
    }
}

/// ` (no fix: PATH is not rsendmail's (WHY), and no fix touches what is not; BY_HAND,
/// or correct FILE: line N)`.
fn not_own_text(at: &str, keyword: &str, path: &Path, why: &str, by_hand: &str) -> String {
    let at = at.trim_end_matches(": ");
    let correct = if at.is_empty() {
        format!("or name another file in {keyword}")
    } else {
        format!("or correct {at}")
    };
    no_fix_text(path, why, &format!("{by_hand}, {correct}"))
}

fn fix(cmds: &[String]) -> String {
    format!(" (fix: {})", cmds.join(" && "))
}

/// What a command of root's on `path` (with `inside`, on what is in the directory
/// `path`) could be turned against root by, if anything: the first directory or
/// symbolic link met on the way to it as the kernel resolves it
/// ([`crate::spool::safety::Walk`]; the path itself too with `inside`, else only when
/// it is a link) that someone other than root (a user's own spool: root or she) owns,
/// or that others may write: everyone, a group, a user or group an access ACL names.
/// A sticky directory of root's above the spool is safe (others replace only what they
/// own in it), and so is the spool's own group writing the spool and what is in it
/// (its members are the spool's administrators: [`SpoolOwner::wanted`]); a sticky
/// directory inside the spool is not. Whoever holds such a directory can swap what the
/// command names for a symbolic link between the check and the fix, and root's `chown`
/// or `chmod` lands on a file of her choosing. The directory or link, and why.
fn swappable(s: &app::Setup, path: &Path, inside: bool) -> Option<(PathBuf, String)> {
    use crate::spool::safety::{Trust, Walk, the_user_id, with_acl};
    let private = s.spool.private;
    let me = nix::unistd::geteuid().as_raw();
    let my_gid = nix::unistd::getegid().as_raw();
    let trusted = move |uid: u32| uid == 0 || (private && uid == me);
    let spool = std::fs::canonicalize(&s.spool.dir).ok();
    let spool_gid = std::fs::metadata(&s.spool.dir)
        .ok()
        .filter(|md| md.is_dir() && trusted(md.uid()))
        .and_then(|md| SpoolOwner::wanted(s, Some(&md)).gid);
    let above = Trust {
        owner: &trusted,
        group: &|g| private && g == my_gid,
        sticky_ok: true,
    };
    let in_spool = Trust {
        owner: &trusted,
        group: &|g| Some(g) == spool_gid || (private && g == my_gid),
        sticky_ok: false,
    };
    let mut walk = Walk::new(path);
    let mut met: Vec<_> = walk.by_ref().collect();
    if !inside && walk.complete() && met.last().is_some_and(|m| !m.md.is_symlink()) {
        // The path itself: what the command changes, whoever owns it.
        met.pop();
    }
    for m in met {
        if m.md.is_symlink() {
            if !trusted(m.md.uid()) {
                return Some((
                    m.path,
                    format!("a symbolic link owned by {}", the_user_id(m.md.uid())),
                ));
            }
            continue;
        }
        if !m.md.is_dir() {
            continue;
        }
        let trust = if spool.as_ref().is_some_and(|sp| m.path.starts_with(sp)) {
            &in_spool
        } else {
            &above
        };
        if let Some((_, why)) = with_acl(&m.path, &m.md, trust) {
            return Some((m.path, why));
        }
    }
    None
}

/// Why no command is printed for what is at `dir` ([`swappable`]: `why`), and what to
/// do first: ` (no fix yet: DIR is WHY, ...; put DIR right first, then check again)`.
fn swappable_text(dir: &Path, why: &str) -> String {
    format!(
        " (no fix yet: {} is {why}, so what a command of root's would change below it \
         could be swapped for a symbolic link first, and the command would change a file \
         of someone else's choosing; put {} right first, then check again)",
        dir.display(),
        dir.display()
    )
}

/// ` (fix: CMDS)` ([`fix`]) for commands of root's that change `path` (with `inside`,
/// what is in the directory `path`), unless someone other than root could swap it for
/// a symbolic link first ([`swappable`]): then no command, and what to put right first
/// ([`swappable_text`]). The rule every step holds a `chown`, `chmod`, `rm`, `mkdir`,
/// `mv` or `setfacl` fix to.
fn unless_swappable(s: &app::Setup, path: &Path, inside: bool, cmds: &[String]) -> String {
    fix_unless(swappable(s, path, inside), cmds)
}

/// ` (fix: CMDS)` when `swap` ([`swappable`]) found nothing, else [`swappable_text`].
fn fix_unless(swap: Option<(PathBuf, String)>, cmds: &[String]) -> String {
    match swap {
        None => fix(cmds),
        Some((d, why)) => swappable_text(&d, &why),
    }
}

/// The first of `touched` that is not rsendmail's own, with why
/// ([`crate::spool::safety::not_rsendmails_own`]: links resolved and `..` taken away,
/// in one of rsendmail's places), or None when every one is.
fn outside_places<'a>(touched: &[&'a Path]) -> Option<(&'a Path, String)> {
    touched
        .iter()
        .find_map(|p| crate::spool::safety::not_rsendmails_own(p).map(|why| (*p, why)))
}

/// The end of a line whose repair is `cmds`, which change the paths `touched`: the one
/// rule by which a step prints a command. ` (fix: CMDS)` when each path is rsendmail's
/// own ([`outside_places`]), else no command: ` (no fix: P is not rsendmail's (WHY), and
/// no fix touches what is not; OTHERWISE)`, `otherwise` saying what to do instead (the
/// line to correct).
fn placed_fix(touched: &[&Path], cmds: &[String], otherwise: &str) -> String {
    match outside_places(touched) {
        None => fix(cmds),
        Some((p, why)) => no_fix_text(p, &why, otherwise),
    }
}

/// ` (no fix: PATH is not rsendmail's (WHY), and no fix touches what is not; OTHERWISE)`.
fn no_fix_text(path: &Path, why: &str, otherwise: &str) -> String {
    format!(
        " (no fix: {} is not rsendmail's ({why}), and no fix touches what is not; \
         {otherwise})",
        path.display()
    )
}

/// The repair of a program at `path` that someone other than root owns: a fresh copy
/// installed by root with `group` and `mode` (never a chown or chmod of the file she
/// owns: she can swap it for a link to any file first). The copy comes from a build
/// root trusts, as the source install does (README), or from the package.
fn reinstall(path: &Path, group: &str, mode: &str) -> String {
    let name = path
        .file_name()
        .map(|n| sh_word(Path::new(n)))
        .unwrap_or_default();
    format!(
        " (repair: have root install a fresh copy, in the source tree of a build it \
         trusts: `install -o root -g {group} -m {mode} target/release/{name} {}`, or \
         reinstall the package; never chown or chmod the file its owner can swap for a \
         link first)",
        sh_word(path)
    )
}

fn owner_mode(md: &std::fs::Metadata) -> String {
    format!(
        "{}:{} {:04o}",
        user_name(md.uid()),
        group_name(md.gid()),
        md.mode() & 0o7777
    )
}

/// `rsendmail-admin [-C FILE] init [--group GROUP]` for the configuration this check
/// read, as root runs it: this program by its path, and `--group` when the spool's
/// group `group` is not the one init gives when told none.
/// `-C FILE` (with a blank before it) for a command printed for root to run, when a
/// configuration file was given (absolute: `rsendmail-admin` makes it so, and the
/// command does what it says from any directory); else nothing.
fn conf_option(s: &app::Setup) -> String {
    match &s.inv.config_file {
        Some(c) => format!(" -C {}", sh_word(c)),
        None => String::new(),
    }
}

fn init_command(s: &app::Setup, group: &str) -> String {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rsendmail-admin"));
    let conf = conf_option(s);
    let group = if group == init::DEFAULT_GROUP {
        String::new()
    } else {
        format!(" --group {}", sh_word(Path::new(group)))
    };
    format!("{}{conf} init{group}", sh_word(&me))
}

use init::rsendmail_path;

/// Who the spool and its sub-directories must belong to, as `rsendmail-admin init`
/// leaves them: a system spool is root's, of the spool's group (never root's group,
/// which would make `rsendmail` set-gid root); a user's own spool is hers.
struct SpoolOwner {
    uid: u32,
    /// The group's id; `None` when no such group exists yet (the fix makes it).
    gid: Option<u32>,
    /// The group's name (a number when it has none).
    group: String,
    /// Why no group fit for the spool could be found, when none can
    /// ([`init::SpoolGroup::Unfit`]): the group [`init::DEFAULT_GROUP`] is there but
    /// unfit ([`group_unfit`]), and neither the spool's group nor the binary's is fit.
    unfit: Option<String>,
    /// A system spool root's alone (owned by root, nothing in its mode for its group or
    /// others: 0700, as the quick start makes one as root): no group reaches what is
    /// below it, so every program uses it whatever its group
    /// ([`crate::spool::Spool::unfit_group`]). Its sub-directories, files and FIFO are
    /// looked at with the spool's own owner and group, as the programs make them there.
    root_only: bool,
    /// For a spool root's alone: the groups the programs give what they make there
    /// besides the spool's own. Root keeps the set-gid group of the installed
    /// `rsendmail` and `rsendmail-admin` (nothing there is the spool's group's to lose),
    /// and a directory without the set-gid bit gives the maker's group: what those make
    /// has that group ([`set_gid_groups`]).
    programs: Vec<u32>,
}

/// The groups the installed `rsendmail` and this `rsendmail-admin` are set-gid to (none
/// for one that is not set-gid).
fn set_gid_groups() -> Vec<u32> {
    let mut out = Vec::new();
    for p in [Some(rsendmail_path()), std::env::current_exe().ok()]
        .into_iter()
        .flatten()
    {
        if let Ok(md) = std::fs::metadata(&p)
            && md.mode() & 0o2000 != 0
            && !out.contains(&md.gid())
        {
            out.push(md.gid());
        }
    }
    out
}

impl SpoolOwner {
    /// The owner wanted for the spool at `dir` (`spool_md`, when it is there). The group
    /// of a system spool: the one `rsendmail-admin init` gives when not told another,
    /// by the same rule ([`init::spool_group`]: the spool's own when fit and it was made
    /// before, else the group the installed `rsendmail` is set-gid to when fit, else
    /// [`init::DEFAULT_GROUP`]).
    fn wanted(s: &app::Setup, spool_md: Option<&std::fs::Metadata>) -> SpoolOwner {
        if let Some(md) = spool_md.filter(|_| s.spool.private) {
            return SpoolOwner {
                uid: md.uid(),
                gid: Some(md.gid()),
                group: group_name(md.gid()),
                unfit: None,
                root_only: false,
                programs: Vec::new(),
            };
        }
        if let Some(md) = spool_md.filter(|md| md.uid() == 0 && md.mode() & 0o077 == 0) {
            return SpoolOwner {
                uid: 0,
                gid: Some(md.gid()),
                group: group_name(md.gid()),
                unfit: None,
                root_only: true,
                programs: set_gid_groups(),
            };
        }
        let (gid, unfit) = match init::spool_group(&s.spool.dir) {
            Ok(init::SpoolGroup::Fit { gid, .. }) => (Some(gid), None),
            Ok(init::SpoolGroup::Unfit(why)) => (
                nix::unistd::Group::from_name(init::DEFAULT_GROUP)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw()),
                Some(why),
            ),
            Ok(init::SpoolGroup::Missing) | Err(_) => (None, None),
        };
        SpoolOwner {
            uid: 0,
            gid,
            group: gid.map_or_else(|| init::DEFAULT_GROUP.to_string(), group_name),
            unfit,
            root_only: false,
            programs: Vec::new(),
        }
    }

    /// When no group is fit for a system spool: why, and the commands that make one
    /// and give it to the spool (`init --group`, making the group first when it is not
    /// there), when there is one to name ([`init::other_group`]).
    fn no_fit_group(&self, s: &app::Setup) -> Option<(String, Vec<String>)> {
        let why = self.unfit.as_ref()?;
        let mut cmds = Vec::new();
        if let Some((g, make)) = init::other_group(&self.group, &s.spool.dir) {
            if make {
                cmds.push(groupadd_command(&g));
            }
            cmds.push(init_command(s, &g));
        }
        Some((
            format!(
                "no group is fit for it: {}",
                init::unfit_group(&self.group, why, true, &s.spool.dir)
            ),
            cmds,
        ))
    }

    /// Whether `md` has the owner and group wanted.
    fn owns(&self, md: &std::fs::Metadata) -> bool {
        md.uid() == self.uid && self.group_fits(md.gid())
    }

    /// Whether what the programs make in the spool may have the group `gid`: the
    /// spool's, or (a spool root's alone) a group the programs give ([`Self::programs`]).
    fn group_fits(&self, gid: u32) -> bool {
        self.gid == Some(gid) || self.programs.contains(&gid)
    }

    /// The commands that give `p` this owner and group (making the group first when
    /// there is none yet).
    fn chown(&self, p: &Path) -> Vec<String> {
        let mut cmds = Vec::new();
        if self.gid.is_none() {
            // Once made, the next line's fix must not fail on it.
            cmds.push(groupadd_command(&self.group));
        }
        cmds.push(format!(
            "chown {}:{} {}",
            user_name(self.uid),
            self.group,
            sh_word(p)
        ));
        cmds
    }
}

/// The spool that is not there (`e`, the error looking at it). Missing, a user's own
/// spool is hers to make, the system's root's with init (for the configuration this
/// check read), with the group init gives ([`SpoolOwner::wanted`]: made first when it
/// is not there; none fit, said so). Whose parent is missing too, in the words of every
/// program that refuses it (the keyword's file and line, a typo?), and the way init
/// gives: correct the path, or make the parent first.
fn missing_spool_step(t: &mut Tally, s: &app::Setup, e: &std::io::Error) {
    let dir = &s.spool.dir;
    let missing = e.kind() == std::io::ErrorKind::NotFound;
    // Entries in another spool (the runner's, the built-in one, one beside it): the
    // line to correct, never init, which would strand them.
    if missing && !s.spool.private {
        let conf = s
            .inv
            .config_file
            .clone()
            .unwrap_or_else(config::system_config);
        let found = super::elsewhere::spools_with_entries(dir, &conf);
        if let Some(first) = found.first() {
            let text = super::elsewhere::problem(&s.spool, &found, &conf);
            let way = match super::elsewhere::config_fix(&s.spool, &first.dir, &conf) {
                Ok(cmd) => fix(&[cmd]),
                Err(words) => format!(" ({words})"),
            };
            t.fail(Sysexit::Config, "spool", &format!("{text}{way}"));
            return;
        }
    }
    let parent = dir
        .parent()
        .filter(|p| missing && !p.as_os_str().is_empty() && std::fs::metadata(p).is_err());
    let mut cmds = Vec::new();
    let mut text = format!("{}: {}", dir.display(), config::io_text(e));
    // A spool to be made in the system's places but not in rsendmail's
    // (`/var/spoool/rsendmail`, under `/etc/sudoers.d`, a unit's directory, `..`): the
    // line to correct, no command, as init refuses to make it (the rule by which it takes
    // over an empty directory: [`crate::spool::safety::system_directory`]).
    if missing && let Some(why) = crate::spool::safety::system_directory(dir) {
        if parent.is_some()
            && let Err(f) = s.spool.check_present()
        {
            text = f.message;
        }
        let (_, at) = spool_named(s);
        let correct = if at.is_empty() {
            "name another directory in SPOOLDIR".to_string()
        } else {
            format!("correct {at}")
        };
        t.fail(
            Sysexit::Config,
            "spool",
            &format!("{text}{}", no_fix_text(dir, &why, &correct)),
        );
        return;
    }
    // A path not written plainly (`..`, `.`, `//`): init refuses to make it, in the
    // same words; the line to correct, no command.
    if missing
        && !s.spool.private
        && let Some(why) = crate::spool::safety::not_plain(dir)
    {
        t.fail(
            Sysexit::Config,
            "spool",
            &init::not_plain_refusal(&s.spool, why),
        );
        return;
    }
    if let Some(p) = parent {
        if s.spool.private {
            if let Err(f) = s.spool.check_present() {
                text = f.message;
            }
            text.push_str("; correct the path, or, if it is right, make its parent first");
            // Each directory made 755, whatever the umask (`install -d` makes the
            // ones above it so too): one others may write would make the spool unsafe.
            cmds.push(format!("install -d -m 755 {}", sh_word(p)));
        } else {
            // The typo rule, in init's words. The parent is made by the fix only when
            // it is rsendmail's to make (named for it, its own parent there); else
            // the line to correct, no command (`/tmp/x/sub` of a typo).
            if let Some(refusal) = init::missing_parent_refusal(&s.spool) {
                text = refusal;
            }
            match init::parent_to_make(&s.spool) {
                Ok(Some(p)) => cmds.push(format!("install -d -o root -m 755 {}", sh_word(&p))),
                _ => {
                    t.fail(Sysexit::Config, "spool", &text);
                    return;
                }
            }
        }
    }
    if !missing {
        // Not a missing directory: nothing to run.
    } else if s.spool.private {
        cmds.push(format!("mkdir -m 700 {}", sh_word(dir)));
    } else {
        let want = SpoolOwner::wanted(s, None);
        if let Some((no_fit, way)) = want.no_fit_group(s) {
            // The way out names a group to make the spool with, when there is one.
            text = format!("{text}; {no_fit}");
            if way.is_empty() {
                cmds.clear();
            }
            cmds.extend(way);
        } else {
            if want.gid.is_none() {
                // Once made, init gives the spool this group.
                cmds.push(groupadd_command(&want.group));
            }
            cmds.push(init_command(s, &want.group));
        }
    }
    let fixed = if cmds.is_empty() {
        String::new()
    } else {
        unless_swappable(s, dir, false, &cmds)
    };
    t.fail(Sysexit::Config, "spool", &format!("{text}{fixed}"));
}

/// How the spool was named, and where: `O QueueDirectory=` in a file, or on the command
/// line, is not SPOOLDIR's line (`SPOOLDIR` and no place: the built-in one).
fn spool_named(s: &app::Setup) -> (String, String) {
    match &s.spool.named {
        crate::spool::Named::Config { at, keyword } => (keyword.clone(), at.clone()),
        crate::spool::Named::CommandLine => (
            "the queue directory of the command line".to_string(),
            "the command line".to_string(),
        ),
        _ => ("SPOOLDIR".to_string(), String::new()),
    }
}

/// The configured spool, there, holding no entry while another spool holds some (the
/// runner's, the built-in one, one beside it: [`super::elsewhere`]): a `SPOOLDIR` typo
/// whose spool was made since (`init --new-spool`, by hand) strands the queue. A
/// warning, naming the spools and the line to correct, with its fix: an empty spool is
/// also a spool moved on purpose, the old one kept.
fn stranded_step(t: &mut Tally, s: &app::Setup) {
    if s.spool.private {
        return;
    }
    let Some(here) = super::elsewhere::entries_of(&s.spool.dir) else {
        return;
    };
    let conf = s
        .inv
        .config_file
        .clone()
        .unwrap_or_else(config::system_config);
    let found = super::elsewhere::spools_with_entries(&s.spool.dir, &conf);
    let Some(first) = found.first() else {
        return;
    };
    if here > 0 {
        // In use since: the other spool's entries wait all the same, for as long as
        // they are there (a queue run of that spool sends them).
        let text = super::elsewhere::problem_left(&s.spool, &found, &conf);
        let conf_word = conf_option(s);
        let runs: Vec<String> = found
            .iter()
            .map(|e| {
                format!(
                    "`{}{conf_word} -O {} -q`",
                    sh_word(&rsendmail_path()),
                    sh_word(Path::new(&format!("QueueDirectory={}", e.dir.display())))
                )
            })
            .collect();
        t.say(
            Mark::Warn,
            "spool",
            &format!(
                "{text} (to send them, run their queue as root: {})",
                runs.join(", ")
            ),
        );
        return;
    }
    let text = super::elsewhere::problem_empty(&s.spool, &found, &conf);
    let way = match super::elsewhere::config_fix(&s.spool, &first.dir, &conf) {
        Ok(cmd) => fix(&[cmd]),
        Err(words) => format!(" ({words})"),
    };
    t.say(Mark::Warn, "spool", &format!("{text}{way}"));
}

/// A system spool root's alone ([`SpoolOwner::root_only`]; of `spool_md`): every
/// program uses it, root's submissions, runs and listings too, but no user's
/// submission can queue in it. One warning, with what makes it the spool users queue
/// in too (`rsendmail-admin init`, the group made first when there is none; none fit,
/// the group to name).
fn root_only_step(t: &mut Tally, s: &app::Setup, spool_md: &std::fs::Metadata) {
    let shared = SpoolOwner::wanted(s, None);
    // Shared, the spool needs the programs set-gid to its group (the binary steps fail
    // them otherwise): `init` alone is the fix only for an install that has them so.
    let unready = not_set_gid_to(shared.gid);
    let cmds = match shared.no_fit_group(s) {
        Some((_, cmds)) => cmds,
        None if !unready.is_empty() => Vec::new(),
        None => {
            let mut cmds = Vec::new();
            if shared.gid.is_none() {
                cmds.push(groupadd_command(&shared.group));
            }
            cmds.push(init_command(s, &shared.group));
            cmds
        }
    };
    t.say(
        Mark::Warn,
        "spool",
        &format!(
            "{} ({}) is root's alone: root's submissions, queue runs and listings use \
             it, but no user's submission can queue in it (`rsendmail-admin init` makes \
             it 2770, of a group `rsendmail` is set-gid to){}",
            s.spool.dir.display(),
            owner_mode(spool_md),
            if !cmds.is_empty() {
                fix(&cmds)
            } else if unready.is_empty() {
                String::new()
            } else {
                format!(
                    "; sharing it takes `rsendmail` and `rsendmail-admin` installed root's \
                     and set-gid to the spool's group {} (README, \"Without the \
                     package\"), which {} {} not, then the installed \
                     `rsendmail-admin{} init`",
                    shared.group,
                    unready
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    if unready.len() == 1 { "is" } else { "are" },
                    conf_option(s)
                )
            }
        ),
    );
}

/// The programs `rsendmail` and this `rsendmail-admin` that are not root's and set-gid
/// to the group `gid` (every one when there is no such group yet): what the binary
/// steps fail once the spool is shared with that group.
fn not_set_gid_to(gid: Option<u32>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in [Some(rsendmail_path()), std::env::current_exe().ok()]
        .into_iter()
        .flatten()
    {
        let ready = std::fs::metadata(&p)
            .is_ok_and(|md| md.uid() == 0 && md.mode() & 0o2000 != 0 && Some(md.gid()) == gid);
        if !ready && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Free space below which `check` fails the spool's file system: a message cannot be
/// queued (the submission, a report, an `rsendmail-admin` change fails with ENOSPC).
pub const SPACE_FAIL: u64 = 1 << 20;
/// Free space below which `check` warns.
pub const SPACE_WARN: u64 = 64 << 20;
/// Free inodes below which `check` fails the spool's file system (each entry takes two
/// files, each change one more for a moment).
pub const INODES_FAIL: u64 = 100;
/// Free inodes below which `check` warns.
pub const INODES_WARN: u64 = 1000;

/// The free space and inodes of the spool's file system, as a user's submission may use
/// them (what root keeps for itself left out): FAIL below [`SPACE_FAIL`] or
/// [`INODES_FAIL`], warn below [`SPACE_WARN`] or [`INODES_WARN`], else ok. A file system
/// that counts no inodes (their total 0) is judged on its space alone.
// statvfs's counts are u64 here, narrower on other targets.
#[allow(clippy::unnecessary_cast)]
fn space_step(t: &mut Tally, dir: &Path) {
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return;
    };
    let bytes = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    let inodes = (st.files() as u64 > 0).then_some(st.files_available() as u64);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    let text = match inodes {
        Some(n) => format!(
            "{} free, {n} inodes free on the file system of {}",
            mib(bytes),
            dir.display()
        ),
        None => format!(
            "{} free on the file system of {}",
            mib(bytes),
            dir.display()
        ),
    };
    let inodes = inodes.unwrap_or(u64::MAX);
    if bytes < SPACE_FAIL || inodes < INODES_FAIL {
        t.fail(
            Sysexit::TempFail,
            "space",
            &format!(
                "{text}: below {} or {INODES_FAIL} inodes, no message can be queued \
                 (free space there, or give the spool a larger file system)",
                mib(SPACE_FAIL)
            ),
        );
    } else if bytes < SPACE_WARN || inodes < INODES_WARN {
        t.say(
            Mark::Warn,
            "space",
            &format!(
                "{text}: below {} or {INODES_WARN} inodes, the spool is nearly full",
                mib(SPACE_WARN)
            ),
        );
    } else {
        t.say(Mark::Ok, "space", &text);
    }
}

/// For root's check of a shared spool: when the spool and the configuration file both
/// belong to one user, who made them for her own install (a per-user spool, which her
/// programs use): what it is and how to check it, never a `chown root` of it or of her
/// directories, which would take it from her (`init` refuses her configuration, and so
/// changes nothing either). None otherwise.
fn per_user_install(s: &app::Setup, spool_md: &std::fs::Metadata) -> Option<String> {
    let conf = s.cfg.file.as_ref()?;
    her_install(s, spool_md).map(|uid| {
        let user = crate::spool::safety::user_name(uid);
        format!(
            "{} ({}) is the per-user spool of {}, whose configuration {} is: hers to \
             keep, so nothing here changes it, nor does `rsendmail-admin init`, and root's \
             programs use neither; check it as she uses it: runuser -u {} -- \
             rsendmail-admin -C {} check",
            s.spool.dir.display(),
            owner_mode(spool_md),
            crate::spool::safety::the_user_id(uid),
            conf.display(),
            sh_word(Path::new(&user)),
            sh_word(conf)
        )
    })
}

/// The user whose per-user install root's check is looking at ([`per_user_install`]:
/// the spool and the configuration file both hers, the spool shared by its mode), or
/// None.
fn her_install(s: &app::Setup, spool_md: &std::fs::Metadata) -> Option<u32> {
    let uid = spool_md.uid();
    if s.spool.private || uid == 0 || !nix::unistd::geteuid().is_root() {
        return None;
    }
    let conf_md = std::fs::metadata(s.cfg.file.as_ref()?).ok()?;
    (conf_md.uid() == uid).then_some(uid)
}

/// Whether `u` is a file of the per-user install root's check is looking at
/// ([`her_install`]): every risk on its path is hers (she owns what is met). Her files
/// are hers to keep: the spool step says to check them as she uses them, and root's
/// check offers no repair of them that her own check would undo (a file made anew
/// root's where hers is what her programs need).
fn hers(s: &app::Setup, u: &crate::config::UntrustedFile) -> bool {
    std::fs::metadata(&s.spool.dir)
        .ok()
        .and_then(|md| her_install(s, &md))
        .is_some_and(|uid| u.risks.iter().all(|r| r.md.uid() == uid))
}

/// The spool, the set-gid binary, the wake-up FIFO and auth.conf.
fn install_steps(t: &mut Tally, s: &app::Setup) {
    let dir = &s.spool.dir;
    // In another spool's tree: what init refuses; no repair of either is offered.
    if let Err(f) = s.spool.check_not_nested() {
        t.fail(Sysexit::Config, "spool", &f.message);
        return;
    }
    let spool_md = match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => md,
        Ok(_) => {
            // What every program says of it: the configuration's file and line.
            let said = match s.spool.check_present() {
                Err(f) => f.message,
                Ok(()) => format!("{} is not a directory", dir.display()),
            };
            t.fail(Sysexit::Config, "spool", &said);
            return;
        }
        // The caller's own built-in spool is made by her first submission.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && s.spool.named == crate::spool::Named::OwnDefault =>
        {
            t.say(
                Mark::Ok,
                "spool",
                &format!(
                    "{}: not made yet (this user's own; her first submission makes it, \
                     mode 0700)",
                    dir.display()
                ),
            );
            deliverer_step(t, s);
            return;
        }
        Err(e) => {
            // The directories it would be made in first: init refuses them too.
            directories_above_step(t, s);
            missing_spool_step(t, s, &e);
            return;
        }
    };
    // A user's own install (her configuration, her spool): hers to keep. Root's
    // programs refuse her configuration (the config step says why), `init` changes
    // nothing of it, so no command here takes it from her either.
    if let Some(why) = per_user_install(s, &spool_md) {
        t.fail(Sysexit::Config, "spool", &why);
        return;
    }
    // `/`, `/home`, `/var/mail`: never given the spool's modes.
    // Named as the spool was named: `O QueueDirectory=` in a file, or on the command
    // line, is not SPOOLDIR's line.
    let (keyword, at) = spool_named(s);
    if let Some(why) = not_rsendmails_at(&keyword, &at, dir, &spool_md, true) {
        t.fail(Sysexit::Config, "spool", &why);
        return;
    }
    let mode = spool_md.mode() & 0o7777;
    // A directory that is no spool yet (no tmp/): what the first submission, or init,
    // would say of it (another program's files, an old sendmail queue, a shared one).
    // One this caller cannot list is left to the steps below.
    let refused = if dir.join("tmp").is_dir() || std::fs::read_dir(dir).is_err() {
        None
    } else {
        s.spool.check_takeover().err()
    };
    let wanted = if s.spool.private { 0o700 } else { 0o2770 };
    let want = SpoolOwner::wanted(s, Some(&spool_md));
    if let Some((no_fit, cmds)) = want.no_fit_group(s) {
        let fixed = if cmds.is_empty() {
            String::new()
        } else {
            fix(&cmds)
        };
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} ({}): {no_fit}{fixed}",
                dir.display(),
                owner_mode(&spool_md)
            ),
        );
        deliverer_step(t, s);
        return;
    }
    // The directories above it: root's alone (a user's own spool: hers too).
    directories_above_step(t, s);
    // The spool and its sub-directories: no access ACL lets others write them.
    for (d, who) in s.spool.acl_writable() {
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{}{}",
                s.spool.acl_writable_refusal(&d, &who),
                unless_swappable(s, &d, false, &[format!("setfacl -b {}", sh_word(&d))])
            ),
        );
    }
    // A system spool that is not root's, or of root's group: put right with the mode.
    let owner_fix = if s.spool.private || want.owns(&spool_md) {
        Vec::new()
    } else {
        want.chown(dir)
    };
    let refused_dir = refused.is_some();
    if let Some(f) = refused {
        t.fail(Sysexit::Config, "spool", &f.message);
    } else if mode & 0o002 != 0 {
        // What every submission and run says of it, with the fix.
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{}{}",
                s.spool.world_writable_state(dir, mode),
                unless_swappable(
                    s,
                    dir,
                    false,
                    &[
                        owner_fix.clone(),
                        vec![format!("chmod {wanted:o} {}", sh_word(dir))]
                    ]
                    .concat()
                )
            ),
        );
    } else if s.spool.private {
        if mode & 0o077 != 0 && mode & 0o022 == 0 {
            // Readable, not writable, by others: what submissions use too (as sendmail
            // uses a queue directory others may read); each entry is 0600, so only the
            // entries' names (queue IDs) are seen.
            t.say(
                Mark::Warn,
                "spool",
                &format!(
                    "{} ({}): others can list this user's own spool (its entries' names, \
                     not their contents: each entry is 0600); submissions use it as it \
                     is, and 0700 keeps even the names hers{}",
                    dir.display(),
                    owner_mode(&spool_md),
                    unless_swappable(s, dir, false, &[format!("chmod 700 {}", sh_word(dir))])
                ),
            );
        } else if mode & 0o077 != 0 {
            t.fail(
                Sysexit::Config,
                "spool",
                &format!(
                    "{} ({}): a user's own spool must be 0700{}",
                    dir.display(),
                    owner_mode(&spool_md),
                    unless_swappable(s, dir, false, &[format!("chmod 700 {}", sh_word(dir))])
                ),
            );
        } else {
            t.say(
                Mark::Ok,
                "spool",
                &format!(
                    "{} ({}, this user's own)",
                    dir.display(),
                    owner_mode(&spool_md)
                ),
            );
        }
    } else if !owner_fix.is_empty() {
        let why = if spool_md.uid() != 0 {
            format!(
                "owned by {}: whoever owns it can change or remove every message queued \
                 in it",
                crate::spool::safety::the_user_id(spool_md.uid())
            )
        } else {
            let why = group_unfit(spool_md.gid()).unwrap_or_default();
            format!(
                "of the group {}, {why}: the spool's group is the one `rsendmail` is \
                 set-gid to, never root's nor a user's primary group (its members are the \
                 spool's administrators)",
                group_name(spool_md.gid())
            )
        };
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} ({}): must be {wanted:o} root:{}, as `rsendmail-admin init` makes it, \
                 not {why}{}",
                dir.display(),
                owner_mode(&spool_md),
                want.group,
                unless_swappable(
                    s,
                    dir,
                    false,
                    &[
                        owner_fix,
                        vec![format!("chmod {wanted:o} {}", sh_word(dir))]
                    ]
                    .concat()
                )
            ),
        );
    } else if want.root_only {
        // Every program uses it; only users' submissions cannot: said once, here.
        root_only_step(t, s, &spool_md);
    } else if mode & 0o007 != 0 || mode & 0o070 != 0o070 {
        // Open to others: what every program refuses it with (the one rule).
        let text = s.spool.layout_problem(dir, &spool_md).unwrap_or_else(|| {
            format!(
                "{} ({}): must be 2770, its group's and nobody else's",
                dir.display(),
                owner_mode(&spool_md)
            )
        });
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{text}{}",
                unless_swappable(s, dir, false, &[format!("chmod 2770 {}", sh_word(dir))])
            ),
        );
    } else if mode & 0o5000 != 0 {
        // Sticky or set-user-id: not the mode init gives, which init puts right.
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} ({}): must be 2770, as `rsendmail-admin init` makes it (the sticky \
                 and set-user-id bits are a shared directory's, not a spool's){}",
                dir.display(),
                owner_mode(&spool_md),
                unless_swappable(s, dir, false, &[format!("chmod 2770 {}", sh_word(dir))])
            ),
        );
    } else {
        t.say(
            Mark::Ok,
            "spool",
            &format!("{} ({})", dir.display(), owner_mode(&spool_md)),
        );
    }
    space_step(t, dir);
    if !refused_dir {
        stranded_step(t, s);
    }
    // A spool whose owner is not root, or that others may write (it or a directory
    // above it): whoever that is could swap anything in it for a symbolic link before
    // root ran a fix, so nothing in it is listed, nor given a fix: one line.
    let swap = swappable(s, dir, true);
    // Not a spool (another program's files, an old sendmail queue): nothing in it is
    // to be adopted, so its files get no fix.
    if !refused_dir {
        match &swap {
            Some((d, why)) => t.fail(
                Sysexit::Config,
                "spool",
                &format!(
                    "{}: what is in it (its sub-directories, their files, the queued \
                     entries, the wake-up FIFO) is not checked, and no fix names a path in \
                     it: {} is {why}, so someone other than root could swap any of it for a \
                     symbolic link before root ran a fix, which would then change a file of \
                     their choosing; put {} right first, then check again",
                    dir.display(),
                    d.display(),
                    if d == dir {
                        "the spool".to_string()
                    } else {
                        d.display().to_string()
                    }
                ),
            ),
            None => subdirs_step(t, s, &want),
        }
    }
    let users_deliver = binary_step(t, s, &want);
    let shared_group = if s.spool.private || want.root_only {
        None
    } else {
        Some(want.gid)
    };
    // Why nothing but a queue runner would ever send the mail queued here, if so.
    let auth_md = s
        .cfg
        .auth_path
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok());
    let auth_unreadable = shared_group.is_some_and(|g| {
        auth_md
            .as_ref()
            .is_some_and(|md| Some(md.gid()) != g || md.mode() & 0o040 == 0)
    });
    // The TLS files users' deliveries read with the spool's group.
    let certs_unreadable: Vec<(&str, &Path)> = shared_group
        .flatten()
        .map(|g| {
            [
                ("CERTFILE", s.cfg.cert_file.as_deref()),
                ("CACertFile", s.settings.ca_cert_file.as_deref()),
            ]
            .into_iter()
            .filter_map(|(k, p)| Some((k, p?)))
            .filter(|(_, p)| p.exists() && !group_reads(p, g))
            .collect()
        })
        .unwrap_or_default();
    let mode = crate::cli::effective_mode(false, None, s.settings.delivery_mode);
    let only_runner = match mode {
        crate::options::DeliveryMode::QueueOnly => Some((
            "the delivery mode is queue-only (O DeliveryMode=q)".to_string(),
            OnlyRunner::Mode,
        )),
        crate::options::DeliveryMode::Deferred => Some((
            "the delivery mode is deferred (DEFER, O DeliveryMode=d)".to_string(),
            OnlyRunner::Mode,
        )),
        _ if shared_group.is_some() && !users_deliver => Some((
            format!(
                "{} is not set-gid to the spool's group, so users' submissions cannot \
                 deliver themselves",
                rsendmail_path().display()
            ),
            OnlyRunner::Install,
        )),
        _ if auth_unreadable => Some((
            "auth.conf is not readable by the spool's group, so users' submissions \
             cannot deliver themselves"
                .to_string(),
            OnlyRunner::Install,
        )),
        _ if !certs_unreadable.is_empty() => Some((
            format!(
                "{} is not readable by the spool's group, so users' submissions cannot \
                 deliver themselves",
                certs_unreadable[0].0
            ),
            OnlyRunner::Install,
        )),
        _ => None,
    };
    for (keyword, p) in &certs_unreadable {
        // The file's line, or the command line's option (`-O CACertFile=`).
        let at = s.cfg.set_at(&s.settings, keyword);
        let said = cert_copy_fix(s, keyword, p, &at, &want.group);
        let md = std::fs::metadata(p);
        t.fail(
            Sysexit::Config,
            "tls files",
            &format!(
                "{keyword} {}{} is not readable by the spool's group {}, so users' \
                 submissions cannot deliver themselves (they wait for the root queue \
                 runner){said}",
                p.display(),
                md.map(|md| format!(" ({})", owner_mode(&md)))
                    .unwrap_or_default(),
                want.group
            ),
        );
    }
    if swap.is_some() {
        // In the spool, said with it above.
        t.say(
            Mark::Skip,
            "wakeup",
            &format!(
                "{}: not checked until the spool is put right (the spool's line above)",
                crate::spool::wake::path(dir).display()
            ),
        );
    } else {
        wakeup_step(
            t,
            s,
            &want,
            only_runner.as_ref().map(|(w, c)| (w.as_str(), *c)),
        );
    }
    maillog_step(t, s, &want);
    // One someone else could change is failed by the files step, whose repair changes
    // nothing she could swap for a link.
    if let Some(p) = &s.cfg.auth_path
        && crate::spool::safety::file_risks(p, &[]).is_empty()
    {
        let path = sh_word(p);
        let acl_readers = crate::spool::safety::acl_readers(p);
        match std::fs::metadata(p) {
            // A device, a directory, a system file: said, never repaired here.
            Ok(md) if let Some(why) = not_rsendmails(&s.cfg, "AUTHPATH", p, &md, false) => {
                t.fail(Sysexit::Config, "auth.conf", &why)
            }
            Err(e) if let Some(why) = unseen_without_group(s, p, &e) => {
                t.say(Mark::Warn, "auth.conf", &why)
            }
            Err(e) => t.fail(
                Sysexit::Config,
                "auth.conf",
                &format!("{}: {}", p.display(), config::io_text(&e)),
            ),
            Ok(md) if md.mode() & 0o007 != 0 => {
                // Users' deliveries run with the spool's group: it must read the file.
                let cmds = match shared_group {
                    Some(_) => vec![
                        format!("chgrp {} {path}", want.group),
                        format!("chmod 640 {path}"),
                    ],
                    None => vec![format!("chmod 600 {path}")],
                };
                t.fail(
                    Sysexit::Config,
                    "auth.conf",
                    &format!(
                        "{} ({}) is readable by others: its passwords must not be{}",
                        p.display(),
                        owner_mode(&md),
                        unless_swappable(s, p, false, &cmds)
                    ),
                )
            }
            // A reader an access ACL names is one of the others, whatever the mode says.
            Ok(md) if acl_readers.is_some() => t.fail(
                Sysexit::Config,
                "auth.conf",
                &format!(
                    "{} ({}) is readable by others: an access ACL lets {} read it, and its \
                     passwords must not be{}",
                    p.display(),
                    owner_mode(&md),
                    acl_readers.as_deref().unwrap_or_default(),
                    unless_swappable(s, p, false, &[format!("setfacl -b {path}")])
                ),
            ),
            // Users' deliveries run with the spool's group: they must be able to read it.
            Ok(md) if auth_unreadable => {
                let group = &want.group;
                let mut cmds = Vec::new();
                if md.uid() != 0 {
                    cmds.push(format!("chown root {path}"));
                }
                cmds.push(format!("chgrp {group} {path}"));
                cmds.push(format!("chmod 640 {path}"));
                t.fail(
                    Sysexit::Config,
                    "auth.conf",
                    &format!(
                        "{} ({}) is not readable by the spool's group {group}: users' \
                         deliveries cannot read it and wait for the root queue runner{}",
                        p.display(),
                        owner_mode(&md),
                        unless_swappable(s, p, false, &cmds)
                    ),
                )
            }
            Ok(md) if md.uid() != 0 && !s.spool.private => t.say(
                Mark::Warn,
                "auth.conf",
                &format!(
                    "{} ({}) is owned by {}, not root: that user chooses the credentials \
                     every delivery sends{}",
                    p.display(),
                    owner_mode(&md),
                    crate::spool::safety::the_user_id(md.uid()),
                    unless_swappable(s, p, false, &[format!("chown root {path}")])
                ),
            ),
            Ok(md) => t.say(
                Mark::Ok,
                "auth.conf",
                &format!("{} ({})", p.display(), owner_mode(&md)),
            ),
        }
    }
}

/// MAILLOG naming another of rsendmail's files ([`maillog_clash`]): a `FAIL maillog`
/// line with why and the line to correct, never a repair. Whether it does.
fn maillog_clash_step(t: &mut Tally, s: &app::Setup) -> bool {
    let Some(p) = &s.cfg.maillog else {
        return false;
    };
    if let Some(why) = maillog_clash(s) {
        t.fail(
            Sysexit::Config,
            "maillog",
            &format!(
                "MAILLOG names {}: {why}, never a log: no program writes there, and they \
                 log elsewhere; correct {}",
                p.display(),
                maillog_line(s)
            ),
        );
        return true;
    }
    false
}

/// Where MAILLOG is set, as the line to correct (`FILE: line N`), or `the
/// configuration` when no line of a file sets it.
fn maillog_line(s: &app::Setup) -> String {
    let at = s.cfg.where_set("MAILLOG");
    match at.trim_end_matches(": ") {
        "" => "the configuration".to_string(),
        at => at.to_string(),
    }
}

/// Which other file of rsendmail's MAILLOG names ([`crate::app::rsendmails_files`]),
/// which no program logs to, or None.
fn maillog_clash(s: &app::Setup) -> Option<String> {
    let p = s.cfg.maillog_file()?;
    crate::spool::safety::one_of(p, &app::rsendmails_files(&s.cfg, &s.settings, &s.spool.dir))
}

/// `MAILLOG`, when set: a regular file with one link (every program refuses anything
/// else); for a shared spool root's, of the spool's group and writable by it (mode 0660,
/// as the programs make it), so that users' submissions and admin actions, which hold
/// that group, are logged. Not there yet: for a user's own spool fine (her first line
/// makes it); for a shared one a warning with the command that makes it, since its
/// directory is root's alone and a user's first line could not.
fn maillog_step(t: &mut Tally, s: &app::Setup, want: &SpoolOwner) {
    let Some(p) = &s.cfg.maillog else {
        return;
    };
    // Another of rsendmail's files: failed by the files step, with no repair.
    if maillog_clash(s).is_some() {
        return;
    }
    if s.cfg.maillog_file().is_none() {
        t.say(
            Mark::Ok,
            "maillog",
            &format!(
                "{}: no log file; lines go where they go without MAILLOG (syslog)",
                p.display()
            ),
        );
        return;
    }
    if !crate::spool::safety::file_risks(
        p,
        &maillog_group(s).into_iter().chain([0]).collect::<Vec<_>>(),
    )
    .is_empty()
    {
        // Failed by the files step, with a repair that changes nothing a user can swap.
        return;
    }
    let mode = crate::log::MAILLOG_MODE;
    let whose = if s.spool.private {
        "this user's".to_string()
    } else {
        format!("root:{}", want.group)
    };
    match std::fs::symlink_metadata(p) {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && let Some(why) = crate::spool::safety::not_rsendmails_own(p) =>
        {
            t.fail(
                Sysexit::Config,
                "maillog",
                &format!(
                    "MAILLOG names {}, which is not there and not rsendmail's ({why}): \
                     no program makes it, and they log elsewhere; correct {}",
                    p.display(),
                    maillog_line(s)
                ),
            )
        }
        // Made by whoever logs first, but never by a user's set-gid submission: the
        // file's directory must be root's alone (the files step), so her lines are lost
        // until root logs one.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !s.spool.private
                && want.gid.is_some() =>
        {
            t.say(
                Mark::Warn,
                "maillog",
                &format!(
                    "{}: not there yet, and users' submissions and actions, which hold the \
                     group {}, cannot make it in {}: their lines are lost until root logs \
                     one{}",
                    p.display(),
                    want.group,
                    p.parent().unwrap_or(Path::new("/")).display(),
                    unless_swappable(
                        s,
                        p,
                        false,
                        &[format!(
                            "install -m {mode:04o} -o root -g {} /dev/null {}",
                            sh_word(Path::new(&want.group)),
                            sh_word(p)
                        )]
                    )
                ),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => t.say(
            Mark::Ok,
            "maillog",
            &format!(
                "{}: not there yet (the first line logged makes it {mode:04o} {whose})",
                p.display()
            ),
        ),
        Err(e) if let Some(why) = unseen_without_group(s, p, &e) => {
            t.say(Mark::Warn, "maillog", &why)
        }
        Err(e) => t.fail(
            Sysexit::Config,
            "maillog",
            &format!("{}: {}", p.display(), config::io_text(&e)),
        ),
        // A device, a system file, a file with other links: never repaired here.
        Ok(md) if let Some(why) = not_rsendmails(&s.cfg, "MAILLOG", p, &md, false) => t.fail(
            Sysexit::Config,
            "maillog",
            &format!("{why}; every program refuses it, never opening it, and logs elsewhere"),
        ),
        Ok(md)
            if !s.spool.private
                && (!want.owns(&md) || md.mode() & 0o060 != 0o060 || md.mode() & 0o002 != 0) =>
        {
            let mut cmds = Vec::new();
            if !want.owns(&md) {
                cmds.extend(want.chown(p));
            }
            cmds.push(format!("chmod {mode:o} {}", sh_word(p)));
            t.fail(
                Sysexit::Config,
                "maillog",
                &format!(
                    "{} ({}): must be {mode:04o} {whose}, writable by the spool's group: \
                     users' submissions and admin actions run with that group and log \
                     nothing otherwise{}",
                    p.display(),
                    owner_mode(&md),
                    unless_swappable(s, p, false, &cmds)
                ),
            )
        }
        Ok(md) => t.say(
            Mark::Ok,
            "maillog",
            &format!("{} ({})", p.display(), owner_mode(&md)),
        ),
    }
}

/// The spool's sub-directories ([`crate::spool::SUBDIRS`]) and the files in them that
/// submissions write (the index, `slots/`, `waiting/`), as `rsendmail-admin init` leaves
/// them: each directory the spool's owner's (`index/domains`, which every index rebuild
/// makes anew, anyone's) and group's, mode 2770 (a user's own spool:
/// hers, 0700); each file the spool's group's, 0660 (a user's own: 0600). A
/// sub-directory not made yet is fine (the programs make it with those modes); one
/// everyone may write is what every submission and run refuses, said in their words.
/// Each problem is a `FAIL spool` line with its fix; all right, one `ok` line.
fn subdirs_step(t: &mut Tally, s: &app::Setup, want: &SpoolOwner) {
    let private = s.spool.private;
    let (dir_mode, file_mode) = if private {
        (0o700, 0o600)
    } else {
        (init::DIR_MODE, init::FILE_MODE)
    };
    let owner = user_name(want.uid);
    let group = want.group.clone();
    let mut problems = 0;
    let mut seen = 0;
    // A spool this user cannot enter: what is in it is not seen, said so (never a line
    // that is just missing).
    if let Err(e) = std::fs::read_dir(&s.spool.dir)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        t.say(
            Mark::Warn,
            "spool",
            &format!(
                "{}: its sub-directories, their files and the queued entries could not be \
                 checked: {} ({}; {})",
                s.spool.dir.display(),
                config::io_text(&e),
                out_of_reach(s),
                run_as_admin(s, want)
            ),
        );
        return;
    }
    for sub in crate::spool::SUBDIRS {
        let p = s.spool.dir.join(sub);
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        seen += 1;
        if !md.is_dir() {
            problems += 1;
            let kind = if md.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            };
            // The programs move it into corrupt/ at their next use; removing it by hand
            // leaves the name free for a fresh directory.
            let cmd = format!("rm {}", sh_word(&p));
            t.fail(
                Sysexit::Config,
                "spool",
                &format!(
                    "{} is {kind}, where the spool keeps a directory{}",
                    p.display(),
                    // The name itself goes, never followed: what matters is the
                    // directory it is in.
                    unless_swappable(s, p.parent().unwrap_or(&p), true, &[cmd])
                ),
            );
            continue;
        }
        let mode = md.mode() & 0o7777;
        // `index/domains` is made again by every index rebuild, by whoever rebuilds
        // (a queue run, a member of the group deleting entries): any owner.
        let owner_ok = md.uid() == want.uid || (sub == "index/domains" && !private);
        let group_ok = private || want.group_fits(md.gid());
        if mode != dir_mode || !owner_ok || !group_ok {
            problems += 1;
            let mut cmds = Vec::new();
            if !owner_ok || !group_ok {
                if private {
                    cmds.push(format!("chown {owner} {}", sh_word(&p)));
                } else {
                    cmds.extend(want.chown(&p));
                }
            }
            cmds.push(format!("chmod {dir_mode:o} {}", sh_word(&p)));
            // What every program refuses it with, when it does (the one rule).
            let refused = if sub.contains('/') {
                None
            } else {
                s.spool.layout_problem(&p, &md)
            };
            let text = if mode & 0o002 != 0 {
                s.spool.world_writable_state(&p, mode)
            } else if let Some(refused) = refused {
                refused
            } else if private {
                format!(
                    "{} ({}): a directory of a user's own spool must be hers, {dir_mode:o}",
                    p.display(),
                    owner_mode(&md)
                )
            } else {
                format!(
                    "{} ({}): must be {dir_mode:o} {owner}:{group}, as the spool (what \
                     is made in it gets the spool's group; its group writes it, nobody \
                     else)",
                    p.display(),
                    owner_mode(&md)
                )
            };
            t.fail(
                Sysexit::Config,
                "spool",
                &format!("{text}{}", unless_swappable(s, &p, false, &cmds)),
            );
            // Its files are looked at too, so that one round of fixes is enough.
        }
        if matches!(sub, "index" | "index/domains" | "slots" | "waiting") {
            problems += files_step(t, s, &p, want, file_mode, false, false);
        } else if sub == crate::spool::HOLD {
            problems += files_step(t, s, &p, want, file_mode, true, false);
        }
    }
    // The entries queued at the spool's top, as those held.
    problems += files_step(t, s, &s.spool.dir, want, file_mode, true, true);
    if problems == 0 && seen > 0 {
        t.say(
            Mark::Ok,
            "spool",
            &format!(
                "{} sub-directories {dir_mode:o} {owner}{}, their files {file_mode:04o}",
                seen,
                if private {
                    String::new()
                } else {
                    format!(":{group}")
                }
            ),
        );
    }
    leftovers_step(t, s);
}

/// The `find` tests that take the names of entries' files ([`crate::spool::entry_file`]):
/// ` \( -name 'qf??????????????' -o ... \)`, a prefix and 14 characters, so that a fix
/// never touches a stray file named like one (`qfjunk`), which no program reads.
fn entry_names() -> String {
    let each: Vec<String> = crate::spool::ENTRY_PREFIXES
        .iter()
        .map(|p| format!("-name '{p}{}'", "?".repeat(14)))
        .collect();
    format!(" \\( {} \\)", each.join(" -o "))
}

/// What the file of an entry with `prefix` is, in words.
fn entry_file_what(prefix: &str) -> &'static str {
    match prefix {
        "qf" => "queue file",
        "sf" => "state file",
        "jf" => "delivery journal",
        _ => "mark (an action asked for during a delivery)",
    }
}

/// How many files of one kind in one directory get a line each (a link in an entry's
/// place, a file left without its entry); the rest are counted in one more line.
const FILES_SHOWN: usize = 10;

/// Files left without their entry ([`crate::spool::ENTRY_PREFIXES`] but `qf`): a state
/// file `sf<ID>`, a delivery journal `jf<ID>` or a mark `kf<ID>` (an action asked for
/// during a delivery) in the spool, `hold/` or `corrupt/`, whose entry's queue file is in
/// none of the places it could be (the spool, `hold/`, and for one in `corrupt/` there
/// too): a crash between two unlinks, a hold cut short, a queue file removed by hand.
/// Nothing reads them; one at the spool's top is removed by the next full queue run
/// (`Spool::remove_orphan_states`), one in `hold/` or `corrupt/` by nothing. A `warn
/// spool` line each, naming the file, its entry's ID and, for a mark, what it asked
/// for and who asked, with its removal (`rm -f --` of that file, which a removal
/// meanwhile does not fail: `rsendmail-admin delete ID` answers that no such entry is
/// queued). One that is not a regular file in the
/// spool or `hold/` is failed by [`files_step`] already.
fn leftovers_step(t: &mut Tally, s: &app::Setup) {
    let top = &s.spool;
    let held = top.held();
    let aside = top.set_aside();
    let queued =
        |sp: &crate::spool::Spool, id: &str| std::fs::symlink_metadata(sp.qf_path(id)).is_ok();
    for (sp, place) in [(top, 0), (&held, 1), (&aside, 2)] {
        // Never through a link in a sub-directory's place (failed above): a fix would
        // remove what is at the other end.
        if crate::spool::open_dir(&sp.dir).is_err() {
            continue;
        }
        let Ok(list) = std::fs::read_dir(&sp.dir) else {
            continue;
        };
        let mut found: Vec<(String, &'static str, String)> = list
            .flatten()
            .filter_map(|ent| {
                let name = ent.file_name().into_string().ok()?;
                let (prefix, id) = crate::spool::entry_file(&name)?;
                let id = id.to_string();
                (prefix != "qf").then_some((name, prefix, id))
            })
            .collect();
        found.sort();
        let mut shown = 0;
        let mut more = 0;
        for (name, prefix, id) in found {
            // A mark beside a held entry: no holder of a held entry's lock carries one
            // out, and `release` keeps a deletion or a return, for the next run.
            if prefix == "kf" && place == 0 && !queued(top, &id) && queued(&held, &id) {
                let path = sp.dir.join(&name);
                if std::fs::symlink_metadata(&path).is_ok_and(|md| md.is_file()) {
                    t.say(
                        Mark::Warn,
                        "spool",
                        &format!(
                            "{}: a mark {}, beside entry {id}, which is held: nothing carries \
                             it out while the entry is held, and the first queue run after \
                             its release does; remove it unless that is wanted{}",
                            path.display(),
                            mark_said(&path),
                            unless_swappable(
                                s,
                                path.parent().unwrap_or(&path),
                                true,
                                &[format!("rm -f -- {}", sh_word(&path))]
                            )
                        ),
                    );
                }
                continue;
            }
            if queued(sp, &id) || queued(top, &id) || queued(&held, &id) {
                continue;
            }
            let path = sp.dir.join(&name);
            // Gone meanwhile (its entry's removal ends with it), or not a regular file
            // in the spool or hold/ (failed by the files step, with its removal).
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if place < 2 && !md.is_file() {
                continue;
            }
            if shown == FILES_SHOWN {
                more += 1;
                continue;
            }
            shown += 1;
            let what = if prefix == "kf" {
                format!("a mark {}", mark_said(&path))
            } else {
                format!("the {} of entry {id}", entry_file_what(prefix))
            };
            let (nowhere, cleaned) = match place {
                0 => (
                    "in the spool or hold/",
                    "the next full queue run removes it",
                ),
                1 => ("in hold/ or the spool", "no run removes it"),
                _ => ("in corrupt/, the spool or hold/", "no run removes it"),
            };
            t.say(
                Mark::Warn,
                "spool",
                &format!(
                    "{}: {what}, left without its entry: entry {id} is no longer queued (no \
                     queue file qf{id} {nowhere}); nothing reads it, and {cleaned}{}",
                    path.display(),
                    unless_swappable(
                        s,
                        path.parent().unwrap_or(&path),
                        true,
                        &[format!("rm -f -- {}", sh_word(&path))]
                    )
                ),
            );
        }
        if more > 0 {
            t.say(
                Mark::Warn,
                "spool",
                &format!(
                    "{more} more file(s) in {} are left without their entries, as those \
                     above; remove those named, then check again",
                    sp.dir.display()
                ),
            );
        }
    }
}

/// What the mark at `path` asked for, as `check` says it: `asking for deletion (by
/// root (uid 0) on DATE)`, the reason of a return too; or why it cannot be read. Its
/// words are text from outside: escaped, bounded.
fn mark_said(path: &Path) -> String {
    let bytes = match crate::spool::read_safely(path) {
        Ok(b) => b,
        Err(e) => return format!("that cannot be read ({})", config::io_text(&e)),
    };
    let Some(m) = std::str::from_utf8(&bytes)
        .ok()
        .and_then(crate::spool::Mark::parse)
    else {
        return "that rsendmail did not write (it does not read as one)".to_string();
    };
    let asked = match m.request {
        crate::spool::Request::Hold => "a hold",
        _ => m.what(),
    };
    let mut said = format!(
        "asking for {asked} (by {}",
        crate::text::argument_shown(&m.by)
    );
    if m.at > 0 {
        said.push_str(&format!(
            " on {}",
            crate::clock::ctime(&crate::clock::local(m.at))
        ));
    }
    said.push(')');
    if let crate::spool::Request::Bounce { reason, .. } = &m.request {
        said.push_str(&format!(
            " with the reason \"{}\"",
            crate::text::argument_shown(reason)
        ));
    }
    said
}

/// The files in `dir` (a sub-directory of the spool whose files submissions write), or
/// with `only_entries` its queue entries' files (`qf<ID>`, `sf<ID>`, `jf<ID>`,
/// `kf<ID>`: [`crate::spool::entry_file`]; the spool's top, `top`, and `hold/`): each
/// must be a regular file of the spool's group with mode `file_mode` (a user's own
/// spool: hers), as `rsendmail-admin init` leaves them. One `FAIL spool` line for all
/// the wrong ones, naming a few, with a fix for them all. An entry's file that is not
/// a regular file (a symbolic link planted in its place, a FIFO, a directory, a
/// device) fails on a line of its own, what it is said without following it, with its
/// removal. Any other name among the entries (`notes.txt`, `qfjunk`: no program reads
/// it, `init` leaves it alone) is a `warn` line. The number of `FAIL` lines.
fn files_step(
    t: &mut Tally,
    s: &app::Setup,
    dir: &Path,
    want: &SpoolOwner,
    file_mode: u32,
    only_entries: bool,
    top: bool,
) -> usize {
    let private = s.spool.private;
    let group = &want.group;
    let Ok(list) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut wrong: Vec<String> = Vec::new();
    let mut suspect: Vec<String> = Vec::new();
    // Queue files owned by neither root nor the user they record
    // ([`crate::spool::planted_entry`]): named, never made well-formed.
    let mut planted: Vec<(String, PathBuf)> = Vec::new();
    // Files whose access ACL gives a named user or group anything: they could read or
    // change what is queued whatever the mode says (`init` removes it).
    let mut acl: Vec<String> = Vec::new();
    // An entry's file that is not a regular file: its path and its file's type.
    let mut odd: Vec<(PathBuf, std::fs::FileType)> = Vec::new();
    // Names among the entries that are no entry's file (shown as text from outside).
    let mut strays: Vec<String> = Vec::new();
    // Entries' files with another name (a hard link): their paths and link counts.
    let mut linked: Vec<(PathBuf, u64)> = Vec::new();
    for ent in list.flatten() {
        if only_entries {
            let name = ent.file_name();
            let text = name.to_str();
            if text.and_then(crate::spool::entry_file).is_none() {
                // At the spool's top, its sub-directories and FIFO: their own steps.
                if !top || !text.is_some_and(crate::spool::is_spool_name) {
                    strays.push(crate::text::os_argument_shown(name.as_encoded_bytes()));
                }
                continue;
            }
        }
        // Not followed: a symbolic link is seen as one.
        let Ok(md) = ent.metadata() else { continue };
        // Directories (index/domains) are checked as sub-directories. In an entry's
        // place, anything but a regular file is refused by every program that opens
        // it, and failed here.
        // In the index, slots/ and waiting/, where the programs keep regular files
        // alone, a symbolic link, a FIFO, a socket or a device is failed too (a
        // directory there is index/domains, a sub-directory of its own).
        if !md.is_file() {
            if only_entries || !md.is_dir() {
                odd.push((ent.path(), md.file_type()));
            }
            continue;
        }
        // Another name for it, outside the spool or in it: every program refuses to
        // open it while that lasts (`spool::open_safely`), and whoever holds the other
        // name may read or change what is queued.
        if only_entries && md.nlink() > 1 {
            linked.push((ent.path(), md.nlink()));
        }
        let ok = md.mode() & 0o7777 == file_mode
            && (private || want.group_fits(md.gid()))
            && (!private || md.uid() == want.uid);
        // A name anyone with the spool's group chose: each control character and each
        // octet that is not UTF-8 as its octets in octal, as every other name is shown.
        let name = || crate::text::os_argument_shown(ent.file_name().as_encoded_bytes());
        if only_entries
            && md.uid() != 0
            && ent.file_name().as_encoded_bytes().starts_with(b"qf")
            && let Some(recorded) = crate::spool::recorded_uid(&ent.path())
            && let Some(why) = crate::spool::planted_entry(md.uid(), recorded)
        {
            planted.push((format!("{}: {why}", name()), ent.path()));
            continue;
        }
        // One of another group (a user's own spool: another owner) was not written by
        // rsendmail with the spool's group: written while the spool's group was wrong
        // (by whoever had it then), or another program's. Suspect: never adopted.
        // (The index's files are made anew by every rebuild: only entries are suspect.)
        // One root owns was written by root's processes (no one else can make a file
        // root's), with the group the spool had then: its group is only wrong.
        if only_entries
            && ((!(private || want.group_fits(md.gid())) && md.uid() != 0)
                || (private && md.uid() != want.uid))
        {
            suspect.push(name());
        } else if !ok {
            wrong.push(name());
        }
        if !private
            && crate::spool::safety::read_xattr(&ent.path(), crate::spool::safety::ACL_ACCESS)
                .is_some_and(|b| !crate::spool::safety::acl_named(&b).is_empty())
        {
            acl.push(name());
        }
    }
    let shown = |list: &mut Vec<String>| {
        list.sort();
        let mut shown: Vec<String> = list.iter().take(3).cloned().collect();
        if list.len() > 3 {
            shown.push(format!("and {} more", list.len() - 3));
        }
        shown.join(", ")
    };
    let d = sh_word(dir);
    // Every fix here changes what is in `dir`: none while someone other than root
    // could swap it first ([`swappable`]).
    let swap = swappable(s, dir, true);
    let in_dir = |cmds: &[String]| fix_unless(swap.clone(), cmds);
    let names = if only_entries {
        entry_names()
    } else {
        String::new()
    };
    let mut failed = 0;
    odd.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, ft) in odd.iter().take(FILES_SHOWN) {
        failed += 1;
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (prefix, id) = crate::spool::entry_file(name).unwrap_or(("kf", name));
        // What a link points to, said, never followed (a name anyone chose).
        let to = match std::fs::read_link(p) {
            Ok(target) if ft.is_symlink() => format!(
                " to {}",
                crate::text::os_argument_shown(target.as_os_str().as_encoded_bytes())
            ),
            _ => String::new(),
        };
        let (rm, what) = if ft.is_dir() {
            ("rm -r --", "remove it")
        } else if ft.is_symlink() {
            ("rm --", "remove the link itself, never what it points to")
        } else {
            ("rm --", "remove it")
        };
        let belongs = if only_entries {
            format!(
                "where the {} of entry {id} belongs",
                entry_file_what(prefix)
            )
        } else {
            format!(
                "in {}, where the spool keeps regular files only",
                dir.display()
            )
        };
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} is {}{to}, {belongs}: not a file rsendmail wrote, and every program \
                 refuses to open it, never following it; {what}{}",
                // A name anyone may give a file: on one line, its control characters
                // in octal.
                crate::text::escaped(&p.display().to_string()),
                crate::spool::safety::kind_of(ft),
                in_dir(&[format!("{rm} {}", sh_word(p))])
            ),
        );
    }
    if odd.len() > FILES_SHOWN {
        failed += 1;
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} more files in {}{} are not regular files, as those above{}",
                odd.len() - FILES_SHOWN,
                dir.display(),
                if only_entries {
                    " where entries' files belong"
                } else {
                    ""
                },
                in_dir(&[if only_entries {
                    format!("find {d} -maxdepth 1{names} \\! -type f -exec rm -r -- {{}} +")
                } else {
                    format!("find {d} -maxdepth 1 \\! -type f \\! -type d -exec rm -- {{}} +")
                }])
            ),
        );
    }
    linked.sort();
    for (p, n) in linked.iter().take(FILES_SHOWN) {
        failed += 1;
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} has {n} links: another name for this queued file exists (a hard link), \
                 through which it could be read or changed; every program refuses to open \
                 it while that lasts, so the entry is stuck; find the other names and \
                 remove them, never this one (find them: find / -xdev -samefile {} \\! \
                 -path {})",
                p.display(),
                sh_word(p),
                sh_word(p)
            ),
        );
    }
    if linked.len() > FILES_SHOWN {
        failed += 1;
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} more files in {} have other names (hard links), as those above",
                linked.len() - FILES_SHOWN,
                dir.display()
            ),
        );
    }
    if !strays.is_empty() {
        let n = strays.len();
        t.say(
            Mark::Warn,
            "spool",
            &format!(
                "{n} file(s) in {} are not queue entries ({}): not the name of an entry's \
                 file, so no program reads them and `rsendmail-admin init` leaves them as \
                 they are; remove them when they are no longer wanted",
                dir.display(),
                shown(&mut strays)
            ),
        );
    }
    if !acl.is_empty() {
        failed = 1;
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} file(s) in {} have an access ACL that gives a named user or group \
                 access ({}): they could read or change what is queued{}",
                acl.len(),
                dir.display(),
                shown(&mut acl),
                in_dir(&[format!(
                    "find {d} -maxdepth 1 -type f{names} -exec setfacl -b {{}} +"
                )])
            ),
        );
    }
    if !planted.is_empty() {
        failed = 1;
        planted.sort();
        let top = if dir.ends_with(crate::spool::HOLD) {
            dir.parent().unwrap_or(dir)
        } else {
            dir
        };
        let mut cmd = format!("mv --backup=numbered -t {}", sh_word(&top.join("corrupt")));
        for (_, p) in &planted {
            cmd.push(' ');
            cmd.push_str(&sh_word(p));
        }
        let whys: Vec<String> = planted.iter().map(|(w, _)| w.clone()).collect();
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} queue file(s) in {} were planted: {}; never give them the spool's \
                 group or mode; set them aside in corrupt/, where nothing is run (a queue \
                 run does it too), and examine them{}",
                planted.len(),
                dir.display(),
                whys.join("; "),
                // Moved into corrupt/ too: none while it could be swapped either.
                fix_unless(
                    swap.clone()
                        .or_else(|| swappable(s, &top.join("corrupt"), false)),
                    &[cmd]
                )
            ),
        );
    }
    if !suspect.is_empty() {
        failed = 1;
        let not = if private {
            "this user's".to_string()
        } else {
            format!("of the group {group}")
        };
        // The spool's corrupt/, where queue runs put what they refuse: nothing there
        // is run.
        let top = if dir.ends_with(crate::spool::HOLD) {
            dir.parent().unwrap_or(dir)
        } else {
            dir
        };
        let aside = sh_word(&top.join("corrupt"));
        let mut which = format!("{names} \\! -group {group} \\! -user root");
        if private {
            which = format!("{names} \\! -user {}", want.uid);
        }
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} queue file(s) in {} are not {not} ({}): rsendmail did not write them \
                 so; written while the spool's group (or owner) was wrong, or by another \
                 program, they are suspect: never give them the spool's group or mode, \
                 which would make them look like entries root runs; set them aside in \
                 corrupt/, where nothing is run (`rsendmail-admin init` does it too), and \
                 examine them (put back only those you trust, with chgrp and chmod 660){}",
                suspect.len(),
                dir.display(),
                shown(&mut suspect),
                fix_unless(
                    swap.clone()
                        .or_else(|| swappable(s, &top.join("corrupt"), false)),
                    &[format!(
                        "find {d} -maxdepth 1 -type f{which} -exec mv --backup=numbered -t \
                         {aside} {{}} +"
                    )]
                )
            ),
        );
    }
    if wrong.is_empty() {
        return failed;
    }
    // Entries: only those of the spool's group (its owner's), whose mode alone is
    // wrong; the index's files, made anew by every rebuild, are given the group too.
    // Never a file with another name (`-links 1`): its other name may be outside the
    // spool, and its own line says to remove that name first.
    let cmd = match (private, only_entries) {
        (true, true) => format!(
            "find {d} -maxdepth 1 -type f -links 1{names} -user {} -exec chmod {file_mode:o} \
             {{}} +",
            want.uid
        ),
        (true, false) => {
            format!("find {d} -maxdepth 1 -type f -links 1 -exec chmod {file_mode:o} {{}} +")
        }
        // Root's own of another group too (see above).
        (false, true) => format!(
            "find {d} -maxdepth 1 -type f -links 1{names} \\( -group {group} -o -user root \\) \
             -exec chgrp {group} {{}} + -exec chmod {file_mode:o} {{}} +"
        ),
        (false, false) => format!(
            "find {d} -maxdepth 1 -type f -links 1 -exec chgrp {group} {{}} + -exec chmod \
             {file_mode:o} {{}} +"
        ),
    };
    let want = if private {
        format!("{file_mode:04o}, this user's")
    } else {
        format!("{file_mode:04o}, group {group}")
    };
    t.fail(
        Sysexit::Config,
        "spool",
        &format!(
            "{} file(s) in {} are not {want}, which submissions and runs must write ({}){}",
            wrong.len(),
            dir.display(),
            shown(&mut wrong),
            in_dir(&[cmd])
        ),
    );
    1
}

/// What starts a queue runner for this spool: the system's service, or a user's own
/// timer; or by hand, `rsendmail -q30m`, with the `-C FILE` this check was given (the
/// services read the system's configuration, not that file).
fn runner_advice(s: &app::Setup) -> String {
    // By its path: the program that runs this check need not be on PATH (a source
    // tree's build).
    let bin = sh_word(&rsendmail_path());
    let by_hand = match &s.inv.config_file {
        Some(c) => format!("`{bin} -q30m -C {}`", sh_word(c)),
        None => format!("`{bin} -q30m`"),
    };
    if s.spool.private {
        format!("start one: `systemctl --user enable --now rsendmail-queue.timer`, or {by_hand}")
    } else if queue_unit_installed() {
        format!("start one: `systemctl enable --now rsendmail-queue`, or {by_hand} as root")
    } else {
        // No unit to enable (an install without the package that did not copy it).
        format!(
            "start one: {by_hand} as root, and at boot (README, \"Without the package\": \
             packaging/systemd/rsendmail-queue.service, or cron's @reboot)"
        )
    }
}

/// Whether this user's systemd timer that runs her own queue (`rsendmail-queue.timer`,
/// packaging/systemd/user) is enabled: it runs the queue without holding the FIFO open.
fn user_timer_enabled() -> bool {
    let name = "timers.target.wants/rsendmail-queue.timer";
    let mut dirs = vec![PathBuf::from("/etc/systemd/user")];
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => dirs.push(PathBuf::from(x).join("systemd/user")),
        _ => {
            if let Some(h) = std::env::var_os("HOME") {
                dirs.push(PathBuf::from(h).join(".config/systemd/user"));
            }
        }
    }
    dirs.iter().any(|d| d.join(name).exists())
}

/// Why only a queue runner would send the mail queued here.
#[derive(Clone, Copy)]
enum OnlyRunner {
    /// The delivery mode in force (queue-only, deferred).
    Mode,
    /// Users' submissions cannot deliver themselves (`rsendmail` or auth.conf out of
    /// the spool group's reach: their own lines say how to repair them).
    Install,
}

/// The wake-up FIFO and whether a queue runner listens on it. No runner is a warning
/// while submissions deliver themselves, a failure when `only_runner` says why nothing
/// else would ever send the mail (the delivery mode queue or deferred, users'
/// submissions that cannot deliver themselves), unless a user's own timer runs her
/// queue.
fn wakeup_step(
    t: &mut Tally,
    s: &app::Setup,
    want: &SpoolOwner,
    only_runner: Option<(&str, OnlyRunner)>,
) {
    let fifo = crate::spool::wake::path(&s.spool.dir);
    // A runner started with this configuration would refuse it at once (78): no advice
    // to start one, which could never make the step pass.
    if t.config_refused {
        t.say(
            Mark::Skip,
            "wakeup",
            &format!(
                "{}: not checked: the programs refuse this configuration, a queue runner \
                 too (the lines above); put it right first, then check again",
                fifo.display()
            ),
        );
        return;
    }
    let advice = runner_advice(s);
    // The fix that makes the step pass at once wherever the spool is: a periodic
    // runner for this configuration, which listens as soon as it starts.
    let start_now = {
        let conf = conf_option(s);
        fix(&[format!("{}{conf} -q30m", sh_word(&rsendmail_path()))])
    };
    let no_runner = |t: &mut Tally, shown: String, absent: bool| match only_runner {
        Some((why, cause)) if !(s.spool.private && user_timer_enabled()) => t.fail(
            Sysexit::Config,
            "wakeup",
            &format!(
                "{shown}: no queue runner is listening, and nothing else would ever send \
                 the mail queued here: {why} ({advice}){}",
                // A binary or auth.conf out of the group's reach has its own line and
                // fix, which make this one a warning; the delivery mode has none.
                match cause {
                    OnlyRunner::Mode => start_now.as_str(),
                    OnlyRunner::Install => "",
                }
            ),
        ),
        _ if absent => t.say(
            Mark::Skip,
            "wakeup",
            &format!(
                "{shown} (no queue runner is listening; background submissions deliver \
                 themselves)"
            ),
        ),
        _ => t.say(
            Mark::Warn,
            "wakeup",
            &format!(
                "{shown}: no queue runner is listening: mail queued for later \
                 (deferred, failed attempts, a user's mail to another local user, \
                 reports for local senders) waits until one runs ({advice})"
            ),
        ),
    };
    match std::fs::symlink_metadata(&fifo) {
        // Not to be seen by this user (a shared spool she has not the group of): not
        // known to be missing, so no failure; the root queue runner's own check sees it.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => t.say(
            Mark::Warn,
            "wakeup",
            &format!(
                "{} could not be checked: {} ({}; {})",
                fifo.display(),
                config::io_text(&e),
                out_of_reach(s),
                run_as_admin(s, want)
            ),
        ),
        Err(_) => no_runner(t, format!("no {}", fifo.display()), true),
        Ok(md) if !md.file_type().is_fifo() => {
            // What a runner's start does with it: moved into corrupt/ (init does it for
            // a system spool; a user moves what is in her own spool herself).
            let corrupt = s.spool.dir.join("corrupt");
            let cmds = if s.spool.private {
                vec![
                    format!("mkdir -p -m 700 {}", sh_word(&corrupt)),
                    format!(
                        "mv {} {}/wakeup.$(date +%s)",
                        sh_word(&fifo),
                        sh_word(&corrupt)
                    ),
                ]
            } else {
                vec![init_command(s, &want.group)]
            };
            t.fail(
                Sysexit::Config,
                "wakeup",
                &format!(
                    "{} is not a FIFO: no submission can wake a queue runner through it \
                     (a runner's start, or init, moves it into corrupt/){}",
                    fifo.display(),
                    fix_unless(
                        swappable(s, &fifo, false).or_else(|| swappable(s, &corrupt, false)),
                        &cmds
                    )
                ),
            )
        }
        Ok(md)
            if md.mode() & 0o7777 != crate::spool::wake::MODE
                || (!s.spool.private && !want.owns(&md)) =>
        {
            // Its owner may change its mode and so stop or flood the runner's wake-ups.
            let mut cmds = Vec::new();
            if !s.spool.private && !want.owns(&md) {
                cmds.extend(want.chown(&fifo));
            }
            cmds.push(format!(
                "chmod {:04o} {}",
                crate::spool::wake::MODE,
                sh_word(&fifo)
            ));
            t.fail(
                Sysexit::Config,
                "wakeup",
                &format!(
                    "{} ({}): must be {:04o}, {}{}",
                    fifo.display(),
                    owner_mode(&md),
                    crate::spool::wake::MODE,
                    if s.spool.private {
                        "this user's".to_string()
                    } else {
                        format!("root:{}", want.group)
                    },
                    unless_swappable(s, &fifo, false, &cmds)
                ),
            )
        }
        Ok(md) => {
            let shown = format!("{} (FIFO, {})", fifo.display(), owner_mode(&md));
            match runner_listens(&fifo) {
                Some(false) => no_runner(t, shown, false),
                Some(true) => match stopped_readers(&md).as_slice() {
                    [] => t.say(
                        Mark::Ok,
                        "wakeup",
                        &format!("{shown}, a queue runner listens"),
                    ),
                    pids => {
                        let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
                        t.fail(
                            Sysexit::Config,
                            "wakeup",
                            &format!(
                                "{shown}: the queue runner listening on it is stopped \
                                 (pid {}, SIGSTOP): submissions hand it their mail, which \
                                 waits in the queue until it is let go on{}",
                                pids.join(", "),
                                fix(&[format!("kill -CONT {}", pids.join(" "))])
                            ),
                        )
                    }
                },
                None => t.say(Mark::Ok, "wakeup", &shown),
            }
        }
    }
}

/// Why the spool's insides are out of this process's reach: it has not the spool's
/// group (the set-gid bit given up, or a program that is not set-gid).
fn out_of_reach(s: &app::Setup) -> String {
    format!(
        "this user cannot enter {}, which is the spool group's alone",
        s.spool.dir.display()
    )
}

/// The way to see what [`out_of_reach`] hides: the check run as root, or by a member of
/// the spool's group.
fn run_as_admin(s: &app::Setup, want: &SpoolOwner) -> String {
    let conf = conf_option(s);
    format!(
        "run `rsendmail-admin{conf} check` as root or as a member of the group {} to \
         check it",
        want.group
    )
}

/// Whether a queue runner holds the wake-up FIFO open: opening it for writing without
/// blocking fails with ENXIO when nobody reads it. `None` when that cannot be told (no
/// permission). Nothing is written.
/// The processes that hold the FIFO `fifo` (its metadata) open and are stopped
/// (SIGSTOP, or traced: state `T` or `t` in `/proc/PID/stat`), in pid order: a runner
/// that listens but never reads. Only the processes whose descriptors this user may
/// look at are seen (root sees every one; a user her own, her own spool's runner);
/// none where there is no `/proc`.
fn stopped_readers(fifo: &std::fs::Metadata) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            let holds = fds.flatten().any(|fd| {
                std::fs::metadata(fd.path())
                    .is_ok_and(|m| m.dev() == fifo.dev() && m.ino() == fifo.ino())
            });
            holds
                && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                    st.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with(['T', 't']))
                })
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn runner_listens(fifo: &Path) -> Option<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(fifo)
    {
        Ok(_) => Some(true),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Some(false),
        Err(_) => None,
    }
}

/// `rsendmail` must be set-gid to the spool's group for users to submit to a shared
/// spool; a user's own spool needs nothing of it. Whether users' submissions can queue
/// and deliver themselves (`rsendmail` is there, set-gid to the spool's group where it
/// must be).
fn binary_step(t: &mut Tally, s: &app::Setup, want: &SpoolOwner) -> bool {
    let bin = rsendmail_path();
    let md = match std::fs::metadata(&bin) {
        Ok(md) => md,
        Err(e) => {
            t.fail(
                Sysexit::Config,
                "binary",
                &format!("{}: {}", bin.display(), config::io_text(&e)),
            );
            deliverer_step(t, s);
            return false;
        }
    };
    let users_deliver = setgid_step(t, s, want, &bin, &md, "for users to queue mail");
    // The admin program, with which users act on their own entries and administrators
    // on all: it reads the spool with the spool's group as `rsendmail` writes it.
    if let Ok(admin) = std::env::current_exe()
        && admin != bin
        && let Ok(amd) = std::fs::metadata(&admin)
    {
        setgid_step(
            t,
            s,
            want,
            &admin,
            &amd,
            "for users to list and act on their queued mail",
        );
    }
    deliverer_step(t, s);
    users_deliver
}

/// One program (at `bin`, of `md`) that must be set-gid to the spool's group for a
/// shared spool (`rsendmail`, `rsendmail-admin`), `what` saying what for; whether it is.
fn setgid_step(
    t: &mut Tally,
    s: &app::Setup,
    want: &SpoolOwner,
    bin: &Path,
    md: &std::fs::Metadata,
    what: &str,
) -> bool {
    let path = sh_word(bin);
    let shown = format!("{} ({})", bin.display(), owner_mode(md));
    if s.spool.private {
        t.say(
            Mark::Ok,
            "binary",
            &format!("{shown}: the spool is this user's own, no set-gid needed"),
        );
    } else if md.uid() != 0 {
        // Its owner can replace what runs with the spool's group; a chown would not
        // do (she can swap the file for a link first): root installs a fresh copy.
        t.fail(
            Sysexit::Config,
            "binary",
            &format!(
                "{shown}: must be root's, set-gid to the spool's group {} (mode 2755) \
                 {what}, but it is owned by {}, who can replace what runs with the \
                 spool's group{}",
                want.group,
                crate::spool::safety::the_user_id(md.uid()),
                reinstall(bin, &want.group, "2755")
            ),
        );
        return md.mode() & 0o2000 != 0 && want.gid == Some(md.gid());
    } else if want.root_only {
        // No group reaches the spool: users' submissions cannot queue, set-gid or not
        // (the spool's own line says so).
        t.say(
            Mark::Ok,
            "binary",
            &format!("{shown}: the spool is root's alone, no set-gid needed"),
        );
    } else if md.mode() & 0o2000 == 0 || want.gid != Some(md.gid()) {
        let group = &want.group;
        t.fail(
            Sysexit::Config,
            "binary",
            &format!(
                "{shown}: must be set-gid to the spool's group {group} (mode 2755) \
                 {what}{}",
                unless_swappable(
                    s,
                    bin,
                    false,
                    &[
                        format!("chgrp {group} {path}"),
                        format!("chmod 2755 {path}")
                    ]
                )
            ),
        );
        return false;
    } else if md.mode() & 0o022 != 0 {
        // Its group bits may be an access ACL's mask: the ACL's writers are named, and
        // the ACL removed (a `chmod` alone only narrows the mask).
        let acl = crate::spool::safety::with_acl(bin, md, &crate::spool::safety::Trust::ROOT_ALONE)
            .filter(|(k, _)| *k == RiskKind::Acl);
        let (who, mut cmds) = match acl {
            Some((_, w)) => (format!("it is {w}"), vec![format!("setfacl -b {path}")]),
            None => ("writable by others than its owner".to_string(), Vec::new()),
        };
        cmds.push(format!("chmod go-w {path}"));
        t.fail(
            Sysexit::Config,
            "binary",
            &format!("{shown}: {who}{}", unless_swappable(s, bin, false, &cmds)),
        );
    } else {
        t.say(Mark::Ok, "binary", &shown);
    }
    true
}

/// The command that makes the system group `g` when it is not there, with a gid that
/// no group has and that is no passwd entry's primary group ([`free_system_gid`]):
/// `groupadd` alone looks only at the groups, and could give it a gid a user already has
/// as her primary group, which `init` then refuses.
fn groupadd_command(g: &str) -> String {
    match free_system_gid() {
        Some(n) => format!("{{ getent group {g} >/dev/null || groupadd --system -g {n} {g}; }}"),
        None => format!("{{ getent group {g} >/dev/null || groupadd --system {g}; }}"),
    }
}

/// The highest system gid (`SYS_GID_MIN`..=`SYS_GID_MAX` of /etc/login.defs, 100..=999
/// when it says none), as `groupadd --system` picks one, that no group has and no passwd
/// entry has as its primary group.
pub fn free_system_gid() -> Option<u32> {
    let defs = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
    let value = |key: &str| {
        defs.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.next()?.parse::<u32>().ok())?
            })
            .next_back()
    };
    let min = value("SYS_GID_MIN").unwrap_or(100).max(1);
    let max = value("SYS_GID_MAX").unwrap_or(999);
    let used = crate::spool::safety::primary_gids();
    (min..=max).rev().find(|&n| {
        !used.contains(&n)
            && matches!(
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(n)),
                Ok(None)
            )
    })
}

/// Fail every directory above the spool, or link on its path, that someone other
/// than root (or, for a user's own spool, she) owns or may write, with its fix.
fn directories_above_step(t: &mut Tally, s: &app::Setup) {
    for u in s
        .spool
        .unsafe_dirs()
        .into_iter()
        .filter(|u| u.above || u.is_link())
    {
        // In a user's home: no fix but a path outside her tree (said with the problem).
        let cmds = u.fix(s.spool.private);
        // Below another directory someone else holds: none yet, that one first (she
        // could swap this one for a link to any directory before root's chown).
        let swap = (!cmds.is_empty())
            .then(|| swappable(s, u.dir.parent().unwrap_or(Path::new("/")), true))
            .flatten();
        let line = match &swap {
            None => s.spool.unsafe_dir_problem(&u, Some(&cmds)),
            Some((d, why)) => format!(
                "{}{}",
                s.spool.unsafe_dir_problem(&u, Some(&[])),
                swappable_text(d, why)
            ),
        };
        t.fail(Sysexit::Config, "spool", &line);
    }
}

/// `rsendmail-deliver` is what root runs (the queue runner, `-q`, the daemon): it and
/// the directory it is found in must be root's alone (a user's own spool: root's or this
/// user's), and it must not be set-id.
fn deliverer_step(t: &mut Tally, s: &app::Setup) {
    // The one beside this program when it is there: the file the programs would run,
    // or refuse to run when it is unsafe (then they look for the installed one).
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("rsendmail-deliver")))
        .filter(|p| std::fs::symlink_metadata(p).is_ok());
    let deliver = beside.unwrap_or_else(app::deliver_path);
    let md = match std::fs::metadata(&deliver) {
        Ok(md) => md,
        Err(_) => {
            t.fail(
                Sysexit::Config,
                "binary",
                &format!(
                    "{}: not there (nothing can be delivered)",
                    deliver.display()
                ),
            );
            return;
        }
    };
    let me = nix::unistd::geteuid().as_raw();
    let owner_ok = |uid: u32| uid == 0 || (s.spool.private && uid == me);
    let dir = deliver.parent().unwrap_or(Path::new("/"));
    let shown = format!("{} ({})", deliver.display(), owner_mode(&md));
    // Who besides root could change `p` (of `md`): its group bits may be an access
    // ACL's mask, and then the ACL's entries are who writes through them.
    let trust = crate::spool::safety::Trust {
        owner: &owner_ok,
        group: &|_| false,
        sticky_ok: false,
    };
    let judged = |p: &Path, md: &std::fs::Metadata| crate::spool::safety::with_acl(p, md, &trust);
    // The commands that make `p` (of `md`) root's alone: its owner when it is not one
    // that may have it, its access ACL removed when one lets others write (a `chmod`
    // alone only narrows its mask, which a later `chmod g+w` widens again), then `mode`.
    let cmds = |p: &Path, md: &std::fs::Metadata, mode: &str| {
        let mut c = Vec::new();
        if !owner_ok(md.uid()) {
            c.push(format!("chown root {}", sh_word(p)));
        }
        if matches!(judged(p, md), Some((RiskKind::Acl, _))) {
            c.push(format!("setfacl -b {}", sh_word(p)));
        }
        c.push(format!("chmod {mode} {}", sh_word(p)));
        unless_swappable(s, p, false, &c)
    };
    // The program itself: one its owner may not have is installed anew by root (she
    // could swap it for a link before a chown or chmod of it).
    let program = |mode: &str| {
        if owner_ok(md.uid()) {
            cmds(&deliver, &md, mode)
        } else {
            reinstall(&deliver, "root", mode)
        }
    };
    // The directory first: while someone other than root can write it, no command on
    // the program in it is safe (it could be swapped first), and its line is the one
    // to act on.
    let dir_problem = match std::fs::metadata(dir).map(|d| (judged(dir, &d), d)) {
        Ok((Some((_, w)), d)) => Some(format!(
            "{} ({}), where {} is found: must be owned by root and writable by root \
             alone (whoever can write it can replace what root runs), but it is {w}{}",
            dir.display(),
            owner_mode(&d),
            deliver.display(),
            // A directory no one could swap for a link (everything above it root's
            // alone: its own owner cannot rename it) is made root's; one below a
            // directory or link a user holds is never adopted.
            if let Some(why) = (!s.spool.private)
                .then(|| crate::spool::safety::not_rsendmails_own(dir))
                .flatten()
            {
                // A system directory (/usr/local/sbin 2775 root:staff): not
                // rsendmail's to change.
                format!(
                    " (no fix: {} is not rsendmail's ({why}), and no fix touches what \
                     is not; have root install the programs in a directory that is \
                     root's alone all the way down, such as /usr/sbin, or make it \
                     writable by root alone by hand if nothing else needs to write it)",
                    sh_word(dir)
                )
            } else if s.spool.private
                || !matches!(
                    crate::spool::safety::holder(dir),
                    crate::spool::safety::Holder::Others(_)
                )
            {
                cmds(dir, &d, "go-w")
            } else {
                format!(
                    " (repair: have root install the programs in a directory that is \
                     root's alone all the way down; never change the owner or mode of \
                     {}, which its owner can swap first)",
                    sh_word(dir)
                )
            }
        )),
        _ => None,
    };
    let problem = if dir_problem.is_some() {
        dir_problem
    } else if md.mode() & 0o6000 != 0 {
        Some(format!(
            "{shown}: must not be set-uid or set-gid{}",
            program("755")
        ))
    } else if let Some((_, w)) = judged(&deliver, &md) {
        Some(format!(
            "{shown}: root runs it, so it must be owned by root and writable by root \
             alone, but it is {w}{}",
            program("755")
        ))
    } else {
        None
    };
    match problem {
        Some(p) => t.fail(Sysexit::Config, "binary", &p),
        None => t.say(Mark::Ok, "binary", &shown),
    }
}

/// For the system configuration of a shared spool: users' programs (set-gid to the
/// spool's group) read it too, so it must be readable by everyone or by that group;
/// else their mail is refused. Fails with `chmod 644` of it (it holds no secret: the
/// credentials are in AUTHPATH's file), once it is root's alone (the trust line says
/// so first).
fn config_readable_step(t: &mut Tally, s: &app::Setup) {
    let Some(path) = &s.system_config else {
        return;
    };
    if s.spool.private || s.inv.config_file.is_some() {
        return;
    }
    let Ok(md) = std::fs::metadata(path) else {
        return;
    };
    let group = app::maillog_group(s);
    let mode = md.mode();
    if mode & 0o004 != 0 || (mode & 0o040 != 0 && Some(md.gid()) == group) {
        return;
    }
    let fixed = if md.uid() == 0 {
        crate::spool::safety::repair_text(path, &[format!("chmod 644 {}", sh_word(path))])
    } else {
        String::new()
    };
    t.fail(
        Sysexit::Config,
        "config",
        &format!(
            "{} ({}): users' programs cannot read it (they run with the spool's group{}), \
             so their mail is refused; it must be readable by everyone, or by that group{fixed}",
            path.display(),
            owner_mode(&md),
            group
                .map(|g| format!(" {}", group_name(g)))
                .unwrap_or_default()
        ),
    );
}

/// The names a program may be started by that lead to rsendmail's programs (the
/// sendmail, mailq and newaliases links of a system that uses it).
const PROGRAM_LINKS: [&str; 5] = [
    "/usr/sbin/sendmail",
    "/usr/lib/sendmail",
    "/usr/bin/mailq",
    "/usr/bin/newaliases",
    "/usr/sbin/newaliases",
];

/// For a shared spool: each installed program (`rsendmail`, this `rsendmail-admin`, the
/// deliverer, and the sendmail, mailq and newaliases links that run `rsendmail`) is
/// run by root (the queue runner, cron, a SIGHUP restart) and by users with the
/// spool's group: whoever could change it, a symbolic link on its path, or any
/// directory on its path (but a sticky one of root's) could put her own program in its
/// place. Each
/// such fault fails, held to the rule a SIGHUP restart applies before executing
/// the program again ([`crate::spool::safety::unsafe_program`]), with a repair that fits
/// it: `chmod go-w` of a root-owned directory or file only others may write, then the
/// programs installed anew (they may have been replaced meanwhile); anything a user owns
/// is never adopted.
fn program_paths_step(t: &mut Tally, s: &app::Setup) {
    if s.spool.private {
        return;
    }
    let bin = rsendmail_path();
    let ours = std::fs::canonicalize(&bin).ok();
    let mut programs: Vec<PathBuf> = vec![bin.clone()];
    programs.extend(std::env::current_exe().ok());
    let deliver = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("rsendmail-deliver")))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .unwrap_or_else(app::deliver_path);
    programs.push(deliver.clone());
    programs.extend(
        PROGRAM_LINKS
            .iter()
            .map(PathBuf::from)
            .filter(|l| ours.is_some() && std::fs::canonicalize(l).ok() == ours),
    );
    let mut seen: Vec<PathBuf> = Vec::new();
    // Each fault once: the file itself, and the deliverer's own directory, are the
    // binary steps' (their lines name them, with their repair).
    let mut reported: Vec<PathBuf> = deliver
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    for p in programs {
        if seen.contains(&p) || std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        seen.push(p.clone());
        let Some(f) = crate::spool::safety::program_fault(&p) else {
            continue;
        };
        let link =
            f.at.as_ref()
                .is_some_and(|at| std::fs::symlink_metadata(at).is_ok_and(|m| m.is_symlink()));
        if f.at.as_ref().is_some_and(|at| reported.contains(at)) || !(f.dir || link) {
            continue;
        }
        reported.extend(f.at.clone());
        let repair = match &f.at {
            // A root-owned directory others may write by mistake (a sticky one of
            // root's, as /tmp, is no fault).
            // A system directory (/usr/local/sbin 2775 root:staff): not rsendmail's to
            // change.
            Some(at)
                if f.dir
                    && f.mode_only
                    && let Some(why) = crate::spool::safety::not_rsendmails_own(at) =>
            {
                format!(
                    "; whoever could write it may have replaced the programs below it \
                     (no fix: {} is not rsendmail's ({why}), and no fix touches what is \
                     not; have root install the programs in a directory that is root's \
                     alone all the way down, such as /usr/sbin, or make {} writable by \
                     root alone by hand if nothing else needs to write it)",
                    sh_word(at),
                    sh_word(at)
                )
            }
            Some(at) if f.dir && f.mode_only => {
                // An access ACL that lets others write is removed, not only masked.
                let mut cmds = Vec::new();
                if f.kind == Some(RiskKind::Acl) {
                    cmds.push(format!("setfacl -b {}", sh_word(at)));
                }
                cmds.push(format!("chmod go-w {}", sh_word(at)));
                format!(
                    "; whoever could write it may have replaced the programs below it: once it \
                 is root's alone, install them anew from a build root trusts{}",
                    unless_swappable(s, at, false, &cmds)
                )
            }
            Some(at) if f.dir => format!(
                " (repair: have root install the programs in a directory that is root's \
                 alone all the way down, such as /usr/sbin, and point the links at them; \
                 never change the owner or mode of {}, which its owner can swap first)",
                sh_word(at)
            ),
            Some(at) => format!(
                " (repair: have root remove the link {} and make it anew, root's)",
                sh_word(at)
            ),
            None => String::new(),
        };
        t.fail(
            Sysexit::Config,
            "binary",
            &format!(
                "{}: root runs it, and users with the spool's group, so no one else may \
                 change it or any directory on its path, but {}{repair}",
                p.display(),
                f.why
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The system's sendmail is linked only to an installed rsendmail: one in a build
    /// tree or a copy in /tmp gets no link, and is told why.
    #[test]
    fn only_an_installed_program_is_offered_the_system_names() {
        let link = Path::new(SYSTEM_SENDMAIL);
        for installed in [
            "/usr/sbin/rsendmail",
            "/usr/local/sbin/rsendmail",
            "/opt/rsendmail/bin/rsendmail",
            "/sbin/rsendmail",
        ] {
            assert_eq!(
                not_installed(Path::new(installed), link),
                None,
                "{installed}"
            );
        }
        for scratch in [
            "/tmp/rsmt/bin/rsendmail",
            "/home/alice/src/rsendmail/target/release/rsendmail",
            "/usrx/rsendmail",
            "/work/rsendmail",
        ] {
            let why = not_installed(Path::new(scratch), link).unwrap_or_default();
            assert!(
                why.starts_with(&format!(" (no link offered: {scratch} is not an installed"))
                    && why.ends_with("then link /usr/sbin/sendmail to the installed one)"),
                "{why}"
            );
        }
    }

    /// Root's group and a user's primary group are each refused as a spool's group,
    /// with why; a group with members (the spool's administrators) is not.
    #[test]
    fn groups_users_act_with_are_unfit() {
        assert_eq!(group_unfit(0).as_deref(), Some("root's group"));
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let primary: Vec<(String, u32)> = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.first()?.to_string(), f.get(3)?.parse().ok()?))
            })
            .collect();
        let with_members = groups.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let gid: u32 = f.get(2)?.parse().ok()?;
            (gid != 0 && !f.get(3)?.is_empty() && !primary.iter().any(|(_, g)| *g == gid))
                .then_some(gid)
        });
        if let Some(gid) = with_members {
            assert_eq!(group_unfit(gid), None, "{gid}");
        }
        for (user, gid) in primary.iter().filter(|(_, g)| *g != 0) {
            let why = group_unfit(*gid).unwrap_or_default();
            assert!(
                why.starts_with("the primary group of the user "),
                "{user} {gid}: {why:?}"
            );
        }
        // A group nobody is in and nobody has as primary group is fit.
        if let Some(gid) = groups.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let gid: u32 = f.get(2)?.parse().ok()?;
            (gid != 0 && f.get(3)?.is_empty() && !primary.iter().any(|(_, g)| *g == gid))
                .then_some(gid)
        }) {
            assert_eq!(group_unfit(gid), None, "{gid}");
        }
    }
}

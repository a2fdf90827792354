//! `rsendmail-admin check [--to ADDRESS]`: can this host send mail? One line a step, in
//! plain words, each beginning with its mark ([`Mark`]): `ok`, `FAIL`, `warn` (worth a
//! look, does not fail the check), `skip` (a step that does not apply) or `info` (more
//! about the step before).
//!
//! The steps made here, without the network: the configuration (every problem with its
//! file and line, then the files it names; options rsendmail accepts but does not act
//! on, and keywords that change nothing, are `warn` lines), the mail name and host name,
//! the spool (its group and modes), the installed `rsendmail` (set-gid to the spool's
//! group), the queue runner's wake-up FIFO (`SPOOLDIR/wakeup`) and the modes of
//! `auth.conf` (never readable by others). The network steps (DNS, TCP, the greeting,
//! EHLO, TLS and the certificate, AUTH, the `--to` probe) are the deliverer's, which
//! holds the TLS and DNS code: `rsendmail-deliver --check [--to ADDRESS] -- ARGV`
//! prints their lines (`deliver/check.rs`); they are skipped when the configuration has
//! errors.
//!
//! Exit status: 0 when every step passed; else the first failure's: EX_CONFIG (78) for
//! the configuration, the names, the spool, the binary, the FIFO and `auth.conf`;
//! EX_UNAVAILABLE (69) for a permanent refusal on the network (a name that does not
//! exist, AUTH refused, a 5yz to MAIL or RCPT); EX_TEMPFAIL (75) for other network
//! failures (no connection, a timeout, TLS, a 4yz, a DNS failure); EX_USAGE (64) for an
//! `--to` that is no address.

use super::Context;
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
}

impl Tally {
    /// Print one step's line: `ok   STEP DETAIL`, or `FAIL STEP: DETAIL` (`warn`,
    /// `skip` alike), the mark padded to four columns; U+FFFD in DETAIL as `?`.
    pub fn say(&mut self, mark: Mark, step: &str, detail: &str) {
        let sep = match (mark, detail.is_empty()) {
            (_, true) => "",
            (Mark::Ok, false) => " ",
            _ => ": ",
        };
        // An octet a server sent that is not UTF-8 is read as U+FFFD: shown as `?`, as a
        // control character is.
        let detail = detail.replace(char::REPLACEMENT_CHARACTER, "?");
        crate::outln!("{:<4} {step}{sep}{detail}", mark.word());
    }

    /// A failed step, with the exit status it gives when it is the first.
    pub fn fail(&mut self, code: Sysexit, step: &str, detail: &str) {
        self.first_failure.get_or_insert(code);
        self.say(Mark::Fail, step, detail);
    }

    /// 0 when nothing failed, else the first failure's status.
    pub fn status(&self) -> Sysexit {
        self.first_failure.unwrap_or(Sysexit::Ok)
    }
}

/// Run the check; see the module.
pub fn check(ctx: &Context, to: Option<&str>) -> Sysexit {
    let mut t = Tally::default();
    let skip = |t: &mut Tally| {
        t.say(
            Mark::Skip,
            "network",
            "not checked: the configuration has errors",
        );
    };
    let Some((s, usable)) = config_step(&mut t, ctx) else {
        skip(&mut t);
        return t.status();
    };
    if s.dropped_group {
        // What the spool and binary steps say next comes from it.
        t.say(Mark::Info, "privileges", super::DROPPED_GROUP_NOTE);
    }
    names_step(&mut t, &s.cfg);
    install_steps(&mut t, &s);
    if !usable {
        skip(&mut t);
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
            &format!("cannot run {}: {}", deliver.display(), config::io_text(&e)),
        ),
    }
    t.status()
}

/// The configuration: every problem of the file with its line (each line in error is
/// set aside and the file read again, so that one typo does not hide the next), then
/// the whole setup as the programs make it (the mail name, the files named).
/// `Some((setup, usable))`: the setup, and whether the files it names are fit for
/// delivery (the network steps need them); `None`: the configuration cannot be read.
fn config_step(t: &mut Tally, ctx: &Context) -> Option<(app::Setup, bool)> {
    let path = ctx.config.clone().unwrap_or_else(config::system_config);
    let name = path.display().to_string();
    if ctx.config.is_none() && !config::exists(&path) {
        t.say(
            Mark::Ok,
            "config",
            &format!("{name}: not there, the built-in settings apply"),
        );
    } else {
        match crate::boundedfile::read_regular(&path, false, crate::boundedfile::MAX_FILE) {
            Ok((bytes, _)) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let problems = file_problems(&text, &name);
                for p in &problems {
                    t.fail(Sysexit::Config, "config", p);
                }
                if !problems.is_empty() {
                    return None;
                }
            }
            Err(e) => {
                t.fail(
                    Sysexit::Config,
                    "config",
                    &format!("cannot open {name}: {}", e.text()),
                );
                return None;
            }
        }
    }
    let s = match app::setup(config_argv(ctx)) {
        Ok(s) => s,
        Err(f) => {
            t.fail(Sysexit::Config, "config", &f.message);
            return None;
        }
    };
    // The files it names: a problem there fails the check, and the steps without the
    // network still run (the auth.conf step says more of its file).
    let files = s.cfg.check_files(&s.settings);
    match &files {
        Err(f) => t.fail(Sysexit::Config, "config", &f.message),
        Ok(()) if config::exists(&path) => t.say(Mark::Ok, "config", &name),
        Ok(()) => {}
    }
    for w in idle_settings(&s.cfg) {
        t.say(Mark::Warn, "config", &w);
    }
    Some((s, files.is_ok()))
}

/// Each problem `Config::parse` finds in `text`, with its file and line: the line of
/// each is blanked and the text read again (at most 100 problems).
pub fn file_problems(text: &str, name: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = Vec::new();
    let prefix = format!("{name}: line ");
    for _ in 0..100 {
        let mut cfg = Config::builtin(&config::Paths::system());
        let Err(f) = cfg.parse(&lines.join("\n"), name, &[]) else {
            break;
        };
        let line = f
            .message
            .strip_prefix(&prefix)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<usize>().ok());
        out.push(f.message);
        match line.and_then(|n| lines.get_mut(n.wrapping_sub(1))) {
            Some(l) => l.clear(),
            None => break,
        }
    }
    out
}

/// Settings that change nothing, with their file and line: `O` options rsendmail
/// accepts for sendmail's sake and does not act on, VERIFYCERT without INSECURE,
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
    if cfg.opportunistic_tls && cfg.secure_transfer && !cfg.starttls {
        out.push(format!(
            "{}OPPORTUNISTIC_TLS has no effect: SECURETRANSFER without STARTTLS is TLS from the first byte",
            at("OPPORTUNISTIC_TLS")
        ));
    }
    out
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
    if name.contains('.') {
        t.say(Mark::Ok, "mailname", &format!("{name} ({from})"));
    } else {
        t.say(
            Mark::Warn,
            "mailname",
            &format!(
                "{name} ({from}) is not a domain name: other hosts may refuse mail from \
                 {name}; set MAILNAME"
            ),
        );
    }
    t.say(Mark::Ok, "hostname", &config::system_host_name());
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn owner_mode(md: &std::fs::Metadata) -> String {
    format!(
        "{}:{} {:04o}",
        user_name(md.uid()),
        group_name(md.gid()),
        md.mode() & 0o7777
    )
}

/// The installed `rsendmail`: beside this program (as the deliverer is found), else
/// `/usr/sbin/rsendmail`.
fn rsendmail_path() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join("rsendmail");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("/usr/sbin/rsendmail")
}

/// The spool, the set-gid binary, the wake-up FIFO and auth.conf.
fn install_steps(t: &mut Tally, s: &app::Setup) {
    let dir = &s.spool.dir;
    let spool_md = match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => md,
        Ok(_) => {
            t.fail(
                Sysexit::Config,
                "spool",
                &format!("{} is not a directory", dir.display()),
            );
            return;
        }
        Err(e) => {
            t.fail(
                Sysexit::Config,
                "spool",
                &format!(
                    "{}: {} (`rsendmail-admin init` makes it)",
                    dir.display(),
                    config::io_text(&e)
                ),
            );
            return;
        }
    };
    let mode = spool_md.mode() & 0o7777;
    if s.spool.private {
        if mode & 0o077 != 0 {
            t.fail(
                Sysexit::Config,
                "spool",
                &format!(
                    "{} ({}): a user's own spool must be 0700",
                    dir.display(),
                    owner_mode(&spool_md)
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
    } else if mode & 0o007 != 0 || mode & 0o070 != 0o070 {
        t.fail(
            Sysexit::Config,
            "spool",
            &format!(
                "{} ({}): must be 2770, its group's and nobody else's",
                dir.display(),
                owner_mode(&spool_md)
            ),
        );
    } else {
        t.say(
            Mark::Ok,
            "spool",
            &format!("{} ({})", dir.display(), owner_mode(&spool_md)),
        );
    }
    binary_step(t, s, &spool_md);
    let fifo = crate::spool::wake::path(dir);
    match std::fs::symlink_metadata(&fifo) {
        Err(_) => t.say(
            Mark::Skip,
            "wakeup",
            &format!(
                "no {} (no queue runner is listening; background submissions deliver themselves)",
                fifo.display()
            ),
        ),
        Ok(md) if !md.file_type().is_fifo() => t.fail(
            Sysexit::Config,
            "wakeup",
            &format!("{} is not a FIFO", fifo.display()),
        ),
        Ok(md)
            if md.mode() & 0o7777 != crate::spool::wake::MODE
                || (!s.spool.private && md.gid() != spool_md.gid()) =>
        {
            t.fail(
                Sysexit::Config,
                "wakeup",
                &format!(
                    "{} ({}): must be {:04o}, group {}",
                    fifo.display(),
                    owner_mode(&md),
                    crate::spool::wake::MODE,
                    group_name(spool_md.gid())
                ),
            )
        }
        Ok(md) => t.say(
            Mark::Ok,
            "wakeup",
            &format!("{} (FIFO, {})", fifo.display(), owner_mode(&md)),
        ),
    }
    if let Some(p) = &s.cfg.auth_path {
        match std::fs::metadata(p) {
            Err(e) => t.fail(
                Sysexit::Config,
                "auth.conf",
                &format!("{}: {}", p.display(), config::io_text(&e)),
            ),
            Ok(md) if md.mode() & 0o007 != 0 => t.fail(
                Sysexit::Config,
                "auth.conf",
                &format!(
                    "{} ({}) is readable by others: its passwords must not be (chmod 640 or 600)",
                    p.display(),
                    owner_mode(&md)
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

/// `rsendmail` must be set-gid to the spool's group for users to submit to a shared
/// spool; a user's own spool needs nothing of it.
fn binary_step(t: &mut Tally, s: &app::Setup, spool_md: &std::fs::Metadata) {
    let bin = rsendmail_path();
    let md = match std::fs::metadata(&bin) {
        Ok(md) => md,
        Err(e) => {
            t.fail(
                Sysexit::Config,
                "binary",
                &format!("{}: {}", bin.display(), config::io_text(&e)),
            );
            return;
        }
    };
    let shown = format!("{} ({})", bin.display(), owner_mode(&md));
    if s.spool.private {
        t.say(
            Mark::Ok,
            "binary",
            &format!("{shown}: the spool is this user's own, no set-gid needed"),
        );
    } else if md.mode() & 0o2000 == 0 || md.gid() != spool_md.gid() {
        t.fail(
            Sysexit::Config,
            "binary",
            &format!(
                "{shown}: must be set-gid to the spool's group {} (mode 2755) for users to \
                 queue mail",
                group_name(spool_md.gid())
            ),
        );
    } else if md.mode() & 0o022 != 0 {
        t.fail(
            Sysexit::Config,
            "binary",
            &format!("{shown}: writable by others than its owner"),
        );
    } else {
        t.say(Mark::Ok, "binary", &shown);
    }
    let deliver = app::deliver_path();
    if !Path::new(&deliver).exists() {
        t.fail(
            Sysexit::Config,
            "binary",
            &format!(
                "{}: not there (nothing can be delivered)",
                deliver.display()
            ),
        );
    }
}

//! Queued mail in another spool while the one the configuration names is not there: a
//! `SPOOLDIR` typo (`/var/spool/rsendmial`), or a line lost. `rsendmail-admin init`
//! would make an empty spool at the path named, every program would use it, and the
//! entries of the spool used until then would never be seen or delivered again
//! (sendmail never makes its queue directory: it stops with "cannot chdir"). So, when the
//! configured spool is missing, `check` and `init` look for a spool elsewhere that holds
//! entries ([`spools_with_entries`]):
//! - the spool the queue runner of the same configuration listens on (its wake-up FIFO,
//!   `SPOOLDIR/wakeup`, held open for reading: a runner keeps the spool it had when a
//!   reload names one that is not there); a runner's configuration is the `-C` of its
//!   command line (relative to its working directory), else its system configuration
//!   (what its environment names for a test build, [`runner_config`]), compared as files
//!   (device and inode, seen through its own root: another mount namespace's
//!   `/etc/rsendmail/rsendmail.conf` is another file). A runner whose configuration cannot
//!   be known is not this configuration's: it never blocks `init`. Only the processes
//!   this user may look at are seen (root sees every one);
//! - the built-in default spool, `/var/spool/rsendmail`, when the configuration is the
//!   system's (the spool it used before a `SPOOLDIR` line named another) or the names
//!   are a typo apart ([`close_names`]): another configuration's (a test instance's)
//!   spool is not taken for a typo of the system's;
//! - the directories beside the missing one whose names are a typo apart (at most
//!   [`MAX_SIBLINGS`] looked at).
//!
//! Each must look like a spool as the programs make it (`tmp/`, `index/` and `corrupt/`
//! there, directories: the first submission makes them, and `init` with the rest); its
//! entries are its `qf` files and those in `hold/`. `check` fails with the configuration
//! line to correct (and its fix), never `init`'s; `init` refuses to make the spool
//! (EX_CONFIG, 78: the configuration is what looks wrong, as for a `SPOOLDIR` whose
//! parent is missing; nothing prevents making the directory) unless told
//! `--new-spool`.
//!
//! The same typo once its spool is made (by `init --new-spool`, by hand): the configured
//! spool is there but holds no entry, while another spool found the same way holds some.
//! Every program uses the empty one, and the others' entries are stranded; `check` warns
//! with the line to correct ([`problem_empty`], [`config_fix`]).

use crate::spool::{Named, Spool, safety::shell_word};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The most names of the missing spool's parent directory looked at for a spool beside
/// it.
pub const MAX_SIBLINGS: usize = 1000;

/// A spool holding entries, found while the configured one is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    pub dir: PathBuf,
    /// Its entries: `qf` files in it and in its `hold/`.
    pub entries: usize,
    /// It is the built-in default spool.
    pub default: bool,
    /// The queue runners of the same configuration that listen on its wake-up FIFO.
    pub runners: Vec<u32>,
}

impl Elsewhere {
    /// `DIR (the built-in default; the queue runner of this configuration, pid N,
    /// listens there) holds N entries`.
    pub fn holds(&self) -> String {
        let mut why = Vec::new();
        if self.default {
            why.push("the built-in default".to_string());
        }
        match self.runners.as_slice() {
            [] => {}
            [pid] => why.push(format!(
                "the queue runner of this configuration, pid {pid}, listens there"
            )),
            pids => why.push(format!(
                "the queue runners of this configuration, pids {}, listen there",
                pids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join("; "))
        };
        format!(
            "{}{why} holds {} {}",
            self.dir.display(),
            self.entries,
            if self.entries == 1 {
                "entry"
            } else {
                "entries"
            }
        )
    }
}

/// The spools other than `missing` (the configured spool: not there, or holding no
/// entry) that hold entries: the one the queue runner reading `config` (the
/// configuration file read) listens on, the built-in default, those beside `missing`;
/// in that order, each once.
pub fn spools_with_entries(missing: &Path, config: &Path) -> Vec<Elsewhere> {
    let mut found: Vec<(PathBuf, Elsewhere)> = Vec::new();
    // The configured spool itself, when it is there, under any of its names.
    let itself = std::fs::canonicalize(missing).ok();
    let mut add = |dir: &Path, default: bool, runner: Option<u32>| {
        let Ok(key) = std::fs::canonicalize(dir) else {
            return;
        };
        if itself.as_ref() == Some(&key) {
            return;
        }
        if let Some((_, e)) = found.iter_mut().find(|(k, _)| *k == key) {
            e.default |= default;
            e.runners.extend(runner.filter(|p| !e.runners.contains(p)));
            return;
        }
        let Some(entries) = entries_in(dir) else {
            return;
        };
        found.push((
            key,
            Elsewhere {
                dir: dir.to_path_buf(),
                entries,
                default,
                runners: runner.into_iter().collect(),
            },
        ));
    };
    for (pid, dir) in runners_of(config) {
        add(&dir, false, Some(pid));
    }
    // The built-in default is the system configuration's spool until a SPOOLDIR names
    // another; for another configuration (a test instance's `-C`), its entries are the
    // system's, not this configuration's, unless the names are a typo apart.
    let default = crate::config::Paths::system().spool_dir;
    if default != missing
        && (close_names(&default, missing) || same_config(config, &crate::config::system_config()))
    {
        add(&default, true, None);
    }
    for dir in typo_candidates(missing)
        .into_iter()
        .filter(|d| close_names(d, missing))
    {
        add(&dir, false, None);
    }
    found
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.entries > 0)
        .collect()
}

/// The most edits (a character added, removed, changed, or two swapped) between two
/// paths that [`close_names`] takes for a typo.
pub const MAX_TYPO_EDITS: usize = 2;

/// Whether the paths `a` and `b` are a typo apart: at most [`MAX_TYPO_EDITS`] edits of
/// their bytes (optimal string alignment distance). `/var/spool/rsendmial` and
/// `/var/spool/rsendmail` are; `/tmp/test/spool` and `/var/spool/rsendmail` are not.
pub fn close_names(a: &Path, b: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    if a.len().abs_diff(b.len()) > MAX_TYPO_EDITS {
        return false;
    }
    // What both begin and end with takes no edit: only the rest is compared (siblings
    // share their parent's path, which may be thousands of bytes long).
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (
        a.get(head..).unwrap_or_default(),
        b.get(head..).unwrap_or_default(),
    );
    let tail = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (
        a.get(..a.len() - tail).unwrap_or_default(),
        b.get(..b.len() - tail).unwrap_or_default(),
    );
    // Three rows of the distance table: the one two rows up, the last, this one.
    let mut before: Vec<usize> = Vec::new();
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let mut d = (last[j] + cost).min(last[j + 1] + 1).min(row[j] + 1);
            if i > 0
                && j > 0
                && a.get(i - 1) == Some(cb)
                && b.get(j - 1) == Some(ca)
                && let Some(two_up) = before.get(j - 1)
            {
                d = d.min(two_up + 1);
            }
            row.push(d);
        }
        if row.iter().min().is_some_and(|m| *m > MAX_TYPO_EDITS) {
            return false;
        }
        before = std::mem::replace(&mut last, row);
    }
    last.last().is_some_and(|d| *d <= MAX_TYPO_EDITS)
}

/// The entries of `dir` when it looks like a spool the programs made (`tmp/`, `index/`
/// and `corrupt/` directories there): its `qf` files and those in `hold/`. None when it
/// does not, or cannot be read.
fn entries_in(dir: &Path) -> Option<usize> {
    if !std::fs::metadata(dir).ok()?.is_dir() {
        return None;
    }
    let made = ["tmp", "index", "corrupt"]
        .iter()
        .all(|n| std::fs::symlink_metadata(dir.join(n)).is_ok_and(|m| m.is_dir()));
    if !made {
        return None;
    }
    entries_of(dir)
}

/// The entries of the spool `dir`, however it was made: its `qf` files and those in
/// `hold/`. None when it cannot be read.
pub fn entries_of(dir: &Path) -> Option<usize> {
    let count = |d: &Path| -> Option<usize> {
        Some(
            std::fs::read_dir(d)
                .ok()?
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("qf"))
                        .is_some_and(crate::spool::valid_id)
                })
                .count(),
        )
    };
    let top = count(dir)?;
    let hold = dir.join(crate::spool::HOLD);
    let held = if std::fs::symlink_metadata(&hold).is_ok_and(|m| m.is_dir()) {
        count(&hold).unwrap_or(0)
    } else {
        0
    };
    Some(top + held)
}

/// Where the spool a mistyped `missing` meant may be: the directories beside it
/// ([`siblings`]), and, while the directories above it are missing too (the typo is in
/// one of them: `/srv/tt/rsendmail` for `/srv/t/rsendmail`), those beside each of them,
/// with the rest of the path. Never beside a directory that is there: two instances'
/// spools (`/srv/a1/spool`, `/srv/a2/spool`) are not each other's typo.
fn typo_candidates(missing: &Path) -> Vec<PathBuf> {
    let mut out = siblings(missing);
    for above in missing.ancestors().skip(1) {
        if above.as_os_str().is_empty() || std::fs::symlink_metadata(above).is_ok() {
            break;
        }
        let Ok(rest) = missing.strip_prefix(above) else {
            break;
        };
        out.extend(siblings(above).into_iter().map(|d| d.join(rest)));
    }
    out
}

/// The directories beside `missing` (not symbolic links), by name.
fn siblings(missing: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (missing.parent(), missing.file_name()) else {
        return Vec::new();
    };
    if parent.as_os_str().is_empty() {
        return Vec::new();
    }
    let Ok(list) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = list
        .take(MAX_SIBLINGS)
        .flatten()
        .filter(|e| e.file_name() != name && e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The queue runners whose configuration is `config`, with the spool each listens on:
/// the processes holding a FIFO named `wakeup` open for reading, in pid order.
fn runners_of(config: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut spools: Vec<PathBuf> = fds
            .flatten()
            .filter_map(|fd| {
                // Open for reading: the link's own mode says how it was opened.
                let link = std::fs::symlink_metadata(fd.path()).ok()?;
                if link.mode() & 0o400 == 0 {
                    return None;
                }
                let target = std::fs::read_link(fd.path()).ok()?;
                if target.file_name()? != crate::spool::wake::NAME {
                    return None;
                }
                let held = std::fs::metadata(fd.path()).ok()?;
                let there = std::fs::symlink_metadata(&target).ok()?;
                (held.file_type().is_fifo()
                    && there.file_type().is_fifo()
                    && (held.dev(), held.ino()) == (there.dev(), there.ino()))
                    .then(|| target.parent().map(Path::to_path_buf))
                    .flatten()
            })
            .collect();
        if spools.is_empty() || !runner_config(pid).is_some_and(|c| same_config(&c, config)) {
            continue;
        }
        spools.dedup();
        out.extend(spools.into_iter().map(|s| (pid, s)));
    }
    out.sort();
    out
}

/// The configuration the process `pid` reads, as a path to open from here: the `-C` of
/// its command line (relative to its working directory), else its system configuration:
/// the file a debug build without set-id privileges takes from its
/// `RSENDMAIL_SYSTEM_CONFIG` ([`crate::config::system_config`]; read from its
/// environment), else the built-in one. Paths are taken through its `/proc/PID/cwd` and
/// `/proc/PID/root`, so that a process in another mount namespace names its own files.
/// None when that cannot be known (its environment cannot be read, and the variable
/// could be set there): such a runner is never taken for this configuration's.
fn runner_config(pid: u32) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<&[u8]> = argv.split(|b| *b == 0).collect();
    let mut given: Option<&[u8]> = None;
    let mut i = 1;
    while i < words.len() {
        let w = words[i];
        if w == b"--" {
            break;
        }
        if w == b"-C" {
            given = words.get(i + 1).copied();
            i += 1;
        } else if let Some(rest) = w.strip_prefix(b"-C") {
            given = Some(rest);
        }
        i += 1;
    }
    let given: Vec<u8> = match given {
        Some(g) => g.to_vec(),
        None if setid(pid)? => crate::config::DEFAULT_CONFIG.as_bytes().to_vec(),
        None => {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let var = format!("{}=", crate::config::SYSTEM_CONFIG_ENV);
            env.split(|b| *b == 0)
                .filter_map(|v| v.strip_prefix(var.as_bytes()))
                .find(|v| v.first() == Some(&b'/'))
                .unwrap_or(crate::config::DEFAULT_CONFIG.as_bytes())
                .to_vec()
        }
    };
    let path = Path::new(std::ffi::OsStr::from_bytes(&given));
    Some(match path.strip_prefix("/") {
        Ok(rel) => PathBuf::from(format!("/proc/{pid}/root")).join(rel),
        Err(_) => PathBuf::from(format!("/proc/{pid}/cwd")).join(path),
    })
}

/// Whether the process `pid` runs with privileges its caller does not have (a real user
/// or group other than the effective one, as [`crate::privs::is_setid`] sees itself).
fn setid(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ids = |key: &str| -> Option<(String, String)> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        let mut w = line.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    };
    let (ruid, euid) = ids("Uid:")?;
    let (rgid, egid) = ids("Gid:")?;
    Some(ruid != euid || rgid != egid)
}

/// Whether `theirs` (a runner's configuration, [`runner_config`]) is the file `ours`:
/// the same device and inode. A file that is not there is no one's configuration (a
/// runner without one uses the built-in spool, looked at anyway).
fn same_config(theirs: &Path, ours: &Path) -> bool {
    match (std::fs::metadata(theirs), std::fs::metadata(ours)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// What the configured `spool` is, as the problems name it (`SPOOLDIR X`), and the
/// question about where it is set (`a typo at FILE: line N?`).
fn named(spool: &Spool, config: &Path) -> (String, String) {
    let dir = spool.dir.display();
    match &spool.named {
        Named::Config { at, keyword } => (format!("{keyword} {dir}"), format!("a typo at {at}?")),
        Named::SystemDefault => (
            format!("the queue directory {dir} (built in: the configuration names no SPOOLDIR)"),
            format!("is a SPOOLDIR line missing from {}?", config.display()),
        ),
        _ => (
            format!("the queue directory {dir} (named on the command line)"),
            "a typo on the command line?".to_string(),
        ),
    }
}

/// What `found` holds, each spool named with its count (`Y holds N entries, ...`), and
/// whether that is one entry in all: the words [`problem`], [`problem_empty`],
/// [`problem_left`] and [`typo_hint`] share.
fn holding(found: &[Elsewhere]) -> (String, bool) {
    let holds: Vec<String> = found.iter().map(Elsewhere::holds).collect();
    (
        holds.join(", "),
        found.iter().map(|e| e.entries).sum::<usize>() == 1,
    )
}

/// What the missing `spool` is and where it is set, with what holds entries instead
/// (`found`, not empty) and the question it raises: `SPOOLDIR X does not exist; Y holds
/// N entries: a typo at FILE: line N?`.
pub fn problem(spool: &Spool, found: &[Elsewhere], config: &Path) -> String {
    let (what, question) = named(spool, config);
    let (holds, one) = holding(found);
    let them = if one { "it" } else { "them" };
    format!(
        "{what} does not exist; {}: {question} Nothing was created: an empty spool made \
         there would leave {them} unseen and undelivered",
        holds
    )
}

/// What the configured `spool`, there but holding no entry, is and where it is set, with
/// what holds entries instead (`found`, not empty): `SPOOLDIR X holds no entry; Y holds N
/// entries: a typo at FILE: line N? ...`, [`problem`]'s words for a spool made since.
pub fn problem_empty(spool: &Spool, found: &[Elsewhere], config: &Path) -> String {
    let (what, question) = named(spool, config);
    let (holds, one) = holding(found);
    let them = if one { "it is" } else { "they are" };
    format!(
        "{what} holds no entry; {}: {question} While the \
         configuration names {}, {them} neither \
         listed nor delivered",
        holds,
        spool.dir.display()
    )
}

/// What the configured `spool`, in use (holding entries), is and where it is set, with
/// the other spools that hold entries all the same (`found`, not empty): `SPOOLDIR X is
/// in use; Y holds N entries, neither listed nor delivered while the configuration
/// names X: left by a change at FILE: line N?`. Said for as long as they hold entries
/// (the spool `init --new-spool` left, a runner's, the built-in default), where
/// [`problem_empty`] is said only until the new spool holds one.
pub fn problem_left(spool: &Spool, found: &[Elsewhere], config: &Path) -> String {
    let (what, question) = named(spool, config);
    let question = match &spool.named {
        Named::Config { at, .. } => format!("left by a change at {at}?"),
        _ => question,
    };
    let (holds, one) = holding(found);
    let them = if one { "it is" } else { "they are" };
    format!(
        "{what} is in use; {}: {question} While the configuration names {}, {them} \
         neither listed nor delivered",
        holds,
        spool.dir.display()
    )
}

/// The likely typo when the configured `spool` is missing and another spool holds
/// entries, as the programs that list the queue (`mailq`, `rsendmail-admin`) add it to
/// their refusal: `Y holds N entries: a typo at FILE: line N? (fix: COMMAND)`. `None`
/// when no other spool holds entries (or the spool is a user's own).
pub fn typo_hint(spool: &Spool, config: &Path) -> Option<String> {
    if spool.private || std::fs::symlink_metadata(&spool.dir).is_ok() {
        return None;
    }
    let found = spools_with_entries(&spool.dir, config);
    let first = found.first()?;
    let (_, question) = named(spool, config);
    let (holds, _) = holding(&found);
    let way = match config_fix(spool, &first.dir, config) {
        Ok(cmd) => format!(" (fix: {cmd})"),
        Err(words) => format!(" ({words})"),
    };
    Some(format!("{holds}: {question}{way}"))
}

/// The configuration line that names `to` as the spool instead of `spool` (missing, or
/// holding no entry):
/// `Ok(command)` that makes it so (`sed -i` of its line, or a line added to `config`),
/// `Err(words)` when no command can be printed safely (the way to say it).
pub fn config_fix(spool: &Spool, to: &Path, config: &Path) -> Result<String, String> {
    let plain = |p: &Path| {
        let s = p.display().to_string();
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b))
    };
    let value = to.display();
    match &spool.named {
        Named::Config { at, keyword } => {
            let line = if keyword == "SPOOLDIR" {
                format!("SPOOLDIR {value}")
            } else {
                format!("O QueueDirectory={value}")
            };
            let parsed = at
                .rsplit_once(": line ")
                .and_then(|(file, n)| Some((file, n.parse::<u32>().ok()?)));
            match parsed {
                Some((file, n)) if to.to_str().is_some() => line_edit(Path::new(file), n, &line),
                _ => Err(format!("correct the line to read `{line}`")),
            }
        }
        Named::SystemDefault if plain(to) && crate::config::exists(config) => Ok(format!(
            "printf 'SPOOLDIR %s\\n' {} >> {}",
            shell_word(to),
            shell_word(config)
        )),
        Named::SystemDefault => Err(format!(
            "name it in {} (`SPOOLDIR {value}`)",
            config.display()
        )),
        _ => Err(format!("name {value} on the command line")),
    }
}

/// The command that replaces line `n` of the configuration `file` with `new`, whatever
/// was done to the file since it was read: a `sed -i` that finds the line by its whole
/// text as it is now (anchored at both ends, every character `sed` or the shell could read
/// specially escaped), never by its number, so that it edits that line or nothing when
/// lines were added or removed before it, or another fix was run first; every line with
/// the same text gets the same edit, which changes nothing they say. `Err(words)`: no
/// command can be printed (the file cannot be read, no such line or a blank one, a control character
/// on either line, a `new` the configuration would not read back as written: a `#`,
/// which ends a line, or white space at either end); what to write there, in words.
pub fn line_edit(file: &Path, n: u32, new: &str) -> Result<String, String> {
    let by_hand = || format!("correct {}: line {n} to read `{new}`", file.display());
    let (text, _) = crate::boundedfile::read_regular(file, false, crate::boundedfile::MAX_FILE)
        .map_err(|_| by_hand())?;
    let old = text
        .split(|&b| b == b'\n')
        .nth(n.checked_sub(1).ok_or_else(by_hand)? as usize)
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or_else(by_hand)?;
    let plain = |t: &str| !t.chars().any(|c| c.is_control() && c != '\t');
    // A blank line is no setting's (and its pattern would find every blank line).
    if old.trim().is_empty() || !plain(old) || !plain(new) || new.contains('#') || new.trim() != new
    {
        return Err(by_hand());
    }
    Ok(format!(
        "sed -i {} {}",
        quoted(&format!(
            "s|^{}$|{}|",
            escaped(old, "\\.*[$|"),
            escaped(new, "\\&|")
        )),
        shell_word(file)
    ))
}

/// `text` with a backslash before each of `special`.
fn escaped(text: &str, special: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as one shell word in single quotes, in which nothing but `'` ends the word
/// (`'\''` for it): `$`, backquotes, `;`, `\` stay what they are.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths thousands of bytes long (a deep parent, [`MAX_SIBLINGS`] siblings) are
    /// compared at once; their common parts take no edit.
    #[test]
    fn long_sibling_paths_are_compared_fast() {
        let parent = format!("/{}", "d/".repeat(2000));
        let missing = PathBuf::from(format!("{parent}spool"));
        let started = std::time::Instant::now();
        for n in 0..MAX_SIBLINGS {
            let sibling = PathBuf::from(format!("{parent}s{:03}", n % 1000));
            assert!(!close_names(&sibling, &missing));
        }
        assert!(close_names(
            &PathBuf::from(format!("{parent}spoil")),
            &missing
        ));
        assert!(close_names(
            &PathBuf::from(format!("{parent}sopol")),
            &missing
        ));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn names_a_typo_apart_are_close() {
        for (a, b) in [
            ("/var/spool/rsendmial", "/var/spool/rsendmail"),
            ("/var/spool/rsendmal", "/var/spool/rsendmail"),
            ("/srv/spoool", "/srv/spool"),
            ("/srv/spool", "/srv/spool"),
            ("/var/spool/rsendmail2", "/var/spool/rsendmail"),
        ] {
            assert!(close_names(Path::new(a), Path::new(b)), "{a} {b}");
            assert!(close_names(Path::new(b), Path::new(a)), "{b} {a}");
        }
        for (a, b) in [
            ("/tmp/e5/spool", "/var/spool/rsendmail"),
            ("/srv/test-spool", "/srv/spool"),
            ("/srv/spool", "/srv/other"),
            ("/var/spool/rsendmail-test", "/var/spool/rsendmail"),
            ("", "/var/spool/rsendmail"),
        ] {
            assert!(!close_names(Path::new(a), Path::new(b)), "{a} {b}");
            assert!(!close_names(Path::new(b), Path::new(a)), "{b} {a}");
        }
    }

    /// [`line_edit`]'s command, run by `sh` as printed: it replaces the line it was made
    /// for and every line of the same text, wherever lines were added or removed since,
    /// and nothing else; whatever the lines hold (quotes, `/`, `&`, `\`, `|`, `$(...)`,
    /// backquotes, `;`, what `sed` reads specially), the shell runs nothing else.
    #[test]
    fn a_line_edit_finds_its_line_by_its_text_and_runs_nothing_else() {
        let d = std::env::temp_dir().join(format!("rsendmail-line-edit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        let conf = d.join("it's a $(conf) `x`;.conf");
        let hostile = [
            "SPOOLDIR /var/spool/rsendmial",
            "SPOOLDIR /tmp/a'b",
            "SPOOLDIR /x/$(touch pwned)",
            "SPOOLDIR /x/`touch pwned`",
            "SPOOLDIR /x;touch pwned",
            "SPOOLDIR /x/a&b|c\\d.*[e]^f$g\\1\\n",
            "O QueueDirectory=/q/'\"$HOME\"'\t&|",
            "^SPOOLDIR /y$",
        ];
        // The printed command, run in `d` by the shell as an administrator runs it.
        let run = |cmd: &str, i: usize| {
            let st = std::process::Command::new("sh")
                .args(["-c", cmd])
                .current_dir(&d)
                .status()
                .unwrap();
            assert!(st.success(), "{i}: {cmd}");
        };
        for (i, old) in hostile.iter().enumerate() {
            for new in [
                "SPOOLDIR /var/spool/rsendmail",
                "SPOOLDIR /n/$(touch pwned)&\\1|'x'`touch pwned`;\\",
            ] {
                // Decoys: the line as a part of others, a comment of it.
                let decoys = [
                    format!("# {old}"),
                    format!("{old}x"),
                    format!("x{old}"),
                    format!(" {old}"),
                ];
                let before = format!("{}\n{old}\n{}\n", decoys.join("\n"), decoys[1]);
                std::fs::write(&conf, &before).unwrap();
                let cmd = line_edit(&conf, 5, new).unwrap();
                // A line added above it, another removed, after the command was made.
                let edited = format!("MAILNAME example.org\n{}", before.replacen("# ", "#", 1));
                std::fs::write(&conf, &edited).unwrap();
                run(&cmd, i);
                assert_eq!(
                    std::fs::read_to_string(&conf).unwrap(),
                    edited.replacen(&format!("\n{old}\n"), &format!("\n{new}\n"), 1),
                    "{i}: {cmd}"
                );
                assert!(!d.join("pwned").exists(), "{i}: {cmd}");
                // Run again: its line is gone, nothing changes.
                let now = std::fs::read_to_string(&conf).unwrap();
                run(&cmd, i);
                assert_eq!(std::fs::read_to_string(&conf).unwrap(), now, "{i}: {cmd}");
            }
        }
        // No command: a line that is not there, a control character, a new line the
        // configuration would read otherwise.
        std::fs::write(&conf, "SPOOLDIR /a\r\nSPOOLDIR /b\n").unwrap();
        for (n, new) in [
            (3, "SPOOLDIR /c"),
            (0, "SPOOLDIR /c"),
            (1, "SPOOLDIR /c"),
            (2, "SPOOLDIR /c\u{1b}[2J"),
            (2, "SPOOLDIR /c#d"),
            (2, "SPOOLDIR /c "),
        ] {
            assert_eq!(
                line_edit(&conf, n, new),
                Err(format!(
                    "correct {}: line {n} to read `{new}`",
                    conf.display()
                )),
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! `rsendmail-admin init [--group GROUP]`: make the system spool, or put it right.
//!
//! The one place that knows the spool's layout as an install leaves it (the Debian
//! package's `postinst` runs this command; a source install's documented steps do too):
//!
//! ```text
//! SPOOLDIR                 2770 root:GROUP   (the configuration's SPOOLDIR, or O QueueDirectory)
//! SPOOLDIR/tmp, index, corrupt, slots, waiting
//!                          2770 root:GROUP
//! SPOOLDIR/wakeup          FIFO 0620 root:GROUP (the queue runner's wake-up endpoint)
//! SPOOLDIR/qf<ID>, sf<ID>, jf<ID>, kf<ID>, and those in SPOOLDIR/hold
//!                          0660, group GROUP  (entries already there keep their owner;
//!                          one of another group is suspect: moved into corrupt/,
//!                          unless root owns it: root's processes wrote it; any other
//!                          name there, `notes.txt`, `qfjunk`, is not an entry's and
//!                          is left alone: `left alone: PATH (not a queue entry)`)
//! SPOOLDIR/index/domains   2770 root:GROUP, when it is there (the index makes it)
//! files in index/, index/domains/, slots/, waiting/
//!                          0660, group GROUP  (their owner kept)
//! ```
//!
//! GROUP is `--group`, else, by the one rule `check` applies too ([`spool_group`]), the
//! group a spool made before (its `tmp/` there) already has when that one is fit (an
//! earlier `init --group` chose it) and the spool directory is not the odd one out (the
//! installed `rsendmail` set-gid to another fit group that `tmp/` has too: then that
//! group is restored; [`kept_group`]), else the group the installed `rsendmail` is set-gid
//! to when fit, else `rsendmail`; each must be fit for a spool
//! ([`crate::spool::safety::group_unfit`]: not root's group, not a user's primary
//! group), or nothing is made (EX_CONFIG, why, and a way out). A directory above the
//! spool another user owns or may write ([`crate::spool::safety`]) is refused alike,
//! with its fix. The spool itself is made only when its parent exists: a
//! `SPOOLDIR` whose parent is missing is refused as it is everywhere else
//! ([`crate::spool::Spool::check_present`]: EX_CONFIG, its file and line, with the way
//! to correct: [`missing_parent_refusal`]), and nothing is made; nor is one at a path
//! with a `..`, `.` or empty name ([`not_plain_refusal`]). Nor is a spool made while
//! another spool holds entries (the queue runner's of this configuration, the built-in
//! one, one beside it: [`super::elsewhere`]): a typo of the configuration, most likely;
//! refused (EX_CONFIG, 78: the directory could be made, EX_CANTCREAT does not fit; the
//! configuration is what looks wrong), with the line to correct, unless told
//! `--new-spool`, when what is left there is said. Idempotent: what is already right is left alone, and each change is one line
//! on stdout (`made ...`, `repaired ...: was ...`); the last line says the spool is
//! ready. Root only (EX_NOPERM, 77, otherwise). An existing directory is taken over by
//! the rule every program that uses the spool applies ([`Spool::check_takeover`]): an
//! empty one owned by root (sticky or world-writable ones too: a file system mounted
//! 1777), given the spool's modes, or one holding nothing but a spool's own names and
//! neither sticky nor writable by everyone; `SPOOLDIR /var/spool`, `/tmp` with files in
//! it, or an old sendmail queue (`qf`/`df`/`xf`/`tf`/`Qf` files) is refused (EX_CONFIG,
//! 78, the keyword's file and line, a file found there) and left as it is.
//!
//! Nothing under the spool is followed: each sub-directory, the FIFO and each entry is
//! opened with `O_NOFOLLOW` and changed through that descriptor (`fchown`, `fchmod`),
//! so a symbolic link planted there (by a member of the spool's group) never gives
//! another file root's owner or the group. What is not what the spool keeps at a
//! sub-directory's or the FIFO's name is moved into `corrupt/`, as the programs that
//! use the spool do; an entry with more than one link is left alone and told.
//!
//! Every POSIX ACL (access and default) on the spool, its sub-directories, the FIFO and
//! the files it repairs is removed (`repaired ...: removed its ... ACL`): the modes say
//! who uses the spool. Last, the checks every program applies to the spool
//! ([`Spool::check_safe`]) are applied: `ready` is said only of a spool they take, else
//! init fails (EX_CONFIG, 78) saying why.

use super::Context;
use crate::config::{self, Config, Paths, io_text};
use crate::exit::{Fatal, Sysexit};
use crate::spool::{Named, Spool};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The group an install gives the spool when `--group` does not name one.
pub const DEFAULT_GROUP: &str = "rsendmail";

/// The spool's sub-directories, made by this command as the programs make them on first
/// use (`Spool::prepare`, `deliver/background.rs`, `rsendmail-admin hold`).
pub const SUBDIRS: [&str; 6] = [
    "corrupt",
    "tmp",
    "index",
    "slots",
    "waiting",
    crate::spool::HOLD,
];

/// The mode of the spool and its sub-directories (set-gid: what is made in them gets
/// the spool's group).
pub const DIR_MODE: u32 = 0o2770;

/// The mode of an entry's files in the system spool (`Spool::file_mode`).
pub const FILE_MODE: u32 = 0o660;

/// Run the command; its exit status.
pub fn init(ctx: &Context, group: Option<&str>, new_spool: bool) -> Sysexit {
    match run(ctx, group, new_spool) {
        Ok(()) => Sysexit::Ok,
        Err(f) => {
            log::error!("init: {}", f.message);
            crate::outln!("rsendmail-admin init: {}", f.message);
            f.code
        }
    }
}

/// The most characters of a group name `--group` takes (the longest name
/// `groupadd` makes).
const GROUP_NAME_MAX: usize = 32;

/// `--group GROUP` as a name a group may have, before anything is looked up: not empty,
/// no longer than [`GROUP_NAME_MAX`], not starting with `-` (it would be read as an
/// option), not digits alone (groupadd refuses such a name), and only letters, digits, `.`, `_`, `-` and a final `$`, so that every
/// command printed with it (`groupadd --system GROUP`) is one word. Errors: the text
/// naming the argument (EX_USAGE).
pub fn group_arg(name: &str) -> Result<(), String> {
    let fits = !name.is_empty()
        && !name.bytes().all(|b| b.is_ascii_digit())
        && name.chars().count() <= GROUP_NAME_MAX
        && !name.starts_with('-')
        && name
            .trim_end_matches('$')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fits {
        return Ok(());
    }
    Err(format!(
        "--group {}: not a group name (1 to {GROUP_NAME_MAX} letters, digits, '.', '_' \
         or '-', not starting with '-', not digits alone)",
        if name.is_empty() {
            "''".to_string()
        } else {
            crate::text::argument_shown(name)
        }
    ))
}

fn run(ctx: &Context, group: Option<&str>, new_spool: bool) -> Result<(), Fatal> {
    if let Some(g) = group {
        group_arg(g).map_err(|e| Fatal::new(Sysexit::Usage, e))?;
    }
    if !crate::privs::is_root() {
        return Err(Fatal::new(
            Sysexit::NoPerm,
            "only root may make or repair the spool",
        ));
    }
    let (cfg_path, required) = match &ctx.config {
        // Every fix init prints carries it (`safety::admin_command`), as the other
        // commands' fixes do through `app::setup`, so that it acts on this spool.
        Some(p) => {
            crate::spool::safety::set_config_given(p);
            (p.clone(), true)
        }
        None => (config::system_config(), false),
    };
    let cfg = Config::load(&cfg_path, required, &Paths::system(), &[])?;
    // The spool made and repaired is the configuration's choice: a configuration
    // someone other than root could change is refused (78), nothing made or changed,
    // as every root program refuses it.
    cfg.check_config_trust(&cfg.settings, None)?;
    // Every mode below is set explicitly; nothing is made wider than asked.
    nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
    let spool = system_spool(&cfg);
    // Never a spool in another spool's tree: nothing made, no mode of the other changed.
    if let Err(mut f) = spool.check_not_nested() {
        f.message.push_str(" (nothing was changed)");
        return Err(f);
    }
    // A spool to make while another holds entries: a typo of the configuration, most
    // likely; refused unless told `--new-spool` ([`super::elsewhere`]).
    let elsewhere = match fs::metadata(&spool.dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            super::elsewhere::spools_with_entries(&spool.dir, &cfg_path)
        }
        _ => Vec::new(),
    };
    if let (Some(first), false) = (elsewhere.first(), new_spool) {
        return Err(Fatal::new(
            Sysexit::Config,
            elsewhere_refusal(&spool, &elsewhere, &first.dir, &cfg_path),
        ));
    }
    // Not told a group: the one rule `check` applies too ([`spool_group`]).
    let (group_name, gid) = match group {
        Some(name) => {
            let gid = match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => g.gid,
                Ok(None) => {
                    return Err(Fatal::new(
                        Sysexit::Config,
                        format!(
                            "no group {name}: make it (groupadd --system {name}), or name \
                             the spool's group with --group"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(Fatal::new(
                        Sysexit::OsErr,
                        format!("cannot look up the group {name}: {e}"),
                    ));
                }
            };
            // Never a group a user acts with: the spool's rule ([`crate::spool::safety`]).
            if let Some(why) = crate::spool::safety::group_unfit(gid.as_raw()) {
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!(
                        "{} (nothing was changed)",
                        unfit_group(name, &why, false, &spool.dir)
                    ),
                ));
            }
            (name.to_string(), gid)
        }
        None => match spool_group(&spool.dir) {
            Ok(SpoolGroup::Fit { gid, name }) => (name, Gid::from_raw(gid)),
            Ok(SpoolGroup::Missing) => {
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!(
                        "no group {DEFAULT_GROUP}: make it (groupadd --system \
                         {DEFAULT_GROUP}), or name the spool's group with --group"
                    ),
                ));
            }
            Ok(SpoolGroup::Unfit(why)) => {
                return Err(Fatal::new(
                    Sysexit::Config,
                    format!(
                        "{} (nothing was changed)",
                        unfit_group(DEFAULT_GROUP, &why, true, &spool.dir)
                    ),
                ));
            }
            Err(e) => {
                return Err(Fatal::new(
                    Sysexit::OsErr,
                    format!("cannot look up the group {DEFAULT_GROUP}: {e}"),
                ));
            }
        },
    };
    // The directories above the spool: root's alone, or nothing is made or changed.
    if let Some(u) = spool.unsafe_dir().filter(|u| u.above || u.is_link()) {
        return Err(spool.refused(spool.unsafe_dir_problem(&u, Some(&u.fix(false)))));
    }
    let who = Owner {
        uid: Uid::from_raw(0),
        gid,
        group: group_name,
    };
    // The group entries rsendmail wrote there have, as `check` wants it (before this
    // run changes it): the spool's own when it was made before and its group is fit
    // ([`spool_group`]), the group of one root's alone (nothing for its group or
    // others, as the quick start makes one as root). An entry of another group than
    // that and the one given now was not written by rsendmail so: suspect, set aside.
    let was = fs::metadata(&spool.dir).ok().filter(fs::Metadata::is_dir);
    let kept = was.as_ref().and_then(|md| {
        let root_alone = md.uid() == 0 && md.mode() & 0o077 == 0;
        root_alone
            .then_some(md.gid())
            .or_else(|| kept_group(&spool.dir))
    });
    let trusted = |g: u32| g == gid.as_raw() || Some(g) == kept;
    make_spool(&spool, &who)?;
    for name in SUBDIRS {
        // What is not a directory at a sub-directory's name (a symbolic link planted by
        // a member of the group) is moved into `corrupt/`, never followed, and said;
        // `corrupt` comes first, so it is a directory by then (one that is not is
        // refused by `Spool::subdir`).
        if name != "corrupt"
            && let Ok(md) = fs::symlink_metadata(spool.dir.join(name))
            && !md.is_dir()
        {
            let found = if md.file_type().is_symlink() {
                "a symbolic link"
            } else if md.is_file() {
                "a regular file"
            } else {
                "not a directory"
            };
            move_aside(&spool, &spool.dir.join(name), found)?;
        }
        let made = fs::symlink_metadata(spool.dir.join(name)).is_err();
        let path = spool.subdir_to_repair(name)?;
        if made {
            crate::outln!("made {}", path.display());
        }
        let f = crate::spool::open_dir(&path).map_err(|e| cant("cannot open", &path, &e))?;
        repair(&path, &f, &who, DIR_MODE, made)?;
    }
    // index/domains, which every rebuild of the index makes anew: put right when it
    // is there (what is not a directory at its name is moved aside).
    let domains = spool.dir.join("index/domains");
    if let Ok(md) = fs::symlink_metadata(&domains) {
        if md.is_dir() {
            let f =
                crate::spool::open_dir(&domains).map_err(|e| cant("cannot open", &domains, &e))?;
            repair(&domains, &f, &who, DIR_MODE, false)?;
        } else {
            let found = if md.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            };
            move_aside(&spool, &domains, found)?;
        }
    }
    wakeup(&spool, &who)?;
    let mut suspect = entries(&spool, &spool.dir, &who, Some(&trusted))?;
    // The entries put on hold, as those queued.
    let held = spool.dir.join(crate::spool::HOLD);
    if crate::spool::open_dir(&held).is_ok() {
        suspect += entries(&spool, &held, &who, Some(&trusted))?;
    }
    if suspect > 0 {
        crate::outln!(
            "{suspect} suspect queue file(s) set aside in {}: not of the spool's group, \
             rsendmail did not write them so (written while the spool's group was wrong, \
             or by another program); nothing there is run: examine them, and put back \
             only those you trust (chgrp {}, chmod 660)",
            spool.dir.join("corrupt").display(),
            who.group
        );
        log::warn!(
            "init: {suspect} suspect queue file(s) set aside in {}",
            spool.dir.join("corrupt").display()
        );
    }
    // The files submissions and runs write (the index, the background slots, the
    // waiting markers): the spool's group and 0660, as the entries.
    for sub in ["index", "index/domains", "slots", "waiting"] {
        let d = spool.dir.join(sub);
        if crate::spool::open_dir(&d).is_ok() {
            entries(&spool, &d, &who, None)?;
        }
    }
    // Ready only when every program would use it: their own checks, once more.
    if let Err(f) = spool.check_safe() {
        return Err(Fatal::new(
            Sysexit::Config,
            format!(
                "the spool is not ready: every program that uses it would refuse it: {}",
                f.message
            ),
        ));
    }
    // Made all the same (--new-spool): what this spool's programs will not see.
    for e in &elsewhere {
        crate::outln!(
            "left {} as it is: it holds {} {}, which no program using {} sees",
            e.dir.display(),
            e.entries,
            if e.entries == 1 { "entry" } else { "entries" },
            spool.dir.display()
        );
    }
    crate::outln!(
        "{}: ready ({:o} root:{})",
        spool.dir.display(),
        DIR_MODE,
        who.group
    );
    log::info!(
        "init: {} ready ({:o} root:{})",
        spool.dir.display(),
        DIR_MODE,
        who.group
    );
    Ok(())
}

/// The group a system spool gets when `--group` names none: the one rule of `init` (the
/// group it gives) and `check` (the group it wants, its fixes and their words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolGroup {
    /// A group fit for a spool ([`crate::spool::safety::group_unfit`]), in this order:
    /// the one a spool made before (its `tmp/` there) already has (an earlier
    /// `init --group` chose it) unless it alone was regrouped ([`kept_group`]), else the group the installed `rsendmail` is set-gid
    /// to ([`binary_group`]), else [`DEFAULT_GROUP`].
    Fit { gid: u32, name: String },
    /// None of those is fit, and there is no group [`DEFAULT_GROUP`]: making it
    /// (`groupadd --system rsendmail`) is the way.
    Missing,
    /// None of those is fit, and [`DEFAULT_GROUP`] is there but unfit: why.
    Unfit(String),
}

/// The group the system spool at `dir` keeps, if any: its own, when it was made before
/// (its `tmp/` there; an empty directory taken over gets the install's group, not
/// whatever group it was made with) and that group is fit, except when the installed
/// `rsendmail` is set-gid to another fit group ([`binary_group`]) that `tmp/` has too:
/// then the binary and the spool's insides agree, and the spool directory alone was
/// regrouped (a `chgrp` by mistake). Its group is then the one to put right, never the
/// one to give the install, and what has it is not trusted for being in the spool.
pub fn kept_group(dir: &Path) -> Option<u32> {
    let md = fs::metadata(dir)
        .ok()
        .filter(|md| md.is_dir() && dir.join("tmp").is_dir())?;
    let gid = md.gid();
    if crate::spool::safety::group_unfit(gid).is_some() {
        return None;
    }
    let odd_one_out = binary_group().is_some_and(|b| {
        b != gid && fs::symlink_metadata(dir.join("tmp")).is_ok_and(|t| t.is_dir() && t.gid() == b)
    });
    (!odd_one_out).then_some(gid)
}

/// The group for the system spool at `dir` when none is named ([`SpoolGroup`]).
pub fn spool_group(dir: &Path) -> nix::Result<SpoolGroup> {
    let unfit = crate::spool::safety::group_unfit;
    if let Some(gid) = kept_group(dir).or_else(binary_group) {
        return Ok(SpoolGroup::Fit {
            gid,
            name: group_name(gid),
        });
    }
    Ok(match nix::unistd::Group::from_name(DEFAULT_GROUP)? {
        None => SpoolGroup::Missing,
        Some(g) => match unfit(g.gid.as_raw()) {
            None => SpoolGroup::Fit {
                gid: g.gid.as_raw(),
                name: g.name,
            },
            Some(why) => SpoolGroup::Unfit(why),
        },
    })
}

/// The group of the installed `rsendmail` ([`rsendmail_path`]) when it is set-gid to one
/// fit for a spool.
pub fn binary_group() -> Option<u32> {
    fs::metadata(rsendmail_path())
        .ok()
        .filter(|md| md.mode() & 0o2000 != 0)
        .map(|md| md.gid())
        .filter(|&g| crate::spool::safety::group_unfit(g).is_none())
}

/// The installed `rsendmail`: beside this program (as the deliverer is found), else
/// `/usr/sbin/rsendmail`.
pub fn rsendmail_path() -> PathBuf {
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

/// A group to name with `--group` for the spool at `dir` instead of the unfit `refused`:
/// the one [`spool_group`] chooses, when it is not `refused`; else [`DEFAULT_GROUP`] or
/// `rsendmail-spool`, whichever is not `refused` and is fit or not there yet. `Some((group,
/// make))`: `make` when it must be made first (`groupadd --system GROUP`); `None` when
/// the administrator must choose one.
pub fn other_group(refused: &str, dir: &Path) -> Option<(String, bool)> {
    match spool_group(dir) {
        Ok(SpoolGroup::Fit { name, .. }) if name != refused => return Some((name, false)),
        Ok(SpoolGroup::Missing) if refused != DEFAULT_GROUP => {
            return Some((DEFAULT_GROUP.to_string(), true));
        }
        _ => {}
    }
    [DEFAULT_GROUP, "rsendmail-spool"]
        .into_iter()
        .filter(|c| *c != refused)
        .find_map(|c| match nix::unistd::Group::from_name(c) {
            Ok(Some(g)) if crate::spool::safety::group_unfit(g.gid.as_raw()).is_none() => {
                Some((c.to_string(), false))
            }
            Ok(None) => Some((c.to_string(), true)),
            _ => None,
        })
}

/// Why init refuses the group `name` (`why`: [`crate::spool::safety::group_unfit`])
/// for the spool at `dir`, and the way out ([`other_group`]); `default` when it is
/// [`DEFAULT_GROUP`] chosen by [`spool_group`], not one `--group` named.
pub fn unfit_group(name: &str, why: &str, default: bool, dir: &Path) -> String {
    let whose = if default {
        format!("the group {name}, which the spool gets when --group names no other,")
    } else {
        format!("the group {name}")
    };
    let risk = if why == "root's group" {
        "`rsendmail` would be set-gid root"
    } else {
        "every process of that user could read, change or remove every message queued"
    };
    let other = other_group(name, dir).map(|(c, make)| {
        if make {
            format!(
                "groupadd --system {c}, then {}",
                crate::spool::safety::admin_command(&format!("init --group {c}"))
            )
        } else {
            crate::spool::safety::admin_command(&format!("init --group {c}"))
        }
    });
    let fit = "a group that is neither root's nor any user's primary group (its \
               members, if any, are the spool's administrators)";
    // The user as `group_unfit` names her (`the user "alice"`), her name for usermod.
    let user = why
        .strip_prefix("the primary group of the user \"")
        .and_then(|u| u.strip_suffix('"'));
    let the = |u: &str| crate::spool::safety::the_user(u);
    let out = match (user, other) {
        (Some(user), Some(other)) if default => format!(
            "give {} a primary group of its own (usermod -g GROUP {user}), or name \
             {fit} with --group ({other})",
            the(user)
        ),
        (Some(user), None) if default => format!(
            "give {} a primary group of its own (usermod -g GROUP {user}), or name \
             {fit} with --group",
            the(user)
        ),
        (_, Some(other)) => format!("name {fit} ({other})"),
        (_, None) => format!("name {fit} with --group"),
    };
    format!("{whose} is {why}: {risk}; {out}")
}

/// Why init makes no spool at the missing `spool` while `found` (another spool, `to`
/// the first) holds entries, and the ways out: the configuration line corrected
/// ([`super::elsewhere::config_fix`]), or `--new-spool` (after the parent, when it is
/// missing too).
fn elsewhere_refusal(
    spool: &Spool,
    found: &[super::elsewhere::Elsewhere],
    to: &Path,
    config: &Path,
) -> String {
    let problem = super::elsewhere::problem(spool, found, config);
    let correct = match super::elsewhere::config_fix(spool, to, config) {
        Ok(cmd) => format!("correct the configuration ({cmd})"),
        Err(words) => words,
    };
    let parent = spool
        .dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && fs::metadata(p).is_err())
        .map(|p| {
            format!(
                "make its parent first (install -d -o root -m 755 {}), then ",
                crate::spool::safety::shell_word(p)
            )
        })
        .unwrap_or_default();
    format!(
        "{problem}; {correct}, or, to make a new, empty spool at {} all the same, \
         {parent}run init --new-spool",
        spool.dir.display()
    )
}

/// The line to correct for a spool init does not make: `correct FILE: line N`, or the
/// keyword when no line names it.
fn correct_line(spool: &Spool) -> String {
    match &spool.named {
        Named::Config { at, .. } if !at.is_empty() => format!("correct {at}"),
        Named::CommandLine => "correct the command line's queue directory".to_string(),
        _ => "name another directory in SPOOLDIR".to_string(),
    }
}

/// The missing parent of a spool, when the administrator may be told to make it: its
/// own parent is there (`install -d` makes no other directory) and it is rsendmail's by
/// the one rule of the places ([`crate::spool::safety::not_rsendmails_own`]: named for
/// rsendmail, or in rsendmail's places). `Err(why)` when it is missing and may not be
/// (`/tmp/x/sub` of a typo, another program's place); `Ok(None)` when it is there.
pub fn parent_to_make(spool: &Spool) -> Result<Option<PathBuf>, String> {
    let Some(parent) = spool
        .dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && fs::metadata(p).is_err())
    else {
        return Ok(None);
    };
    if parent.parent().is_some_and(|g| fs::metadata(g).is_err()) {
        return Err(format!(
            "the directories above {} are missing too",
            parent.display()
        ));
    }
    match crate::spool::safety::not_rsendmails_own(parent) {
        Some(why) => Err(format!(
            "{} is not rsendmail's to make: {why}",
            parent.display()
        )),
        None => Ok(Some(parent.to_path_buf())),
    }
}

/// The refusal of a spool whose parent is missing, or None when its parent is there:
/// [`Spool::check_present`]'s words (the keyword's file and line, a typo?) and the way
/// out: correct the path, or, when it is right and the parent is rsendmail's to make
/// ([`parent_to_make`]), make it first (`install -d -o root -m 755 PARENT`) and run init
/// again; else only the line to correct, and why the parent is not made. `check` says
/// the same.
pub fn missing_parent_refusal(spool: &Spool) -> Option<String> {
    let parent = parent_to_make(spool);
    if matches!(parent, Ok(None)) {
        return None;
    }
    let said = match spool.check_present() {
        Err(f) => f.message,
        Ok(()) => format!("{}: no such directory, nor its parent", spool.dir.display()),
    };
    Some(match parent {
        Ok(p) => format!(
            "{said}; correct the path, or, if it is right, make its parent first (install -d \
             -o root -m 755 {}) and run init again",
            p.as_deref()
                .map(crate::spool::safety::shell_word)
                .unwrap_or_default()
        ),
        Err(why) => format!(
            "{said}; {} (a spool is made only in a directory that is there, and {why})",
            correct_line(spool)
        ),
    })
}

/// The refusal of a spool to be made at a path not written plainly (`why`:
/// [`crate::spool::safety::not_plain`]): the line to correct, nothing made. `check`
/// says the same.
pub fn not_plain_refusal(spool: &Spool, why: &str) -> String {
    let named = match &spool.named {
        Named::Config { at, keyword } => {
            format!("{at}: {keyword} {}", spool.dir.display())
        }
        _ => format!("the queue directory {}", spool.dir.display()),
    };
    format!(
        "{named}: no such directory, and none is made there: the path is not written \
         plainly ({why}), so the directory it names is not the one the line reads; {} \
         with the directory itself (nothing was changed)",
        correct_line(spool)
    )
}

/// The spool a configuration names, as `app::setup` finds it for root (no command-line
/// options here): `O QueueDirectory`, else `SPOOLDIR`, else the built-in
/// `/var/spool/rsendmail`; named for the messages of [`Spool::check_present`].
pub fn system_spool(cfg: &Config) -> Spool {
    let dir = cfg
        .settings
        .queue_directory
        .clone()
        .unwrap_or_else(|| cfg.spool_dir.clone());
    let named = crate::app::configured_spool(cfg).unwrap_or(Named::SystemDefault);
    Spool::new(dir, false, named)
}

/// Who the spool's directories and FIFO belong to.
struct Owner {
    uid: Uid,
    gid: Gid,
    group: String,
}

fn cant(what: &str, path: &Path, e: &io::Error) -> Fatal {
    Fatal::io(e, format!("{what} {}: {}", path.display(), io_text(e)))
}

/// The spool directory itself: made (mode 0700 until its owner and group are set) when
/// its parent exists; the configured path may be a symbolic link (to a spool on another
/// file system), which is followed, as everywhere else.
fn make_spool(spool: &Spool, who: &Owner) -> Result<(), Fatal> {
    let dir = &spool.dir;
    let mut made = false;
    match fs::metadata(dir) {
        // Only an empty directory (given the spool's modes below) or one that is a
        // spool is taken over; never a shared or foreign one, nor an old sendmail queue.
        Ok(md) if md.is_dir() => {
            spool.check_takeover()?;
        }
        Ok(_) => {
            // The configuration's file and line, and what is there.
            spool.check_present()?;
            return Err(Fatal::new(
                Sysexit::Config,
                format!("{} is there but is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Made, as an empty directory is taken over, in the system's places only in
            // one of rsendmail's (`/var/spool/rsendmail*`, `/var/lib/rsendmail*`), links
            // and `..` resolved: never under `/etc/sudoers.d`, a unit's directory,
            // `/root`, `/proc`, nor at a typo's `/var/spoool/rsendmail`, parent there or
            // not; outside them (`/data/queue`, a file system of its own) anywhere.
            if let Some(why) = crate::spool::safety::system_directory(dir) {
                return Err(not_a_place(spool, &why));
            }
            // Nor at a path not written plainly (`..`, `.`, `//`): not the directory
            // its line reads.
            if let Some(why) = crate::spool::safety::not_plain(dir) {
                return Err(Fatal::new(Sysexit::Config, not_plain_refusal(spool, why)));
            }
            // The typo rule: refused, with the keyword's file and line, and the way
            // out `check` gives too.
            if let Some(refusal) = missing_parent_refusal(spool) {
                return Err(Fatal::new(Sysexit::Config, refusal));
            }
            let mut b = fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir).map_err(|e| cant("cannot create", dir, &e))?;
            crate::outln!("made {}", dir.display());
            made = true;
        }
        Err(e) => return Err(cant("cannot use", dir, &e)),
    }
    let f = File::open(dir).map_err(|e| cant("cannot open", dir, &e))?;
    repair(dir, &f, who, DIR_MODE, made)
}

/// The refusal of a spool to be made at a path that is not rsendmail's (`why`:
/// [`crate::spool::safety::system_directory`]): EX_CONFIG, the configuration's line
/// to correct, nothing made.
fn not_a_place(spool: &Spool, why: &str) -> Fatal {
    let correct = match &spool.named {
        Named::Config { at, .. } => format!("correct {at}"),
        _ => "name another directory in SPOOLDIR".to_string(),
    };
    // Its parent missing too: the typo rule's words first ([`Spool::check_present`]).
    let named = match (&spool.named, spool.check_present()) {
        (_, Err(f)) if spool.dir.parent().is_some_and(|p| fs::metadata(p).is_err()) => f.message,
        (Named::Config { at, keyword }, _) => {
            format!("{at}: {keyword} {}: no such directory", spool.dir.display())
        }
        _ => format!("the queue directory {} does not exist", spool.dir.display()),
    };
    Fatal::new(
        Sysexit::Config,
        format!(
            "{named}; not made there: it is not rsendmail's ({why}); in the system's \
             places init makes a spool only in rsendmail's (/var/spool/rsendmail, a name \
             beginning with rsendmail in /var/spool or /var/lib), elsewhere in any \
             directory; {correct} (nothing was changed)"
        ),
    )
}

/// Give the open file `f` (at `path`) the owner, group and mode wanted, telling what it
/// was when that changes. Owner and group first: `fchown` clears the set-gid bit.
fn repair(path: &Path, f: &File, who: &Owner, mode: u32, made: bool) -> Result<(), Fatal> {
    strip_acls(path, f)?;
    let md = f.metadata().map_err(|e| cant("cannot stat", path, &e))?;
    let was = (md.uid(), md.gid(), md.mode() & 0o7777);
    if was == (who.uid.as_raw(), who.gid.as_raw(), mode) {
        return Ok(());
    }
    nix::unistd::fchown(f.as_fd(), Some(who.uid), Some(who.gid))
        .map_err(|e| cant("cannot change the owner of", path, &io::Error::from(e)))?;
    nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| cant("cannot change the mode of", path, &io::Error::from(e)))?;
    if !made {
        crate::outln!(
            "repaired {}: {:o} root:{} (was {:o} {}:{})",
            path.display(),
            mode,
            who.group,
            was.2,
            user_name(was.0),
            group_name(was.1)
        );
    }
    Ok(())
}

/// Remove the POSIX ACLs (access and default) of the open file `f` (at `path`), telling
/// it when there was one: the spool's modes say who may use it, nobody else
/// ([`crate::spool::safety`]). Without its access ACL, a file's group bits (the ACL's
/// mask until then) are its group's.
fn strip_acls(path: &Path, f: &File) -> Result<(), Fatal> {
    use std::os::fd::AsRawFd;
    let mut removed = Vec::new();
    for (name, what) in [
        (crate::spool::safety::ACL_ACCESS, "access"),
        (crate::spool::safety::ACL_DEFAULT, "default"),
    ] {
        let c = std::ffi::CString::new(name)
            .map_err(|_| Fatal::new(Sysexit::Software, format!("bad attribute name {name}")))?;
        // Only one that is there: removing a default ACL a file cannot have "works".
        // SAFETY: a NUL-terminated name, a descriptor open for the call's length, no
        // buffer (its size asked).
        let there = unsafe { libc::fgetxattr(f.as_raw_fd(), c.as_ptr(), std::ptr::null_mut(), 0) };
        if there < 0 {
            continue;
        }
        // SAFETY: a NUL-terminated name and a descriptor open for the call's length.
        let r = unsafe { libc::fremovexattr(f.as_raw_fd(), c.as_ptr()) };
        if r == 0 {
            removed.push(what);
            continue;
        }
        let e = io::Error::last_os_error();
        // No such ACL, or a file system without them: nothing to remove.
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)
        ) {
            return Err(cant("cannot remove the ACL of", path, &e));
        }
    }
    if !removed.is_empty() {
        crate::outln!(
            "repaired {}: removed its {} ACL",
            path.display(),
            removed.join(" and ")
        );
    }
    Ok(())
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// Move what is at `path` into `corrupt/`, as the spool's users do with what is not
/// theirs (`Spool::subdir`, the runner's `Listener::open`).
fn move_aside(spool: &Spool, path: &Path, found: &str) -> Result<(), Fatal> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = format!("{name}.{}.{}", crate::clock::now(), std::process::id());
    let corrupt = spool.dir.join("corrupt");
    // A name of its own there: never over what was set aside before (an entry of the
    // same name from `hold/`).
    let mut aside = corrupt.join(&stem);
    let mut n = 1;
    while fs::symlink_metadata(&aside).is_ok() {
        aside = corrupt.join(format!("{stem}.{n}"));
        n += 1;
    }
    fs::rename(path, &aside).map_err(|e| cant("cannot move aside", path, &e))?;
    crate::outln!("moved {} ({found}) to {}", path.display(), aside.display());
    Ok(())
}

/// The wake-up FIFO: made when missing (as the queue runner makes it), repaired when it
/// is there; anything else at its name is moved aside.
fn wakeup(spool: &Spool, who: &Owner) -> Result<(), Fatal> {
    let path = crate::spool::wake::path(&spool.dir);
    let mode = crate::spool::wake::MODE;
    let mut made = true;
    match fs::symlink_metadata(&path) {
        Ok(md) if md.file_type().is_fifo() => made = false,
        Ok(md) => {
            let found = if md.file_type().is_symlink() {
                "a symbolic link"
            } else if md.is_dir() {
                "a directory"
            } else if md.is_file() {
                "a regular file"
            } else {
                "not a FIFO"
            };
            move_aside(spool, &path, found)?;
            make_fifo(&path, mode)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => make_fifo(&path, mode)?,
        Err(e) => return Err(cant("cannot use", &path, &e)),
    }
    // Read and write, without blocking: opening a FIFO so never waits for a peer.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| cant("cannot open", &path, &e))?;
    let md = f.metadata().map_err(|e| cant("cannot stat", &path, &e))?;
    if !md.file_type().is_fifo() {
        return Err(Fatal::new(
            Sysexit::TempFail,
            format!("{} changed under us: not a FIFO", path.display()),
        ));
    }
    repair(&path, &f, who, mode, made)
}

fn make_fifo(path: &Path, mode: u32) -> Result<(), Fatal> {
    nix::sys::stat::mknod(path, SFlag::S_IFIFO, Mode::from_bits_truncate(mode), 0)
        .map_err(|e| cant("cannot make", path, &io::Error::from(e)))?;
    crate::outln!("made {}", path.display());
    Ok(())
}

/// The entries already in the spool directory `dir` or `hold/` (`qf<ID>`, `sf<ID>`,
/// `jf<ID>`, `kf<ID>`: [`crate::spool::entry_file`]; an upgrade, a spool restored by
/// hand; `trusted` says which groups they may have; any other name there, `notes.txt` or
/// `qfjunk`, is not rsendmail's: left alone, one line each), or
/// without `trusted` every file in `dir` (a sub-directory whose files submissions
/// write): the spool's group and mode 0660, their owner kept. An entry of a group
/// `trusted` does not take is suspect: moved into `corrupt/` and said, never adopted;
/// unless root owns it (root's processes wrote it, with the group the spool had then).
/// Only regular files with one link are changed. The number of suspect entries.
fn entries(
    spool: &Spool,
    dir: &Path,
    who: &Owner,
    trusted: Option<&dyn Fn(u32) -> bool>,
) -> Result<usize, Fatal> {
    let only_entries = trusted.is_some();
    let list = fs::read_dir(dir).map_err(|e| cant("cannot read", dir, &e))?;
    let mut linked: Vec<PathBuf> = Vec::new();
    // Names that are no entry's file (`notes.txt`, `qfjunk`): not rsendmail's, never
    // changed, said (shown as text from outside is shown: a name is anyone's choice).
    let mut strays: Vec<String> = Vec::new();
    let mut suspect = 0;
    for ent in list.flatten() {
        let name = ent.file_name();
        if only_entries {
            let text = name.to_str();
            if text.and_then(crate::spool::entry_file).is_none() {
                // At the spool's top, its own sub-directories and FIFO, done above.
                if dir != spool.dir.as_path() || !text.is_some_and(crate::spool::is_spool_name) {
                    strays.push(crate::text::os_argument_shown(name.as_encoded_bytes()));
                }
                continue;
            }
        }
        if !only_entries && ent.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = ent.path();
        let f = match crate::spool::open_safely(
            &path,
            OpenOptions::new().read(true),
            crate::spool::Kind::File,
        ) {
            Ok(f) => f,
            Err(e) if crate::spool::is_unsafe(&e) => {
                linked.push(path);
                continue;
            }
            Err(_) => continue,
        };
        let Ok(md) = f.metadata() else { continue };
        // An entry of a group rsendmail does not write them with: never given the
        // spool's group (it would look like an entry root runs); moved into
        // `corrupt/`, where nothing is run, as `check`'s repair moves it. Except one
        // root owns: root's processes wrote it (no one else can make a file root's),
        // with the group the spool had then (a queue runner that went on after a
        // `chgrp -R` by mistake): it is given the spool's group.
        if let Some(trusted) = trusted
            && !trusted(md.gid())
            && md.uid() != 0
        {
            drop(f);
            move_aside(
                spool,
                &path,
                &format!(
                    "suspect: of the group {}, not the spool's",
                    group_name(md.gid())
                ),
            )?;
            suspect += 1;
            continue;
        }
        strip_acls(&path, &f)?;
        if md.gid() == who.gid.as_raw() && md.mode() & 0o7777 == FILE_MODE {
            continue;
        }
        nix::unistd::fchown(f.as_fd(), None, Some(who.gid))
            .map_err(|e| cant("cannot change the group of", &path, &io::Error::from(e)))?;
        nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate(FILE_MODE))
            .map_err(|e| cant("cannot change the mode of", &path, &io::Error::from(e)))?;
        crate::outln!(
            "repaired {}: {:o} group {} (was {:o} group {})",
            path.display(),
            FILE_MODE,
            who.group,
            md.mode() & 0o7777,
            group_name(md.gid())
        );
    }
    for p in linked {
        crate::outln!(
            "left {} as it is: not a regular file with one link",
            p.display()
        );
    }
    strays.sort();
    for name in strays {
        crate::outln!("left alone: {}/{name} (not a queue entry)", dir.display());
    }
    Ok(suspect)
}

//! Which directory is a safe spool: the one rule every program that uses the spool
//! applies (submissions, `-bs`, `-bd`, queue runs, `rsendmail-admin`'s queue commands,
//! `init` and `check`).
//!
//! - The spool directory belongs to root; a user's own (private) spool to root or to
//!   that user. Whoever owns it can change its mode, read every message queued in it
//!   and replace any entry.
//! - Every directory above it that its path meets as the kernel resolves it ([`Walk`]:
//!   each directory traversed, also through symbolic links and their targets) belongs to root (a private spool's: root or that user) and is writable by
//!   nobody else: neither by everyone nor by its group (root's neither: a POSIX ACL
//!   that lets a user write shows only as the group bits; a user's own spool: her own
//!   group may), unless it is
//!   sticky (a sticky directory lets a user replace only what she owns, and the next
//!   directory down must be root's). Whoever may write a directory above the spool can
//!   rename the spool away and put a directory of her own in its place.
//! - Its group, the one `rsendmail` is set-gid to, is never root's group nor a user's
//!   primary group ([`group_unfit`]): `rsendmail-admin init` refuses to give it one and
//!   `check` fails one, and the programs that use the spool refuse one
//!   ([`super::Spool::unfit_group`]). Who is in the group is the administrator's
//!   choice: its members are the spool's administrators.
//! - Every symbolic link its path meets (the spool itself, a directory above it, a
//!   link in another link's target) belongs to root (a private spool's: root or that
//!   user): in a sticky directory the link's owner may replace it, and so point the
//!   spool somewhere else.
//! - Nothing in it or its sub-directories is writable by everyone
//!   ([`super::Spool::world_writable`]), nor, in the system spool, readable, writable or
//!   enterable by a user or group its POSIX access ACL names, the mask applied, nor
//!   given anything by a named entry of its default ACL, which what is made there
//!   inherits ([`super::Spool::acl_writable`]). `rsendmail-admin init` removes them.
//!
//! A spool that breaks the rule is refused with EX_CONFIG (78) before anything is made
//! or written in it ([`super::Spool::check_safe`]); `rsendmail-admin check` names the
//! same directory with a fix.

use super::Spool;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A directory that makes the spool unsafe, and why.
#[derive(Debug)]
pub struct UnsafeDir {
    /// The directory: the spool itself or one above it.
    pub dir: PathBuf,
    /// Its metadata, as found.
    pub md: fs::Metadata,
    /// Whether it is above the spool (else it is the spool itself).
    pub above: bool,
    /// Why, in a few words (`owned by the user "bob"`, `writable by its group staff`).
    pub why: String,
    /// The symbolic link through which it was reached, when its path as configured
    /// leads through one.
    pub via: Option<PathBuf>,
}

impl UnsafeDir {
    /// The commands (shell words) that put it right, run as root: root its owner, and
    /// (a directory above the spool) nobody else writing it. None for one in the
    /// home of the user who owns it ([`UnsafeDir::users_home`]): her tree is hers to
    /// change, so the spool belongs elsewhere; never a `chown root` of her directories
    /// (her home taken from her, or, swapped for a link between the check and the fix,
    /// whatever it points at). None either for a directory above the system spool that
    /// is not rsendmail's ([`UnsafeDir::not_rsendmails`]).
    pub fn fix(&self, private: bool) -> Vec<String> {
        if self.users_home().is_some() || self.not_rsendmails(private).is_some() {
            return Vec::new();
        }
        let me = nix::unistd::geteuid().as_raw();
        let p = shell_word(&self.dir);
        let mut cmds = Vec::new();
        if !(self.md.uid() == 0 || (private && self.md.uid() == me)) {
            // The link itself, never what it points to.
            let h = if self.is_link() { "-h " } else { "" };
            cmds.push(format!("chown {h}root {p}"));
        }
        if self.above
            && !self.is_link()
            && self.md.mode() & 0o1000 == 0
            && self.md.mode() & 0o022 != 0
        {
            cmds.push(format!("chmod go-w {p}"));
        }
        cmds
    }
}

impl UnsafeDir {
    /// Why this directory above the system spool is not rsendmail's to change
    /// ([`not_rsendmails_own`]: neither it nor its parent named for rsendmail, nor in one
    /// of rsendmail's places), or None: a symbolic link (its `chown -h` changes the link
    /// alone), the spool itself, or a user's own spool. Such a directory may be another
    /// program's, a user's (`/data/alice`) or the system's (`/var/spool`): a `chown root`
    /// or `chmod go-w` of it could take it from them, so no command is given, only what
    /// to do (as for the directory of the deliverer: no fix touches what is not
    /// rsendmail's).
    pub fn not_rsendmails(&self, private: bool) -> Option<String> {
        if private || !self.above || self.is_link() {
            return None;
        }
        not_rsendmails_own(&self.dir)
    }

    /// The home directory of the user who owns it, when it lies in that home (or is
    /// it), as found or as the link it was reached through names it.
    pub fn users_home(&self) -> Option<PathBuf> {
        let uid = self.md.uid();
        if uid == 0 {
            return None;
        }
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()?;
        let home = user.dir;
        let within = |p: &Path| {
            p.starts_with(&home)
                || fs::canonicalize(p)
                    .is_ok_and(|r| fs::canonicalize(&home).is_ok_and(|h| r.starts_with(h)))
        };
        (home.is_absolute() && home != Path::new("/") && within(&self.dir)).then_some(home)
    }

    /// Whether it is a symbolic link on the spool's path (the spool itself or above it).
    pub fn is_link(&self) -> bool {
        self.md.file_type().is_symlink()
    }
}

/// The configuration file this process was given with `-C` (set once by the set-up:
/// [`crate::app::setup`]), which every printed `rsendmail-admin` command carries.
static CONFIG_GIVEN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Record the `-C FILE` this process was given ([`admin_command`]).
pub fn set_config_given(p: &Path) {
    let _ = CONFIG_GIVEN.set(p.to_path_buf());
}

/// `rsendmail-admin SUBCOMMAND` as a fix prints it to be pasted: with `-C FILE`
/// (shell-quoted) when this process was given one, so that it acts on this spool, not
/// the system's.
pub fn admin_command(subcommand: &str) -> String {
    match CONFIG_GIVEN.get() {
        Some(c) => format!("rsendmail-admin -C {} {subcommand}", shell_word(c)),
        None => format!("rsendmail-admin {subcommand}"),
    }
}

/// Why the daemon may not write its `O PidFile=` at `path`, which it replaces and
/// removes when it stops: something is there that is not a pid file (a pid on its first
/// line, the command line on the second, as the daemon writes it): `/etc/motd`,
/// `/etc/fstab`, a directory, a device, a symbolic link. None when nothing is there or
/// a pid file is.
pub fn pid_file_problem(path: &Path) -> Option<String> {
    let md = fs::symlink_metadata(path).ok()?;
    // A symbolic link is replaced, never written through.
    if md.file_type().is_symlink() {
        return None;
    }
    if !md.file_type().is_file() {
        return Some(format!(
            "it is {}, not a pid file",
            kind_of(&md.file_type())
        ));
    }
    let text = match crate::boundedfile::read_regular(path, true, 4096) {
        Ok((text, _)) => text,
        Err(_) => return Some("it is not a pid file (it cannot be read as one)".into()),
    };
    let mut lines = text.split(|&b| b == b'\n');
    let pid = lines.next().unwrap_or_default();
    let is_pid = !pid.is_empty() && pid.len() <= 10 && pid.iter().all(u8::is_ascii_digit);
    let rest_ok = lines.filter(|l| !l.is_empty()).count() <= 1;
    (!is_pid || !rest_ok).then(|| {
        "it holds what is not a pid file (a process id on the first line, the command \
         line on the second)"
            .to_string()
    })
}

/// Why the daemon may not put its `O PidFile=` at `path` (a place rule, whatever is
/// there), or None. The one rule the daemon, the queue runner and `rsendmail-admin check`
/// apply: with every symbolic link on its directories resolved (each root's or this
/// process's user's) and `..` taken away, and a link at the end the name itself (it is
/// replaced, never written through), a pid file may be where sendmail's configurations
/// put one (a direct child of `/run` or `/var/run` whose name ends `.pid`:
/// `/run/sendmail.pid`), in one of rsendmail's places ([`rsendmails_place`]:
/// `/etc/rsendmail`, `/run/rsendmail.pid`, `/var/spool/rsendmail/...`), or outside the
/// system's places ([`system_place`]: a directory of a user's own, or her home for her
/// own daemon). Never elsewhere in the system's places, whatever its name:
/// `/etc/profile.d/rsendmail.sh`, `/etc/cron.d/rsendmail`, `/etc/rsendmail.pid`,
/// `/usr/lib/systemd/system/rsendmail.service`, `/var/log/../../etc/cron.d/x.pid`.
pub fn pid_file_place_problem(path: &Path) -> Option<String> {
    if let Some(why) = foreign_link(path) {
        return Some(format!("it is {why}"));
    }
    let last_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let it_is = |what: &str| {
        Some(if what.is_empty() {
            "it is a device or the kernel's".to_string()
        } else {
            format!("it is {what}")
        })
    };
    if let Some(what) = system_path(path).filter(|_| !last_link) {
        return it_is(what);
    }
    let Some(real) = resolved_path(path, false) else {
        return Some(
            "it cannot be resolved to a file in a directory that is there (a directory \
             missing, a name of `..`, a loop of symbolic links)"
                .to_string(),
        );
    };
    if let Some(what) = system_path(&real) {
        return it_is(what);
    }
    if let Some(why) = pid_dir_risk(path) {
        return Some(why);
    }
    let in_run = real
        .parent()
        .is_some_and(|d| d == Path::new("/run") || d == Path::new("/var/run"));
    let named_pid = real.file_name().is_some_and(|n| {
        let n = n.as_encoded_bytes();
        n.len() > ".pid".len() && n.ends_with(b".pid") && !n.starts_with(b".")
    });
    if (in_run && named_pid) || rsendmails_place(&real) {
        return None;
    }
    let via = if real != path {
        format!(" (which is {})", real.display())
    } else {
        String::new()
    };
    system_place(&real)
        .filter(|_| !in_own_home(&real))
        .map(|place| {
            format!(
                "it{via} is in {place}, where a pid file goes only in /run or /var/run \
                 (NAME.pid, as sendmail's configurations put it) or in rsendmail's places \
                 (/etc/rsendmail, and what is named for rsendmail in /var/log, /run, \
                 /var/spool and /var/lib): it may be another program's or the system's"
            )
        })
}

/// Why the directory `path` is put in could be changed by someone this process does not
/// trust ([`file_risks`]: for root's daemon, anyone but root), or None. Every directory
/// met on the way to it, each link followed, is looked at as it is now: one that user
/// could write (not sticky) or owns, she could swap for a symbolic link to any directory
/// between this look and the write, and the pid file would be written, and removed at the
/// stop, there (`/tmp/hers/rsendmail.pid` made a link to `/etc/cron.d`). A root link
/// (`/var/run -> /run`) and a sticky directory of root's (`/tmp`, where she replaces
/// nothing of root's) pass.
fn pid_dir_risk(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let r = file_risks(dir, &[]).into_iter().next()?;
    Some(format!(
        "it is reached through {}, {}, which could be made a symbolic link to anywhere          before it is written",
        r.path.display(),
        r.why
    ))
}

/// `reached through the symbolic link L, which the user U owns` when a symbolic link on
/// `path` (itself or a directory above it, as written) belongs to someone other than
/// root and this process's user: she chose where it points, and may change it later.
pub fn foreign_link(path: &Path) -> Option<String> {
    let me = nix::unistd::geteuid().as_raw();
    path.ancestors().find_map(|p| {
        let md = fs::symlink_metadata(p).ok()?;
        (md.file_type().is_symlink() && md.uid() != 0 && md.uid() != me).then(|| {
            format!(
                "reached through the symbolic link {}, which {} owns",
                p.display(),
                the_user_id(md.uid())
            )
        })
    })
}

/// Why `path` is not rsendmail's own, or None when it is. The one rule by which
/// `rsendmail-admin check` prints a command that changes a path (chmod, chown, chgrp,
/// mv, install, mkdir) and root's and the set-gid programs make or append to a MAILLOG.
/// Every symbolic link on it is resolved (each must be root's or this process's user's)
/// and `..` taken away first; then, inside the system's places ([`system_place`]: the
/// Filesystem Hierarchy Standard's trees, `/etc`, `/usr`, `/var`, `/run`, `/root`,
/// `/home`, `/opt`, `/srv`, ...), only rsendmail's places are its own
/// ([`rsendmails_place`]: `/etc/rsendmail` and what is below it, and in `/var/log`,
/// `/run`, `/var/spool` and `/var/lib` a file or directory whose name begins with
/// `rsendmail`, and what is below such a directory): `/etc/profile.d/rsendmail.sh`,
/// `/etc/cron.d/rsendmail`, `/usr/lib/systemd/system/rsendmail.service`,
/// `/root/rsendmail.log` are not. Outside them (a directory of a user's own install, a
/// build's scratch directory) the path's own name or its directory's must begin with
/// `rsendmail`. A well-known system path ([`system_path`]) never is. Anything that is
/// not (`/etc/fstab`, `/media`, `/usr/bin/passwd`, a link to `/etc/shadow`) is changed
/// by no fix: the check says what is wrong and what root is to do by hand.
pub fn not_rsendmails_own(path: &Path) -> Option<String> {
    own_rule(path, true)
}

/// Why the file (or, with `dir`, the directory) at `path`, whose metadata is `md`, is not
/// rsendmail's, or None when it is: a well-known system path ([`system_path`]: the
/// password file, `/`, `/tmp`, anything under `/dev`, `/proc` or `/sys`), for a file
/// anything but a regular file or one with other links (a `dir` must be a directory),
/// one a system user other than root (and this process's user) owns, else
/// [`not_rsendmails_own`]; a directory holding a spool's `tmp/` and `index/` is
/// rsendmail's whatever its name. The one rule by which `rsendmail-admin check` prints
/// no fix of a file the configuration names, and by which the deliverer refuses an
/// AUTHPATH ([`crate::config::load_auth`]): credentials are never read from a file
/// that is not rsendmail's.
pub fn not_rsendmails_file(path: &Path, md: &fs::Metadata, dir: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let kind = kind_of(&md.file_type());
    if let Some(what) = system_path(path) {
        Some(if what.is_empty() {
            kind.to_string()
        } else {
            what.to_string()
        })
    } else if dir && !md.is_dir() {
        Some(format!("{kind}, not a directory"))
    } else if !dir && !md.is_file() {
        Some(format!("{kind}, not a regular file"))
    } else if !dir && md.nlink() != 1 {
        Some("a file with other links".into())
    } else if md.uid() != 0 && md.uid() < 1000 && md.uid() != nix::unistd::geteuid().as_raw() {
        Some(format!("owned by the system user {}", user_name(md.uid())))
    } else if dir && path.join("tmp").is_dir() && path.join("index").is_dir() {
        // A spool rsendmail made already (its sub-directories), whatever its name: its
        // own checks (the spool steps) say the rest.
        None
    } else {
        not_rsendmails_own(path)
    }
}

/// [`not_rsendmails_own`] of the name `path` itself, a symbolic link there not followed:
/// for what is replaced by a rename (the daemon's pid file), never written through.
pub fn not_rsendmails_own_name(path: &Path) -> Option<String> {
    own_rule(path, false)
}

/// `path` with every symbolic link resolved and no `.` or `..` left: the kernel's answer
/// when all of it is there; else that of the nearest directory above it that is there,
/// with the names below it (a dangling link at the end followed to where it points
/// first; with `follow_last` false, a link at the end is the name itself). None when no
/// such path can be named: a `..` below what is there, a loop of links, a relative path.
pub fn resolved_path(path: &Path, follow_last: bool) -> Option<PathBuf> {
    use std::path::Component;
    if !path.is_absolute() {
        return None;
    }
    if follow_last && let Ok(r) = fs::canonicalize(path) {
        return Some(r);
    }
    let mut p = path.to_path_buf();
    let mut hops = 0;
    while follow_last && let Ok(t) = fs::read_link(&p) {
        hops += 1;
        if hops > MAX_LINKS {
            return None;
        }
        p = p.parent().map_or(t.clone(), |d| d.join(&t));
    }
    // The names below the nearest directory that is there, which no link can be.
    let mut rest = Vec::new();
    let mut at = p.as_path();
    loop {
        // Something there the kernel could not resolve (a dangling link in the middle,
        // a directory this process may not search): not named.
        if (follow_last || !rest.is_empty()) && fs::symlink_metadata(at).is_ok() {
            return None;
        }
        match at.components().next_back()? {
            Component::Normal(n) => rest.push(n.to_os_string()),
            Component::CurDir => {}
            _ => return None,
        }
        at = at.parent()?;
        if let Ok(r) = fs::canonicalize(at) {
            return Some(rest.iter().rev().fold(r, |acc, n| acc.join(n)));
        }
    }
}

fn own_rule(path: &Path, follow_last: bool) -> Option<String> {
    if let Some(why) = foreign_link(path) {
        return Some(why);
    }
    // The name itself when its link is not followed: its directory's target and its name.
    let last_link =
        !follow_last && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if let Some(what) = system_path(path).filter(|_| !last_link) {
        return Some(if what.is_empty() {
            "a device or the kernel's".to_string()
        } else {
            what.to_string()
        });
    }
    let Some(real) = resolved_path(path, !last_link) else {
        return Some(
            "it cannot be resolved to a file in a directory that is there (a directory \
             missing, a name of `..`, a loop of symbolic links)"
                .to_string(),
        );
    };
    if let Some(what) = system_path(&real) {
        return Some(if what.is_empty() {
            "a device or the kernel's".to_string()
        } else {
            what.to_string()
        });
    }
    let via = if real != path {
        format!(" (which is {})", real.display())
    } else {
        String::new()
    };
    if rsendmails_place(&real) {
        return None;
    }
    if let Some(place) = system_place(&real).filter(|_| !in_own_home(&real)) {
        return Some(format!(
            "it{via} is in {place}, outside rsendmail's places there (/etc/rsendmail, and \
             what is named for rsendmail in /var/log, /run, /var/spool and /var/lib): it may \
             be another program's or the system's"
        ));
    }
    let named = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"rsendmail"))
    };
    if named(Some(&real)) || named(real.parent()) {
        return None;
    }
    Some(format!(
        "neither it{via} nor its directory is named for rsendmail, nor is it under \
         /etc/rsendmail: it may be another program's or the system's"
    ))
}

/// The directories at the top of the file system whose trees are the system's (the
/// Filesystem Hierarchy Standard's, and those distributions add): nothing in them is
/// rsendmail's but its places there ([`rsendmails_place`]).
pub const SYSTEM_TREES: [&str; 20] = [
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/usr",
];

/// The directories of the system's where a name beginning with `rsendmail` is
/// rsendmail's: its log, its pid file, its spool, its state.
pub const RSENDMAIL_NAMED_IN: [&str; 4] = ["/var/log", "/run", "/var/spool", "/var/lib"];

/// Whether `real` (resolved: [`resolved_path`]) is in one of rsendmail's places:
/// `/etc/rsendmail` or below it, or in one of [`RSENDMAIL_NAMED_IN`] a name beginning
/// with `rsendmail` (`/var/log/rsendmail.log`, `/run/rsendmail.pid`) or below a directory
/// so named (`/var/spool/rsendmail/tmp`, `/var/log/rsendmail/mail.log`).
pub fn rsendmails_place(real: &Path) -> bool {
    if real.starts_with("/etc/rsendmail") {
        return true;
    }
    RSENDMAIL_NAMED_IN.iter().any(|d| {
        real.strip_prefix(d)
            .ok()
            .and_then(|rest| rest.components().next())
            .is_some_and(|c| c.as_os_str().as_encoded_bytes().starts_with(b"rsendmail"))
    })
}

/// The system's place `real` (resolved: [`resolved_path`]) is or lies in, in words, or
/// None: the one notion of the system's places both [`not_rsendmails_own`] and
/// [`system_directory`] apply. The top of the file system and every directory there
/// (`/media`, `/mnt`, `/srv`); the Filesystem Hierarchy Standard's directories one level
/// below `/usr`, `/usr/local` and `/var` (`/var/opt`, `/usr/local/src`); and all that
/// lies below `/var` or one of [`SYSTEM_TREES`]. A directory elsewhere (a user's own
/// install, a build's scratch directory) is in none.
pub fn system_place(real: &Path) -> Option<String> {
    let parent = real.parent();
    if parent.is_none() || parent == Some(Path::new("/")) {
        return Some("a directory at the top of the file system: the system's".to_string());
    }
    if let Some(p) = ["/usr", "/usr/local", "/var"]
        .iter()
        .find(|p| parent == Some(Path::new(p)))
    {
        return Some(format!("one of the system's directories in {p}"));
    }
    SYSTEM_TREES
        .iter()
        .chain(&["/var"])
        .find(|t| real.starts_with(t))
        .map(|t| format!("{t}, the system's"))
}

/// Whether `real` lies in the home directory of this process's user when that user is
/// not root: a user's own install keeps its files in her home, which is hers.
fn in_own_home(real: &Path) -> bool {
    let me = nix::unistd::geteuid();
    if me.is_root() {
        return false;
    }
    nix::unistd::User::from_uid(me)
        .ok()
        .flatten()
        .and_then(|u| fs::canonicalize(u.dir).ok())
        .is_some_and(|h| h != Path::new("/") && real.starts_with(h))
}

/// Which of `files` (what each is, and its path: [`crate::app::rsendmails_files`])
/// `path` is, links and `..` resolved, by its name or (both there) its device and inode;
/// or, for a directory among them (the spool), which one it lies in: `it is the
/// credentials file (AUTHPATH) /etc/rsendmail/auth.conf`. None when it is none of them.
pub fn one_of(path: &Path, files: &[(String, PathBuf)]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let real = resolved_path(path, true)?;
    let id = fs::metadata(&real).ok().map(|m| (m.dev(), m.ino()));
    files.iter().find_map(|(what, f)| {
        // Each file is looked at once, links followed as the kernel follows them; only
        // a directory (the spool: `path` may lie in it) and, when `path` is not there,
        // a file that is not there either are resolved by name. A file that is there
        // is `path` exactly when it is the same inode: were the two names one, `path`
        // would be there too; and one that is not there cannot be a `path` that is.
        let fmd = fs::metadata(f).ok();
        match (&fmd, id) {
            (Some(m), _) if !m.is_dir() => {
                return (Some((m.dev(), m.ino())) == id)
                    .then(|| format!("it is {what} {}", f.display()));
            }
            (None, Some(_)) => return None,
            _ => {}
        }
        let fr = resolved_path(f, true)?;
        if fmd.as_ref().is_some_and(fs::Metadata::is_dir) {
            return (real.starts_with(&fr)).then(|| {
                if real == fr {
                    format!("it is {what} {}", f.display())
                } else {
                    format!("it is in {what} {}", f.display())
                }
            });
        }
        (real == fr).then(|| format!("it is {what} {}", f.display()))
    })
}

/// The files of rsendmail's that hold credentials (AUTHPATH, the CERTFILE with its
/// private key), set once by the set-up ([`set_secret_files`]).
static SECRET_FILES: std::sync::OnceLock<Vec<(String, PathBuf)>> = std::sync::OnceLock::new();

/// Record the files that hold credentials ([`secret_file`]).
pub fn set_secret_files(files: Vec<(String, PathBuf)>) {
    let _ = SECRET_FILES.set(files);
}

/// Why `path` holds credentials and is never read as a list of addresses (aliases,
/// a relay table, an `:include:` file, a `.forward`), whose lines rsendmail may show in
/// a reason or `-bv`: it is one of `secrets` (`it is the credentials file (AUTHPATH)
/// /etc/rsendmail/auth.conf`) or of those recorded ([`set_secret_files`]), or the
/// system's shadow password file. None otherwise.
pub fn secret_file(path: &Path, secrets: &[(String, PathBuf)]) -> Option<String> {
    if let Some(what @ "the system's shadow password file") = system_path(path) {
        return Some(format!("it is {what}"));
    }
    one_of(path, secrets).or_else(|| one_of(path, SECRET_FILES.get()?))
}

/// Whether `text` holds a PEM private key (`-----BEGIN ... PRIVATE KEY-----`), which is
/// never read as a list of addresses.
pub fn holds_private_key(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|l| {
        let l = l.trim_ascii();
        l.starts_with(b"-----BEGIN ") && l.ends_with(b"PRIVATE KEY-----")
    })
}

/// `p` as a shell word: as it is when it holds only characters no shell reads
/// specially; in single quotes when it holds other printable text; else (a control or
/// invisible character, an octet that is not UTF-8: a name anyone may give a file) in
/// the ANSI-C quotes of bash, zsh, ksh and POSIX.1-2024's sh, `$'...'`, each such
/// octet as `\ooo`, so that the word names the very file on one printable line.
pub fn shell_word(p: &Path) -> String {
    let bytes = p.as_os_str().as_encoded_bytes();
    if !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(b))
    {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(crate::text::is_safe) => {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
        _ => {
            let mut out = String::from("$'");
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        c if crate::text::is_safe(c) => out.push(c),
                        c => {
                            let mut utf8 = [0u8; 4];
                            for b in c.encode_utf8(&mut utf8).as_bytes() {
                                out.push_str(&format!("\\{b:03o}"));
                            }
                        }
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            out.push('\'');
            out
        }
    }
}

/// What `path` is when it is a well-known path of the system's, which no rsendmail
/// program writes, nor `rsendmail-admin check` repairs, whatever a configuration names:
/// the password, shadow and group files, `/`, the shared sticky directories (`/tmp`,
/// `/var/tmp`, `/dev/shm`, `/run/lock`), `/home`, the users' mailbox directory, the
/// system's directories, anything under `/proc` or `/sys` (the kernel's) or `/dev`
/// ("" there: its kind, a device, says it best). Symbolic links and `..` are followed first, so
/// `/etc/../etc/passwd` or a link to it is found too.
pub fn system_path(path: &Path) -> Option<&'static str> {
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let named = |p: &str| real == Path::new(p);
    if named("/etc/passwd") {
        Some("the system's password file")
    } else if named("/etc/shadow") || named("/etc/gshadow") {
        Some("the system's shadow password file")
    } else if named("/etc/group") {
        Some("the system's group file")
    } else if named("/") {
        Some("the root directory")
    } else if ["/tmp", "/var/tmp", "/dev/shm", "/run/lock"]
        .iter()
        .any(|p| named(p))
    {
        Some("a shared sticky directory")
    } else if named("/home") {
        Some("the directory of users' homes")
    } else if named("/var/mail") || named("/var/spool/mail") {
        Some("the users' mailbox directory")
    } else if [
        "/usr",
        "/usr/local",
        "/etc",
        "/var",
        "/run",
        "/var/spool",
        "/var/log",
        "/root",
        "/bin",
        "/sbin",
        "/lib",
        "/boot",
        "/opt",
        "/srv",
    ]
    .iter()
    .any(|p| named(p))
    {
        Some("a system directory")
    } else if ["/proc", "/sys"].iter().any(|p| real.starts_with(p)) {
        Some("the kernel's")
    } else if real.starts_with("/dev") {
        Some("")
    } else {
        None
    }
}

/// Why an empty directory of root's is the system's, not one made for a spool, or None:
/// a [`system_path`], or one in the system's places ([`system_place`]: the top of the
/// file system, `/etc`, `/usr`, `/var`, `/srv`, `/opt`, ... and all below them) unless
/// it is one of rsendmail's places ([`rsendmails_place`]: `/var/spool/rsendmail*`,
/// `/var/lib/rsendmail*`, `/etc/rsendmail/...`). The rule by which a program takes over
/// an empty `SPOOLDIR` ([`crate::spool::Spool::check_takeover`]), the one `init` makes a
/// new spool by ([`not_rsendmails_own`]): an empty directory in the system's places may
/// be another program's that has nothing in it yet (`/etc/profile.d`,
/// `/etc/apt/keyrings`, `/var/spool/cron/crontabs`, `/var/lib/dpkg/updates`), whose
/// mode and group the spool's would break; elsewhere (a file system of its own mounted
/// at `/data/queue`, a build's scratch directory) it is taken.
pub fn system_directory(path: &Path) -> Option<String> {
    if let Some(what) = system_path(path) {
        return Some(if what.is_empty() {
            "a device or the kernel's".to_string()
        } else {
            what.to_string()
        });
    }
    // Links and `..` resolved as the rule of rsendmail's places resolves them
    // (`/etc/rsendmail/../sudoers.d` is `/etc/sudoers.d`, there or not).
    let real = match resolved_path(path, true) {
        Some(real) => real,
        None if path.is_absolute() => {
            return Some(
                "a `..` below a directory that is not there, or a loop of symbolic links"
                    .to_string(),
            );
        }
        None => path.to_path_buf(),
    };
    if rsendmails_place(&real) {
        return None;
    }
    system_place(&real)
}

/// Why `path` is not written in its plain form, or None: a name of `.` or `..` in it, or
/// an empty one (`//`). The directory such a path names is not the one its line reads
/// (`/tmp/t1/../rsendmail-new` is `/tmp/rsendmail-new`, or nothing when `/tmp/t1` is
/// not there), so no spool is made at it: `rsendmail-admin init` refuses it, and `check`
/// gives the line to correct, no command.
pub fn not_plain(path: &Path) -> Option<&'static str> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let names: Vec<&[u8]> = bytes.split(|&b| b == b'/').collect();
    let last = names.len().saturating_sub(1);
    names.iter().enumerate().find_map(|(i, n)| match *n {
        b".." => Some("a name of `..` in it"),
        b"." => Some("a name of `.` in it"),
        // The start of an absolute path, and a slash at its end, are no empty name.
        b"" if i != 0 && i != last => Some("an empty name (`//`) in it"),
        _ => None,
    })
}

/// What kind of file `t` is, in words: `a regular file`, `a directory`, `a symbolic
/// link`, `a FIFO`, `a socket`, `a character device`, `a block device`.
pub fn kind_of(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// The name of the user `uid` (the number when it has none).
pub fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// The user `name` as a sentence names her: `the user "nobody"`, so that a name that
/// is also a word (`nobody`, `mail`, `games`) never reads as one.
pub fn the_user(name: &str) -> String {
    format!("the user \"{name}\"")
}

/// [`the_user`] of the user `uid` ([`user_name`]).
pub fn the_user_id(uid: u32) -> String {
    the_user(&user_name(uid))
}

/// The name of the group `gid` (the number when it has none).
pub fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// Why the group `gid` must not be a system spool's group, if so: root's group (it
/// would make `rsendmail` set-gid root) or a user's primary group (every process of that
/// user could change or remove every message queued). Members of the spool's group are
/// its administrators, as rsendmail-admin(8) and README say: a group with members is
/// fit.
pub fn group_unfit(gid: u32) -> Option<String> {
    if gid == 0 {
        return Some("root's group".to_string());
    }
    primary_user(gid).map(|u| format!("the primary group of {}", the_user(&u)))
}

/// The file in the spool directory where a root process that found the spool's group
/// fit by [`group_unfit`] records that verdict ([`record_group_fit`]), for
/// [`group_fit_recorded`]: `<time> <`[`group_verdict_key`]`>`. A cache, never synced.
pub const GROUP_VERDICT: &str = ".group-fit";

/// How long a recorded verdict holds, at most (seconds): what its key cannot see (the
/// users of a directory service, of `systemd-homed`) is looked at again that often.
pub const GROUP_VERDICT_AGE: i64 = 3600;

/// The files and directories the password database's users come from, whose change
/// (device, inode, size, modification and change times) makes a recorded verdict
/// void: `/etc/passwd` (`useradd`, `usermod` and `vipw` replace or change it),
/// `/etc/nsswitch.conf` (which sources there are), and systemd's user records.
const GROUP_VERDICT_SOURCES: [&str; 5] = [
    "/etc/passwd",
    "/etc/nsswitch.conf",
    "/etc/userdb",
    "/run/userdb",
    "/run/systemd/userdb",
];

/// What a verdict on the group `gid` is valid for: the group and the identity of
/// [`GROUP_VERDICT_SOURCES`] now (`none` for one not there). Taken before the
/// enumeration it is recorded with, so a change meanwhile voids it.
pub fn group_verdict_key(gid: u32) -> String {
    let mut key = format!("rsendmail-group-fit 1 gid {gid}");
    for p in GROUP_VERDICT_SOURCES {
        match fs::symlink_metadata(p) {
            Ok(m) => key.push_str(&format!(
                " {p} {}:{}:{}:{}.{}:{}.{}",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            )),
            Err(_) => key.push_str(&format!(" {p} none")),
        }
    }
    key
}

/// Whether the spool directory `dir` holds a verdict that its group is fit, recorded
/// by root less than [`GROUP_VERDICT_AGE`] ago for `key` ([`group_verdict_key`]): a
/// regular file of one link, root's, that neither its group nor others may write. The
/// spool's group may write the directory, so a member could remove or rename the
/// file (the full check is then made again), but not write one of root's: a user whose
/// primary group the spool's has become cannot record that it is fit.
pub fn group_fit_recorded(dir: &Path, key: &str) -> bool {
    use std::io::Read;
    let path = dir.join(GROUP_VERDICT);
    let Ok(f) = super::open_safely(&path, fs::OpenOptions::new().read(true), super::Kind::File)
    else {
        return false;
    };
    let Ok(md) = f.metadata() else {
        return false;
    };
    if md.uid() != 0 || md.mode() & 0o022 != 0 {
        return false;
    }
    let mut text = String::new();
    if f.take(4096).read_to_string(&mut text).is_err() {
        return false;
    }
    let Some((at, recorded)) = text.strip_suffix('\n').and_then(|t| t.split_once(' ')) else {
        return false;
    };
    let Ok(at) = at.parse::<i64>() else {
        return false;
    };
    let age = crate::clock::now().saturating_sub(at);
    (0..GROUP_VERDICT_AGE).contains(&age) && recorded == key
}

/// Record in the spool directory `dir` that its group is fit for `key`
/// ([`group_fit_recorded`]), when this process is root (nobody else can write a
/// verdict others trust): written beside it, mode 0640, and renamed into place. A
/// failure leaves the full check to the next process.
pub fn record_group_fit(dir: &Path, key: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let tmp = dir.join(format!("{GROUP_VERDICT}.{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{} {key}\n", crate::clock::now()).as_bytes()))
        .and_then(|()| fs::rename(&tmp, dir.join(GROUP_VERDICT)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// The passwd enumeration's position is one per process: one walk at a time.
static ENUMERATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Walk the passwd entries in order, under the one-walk-at-a-time lock, giving `visit`
/// each entry's primary gid and name, until it returns true (found) or the entries end.
fn walk_passwd(mut visit: impl FnMut(u32, Option<&std::ffi::CStr>) -> bool) {
    // The passwd enumeration's position is one per process: one walk at a time.
    let _held = ENUMERATING.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the enumeration is walked start to end under the lock above; each entry
    // is read (its name borrowed only for the call) before the next getpwent.
    unsafe {
        libc::setpwent();
        loop {
            let p = libc::getpwent();
            if p.is_null() {
                break;
            }
            let name = (!(*p).pw_name.is_null()).then(|| std::ffi::CStr::from_ptr((*p).pw_name));
            if visit((*p).pw_gid, name) {
                break;
            }
        }
        libc::endpwent();
    }
}

/// The primary groups of every passwd entry.
pub fn primary_gids() -> std::collections::HashSet<u32> {
    let mut used = std::collections::HashSet::new();
    walk_passwd(|g, _| {
        used.insert(g);
        false
    });
    used
}

/// The name of a user (a passwd entry) whose primary group is `gid`, if any.
pub fn primary_user(gid: u32) -> Option<String> {
    let mut found = None;
    walk_passwd(|g, name| match name {
        Some(n) if g == gid => {
            found = Some(n.to_string_lossy().into_owned());
            true
        }
        _ => false,
    });
    found
}

/// The most symbolic links one path may lead through, as the kernel allows (`ELOOP`
/// beyond: `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

/// One thing met while a path is resolved as the kernel resolves it ([`Walk`]): a
/// directory traversed, a symbolic link followed, or the last component.
#[derive(Debug)]
pub struct Met {
    /// Its path as reached: every symbolic link before it resolved.
    pub path: PathBuf,
    /// Its own metadata (a link's, not its target's).
    pub md: fs::Metadata,
    /// The symbolic link, last followed before it, that led here, if any.
    pub via: Option<PathBuf>,
}

/// The components a path meets when the kernel resolves it, in order: `/`, each
/// directory traversed, each symbolic link followed and then what its target meets (a
/// link's target resolved in turn, at most [`MAX_LINKS`] of them), down to the last
/// component. It ends early at a component that is not there (or past the links
/// allowed): [`Walk::complete`] says whether the whole path was resolved and
/// [`Walk::resolved`] where it led. A relative path starts from the working directory,
/// whose own directories are met first.
pub struct Walk {
    /// The path resolved so far (no link in it).
    cur: PathBuf,
    /// The components still to resolve.
    pending: std::collections::VecDeque<std::ffi::OsString>,
    /// The symbolic link last followed.
    via: Option<PathBuf>,
    /// Links followed so far.
    links: usize,
    /// Whether `/` was met.
    started: bool,
    /// Whether it ended early.
    stopped: bool,
}

impl Walk {
    /// Walk `path`.
    pub fn new(path: &Path) -> Walk {
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(path)
        };
        let mut w = Walk {
            cur: PathBuf::from("/"),
            pending: Default::default(),
            via: None,
            links: 0,
            started: false,
            stopped: !full.is_absolute(),
        };
        w.push_front(&full);
        w
    }

    /// Put the components of `p` before those still to resolve.
    fn push_front(&mut self, p: &Path) {
        use std::path::Component;
        let parts: Vec<_> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        for n in parts.into_iter().rev() {
            self.pending.push_front(n);
        }
    }

    /// Whether the whole path was resolved (every component there, no loop).
    pub fn complete(&self) -> bool {
        !self.stopped && self.pending.is_empty()
    }

    /// Where the path led: the whole path resolved once [`Walk::complete`].
    pub fn resolved(&self) -> &Path {
        &self.cur
    }
}

impl Iterator for Walk {
    type Item = Met;

    fn next(&mut self) -> Option<Met> {
        if self.stopped {
            return None;
        }
        if !self.started {
            self.started = true;
            match fs::symlink_metadata("/") {
                Ok(md) => {
                    return Some(Met {
                        path: PathBuf::from("/"),
                        md,
                        via: None,
                    });
                }
                Err(_) => {
                    self.stopped = true;
                    return None;
                }
            }
        }
        loop {
            let name = self.pending.pop_front()?;
            let via = self.via.clone();
            if name == ".." {
                // The directory's own parent, already met on the way down.
                self.cur.pop();
                continue;
            }
            let p = self.cur.join(&name);
            let Ok(md) = fs::symlink_metadata(&p) else {
                self.pending.push_front(name);
                self.stopped = true;
                return None;
            };
            if md.file_type().is_symlink() {
                self.links += 1;
                let target = match fs::read_link(&p) {
                    Ok(t) if self.links <= MAX_LINKS => t,
                    _ => {
                        self.stopped = true;
                        return Some(Met { path: p, md, via });
                    }
                };
                if target.is_absolute() {
                    self.cur = PathBuf::from("/");
                }
                self.push_front(&target);
                self.via = Some(p.clone());
            } else {
                self.cur = p.clone();
            }
            return Some(Met { path: p, md, via });
        }
    }
}

impl Spool {
    /// The first directory that makes this spool unsafe by the module's rule (its
    /// owner, the directories above it), if any; the spool itself first. A
    /// spool not there yet: the directories it would be made in. Directories writable
    /// by everyone inside the spool are [`Spool::world_writable`]'s.
    pub fn unsafe_dir(&self) -> Option<UnsafeDir> {
        self.unsafe_dirs().into_iter().next()
    }

    /// Every directory and link that makes this spool unsafe ([`Spool::unsafe_dir`]'s
    /// rule), in its order: the spool itself, the links on its path, then the
    /// directories above it, the deepest first. `rsendmail-admin check` names them all.
    pub fn unsafe_dirs(&self) -> Vec<UnsafeDir> {
        let mut out = Vec::new();
        let me = nix::unistd::geteuid().as_raw();
        let trusted = |uid: u32| uid == 0 || (self.private && uid == me);
        if let Some(md) = fs::metadata(&self.dir).ok().filter(fs::Metadata::is_dir) {
            let why = if !trusted(md.uid()) {
                Some(format!(
                    "owned by {}, not {}",
                    the_user_id(md.uid()),
                    if self.private {
                        "root or this user"
                    } else {
                        "root"
                    }
                ))
            } else {
                None
            };
            if let Some(why) = why {
                out.push(UnsafeDir {
                    dir: self.dir.clone(),
                    md,
                    above: false,
                    why,
                    via: None,
                });
            }
        }
        // Everything met on the way to the spool, as the kernel resolves its path: a
        // symbolic link's owner may re-point it; whoever owns or may write a directory
        // traversed may put one of her own in the spool's place.
        let mut walk = Walk::new(&self.dir);
        let mut met: Vec<Met> = walk.by_ref().collect();
        if walk.complete() && met.last().is_some_and(|m| m.md.is_dir()) {
            // The spool itself: its owner is looked at above, its mode by
            // [`Spool::world_writable`].
            met.pop();
        }
        for m in met
            .iter()
            .filter(|m| m.md.file_type().is_symlink() && !trusted(m.md.uid()))
        {
            out.push(UnsafeDir {
                dir: m.path.clone(),
                above: m.path != self.dir,
                why: format!("a symbolic link owned by {}", the_user_id(m.md.uid())),
                md: m.md.clone(),
                via: m.via.clone(),
            });
        }
        let my_gid = nix::unistd::getegid().as_raw();
        // No group may write a directory above the system spool, root's neither (an
        // access ACL granting a user write shows only as the group bits, its mask), as
        // no group may write what root runs ([`unsafe_program`]). A user's own spool:
        // her own group may.
        let trust = Trust {
            owner: &trusted,
            group: &|gid| self.private && gid == my_gid,
            sticky_ok: true,
        };
        for m in met.into_iter().rev().filter(|m| m.md.is_dir()) {
            let Some((kind, mut why)) = changed_by(&m.md, &trust) else {
                continue;
            };
            // Its group bits are an access ACL's mask: whom the ACL lets write, named.
            if kind == RiskKind::Group {
                match acl_group_class_writers(&m.path, &m.md, &trust) {
                    Some(Some(w)) => why = w,
                    Some(None) => continue,
                    None => {}
                }
            }
            let md = m.md;
            out.push(UnsafeDir {
                dir: m.path,
                md,
                above: true,
                why,
                via: m.via,
            });
        }
        out
    }

    /// The rsendmail spool whose tree holds this one's path, when one does: a directory
    /// on the way to it as configured (also through `..`) or as resolved that holds a
    /// spool's sub-directories (`tmp`, `index`, `corrupt`). A spool in another spool (its
    /// `hold/`, or the spool itself named through `..`) is refused: a repair of the one
    /// would break the other, and what is made in it would be the other's entries.
    pub fn inside_spool(&self) -> Option<PathBuf> {
        let is_spool = |d: &Path| {
            ["tmp", "index", "corrupt"]
                .iter()
                .all(|n| fs::symlink_metadata(d.join(n)).is_ok_and(|m| m.is_dir()))
        };
        let mut above: Vec<PathBuf> = Vec::new();
        let mut p = PathBuf::new();
        let comps: Vec<_> = self.dir.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            p.push(c);
            above.push(p.clone());
        }
        if let Some(r) = self.dir.parent().and_then(|d| fs::canonicalize(d).ok()) {
            // The resolved path's ancestors, each once: without symbolic links or `..`
            // they are the path's own, already looked at.
            for d in r.ancestors() {
                if !above.iter().any(|a| a == d) {
                    above.push(d.to_path_buf());
                }
            }
        }
        above
            .into_iter()
            .find(|d| d != Path::new("/") && is_spool(d))
    }

    /// What [`Spool::inside_spool`] found, said, with where the spool was named
    /// ([`Spool::named_as`]: the configuration's file and line).
    pub fn inside_spool_problem(&self, other: &Path) -> String {
        format!(
            "{}: it is inside the rsendmail spool {}: a spool is never made in another \
             spool's tree, nor named through one, so it is not used (name a SPOOLDIR \
             outside {}, without `..`)",
            self.named_as(),
            other.display(),
            other.display()
        )
    }

    /// The line that refuses a spool for the directory `u` ([`Spool::unsafe_dir`]), for
    /// every program that uses the spool, ending with where to find the repair; with
    /// `fix` (`rsendmail-admin check` and `init`), ending with those commands (none
    /// when empty: `check` then says what to do instead).
    pub fn unsafe_dir_problem(&self, u: &UnsafeDir, fix: Option<&[String]>) -> String {
        let mut shown = format!(
            "{} ({}:{} {:04o})",
            u.dir.display(),
            user_name(u.md.uid()),
            group_name(u.md.gid()),
            u.md.mode() & 0o7777
        );
        if let Some(via) = &u.via {
            shown.push_str(&format!(
                ", reached through the symbolic link {}",
                via.display()
            ));
        }
        let what = if u.is_link() {
            format!(
                "{shown}, on the path of the queue directory {}, is {}: its owner can \
                 point it at a directory of their own in the spool's place",
                self.dir.display(),
                u.why
            )
        } else if u.above {
            format!(
                "{shown}, above the queue directory {}, is {}: whoever may write or own \
                 it can put a directory of their own in the spool's place",
                self.dir.display(),
                u.why
            )
        } else {
            format!(
                "the queue directory {shown} is {}: that user can read, change or remove \
                 every message queued there",
                u.why
            )
        };
        let owner = if self.private {
            "root's or this user's"
        } else {
            "root's"
        };
        let how = match fix {
            Some([]) => String::new(),
            Some(cmds) => format!(" (fix: {})", cmds.join(" && ")),
            None => format!(" (`{}` says how)", admin_command("check")),
        };
        let home = match (u.users_home(), u.not_rsendmails(self.private)) {
            (Some(home), _) => format!(
                "; it is in {}, the home of {}: rather name a SPOOLDIR outside that \
                 user's tree than give her directories to root",
                home.display(),
                user_name(u.md.uid())
            ),
            (None, Some(why)) if fix.is_some() => format!(
                "; no fix: {} is not rsendmail's ({why}), and no fix touches what is not: \
                 rather name a SPOOLDIR in a directory that is root's alone all the way \
                 down, such as /var/spool/rsendmail, or make it root's alone by hand if \
                 nothing else needs it as it is",
                u.dir.display()
            ),
            _ => String::new(),
        };
        format!(
            "{what}, so the queue is not used until it and every directory above it are \
             {owner} alone{how}{home}"
        )
    }
}

/// Whom a file or directory may belong to, and who else may write it, for
/// [`changed_by_others`].
pub struct Trust<'a> {
    /// The owners that may have it (root; a user's own spool: root or that user).
    pub owner: &'a dyn Fn(u32) -> bool,
    /// The groups that may write it besides its owner (none, for what root runs).
    pub group: &'a dyn Fn(u32) -> bool,
    /// Whether a sticky directory may be writable by others: a user there replaces only
    /// what she owns.
    pub sticky_ok: bool,
}

impl Trust<'_> {
    /// What root runs: root's alone (no group, no sticky bit, lets anyone else write).
    pub const ROOT_ALONE: Trust<'static> = Trust {
        owner: &|uid| uid == 0,
        group: &|_| false,
        sticky_ok: false,
    };
}

/// Who besides the trusted owners could change a file or directory: what the words of
/// [`changed_by_others`] and [`FileRisk::why`] say, for code to test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskKind {
    /// It belongs to an owner not trusted (`owned by the user "bob"`).
    Owner,
    /// Everyone may write it (`writable by everyone`).
    Everyone,
    /// Its group, not trusted, may write it through the group bits (`writable by its
    /// group staff`).
    Group,
    /// An access ACL gives users or groups not trusted write (`given write by an access
    /// ACL for the user "bob"`).
    Acl,
}

/// Who besides the trusted owners could change a file or directory of `md`, in words
/// (`owned by the user "bob"`, `writable by everyone`, `writable by its group staff`): its owner
/// when `trust` does not take it, else everyone or its group when they may write it.
pub fn changed_by_others(md: &fs::Metadata, trust: &Trust) -> Option<String> {
    changed_by(md, trust).map(|(_, why)| why)
}

/// [`changed_by_others`] with its [`RiskKind`].
pub fn changed_by(md: &fs::Metadata, trust: &Trust) -> Option<(RiskKind, String)> {
    let mode = md.mode();
    let sticky = trust.sticky_ok && mode & 0o1000 != 0;
    if !(trust.owner)(md.uid()) {
        Some((
            RiskKind::Owner,
            format!("owned by {}", the_user_id(md.uid())),
        ))
    } else if mode & 0o002 != 0 && !sticky {
        Some((RiskKind::Everyone, "writable by everyone".to_string()))
    } else if mode & 0o020 != 0 && !sticky && !(trust.group)(md.gid()) {
        Some((
            RiskKind::Group,
            format!("writable by its group {}", group_name(md.gid())),
        ))
    } else {
        None
    }
}

/// The extended attribute that holds a file's POSIX access ACL.
pub const ACL_ACCESS: &str = "system.posix_acl_access";

/// The extended attribute that holds a directory's POSIX default ACL: the ACL what is
/// made in it inherits.
pub const ACL_DEFAULT: &str = "system.posix_acl_default";

/// The tags of a POSIX ACL's entries (Linux's `ACL_USER`, `ACL_GROUP_OBJ`, `ACL_GROUP`,
/// `ACL_MASK`).
const TAG_USER: u16 = 2;
const TAG_GROUP_OBJ: u16 = 4;
const TAG_GROUP: u16 = 8;
const TAG_MASK: u16 = 0x10;

/// The entries of a POSIX ACL as Linux stores it (a little-endian u32 version 2, then
/// 8-octet entries of u16 tag, u16 permissions, u32 id), as `(tag, permissions, id)`.
/// A buffer of another version finds nothing; one whose length is not the header and
/// whole entries is read as far as whole entries go; never panics.
fn acl_entries(buf: &[u8]) -> Vec<(u16, u16, u32)> {
    let Some((head, rest)) = buf.split_first_chunk::<4>() else {
        return Vec::new();
    };
    if u32::from_le_bytes(*head) != 2 {
        return Vec::new();
    }
    rest.chunks_exact(8)
        .filter_map(|e| {
            let (tag, rest) = e.split_first_chunk::<2>()?;
            let (perm, id) = rest.split_first_chunk::<2>()?;
            let id = u32::from_le_bytes(id.first_chunk::<4>().copied()?);
            Some((u16::from_le_bytes(*tag), u16::from_le_bytes(*perm) & 7, id))
        })
        .collect()
}

/// The named entries of a POSIX ACL ([`acl_entries`]): `(true, uid, permissions)` for a
/// user, `(false, gid, permissions)` for a group, with the permissions the ACL's mask
/// leaves them (the first mask entry's; all of them when there is none): what the
/// kernel grants. Those without any permission left are not named.
pub fn acl_named(buf: &[u8]) -> Vec<(bool, u32, u16)> {
    let entries = acl_entries(buf);
    let mask = entries
        .iter()
        .find(|(t, _, _)| *t == TAG_MASK)
        .map_or(7, |(_, p, _)| *p);
    entries
        .into_iter()
        .filter(|(t, _, _)| *t == TAG_USER || *t == TAG_GROUP)
        .map(|(t, p, id)| (t == TAG_USER, id, p & mask))
        .filter(|(_, _, p)| *p != 0)
        .collect()
}

/// The named entries of a POSIX access ACL that it lets write, the mask applied
/// ([`acl_named`]): `(true, uid)` for a user, `(false, gid)` for a group. The owner's,
/// owning group's, mask and other entries are the mode's bits and are not named. Never
/// panics.
pub fn acl_writers(buf: &[u8]) -> Vec<(bool, u32)> {
    acl_named(buf)
        .into_iter()
        .filter(|(_, _, p)| p & 2 != 0)
        .map(|(user, id, _)| (user, id))
        .collect()
}

/// The extended attribute `name` of `p` (not followed when it is a symbolic link), if
/// it has one.
pub fn read_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    xattr(p, name, false)
}

/// Whether anyone but its owner and root may write the file `p` (of `md`; followed
/// when `follow`): its group through the mode's group bits (with an access ACL, the
/// mask that bounds every named entry), everyone, or a user or group an access ACL
/// names with write.
pub fn others_may_write(p: &Path, md: &fs::Metadata, follow: bool) -> bool {
    md.mode() & 0o022 != 0
        || xattr(p, ACL_ACCESS, follow).is_some_and(|buf| !acl_writers(&buf).is_empty())
}

/// Whom the access ACL of the file `p` (followed) lets read it besides its owner and its
/// group, in words (`the user "bob", the group staff`), if anyone: a named user or group
/// with read, the mask applied. For a file of secrets such a reader is one of the
/// others, whatever the mode says.
pub fn acl_readers(p: &Path) -> Option<String> {
    let buf = xattr(p, ACL_ACCESS, true)?;
    let who: Vec<String> = acl_named(&buf)
        .into_iter()
        .filter(|(_, _, perm)| perm & 4 != 0)
        .map(|(user, id, _)| named(user, id))
        .collect();
    (!who.is_empty()).then(|| who.join(", "))
}

/// [`read_xattr`], following a symbolic link when `follow`.
///
/// Read first into a buffer of [`XATTR_FIRST`] bytes, which holds any ACL of up to 31
/// entries; only a larger value (`ERANGE`) is read again into one of XATTR_SIZE_MAX.
/// Every check of a path reads its ACLs (a submission reads some 30 of them, nearly
/// always absent): zeroing a 64 KiB buffer for each was two thirds of the instructions
/// a queue-only submission executed.
fn xattr(p: &Path, name: &str, follow: bool) -> Option<Vec<u8>> {
    xattr_or_why(p, name, follow).ok()
}

/// [`xattr`], or why there is none (`ENOENT`: nothing at `p`).
fn xattr_or_why(p: &Path, name: &str, follow: bool) -> std::io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let invalid = |_| std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(invalid)?;
    let name = std::ffi::CString::new(name).map_err(invalid)?;
    let get = |buf: &mut Vec<u8>| {
        // SAFETY: both names are NUL-terminated; the buffer is valid for its length.
        let n = unsafe {
            if follow {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            } else {
                libc::lgetxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
        };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    };
    read_value_or_why(get)
}

/// [`xattr`] of the file open as `fd`.
fn fxattr(fd: std::os::fd::BorrowedFd, name: &str) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let name = std::ffi::CString::new(name).ok()?;
    let get = |buf: &mut Vec<u8>| {
        // SAFETY: the name is NUL-terminated; the buffer is valid for its length; the
        // descriptor is borrowed, so open, for the call.
        let n = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    };
    read_value(get)
}

/// An extended attribute's value through `get` (one of the `*getxattr` calls): first
/// into [`XATTR_FIRST`] bytes, again into the largest value a file may have when that was
/// too small (ERANGE); None on any other error.
fn read_value(get: impl FnMut(&mut Vec<u8>) -> std::io::Result<usize>) -> Option<Vec<u8>> {
    read_value_or_why(get).ok()
}

/// [`read_value`], or why there is none (`ENODATA`: no such attribute; `ENOENT`: no
/// such file).
fn read_value_or_why(
    mut get: impl FnMut(&mut Vec<u8>) -> std::io::Result<usize>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; XATTR_FIRST];
    let n = match get(&mut buf) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {
            buf = vec![0u8; XATTR_SIZE_MAX];
            get(&mut buf)?
        }
        Err(e) => return Err(e),
    };
    buf.truncate(n);
    Ok(buf)
}

/// The buffer an extended attribute is read into first ([`xattr`]): a POSIX ACL's value
/// is a 4-byte header and 8 bytes an entry.
const XATTR_FIRST: usize = 256;

/// The largest value an extended attribute may have (Linux's XATTR_SIZE_MAX).
const XATTR_SIZE_MAX: usize = 65536;

/// `(true, uid)` or `(false, gid)` in words: `the user "bob"`, `the group staff`.
fn named(user: bool, id: u32) -> String {
    if user {
        the_user_id(id)
    } else {
        format!("the group {}", group_name(id))
    }
}

/// Permissions in `ls`'s letters (`r-x`).
fn perm_letters(p: u16) -> String {
    [(4, 'r'), (2, 'w'), (1, 'x')]
        .iter()
        .map(|(b, c)| if p & b != 0 { *c } else { '-' })
        .collect()
}

/// Whom the POSIX ACLs of the spool's directory `p` (not followed when it is a symbolic
/// link) give anything besides its owner and group, in words, if anyone: a named user
/// or group its access ACL lets write (`given write by an access ACL for the user
/// bob`), read or enter (`given read (r-x) by an access ACL for ...`), the mask
/// applied, and any named entry of its default ACL, which what is made there inherits
/// (`given rw- by a default ACL for ...`). Those could plant, change, remove or read
/// entries whatever the mode says.
pub fn acl_problem(p: &Path) -> Option<String> {
    let mut who: Vec<String> = Vec::new();
    let access = xattr_or_why(p, ACL_ACCESS, false);
    // Nothing there (a sub-directory not made yet): no default ACL to read either.
    if access
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        return None;
    }
    if let Ok(buf) = access {
        for (user, id, perm) in acl_named(&buf) {
            let what = if perm & 2 != 0 {
                "write".to_string()
            } else if perm & 4 != 0 {
                format!("read ({})", perm_letters(perm))
            } else {
                format!("entry ({})", perm_letters(perm))
            };
            who.push(format!(
                "given {what} by an access ACL for {}",
                named(user, id)
            ));
        }
    }
    if let Some(buf) = read_xattr(p, ACL_DEFAULT) {
        for (user, id, perm) in acl_entries(&buf)
            .into_iter()
            .filter(|(t, p, _)| (*t == TAG_USER || *t == TAG_GROUP) && *p != 0)
            .map(|(t, p, id)| (t == TAG_USER, id, p))
        {
            who.push(format!(
                "given {} by a default ACL, which what is made there inherits, for {}",
                perm_letters(perm),
                named(user, id)
            ));
        }
    }
    (!who.is_empty()).then(|| who.join(" and "))
}

/// Who writes the directory `p` (of `md`) through its group bits when it has an access
/// ACL (the group bits are then its mask), in words (`given write by an access ACL for
/// the user "bob"`), leaving out those `trust` takes: `None` when it has no access ACL
/// (its group does), `Some(None)` when nobody untrusted does.
pub fn acl_group_class_writers(
    p: &Path,
    md: &fs::Metadata,
    trust: &Trust,
) -> Option<Option<String>> {
    group_class_writers(&read_xattr(p, ACL_ACCESS)?, md, trust)
}

/// [`acl_group_class_writers`] of the access ACL `buf`.
fn group_class_writers(buf: &[u8], md: &fs::Metadata, trust: &Trust) -> Option<Option<String>> {
    let entries = acl_entries(buf);
    if entries.is_empty() {
        return None;
    }
    let mut who: Vec<String> = acl_writers(buf)
        .into_iter()
        .filter(|&(user, id)| {
            if user {
                !(trust.owner)(id)
            } else {
                !(trust.group)(id)
            }
        })
        .map(|(user, id)| named(user, id))
        .collect();
    let mask = entries
        .iter()
        .find(|(t, _, _)| *t == TAG_MASK)
        .map_or(7, |(_, p, _)| *p);
    let group_writes = entries
        .iter()
        .any(|(t, p, _)| *t == TAG_GROUP_OBJ && p & mask & 2 != 0);
    if group_writes && !(trust.group)(md.gid()) {
        who.push(format!("its group {}", group_name(md.gid())));
    }
    Some((!who.is_empty()).then(|| format!("given write by an access ACL for {}", who.join(", "))))
}

/// Why root must not execute the program at `path`, if so: anyone but root could change
/// what runs. Its path is resolved as the kernel resolves it ([`Walk`]): every symbolic
/// link met belongs to root, and the file reached is a regular file that it, its
/// directory and every directory above it are root's alone (owned by root, writable by
/// nobody else; a directory of root's with the sticky bit, as /tmp, may be writable by
/// others, who may replace there only what they own). `None` also when nothing is at `path` (executing
/// it then fails, and says so).
pub fn unsafe_program(path: &Path) -> Option<String> {
    program_fault(path).map(|f| f.why)
}

/// Why this process must not execute the program at `path`, as a sentence naming the
/// file and who could change it: the one rule every program root (or a set-id
/// process, [`privileged_process`]) executes is held to ([`unsafe_program`]), before each
/// exec of the deliverer or of this program again, as `rsendmail-admin check` and a
/// SIGHUP restart hold it. `None` when this process holds no privilege, or when the
/// program is root's alone (or nothing is there: executing it then fails, and says so).
pub fn refused_exec(path: &Path) -> Option<String> {
    if !privileged_process() {
        return None;
    }
    unsafe_program(path).map(|why| {
        format!(
            "refusing to execute {}: {why} (root, or a set-id program, executes only a \
             program that no one else could change, nor any directory on its path; \
             `{}` says how)",
            path.display(),
            admin_command("check")
        )
    })
}

/// What [`unsafe_program`] finds wrong, and where: for a repair that fits the fault.
#[derive(Debug)]
pub struct ProgramFault {
    /// Why root must not execute it, in words.
    pub why: String,
    /// What is at fault: a symbolic link, the file, or a directory on the path (as
    /// reached, every link before it resolved); `None` for a path that leads through
    /// too many links.
    pub at: Option<PathBuf>,
    /// Whether it is a directory on the path (else the file or a link).
    pub dir: bool,
    /// Whether only its mode is wrong: root owns it, a regular file or directory, and
    /// others may write it (`chmod go-w` of it is a repair).
    pub mode_only: bool,
    /// Who could change it, when it is the file or a directory others may write
    /// ([`RiskKind::Acl`]: an access ACL, which `setfacl -b` removes).
    pub kind: Option<RiskKind>,
}

/// [`unsafe_program`] with where the fault is ([`ProgramFault`]).
pub fn program_fault(path: &Path) -> Option<ProgramFault> {
    let fault = |why: String, m: Option<&Met>, dir: bool| ProgramFault {
        why,
        at: m.map(|m| m.path.clone()),
        dir,
        mode_only: m.is_some_and(|m| {
            !m.md.file_type().is_symlink() && m.md.uid() == 0 && (m.md.is_dir() || m.md.is_file())
        }),
        kind: None,
    };
    let mut walk = Walk::new(path);
    let met: Vec<Met> = walk.by_ref().collect();
    if let Some(l) = met
        .iter()
        .find(|m| m.md.file_type().is_symlink() && m.md.uid() != 0)
    {
        return Some(fault(
            format!(
                "the symbolic link {} on its path is owned by {}",
                l.path.display(),
                the_user_id(l.md.uid())
            ),
            Some(l),
            false,
        ));
    }
    if !walk.complete() {
        return (walk.links > MAX_LINKS).then(|| {
            fault(
                "its path leads through too many symbolic links".to_string(),
                None,
                false,
            )
        });
    }
    let file = met.last()?;
    if !file.md.is_file() {
        return Some(fault(
            "it is not a regular file".to_string(),
            Some(file),
            false,
        ));
    }
    // Its group bits may be an access ACL's mask: who writes through them is named.
    if let Some((kind, w)) = with_acl(&file.path, &file.md, &Trust::ROOT_ALONE) {
        return Some(ProgramFault {
            kind: Some(kind),
            ..fault(
                match &file.via {
                    Some(_) => format!("{}, which it leads to, is {w}", file.path.display()),
                    None => format!("it is {w}"),
                },
                Some(file),
                false,
            )
        });
    }
    // Its directory and every directory above it, from the top: whoever may write one
    // can rename what is below it away and put her own in its place, unless it is
    // root's and sticky (as /tmp): there a user may rename or remove only what she owns
    // (or the directory's owner, root), and everything below it on the path is held
    // to root's ownership here (each directory, link and the file itself).
    let dir = walk.resolved().parent()?;
    let trust = Trust {
        sticky_ok: true,
        ..Trust::ROOT_ALONE
    };
    met.iter().filter(|m| m.md.is_dir()).find_map(|m| {
        with_acl(&m.path, &m.md, &trust).map(|(kind, w)| {
            let why = if m.path == dir {
                format!("its directory {} is {w}", dir.display())
            } else {
                format!("the directory {} on its path is {w}", m.path.display())
            };
            ProgramFault {
                kind: Some(kind),
                ..fault(why, Some(m), true)
            }
        })
    })
}

/// Whether this process is root's (its real or effective user): what it reads for
/// routing or credentials, and what it writes, must then be root's alone
/// ([`file_risks`]).
pub fn root_process() -> bool {
    nix::unistd::getuid().is_root() || nix::unistd::geteuid().is_root()
}

/// Whether this process holds a privilege its caller does not have: root's, or a group
/// other than its real one, effective or saved (a set-gid program, also while it acts
/// with its caller's group for a moment, and the deliverer it starts, which inherits
/// the group). Such a process trusts what a root process trusts ([`file_risks`]): a
/// file its caller could change would give her the group's rights (the credentials of
/// an auth.conf she may not read, sent to a server she chooses). One that gave its
/// group up for good (`-C`, an unsafe option) holds nothing of the kind.
pub fn privileged_process() -> bool {
    root_process()
        || nix::unistd::getresgid().map_or(true, |g| g.effective != g.real || g.saved != g.real)
}

/// One thing on the path of a file a configuration names that someone root does not
/// trust could change ([`file_risks`]).
#[derive(Debug)]
pub struct FileRisk {
    /// What was met: the file itself, a directory traversed or a symbolic link
    /// followed, every link before it resolved.
    pub path: PathBuf,
    /// Its own metadata (a link's, not its target's).
    pub md: fs::Metadata,
    /// Who could change it, in words (`owned by the user "bob"`, `writable by everyone`).
    pub why: String,
    /// Who could change it, for code to test (never [`FileRisk::why`]'s words).
    pub kind: RiskKind,
    /// Whether it is the file itself (else a directory or link on its path).
    pub file: bool,
    /// Whether it is the path as named, a symbolic link (the file itself is a link,
    /// not a directory or link above it).
    pub named: bool,
}

impl FileRisk {
    /// Whether only its mode is wrong (it belongs to an owner that may have it and is
    /// not a link): then `chmod go-w` on it is a safe repair, once everything above it
    /// is safe.
    pub fn mode_only(&self) -> bool {
        !self.md.file_type().is_symlink() && self.kind != RiskKind::Owner
    }

    /// The line that names it: `PATH (owner:group mode) is WHY`, or for a link `the
    /// symbolic link PATH on its path is owned by the user "bob"`.
    pub fn text(&self) -> String {
        let shown = format!(
            "{} ({}:{} {:04o})",
            self.path.display(),
            user_name(self.md.uid()),
            group_name(self.md.gid()),
            self.md.mode() & 0o7777
        );
        let t = self.md.file_type();
        if t.is_symlink() && self.named {
            // The path named is itself a link: not a directory's on its way.
            format!("the file {shown} is a symbolic link {}", self.why)
        } else if t.is_symlink() {
            format!("the symbolic link {shown} on its path is {}", self.why)
        } else if self.file && !t.is_file() {
            // A FIFO, a device, a socket: said by its kind.
            format!("the file {shown} is {} {}", kind_of(&t), self.why)
        } else if self.file {
            format!("the file {shown} is {}", self.why)
        } else {
            format!("the directory {shown} on its path is {}", self.why)
        }
    }
}

/// Everything on the way to the file at `path` (resolved as the kernel resolves it:
/// [`Walk`]) that someone this process does not trust could change, in the order met:
/// a symbolic link whose owner is not trusted (she may re-point it), a directory
/// traversed that is not trusted or that others may write (she may rename the file away
/// and put her own in its place; a sticky directory protects what belongs to others,
/// and what follows it must be trusted), and the file itself when it is not trusted or
/// others may write it. A root process, and any other that holds a privilege its
/// caller does not ([`privileged_process`]: a set-gid program, its deliverer), trusts
/// root alone; any other trusts root and its caller (her own group, and
/// `spool_group`, may write).
/// `file_groups`: groups the file itself may be writable by (MAILLOG's: the shared
/// spool's group, or root's, as the programs make it). A file not
/// there yet: the directories it would be made in.
pub fn file_risks(path: &Path, file_groups: &[u32]) -> Vec<FileRisk> {
    file_risks_trusting(path, file_groups, None)
}

/// [`file_risks`], where a process that is not privileged also trusts the group
/// `spool_group` (the shared spool's: its members are the spool's administrators).
pub fn file_risks_trusting(
    path: &Path,
    file_groups: &[u32],
    spool_group: Option<u32>,
) -> Vec<FileRisk> {
    risks_on_path(path, file_groups, spool_group, true)
}

/// [`file_risks_trusting`] of the way to `path` alone: the links and directories met,
/// never the file itself (not looked at: neither its ACL read nor its owner's or
/// group's name looked up). What a program that makes or appends to a file checks
/// before it opens it, the file being judged by the descriptor opened.
pub fn way_risks_trusting(path: &Path, spool_group: Option<u32>) -> Vec<FileRisk> {
    risks_on_path(path, &[], spool_group, false)
}

/// [`file_risks_trusting`]; `file_too`: the file itself is judged as well.
fn risks_on_path(
    path: &Path,
    file_groups: &[u32],
    spool_group: Option<u32>,
    file_too: bool,
) -> Vec<FileRisk> {
    // A set-gid program (and its deliverer) is held to root's rule: it trusts root
    // alone, never its caller ([`privileged_process`]).
    let root = privileged_process();
    let (uid, euid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
    );
    let (gid, egid) = (
        nix::unistd::getgid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let owner = move |u: u32| u == 0 || (!root && (u == uid || u == euid));
    // The caller's own group, and the one a set-gid program runs with (the spool's:
    // its members are the spool's administrators).
    let group = move |g: u32| !root && (g == gid || g == egid || Some(g) == spool_group);
    let dirs = Trust {
        owner: &owner,
        group: &group,
        sticky_ok: true,
    };
    let file = Trust {
        owner: &owner,
        group: &|g| group(g) || file_groups.contains(&g),
        sticky_ok: false,
    };
    let mut walk = Walk::new(path);
    let met: Vec<Met> = walk.by_ref().collect();
    let complete = walk.complete();
    let n = met.len();
    // The path as named, made absolute as the walk makes it: a link met there is the
    // file itself.
    let as_named = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = Vec::new();
    for (i, m) in met.into_iter().enumerate() {
        let last = complete && i + 1 == n;
        if last && !file_too {
            continue;
        }
        let owned = || {
            (!owner(m.md.uid())).then(|| {
                (
                    RiskKind::Owner,
                    format!("owned by {}", the_user_id(m.md.uid())),
                )
            })
        };
        let risk = if m.md.file_type().is_symlink() {
            owned()
        } else if last && std::os::unix::fs::FileTypeExt::is_char_device(&m.md.file_type()) {
            // A character device (`/dev/null`, 0666 by design) holds nothing a writer
            // could change: only who owns it counts. What reads it refuses any but an
            // empty one as not a regular file.
            owned()
        } else if last && !m.md.is_dir() {
            with_acl(&m.path, &m.md, &file)
        } else if m.md.is_dir() {
            with_acl(&m.path, &m.md, &dirs)
        } else {
            None
        };
        if let Some((kind, why)) = risk {
            let named = m.md.file_type().is_symlink() && m.path == as_named;
            out.push(FileRisk {
                path: m.path,
                md: m.md,
                why,
                kind,
                file: last,
                named,
            });
        }
    }
    out
}

/// [`changed_by_others`], POSIX ACLs included: when `p` has an access ACL its group
/// bits are the ACL's mask, so who may write through them is read from the ACL
/// ([`acl_group_class_writers`]): a named user or group `trust` does not take is named
/// (`given write by an access ACL for the user "bob"`), even where the group bits alone
/// would pass. A sticky directory `trust` lets others write is left as it is.
pub fn with_acl(p: &Path, md: &fs::Metadata, trust: &Trust) -> Option<(RiskKind, String)> {
    acl_judged(read_xattr(p, ACL_ACCESS).as_deref(), md, trust)
}

/// [`with_acl`] of the file open as `fd` (of `md`): its access ACL read through the
/// descriptor, so what was opened is what is judged.
pub fn with_acl_fd(
    fd: std::os::fd::BorrowedFd,
    md: &fs::Metadata,
    trust: &Trust,
) -> Option<(RiskKind, String)> {
    acl_judged(fxattr(fd, ACL_ACCESS).as_deref(), md, trust)
}

/// [`with_acl`] of the access ACL `acl` (none: the file has none).
fn acl_judged(acl: Option<&[u8]>, md: &fs::Metadata, trust: &Trust) -> Option<(RiskKind, String)> {
    let base = changed_by(md, trust);
    let sticky = trust.sticky_ok && md.mode() & 0o1000 != 0;
    let writers = || acl.and_then(|b| group_class_writers(b, md, trust));
    let acl = |w: Option<String>| w.map(|w| (RiskKind::Acl, w));
    match base {
        Some((RiskKind::Group, why)) => match writers() {
            Some(w) => acl(w),
            None => Some((RiskKind::Group, why)),
        },
        None if !sticky => acl(writers().flatten()),
        other => other,
    }
}

/// [`file_risks`] for the mail spool (MAILSPOOL), a directory where root makes and
/// writes every user's mailbox: the directory and every directory and link on its path
/// must be root's, and no one else may write them, except the usual spool layouts: the
/// spool sticky and writable by anyone (1777, 3777), or writable by the group `mail`
/// (Debian's root:mail 2775), whose members are the mail programs. Directories above it
/// as [`file_risks`] has them (sticky ones may be writable by others). A spool not there
/// yet: the directories it would be made in.
pub fn mail_spool_risks(path: &Path) -> Vec<FileRisk> {
    let mail = nix::unistd::Group::from_name("mail")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    file_risks(path, &[])
        .into_iter()
        .filter(|r| !mail_spool_layout(r, mail))
        .collect()
}

/// Whether risk `r` of [`file_risks`] is the usual mail spool layout [`mail_spool_risks`]
/// lets through: the spool itself (a directory) writable through its group bits by the
/// group `mail` (gid `mail`, when there is one). Any other risk (its owner, everyone, an
/// ACL, another group, a directory above it) is not.
fn mail_spool_layout(r: &FileRisk, mail: Option<u32>) -> bool {
    r.file && r.md.is_dir() && r.kind == RiskKind::Group && mail.is_some_and(|g| r.md.gid() == g)
}

/// Who besides root could change what a command of root's acting on a path reaches,
/// before it runs ([`holder`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Holder {
    /// No one: the path and everything on it is root's alone.
    Root,
    /// The user `uid` alone, who owns the file itself: she may change its mode herself.
    Owner(u32),
    /// Someone else (in words): the owner of a directory or link on its path, those who
    /// may write such a directory, or the owner of the file when another holds a
    /// directory above it.
    Others(String),
}

/// Who could swap `path` for a link (or change it) before root acts on it: the owner
/// of the file, of each symbolic link on its path, of each directory it is found in,
/// and whoever may write such a directory (a sticky one of root's lets no one replace
/// what root owns in it). A root `chmod` or `chown` of a path any of them holds could be
/// turned against root: its holder swaps the file for a link to any file first.
pub fn holder(path: &Path) -> Holder {
    let mut users: Vec<u32> = Vec::new();
    let mut others = false;
    let mets: Vec<Met> = Walk::new(path).collect();
    let n = mets.len();
    for (i, m) in mets.iter().enumerate() {
        let uid = m.md.uid();
        if uid != 0 && !users.contains(&uid) {
            users.push(uid);
        }
        let last = i + 1 == n;
        if m.md.is_dir() && !last {
            let sticky_root = uid == 0 && m.md.mode() & 0o1000 != 0;
            if !sticky_root && others_may_write(&m.path, &m.md, false) {
                others = true;
            }
        }
    }
    let owner = mets.last().map(|m| m.md.uid()).filter(|&u| u != 0);
    match (owner, users.as_slice(), others) {
        (_, [], false) => Holder::Root,
        (Some(o), [u], false) if *u == o => Holder::Owner(o),
        _ => {
            let mut who: Vec<String> = users.iter().map(|&u| the_user_id(u)).collect();
            if others {
                who.push("those who may write a directory on its path".to_string());
            }
            Holder::Others(who.join(", "))
        }
    }
}

/// The end of a `check` line whose repair is `cmds` (a `chmod` or `chown` of `path`,
/// as root would run them): ` (fix: CMDS)` when `path` is root's alone ([`holder`]);
/// for a file a user owns, in a place she alone holds, the same commands run as her
/// (`runuser -u USER -- chmod ...`, which reaches only what she may change: a link she
/// swaps in gives her nothing), or as printed when she is the one running the check;
/// else no command, and why: a root `chmod` or `chown` of a path a user holds could be
/// turned against root.
pub fn repair_text(path: &Path, cmds: &[String]) -> String {
    match holder(path) {
        Holder::Root => format!(" (fix: {})", cmds.join(" && ")),
        Holder::Owner(uid) => as_user(uid, cmds),
        Holder::Others(who) => format!(
            " (repair: have root make it anew in a directory that is root's alone all the \
             way down, and name that path; never chmod or chown {} as root: {who} could \
             swap it for a link to any file first)",
            shell_word(path)
        ),
    }
}

/// ` (fix: CMDS)` for commands the user `uid` is to run: as printed when this process is
/// hers, through `runuser -u USER --` when it is root's, else ` (repair: ask USER to
/// run: CMDS)`.
pub fn as_user(uid: u32, cmds: &[String]) -> String {
    let me = nix::unistd::geteuid().as_raw();
    let name = user_name(uid);
    if me == uid {
        format!(" (fix: {})", cmds.join(" && "))
    } else if me == 0 {
        let run: Vec<String> = cmds
            .iter()
            .map(|c| format!("runuser -u {} -- {c}", shell_word(Path::new(&name))))
            .collect();
        format!(" (fix: {})", run.join(" && "))
    } else {
        format!(
            " (repair: ask {} to run: {})",
            the_user(&name),
            cmds.join(" && ")
        )
    }
}

#[cfg(test)]
mod tests {

    /// Every path as a shell word names that very path to bash, on one printable line:
    /// plain, single-quoted, or ANSI-C quoted for control characters, a quote beside
    /// them, a backslash and octets that are not UTF-8.
    #[test]
    fn shell_words_name_the_path_they_were_made_from() {
        use std::os::unix::ffi::OsStrExt;
        let names: [&[u8]; 9] = [
            b"/var/spool/rsendmail/index/recipients",
            b"/tmp/we ird",
            b"/tmp/it's",
            b"/tmp/esc\x1b[2Jz",
            b"/tmp/line\nbreak",
            b"/tmp/quote'\x01back\\slash",
            b"/tmp/not-utf8-\xff\xfe",
            b"/tmp/digit-after\x1b1",
            b"/tmp/bidi\xe2\x80\xaeevil",
        ];
        let bash = std::path::Path::new("/bin/bash").exists();
        for name in names {
            let p = Path::new(std::ffi::OsStr::from_bytes(name));
            let w = shell_word(p);
            assert!(w.chars().all(crate::text::is_safe), "{w:?}");
            if bash {
                let out = std::process::Command::new("/bin/bash")
                    .arg("-c")
                    .arg(format!("printf %s {w}"))
                    .output()
                    .unwrap();
                assert_eq!(out.stdout, name, "{w}");
            }
        }
    }
    use super::*;

    #[test]
    fn a_path_not_written_plainly_is_named() {
        for p in ["/var/spool/rsendmail", "/data/q/", "q"] {
            assert_eq!(not_plain(Path::new(p)), None, "{p}");
        }
        for (p, why) in [
            ("/tmp/t1/../rsendmail-new", "a name of `..` in it"),
            ("/tmp/./rsendmail", "a name of `.` in it"),
            ("/tmp//rsendmail", "an empty name (`//`) in it"),
            ("/tmp/q/..", "a name of `..` in it"),
        ] {
            assert_eq!(not_plain(Path::new(p)), Some(why), "{p}");
        }
    }

    /// The system's directories, and every directory in the system's places but
    /// rsendmail's, are never taken over as an empty spool (another program's may be
    /// empty yet); one of rsendmail's places, or one outside the system's, is
    /// (`system_directory` reads nothing but the paths' links).
    #[test]
    fn system_directories_are_the_fhs_ones() {
        for p in [
            "/media",
            "/mnt",
            "/srv",
            "/opt",
            "/var/opt",
            "/var/local",
            "/usr/local/src",
            "/",
            "/tmp",
            "/etc/profile.d",
            "/etc/ssh/ssh_config.d",
            "/etc/apt/keyrings",
            "/etc/security/limits.d",
            "/etc/sudoers.d",
            "/var/log/private",
            "/var/lib/dpkg/updates",
            "/var/spool/cron/crontabs",
            "/var/spool/mqueue-out",
            "/srv/mail/queue",
            "/usr/lib/systemd/system/rsendmail.service.d",
            "/root/rsendmail",
            "/etc/rsendmail/../sudoers.d",
        ] {
            assert!(system_directory(Path::new(p)).is_some(), "{p}");
        }
        for p in [
            "/var/spool/rsendmail",
            "/var/spool/rsendmail-out",
            "/var/lib/rsendmail/queue",
            "/tmp/cmpt-x/spool",
            "/data/queue",
        ] {
            assert!(system_directory(Path::new(p)).is_none(), "{p}");
        }
    }

    /// Whose a path is, by the one rule of rsendmail's places: every kind of path an
    /// administrator may write by mistake, or a configuration may name to reach
    /// root's files, in one table. In the system's places only rsendmail's own are
    /// rsendmail's (a name beginning with `rsendmail` elsewhere there is not); links and
    /// `..` are resolved first; outside them (a scratch directory) the name rule holds.
    #[test]
    fn only_rsendmails_places_are_its_own() {
        let d = std::env::temp_dir().join(format!("rsendmail-own-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        symlink("/etc/profile.d", d.join("profile")).unwrap();
        symlink("/etc/profile.d/rsendmail-new.sh", d.join("rsendmail.log")).unwrap();
        symlink("/etc/cron.d/rsendmail", d.join("rsendmail-cron")).unwrap();
        symlink("/var/log/rsendmail.log", d.join("rsendmail-var.log")).unwrap();
        symlink("/etc/rsendmail/..", d.join("rsendmail-up")).unwrap();
        symlink(d.join("rsendmail-loop"), d.join("rsendmail-loop")).unwrap();
        let s = |p: &Path| p.display().to_string();
        let p = |rest: &str| s(&d.join(rest));
        let theirs: Vec<String> = [
            "/etc/cron.d/rsendmail",
            "/etc/profile.d/rsendmail-new.sh",
            "/etc/profile.d/rsendmail",
            "/etc/sudoers.d/rsendmail",
            "/etc/rsendmail.conf.d/x",
            "/etc/rsendmail-evil/x",
            "/etc/rsendmail/../passwd",
            "/etc/rsendmail/../rsendmail.log",
            "/etc/rsendmail/nothere/../../crontab",
            "/etc/rsendmail/..",
            "/etc/logrotate.d/rsendmail",
            "/etc/systemd/system/rsendmail.service",
            "/usr/lib/systemd/system/rsendmail.service",
            "/usr/lib/systemd/system/rsendmail-queue.service",
            "/lib/systemd/system/rsendmail.service",
            "/usr/sbin/rsendmail",
            "/usr/local/bin/rsendmail-hook",
            "/usr/share/rsendmail/x",
            "/root/rsendmail.log",
            "/root/.bashrc",
            "/home/rsendmail.log",
            "/home/x/rsendmail.log",
            "/home/x/rsendmail/mail.log",
            "/var/www/rsendmail.log",
            "/var/www/html/rsendmail/index.php",
            "/var/mail/rsendmail",
            "/var/log/syslog",
            "/var/log/mail.log",
            "/var/log/apache2/rsendmail.log",
            "/var/lib/dpkg/info/rsendmail.postinst",
            "/var/spool/cron/crontabs/rsendmail",
            "/var/tmp/rsendmail.log",
            "/run/systemd/rsendmail",
            "/opt/rsendmail/log",
            "/srv/rsendmail.log",
            "/boot/rsendmail",
            "/media",
            "/var/opt",
            "/etc/passwd",
            "/dev/null",
            "/proc/self/environ",
            "rsendmail.log",
            "/",
        ]
        .iter()
        .map(|x| x.to_string())
        .chain([
            p("profile/rsendmail-new.sh"),
            p("rsendmail.log"),
            p("rsendmail-cron"),
            p("rsendmail-up/profile.d/rsendmail.sh"),
            p("rsendmail-up/rsendmail/../shadow"),
            p("rsendmail-loop"),
            p("other/x.log"),
            p("other/sub/x.log"),
        ])
        .collect();
        for path in &theirs {
            assert!(
                not_rsendmails_own(Path::new(path)).is_some(),
                "{path} taken as rsendmail's"
            );
        }
        let ours: Vec<String> = [
            "/etc/rsendmail/auth.conf",
            "/etc/rsendmail/rsendmail.conf",
            "/etc/rsendmail/tls/client.pem",
            "/var/log/rsendmail.log",
            "/var/log/rsendmail/mail.log",
            "/run/rsendmail.pid",
            "/var/run/rsendmail.pid",
            "/var/spool/rsendmail",
            "/var/spool/rsendmail/tmp/x",
            "/var/lib/rsendmail/state",
        ]
        .iter()
        .map(|x| x.to_string())
        .chain([p("rsendmail-var.log"), p("maillog"), p("sub/rsendmail.log")])
        .collect();
        for path in &ours {
            assert_eq!(not_rsendmails_own(Path::new(path)), None, "{path}");
        }
        // Replaced by a rename, a link at the end is the name itself.
        assert!(not_rsendmails_own_name(&d.join("rsendmail.log")).is_none());
        assert!(not_rsendmails_own(&d.join("rsendmail.log")).is_some());
        // The one notion of the system's places: an empty directory of rsendmail's own
        // in them is a spool, the places themselves never are.
        for spool in ["/var/spool/rsendmail", "/var/lib/rsendmail"] {
            assert!(system_directory(Path::new(spool)).is_none(), "{spool}");
        }
        for place in ["/var/lib", "/var/www", "/etc", "/usr/share", "/media"] {
            assert!(system_directory(Path::new(place)).is_some(), "{place}");
            assert!(not_rsendmails_own(Path::new(place)).is_some(), "{place}");
        }
        let _ = fs::remove_dir_all(&d);
    }
    /// The one rule of where a pid file may be put: `/run/NAME.pid` and
    /// `/var/run/NAME.pid`, rsendmail's places, or outside the system's places; never
    /// elsewhere in them, whatever its name, `..` and links resolved first.
    #[test]
    fn a_pid_file_goes_in_run_in_rsendmails_places_or_outside_the_system() {
        let d = std::env::temp_dir().join(format!("rsendmail-pid-rule-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("own")).unwrap();
        std::os::unix::fs::symlink("/etc/cron.d", d.join("cron")).unwrap();
        std::os::unix::fs::symlink("/run", d.join("run")).unwrap();
        std::os::unix::fs::symlink("/etc/cron.d/rsendmail", d.join("own/link.pid")).unwrap();
        let p = |rel: &str| d.join(rel).display().to_string();
        let table: Vec<(String, bool)> = [
            ("/run/sendmail.pid", true),
            ("/var/run/sendmail.pid", true),
            ("/run/rsendmail.pid", true),
            ("/var/run/rsendmail.pid", true),
            ("/run/rsendmail/daemon.pid", true),
            ("/var/spool/rsendmail/daemon.pid", true),
            ("/etc/rsendmail/rsendmail.pid", true),
            ("/run/sendmail", false),
            ("/run/.pid", false),
            ("/run/sub/sendmail.pid", false),
            ("/run/../etc/sendmail.pid", false),
            ("/etc/profile.d/rsendmail.sh", false),
            ("/etc/cron.d/rsendmail", false),
            ("/etc/rsendmail.pid", false),
            ("/etc/sendmail.pid", false),
            ("/root/rsendmail.pid", false),
            ("/usr/lib/systemd/system/rsendmail.service", false),
            ("/etc/rsendmail/../cron.d/rsendmail", false),
            ("/var/log/../../etc/cron.d/rsendmail", false),
            ("/var/run/../../etc/cron.d/x.pid", false),
            ("/var/log/sendmail.pid", false),
            ("/etc/passwd", false),
            ("/proc/self/x.pid", false),
            ("/tmp", false),
            ("relative.pid", false),
        ]
        .iter()
        .map(|(x, ok)| (x.to_string(), *ok))
        .chain([
            (p("own/daemon.pid"), true),
            (p("daemon.pid"), true),
            (p("run/sendmail.pid"), true),
            // A link at the end is replaced, never written through.
            (p("own/link.pid"), true),
            (p("cron/rsendmail"), false),
            (p("cron/x.pid"), false),
            (p("own/../cron/rsendmail"), false),
        ])
        .collect();
        for (path, ok) in &table {
            let why = pid_file_place_problem(Path::new(path));
            assert_eq!(why.is_none(), *ok, "{path}: {why:?}");
        }
        let _ = fs::remove_dir_all(&d);
    }

    /// A pid file of root's is put only where no one else could change a directory on the
    /// way (she could swap it for a link to `/etc/cron.d` after the look): a directory
    /// another user owns, one everyone may write, and one reached through a root link to
    /// either are refused; a sticky directory of root's, and a root link to a directory
    /// of root's, pass.
    #[test]
    fn a_pid_file_of_roots_is_put_in_no_directory_another_user_could_change() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = std::env::temp_dir().join(format!("rsendmail-pid-dirs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        for (sub, mode, uid) in [
            ("own", 0o755, 0),
            ("hers", 0o755, 65534),
            ("open", 0o777, 0),
            ("sticky", 0o1777, 0),
        ] {
            let p = d.join(sub);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(0)).unwrap();
        }
        fs::create_dir(d.join("hers/deeper")).unwrap();
        symlink(d.join("own"), d.join("to-own")).unwrap();
        symlink(d.join("hers"), d.join("to-hers")).unwrap();
        for (rel, ok) in [
            ("own/daemon.pid", true),
            ("to-own/daemon.pid", true),
            ("sticky/daemon.pid", true),
            ("hers/daemon.pid", false),
            ("hers/deeper/daemon.pid", false),
            ("to-hers/daemon.pid", false),
            ("open/daemon.pid", false),
        ] {
            let why = pid_file_place_problem(&d.join(rel));
            assert_eq!(why.is_none(), ok, "{rel}: {why:?}");
        }
        assert!(
            pid_file_place_problem(&d.join("to-hers/daemon.pid"))
                .unwrap()
                .contains(&format!("{}, owned by the user", d.join("hers").display())),
        );
        let _ = fs::remove_dir_all(&d);
    }

    use std::os::unix::fs::symlink;

    /// An ACL's octets as the kernel stores them: version 2, then each entry.
    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend(tag.to_le_bytes());
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        v
    }

    /// An attribute longer than the first buffer (an ACL of many entries) is read
    /// whole, and one that fits it too; a missing one is none.
    #[test]
    fn extended_attributes_of_any_size_are_read_whole() {
        use std::os::unix::ffi::OsStrExt;
        let dir = scratch("xattr");
        let f = dir.join("f");
        fs::write(&f, "x").unwrap();
        let path = std::ffi::CString::new(f.as_os_str().as_bytes()).unwrap();
        for (name, len) in [("user.rsendmail.small", 10), ("user.rsendmail.big", 3000)] {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let cname = std::ffi::CString::new(name).unwrap();
            // SAFETY: NUL-terminated names; the value is valid for its length.
            let r = unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    cname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if r != 0 {
                // No user attributes on this file system: nothing to read back.
                return;
            }
            assert_eq!(read_xattr(&f, name).as_deref(), Some(&value[..]), "{name}");
        }
        assert_eq!(read_xattr(&f, "user.rsendmail.none"), None);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Named user and group entries with write are found; the owner's, the group's,
    /// the mask, other and named entries without write are not; a short buffer or
    /// another version finds nothing.
    #[test]
    fn an_acls_named_writers_are_found() {
        let all = acl(&[
            (1, 7, u32::MAX),
            (2, 7, 1001),
            (2, 5, 1002),
            (4, 7, u32::MAX),
            (8, 2, 50),
            (8, 4, 51),
            (0x10, 7, u32::MAX),
            (0x20, 7, u32::MAX),
        ]);
        assert_eq!(acl_writers(&all), vec![(true, 1001), (false, 50)]);
        assert!(acl_writers(&[]).is_empty());
        assert!(acl_writers(&[2, 0, 0]).is_empty());
        let mut v1 = all.clone();
        if let Some(b) = v1.first_mut() {
            *b = 1;
        }
        assert!(acl_writers(&v1).is_empty());
        // A trailing partial entry is not read; the whole ones before it are.
        let mut partial = all.clone();
        partial.truncate(all.len() - 3);
        assert_eq!(acl_writers(&partial).len(), 2);
    }

    /// The mask takes what it does not hold from every named entry: a named writer
    /// under a mask without write is no writer, and one left nothing is not named.
    #[test]
    fn the_mask_limits_named_entries() {
        let masked = acl(&[
            (1, 7, u32::MAX),
            (2, 7, 1001),
            (8, 2, 50),
            (4, 5, u32::MAX),
            (0x10, 5, u32::MAX),
            (0x20, 0, u32::MAX),
        ]);
        assert!(acl_writers(&masked).is_empty());
        assert_eq!(acl_named(&masked), vec![(true, 1001, 5)]);
    }

    proptest::proptest! {
        /// Any octets: no panic, and only whole entries of the buffer are named.
        #[test]
        fn acl_parsing_never_panics(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let found = acl_writers(&buf);
            proptest::prop_assert!(found.len() <= buf.len().saturating_sub(4) / 8);
        }

        /// Entries made up: exactly the named ones with write the mask leaves come back,
        /// in order.
        #[test]
        fn acl_parsing_finds_exactly_the_named_writers(
            entries in proptest::collection::vec((0u16..0x40, 0u16..8, proptest::prelude::any::<u32>()), 0..20)
        ) {
            let mask = entries.iter().find(|(t, _, _)| *t == 0x10).map_or(7, |(_, p, _)| *p);
            let want: Vec<(bool, u32)> = entries
                .iter()
                .filter(|(t, p, _)| p & mask & 2 != 0 && (*t == 2 || *t == 8))
                .map(|(t, _, id)| (*t == 2, *id))
                .collect();
            proptest::prop_assert_eq!(acl_writers(&acl(&entries)), want);
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rsendmail-walk-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// `one_of` finds a file of the list by its name, through a link or a hard link,
    /// and a path in a directory of the list (the spool), whether or not the file is
    /// there; a path that is none of them is not found, nor a missing one beside a
    /// file of the list.
    #[test]
    fn one_of_finds_a_file_however_named() {
        let d = scratch("one-of");
        let conf = d.join("rsendmail.conf");
        fs::write(&conf, "x\n").unwrap();
        let spool = d.join("spool");
        fs::create_dir(&spool).unwrap();
        let missing = d.join("missing-program");
        std::os::unix::fs::symlink(&conf, d.join("link")).unwrap();
        fs::hard_link(&conf, d.join("hard")).unwrap();
        fs::write(d.join("other"), "y\n").unwrap();
        let files = vec![
            ("the configuration file".to_string(), conf.clone()),
            ("the program".to_string(), missing.clone()),
            ("the spool (SPOOLDIR)".to_string(), spool.clone()),
        ];
        let found = |p: &Path| one_of(p, &files);
        let is_conf = format!("it is the configuration file {}", conf.display());
        assert_eq!(found(&conf).as_deref(), Some(is_conf.as_str()));
        assert_eq!(found(&d.join("link")).as_deref(), Some(is_conf.as_str()));
        assert_eq!(found(&d.join("hard")).as_deref(), Some(is_conf.as_str()));
        assert_eq!(
            found(&d.join("spool/../rsendmail.conf")).as_deref(),
            Some(is_conf.as_str())
        );
        assert_eq!(
            found(&missing),
            Some(format!("it is the program {}", missing.display()))
        );
        assert_eq!(
            found(&spool.join("log")),
            Some(format!("it is in the spool (SPOOLDIR) {}", spool.display()))
        );
        fs::write(spool.join("log"), "").unwrap();
        assert_eq!(
            found(&spool.join("log")),
            Some(format!("it is in the spool (SPOOLDIR) {}", spool.display()))
        );
        assert_eq!(
            found(&spool),
            Some(format!("it is the spool (SPOOLDIR) {}", spool.display()))
        );
        assert_eq!(found(&d.join("other")), None);
        assert_eq!(found(&d.join("not-there")), None);
        let _ = fs::remove_dir_all(&d);
    }

    /// An access ACL that lets a user write a program root runs (its group bits are
    /// then the ACL's mask, 0775) is named as that entry, not as the file's group
    /// (root's): on the file, and on its directory; with the ACL removed the program is
    /// root's alone again.
    #[test]
    fn a_programs_acl_writers_are_named() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
            return;
        };
        let d = scratch("progacl");
        let f = d.join("prog");
        fs::write(&f, "#!/bin/sh\n").unwrap();
        for p in [&d, &f] {
            std::os::unix::fs::chown(p, Some(0), Some(0)).unwrap();
            fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let setfacl = |args: &[&str], p: &Path| {
            std::process::Command::new("setfacl")
                .args(args)
                .arg(p)
                .status()
                .is_ok_and(|s| s.success())
        };
        let acl = format!("u:{}:rwx", nobody.uid);
        if !setfacl(&["-m", &acl], &f) {
            // No setfacl, or no ACLs on this file system: nothing to name.
            let _ = fs::remove_dir_all(&d);
            return;
        }
        let by = format!(
            "given write by an access ACL for {}",
            the_user(&nobody.name)
        );
        let fault = program_fault(&f).unwrap();
        assert_eq!(fault.why, format!("it is {by}"));
        assert_eq!((fault.kind, fault.dir), (Some(RiskKind::Acl), false));
        assert!(setfacl(&["-b"], &f));
        assert!(program_fault(&f).is_none());
        assert!(setfacl(&["-m", &acl], &d));
        let fault = program_fault(&f).unwrap();
        assert_eq!(fault.why, format!("its directory {} is {by}", d.display()));
        assert_eq!((fault.kind, fault.dir), (Some(RiskKind::Acl), true));
        let _ = fs::remove_dir_all(&d);
    }

    /// The walk meets what the kernel meets: each directory, each link, then what its
    /// target meets (a relative one from the link's directory, `..` going back up), in
    /// order, with the link last followed; it ends where the path leads.
    #[test]
    fn a_walk_meets_every_link_and_directory_the_kernel_traverses() {
        let d = scratch("order");
        fs::create_dir_all(d.join("a/b")).unwrap();
        fs::create_dir(d.join("real")).unwrap();
        symlink("../real", d.join("a/l2")).unwrap();
        symlink("a/b/../l2", d.join("l1")).unwrap();
        let mut w = Walk::new(&d.join("l1/x/.."));
        fs::create_dir(d.join("real/x")).unwrap();
        let met: Vec<Met> = w.by_ref().collect();
        assert!(w.complete());
        assert_eq!(w.resolved(), d.join("real"));
        let tail: Vec<(PathBuf, Option<PathBuf>)> = met
            .into_iter()
            .skip_while(|m| m.path != d)
            .map(|m| (m.path, m.via))
            .collect();
        let l1 = Some(d.join("l1"));
        let l2 = Some(d.join("a/l2"));
        assert_eq!(
            tail,
            vec![
                (d.clone(), None),
                (d.join("l1"), None),
                (d.join("a"), l1.clone()),
                (d.join("a/b"), l1.clone()),
                (d.join("a/l2"), l1.clone()),
                (d.join("real"), l2.clone()),
                (d.join("real/x"), l2.clone()),
            ]
        );
        let _ = fs::remove_dir_all(&d);
    }

    /// A missing component ends the walk (what was met is kept); a loop of links ends
    /// it after [`MAX_LINKS`].
    #[test]
    fn a_walk_ends_at_a_missing_component_and_at_a_loop() {
        let d = scratch("ends");
        let mut w = Walk::new(&d.join("no/such"));
        assert_eq!(w.by_ref().last().map(|m| m.path), Some(d.clone()));
        assert!(!w.complete());
        symlink(d.join("b"), d.join("a")).unwrap();
        symlink(d.join("a"), d.join("b")).unwrap();
        let mut w = Walk::new(&d.join("a/x"));
        let links = w.by_ref().filter(|m| m.md.file_type().is_symlink()).count();
        assert!(!w.complete());
        assert_eq!(links, MAX_LINKS + 1);
        let _ = fs::remove_dir_all(&d);
    }

    /// The kinds of risk, from the metadata: an owner not trusted, everyone, the group;
    /// a sticky directory passes where `sticky_ok`.
    #[test]
    fn risks_have_their_kind() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("kinds");
        let md = |mode: u32| {
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
            fs::metadata(&d).unwrap()
        };
        let me = fs::metadata(&d).unwrap().uid();
        let owner = move |u: u32| u == me;
        let trust = Trust {
            owner: &owner,
            group: &|_| false,
            sticky_ok: true,
        };
        let kind = |mode| changed_by(&md(mode), &trust).map(|(k, _)| k);
        assert_eq!(kind(0o755), None);
        assert_eq!(kind(0o2775), Some(RiskKind::Group));
        assert_eq!(kind(0o777), Some(RiskKind::Everyone));
        assert_eq!(kind(0o1777), None);
        let stranger = Trust {
            owner: &|_| false,
            ..trust
        };
        assert_eq!(
            changed_by(&md(0o755), &stranger).map(|(k, _)| k),
            Some(RiskKind::Owner)
        );
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let _ = fs::remove_dir_all(&d);
    }

    /// The mail spool's usual layout (the spool itself writable by the group `mail`,
    /// root:mail 2775) is let through by the risk's kind, whatever its words; a spool
    /// writable by everyone, by another group or through an ACL, one whose owner is not
    /// trusted, a directory above the spool and a regular file are not.
    #[test]
    fn the_mail_spools_group_layout_is_told_by_kind() {
        let d = scratch("mailspool");
        let f = d.join("file");
        fs::write(&f, "").unwrap();
        let dir_md = fs::metadata(&d).unwrap();
        let mail = dir_md.gid();
        let risk = |md: &fs::Metadata, kind, why: &str, file| FileRisk {
            path: d.clone(),
            md: md.clone(),
            why: why.to_string(),
            kind,
            file,
            named: false,
        };
        let group = risk(&dir_md, RiskKind::Group, "writable by its group mail", true);
        assert!(mail_spool_layout(&group, Some(mail)));
        // Its words are for people: they may say anything.
        let worded = risk(&dir_md, RiskKind::Group, "group-writable (mail)", true);
        assert!(mail_spool_layout(&worded, Some(mail)));
        // Refused: another group, no group `mail`, a directory above the spool.
        assert!(!mail_spool_layout(&group, Some(mail.wrapping_add(1))));
        assert!(!mail_spool_layout(&group, None));
        let above = risk(
            &dir_md,
            RiskKind::Group,
            "writable by its group mail",
            false,
        );
        assert!(!mail_spool_layout(&above, Some(mail)));
        // Refused: other kinds, even in the words of the group's.
        for kind in [RiskKind::Everyone, RiskKind::Owner, RiskKind::Acl] {
            let r = risk(&dir_md, kind, "writable by its group mail", true);
            assert!(!mail_spool_layout(&r, Some(mail)), "{kind:?}");
        }
        // Refused: a regular file where the spool should be.
        let file_md = fs::metadata(&f).unwrap();
        let r = risk(
            &file_md,
            RiskKind::Group,
            "writable by its group mail",
            true,
        );
        assert!(!mail_spool_layout(&r, Some(mail)));
        let _ = fs::remove_dir_all(&d);
    }

    /// On the file system (as root, with a group `mail`: what the rule is for): the
    /// usual mail spools pass, root:mail 2775 and a sticky 1777; one writable by
    /// everyone without the sticky bit, or by another group, is refused.
    #[test]
    fn mail_spool_layouts_on_disk() {
        use std::os::unix::fs::PermissionsExt;
        let Some(mail) = nix::unistd::Group::from_name("mail").ok().flatten() else {
            return;
        };
        if !root_process() {
            return;
        }
        let d = scratch("mailspool-disk");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let spool = d.join("mail");
        fs::create_dir(&spool).unwrap();
        let set = |gid: u32, mode: u32| {
            std::os::unix::fs::chown(&spool, Some(0), Some(gid)).unwrap();
            fs::set_permissions(&spool, fs::Permissions::from_mode(mode)).unwrap();
            mail_spool_risks(&spool)
                .iter()
                .map(|r| r.kind)
                .collect::<Vec<_>>()
        };
        let mail = mail.gid.as_raw();
        assert_eq!(set(mail, 0o2775), vec![]);
        assert_eq!(set(0, 0o1777), vec![]);
        assert_eq!(set(mail, 0o0777), vec![RiskKind::Everyone]);
        // A group other than `mail`.
        let other = (1..65534).find(|&g| {
            g != mail
                && nix::unistd::Group::from_gid(g.into())
                    .ok()
                    .flatten()
                    .is_some()
        });
        if let Some(g) = other {
            assert_eq!(set(g, 0o2775), vec![RiskKind::Group]);
        }
        let _ = fs::remove_dir_all(&d);
    }

    /// The well-known paths no rsendmail program writes nor repairs are found by name,
    /// through `..` and links; a path of rsendmail's own is none of them.
    #[test]
    fn system_paths_are_known_whatever_their_spelling() {
        assert_eq!(
            system_path(Path::new("/etc/passwd")),
            Some("the system's password file")
        );
        assert_eq!(
            system_path(Path::new("/etc/../etc/passwd")),
            Some("the system's password file")
        );
        assert_eq!(system_path(Path::new("/dev/null")), Some(""));
        assert_eq!(
            system_path(Path::new("/proc/self/status")),
            Some("the kernel's")
        );
        assert_eq!(
            system_path(Path::new("/var/tmp/")),
            Some("a shared sticky directory")
        );
        assert_eq!(system_path(Path::new("/")), Some("the root directory"));
        let d = std::env::temp_dir().join(format!("rsm-syspath-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let link = d.join("log");
        std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
        assert_eq!(
            system_path(&link),
            Some("the system's shadow password file")
        );
        assert_eq!(system_path(&d.join("maillog")), None);
        assert_eq!(system_path(Path::new("/etc/rsendmail/auth.conf")), None);
        let _ = fs::remove_dir_all(&d);
    }
}

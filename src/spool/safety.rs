//! Which directory is a safe spool: the one rule every program that uses the spool
//! applies (submissions, `-bs`, `-bd`, queue runs, `rsendmail-admin`'s queue commands,
//! `init` and `check`).
//!
//! - The spool directory belongs to root; a user's own (private) spool to root or to
//!   that user. Whoever owns it can change its mode, read every message queued in it
//!   and replace any entry.
//! - Every directory above it, on the path as configured and on the path it resolves
//!   to, belongs to root (a private spool's: root or that user) and is writable by
//!   nobody else: neither by everyone nor by a group other than root's, unless it is
//!   sticky (a sticky directory lets a user replace only what she owns, and the next
//!   directory down must be root's). Whoever may write a directory above the spool can
//!   rename the spool away and put a directory of her own in its place.
//! - Its group, the one `rsendmail` is set-gid to, is never root's group nor a user's
//!   primary group ([`group_unfit`]): `rsendmail-admin init` refuses to give it one and
//!   `check` fails one. (The programs that use the spool do not refuse it for its
//!   group: who is in the group is the administrator's choice.)
//! - A symbolic link on its path as configured (the spool itself or a directory above
//!   it) belongs to root (a private spool's: root or that user): in a sticky directory
//!   the link's owner may replace it, and so point the spool somewhere else.
//! - Nothing in it or its sub-directories is writable by everyone
//!   ([`super::Spool::world_writable`]).
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
    /// Why, in a few words (`owned by bob`, `writable by its group staff`).
    pub why: String,
}

impl UnsafeDir {
    /// The commands (shell words) that put it right, run as root: root its owner, and
    /// (a directory above the spool) nobody else writing it.
    pub fn fix(&self, private: bool) -> Vec<String> {
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
    /// Whether it is a symbolic link on the spool's path (the spool itself or above it).
    pub fn is_link(&self) -> bool {
        self.md.file_type().is_symlink()
    }
}

/// `p` as a shell word: as it is when it holds only characters no shell reads
/// specially, else in single quotes.
pub fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The name of the user `uid` (the number when it has none).
pub fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
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
    primary_user(gid).map(|u| format!("the primary group of the user {u}"))
}

/// The name of a user (a passwd entry) whose primary group is `gid`, if any.
pub fn primary_user(gid: u32) -> Option<String> {
    static ENUMERATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // The passwd enumeration's position is one per process: one walk at a time.
    let _held = ENUMERATING.lock().unwrap_or_else(|e| e.into_inner());
    let mut found = None;
    // SAFETY: the enumeration is walked start to end under the lock above; each entry's
    // name is copied before the next call.
    unsafe {
        libc::setpwent();
        loop {
            let p = libc::getpwent();
            if p.is_null() {
                break;
            }
            if (*p).pw_gid == gid && !(*p).pw_name.is_null() {
                found = Some(
                    std::ffi::CStr::from_ptr((*p).pw_name)
                        .to_string_lossy()
                        .into_owned(),
                );
                break;
            }
        }
        libc::endpwent();
    }
    found
}

/// The directories above `dir` (nearest first), on its path as written and, when that
/// differs, on the path it resolves to (a spool reached through a symbolic link).
fn above(dir: &Path) -> Vec<PathBuf> {
    fn add(out: &mut Vec<PathBuf>, p: &Path, with_itself: bool) {
        for a in p.ancestors().skip(usize::from(!with_itself)) {
            if !a.as_os_str().is_empty() && !out.iter().any(|o| o == a) {
                out.push(a.to_path_buf());
            }
        }
    }
    let mut out: Vec<PathBuf> = Vec::new();
    if dir.is_absolute() {
        add(&mut out, dir, false);
    }
    if let Ok(real) = fs::canonicalize(dir) {
        add(&mut out, &real, false);
    } else if let Some(real) = dir.parent().and_then(|p| fs::canonicalize(p).ok()) {
        // The spool not made yet: the directories it would be made in.
        add(&mut out, &real, true);
    }
    out
}

impl Spool {
    /// The first directory that makes this spool unsafe by the module's rule (its
    /// owner, the directories above it), if any; the spool itself first. A
    /// spool not there yet: the directories it would be made in. Directories writable
    /// by everyone inside the spool are [`Spool::world_writable`]'s.
    pub fn unsafe_dir(&self) -> Option<UnsafeDir> {
        let me = nix::unistd::geteuid().as_raw();
        let trusted = |uid: u32| uid == 0 || (self.private && uid == me);
        if let Some(md) = fs::metadata(&self.dir).ok().filter(fs::Metadata::is_dir) {
            let why = if !trusted(md.uid()) {
                Some(format!(
                    "owned by {}, not {}",
                    user_name(md.uid()),
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
                return Some(UnsafeDir {
                    dir: self.dir.clone(),
                    md,
                    above: false,
                    why,
                });
            }
        }
        // A symbolic link on the path as configured: its owner may re-point it.
        for p in self.dir.ancestors() {
            let Ok(md) = fs::symlink_metadata(p) else {
                continue;
            };
            if md.file_type().is_symlink() && !trusted(md.uid()) {
                return Some(UnsafeDir {
                    dir: p.to_path_buf(),
                    above: p != self.dir,
                    why: format!("a symbolic link owned by {}", user_name(md.uid())),
                    md,
                });
            }
        }
        let my_gid = nix::unistd::getegid().as_raw();
        for a in above(&self.dir) {
            let Ok(md) = fs::metadata(&a) else { continue };
            let mode = md.mode();
            let sticky = mode & 0o1000 != 0;
            let why = if !trusted(md.uid()) {
                format!("owned by {}", user_name(md.uid()))
            } else if mode & 0o002 != 0 && !sticky {
                "writable by everyone".to_string()
            } else if mode & 0o020 != 0
                && !sticky
                && md.gid() != 0
                && !(self.private && md.gid() == my_gid)
            {
                format!("writable by its group {}", group_name(md.gid()))
            } else {
                continue;
            };
            return Some(UnsafeDir {
                dir: a,
                md,
                above: true,
                why,
            });
        }
        None
    }

    /// The line that refuses a spool for the directory `u` ([`Spool::unsafe_dir`]), for
    /// every program that uses the spool, ending with where to find the repair; with
    /// `fix` (`rsendmail-admin check` and `init`), ending with those commands.
    pub fn unsafe_dir_problem(&self, u: &UnsafeDir, fix: Option<&[String]>) -> String {
        let shown = format!(
            "{} ({}:{} {:04o})",
            u.dir.display(),
            user_name(u.md.uid()),
            group_name(u.md.gid()),
            u.md.mode() & 0o7777
        );
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
            Some(cmds) if !cmds.is_empty() => format!("(fix: {})", cmds.join(" && ")),
            _ => "(`rsendmail-admin check` says how)".to_string(),
        };
        format!(
            "{what}, so the queue is not used until it and every directory above it are \
             {owner} alone {how}"
        )
    }
}

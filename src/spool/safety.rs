//! Which directory is a safe spool: the one rule every program that uses the spool
//! applies (submissions, `-bs`, `-bd`, queue runs, `rsendmail-admin`'s queue commands,
//! `init` and `check`).
//!
//! - The spool directory belongs to root; a user's own (private) spool to root or to
//!   that user. Whoever owns it can change its mode, read every message queued in it
//!   and replace any entry.
//! - Every directory above it that its path meets as the kernel resolves it ([`Walk`]:
//!   each directory traversed, also through symbolic links and their targets) belongs to root (a private spool's: root or that user) and is writable by
//!   nobody else: neither by everyone nor by a group other than root's, unless it is
//!   sticky (a sticky directory lets a user replace only what she owns, and the next
//!   directory down must be root's). Whoever may write a directory above the spool can
//!   rename the spool away and put a directory of her own in its place.
//! - Its group, the one `rsendmail` is set-gid to, is never root's group nor a user's
//!   primary group ([`group_unfit`]): `rsendmail-admin init` refuses to give it one and
//!   `check` fails one. (The programs that use the spool do not refuse it for its
//!   group: who is in the group is the administrator's choice.)
//! - Every symbolic link its path meets (the spool itself, a directory above it, a
//!   link in another link's target) belongs to root (a private spool's: root or that
//!   user): in a sticky directory the link's owner may replace it, and so point the
//!   spool somewhere else.
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
    /// The symbolic link through which it was reached, when its path as configured
    /// leads through one.
    pub via: Option<PathBuf>,
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
        if let Some(m) = met
            .iter()
            .find(|m| m.md.file_type().is_symlink() && !trusted(m.md.uid()))
        {
            return Some(UnsafeDir {
                dir: m.path.clone(),
                above: m.path != self.dir,
                why: format!("a symbolic link owned by {}", user_name(m.md.uid())),
                md: m.md.clone(),
                via: m.via.clone(),
            });
        }
        let my_gid = nix::unistd::getegid().as_raw();
        let trust = Trust {
            owner: &trusted,
            group: &|gid| gid == 0 || (self.private && gid == my_gid),
            sticky_ok: true,
        };
        for m in met.into_iter().rev().filter(|m| m.md.is_dir()) {
            let Some(why) = changed_by_others(&m.md, &trust) else {
                continue;
            };
            let md = m.md;
            return Some(UnsafeDir {
                dir: m.path,
                md,
                above: true,
                why,
                via: m.via,
            });
        }
        None
    }

    /// The line that refuses a spool for the directory `u` ([`Spool::unsafe_dir`]), for
    /// every program that uses the spool, ending with where to find the repair; with
    /// `fix` (`rsendmail-admin check` and `init`), ending with those commands.
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
            Some(cmds) if !cmds.is_empty() => format!("(fix: {})", cmds.join(" && ")),
            _ => "(`rsendmail-admin check` says how)".to_string(),
        };
        format!(
            "{what}, so the queue is not used until it and every directory above it are \
             {owner} alone {how}"
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

/// Who besides the trusted owners could change a file or directory of `md`, in words
/// (`owned by bob`, `writable by everyone`, `writable by its group staff`): its owner
/// when `trust` does not take it, else everyone or its group when they may write it.
pub fn changed_by_others(md: &fs::Metadata, trust: &Trust) -> Option<String> {
    let mode = md.mode();
    let sticky = trust.sticky_ok && mode & 0o1000 != 0;
    if !(trust.owner)(md.uid()) {
        Some(format!("owned by {}", user_name(md.uid())))
    } else if mode & 0o002 != 0 && !sticky {
        Some("writable by everyone".to_string())
    } else if mode & 0o020 != 0 && !sticky && !(trust.group)(md.gid()) {
        Some(format!("writable by its group {}", group_name(md.gid())))
    } else {
        None
    }
}

/// Why root must not execute the program at `path`, if so: anyone but root could change
/// what runs. Its path is resolved as the kernel resolves it ([`Walk`]): every symbolic
/// link met belongs to root, and the file reached is a regular file that it and its
/// directory are root's alone (owned by root, writable by nobody else). `None` also
/// when nothing is at `path` (executing it then fails, and says so).
pub fn unsafe_program(path: &Path) -> Option<String> {
    let mut walk = Walk::new(path);
    let met: Vec<Met> = walk.by_ref().collect();
    if let Some(l) = met
        .iter()
        .find(|m| m.md.file_type().is_symlink() && m.md.uid() != 0)
    {
        return Some(format!(
            "the symbolic link {} on its path is owned by {}",
            l.path.display(),
            user_name(l.md.uid())
        ));
    }
    if !walk.complete() {
        return (walk.links > MAX_LINKS)
            .then(|| "its path leads through too many symbolic links".to_string());
    }
    let file = met.last()?;
    if !file.md.is_file() {
        return Some("it is not a regular file".to_string());
    }
    if let Some(w) = changed_by_others(&file.md, &Trust::ROOT_ALONE) {
        return Some(match &file.via {
            Some(_) => format!("{}, which it leads to, is {w}", file.path.display()),
            None => format!("it is {w}"),
        });
    }
    let dir = walk.resolved().parent()?;
    let md = met.iter().rev().find(|m| m.path == dir)?;
    changed_by_others(&md.md, &Trust::ROOT_ALONE)
        .map(|w| format!("its directory {} is {w}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rsendmail-walk-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
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
}

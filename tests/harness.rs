//! Test harness: a temporary config and spool per test, the real binaries run through
//! symlinks named as callers name them, and failure output that shows the command, its
//! status, its output and the spool.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod servers;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rsendmail"))
}

/// The binary used where the release build matters (strace tests): `RSENDMAIL_RELEASE_BIN`
/// when set (CI builds it), else the test build.
pub fn release_bin() -> PathBuf {
    std::env::var_os("RSENDMAIL_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(bin)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory with a config file, a spool and caller-named links.
pub struct Env {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub spool: PathBuf,
}

pub struct Run {
    pub cmd: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub listing: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}\nspool:\n{}",
            self.cmd, self.code, self.stdout, self.stderr, self.listing
        )
    }

    /// Assert the exit status, printing everything when it is wrong.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(self.code, want, "\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stdout_is(&self, want: &str) -> &Run {
        assert_eq!(self.stdout, want, "\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stderr_is(&self, want: &str) -> &Run {
        assert_eq!(self.stderr, want, "\n{}", self.describe());
        self
    }
}

/// The report's queue ID in a line of `rsendmail-admin bounce`: `HEAD RID (HOW)`, `head`
/// the words before it, `how` how the report was handed on; a panic showing the line
/// when it is not so, or RID is no queue ID (14 characters, no blank).
#[track_caller]
pub fn bounce_report_id(line: &str, head: &str, how: &str) -> String {
    let rid = line
        .strip_prefix(head)
        .and_then(|r| r.strip_suffix(&format!(" ({how})")))
        .unwrap_or_else(|| panic!("not {head:?}RID ({how}): {line:?}"));
    assert!(rid.len() == 14 && !rid.contains(' '), "{line:?}");
    rid.to_string()
}

/// The fix check prints to replace the line `old` of the configuration `conf` with `new`:
/// a `sed -i` finding it by its whole text (`sed`'s special characters escaped; the
/// tests' lines hold no quote).
pub fn line_fix(conf: &Path, old: &str, new: &str) -> String {
    let esc = |t: &str, special: &str| {
        t.chars()
            .flat_map(|c| special.contains(c).then_some('\\').into_iter().chain([c]))
            .collect::<String>()
    };
    assert!(!old.contains('\'') && !new.contains('\''));
    format!(
        "sed -i 's|^{}$|{}|' {}",
        esc(old, "\\.*[$|"),
        esc(new, "\\&|"),
        conf.display()
    )
}

/// Write a configuration file at `path` naming `spool` (SPOOLDIR) and the tests' mail
/// name (MAILNAME), then `extra` (whole lines).
pub fn write_config(path: &Path, spool: &Path, extra: &str) {
    fs::write(
        path,
        format!(
            "SPOOLDIR {}\nMAILNAME test.example\n{extra}",
            spool.display()
        ),
    )
    .unwrap();
}

/// Make a spool directory as an install (or `rsendmail-admin init`) does: rsendmail
/// makes no spool that a `SPOOLDIR` names. Mode 2770, as the system spool has.
pub fn make_spool(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir(path).unwrap();
    fit_spool_group(path);
    fs::set_permissions(path, fs::Permissions::from_mode(0o2770)).unwrap();
}

/// Give the directory `path` a group fit for a spool ([`fit_group`]), as the install
/// does, when the caller is root (else it keeps its own: a user's spool).
pub fn fit_spool_group(path: &Path) {
    if is_root() {
        std::os::unix::fs::chown(path, None, Some(fit_group().1)).unwrap();
    }
}

/// Make the test user's own spool at `path` (mode 0700), as a user makes the directory a
/// `SPOOLDIR` of her own names: rsendmail makes only the built-in per-user spool.
pub fn make_user_spool(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir(path).unwrap();
    let u = test_user();
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(u.uid)),
        Some(nix::unistd::Gid::from_raw(u.gid)),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).unwrap();
}

impl Env {
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// A config holding SPOOLDIR and MAILNAME, then `extra`.
    pub fn with_config(extra: &str) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Under the build's directory, not the sticky /tmp: root runs the programs
        // tests install here, and no one else may write a directory on their path.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("rsendmail-it-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let spool = dir.join("spool");
        make_spool(&spool);
        let conf = dir.join("rsendmail.conf");
        fs::write(
            &conf,
            format!(
                // DNS goes to a closed port on 127.0.0.1: a test that reaches MX delivery
                // fails its lookup at once and never sends a query off this machine.
                // Mailboxes stay in the scratch directory, and failures of interactive
                // deliveries are mailed back there rather than saved in ~/dead.letter.
                "SPOOLDIR {}\nMAILNAME test.example\nRESOLVER 127.0.0.1:{}\nO Timeout.resolver.retrans=1s\nO Timeout.resolver.retry=0\n{extra}\nMAILSPOOL {}\nO ErrorMode=m\n",
                spool.display(),
                closed_port(),
                dir.join("mail").display()
            ),
        )
        .unwrap();
        fs::create_dir_all(dir.join("mail")).unwrap();
        for name in ["sendmail", "mailq", "newaliases", "send-mail"] {
            std::os::unix::fs::symlink(bin(), dir.join(name)).unwrap();
        }
        Env { dir, conf, spool }
    }

    /// The mail spool [`Env::mail_spool_outside`] names.
    fn mail_spool_outside_path(&self) -> PathBuf {
        let mut name = self.dir.as_os_str().to_owned();
        name.push("-mail");
        PathBuf::from(name)
    }

    /// The config file's text with its `SPOOLDIR` line naming `dir` (the first such line,
    /// whatever it names now): for a test of a spool mistyped, moved or made elsewhere.
    pub fn config_naming_spool(&self, dir: &Path) -> String {
        let text = fs::read_to_string(&self.conf).unwrap();
        let mut found = false;
        let out: String = text
            .split_inclusive('\n')
            .map(|l| {
                if !found && l.starts_with("SPOOLDIR ") {
                    found = true;
                    format!("SPOOLDIR {}\n", dir.display())
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(found, "{text}");
        out
    }

    /// Name a MAILSPOOL outside the scratch directory (beside it, root's when made by
    /// root): for a test that gives the scratch directory to a user to test the queue's
    /// rule, where the mail spool in it would be refused first.
    pub fn mail_spool_outside(&self) {
        let outside = self.mail_spool_outside_path();
        fs::create_dir_all(&outside).unwrap();
        let text = fs::read_to_string(&self.conf).unwrap();
        let inside = format!("MAILSPOOL {}\n", self.dir.join("mail").display());
        assert!(text.contains(&inside), "{text}");
        let text = text.replace(&inside, &format!("MAILSPOOL {}\n", outside.display()));
        fs::write(&self.conf, text).unwrap();
    }

    /// Append lines to the config file.
    pub fn add_config(&self, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&self.conf)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// The number (from 1) of the first line of the config that starts with `start`:
    /// where an error about that keyword's line is said to be.
    #[track_caller]
    pub fn config_line(&self, start: &str) -> usize {
        fs::read_to_string(&self.conf)
            .unwrap()
            .lines()
            .position(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in {}", self.conf.display()))
            + 1
    }

    pub fn link(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Run `sendmail -C conf ARGS` with `stdin`.
    pub fn sendmail(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut full = vec!["-C", self.conf.to_str().unwrap()];
        full.extend_from_slice(args);
        self.run_raw(&self.link("sendmail"), &full, stdin)
    }

    /// Run `sendmail -C conf ARGS` with `stdin` under a file-size limit of `bytes`
    /// (RLIMIT_FSIZE, as `ulimit -f` or systemd's `LimitFSIZE=` set it), with SIGXFSZ
    /// at its default action as a shell leaves it.
    pub fn sendmail_fsize(&self, bytes: u64, args: &[&str], stdin: &[u8]) -> Run {
        self.sendmail_rlimit(libc::RLIMIT_FSIZE as i32, bytes, args, stdin)
    }

    /// Run `sendmail -C conf ARGS` with `stdin` under the limit `resource` (a
    /// `libc::RLIMIT_*`) set to `value`, soft and hard, with SIGXFSZ at its default action.
    pub fn sendmail_rlimit(&self, resource: i32, value: u64, args: &[&str], stdin: &[u8]) -> Run {
        use std::os::unix::process::CommandExt;
        let bytes = value;
        let mut full = vec!["-C", self.conf.to_str().unwrap()];
        full.extend_from_slice(args);
        let program = self.link("sendmail");
        let mut cmd = Command::new(&program);
        cmd.args(&full)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only setrlimit and sigaction between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                #[allow(clippy::useless_conversion)]
                if libc::setrlimit(resource.try_into().unwrap_or_default(), &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGXFSZ, &sa, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn");
        {
            let mut si = child.stdin.take().unwrap();
            let _ = si.write_all(stdin);
        }
        let out = child.wait_with_output().expect("wait");
        self.finish(&program, &full, out)
    }

    /// Run a program (through its link) with exactly these args.
    pub fn run_raw(&self, program: &Path, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        {
            let mut si = child.stdin.take().unwrap();
            let _ = si.write_all(stdin);
        }
        let out = child.wait_with_output().expect("wait");
        self.finish(program, args, out)
    }

    pub fn finish(&self, program: &Path, args: &[&str], out: Output) -> Run {
        Run {
            cmd: format!("{} {}", program.display(), args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            listing: self.listing(),
        }
    }

    /// `ls -la` of the spool, for failure messages.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = fs::read_dir(&self.spool) {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                s.push_str(&n);
                s.push('\n');
            }
        }
        s
    }

    /// The committed queue files.
    pub fn entries(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.spool)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("qf"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The only entry's text (panics unless there is exactly one).
    #[track_caller]
    pub fn only_entry(&self) -> String {
        let e = self.entries();
        assert_eq!(e.len(), 1, "entries: {e:?}\n{}", self.listing());
        fs::read_to_string(&e[0]).unwrap()
    }

    /// The queue id of the only entry (panics unless there is exactly one).
    #[track_caller]
    pub fn only_id(&self) -> String {
        let e = self.entries();
        assert_eq!(e.len(), 1, "entries: {e:?}\n{}", self.listing());
        let name = e[0].file_name().unwrap().to_string_lossy().into_owned();
        name.strip_prefix("qf").unwrap().to_string()
    }

    /// The message part of the only entry (after the envelope section).
    #[track_caller]
    pub fn only_message(&self) -> String {
        let text = self.only_entry();
        let at = text.find("\n\n").expect("envelope ends") + 2;
        text[at..].to_string()
    }

    /// `mailq ARGS` (with this config): its output, the exit status checked to be 0.
    #[track_caller]
    pub fn mailq(&self, args: &[&str]) -> String {
        let mut a = vec!["-C", self.conf.to_str().unwrap()];
        a.extend_from_slice(args);
        let r = self.run_raw(&self.link("mailq"), &a, b"");
        r.code(0);
        r.stdout.clone()
    }

    /// Wait until the spool holds no entry (a delivery in another process finished);
    /// panics with the listing after `limit`.
    #[track_caller]
    pub fn wait_until_empty(&self, limit: Duration) {
        wait_until_or(
            limit,
            "the spool to be empty",
            || self.listing(),
            || self.entries().is_empty(),
        );
    }

    /// `mailq --json` lines.
    pub fn json(&self) -> Vec<String> {
        self.mailq(&["--json"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
            let _ = fs::remove_dir_all(self.mail_spool_outside_path());
        }
    }
}

/// A UDP port on 127.0.0.1 where nothing listens (bound and released).
fn closed_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(9)
}

pub const MSG: &[u8] = b"Subject: test\n\nhello\n";

/// Whether a command exists on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Under CI every tool the tests need must be there; elsewhere a missing tool skips the
/// test with a note.
#[track_caller]
pub fn require(cmd: &str) -> bool {
    have(cmd) || unavailable(cmd)
}

/// A test needs `what` and it is missing: a failure under CI (scripts/test-all provides
/// everything), elsewhere a skip with a note. Returns false.
#[track_caller]
pub fn unavailable(what: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is required under CI (scripts/test-all provides it)"
    );
    eprintln!("skipped: {what} is not available");
    false
}

/// `sh -c cmd` for a fix command a program printed, for the test to run as printed. One
/// that would add a group or a user to this machine is refused (a panic): tests never
/// change the host's accounts, which every later test's [`fit_group`] reads.
pub fn printed_fix(cmd: &str) -> Command {
    for word in ["groupadd", "useradd", "addgroup", "adduser"] {
        assert!(
            !cmd.contains(word),
            "a printed fix would change this machine's accounts: {cmd}"
        );
    }
    let mut c = Command::new("sh");
    c.args(["-c", cmd]);
    c
}

/// A group fit for a spool, as `rsendmail-admin init` and `check` want it (not root's,
/// no members, nobody's primary group): `rsendmail`, init's group, when it is such a
/// group, else the first such group of /etc/group. Its name and id.
pub fn fit_group() -> (&'static str, u32) {
    static FIT: std::sync::OnceLock<(String, u32)> = std::sync::OnceLock::new();
    let (n, g) = FIT.get_or_init(|| {
        let passwd = fs::read_to_string("/etc/passwd").unwrap();
        let primary: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').nth(3)).collect();
        let groups = fs::read_to_string("/etc/group").unwrap();
        let fit: Vec<(String, u32)> = groups
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let gid = f.get(2)?;
                let fit =
                    *gid != "0" && f.get(3).is_some_and(|m| m.is_empty()) && !primary.contains(gid);
                fit.then(|| Some((f[0].to_string(), gid.parse().ok()?)))?
            })
            .collect();
        fit.iter()
            .find(|(n, _)| n == "rsendmail")
            .or(fit.first())
            .expect("a group with no members that is nobody's primary group")
            .clone()
    });
    (n.as_str(), *g)
}

/// A second group fit for a spool, not [`fit_group`]'s (what `init --group` names when
/// the spool's group is not the install's).
pub fn other_fit_group() -> (String, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let primary: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').nth(3)).collect();
    let groups = fs::read_to_string("/etc/group").unwrap();
    groups
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let gid = *f.get(2)?;
            let fit = gid != "0"
                && f.get(3).is_some_and(|m| m.is_empty())
                && !primary.contains(&gid)
                && f[0] != fit_group().0;
            fit.then(|| Some((f[0].to_string(), gid.parse().ok()?)))?
        })
        .expect("a second group with no members that is nobody's primary group")
}

pub fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// The unprivileged user `.ci/run` creates for tests that must not run as root.
pub const TEST_USER: &str = "rsmtest";

/// A user of this machine, looked up by name in the password database: its uid and gid
/// are whatever this machine gave it (`useradd` takes the first free number, so they
/// are never assumed), and its home is the one the database names.
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Look `name` up in the password database; panics with the name when it is missing.
#[track_caller]
pub fn user_ids(name: &str) -> UserIds {
    let u = nix::unistd::User::from_name(name)
        .unwrap_or_else(|e| panic!("looking up the user {name}: {e}"))
        .unwrap_or_else(|| panic!("the user {name} does not exist on this machine"));
    UserIds {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
    }
}

/// The test user's uid, gid and home (see `can_switch_user` for whether it exists).
#[track_caller]
pub fn test_user() -> UserIds {
    user_ids(TEST_USER)
}

/// Another unprivileged user, neither root nor the test user: `nobody`.
#[track_caller]
pub fn other_user() -> UserIds {
    user_ids("nobody")
}

/// Run `program` as the test user with a clean environment (PATH and `envs` only).
pub fn as_user(program: &Path, args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", TEST_USER, "--"]);
    run_in_clean_env(cmd, program, args, envs, stdin)
}

/// Run `program` through `cmd` (a command that switches rights and then runs its
/// arguments) under `env -i` with PATH and `envs` only, `stdin` written to it.
fn run_in_clean_env(
    mut cmd: Command,
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: &[u8],
) -> Output {
    cmd.args(["env", "-i", "PATH=/usr/bin:/bin"]);
    for (k, v) in envs {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the command that switches rights");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// [`as_user`], the test user also a member of the spool's group ([`fit_group`], as a
/// supplementary group): an administrator of a shared spool, or a user reaching it as
/// the installed set-gid program does.
pub fn as_member(program: &Path, args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> Output {
    let u = test_user();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg(format!("--groups={}", fit_group().1))
        .arg("--");
    run_in_clean_env(cmd, program, args, envs, stdin)
}

/// Copies of both binaries in `dir`, the first named `name`, that the test user can run
/// (the build tree may not be reachable for it).
pub fn user_visible_bin(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    copy_executable(&bin(), &p);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.join("rsendmail-deliver");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_rsendmail-deliver")), &d);
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Copy a program that a test will run. The copy is written by `cp`, not by this
/// process: a file this process held open for writing could be inherited by a child
/// another test thread forks at that moment, and running the copy would then fail with
/// ETXTBSY ("Text file busy").
pub fn copy_executable(from: &Path, to: &Path) {
    let st = Command::new("cp").arg(from).arg(to).status().expect("cp");
    assert!(st.success(), "cp {} {}", from.display(), to.display());
}

/// A TCP port on 127.0.0.1 where nothing listens (bound and released): connections to
/// it are refused.
pub fn closed_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether tests may switch to TEST_USER (root, and the user exists); required under CI.
#[track_caller]
pub fn can_switch_user() -> bool {
    let ok = is_root()
        && Command::new("id")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    ok || unavailable(&format!("root and the user {TEST_USER}"))
}

/// How often the waiting helpers look again.
const POLL: Duration = Duration::from_millis(20);

/// The IDs of the entries queued in the spool `spool` (its `qf` files; not those in
/// `hold/`), sorted.
pub fn queued_ids(spool: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(spool)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("qf"))
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// Poll `cond` until it holds; panics with `what` (what was awaited) and whatever
/// `state` describes when `limit` passes first.
#[track_caller]
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_until_or(limit, what, String::new, &mut cond);
}

/// `wait_until`, with `state()` (the spool, a transcript) in the failure message.
#[track_caller]
pub fn wait_until_or(
    limit: Duration,
    what: &str,
    state: impl FnOnce() -> String,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!(
                "waited {limit:?} for {what}; it never happened\n{}",
                state()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Check that `cond` stays true for the whole of `period` (something must *not*
/// happen: no second delivery, no entry written); panics with `what` as soon as it
/// turns false.
#[track_caller]
pub fn holds_for(period: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        assert!(cond(), "{what}: no longer true after {:?}", start.elapsed());
        if start.elapsed() >= period {
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// Wait for `child` to exit; after `limit`, kill it and return None.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Send SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill -TERM");
}

/// Every open of one file, seen by inotify (`IN_OPEN`) from now on: whether a program
/// opened it, a FIFO too (the kernel reports the open, whatever came of it).
pub struct Opens(i32);

/// Watch `path` for opens ([`Opens::count`]).
pub fn watch_opens(path: &Path) -> Opens {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain system calls on a descriptor this value owns and closes.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN) };
    assert!(
        wd >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    Opens(fd)
}

impl Opens {
    /// How many opens were seen since the watch began (or the last count).
    pub fn count(&self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of the length given.
            let got = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(got) = usize::try_from(got) else {
                return n;
            };
            // Each event: wd (4), mask (4), cookie (4), len (4), then `len` octets of name.
            let mut at = 0;
            while at + 16 <= got {
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                n += 1;
                at += 16 + len;
            }
            if got == 0 {
                return n;
            }
        }
    }
}

impl Drop for Opens {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's.
        unsafe { libc::close(self.0) };
    }
}

/// A persistent root queue runner (`-q1h -qf`, the packaged service's form, with an
/// interval far longer than any test) on `conf`, stopped with SIGTERM when dropped.
pub struct Runner(pub Child);

impl Runner {
    pub fn start(env: &Env, conf: &Path) -> Runner {
        let child = Command::new(env.link("sendmail"))
            .args(["-C", conf.to_str().unwrap(), "-q1h", "-qf"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the runner");
        Runner(child)
    }

    /// [`Runner::start`] on the env's own config, once it listens on its wake-up
    /// endpoint ([`listened_on`]).
    pub fn listening(env: &Env) -> Runner {
        let runner = Runner::start(env, &env.conf);
        wait_until_or(
            Duration::from_secs(30),
            "the runner to listen on its endpoint",
            || env.listing(),
            || listened_on(env),
        );
        runner
    }

    pub fn stop(mut self) {
        sigterm(&self.0);
        let st = wait_exit(&mut self.0, Duration::from_secs(10)).expect("the runner stopped");
        assert!(st.success(), "{st:?}");
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether a runner listens on the env's endpoint as a submission finds it: a FIFO with
/// a reader (opening it to write without waiting succeeds; nothing is written), group
/// the spool's and mode 0620, the last things the runner sets. The FIFO alone is there
/// before: the runner makes it, then opens it and sets its group and mode.
pub fn listened_on(env: &Env) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let p = env.spool.join("wakeup");
    let Ok(md) = fs::symlink_metadata(&p) else {
        return false;
    };
    md.file_type().is_fifo()
        && md.mode() & 0o7777 == 0o620
        && fs::metadata(&env.spool).is_ok_and(|s| s.gid() == md.gid())
        && std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&p)
            .is_ok()
}

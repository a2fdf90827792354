//! Privilege hygiene for a set-group-id `rsendmail` (docs/ARCHITECTURE.md, "Privileges").
//!
//! - fds 0–2 are reopened on /dev/null when closed, so that no spool file can become a
//!   caller's stdout;
//! - an option that may choose files (`-C`, `-X`, `-D`, `-d`, and every `-O`/`-o` option
//!   the option table marks unsafe, such as `-O QueueDirectory=` and `-oQ`) given by a
//!   user other than root makes us drop the extra group first (real, effective and
//!   saved), so that nothing is written where the caller could not write;
//! - no environment variable chooses a file while set-id (paths come from the config).

use nix::unistd::{Gid, getegid, geteuid, getgid, getuid};

/// Reopen fds 0, 1 and 2 on /dev/null if they are closed.
pub fn fix_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on a small integer only queries the descriptor table.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
        if closed {
            // SAFETY: open returns the lowest free descriptor, which is `fd`.
            let got = unsafe {
                libc::open(
                    c"/dev/null".as_ptr(),
                    if fd == 0 {
                        libc::O_RDONLY
                    } else {
                        libc::O_WRONLY
                    },
                )
            };
            if got != fd && got >= 0 {
                // SAFETY: moving the descriptor we just opened into place.
                unsafe {
                    libc::dup2(got, fd);
                    libc::close(got);
                }
            }
        }
    }
}

/// Make every descriptor from `first` up close-on-exec, so that a program started next
/// with another uid (a `|command`, a mailbox or `/file` writer) gets none of this
/// process's (a caller's descriptor left open across our exec, the `-X` log, a spool
/// file) besides those given it after this call (dup2(2) clears the flag on its copy).
/// Only close_range(2) with `CLOSE_RANGE_CLOEXEC`, or fcntl(2) in a loop where the
/// kernel lacks it, so it may run between fork and exec; nothing is closed, so the
/// standard library's own pipe that reports a failed exec keeps working.
pub fn cloexec_from(first: i32) {
    let Ok(from) = u32::try_from(first) else {
        return;
    };
    // Linux's CLOSE_RANGE_CLOEXEC (5.11).
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range(2) takes integers only; with CLOSE_RANGE_CLOEXEC it only
    // sets a flag on this process's descriptors.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return;
    }
    // An older kernel: each descriptor up to the limit (at most 65536), in turn.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the structure given.
    let top = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(65_536)
    } else {
        65_536
    };
    let top = i32::try_from(top).unwrap_or(65_536);
    for fd in first..top {
        // SAFETY: fcntl(2) on a descriptor number; one not open fails with EBADF.
        unsafe {
            let f = libc::fcntl(fd, libc::F_GETFD);
            if f >= 0 && f & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, f | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Ignore SIGXFSZ, so that a write past the file-size limit (`ulimit -f`, cron's or
/// systemd's `LimitFSIZE`) fails with EFBIG, which is answered as a temporary failure,
/// instead of killing the process with nothing said and nothing recorded. As sendmail
/// does. The ignored disposition survives `exec` (the deliverer sets it again anyway);
/// the commands that local delivery runs get the default back (`restore_sigxfsz`).
pub fn ignore_sigxfsz() {
    // SAFETY: SIG_IGN installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
}

/// The default action for SIGXFSZ again, for a program we start that is not ours (a
/// `|command`): it expects the signal as any program does. Only sigaction(2), so it may
/// run between fork and exec.
pub fn restore_sigxfsz() {
    // SAFETY: a zeroed sigaction with SIG_DFL installs no handler code; sigaction is
    // async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGXFSZ, &sa, std::ptr::null_mut());
    }
}

/// Whether we run with privileges the caller does not have.
pub fn is_setid() -> bool {
    getegid() != getgid() || geteuid() != getuid()
}

/// The environment a deliverer is started with: none of the caller's but `PATH` (a
/// fixed one) when this process is set-id, so that no variable that chooses files or
/// trust (`SSL_CERT_FILE`, `SSL_CERT_DIR`, `OPENSSL_CONF`, `RES_OPTIONS`, `HOSTALIASES`,
/// `TZDIR`...) reaches a process holding the spool group: the deliverer itself is not
/// set-id, so the kernel's AT_SECURE does not protect it. Otherwise the caller's
/// environment is its own to pass.
pub fn deliverer_env(cmd: &mut std::process::Command) {
    if is_setid() {
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    }
}

pub fn is_root() -> bool {
    getuid().is_root()
}

/// Run `f` with the real group as the effective one, then take the set-group-id group
/// back (it stays the saved group meanwhile): what `f` makes or opens is done with the
/// caller's own group. Err when the group could not be switched (`f` not run) or not
/// taken back (`f`'s result is dropped: the caller must then stop using the spool).
pub fn as_real_group<T>(f: impl FnOnce() -> T) -> nix::Result<T> {
    let ids = nix::unistd::getresgid()?;
    if ids.effective == ids.real {
        return Ok(f());
    }
    nix::unistd::setresgid(ids.real, ids.real, ids.saved)?;
    let out = f();
    nix::unistd::setresgid(ids.real, ids.effective, ids.saved)?;
    Ok(out)
}

/// Give up the set-group-id group for good.
pub fn drop_group() -> nix::Result<()> {
    let g: Gid = getgid();
    nix::unistd::setresgid(g, g, g)
}

/// Detach from the caller: a new session, and fds 0-2 on /dev/null, so that a caller
/// reading our stdout through a pipe (PHP, cron) sees EOF at once. A long-running process
/// whose log is its stderr (no MAILLOG, no syslog) keeps fd 2: its log would otherwise
/// go nowhere.
pub fn detach() {
    let keep = if crate::log::to_stderr() { 2 } else { 3 };
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..keep {
            // SAFETY: dup2 onto this process's own standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

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

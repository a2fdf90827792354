//! `rsendmail`: sendmail's command line (also as `sendmail`, `send-mail`, `mailq`,
//! `newaliases`, dispatched on the basename of argv[0]).
//!
//! The program's entry point is C's `main`, not Rust's: every submission starts this
//! program, and Rust's start-up code costs a submission about 0.1 ms for what it does not
//! need: finding the main thread's stack through `/proc/self/maps` and installing an
//! alternate signal stack and SIGSEGV/SIGBUS handlers, which only turn a stack overflow
//! into a message before the abort (it is still a crash, by SIGSEGV). What the program
//! relies on from that code is done here, first: SIGPIPE ignored (a write to a closed
//! pipe is an error, EPIPE, not the death of the process), the arguments taken from
//! `argv` (on every platform), and standard output flushed at the end
//! (`std::process::exit`); descriptors 0-2 are reopened on `/dev/null` when closed by
//! `privs::fix_std_fds`, the first thing `app::run` does. `rsendmail-deliver` keeps
//! Rust's entry point.

// A test build keeps the test harness's entry point.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{CStr, OsString, c_char, c_int};
#[cfg(not(test))]
use std::os::unix::ffi::OsStringExt;

/// The C entry point: `argc` strings at `argv` (each NUL-terminated), as the C runtime
/// passes them.
///
/// # Safety
/// Called by the C runtime only, with its `argc` and `argv`.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let n = usize::try_from(argc).unwrap_or(0);
    let args: Vec<OsString> = (0..n)
        .map_while(|i| {
            // SAFETY: the C runtime passes `argc` pointers at `argv`, each a valid
            // NUL-terminated string (or NULL, where the list ends early).
            let p = unsafe { *argv.add(i) };
            (!p.is_null())
                .then(|| OsString::from_vec(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()))
        })
        .collect();
    // A panic (none is expected: see the project's rules) ends the program with 101 as
    // Rust's entry point would, rather than unwinding out of a C function.
    let code = match std::panic::catch_unwind(|| rsendmail::app::run(args)) {
        Ok(status) => c_int::from(status.code()),
        Err(_) => 101,
    };
    // Runs Rust's clean-up (standard output flushed), then exits.
    std::process::exit(code)
}

//! `rsendmail-deliver`: the delivery engine, exec'd by `rsendmail` for interactive and
//! background delivery, queue runs, `-bv` and the SMTP server (`-bs`, `-bd`). Its modules
//! live in `src/deliver/` and are compiled into this binary only, so that `rsendmail`
//! never links TLS or DNS code (docs/ARCHITECTURE.md, "Two executables").

#[path = "../deliver/mod.rs"]
mod deliver;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    deliver::main(args).into()
}

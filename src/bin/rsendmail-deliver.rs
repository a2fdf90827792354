//! `rsendmail-deliver`: the delivery engine, exec'd by `rsendmail` for interactive and
//! background delivery and for queue runs. Its modules live in `src/deliver/` and are
//! compiled into this binary only, so that `rsendmail` never links TLS or DNS code.

#[path = "../deliver/mod.rs"]
mod deliver;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    deliver::main(args).into()
}

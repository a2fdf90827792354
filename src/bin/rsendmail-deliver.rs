//! `rsendmail-deliver`: the delivery engine, exec'd by `rsendmail` for queue runs.
//!
//! It takes sendmail's own argv (passed on unchanged by `rsendmail -q...`), so both
//! programs read the command line and the config through the same code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    rsendmail::queue::run(args).into()
}

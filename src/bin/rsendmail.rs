//! `rsendmail`: sendmail's command line (also as `sendmail`, `send-mail`, `mailq`,
//! `newaliases`, dispatched on the basename of argv[0]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    rsendmail::app::run(args).into()
}

//! `rsendmail-admin`'s work (the program's command line is in
//! `src/bin/rsendmail-admin.rs`): [`queue`] (list, show, delete, hold, release, retry,
//! bounce), [`check`] (can this host send mail?), [`show_config`] (the effective
//! configuration) and [`init`] (create the spool).

pub mod check;
pub mod init;
pub mod queue;
pub mod show_config;

use std::path::PathBuf;

/// What every subcommand is given: the global options.
pub struct Context {
    /// `-C FILE`: a configuration file instead of the system one.
    pub config: Option<PathBuf>,
}

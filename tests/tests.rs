//! Integration tests: the real binaries, run as callers run them.

mod harness;

mod addresses;
mod admin_check;
mod admin_queue;
mod compat_suite;
mod config_files;
mod connection_cache;
mod content;
mod delivery;
mod dns;
mod dsn;
mod durability;
mod folding;
mod hostile_replies;
mod index;
mod local;
mod logging;
mod mailq_listing;
mod man_pages;
mod options;
mod privileges;
mod reasons;
mod robustness;
mod routing;
mod setup;
mod smtp;
mod submission;
mod tls;
mod wake;

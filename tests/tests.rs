//! Integration tests: the real binaries, run as callers run them.

mod harness;

mod compat_suite;
mod delivery;
mod dns;
mod durability;
mod local;
mod mailq_listing;
mod man_pages;
mod options;
mod privileges;
mod smtp;
mod submission;
mod tls;

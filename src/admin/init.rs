//! (not written yet)
use super::Context;
use crate::exit::Sysexit;
pub fn init(_: &Context) -> Sysexit {
    crate::outln!("not implemented");
    Sysexit::Software
}

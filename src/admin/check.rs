//! (not written yet)
use super::Context;
use crate::exit::Sysexit;
pub fn check(_: &Context, _to: Option<&str>) -> Sysexit {
    crate::outln!("not implemented");
    Sysexit::Software
}

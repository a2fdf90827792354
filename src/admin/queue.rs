//! (not written yet)
use super::Context;
use crate::exit::Sysexit;
fn todo() -> Sysexit {
    crate::outln!("not implemented");
    Sysexit::Software
}
pub fn list(_: &Context, _json: bool) -> Sysexit {
    todo()
}
pub fn show(_: &Context, _id: &str) -> Sysexit {
    todo()
}
pub fn delete(_: &Context, _ids: &[String], _all: bool, _rcpt: Option<&str>) -> Sysexit {
    todo()
}
pub fn hold(_: &Context, _ids: &[String]) -> Sysexit {
    todo()
}
pub fn release(_: &Context, _ids: &[String]) -> Sysexit {
    todo()
}
pub fn retry(_: &Context, _ids: &[String]) -> Sysexit {
    todo()
}
pub fn bounce(_: &Context, _ids: &[String], _reason: Option<&str>) -> Sysexit {
    todo()
}

//! Build script: on GNU/Linux, link libgcc's unwinder (`libgcc_eh.a`) into the programs
//! instead of loading `libgcc_s.so.1` at every start: the shared library costs each
//! process about 0.1 ms (loading, relocation, and its CPU-feature probe, which traps to
//! the hypervisor in a virtual machine), and every submission is a process. The static
//! archive holds the same code (`gcc -static-libgcc` links it so); the unwinder is only
//! used by panics and backtraces. Where the C compiler does not know the archive (another
//! C library, another compiler), nothing changes.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    // Only for a native build: a cross build's archive would have to come from the
    // target's compiler.
    if var("TARGET") != var("HOST") {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let archive = Path::new(&printed);
    // The compiler prints the bare name back when it has no such file.
    if !out.status.success() || !archive.is_absolute() || !archive.is_file() {
        return;
    }
    if let Some(dir) = archive.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}

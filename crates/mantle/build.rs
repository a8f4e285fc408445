//! Link settings for the `mantle` package's binaries (see bench/RESULTS.md, "launch").
//!
//! - libgcc's unwinder is linked statically (`libgcc_eh.a`, as `-static-libgcc` does for
//!   C programs) into both binaries of this package: Rust's std asks for `libgcc_s.so`,
//!   whose constructor runs CPUID instructions that trap to the hypervisor on a VM, and
//!   loading one more library costs a mapping and its relocations. The link order makes
//!   it work: this package's native libraries come right after its objects, which (with
//!   LTO) hold std as well, so every `_Unwind_*` reference is resolved before the
//!   linker reaches `-lgcc_s`, and `--as-needed` then drops it.
//!
//! `mantle-launcher` keeps rustc's eager binding (`-z now`): its server binds every symbol
//! once, and the launchers it forks inherit the bound tables instead of each resolving
//! the symbols it calls.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    // A static (crt-static) build links libgcc_eh already; other targets have no libgcc_s.
    if os != "linux" || env != "gnu" || features.split(',').any(|f| f == "crt-static") {
        return;
    }
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}

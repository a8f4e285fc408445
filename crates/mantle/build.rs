//! Link settings for `mantle-launcher`, which starts once per container, so what its
//! dynamic loader does at every start counts (see bench/RESULTS.md, "launch").
//!
//! - libgcc's unwinder is linked statically (`libgcc_eh.a`, as `-static-libgcc` does for
//!   C programs) into both binaries of this package: Rust's std asks for `libgcc_s.so`,
//!   whose constructor runs CPUID instructions that trap to the hypervisor on a VM, and
//!   loading one more library costs a mapping and its relocations. The link order makes
//!   it work: this package's native libraries come right after its objects, which (with
//!   LTO) hold std as well, so every `_Unwind_*` reference is resolved before the
//!   linker reaches `-lgcc_s`, and `--as-needed` then drops it.
//! - The launcher binds symbols lazily (`-z lazy`) rather than all of them at start
//!   (`-z now`, rustc's default): a launch calls a small part of what it imports.
//!
//! Measured with `perf stat -r 500 mantle-launcher` (it prints its usage and exits):
//! 1.19 ms of CPU and 128 page faults before, 0.72 ms and 115 after.

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
    println!("cargo:rustc-link-arg-bin=mantle-launcher=-Wl,-z,lazy");
}

//! Builds the eBPF programs (`oomtrace-ebpf`) for the BPF target with
//! aya-build, as in the aya project template; the object is embedded into the
//! binary with `include_bytes_aligned!`.
//!
//! Without the eBPF toolchain (nightly with rust-src, bpf-linker), or with
//! OOMTRACE_PREBUILT_EBPF=1, the object shipped in
//! `oomtrace-ebpf/prebuilt/oomtrace.bpf.o` is used instead, so a stable-only
//! `cargo build` works. `cargo xtask ebpf-object --check` (run by CI) verifies
//! that it matches what the sources build to.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

const PREBUILT: &str = "../oomtrace-ebpf/prebuilt/oomtrace.bpf.o";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=OOMTRACE_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=OOMTRACE_PREBUILT_EBPF");
    let forced = std::env::var("OOMTRACE_PREBUILT_EBPF").is_ok_and(|v| v == "1");
    if forced || !ebpf_toolchain_present() {
        return use_prebuilt(forced);
    }
    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec().context("reading the workspace metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|package| package.name.as_str() == "oomtrace-ebpf")
        .ok_or_else(|| anyhow!("package oomtrace-ebpf not found in the workspace"))?;
    let root_dir =
        ebpf.manifest_path.parent().ok_or_else(|| anyhow!("{} has no parent directory", ebpf.manifest_path))?;
    let package = aya_build::Package { name: ebpf.name.as_str(), root_dir: root_dir.as_str(), ..Default::default() };
    // OOMTRACE_EBPF_TOOLCHAIN pins the nightly used for the BPF target (default: "nightly").
    let toolchain = std::env::var("OOMTRACE_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain.as_deref() {
        Some(name) => Toolchain::Custom(name),
        None => Toolchain::default(),
    };
    aya_build::build_ebpf([package], toolchain)
}

/// bpf-linker on PATH (or in ~/.cargo/bin) means scripts/setup.sh has run.
fn ebpf_toolchain_present() -> bool {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("bpf-linker").is_file()))
        .unwrap_or(false);
    let in_cargo_home = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo/bin/bpf-linker").is_file())
        .unwrap_or(false);
    in_path || in_cargo_home
}

fn use_prebuilt(forced: bool) -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let source = Path::new(&manifest_dir).join(PREBUILT);
    println!("cargo:rerun-if-changed={}", source.display());
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR")?;
    std::fs::copy(&source, Path::new(&out_dir).join("oomtrace")).with_context(|| {
        format!("no eBPF toolchain (bpf-linker) and no prebuilt object at {}: run scripts/setup.sh", source.display())
    })?;
    if !forced {
        println!(
            "cargo:warning=bpf-linker not found: using the prebuilt eBPF object {PREBUILT}; \
             run scripts/setup.sh to build it from source"
        );
    }
    Ok(())
}

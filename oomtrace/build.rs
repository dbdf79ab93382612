//! Builds the eBPF programs (`oomtrace-ebpf`) for the BPF target with
//! aya-build, as in the aya project template; the object is embedded into the
//! binary with `include_bytes_aligned!`.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("reading the workspace metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|package| package.name.as_str() == "oomtrace-ebpf")
        .ok_or_else(|| anyhow!("package oomtrace-ebpf not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", ebpf.manifest_path))?;
    let package = aya_build::Package {
        name: ebpf.name.as_str(),
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    // OOMTRACE_EBPF_TOOLCHAIN pins the nightly used for the BPF target (default: "nightly").
    println!("cargo:rerun-if-env-changed=OOMTRACE_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("OOMTRACE_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain.as_deref() {
        Some(name) => Toolchain::Custom(name),
        None => Toolchain::default(),
    };
    aya_build::build_ebpf([package], toolchain)
}

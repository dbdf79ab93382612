//! `cargo xtask ebpf-object --check | --update`: keeps the prebuilt eBPF
//! object (`oomtrace-ebpf/prebuilt/oomtrace.bpf.o`, used by stable-only
//! builds) equal to what the sources build to.
//!
//! The comparison covers what the kernel loads: program sections, their
//! relocations, maps, `.rodata` and the license. Debug info and BTF carry
//! source paths and line tables, which differ between checkouts, and are left
//! out.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSection as _};

pub const PREBUILT: &str = "oomtrace-ebpf/prebuilt/oomtrace.bpf.o";

#[derive(Debug, clap::Args)]
pub struct EbpfObjectArgs {
    /// Fail if the prebuilt object differs from a fresh build.
    #[arg(long, conflicts_with = "update")]
    pub check: bool,
    /// Replace the prebuilt object with a fresh build.
    #[arg(long)]
    pub update: bool,
}

pub fn run(workspace: &Path, args: &EbpfObjectArgs) -> Result<()> {
    if !args.check && !args.update {
        bail!("say --check or --update");
    }
    let fresh = build(workspace)?;
    let prebuilt = workspace.join(PREBUILT);
    if args.update {
        std::fs::copy(&fresh, &prebuilt).with_context(|| format!("copying to {}", prebuilt.display()))?;
        println!("ebpf-object: updated {PREBUILT} from {}", fresh.display());
        return Ok(());
    }
    let differences = compare(&std::fs::read(&prebuilt)?, &std::fs::read(&fresh)?)?;
    if !differences.is_empty() {
        bail!(
            "{PREBUILT} does not match the eBPF sources (sections differing: {}); run `cargo xtask ebpf-object --update` and commit it",
            differences.join(", ")
        );
    }
    println!("ebpf-object: {PREBUILT} matches the sources");
    Ok(())
}

/// Builds oomtrace with the eBPF toolchain and returns the object aya-build made.
fn build(workspace: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--locked", "-p", "oomtrace", "--message-format", "json-render-diagnostics"])
        .env_remove("OOMTRACE_PREBUILT_EBPF")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("cargo build -p oomtrace failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let out_dir = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "build-script-executed")
        .filter(|m| {
            m["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("/oomtrace#") || id.contains("oomtrace 0.") || id.ends_with("/oomtrace"))
        })
        .find_map(|m| m["out_dir"].as_str().map(PathBuf::from))
        .context("cargo did not report oomtrace's build script output directory")?;
    let object = out_dir.join("oomtrace");
    let log = std::fs::read_to_string(out_dir.join("../output")).unwrap_or_default();
    if log.contains("using the prebuilt eBPF object") {
        bail!("the eBPF toolchain is missing, so the build used the prebuilt object: run scripts/setup.sh first");
    }
    Ok(object)
}

/// Loadable sections (name, bytes) of an eBPF ELF object.
fn loadable_sections(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let file = object::File::parse(data).context("parsing an eBPF ELF object")?;
    let mut sections = Vec::new();
    for section in file.sections() {
        let name = section.name().unwrap_or_default().to_owned();
        let skipped = name.is_empty()
            || [".debug", ".rel.debug", ".BTF", ".rel.BTF", ".symtab", ".strtab", ".llvm"]
                .iter()
                .any(|prefix| name.starts_with(prefix));
        if skipped {
            continue;
        }
        sections.push((name, section.data().context("reading a section")?.to_vec()));
        // Relocations of program sections live in the section's relocation list.
        for (offset, relocation) in section.relocations() {
            sections.push((
                format!("{}@reloc{offset}", section.name().unwrap_or_default()),
                format!("{relocation:?}").into_bytes(),
            ));
        }
    }
    sections.sort();
    Ok(sections)
}

/// Names of the loadable sections that differ (or exist in only one object).
fn compare(prebuilt: &[u8], fresh: &[u8]) -> Result<Vec<String>> {
    let a = loadable_sections(prebuilt)?;
    let b = loadable_sections(fresh)?;
    let mut names: Vec<&String> = a.iter().chain(b.iter()).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .filter(|name| {
            a.iter().find(|(n, _)| n == *name).map(|(_, d)| d) != b.iter().find(|(n, _)| n == *name).map(|(_, d)| d)
        })
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}

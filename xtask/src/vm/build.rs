//! Builds the integration tests and oomtrace as static executables the
//! guests can run (vm-test's busybox guests, node-test's Debian node).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

pub struct StaticBuild {
    pub tests: Vec<PathBuf>,
    pub oomtrace: PathBuf,
}

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds oomtrace and its integration tests: every test target, or only
/// `test_target` (`--test <name>`).
pub fn build(workspace: &Path, test_target: Option<&str>) -> Result<StaticBuild> {
    eprintln!("xtask: building static test binaries (release)");
    // Target-specific flags: the nested BPF build of aya-build must not see them.
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(workspace)
        .args(["test", "--release", "--no-run", "--locked", "-p", "oomtrace", "--target", TARGET])
        .args(test_target.map(|name| ["--test", name]).into_iter().flatten())
        .args(["--message-format", "json-render-diagnostics"])
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS", "-C target-feature=+crt-static")
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the static test binaries failed: {}", out.status);
    }
    let mut tests = Vec::new();
    let mut oomtrace = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else { continue };
        if message["profile"]["test"] == true {
            tests.push(PathBuf::from(executable));
        } else if message["target"]["name"] == "oomtrace" {
            oomtrace = Some(PathBuf::from(executable));
        }
    }
    let oomtrace = oomtrace.context("cargo did not report the oomtrace binary")?;
    if tests.is_empty() {
        bail!("cargo reported no test executables");
    }
    Ok(StaticBuild { tests, oomtrace })
}

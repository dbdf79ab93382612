//! What the bench needs from the host around the runs: the workspace, cargo,
//! git, tracefs, and programs installed with apt-get. Depends on nothing else
//! of the bench.

use std::{
    ffi::OsString,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// A line on stderr (stdout is for the report).
pub fn progress(message: &str) {
    eprintln!("xtask bench: {message}");
}

pub fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_owned)
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))
}

/// `cargo build --profile <profile> <what>`, with cargo's output on our
/// stderr (stdout is for the report).
pub fn cargo_build(root: &Path, profile: &str, what: &[&str]) -> Result<()> {
    let command = format!("cargo build --profile {profile} {}", what.join(" "));
    progress(&format!("building the {profile} binary: {command}"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().context("duplicating stderr")?;
    let status = Command::new(&cargo)
        .args(["build", "--profile", profile])
        .args(what)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("running {} build", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("`{command}` failed ({status}); see its output above");
    }
    Ok(())
}

/// bpftrace reads tracepoint formats from tracefs, which this host does not
/// mount by default.
pub fn ensure_tracefs() -> Result<()> {
    let tracing = Path::new("/sys/kernel/tracing");
    if tracing.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(());
    }
    progress("mounting tracefs at /sys/kernel/tracing");
    let status = Command::new("mount")
        .args(["-t", "tracefs", "tracefs"])
        .arg(tracing)
        .status()
        .context("running mount -t tracefs")?;
    if !status.success() {
        bail!("`mount -t tracefs tracefs /sys/kernel/tracing` failed ({status})");
    }
    Ok(())
}

/// The trimmed stdout of a command that succeeded.
fn quiet_stdout(command: &mut Command) -> Option<String> {
    command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn version_of(program: &Path, flag: &str) -> String {
    quiet_stdout(Command::new(program).arg(flag)).unwrap_or_else(|| "unknown version".to_owned())
}

/// HEAD, and whether the tree differs from it outside docs/ (where the bench
/// and node-test write their reports: one section written, then the next
/// measured, is still the commit's code).
pub fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| quiet_stdout(Command::new("git").args(args).current_dir(root));
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => match git(&["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs"]) {
            Some(changes) if !changes.is_empty() => format!("{commit} + uncommitted changes"),
            _ => commit,
        },
        None => "unknown".to_owned(),
    }
}

/// Finds `binary` on PATH (and the sbin directories), installing `package`
/// with apt-get when it is missing. The error is the reason to report.
pub fn ensure_installed(binary: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(path) = find_program(binary) {
        return Ok(path);
    }
    progress(&format!("{binary} not found: apt-get install -y {package}"));
    let mut result = apt_install(package);
    if result.is_err() {
        progress("apt-get install failed; running apt-get update and trying once more");
        let _ = apt(&["update"]);
        result = apt_install(package);
    }
    result?;
    find_program(binary).ok_or_else(|| format!("{package} installed but no {binary} on PATH"))
}

fn apt_install(package: &str) -> Result<(), String> {
    apt(&["install", "-y", "--no-install-recommends", package])
}

fn apt(args: &[&str]) -> Result<(), String> {
    let output = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run apt-get: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
    Err(format!("apt-get {} failed ({}): {}", args.join(" "), output.status, last.trim()))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

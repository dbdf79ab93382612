//! systemd slices as kubelet's systemd cgroup driver manages them (through
//! systemd, never by writing the cgroup files behind its back).

use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The unit of a cgroup path: its last component (`/a.slice/b-c.slice` -> `b-c.slice`).
pub fn unit_of(cgroup_path: &str) -> &str {
    cgroup_path.rsplit('/').next().unwrap_or(cgroup_path)
}

fn systemctl(args: &[&str]) -> Result<()> {
    let output = Command::new("systemctl").args(args).output().context("running systemctl")?;
    if !output.status.success() {
        bail!("systemctl {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Sets `MemoryMax` of the slice at `cgroup_path` for this boot, as kubelet
/// sets a pod's or `kubepods.slice`'s memory limit (a transient property).
pub fn set_memory_max(cgroup_path: &str, bytes: u64) -> Result<()> {
    systemctl(&["set-property", "--runtime", unit_of(cgroup_path), &format!("MemoryMax={bytes}")])
}

/// Removes the limit again (`MemoryMax=infinity`).
pub fn clear_memory_max(cgroup_path: &str) -> Result<()> {
    systemctl(&["set-property", "--runtime", unit_of(cgroup_path), "MemoryMax=infinity"])
}

/// Stops the unit of `cgroup_path` (kubelet removes a deleted pod's slice); a
/// failure is only warned about: cleanup must not fail a test.
pub fn stop_unit(cgroup_path: &str) {
    if let Err(error) = systemctl(&["stop", unit_of(cgroup_path)]) {
        eprintln!("warning: {error:#}");
    }
}

//! The node's Debian userspace: a bookworm rootfs tarball from Debian's
//! packages (mmdebstrap), cached under `target/node/` and keyed by what goes
//! into it, so a clone builds it once.

use std::{
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::vm::run;

const SUITE: &str = "bookworm";

/// What an AKS node runs (systemd, dbus, containerd, runc, the CNI plugins),
/// kmod to load the kernel's modules, iproute2 and procps to look around.
const PACKAGES: [&str; 8] =
    ["systemd", "dbus", "containerd", "runc", "containernetworking-plugins", "kmod", "iproute2", "procps"];

/// Documentation, manuals and translations take memory in the guest and
/// nobody reads them there.
const DPKG_OPTIONS: [&str; 3] =
    ["path-exclude=/usr/share/doc/*", "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/locale/*"];

/// The cached tarball for today's package list, built when missing.
pub fn tarball(cache: &Path) -> Result<PathBuf> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (SUITE, PACKAGES, DPKG_OPTIONS).hash(&mut hasher);
    let path = cache.join(format!("rootfs-{SUITE}-{:016x}.tar", hasher.finish()));
    if path.exists() {
        eprintln!("node-test: rootfs cached: {}", path.display());
        return Ok(path);
    }
    eprintln!("node-test: building the {SUITE} rootfs with mmdebstrap ({})", PACKAGES.join(", "));
    std::fs::create_dir_all(cache)?;
    let partial = path.with_extension("tar.partial");
    let mut command = Command::new("mmdebstrap");
    command.args(["--variant=apt", "--quiet", &format!("--include={}", PACKAGES.join(","))]);
    for option in DPKG_OPTIONS {
        command.arg(format!("--dpkgopt={option}"));
    }
    command.args([SUITE, "--format=tar"]).arg(&partial);
    run::status(&mut command).context("mmdebstrap (apt-get install mmdebstrap)")?;
    std::fs::rename(&partial, &path)?;
    // Tarballs of earlier package lists.
    for stale in std::fs::read_dir(cache)?.flatten().map(|e| e.path()) {
        let name = stale.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if stale != path && name.starts_with("rootfs-") && name.ends_with(".tar") {
            let _ = std::fs::remove_file(&stale);
        }
    }
    Ok(path)
}

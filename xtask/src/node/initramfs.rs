//! The node's initramfs: the Debian rootfs, its configuration as an AKS node
//! (containerd, CNI, the kernel modules containers need), the test service and
//! the payload under /node-test, packed as one uncompressed newc cpio that
//! boots every kernel of the run (each kernel's modules are in it).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::payload::{GUEST_DIR, Payload};
use crate::vm::{
    initramfs::copy,
    kernels::{Kernel, files_under},
    run,
};

const INIT: &str = include_str!("guest/init.sh");
const SERVICE: &str = include_str!("guest/oomtrace-node-test.service");
const RUN_SUITE: &str = include_str!("guest/run-suite.sh");
const CONTAINERD_CONFIG: &str = include_str!("guest/containerd.toml");
const CNI_CONFIG: &str = include_str!("guest/10-pods.conflist");

/// Modules containers need that Debian's cloud kernels build as modules:
/// the overlayfs snapshotter, and the CNI bridge with its veth pairs.
const MODULES: [&str; 3] = ["overlay", "bridge", "veth"];

/// Units that would hold the boot up: with no one to log in, systemd waits
/// 90 s for dev-ttyS0.device under TCG otherwise.
const MASKED_UNITS: [&str; 3] = ["serial-getty@ttyS0.service", "getty@tty1.service", "getty.target"];

/// Builds `<work>/node.cpio` and returns its path.
pub fn build(work: &Path, rootfs: &Path, kernels: &[Kernel], payload: &Payload) -> Result<PathBuf> {
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    run::status(Command::new("tar").arg("-xf").arg(rootfs).arg("-C").arg(&root))
        .with_context(|| format!("unpacking {}", rootfs.display()))?;
    configure_node(&root, payload)?;
    for kernel in kernels {
        install_modules(&root, kernel)?;
    }
    install_payload(&root, payload)?;
    let initrd = work.join("node.cpio");
    // Uncompressed: unpacking is faster than decompressing under TCG.
    let script = format!("cd '{}' && find . | cpio -o -H newc --quiet > '{}'", root.display(), initrd.display());
    run::status(Command::new("sh").arg("-c").arg(script)).context("cpio (apt-get install cpio)")?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(initrd)
}

fn write(root: &Path, path: &str, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let file = root.join(path.trim_start_matches('/'));
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The rootfs may hold a symlink or a package's file at this path.
    let _ = std::fs::remove_file(&file);
    std::fs::write(&file, content).with_context(|| format!("writing {}", file.display()))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn symlink(root: &Path, link: &str, target: &str) -> Result<()> {
    let link = root.join(link.trim_start_matches('/'));
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).with_context(|| format!("linking {}", link.display()))
}

fn configure_node(root: &Path, payload: &Payload) -> Result<()> {
    write(root, "/init", INIT, 0o755)?;
    write(root, "/etc/hostname", "oomtrace-node\n", 0o644)?;
    let sandbox = payload.test_images.first().context("no pause image")?;
    let containerd = CONTAINERD_CONFIG.replace("@SANDBOX_IMAGE@", &sandbox.reference);
    write(root, "/etc/containerd/config.toml", &containerd, 0o644)?;
    write(root, "/etc/cni/net.d/10-pods.conflist", CNI_CONFIG, 0o644)?;
    write(root, "/etc/modules-load.d/oomtrace-node.conf", &format!("{}\n", MODULES.join("\n")), 0o644)?;
    for unit in MASKED_UNITS {
        symlink(root, &format!("/etc/systemd/system/{unit}"), "/dev/null")?;
    }
    symlink(root, "/etc/systemd/system/default.target", "/lib/systemd/system/multi-user.target")?;
    write(root, "/etc/systemd/system/oomtrace-node-test.service", SERVICE, 0o644)?;
    symlink(
        root,
        "/etc/systemd/system/multi-user.target.wants/oomtrace-node-test.service",
        "/etc/systemd/system/oomtrace-node-test.service",
    )
}

fn install_payload(root: &Path, payload: &Payload) -> Result<()> {
    let dir = root.join(GUEST_DIR.trim_start_matches('/'));
    copy(&payload.suite, &dir.join("node"))?;
    copy(&payload.oomtrace, &dir.join("oomtrace"))?;
    let mut refs = String::new();
    for image in payload.images() {
        let name = image.archive.file_name().context("image archive without a file name")?;
        copy(&image.archive, &dir.join("images").join(name))?;
        refs.push_str(&format!("{} {}\n", image.reference, name.to_string_lossy()));
    }
    std::fs::write(dir.join("images/refs"), refs)?;
    for manifest in &payload.manifests {
        copy(manifest, &dir.join("deploy").join(manifest.file_name().context("manifest without a file name")?))?;
    }
    let env: String = payload.environment().iter().map(|(key, value)| format!("{key}={value}\n")).collect();
    std::fs::write(dir.join("suite.env"), env)?;
    write(root, &format!("{GUEST_DIR}/run-suite.sh"), RUN_SUITE, 0o755)
}

/// Copies [`MODULES`] and what they depend on from the kernel's module tree,
/// then indexes them (depmod) for the guest's modprobe.
fn install_modules(root: &Path, kernel: &Kernel) -> Result<()> {
    let files = files_under(&kernel.modules, &|p| p.to_string_lossy().contains(".ko"));
    let builtin = std::fs::read_to_string(kernel.modules.join("modules.builtin")).unwrap_or_default();
    let mut wanted: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    let mut done = BTreeSet::new();
    let target = root.join("lib/modules").join(&kernel.release);
    while let Some(name) = wanted.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let Some(file) = files.iter().find(|f| module_name(f) == name) else {
            if builtin.lines().any(|line| module_name(Path::new(line)) == name) {
                continue;
            }
            bail!("kernel {} has no module {name}", kernel.release);
        };
        let depends = run::stdout(Command::new("modinfo").args(["-F", "depends"]).arg(file))
            .context("modinfo (apt-get install kmod)")?;
        wanted.extend(depends.trim().split(',').filter(|d| !d.is_empty()).map(str::to_owned));
        copy(file, &target.join(file.strip_prefix(&kernel.modules)?))?;
    }
    for index in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
        let from = kernel.modules.join(index);
        if from.exists() {
            copy(&from, &target.join(index))?;
        }
    }
    run::status(Command::new("depmod").arg("-b").arg(root).arg(&kernel.release))
        .context("depmod (apt-get install kmod)")
}

/// `overlay` of `.../overlay.ko.xz`; module names use `_` where files may use `-`.
fn module_name(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    file.split(".ko").next().unwrap_or_default().replace('-', "_")
}

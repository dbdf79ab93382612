//! A throw-away busybox initramfs holding the test binaries.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{kernels::which, run};

const INIT: &str = include_str!("guest-init.sh");
const SUITE: &str = include_str!("guest-suite.sh");

/// What goes into the guest.
pub struct Payload {
    /// Test executables, placed in /tests.
    pub tests: Vec<PathBuf>,
    /// The oomtrace binary, placed at the same absolute path it has on the
    /// host (the tests were built to run it from there).
    pub oomtrace: PathBuf,
    /// Dynamically linked host tools copied with their libraries (bpftool).
    pub dynamic_tools: Vec<PathBuf>,
}

/// Builds `<work>/initrd.cpio` and returns its path.
pub fn build(work: &Path, payload: &Payload) -> Result<PathBuf> {
    let busybox = Path::new("/bin/busybox");
    let kind = run::stdout(Command::new("file").arg("-L").arg(busybox))
        .context("`file` is needed to check busybox (apt-get install file)")?;
    if !kind.contains("statically linked") {
        bail!("{} is not static: apt-get install busybox-static", busybox.display());
    }
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root", "tests", "usr/bin", "usr/sbin"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    copy(busybox, &root.join("bin/busybox"))?;
    for applet in run::stdout(Command::new(busybox).arg("--list"))?.lines() {
        let link = root.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    for test in &payload.tests {
        let name = test.file_name().context("test path has no file name")?;
        copy(test, &root.join("tests").join(name))?;
    }
    copy(&payload.oomtrace, &inside(&root, &payload.oomtrace))?;
    for tool in &payload.dynamic_tools {
        copy(tool, &inside(&root, tool))?;
        let ldd = run::stdout(Command::new("ldd").arg(tool))?;
        for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
            copy(Path::new(lib), &inside(&root, Path::new(lib)))?;
        }
    }
    let suite = SUITE.replace("\"$OOMTRACE_BIN\"", &format!("\"{}\"", payload.oomtrace.display()));
    std::fs::write(root.join("run-suite.sh"), suite)?;
    std::fs::write(root.join("init"), INIT)?;
    run::status(Command::new("chmod").arg("+x").arg(root.join("init")))?;
    let initrd = work.join("initrd.cpio");
    // Uncompressed: unpacking is faster than decompressing under TCG.
    let script = format!("cd '{}' && find . | cpio -o -H newc --quiet > '{}'", root.display(), initrd.display());
    run::status(Command::new("sh").arg("-c").arg(script)).context("cpio (apt-get install cpio)")?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(initrd)
}

fn inside(root: &Path, host_path: &Path) -> PathBuf {
    root.join(host_path.strip_prefix("/").unwrap_or(host_path))
}

/// Copies a file, creating its parent directories.
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to).with_context(|| format!("copy {} -> {}", from.display(), to.display()))?;
    Ok(())
}

/// Host tools the matrix needs, installed when missing.
pub fn ensure_host_packages() -> Result<()> {
    ensure_host_tools(&[
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
        ("file", "file"),
        ("bpftool", "bpftool"),
        ("mkfs.ext4", "e2fsprogs"),
    ])
}

/// Installs the Debian package of each `(tool, package)` whose tool is not
/// on the PATH.
pub fn ensure_host_tools(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted.iter().filter(|(tool, _)| which(tool).is_none()).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run::status(Command::new("apt-get").args(["update", "-qq"]))?;
    run::status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

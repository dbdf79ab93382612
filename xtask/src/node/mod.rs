//! `cargo xtask node-test`: an AKS-shaped node (Debian's systemd, containerd
//! and runc on cgroup v2) booted under qemu on matrix kernels, running the
//! in-guest suite `oomtrace/tests/node.rs` against the DaemonSet's image.
//!
//! The kernels, the static build, the qemu runner and the outcome parser are
//! vm-test's (`crate::vm`); this module adds the Debian userspace (rootfs),
//! its configuration and payload (initramfs, payload) and docs/node.md
//! (report).

mod initramfs;
mod payload;
pub(crate) mod report;
mod rootfs;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::vm::{self, kernels};

/// The kernel series the node boots by default: bookworm's 6.1 and 6.12.
const DEFAULT_SERIES: [&str; 2] = ["6.1", "6.12"];

/// systemd mounts only the unified hierarchy (bookworm's default, stated).
const CMDLINE: &str = "systemd.unified_cgroup_hierarchy=1";

#[derive(Debug, clap::Args)]
pub struct NodeTestArgs {
    /// Kernel series to boot (repeatable): 6.1, 6.12, or any vm-test series. Default: 6.1 and 6.12.
    #[arg(long = "kernel", value_name = "SERIES")]
    pub kernels: Vec<String>,
    /// Nodes run at once (each is one single-threaded qemu).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Guest memory.
    #[arg(long, default_value = "2G")]
    pub memory: String,
    /// Per-node timeout in seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Run this executable in the guest instead of the `node` integration
    /// test (to check the harness; the DaemonSet image is then optional).
    #[arg(long, value_name = "EXECUTABLE")]
    pub suite: Option<PathBuf>,
    /// Where to write the report (only when the default kernels ran).
    #[arg(long, default_value = "docs/node.md")]
    pub report: String,
    /// Build everything the nodes boot (the static suite, the DaemonSet's
    /// image, the rootfs, the initramfs) and stop: a later run finds it
    /// built. `.ci/run` does this beside vm-test, at the lowest priority.
    #[arg(long)]
    pub prepare_only: bool,
}

pub fn run(workspace: &Path, args: &NodeTestArgs) -> Result<()> {
    let started = Instant::now();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("node-test must run as root (it installs packages, builds a rootfs and the images)");
    }
    payload::preflight(workspace, args.suite.as_deref())?;
    kernels::require_host_tools()?;
    vm::initramfs::ensure_host_tools(&[
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("cpio", "cpio"),
        ("mmdebstrap", "mmdebstrap"),
        ("depmod", "kmod"),
        ("modinfo", "kmod"),
    ])?;
    let labels: Vec<&str> = if args.kernels.is_empty() {
        DEFAULT_SERIES.to_vec()
    } else {
        args.kernels.iter().map(String::as_str).collect()
    };
    let kernels = kernels::fetch_all(&labels, &workspace.join("target/vm"))?;
    let cache = workspace.join("target/node");
    let payload = payload::prepare(workspace, &cache, args.suite.as_deref())?;
    let rootfs = rootfs::tarball(&cache)?;
    let work = cache.join("work");
    std::fs::create_dir_all(&work)?;
    eprintln!("node-test: packing the node initramfs");
    let initrd = initramfs::build(&work, &rootfs, &kernels, &payload)?;
    if args.prepare_only {
        eprintln!("node-test: prepared {} in {:.0} s", initrd.display(), started.elapsed().as_secs_f64());
        return Ok(());
    }

    let matrix = vm::Matrix {
        initrd: &initrd,
        memory: &args.memory,
        extra_cmdline: CMDLINE,
        scratch_disk_bytes: None,
        timeout: Duration::from_secs(args.timeout),
        jobs: args.jobs,
        work: &work,
    };
    let results = matrix.boot_each(&kernels, |kernel, boot| report::parse(kernel.label, &kernel.release, boot))?;
    if args.kernels.is_empty() {
        let path = workspace.join(&args.report);
        let markdown = report::markdown(&results, started.elapsed(), args.jobs.max(1));
        std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("node-test: wrote {}", path.display());
        let bench = workspace.join("docs/benchmarks.md");
        let text = std::fs::read_to_string(&bench).unwrap_or_default();
        let block = report::benchmarks_block(&results, payload.daemonset_image.as_ref());
        std::fs::write(&bench, report::with_block(&text, &block))
            .with_context(|| format!("writing {}", bench.display()))?;
        eprintln!("node-test: wrote its figures into {}", bench.display());
    }
    eprintln!("node-test: done in {:.0} s", started.elapsed().as_secs_f64());
    vm::fail_on_any(&results, "the node suite")
}

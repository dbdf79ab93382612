//! `cargo xtask vm-test`: the test suite on real Debian kernels under qemu.

// Shared with node-test (`crate::node`): the static build, the kernels, the
// qemu runner, the test-outcome parser and the host command helpers.
pub(crate) mod build;
pub(crate) mod initramfs;
pub(crate) mod kernels;
pub(crate) mod qemu;
pub(crate) mod report;
pub(crate) mod run;

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};

#[derive(Debug, clap::Args)]
pub struct VmTestArgs {
    /// Kernel series to boot (repeatable): 5.10, 6.1-oldest, 6.1, 6.12, 7.x. Default: all.
    #[arg(long = "kernel", value_name = "SERIES")]
    pub kernels: Vec<String>,
    /// VMs run at once (each is one single-threaded qemu).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Guest memory.
    #[arg(long, default_value = "1G")]
    pub memory: String,
    /// Per-VM timeout in seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Where to write the kernel table (only when every series ran).
    #[arg(long, default_value = "docs/kernels.md")]
    pub report: String,
}

pub fn run(workspace: &Path, args: &VmTestArgs) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("vm-test must run as root (it installs packages; the guests need nothing from the host)");
    }
    kernels::require_host_tools()?;
    initramfs::ensure_host_packages()?;
    let labels: Vec<&str> = if args.kernels.is_empty() {
        kernels::SERIES.iter().map(|s| s.label).collect()
    } else {
        args.kernels.iter().map(String::as_str).collect()
    };
    let cache = workspace.join("target/vm");
    let kernels = kernels::fetch_all(&labels, &cache)?;
    let built = build::build(workspace, None)?;
    let bpftool = kernels::which("bpftool").context("bpftool not found")?;
    let payload = initramfs::Payload { tests: built.tests, oomtrace: built.oomtrace, dynamic_tools: vec![bpftool] };
    let work = cache.join("work");
    std::fs::create_dir_all(&work)?;
    let initrd = initramfs::build(&work, &payload)?;

    let timeout = Duration::from_secs(args.timeout);
    let results = on_each_kernel(&kernels, args.jobs, |kernel| {
        let dir = work.join(&kernel.release);
        std::fs::create_dir_all(&dir)?;
        eprintln!("vm-test: booting {} ({})", kernel.label, kernel.release);
        let guest =
            qemu::Guest { vmlinuz: &kernel.vmlinuz, initrd: &initrd, memory: &args.memory, extra_cmdline: "", timeout };
        let boot = qemu::boot(&guest, &dir)?;
        std::fs::write(dir.join("suite.log"), &boot.output)?;
        let result = report::parse(kernel.label, &kernel.release, &boot);
        println!("{}", result.line());
        if !result.passed {
            eprintln!("--- {} suite output (failures) ---\n{}", result.label, result.failure_excerpt);
        }
        Ok(result)
    })?;
    if args.kernels.is_empty() {
        let path = workspace.join(&args.report);
        std::fs::write(&path, report::markdown(&results)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("vm-test: wrote {}", path.display());
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).map(|r| r.label).collect();
    if !failed.is_empty() {
        bail!("the suite failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// Runs `boot` for every kernel, at most `jobs` at once (each VM is one
/// single-threaded qemu), and returns the results in the kernels' order.
pub fn on_each_kernel<T: Send>(
    kernels: &[kernels::Kernel],
    jobs: usize,
    boot: impl Fn(&kernels::Kernel) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut results = Vec::with_capacity(kernels.len());
    for chunk in kernels.chunks(jobs.max(1)) {
        let chunk_results: Vec<Result<T>> = std::thread::scope(|scope| {
            let boot = &boot;
            let handles: Vec<_> = chunk.iter().map(|kernel| scope.spawn(move || boot(kernel))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("VM thread panicked"))).collect()
        });
        for result in chunk_results {
            results.push(result?);
        }
    }
    Ok(results)
}

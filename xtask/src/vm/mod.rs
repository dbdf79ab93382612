//! `cargo xtask vm-test`: the test suite on real Debian kernels under qemu.

mod build;
mod initramfs;
mod kernels;
mod qemu;
mod report;
mod run;

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};

pub use report::KernelResult;

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
    let series = if args.kernels.is_empty() {
        kernels::SERIES.to_vec()
    } else {
        args.kernels.iter().map(|k| kernels::series(k)).collect::<Result<Vec<_>>>()?
    };
    let cache = workspace.join("target/vm");
    let mut kernels = Vec::new();
    for s in &series {
        let kernel = kernels::fetch(*s, &cache).with_context(|| format!("fetching the {} kernel", s.label))?;
        eprintln!("vm-test: {} -> {}", kernel.label, kernel.release);
        kernels.push(kernel);
    }
    let built = build::build(workspace)?;
    let bpftool = kernels::which("bpftool").context("bpftool not found")?;
    let payload = initramfs::Payload { tests: built.tests, oomtrace: built.oomtrace, dynamic_tools: vec![bpftool] };
    let work = cache.join("work");
    std::fs::create_dir_all(&work)?;
    let initrd = initramfs::build(&work, &payload)?;

    let timeout = Duration::from_secs(args.timeout);
    let jobs = args.jobs.max(1);
    let mut results: Vec<KernelResult> = Vec::new();
    for chunk in kernels.chunks(jobs) {
        let chunk_results: Vec<Result<KernelResult>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|kernel| {
                    let dir = work.join(&kernel.release);
                    let initrd = &initrd;
                    scope.spawn(move || -> Result<KernelResult> {
                        std::fs::create_dir_all(&dir)?;
                        eprintln!("vm-test: booting {} ({})", kernel.label, kernel.release);
                        let boot = qemu::boot(&kernel.vmlinuz, initrd, &dir, &args.memory, timeout)?;
                        std::fs::write(dir.join("suite.log"), &boot.output)?;
                        Ok(report::parse(kernel.label, &kernel.release, &boot))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("VM thread panicked"))).collect()
        });
        for result in chunk_results {
            let result = result?;
            println!("{}", result.line());
            if !result.passed {
                eprintln!("--- {} suite output (failures) ---\n{}", result.label, result.failure_excerpt);
            }
            results.push(result);
        }
    }
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

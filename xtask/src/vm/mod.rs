//! `cargo xtask vm-test`: the test suite on real Debian kernels under qemu.

// Shared with node-test (`crate::node`): the static build, the kernels, the
// qemu runner, the test-outcome parser and the host command helpers.
pub(crate) mod build;
pub(crate) mod initramfs;
pub(crate) mod kernels;
pub(crate) mod qemu;
pub(crate) mod report;
pub(crate) mod run;

use std::{
    path::Path,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// The guests' scratch disk, mounted at /mnt/disk (guest-suite.sh): room for
/// what tests/warnings.rs's page-cache test writes there (a file 3× its
/// 128 MiB limit streamed, a dirty file of up to 4× it) and some to spare.
/// Sparse on the host: only what the guest writes takes space, until the VM
/// ends and the image is removed.
const SCRATCH_DISK_BYTES: u64 = 2 << 30;

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
    /// Build the guests' static test binaries and oomtrace and stop (no
    /// kernels, no packages): a later run finds them built. `.ci/run` does
    /// this beside the host tests, at the lowest priority.
    #[arg(long)]
    pub build_only: bool,
}

pub fn run(workspace: &Path, args: &VmTestArgs) -> Result<()> {
    if args.build_only {
        let built = build::build(workspace, None)?;
        eprintln!("vm-test: built {} test binaries and {}", built.tests.len(), built.oomtrace.display());
        return Ok(());
    }
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

    let matrix = Matrix {
        initrd: &initrd,
        memory: &args.memory,
        extra_cmdline: "",
        scratch_disk_bytes: Some(SCRATCH_DISK_BYTES),
        timeout: Duration::from_secs(args.timeout),
        jobs: args.jobs,
        work: &work,
    };
    let results = matrix.boot_each(&kernels, |kernel, boot| report::parse(kernel.label, &kernel.release, boot))?;
    if args.kernels.is_empty() {
        let path = workspace.join(&args.report);
        std::fs::write(&path, report::markdown(&results)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("vm-test: wrote {}", path.display());
    }
    fail_on_any(&results, "the suite")
}

/// What one kernel's run came to, as the matrix prints it.
pub trait Verdict {
    fn label(&self) -> &str;
    fn passed(&self) -> bool;
    /// The one-line summary printed when the kernel's VM is done.
    fn line(&self) -> String;
    /// The output to show when it failed.
    fn failure_excerpt(&self) -> &str;
}

/// Fails naming every kernel whose run failed.
pub fn fail_on_any(results: &[impl Verdict], what: &str) -> Result<()> {
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).map(|r| r.label()).collect();
    if !failed.is_empty() {
        bail!("{what} failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// One matrix run: the same initramfs on every kernel.
pub struct Matrix<'a> {
    pub initrd: &'a Path,
    pub memory: &'a str,
    /// Appended to the kernel command line.
    pub extra_cmdline: &'a str,
    /// Each guest's own scratch disk ([`qemu::scratch_disk`]), if any, made
    /// fresh at `<work>/<release>/disk.img` and removed when the VM ends.
    pub scratch_disk_bytes: Option<u64>,
    pub timeout: Duration,
    /// VMs at once (each is one single-threaded qemu).
    pub jobs: usize,
    /// Each kernel's serial output goes to `<work>/<release>/` (suite.log:
    /// the suite's).
    pub work: &'a Path,
}

impl Matrix<'_> {
    /// Boots every kernel and reads each boot with `read`, printing each
    /// verdict as its VM ends; the results come in the kernels' order.
    pub fn boot_each<T: Verdict + Send>(
        &self,
        kernels: &[kernels::Kernel],
        read: impl Fn(&kernels::Kernel, &qemu::Boot) -> T + Sync,
    ) -> Result<Vec<T>> {
        let boot_one = |kernel: &kernels::Kernel| -> Result<T> {
            let dir = self.work.join(&kernel.release);
            std::fs::create_dir_all(&dir)?;
            let disk = dir.join("disk.img");
            if let Some(bytes) = self.scratch_disk_bytes {
                qemu::scratch_disk(&disk, bytes)?;
            }
            eprintln!("xtask: booting {} ({})", kernel.label, kernel.release);
            let guest = qemu::Guest {
                vmlinuz: &kernel.vmlinuz,
                initrd: self.initrd,
                memory: self.memory,
                extra_cmdline: self.extra_cmdline,
                timeout: self.timeout,
                disk: self.scratch_disk_bytes.map(|_| disk.as_path()),
            };
            let boot = qemu::boot(&guest, &dir);
            if self.scratch_disk_bytes.is_some() {
                let _ = std::fs::remove_file(&disk);
            }
            let boot = boot?;
            std::fs::write(dir.join("suite.log"), &boot.output)?;
            let verdict = read(kernel, &boot);
            println!("{}", verdict.line());
            if !verdict.passed() {
                eprintln!("--- {} output (failures) ---\n{}", verdict.label(), verdict.failure_excerpt());
            }
            Ok(verdict)
        };
        // `jobs` workers, each booting the next kernel not yet taken as soon
        // as its VM ends (fixed groups of `jobs` would wait for their slowest).
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<T>>>> = kernels.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.clamp(1, kernels.len().max(1)) {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(kernel) = kernels.get(index) else { break };
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| boot_one(kernel)))
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("the VM thread of {} panicked", kernel.label)));
                        *slots[index].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                    }
                });
            }
        });
        slots
            .into_iter()
            .zip(kernels)
            .map(|(slot, kernel)| {
                slot.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .unwrap_or_else(|| Err(anyhow::anyhow!("{} was never booted", kernel.label)))
            })
            .collect()
    }
}

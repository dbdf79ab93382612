//! Boots one kernel with the initramfs under qemu and collects what the guest
//! wrote to its serial ports.
//!
//! This host's /dev/kvm is PVM and cannot run stock kernels, so the guest
//! runs on TCG, single-threaded: multi-threaded TCG hangs the guest while
//! kprobes are added and removed.
//!
//! A guest may get a scratch disk: a raw image file formatted ext4 on the
//! host, attached as an NVMe drive. NVMe, PCI and ext4 are built into every
//! Debian cloud kernel of the matrix (their `modules.builtin`; virtio-blk is a
//! module), so the busybox guest needs no module to mount it: a real block
//! device whose files have real page cache, dirty and writeback pages, and
//! which costs the guest no RAM (a brd RAM disk would hold every page twice).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::run;

pub struct Boot {
    /// What the suite printed (second serial port).
    pub output: String,
    /// The suite's exit code, if the guest reported one.
    pub exit_code: Option<i32>,
    /// The tail of the kernel console, for diagnosis.
    pub console_tail: String,
    pub elapsed: Duration,
}

/// What to boot and how long to wait for it.
pub struct Guest<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub memory: &'a str,
    /// Appended to the kernel command line.
    pub extra_cmdline: &'a str,
    pub timeout: Duration,
    /// A disk image attached as the NVMe drive `/dev/nvme0n1` ([`scratch_disk`]).
    pub disk: Option<&'a Path>,
}

/// The scratch disk's ext4 features, named rather than taken from the host's
/// mke2fs.conf: every kernel of the matrix mounts these (e2fsprogs 1.47 can
/// enable `orphan_file`, which kernels before 5.15 refuse).
const SCRATCH_DISK_FEATURES: &str = "none,has_journal,ext_attr,resize_inode,dir_index,filetype,extent,flex_bg,\
                                     sparse_super,large_file,huge_file,dir_nlink,extra_isize";

/// Makes `image`, a sparse file of `bytes`, an empty ext4 file system (with
/// its inode tables and journal written here, not by the guest's lazy-init
/// thread under TCG).
pub fn scratch_disk(image: &Path, bytes: u64) -> Result<()> {
    let _ = std::fs::remove_file(image);
    let file = std::fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
    file.set_len(bytes).with_context(|| format!("sizing {}", image.display()))?;
    drop(file);
    run::stdout(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "oomtrace-disk", "-O", SCRATCH_DISK_FEATURES])
            .args(["-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(image),
    )
    .context("mkfs.ext4 (apt-get install e2fsprogs)")?;
    Ok(())
}

/// Boots `guest` with its serial ports in files under `work`: the console
/// (ttyS0), the suite's output (ttyS1) and `VM_EXIT=<code>` (ttyS2).
pub fn boot(guest: &Guest, work: &Path) -> Result<Boot> {
    let Guest { vmlinuz, initrd, memory, extra_cmdline, timeout, disk } = *guest;
    let console = work.join("console.log");
    let output = work.join("out.log");
    let rc = work.join("rc");
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64");
    if let Some(image) = disk {
        qemu.arg("-drive")
            .arg(format!("file={},if=none,format=raw,id=scratch", image.display()))
            .args(["-device", "nvme,drive=scratch,serial=oomtrace-scratch"]);
    }
    let mut child = qemu
        .args(["-accel", "tcg,thread=single", "-cpu", "max", "-m", memory, "-smp", "2"])
        .args(["-nodefaults", "-no-reboot", "-display", "none", "-no-user-config"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 rdinit=/init panic=-1 oops=panic loglevel=4 {extra_cmdline}"))
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", output.display()))
        .arg("-serial")
        .arg(format!("file:{}", rc.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let finished = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let exit_code = read(&rc).lines().find_map(|l| l.strip_prefix("VM_EXIT=")).and_then(|v| v.trim().parse().ok());
    let console_text = read(&console);
    // systemd redraws its "Job ... running (6min 20s / no limit)" spinner
    // twice a second while the suite's unit starts: that says nothing.
    let tail: Vec<&str> = console_text.lines().rev().filter(|line| !is_progress_line(line)).take(40).collect();
    let mut console_tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if !finished {
        console_tail.push_str(&format!("\n(vm-test: timed out after {timeout:?})"));
    }
    Ok(Boot { output: read(&output), exit_code, console_tail, elapsed: started.elapsed() })
}

/// A line of systemd's progress spinner (`[  *** ] Job x.service/start running
/// (1min 2s / no limit)`, `A start job is running for ...`) or its residue.
fn is_progress_line(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line == "M"
        || (line.contains("] Job ") && line.contains(" running ("))
        || line.contains("A start job is running for")
        || line.contains("A stop job is running for")
}

#[cfg(test)]
mod tests {
    use super::is_progress_line;

    #[test]
    fn systemds_spinner_is_not_kept_in_the_console_tail() {
        let spinner =
            "\u{1b}[K[\u{1b}[0;31m*     \u{1b}[0m] Job oomtrace-node-test.service/start running (6min 23s / no limit)";
        assert!(is_progress_line(spinner));
        assert!(is_progress_line("M"));
        assert!(is_progress_line("[ *** ] A start job is running for oomtrace (1min / no limit)"));
        assert!(!is_progress_line("[  402.679783] Out of memory: Killed process 2263 (hog)"));
        assert!(!is_progress_line("[  OK  ] Removed slice kubepods-besteffort.slice."));
    }
}

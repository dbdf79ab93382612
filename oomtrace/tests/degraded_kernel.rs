//! Kernels that lack something oomtrace uses, reproduced for real in a private
//! mount namespace (`unshare -m`): tracefs not mounted, no BTF. The host's
//! mounts are untouched.

mod support;

use std::{
    process::{Command, ExitCode},
    time::Duration,
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    dmesg,
    event::Event,
    harness::{self, Need},
    trial,
};
use support::{assert_rss_kb, live, oomtrace, unique};

fn main() -> ExitCode {
    harness::main(vec![
        trial!(check_without_tracefs_says_how_to_mount_it, Need::Root),
        trial!(without_btf_the_tracepoint_fields_remain_and_the_loss_is_stated, Need::Root),
        trial!(sigterm_detaches_cleanly, Need::Root),
    ])
}

/// Runs `script` in a new mount namespace, with `$OOMTRACE` set to the binary.
fn in_private_mounts(script: &str) -> Result<std::process::Output> {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("OOMTRACE", oomtrace())
        .env("OOMTRACE_LOG", "info")
        .output()
        .context("run unshare (util-linux)")
}

fn check_without_tracefs_says_how_to_mount_it() -> Result<()> {
    let out = in_private_mounts(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \"$OOMTRACE\" check",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tracefs = text.lines().find(|l| l.starts_with("tracefs")).expect("tracefs line");
    assert!(tracefs.contains("FAIL") && tracefs.contains("mount -t tracefs"), "{text}");
    let classic = text.lines().find(|l| l.starts_with("tracepoint:oom/mark_victim")).expect("tracepoint line");
    assert!(classic.contains("FAIL"), "{text}");
    // tp_btf needs no tracefs, so OOM kills can still be traced.
    let btf = text.lines().find(|l| l.starts_with("tp_btf:mark_victim")).expect("tp_btf line");
    assert!(btf.contains(" ok "), "{text}");
    assert!(out.status.success(), "{text}");
    Ok(())
}

fn without_btf_the_tracepoint_fields_remain_and_the_loss_is_stated() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("no_btf"), Some(64 << 20))?;
    // `oomtrace live` in a namespace where /sys/kernel/btf/vmlinux is empty.
    let script =
        "mount --bind /dev/null /sys/kernel/btf/vmlinux && exec \"$OOMTRACE\" live -o json --count 1 --duration 20s";
    let child = std::thread::spawn(move || in_private_mounts(script));
    // No readiness line to wait on from here: give it time to attach.
    std::thread::sleep(Duration::from_secs(2));
    let pid = cgroup.oom_kill_hog(256 << 20)?;
    let out = child.join().expect("join")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("no kernel BTF"), "the loss must be stated:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Its kill (a warning about the guest's memory may come before it).
    let kill = stdout.lines().find(|l| l.contains(r#""kind":"oom_kill""#)).context("one kill event")?;
    let event = Event::parse(kill)?;
    let line = dmesg::killed(pid)?;
    assert_eq!(event.victim.pid, pid, "{event}");
    assert_eq!(event.victim.comm.as_deref(), Some(line.comm.as_str()), "{event}");
    assert_rss_kb(event.victim.anon_rss_kb, line.anon_rss_kb, "anon_rss", &event);
    assert_eq!(event.victim.total_vm_kb, Some(line.total_vm_kb), "{event}");
    // What only BTF gives is absent, not zero.
    assert!(event.victim_cgroup.is_none(), "{event}");
    assert!(event.victim.tgid.is_none(), "{event}");
    assert!(event.oom_cgroup.is_none(), "{event}");
    assert_eq!(event.sources.first().map(String::as_str), Some("tracepoint:oom/mark_victim"), "{event}");
    Ok(())
}

/// Ids of the BPF programs process `pid` holds open (from its fdinfo).
fn program_ids_held_by(pid: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo").flatten() {
        let info = std::fs::read_to_string(entry.path()).unwrap_or_default();
        ids.extend(
            info.lines().filter_map(|l| l.strip_prefix("prog_id:")).filter_map(|v| v.trim().parse::<u32>().ok()),
        );
    }
    ids.sort();
    ids.dedup();
    ids
}

fn program_exists(id: u32) -> bool {
    Command::new("bpftool").args(["prog", "show", "id", &id.to_string()]).output().expect("bpftool").status.success()
}

fn sigterm_detaches_cleanly() -> Result<()> {
    let tracer = live(&[])?;
    let ids = program_ids_held_by(tracer.pid());
    assert!(ids.len() >= 2, "victim and signal programs should be attached while running: {ids:?}");
    assert!(ids.iter().all(|&id| program_exists(id)));
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert!(stopped.logged("detached"), "{}", stopped.log);
    let left: Vec<_> = ids.into_iter().filter(|&id| program_exists(id)).collect();
    assert!(left.is_empty(), "programs left behind after exit: {left:?}");
    Ok(())
}

//! `oomtrace check` on this machine reports what actually attaches.

mod support;

use std::{
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    harness::{self, Need},
    trial,
};
use support::{oomtrace, unique};

fn main() -> ExitCode {
    harness::main(vec![
        trial!(check_reports_the_attach_methods_and_succeeds, Need::Root),
        // Runs the binary as nobody; switching users needs root.
        trial!(live_without_privileges_says_what_to_do, Need::Root),
    ])
}

fn check_reports_the_attach_methods_and_succeeds() -> Result<()> {
    let out = Command::new(oomtrace()).arg("check").output().context("run oomtrace check")?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "tracepoint:oom/mark_victim",
        "tp_btf:mark_victim",
        "raw_tp:mark_victim",
        "fentry:oom_kill_process",
        "kprobe:oom_kill_process",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
    // The classic tracepoint exists on every kernel oomtrace supports.
    let tracepoint = text.lines().find(|l| l.starts_with("tracepoint:oom/mark_victim")).context("line")?;
    assert!(tracepoint.contains(" ok "), "{tracepoint}");
    assert!(text.contains("verdict: OOM kills can be traced"), "{text}");
    Ok(())
}

fn live_without_privileges_says_what_to_do() -> Result<()> {
    // The checkout may sit in a directory only root can enter (mktemp -d is
    // 0700): give nobody a copy it can reach.
    let dir = std::env::temp_dir().join(unique("nobody"));
    std::fs::create_dir_all(&dir).context("mkdir")?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).context("chmod dir")?;
    let binary = dir.join("oomtrace");
    std::fs::copy(oomtrace(), &binary).context("copy the binary")?;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).context("chmod binary")?;
    // Changing uid from root to nobody clears the effective capabilities.
    let out = Command::new(&binary)
        .args(["live", "--count", "1"])
        .uid(65534)
        .gid(65534)
        .output()
        .context("run oomtrace as nobody")?;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CAP_BPF") && stderr.contains("run it as root"), "{stderr}");
    assert!(stderr.contains("uid 65534"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

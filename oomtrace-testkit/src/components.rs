//! The real components the privileged tests and the bench talk to, run by
//! the scripts of this checkout: containerd with CRI (`scripts/runtime.sh`)
//! and Prometheus plus an OTLP receiver (`scripts/observability.sh`). They are
//! shared: started when missing, never taken down here.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// What a component's script reported.
#[derive(Clone, Debug)]
pub enum ComponentState {
    AlreadyRunning,
    /// `scripts/<script> up` started it just now.
    Started,
    Unavailable(String),
}

impl ComponentState {
    pub fn describe(&self) -> String {
        match self {
            ComponentState::AlreadyRunning => "already running".to_owned(),
            ComponentState::Started => "started by the bench (left running)".to_owned(),
            ComponentState::Unavailable(reason) => format!("unavailable: {reason}"),
        }
    }

    pub fn unavailable(&self) -> Option<&str> {
        match self {
            ComponentState::Unavailable(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The checkout this kit was built from (its `scripts/` run the components).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// containerd with its CRI plugin: `scripts/runtime.sh`.
pub fn ensure_runtime(root: &Path, start: bool) -> ComponentState {
    ensure(root, "runtime.sh", "containerd (CRI)", start)
}

/// Prometheus and the OTLP receiver: `scripts/observability.sh`.
pub fn ensure_observability(root: &Path, start: bool) -> ComponentState {
    ensure(root, "observability.sh", "Prometheus and the OTLP receiver", start)
}

/// `status`; when it fails and `start` holds, `up` and `status` again.
fn ensure(root: &Path, script: &str, what: &str, start: bool) -> ComponentState {
    let describe = |error: anyhow::Error| format!("{error:#}");
    let Err(reason) = run(root, script, "status").map_err(describe) else { return ComponentState::AlreadyRunning };
    if !start {
        return ComponentState::Unavailable(format!("{what} not running and --no-start given ({reason})"));
    }
    eprintln!("xtask bench: {what} not running: scripts/{script} up (this can take minutes the first time)");
    if let Err(reason) = run(root, script, "up").map_err(describe) {
        return ComponentState::Unavailable(reason);
    }
    match run(root, script, "status").map_err(describe) {
        Ok(()) => ComponentState::Started,
        Err(reason) => ComponentState::Unavailable(format!("still down after scripts/{script} up: {reason}")),
    }
}

/// Runs `bash <root>/scripts/<script> <command>`; the error ends with the
/// last lines of its output.
pub fn run(root: &Path, script: &str, command: &str) -> Result<()> {
    let path = root.join("scripts").join(script);
    let output = Command::new("bash")
        .arg(&path)
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} {command}", path.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let tail: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    bail!("scripts/{script} {command} failed ({}): {tail}", output.status)
}

//! The real test components the daemon and enrichment sections need:
//! containerd with CRI (`scripts/runtime.sh`) and Prometheus plus an OTLP
//! receiver (`scripts/observability.sh`). The bench starts what is not
//! running and leaves it running (the integration tests share them).

use std::{
    path::Path,
    process::{Command, Stdio},
};

/// What a component's script reported.
#[derive(Clone, Debug)]
pub enum ComponentState {
    AlreadyRunning,
    /// `scripts/<script> up` started it during this bench.
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
    let path = root.join("scripts").join(script);
    let status = run(&path, "status");
    let Err(reason) = status else { return ComponentState::AlreadyRunning };
    if !start {
        return ComponentState::Unavailable(format!("{what} not running and --no-start given ({reason})"));
    }
    eprintln!("xtask bench: {what} not running: scripts/{script} up (this can take minutes the first time)");
    if let Err(reason) = run(&path, "up") {
        return ComponentState::Unavailable(reason);
    }
    match run(&path, "status") {
        Ok(()) => ComponentState::Started,
        Err(reason) => ComponentState::Unavailable(format!("still down after scripts/{script} up: {reason}")),
    }
}

/// Runs `bash <script> <command>`; the error is the end of its output.
fn run(script: &Path, command: &str) -> Result<(), String> {
    let output = Command::new("bash")
        .arg(script)
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {} {command}: {error}", script.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let tail: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    let name = script.file_name().map_or_else(|| script.display().to_string(), |n| n.to_string_lossy().into_owned());
    Err(format!("scripts/{name} {command} failed ({}): {tail}", output.status))
}

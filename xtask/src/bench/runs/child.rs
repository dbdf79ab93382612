//! One command run to its end, with what it used: wall time, and its own
//! CPU time from `wait4` (that of no other child). Not its peak RSS: the
//! kernel's `ru_maxrss` of an exec'd child starts at the RSS its parent had
//! (xtask's own), so only a small parent such as GNU time can report that.

use std::{
    io::Read as _,
    os::unix::process::ExitStatusExt as _,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// A finished run that succeeded.
#[derive(Debug)]
pub struct Ran {
    /// Empty unless kept.
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Spawn to exit.
    pub wall: Duration,
    /// user + system.
    pub cpu: Duration,
}

impl Ran {
    /// The last non-empty line it wrote to stderr.
    pub fn last_stderr_line(&self) -> &str {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
    }
}

/// Runs `command` with no stdin, its stdout kept or sent to /dev/null; an
/// error (with the end of its stderr) when it fails.
pub fn run(command: &mut Command, keep_stdout: bool) -> Result<Ran> {
    let stdout = if keep_stdout { Stdio::piped() } else { Stdio::null() };
    let started = Instant::now();
    let mut child =
        command.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::piped()).spawn().context("could not start it")?;
    let stderr_pipe = child.stderr.take();
    let stderr_reader = thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = stderr_pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout).context("reading its stdout")?;
    }
    let (status, usage) = wait4(child.id())?;
    let wall = started.elapsed();
    let stderr = stderr_reader.join().unwrap_or_default();
    let ran = Ran { stdout, stderr, wall, cpu: time(usage.ru_utime) + time(usage.ru_stime) };
    if !status.success() {
        bail!(
            "failed ({status}): {}",
            match ran.last_stderr_line() {
                "" => "no output",
                line => line,
            }
        );
    }
    Ok(ran)
}

/// Reaps `pid` (a child std spawned and nobody waits for) with its usage.
fn wait4(pid: u32) -> Result<(ExitStatus, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: rusage is plain integers, for which all zeroes is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: wait4 writes one status and one rusage into the two places it is given.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("waiting for it");
        }
    }
}

fn time(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_has_its_output_and_its_own_usage() {
        let ran =
            run(Command::new("sh").args(["-c", "echo out; echo err >&2; head -c 30000000 /dev/zero | wc -c"]), true)
                .unwrap();
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "out\n30000000\n");
        assert_eq!(ran.last_stderr_line(), "err");
        assert!(ran.wall > Duration::ZERO, "{ran:?}");
        let quiet = run(Command::new("sh").args(["-c", "echo out"]), false).unwrap();
        assert!(quiet.stdout.is_empty());
    }

    #[test]
    fn a_failed_command_is_an_error_with_its_reason() {
        let error = run(Command::new("sh").args(["-c", "echo why >&2; exit 3"]), false).unwrap_err();
        assert_eq!(format!("{error:#}"), "failed (exit status: 3): why");
        let error = run(Command::new("sh").args(["-c", "exit 4"]), false).unwrap_err();
        assert_eq!(format!("{error:#}"), "failed (exit status: 4): no output");
        assert!(run(&mut Command::new("/nonexistent/program"), false).is_err());
    }
}

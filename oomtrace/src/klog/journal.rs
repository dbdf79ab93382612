//! The systemd journal's kernel messages, through `journalctl -k -o json` (the journal's own
//! reader: its file format is not ours to parse). The journal keeps far more than the ring
//! buffer, across boots if it is persistent.

use std::ffi::OsString;
use std::io::{self, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use oomtrace_klog::source::journal::{JournalEntry, parse_entry};
use tracing::warn;

use super::file::read_bounded_line;

/// journalctl's stderr kept for an error message.
const STDERR_LIMIT_BYTES: u64 = 16 * 1024;

/// Which boots to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BootFilter {
    /// This boot (`-b`): history is "since boot".
    #[default]
    Current,
    /// One boot by its id (`-b <id>`), as in `_BOOT_ID` or `journalctl --list-boots`.
    Id(String),
    /// Every boot the journal keeps.
    All,
}

/// What to ask journalctl for.
#[derive(Clone, Debug)]
pub struct JournalQuery {
    pub boot: BootFilter,
    /// journalctl's `--since` (`2026-11-29 10:00:00`, `-1h`, `yesterday`).
    pub since: Option<String>,
    /// The program to run: `journalctl` from PATH unless set.
    pub program: OsString,
}

impl Default for JournalQuery {
    fn default() -> Self {
        Self { boot: BootFilter::Current, since: None, program: OsString::from("journalctl") }
    }
}

impl JournalQuery {
    /// journalctl's arguments: kernel messages (`-k`) as JSON, fields of any size (`--all`:
    /// without it a MESSAGE over 4096 bytes is null).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["-k", "-o", "json", "--all", "--no-pager"].map(OsString::from).into();
        match &self.boot {
            BootFilter::Current => args.push("-b".into()),
            BootFilter::Id(id) => args.extend(["-b".into(), id.into()]),
            BootFilter::All => {}
        }
        if let Some(since) = &self.since {
            args.extend(["--since".into(), since.into()]);
        }
        args
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "{program} was not found: this system has no systemd journal tools; read /dev/kmsg (the default) or a saved log with --file"
    )]
    NotInstalled { program: String },
    #[error("could not run {program}: {cause}")]
    Spawn { program: String, cause: io::Error },
    #[error("could not read {program}'s output: {cause}")]
    Read { program: String, cause: io::Error },
    #[error("{program} failed ({status}): {stderr}")]
    Failed { program: String, status: ExitStatus, stderr: String },
    #[error(
        "{program} returned no kernel messages{for_boot} ({stderr}): the journal may not be kept here (no journald, \
         or Storage=none), or this user may not read it (members of the systemd-journal or adm groups can); \
         read /dev/kmsg (the default) or a saved log with --file"
    )]
    NoEntries { program: String, for_boot: &'static str, stderr: String },
}

/// What a journal read saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalSummary {
    pub entries: u64,
    pub lines: u64,
    /// Output lines that were no journal entry (skipped).
    pub malformed: u64,
}

/// Streams journalctl's entries as it prints them.
#[derive(Debug)]
pub struct JournalReader {
    program: String,
    boot: BootFilter,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    line: Vec<u8>,
    summary: JournalSummary,
    finished: bool,
}

impl JournalReader {
    pub fn spawn(query: &JournalQuery) -> Result<Self, JournalError> {
        let program = query.program.to_string_lossy().into_owned();
        let mut child = Command::new(&query.program)
            .args(query.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => JournalError::NotInstalled { program: program.clone() },
                _ => JournalError::Spawn { program: program.clone(), cause: source },
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let source = io::Error::other("no pipes to the child");
            return Err(JournalError::Spawn { program, cause: source });
        };
        // Drained on its own thread so a chatty stderr can never block journalctl's stdout.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let mut limited = stderr.take(STDERR_LIMIT_BYTES);
            let mut bytes = Vec::new();
            if limited.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).trim().to_owned();
            }
            // Read the rest so journalctl never blocks on a full pipe.
            let _ = io::copy(&mut limited.into_inner(), &mut io::sink());
            text
        });
        Ok(Self {
            program,
            boot: query.boot.clone(),
            child,
            stdout: BufReader::new(stdout),
            stderr: Some(stderr),
            line: Vec::new(),
            summary: JournalSummary::default(),
            finished: false,
        })
    }

    /// The next entry, or None at the end of journalctl's output; an error when journalctl
    /// failed or gave nothing at all.
    pub fn next_entry(&mut self) -> Result<Option<JournalEntry>, JournalError> {
        while !self.finished {
            let read = read_bounded_line(&mut self.stdout, &mut self.line)
                .map_err(|source| JournalError::Read { program: self.program.clone(), cause: source })?;
            if read.is_none() {
                self.finished = true;
                self.finish()?;
                break;
            }
            match parse_entry(&self.line) {
                Ok(entry) => {
                    self.summary.entries += 1;
                    self.summary.lines += entry.lines.len() as u64;
                    return Ok(Some(entry));
                }
                Err(error) => {
                    self.summary.malformed += 1;
                    if self.summary.malformed == 1 {
                        warn!(program = %self.program, %error, "skipping a journalctl output line");
                    }
                }
            }
        }
        Ok(None)
    }

    pub fn summary(&self) -> JournalSummary {
        self.summary
    }

    fn finish(&mut self) -> Result<(), JournalError> {
        let program = self.program.clone();
        let status =
            self.child.wait().map_err(|source| JournalError::Read { program: program.clone(), cause: source })?;
        let stderr = self.stderr.take().and_then(|thread| thread.join().ok()).unwrap_or_default();
        if !status.success() {
            return Err(JournalError::Failed { program, status, stderr });
        }
        if self.summary.entries == 0 {
            let for_boot = match self.boot {
                BootFilter::Current => " for this boot",
                BootFilter::Id(_) => " for that boot",
                BootFilter::All => "",
            };
            let stderr = if stderr.is_empty() { "it said nothing".to_owned() } else { format!("it said: {stderr}") };
            return Err(JournalError::NoEntries { program, for_boot, stderr });
        }
        Ok(())
    }
}

impl Iterator for JournalReader {
    type Item = Result<JournalEntry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

impl Drop for JournalReader {
    fn drop(&mut self) {
        if !self.finished {
            // Stopped early: don't leave journalctl running or a zombie behind.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests;

//! A tracer under test (oomtrace live or daemon, bpftrace) running as a child
//! process: the one process runner of the bench and the tests.
//!
//! One thread per output stream reads lines. On each stdout line the thread
//! reads the tracer's kernel clock before doing anything else, so an event's
//! latency is "line received" minus the kernel timestamp the tracer printed.
//! Lines that are not events are checked for the startup markers and kept
//! (bounded) for error messages and for the tests to read.

use std::{
    collections::VecDeque,
    ffi::OsString,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::procfs::Clock;

/// How many events may wait between the reader thread and the reader; far
/// more than one run produces.
const EVENT_QUEUE: usize = 4096;
/// Non-event lines kept: all a test run prints, bounded for a long bench.
const LOG_LINES: usize = 10_000;
/// Lines shown when the tracer fails to start.
const TAIL_LINES: usize = 40;

/// One victim as a tracer reported it.
#[derive(Clone, Copy, Debug)]
pub struct Observed {
    pub victim_pid: u32,
    /// The tracer's kernel timestamp of the kill, in ns of its clock.
    pub ktime_ns: u64,
    /// The same clock when the line was received.
    pub received_ns: u64,
}

impl Observed {
    pub fn latency_ns(&self) -> i64 {
        self.received_ns as i64 - self.ktime_ns as i64
    }
}

/// An event and the stdout line it came from.
#[derive(Clone, Debug)]
pub struct EventLine {
    pub observed: Observed,
    pub line: String,
}

/// Turns a stdout line into `(victim_pid, ktime_ns)`, or None for other lines.
pub type ParseLine = fn(&str) -> Option<(u32, u64)>;

/// How to run a tracer and read it.
#[derive(Clone, Debug)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, String)>,
    /// Substrings of lines (on stdout or stderr) that mark startup stages;
    /// the first one means "attached".
    pub markers: Vec<&'static str>,
    pub parse: ParseLine,
    /// The clock of the timestamps `parse` returns.
    pub clock: Clock,
}

pub struct Tracer {
    child: Child,
    spawned: Instant,
    events: Receiver<EventLine>,
    marker_rx: Receiver<(usize, Instant)>,
    markers_seen: Vec<Option<Instant>>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Tracer {
    /// Starts `spec`; its stdout is read on a thread of this process named
    /// after the program ([`stdout_thread_name`]), its stderr on another.
    pub fn spawn(spec: &Spec) -> Result<Tracer> {
        let mut command = Command::new(&spec.program);
        command.args(&spec.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        let spawned = Instant::now();
        let mut child = command.spawn().with_context(|| format!("starting {}", spec.program.display()))?;
        let stdout = child.stdout.take().context("the child's stdout pipe is missing")?;
        let stderr = child.stderr.take().context("the child's stderr pipe is missing")?;
        let (event_tx, events) = mpsc::sync_channel(EVENT_QUEUE);
        let (marker_tx, marker_rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let reader =
            || LineReader { markers: spec.markers.clone(), marker_tx: marker_tx.clone(), log: Arc::clone(&log) };
        let (stdout_reader, stderr_reader) = (reader(), reader());
        let (parse, clock) = (spec.parse, spec.clock);
        let (stamped_tx, stamped_rx) = mpsc::channel();
        thread::Builder::new()
            .name(stdout_thread_name(&spec.program))
            .spawn(move || stamp_lines(stdout, clock, |line| drop(stamped_tx.send(line))))
            .context("starting the stdout reader thread")?;
        thread::Builder::new()
            .name("tracer-lines".into())
            .spawn(move || {
                let events = Some((parse, event_tx));
                stamped_rx.into_iter().for_each(|line| stdout_reader.handle(line, events.as_ref()));
            })
            .context("starting the stdout line thread")?;
        thread::Builder::new()
            .name("tracer-stderr".into())
            .spawn(move || stamp_lines(stderr, clock, |line| stderr_reader.handle(line, None)))
            .context("starting the stderr reader thread")?;
        drop(marker_tx);
        Ok(Tracer { child, spawned, events, marker_rx, markers_seen: vec![None; spec.markers.len()], log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time from spawn until a line holding marker `index` appeared.
    pub fn wait_marker(&mut self, index: usize, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Some(at)) = self.markers_seen.get(index) {
                return Ok(at.duration_since(self.spawned));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.marker_rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok((seen, at)) => {
                    if let Some(slot) = self.markers_seen.get_mut(seen) {
                        slot.get_or_insert(at);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait().context("checking the tracer")? {
                        // Let the reader threads collect the last lines.
                        thread::sleep(Duration::from_millis(200));
                        bail!("it exited ({status}) before it was ready; its output ends with:\n{}", self.log_tail());
                    }
                    if left.is_zero() {
                        bail!("not ready within {timeout:?}; its output ends with:\n{}", self.log_tail());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().context("waiting for the tracer")?;
                    thread::sleep(Duration::from_millis(200));
                    bail!(
                        "it closed its output ({status}) before it was ready; its output ends with:\n{}",
                        self.log_tail()
                    );
                }
            }
        }
    }

    /// The next event, if one arrives within `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Observed> {
        self.next_event_line(timeout).map(|event| event.observed)
    }

    /// The next event with its line, if one arrives within `timeout`.
    pub fn next_event_line(&self, timeout: Duration) -> Option<EventLine> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The non-event lines the tracer printed (the last [`LOG_LINES`]).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|log| log.iter().cloned().collect()).unwrap_or_default()
    }

    /// [`Self::log_lines`] as one text.
    pub fn log_text(&self) -> String {
        self.log_lines().iter().map(|line| format!("{line}\n")).collect()
    }

    fn log_tail(&self) -> String {
        let lines = self.log_lines();
        lines[lines.len().saturating_sub(TAIL_LINES)..].iter().map(|line| format!("    {line}\n")).collect()
    }

    /// Sends SIGINT (both oomtrace and bpftrace detach cleanly on it), then
    /// SIGKILL if the tracer has not exited after 5 s.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.terminate(libc::SIGINT, Duration::from_secs(5))
    }

    /// Sends `signal`, then SIGKILL if the tracer has not exited after `grace`.
    pub fn terminate(&mut self, signal: libc::c_int, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait().context("checking the tracer")? {
            return Ok(status);
        }
        self.signal(signal);
        self.wait(grace)
    }

    /// Sends `signal` to the tracer (SIGSTOP, SIGCONT, ...) while it runs.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; pid is our own child,
        // not reaped before Drop (only `wait` reaps it, and then kill fails with
        // ESRCH or hits our zombie, never another process).
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the tracer to exit on its own (e.g. after --count); SIGKILL
    /// after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("waiting for the tracer to exit")? {
                // Let the reader threads collect the last lines.
                thread::sleep(Duration::from_millis(100));
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().context("killing the tracer")?;
        self.child.wait().context("waiting for the killed tracer")
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The name of the thread that reads (and stamps) a tracer's stdout:
/// `out-` and the program's file name, within the kernel's 15 bytes, so a
/// bench can find it among its own threads.
pub fn stdout_thread_name(program: &Path) -> String {
    let name = program.file_name().map_or_else(|| "tracer".into(), |n| n.to_string_lossy());
    let mut thread = format!("{STDOUT_THREAD_PREFIX}{name}");
    while thread.len() > 15 {
        thread.pop();
    }
    thread
}

/// What every stdout reader thread's name starts with.
pub const STDOUT_THREAD_PREFIX: &str = "out-";

struct LineReader {
    markers: Vec<&'static str>,
    marker_tx: mpsc::Sender<(usize, Instant)>,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// A line as it arrived: stamped before anything else is done with it.
struct Stamped {
    line: String,
    received_ns: u64,
    received: Instant,
}

/// Reads `stream` line by line until its end, stamping each line as it is
/// read and handing it to `each`. The stamping thread does nothing else
/// (an event's line is parsed elsewhere): a long line costs its reader no
/// more than a short one, so tracers with long and short lines are timed
/// alike when the CPUs are contended.
fn stamp_lines(stream: impl Read, clock: Clock, mut each: impl FnMut(Stamped)) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        each(Stamped { line, received_ns: clock.now_ns(), received: Instant::now() });
    }
}

impl LineReader {
    fn handle(&self, stamped: Stamped, events: Option<&(ParseLine, SyncSender<EventLine>)>) {
        let text = stamped.line.trim_end();
        if let Some((parse, tx)) = events
            && let Some((victim_pid, ktime_ns)) = parse(text)
        {
            let observed = Observed { victim_pid, ktime_ns, received_ns: stamped.received_ns };
            // The reader only stops receiving once it is done with the tracer.
            let _ = tx.send(EventLine { observed, line: text.to_owned() });
            return;
        }
        for (index, marker) in self.markers.iter().enumerate() {
            if text.contains(marker) {
                let _ = self.marker_tx.send((index, stamped.received));
            }
        }
        if let Ok(mut log) = self.log.lock() {
            if log.len() == LOG_LINES {
                log.pop_front();
            }
            log.push_back(text.to_owned());
        }
    }
}

//! /dev/kmsg followed on a thread of its own (`oomtrace-kmsg`), which reads
//! the records as the kernel prints them and keeps them for the reader.
//!
//! Reading a record costs a read(2) in which the kernel formats it, and a
//! kill's report is tens of records: read here, on another CPU, not on the
//! event thread. The caller may still read what the thread has not reached
//! itself ([`KmsgFollower::records_now`]: at start, and when stopping), in
//! order: every read happens under one lock.
//!
//! Woken by the first record of a burst, the thread first lets it settle
//! ([`SETTLE`]): a kill's report is printed just before its victim is marked,
//! and a thread reading it then, and waking the event thread to parse it,
//! takes the CPU from the event (measured: the kill's event woke ~40 µs later).

use std::{
    fs::File,
    os::fd::AsRawFd,
    sync::{Arc, Mutex, MutexGuard, Weak},
    thread,
    time::Duration,
};

use oomtrace_klog::source::kmsg::KmsgRecord;
use tokio::sync::Notify;

use super::{KmsgError, KmsgReader, KmsgSummary};

/// How long the thread waits for a record before it checks whether it is
/// still wanted (the follower dropped).
const POLL_TIMEOUT_MS: libc::c_int = 1_000;
/// Woken by a record after a quiet spell, the thread waits this long before it
/// reads: the rest of the report, and the kill's event, go first.
const SETTLE: Duration = Duration::from_millis(2);
/// After reading what was there, the thread pauses this long, so that a
/// report printed record by record is read in a few batches, not one wake-up
/// per record.
const BATCH_PAUSE: Duration = Duration::from_micros(500);
/// Records kept for the reader at most; beyond, the thread stops reading and
/// the records wait in the kernel's buffer (read by the caller, or counted as
/// overwritten there), as without this thread.
const KEPT_MAX: usize = 4_096;
/// The most records the thread reads per hold of the lock.
const READ_BATCH: usize = 32;
/// How long the thread waits after a read error before it reads again.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

/// What the thread and the reader share.
struct Shared {
    state: Mutex<State>,
    /// Told each time the thread kept records (or met an error).
    printed: Notify,
}

struct State {
    reader: KmsgReader,
    kept: Vec<KmsgRecord>,
    error: Option<KmsgError>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How far one read of the records there are got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// Every record there was is read.
    End,
    /// The most records to read at once are read; there may be more.
    Limit,
    /// A read failed (the error is kept for the reader).
    Error,
}

impl State {
    /// Reads the records there are now into `kept`, at most `limit` of them.
    fn read_available(&mut self, limit: usize) -> Reached {
        for _ in 0..limit {
            match self.reader.next_record() {
                Ok(Some(record)) => self.kept.push(record),
                Ok(None) => return Reached::End,
                Err(error) => {
                    self.error = Some(error);
                    return Reached::Error;
                }
            }
        }
        Reached::Limit
    }

    /// What the reader is handed: the records kept, else the error met after
    /// them (said once the records before it are handed over), else nothing.
    fn hand_over(&mut self) -> Option<Result<Vec<KmsgRecord>, KmsgError>> {
        if !self.kept.is_empty() {
            return Some(Ok(std::mem::take(&mut self.kept)));
        }
        self.error.take().map(Err)
    }
}

/// Yields records as the kernel prints them.
pub struct KmsgFollower {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KmsgFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsgFollower").field("summary", &self.summary()).finish()
    }
}

impl KmsgFollower {
    /// Follows from where `reader` stopped, on a thread it starts.
    pub(super) fn start(reader: KmsgReader) -> Result<Self, KmsgError> {
        let path = reader.records.path.clone();
        let open_error = move |cause| KmsgError::Open { path: path.clone(), cause };
        // The thread polls a descriptor of its own (the same open file): the
        // reader's closes with the follower, while the thread may be polling.
        let polled = reader.file.try_clone().map_err(&open_error)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { reader, kept: Vec::new(), error: None }),
            printed: Notify::new(),
        });
        let weak = Arc::downgrade(&shared);
        thread::Builder::new()
            .name("oomtrace-kmsg".to_owned())
            .spawn(move || follow(&polled, &weak))
            .map_err(&open_error)?;
        Ok(Self { shared })
    }

    /// Follows /dev/kmsg from its end: only records printed from now on.
    pub fn from_end() -> Result<Self, KmsgError> {
        KmsgReader::from_end()?.follow()
    }

    /// Every record the kernel printed since the last call, once it has
    /// printed at least one, oldest first.
    pub async fn next_records(&mut self) -> Result<Vec<KmsgRecord>, KmsgError> {
        loop {
            let handed = self.shared.lock().hand_over();
            if let Some(handed) = handed {
                return handed;
            }
            // A notification sent since the check is kept for this wait.
            self.shared.printed.notified().await;
        }
    }

    /// Every record already printed, at once (never waits for the kernel):
    /// those the thread kept, then those it has not read yet.
    pub fn records_now(&mut self) -> Result<Vec<KmsgRecord>, KmsgError> {
        let mut state = self.shared.lock();
        if state.error.is_none() {
            state.read_available(usize::MAX);
        }
        state.hand_over().unwrap_or_else(|| Ok(Vec::new()))
    }

    pub fn summary(&self) -> KmsgSummary {
        self.shared.lock().reader.summary()
    }
}

/// The thread: waits for records on `polled` and keeps them, until the
/// follower is gone. It reads [`READ_BATCH`] records per hold of the lock, so
/// that an event that comes in a wave of reports waits for the lock no longer
/// than that, and needs the lock only to read.
fn follow(polled: &File, shared: &Weak<Shared>) {
    let mut more = false;
    loop {
        if !more {
            if !wait_readable(polled) {
                if shared.strong_count() == 0 {
                    return;
                }
                continue;
            }
            thread::sleep(SETTLE);
        }
        let Some(shared) = shared.upgrade() else { return };
        let mut state = shared.lock();
        if state.kept.len() >= KEPT_MAX {
            drop(state);
            drop(shared);
            more = false;
            thread::sleep(BATCH_PAUSE * 10);
            continue;
        }
        let reached = state.read_available(READ_BATCH);
        let kept = !state.kept.is_empty() || state.error.is_some();
        drop(state);
        if kept {
            shared.printed.notify_one();
        }
        drop(shared);
        more = reached == Reached::Limit;
        match reached {
            Reached::Limit => thread::yield_now(),
            Reached::End => thread::sleep(BATCH_PAUSE),
            // Said by the reader, which is handed the error.
            Reached::Error => thread::sleep(ERROR_PAUSE),
        }
    }
}

/// Whether `file` has a record to read, waiting up to [`POLL_TIMEOUT_MS`].
fn wait_readable(file: &File) -> bool {
    let mut fds = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: `fds` is one valid pollfd that outlives the call, and the count
    // passed is 1; the descriptor stays open while `file` is borrowed.
    let ready = unsafe { libc::poll(&mut fds, 1, POLL_TIMEOUT_MS) };
    if ready < 0 {
        // EINTR, or a failure that the read will name: let it read.
        thread::sleep(BATCH_PAUSE);
        return true;
    }
    ready > 0
}

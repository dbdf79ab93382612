//! /dev/kmsg followed on a thread of its own (`oomtrace-kmsg`), which reads
//! the records as the kernel prints them, digests them ([`Digest`]: the
//! pipeline parses its OOM reports there) and keeps the result for the reader.
//!
//! Reading a record costs a read(2) in which the kernel formats it, a kill's
//! report is tens of records, and parsing them costs as much again: done
//! here, on another CPU, not on the event thread (whose CPU time in a storm
//! of kills is paid for in waiting before its next event). The caller may
//! still read what the thread has not reached itself
//! ([`KmsgFollower::items_now`]: at start, and when stopping), in order:
//! every read happens under one lock, and taking what was read under another
//! (see `Shared`).
//!
//! Woken by the first record of a burst, the thread first lets it settle
//! ([`SETTLE`]): a kill's report is printed just before its victim is marked,
//! and a thread reading it then takes the CPU from the event (measured: the
//! kill's event woke ~40 µs later).

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
/// Items kept for the reader at most; beyond, the thread stops reading and
/// the records wait in the kernel's buffer (read by the caller, or counted as
/// overwritten there), as without this thread.
const KEPT_MAX: usize = 4_096;
/// The most records the thread reads at a time.
const READ_BATCH: usize = 32;
/// How long the thread waits after a read error before it reads again.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

/// What the thread does with each batch of records it reads, there, off the
/// event thread: what it puts in `out` is what the reader is handed.
pub trait Digest: Send + 'static {
    type Item: Send + 'static;

    fn digest(&mut self, records: Vec<KmsgRecord>, out: &mut Vec<Self::Item>);
}

/// The records as they were read.
pub struct AsRead;

impl Digest for AsRead {
    type Item = KmsgRecord;

    fn digest(&mut self, mut records: Vec<KmsgRecord>, out: &mut Vec<KmsgRecord>) {
        out.append(&mut records);
    }
}

/// What the thread and the reader share: two locks, so that taking what was
/// read never waits for a read. The thread holds `reading` while it reads and
/// digests a batch (read(2) calls, in which it may lose its CPU in a storm of
/// kills) and, still holding it, moves the result into `kept`; the event
/// thread takes `kept` alone, held only to move items out. `reading` is taken
/// by the caller only to read what the thread has not
/// ([`KmsgFollower::items_now`], at start and when stopping): everything read
/// before is in `kept` by then, so the order holds.
struct Shared<D: Digest> {
    reading: Mutex<Reading<D>>,
    kept: Mutex<Kept<D::Item>>,
    /// Told each time the thread kept items (or met an error).
    printed: Notify,
}

struct Reading<D> {
    reader: KmsgReader,
    digest: D,
}

/// Read (and digested) and not yet taken.
struct Kept<T> {
    items: Vec<T>,
    error: Option<KmsgError>,
    /// The reader's bookkeeping as of its last read.
    summary: KmsgSummary,
}

/// The lock, also after a panic elsewhere (what it guards stays usable).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

impl<D: Digest> Reading<D> {
    /// Reads up to `limit` records, digests them and moves the result into `kept`.
    fn read_available(&mut self, limit: usize, kept: &Mutex<Kept<D::Item>>) -> Reached {
        let mut records = Vec::new();
        let mut error = None;
        let mut reached = Reached::Limit;
        for _ in 0..limit {
            match self.reader.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {
                    reached = Reached::End;
                    break;
                }
                Err(failure) => {
                    error = Some(failure);
                    reached = Reached::Error;
                    break;
                }
            }
        }
        let mut items = Vec::new();
        if !records.is_empty() {
            self.digest.digest(records, &mut items);
        }
        let summary = self.reader.summary();
        let mut kept = lock(kept);
        kept.items.append(&mut items);
        if error.is_some() {
            kept.error = error;
        }
        kept.summary = summary;
        reached
    }
}

impl<T> Kept<T> {
    /// What the reader is handed: the items kept, else the error met after
    /// them (said once the items before it are handed over), else nothing.
    fn hand_over(&mut self) -> Option<Result<Vec<T>, KmsgError>> {
        if !self.items.is_empty() {
            return Some(Ok(std::mem::take(&mut self.items)));
        }
        self.error.take().map(Err)
    }
}

/// Yields records (or what `D` makes of them) as the kernel prints them.
pub struct KmsgFollower<D: Digest = AsRead> {
    shared: Arc<Shared<D>>,
}

impl<D: Digest> std::fmt::Debug for KmsgFollower<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsgFollower").field("summary", &self.summary()).finish()
    }
}

impl KmsgFollower {
    /// Follows /dev/kmsg from its end: only records printed from now on.
    pub fn from_end() -> Result<Self, KmsgError> {
        KmsgReader::from_end()?.follow(AsRead)
    }
}

impl<D: Digest> KmsgFollower<D> {
    /// Follows from where `reader` stopped, on a thread it starts, which
    /// hands each batch it reads to `digest`.
    pub(super) fn start(reader: KmsgReader, digest: D) -> Result<Self, KmsgError> {
        let path = reader.records.path.clone();
        let open_error = move |cause| KmsgError::Open { path: path.clone(), cause };
        // The thread polls a descriptor of its own (the same open file): the
        // reader's closes with the follower, while the thread may be polling.
        let polled = reader.file.try_clone().map_err(&open_error)?;
        let summary = reader.summary();
        let shared = Arc::new(Shared {
            reading: Mutex::new(Reading { reader, digest }),
            kept: Mutex::new(Kept { items: Vec::new(), error: None, summary }),
            printed: Notify::new(),
        });
        let weak = Arc::downgrade(&shared);
        thread::Builder::new()
            .name("oomtrace-kmsg".to_owned())
            .spawn(move || follow(&polled, &weak))
            .map_err(&open_error)?;
        Ok(Self { shared })
    }

    /// Everything the thread made of the records the kernel printed since
    /// the last call, once there is something, oldest first.
    pub async fn next_items(&mut self) -> Result<Vec<D::Item>, KmsgError> {
        loop {
            let handed = lock(&self.shared.kept).hand_over();
            if let Some(handed) = handed {
                return handed;
            }
            // A notification sent since the check is kept for this wait.
            self.shared.printed.notified().await;
        }
    }

    /// Everything of the records already printed, at once (never waits for
    /// the kernel): what the thread kept, then what it has not read yet.
    pub fn items_now(&mut self) -> Result<Vec<D::Item>, KmsgError> {
        let mut reading = lock(&self.shared.reading);
        if lock(&self.shared.kept).error.is_none() {
            reading.read_available(usize::MAX, &self.shared.kept);
        }
        drop(reading);
        lock(&self.shared.kept).hand_over().unwrap_or_else(|| Ok(Vec::new()))
    }

    pub fn summary(&self) -> KmsgSummary {
        lock(&self.shared.kept).summary
    }
}

/// The thread: waits for records on `polled` and keeps what they digest to,
/// until the follower is gone. It reads [`READ_BATCH`] records at a time, so
/// that a wave of reports reaches the event thread in batches as it is read.
fn follow<D: Digest>(polled: &File, shared: &Weak<Shared<D>>) {
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
        if lock(&shared.kept).items.len() >= KEPT_MAX {
            drop(shared);
            more = false;
            thread::sleep(BATCH_PAUSE * 10);
            continue;
        }
        let reached = lock(&shared.reading).read_available(READ_BATCH, &shared.kept);
        let kept = {
            let kept = lock(&shared.kept);
            !kept.items.is_empty() || kept.error.is_some()
        };
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

//! Reads the kernel's ring buffer from /dev/kmsg: the whole buffer (history), the records after
//! a saved sequence number (the daemon's restart), and new records as they come (live).
//!
//! Each `read(2)` returns one record; a read on the non-blocking fd returns EAGAIN when there
//! is no more, and EPIPE when the record it was to return next has been overwritten meanwhile
//! (the following read returns the oldest record still there). Sequence numbers count every
//! record since boot from 0, so gaps say exactly how many were lost.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oomtrace_klog::source::kmsg::{FragmentJoiner, KmsgRecord, parse_record};

pub use self::follow::{AsRead, Digest, KmsgFollower};
use tracing::{debug, warn};

pub const KMSG_PATH: &str = "/dev/kmsg";
const DMESG_RESTRICT_PATH: &str = "/proc/sys/kernel/dmesg_restrict";
/// A record is at most 8 KiB of text (PRINTKRB_RECORD_MAX, with its header and escapes
/// CONSOLE_EXT_LOG_MAX = 8192); a shorter buffer makes read(2) fail with EINVAL.
const RECORD_BUFFER_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KmsgError {
    #[error(
        "reading {path} needs CAP_SYSLOG when kernel.dmesg_restrict=1 (it is {dmesg_restrict} here): run as root, \
         add CAP_SYSLOG, or use --journal / --file"
    )]
    PermissionDenied { path: PathBuf, dmesg_restrict: String },
    #[error("{path} does not exist here (a container without /dev/kmsg?): mount it, or use --journal / --file")]
    NotFound { path: PathBuf },
    #[error("could not open {path}: {cause}")]
    Open { path: PathBuf, cause: io::Error },
    #[error("could not read {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
}

/// What a read of the ring buffer saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmsgSummary {
    /// Sequence number of the first and last record returned.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Records gone before the first one read: rotated out of the ring buffer before this boot's
    /// log was read (sequence numbers start at 0), or since the saved position
    /// ([`KmsgReader::after_seq`]). Not counted when following from the end.
    pub rotated_out: u64,
    /// Records overwritten while this reader was reading (EPIPE; counted from the gap).
    pub overwritten: u64,
    /// Records returned, and their lines (a record may hold several).
    pub records: u64,
    pub lines: u64,
    /// Records at or before the saved position, skipped.
    pub already_seen: u64,
    /// Records that did not parse (skipped; never seen from a real kernel).
    pub malformed: u64,
}

/// The sequence bookkeeping shared by the bulk reader and the follower.
#[derive(Debug)]
struct Records {
    path: PathBuf,
    buffer: Vec<u8>,
    after_seq: Option<u64>,
    /// The sequence number the next record should have; None before the first one.
    expected_seq: Option<u64>,
    /// Started at the end of the buffer: nothing before the first record is missing.
    from_end: bool,
    summary: KmsgSummary,
    /// Joins the fragments of a line (kernels before 5.10); complete records wait in `ready`.
    joiner: FragmentJoiner,
    ready: VecDeque<KmsgRecord>,
}

enum ReadOutcome {
    Record(KmsgRecord),
    /// Nothing to return right now (EAGAIN), or a record skipped: read again.
    Skipped,
    Drained,
}

impl Records {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            buffer: vec![0; RECORD_BUFFER_BYTES],
            after_seq: None,
            expected_seq: None,
            from_end: false,
            summary: KmsgSummary::default(),
            joiner: FragmentJoiner::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next complete record (fragments joined): a record, Skipped to try again at once, or
    /// Drained when the buffer has no more for now.
    fn next_complete(&mut self, file: &File) -> Result<ReadOutcome, KmsgError> {
        if let Some(record) = self.ready.pop_front() {
            return Ok(ReadOutcome::Record(record));
        }
        Ok(match self.read_one(file)? {
            ReadOutcome::Record(record) => {
                self.ready.extend(self.joiner.push(record));
                ReadOutcome::Skipped
            }
            ReadOutcome::Skipped => ReadOutcome::Skipped,
            // An open line's last fragment would have come with it: hand the line out as it is.
            ReadOutcome::Drained => self.joiner.flush().map_or(ReadOutcome::Drained, ReadOutcome::Record),
        })
    }

    /// One read(2).
    fn read_one(&mut self, mut file: &File) -> Result<ReadOutcome, KmsgError> {
        let length = match file.read(&mut self.buffer) {
            Ok(length) => length,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(ReadOutcome::Skipped),
            // Overwritten under us: the next read returns the oldest record, and the gap in
            // sequence numbers counts what was lost.
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => return Ok(ReadOutcome::Skipped),
            Err(source) => return Err(KmsgError::Read { path: self.path.clone(), cause: source }),
        };
        if length == 0 {
            return Ok(ReadOutcome::Drained);
        }
        let record = match parse_record(&self.buffer[..length]) {
            Ok(record) => record,
            Err(error) => {
                self.summary.malformed += 1;
                if self.summary.malformed == 1 {
                    warn!(path = %self.path.display(), %error, "skipping a kmsg record that does not parse");
                }
                return Ok(ReadOutcome::Skipped);
            }
        };
        Ok(self.account(record))
    }

    /// Counts the gap before `record` and whether it was seen before.
    fn account(&mut self, record: KmsgRecord) -> ReadOutcome {
        let lost_since =
            self.expected_seq.or(if self.from_end { None } else { Some(self.after_seq.map_or(0, |seq| seq + 1)) });
        if let Some(expected) = lost_since
            && record.seq > expected
        {
            let lost = record.seq - expected;
            if self.expected_seq.is_some() {
                self.summary.overwritten += lost;
                debug!(lost, seq = record.seq, "kmsg records were overwritten while reading");
            } else {
                self.summary.rotated_out += lost;
            }
        }
        self.expected_seq = Some(record.seq + 1);
        if self.after_seq.is_some_and(|after| record.seq <= after) {
            self.summary.already_seen += 1;
            return ReadOutcome::Skipped;
        }
        let summary = &mut self.summary;
        summary.first_seq.get_or_insert(record.seq);
        summary.last_seq = Some(record.seq);
        summary.records += 1;
        summary.lines += record.lines.len() as u64;
        ReadOutcome::Record(record)
    }
}

/// Reads the records in the ring buffer now, oldest first.
#[derive(Debug)]
pub struct KmsgReader {
    file: File,
    records: Records,
}

impl KmsgReader {
    /// Opens /dev/kmsg at the oldest record still in the buffer.
    pub fn open() -> Result<Self, KmsgError> {
        Self::open_path(Path::new(KMSG_PATH))
    }

    pub fn open_path(path: &Path) -> Result<Self, KmsgError> {
        Ok(Self { file: open_kmsg(path)?, records: Records::new(path.to_owned()) })
    }

    /// Returns only records after `seq` (the daemon's saved position); the records of this
    /// boot between it and the oldest one still buffered count as rotated out.
    pub fn after_seq(mut self, seq: u64) -> Self {
        self.records.after_seq = Some(seq);
        self
    }

    /// The next record, or None once the buffer is drained.
    pub fn next_record(&mut self) -> Result<Option<KmsgRecord>, KmsgError> {
        loop {
            match self.records.next_complete(&self.file)? {
                ReadOutcome::Record(record) => return Ok(Some(record)),
                ReadOutcome::Skipped => continue,
                ReadOutcome::Drained => return Ok(None),
            }
        }
    }

    pub fn summary(&self) -> KmsgSummary {
        self.records.summary
    }

    /// Opens /dev/kmsg at its end: only records printed from now on.
    pub fn from_end() -> Result<Self, KmsgError> {
        let mut reader = Self::open()?;
        reader
            .file
            .seek(SeekFrom::End(0))
            .map_err(|source| KmsgError::Open { path: reader.records.path.clone(), cause: source })?;
        reader.records.from_end = true;
        Ok(reader)
    }

    /// Goes on reading new records as they are printed, from where this reader stopped (call
    /// it once [`Self::next_record`] returned None, or the records before are read then), on a
    /// thread of its own ([`follow`]), which hands each batch it reads to `digest` there.
    pub fn follow<D: Digest>(self, digest: D) -> Result<KmsgFollower<D>, KmsgError> {
        KmsgFollower::start(self, digest)
    }
}

impl Iterator for KmsgReader {
    type Item = Result<KmsgRecord, KmsgError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

fn open_kmsg(path: &Path) -> Result<File, KmsgError> {
    // std opens with O_CLOEXEC; O_NONBLOCK makes the end of the buffer EAGAIN instead of a wait.
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|source| match source.kind() {
        io::ErrorKind::PermissionDenied => KmsgError::PermissionDenied {
            path: path.to_owned(),
            dmesg_restrict: std::fs::read_to_string(DMESG_RESTRICT_PATH)
                .map(|value| value.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
        },
        io::ErrorKind::NotFound => KmsgError::NotFound { path: path.to_owned() },
        _ => KmsgError::Open { path: path.to_owned(), cause: source },
    })
}

mod follow;
#[cfg(test)]
pub(crate) mod tests;

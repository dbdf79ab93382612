//! A saved kernel log read line by line (`--file PATH`, or `-` for stdin): streamed, so a
//! 100 MB syslog never sits in memory, and decoded as lossy UTF-8.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use oomtrace_klog::source::file::{FileContext, FileCounts, FileEvent, FileParser};

/// A line longer than this is cut there (the rest of it is dropped): no kernel message comes
/// near it, and a file without newlines must not be read into memory whole.
const LINE_LIMIT_BYTES: usize = 1024 * 1024;
/// How much of a file is read at once (a line is found in memory, not per read(2)).
const READ_BUFFER_BYTES: usize = 64 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("could not open {path}: {cause}")]
    Open { path: PathBuf, cause: io::Error },
    #[error("could not read {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
    #[error("{path} is gzip-compressed: decompress it first, e.g. `zcat {path} | oomtrace history --file -`")]
    Compressed { path: PathBuf },
}

/// Where the lines come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileInput {
    Path(PathBuf),
    Stdin,
}

impl FileInput {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg == Path::new("-") { Self::Stdin } else { Self::Path(arg.to_owned()) }
    }

    fn name(&self) -> PathBuf {
        match self {
            Self::Path(path) => path.clone(),
            Self::Stdin => PathBuf::from("stdin"),
        }
    }
}

/// Yields a file's lines as [`FileEvent`]s.
pub struct FileSource {
    name: PathBuf,
    reader: Box<dyn BufRead + Send>,
    parser: FileParser,
    line: Vec<u8>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("name", &self.name).field("counts", &self.parser.counts()).finish()
    }
}

impl FileSource {
    /// Opens the input with the context its year-less and zone-less stamps need: the day it was
    /// last written (a file's mtime; today for stdin) in the system's time zone.
    pub fn open(input: &FileInput) -> Result<Self, FileError> {
        let name = input.name();
        let zone = TimeZone::system();
        let (reader, written_at): (Box<dyn BufRead + Send>, SystemTime) = match input {
            FileInput::Stdin => (Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, io::stdin())), SystemTime::now()),
            FileInput::Path(path) => {
                let open_error = |source| FileError::Open { path: path.clone(), cause: source };
                let file = File::open(path).map_err(open_error)?;
                let written_at = file.metadata().and_then(|meta| meta.modified()).map_err(open_error)?;
                (Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file)), written_at)
            }
        };
        Self::from_reader(name, reader, context(written_at, zone))
    }

    /// Reads `reader` with a given context (tests, or a caller that knows better).
    pub fn from_reader(
        name: PathBuf,
        mut reader: Box<dyn BufRead + Send>,
        context: FileContext,
    ) -> Result<Self, FileError> {
        let start = reader.fill_buf().map_err(|source| FileError::Read { path: name.clone(), cause: source })?;
        if start.starts_with(&GZIP_MAGIC) {
            return Err(FileError::Compressed { path: name });
        }
        Ok(Self { name, reader, parser: FileParser::new(context), line: Vec::new() })
    }

    /// The next line's meaning, or None at the end of the input.
    pub fn next_event(&mut self) -> Result<Option<FileEvent>, FileError> {
        let read = read_bounded_line(&mut self.reader, &mut self.line)
            .map_err(|source| FileError::Read { path: self.name.clone(), cause: source })?;
        if read.is_none() {
            return Ok(None);
        }
        // Valid UTF-8 is checked for at its fast path first; a line that is not has its invalid
        // bytes replaced.
        let event = match std::str::from_utf8(&self.line) {
            Ok(line) => self.parser.parse_line(line),
            Err(_) => self.parser.parse_line(&String::from_utf8_lossy(&self.line)),
        };
        Ok(Some(event))
    }

    pub fn counts(&self) -> FileCounts {
        self.parser.counts()
    }

    /// The first lines of no known format.
    pub fn unrecognised_examples(&self) -> &[String] {
        self.parser.unrecognised_examples()
    }
}

impl Iterator for FileSource {
    type Item = Result<FileEvent, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// The context of a file written at `written_at`, read in `zone`.
fn context(written_at: SystemTime, zone: TimeZone) -> FileContext {
    let written_on =
        Timestamp::try_from(written_at).map(|at| at.to_zoned_datetime(zone.clone()).date()).unwrap_or_else(|_| {
            // A modification time jiff cannot represent (before year -9999): take every year.
            jiff::civil::Date::MAX
        });
    FileContext { written_on, time_zone: zone }
}

/// Reads one line (without its `\n`) into `line`, at most [`LINE_LIMIT_BYTES`] of it, the
/// rest of a longer line skipped. None at the end of the input.
pub(super) fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<()>> {
    line.clear();
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(any.then_some(()));
        }
        any = true;
        let (chunk, ends_line) = match memchr::memchr(b'\n', available) {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        let room = LINE_LIMIT_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = chunk.len() + usize::from(ends_line);
        reader.consume(consumed);
        if ends_line {
            return Ok(Some(()));
        }
    }
}

#[cfg(test)]
mod tests;

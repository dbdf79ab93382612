//! Any of the three sources as one stream of kernel lines, each marked with the boot it belongs
//! to, so a report parser never joins lines of two boots and `history` reads them all alike.

use std::sync::Arc;
use std::time::Duration;

use oomtrace_klog::LogLine;
use oomtrace_klog::source::file::{FileCounts, FileEvent};
use oomtrace_klog::source::kmsg::FragmentJoiner;

use super::file::{FileError, FileSource};
use super::journal::{JournalError, JournalReader, JournalSummary};
use super::kmsg::{KmsgError, KmsgReader, KmsgSummary};

/// A kernel message and its boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLine {
    pub line: LogLine,
    /// Counts the boots this source has gone through, from 0: a file or journal spanning
    /// reboots has lines of several, each with its own since-boot clock.
    pub boot: u32,
    /// The boot's id when the source names it (kmsg: this boot; journal: `_BOOT_ID`; a file:
    /// journalctl's `-- Boot <id> --` marker).
    pub boot_id: Option<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Kmsg(#[from] KmsgError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    File(#[from] FileError),
}

/// What the source saw, for the end-of-history line (e.g. "K rotated out of the ring buffer").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceSummary {
    Kmsg(KmsgSummary),
    Journal(JournalSummary),
    File(FileCounts),
}

enum Reader {
    Kmsg(KmsgReader),
    Journal(JournalReader),
    File(FileSource),
}

/// Kernel lines from /dev/kmsg, the journal or a file.
pub struct KernelLogSource {
    reader: Reader,
    boot: u32,
    boot_id: Option<Arc<str>>,
    /// The last since-boot stamp, to notice a file of several boots without markers.
    last_since_boot: Option<Duration>,
    /// Lines of a multi-line record not handed out yet, marked with their boot.
    pending: std::vec::IntoIter<KernelLine>,
    /// A saved /dev/kmsg file's `pr_cont` fragments (kernels before 5.10), joined as /dev/kmsg's
    /// reader joins them.
    joiner: FragmentJoiner,
}

impl KernelLogSource {
    /// /dev/kmsg's records of the kernel (facility 0): those user space wrote there are no
    /// kernel messages and could pass for them. `boot_id` is this boot's.
    pub fn kmsg(reader: KmsgReader, boot_id: Option<String>) -> Self {
        Self::new(Reader::Kmsg(reader), boot_id)
    }

    /// The journal's kernel messages (without the records user space wrote to /dev/kmsg).
    pub fn journal(reader: JournalReader) -> Self {
        Self::new(Reader::Journal(reader), None)
    }

    pub fn file(source: FileSource) -> Self {
        Self::new(Reader::File(source), None)
    }

    fn new(reader: Reader, boot_id: Option<String>) -> Self {
        Self {
            reader,
            boot: 0,
            boot_id: boot_id.map(Arc::from),
            last_since_boot: None,
            pending: Vec::new().into_iter(),
            joiner: FragmentJoiner::default(),
        }
    }

    /// The next kernel line, or None at the end of the source.
    pub fn next_line(&mut self) -> Result<Option<KernelLine>, SourceError> {
        loop {
            if let Some(line) = self.pending.next() {
                return Ok(Some(line));
            }
            let lines = match &mut self.reader {
                Reader::Kmsg(reader) => match reader.next_record()? {
                    Some(record) if record.is_kernel() => record.lines,
                    Some(_) => continue,
                    None => return Ok(None),
                },
                Reader::Journal(reader) => match reader.next_entry()? {
                    // A record a process wrote to /dev/kmsg is filed as kernel transport too.
                    Some(entry) if !entry.is_kernel() => continue,
                    Some(entry) => {
                        let boot_id = entry.boot_id.as_deref();
                        if boot_id.is_some() && boot_id != self.boot_id.as_deref() {
                            self.start_boot(boot_id.map(Arc::from));
                        }
                        entry.lines
                    }
                    None => return Ok(None),
                },
                Reader::File(source) => {
                    let event = source.next_event()?;
                    // A record's fragments may be apart by its dictionary lines, not by a message.
                    let mut lines: Vec<LogLine> = match &event {
                        Some(FileEvent::Kmsg(_) | FileEvent::Marker | FileEvent::Skipped(_)) => Vec::new(),
                        _ => self.joiner.flush().map(|record| record.lines).unwrap_or_default(),
                    };
                    match event {
                        Some(FileEvent::Line(line)) => lines.push(line),
                        Some(FileEvent::Kmsg(record)) => {
                            lines.extend(self.joiner.push(record).into_iter().flat_map(|record| record.lines));
                        }
                        Some(FileEvent::Journal(entry)) => {
                            // As from journalctl itself: `_BOOT_ID` names the boot.
                            let mut marked: Vec<KernelLine> = lines.into_iter().map(|line| self.mark(line)).collect();
                            let boot_id = entry.boot_id.as_deref();
                            if boot_id.is_some() && boot_id != self.boot_id.as_deref() {
                                self.start_boot(boot_id.map(Arc::from));
                            }
                            marked.extend(entry.lines.into_iter().map(|line| self.mark(line)));
                            self.pending = marked.into_iter();
                            continue;
                        }
                        Some(FileEvent::Boot { boot_id }) => {
                            // The open fragment was the old boot's.
                            let marked: Vec<KernelLine> = lines.into_iter().map(|line| self.mark(line)).collect();
                            self.start_boot(boot_id.map(Arc::from));
                            self.pending = marked.into_iter();
                            continue;
                        }
                        Some(FileEvent::Marker | FileEvent::Skipped(_)) => {}
                        None if lines.is_empty() => return Ok(None),
                        None => {}
                    }
                    lines
                }
            };
            let marked: Vec<KernelLine> = lines.into_iter().map(|line| self.mark(line)).collect();
            self.pending = marked.into_iter();
        }
    }

    /// A saved file's first lines of no known format (none for the other sources).
    pub fn unrecognised_examples(&self) -> &[String] {
        match &self.reader {
            Reader::File(source) => source.unrecognised_examples(),
            Reader::Kmsg(_) | Reader::Journal(_) => &[],
        }
    }

    pub fn summary(&self) -> SourceSummary {
        match &self.reader {
            Reader::Kmsg(reader) => SourceSummary::Kmsg(reader.summary()),
            Reader::Journal(reader) => SourceSummary::Journal(reader.summary()),
            Reader::File(source) => SourceSummary::File(source.counts()),
        }
    }

    /// Marks `line` with its boot. In a file without boot markers (dmesg output of several
    /// boots pasted together) a since-boot stamp going back marks the next boot.
    fn mark(&mut self, line: LogLine) -> KernelLine {
        if let Reader::File(_) = self.reader
            && let (Some(last), Some(now)) = (self.last_since_boot, line.since_boot)
            && now < last
        {
            self.start_boot(None);
        }
        if line.since_boot.is_some() {
            self.last_since_boot = line.since_boot;
        }
        KernelLine { line, boot: self.boot, boot_id: self.boot_id.clone() }
    }

    fn start_boot(&mut self, boot_id: Option<Arc<str>>) {
        // The first boot marker names the boot the source starts in, it does not start another.
        let nothing_read = self.last_since_boot.is_none() && self.boot_id.is_none() && self.boot == 0;
        if !nothing_read {
            self.boot += 1;
        }
        self.boot_id = boot_id;
        self.last_since_boot = None;
    }
}

impl Iterator for KernelLogSource {
    type Item = Result<KernelLine, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;

    use jiff::civil::date;
    use jiff::tz::TimeZone;
    use oomtrace_klog::source::file::FileContext;

    use super::*;

    fn file_source(text: &'static str) -> KernelLogSource {
        let context = FileContext { written_on: date(2026, 11, 29), time_zone: TimeZone::UTC };
        let reader = Box::new(Cursor::new(text.as_bytes()));
        KernelLogSource::file(FileSource::from_reader(PathBuf::from("test"), reader, context).unwrap())
    }

    fn boots(source: KernelLogSource) -> Vec<(String, u32, Option<String>)> {
        source
            .map(|line| line.unwrap())
            .map(|line| (line.line.message, line.boot, line.boot_id.map(|id| id.to_string())))
            .collect()
    }

    #[test]
    fn journal_markers_in_a_file_name_the_boots() {
        let source = file_source(
            "-- Boot aaaa --\n[ 10.000000] first boot\n-- No entries --\nsshd line\n\
             -- Boot bbbb --\n[ 5.000000] second boot\n",
        );
        let seen = boots(source);
        assert_eq!(
            seen,
            [
                ("first boot".to_owned(), 0, Some("aaaa".to_owned())),
                ("sshd line".to_owned(), 0, Some("aaaa".to_owned())),
                ("second boot".to_owned(), 1, Some("bbbb".to_owned())),
            ]
        );
    }

    #[test]
    fn a_stamp_going_back_starts_a_new_boot_in_a_file() {
        let seen = boots(file_source("[ 100.000000] a\n[ 100.000000] b\nno stamp\n[ 2.000000] c\n[ 3.000000] d\n"));
        let boot_of: Vec<u32> = seen.iter().map(|(_, boot, _)| *boot).collect();
        assert_eq!(boot_of, [0, 0, 0, 1, 1]);
    }

    /// `cat /dev/kmsg > f` of a 4.x kernel: the `Task in` line in fragments (apart by a
    /// dictionary line), a user-space record left out, a record split at its escaped newline.
    #[test]
    fn a_saved_kmsg_file_gives_joined_kernel_lines() {
        let source = file_source(
            "6,100,10,c;Task in \n SUBSYSTEM=memory\n6,101,11,+;/a killed as a result of limit of /a\n\
             30,102,12,-;systemd[1]: Started foo.service\n6,103,13,-;anon 1\\x0afile 2\n6,104,14,c;open at the end\n",
        );
        let seen: Vec<String> = boots(source).into_iter().map(|(message, _, _)| message).collect();
        assert_eq!(seen, ["Task in /a killed as a result of limit of /a", "anon 1", "file 2", "open at the end"]);
    }

    /// `journalctl -k -o json > f` of two boots: each entry's `_BOOT_ID` names its boot; an entry
    /// a process wrote to /dev/kmsg is left out.
    #[test]
    fn a_saved_journal_json_file_gives_kernel_lines_by_boot() {
        let source = file_source(concat!(
            r#"{"_BOOT_ID":"aaaa","_TRANSPORT":"kernel","SYSLOG_FACILITY":"0","__MONOTONIC_TIMESTAMP":"10000000","MESSAGE":"first boot"}"#,
            "\n",
            r#"{"_BOOT_ID":"aaaa","_TRANSPORT":"kernel","SYSLOG_FACILITY":"1","MESSAGE":"from user space"}"#,
            "\n",
            r#"{"_BOOT_ID":"bbbb","_TRANSPORT":"kernel","__MONOTONIC_TIMESTAMP":"5000000","MESSAGE":"anon 1\nfile 2"}"#,
            "\n",
        ));
        assert_eq!(
            boots(source),
            [
                ("first boot".to_owned(), 0, Some("aaaa".to_owned())),
                ("anon 1".to_owned(), 1, Some("bbbb".to_owned())),
                ("file 2".to_owned(), 1, Some("bbbb".to_owned())),
            ]
        );
    }

    /// Root only: this machine's ring buffer through the source gives its OOM kill lines, all
    /// of this boot, and none of the records a process wrote to /dev/kmsg.
    #[test]
    fn kmsg_gives_kernel_lines_only() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return eprintln!("skipped: reading /dev/kmsg needs root (CAP_SYSLOG) here");
        }
        let victim = super::super::kmsg::tests::oom_kill_for_the_log("source");
        let marker = format!("oomtrace klog source test {} Killed process 1 (fake)", std::process::id());
        std::fs::write(super::super::kmsg::KMSG_PATH, format!("<3>{marker}\n")).unwrap();
        let boot_id = super::super::boot::boot_id().unwrap();
        let source = KernelLogSource::kmsg(KmsgReader::open().unwrap(), Some(boot_id.clone()));
        let lines: Vec<KernelLine> = source.map(|line| line.unwrap()).collect();
        let ours = format!("out of memory: Killed process {victim} ");
        assert!(lines.iter().any(|l| l.line.message.contains(&ours)), "the kill of pid {victim} is in the log");
        assert!(lines.iter().all(|l| l.boot == 0 && l.boot_id.as_deref() == Some(boot_id.as_str())));
        assert!(!lines.iter().any(|l| l.line.message == marker), "a user-space record passed for the kernel's");
        let raw = KmsgReader::open().unwrap().map(|record| record.unwrap());
        assert!(raw.flat_map(|record| record.lines).any(|line| line.message == marker), "the marker was written");
    }
}

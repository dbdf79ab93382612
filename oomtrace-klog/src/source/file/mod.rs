//! One line of a saved kernel log, its format recognised per line (rotated and concatenated
//! files mix formats):
//!
//! | format | example |
//! | --- | --- |
//! | syslog, kern.log, messages; `journalctl -k` (`short`, `short-precise`) | `Nov 29 11:14:00[.123456] host kernel: [ 123.456789] msg` (the bracketed stamp optional) |
//! | rsyslog RFC 3339; `journalctl -k -o short-iso[-precise]` | `2026-11-29T11:14:00.123456+00:00 host kernel: msg` |
//! | `journalctl -k -o short-unix` | `1764414840.123456 host kernel: msg` |
//! | `journalctl -k -o short-monotonic` | `[  123.456789] host kernel: msg` |
//! | `dmesg`, with `CONFIG_PRINTK_CALLER` | `[  123.456789] msg`, `[  123.456789] [ T1234] msg`, `[  123.456789][ T1234] msg` |
//! | `dmesg -T`, `dmesg --time-format iso` | `[Sun Nov 29 11:14:00 2026] msg`, `2026-11-29T11:14:00,123456+00:00 msg` |
//! | `dmesg -x` (before any of the dmesg forms) | `kern  :err   : [  12.300000] msg` |
//! | journalctl's markers | `-- Boot 3f1c… --`, `-- Reboot --`, `-- No entries --`, `-- Logs begin at … --` |
//! | `grep` output over files | `/var/log/syslog.1:Nov 29 11:14:00 host kernel: msg` (also `-n`'s line number) |
//! | saved `/dev/kmsg` records (`cat /dev/kmsg > f`) | `6,110844,20291692735,-,caller=T13567;msg`, then ` KEY=value` dictionary lines |
//! | `journalctl -o json` (`-k` or not) | `{"__REALTIME_TIMESTAMP":"…","_BOOT_ID":"…","_TRANSPORT":"kernel","MESSAGE":"msg",…}` |
//! | bare messages | `Memory cgroup out of memory: Killed process 42 (hog) …` |
//!
//! Only kernel lines become [`LogLine`]s: syslog lines of other programs (`sshd[12]: …`) and
//! `dmesg -x` lines of facilities other than `kern` are skipped, as are lines with a time stamp
//! of no known form.

mod stamp;
#[cfg(test)]
mod tests;

use std::{
    cell::Cell,
    time::{Duration, SystemTime},
};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::line::{Caller, LogLine};

use super::journal::{self, JournalEntry};
use super::kmsg::{self, KmsgRecord};
use super::parse_caller;

/// What the parser needs to know about a file that its lines do not say.
#[derive(Clone, Debug)]
pub struct FileContext {
    /// The day (local time) the file was last written, normally its mtime. Syslog time stamps
    /// have no year: each gets the latest year that does not put it after this day (one day
    /// of slack for time zones), so a file running from December into January gets both years
    /// right without reading it twice.
    pub written_on: Date,
    /// The zone of time stamps that carry no offset (syslog, `short`, `dmesg -T`): the zone of
    /// the machine that wrote the log, normally the local one.
    pub time_zone: TimeZone,
}

impl FileContext {
    /// Every year-less time stamp in `year` or before, read in UTC.
    pub fn for_year(year: i16) -> Self {
        let written_on = Date::new(year, 12, 31).unwrap_or(Date::MAX);
        Self { written_on, time_zone: TimeZone::UTC }
    }
}

/// What one line of a file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileEvent {
    /// A kernel message.
    Line(LogLine),
    /// journalctl's `-- Boot <id> --` (or the older `-- Reboot --`): the lines after it belong
    /// to another boot (since_boot starts again).
    Boot {
        boot_id: Option<String>,
    },
    /// Another journalctl marker (`-- No entries --`, `-- Logs begin at … --`, `-- cursor: …`).
    Marker,
    /// A saved `/dev/kmsg` record of the kernel's (facility 0): its message unescaped and split
    /// at its newlines. Kernels before 5.10 printed a `pr_cont` line in fragments (`c`, then `+`
    /// records): join them with [`kmsg::FragmentJoiner`], as for /dev/kmsg itself.
    Kmsg(KmsgRecord),
    /// A `journalctl -o json` entry of the kernel's (`_TRANSPORT=kernel`, facility 0): its
    /// `_BOOT_ID` says which boot its lines belong to.
    Journal(JournalEntry),
    Skipped(SkipReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    Blank,
    /// Another program's syslog line, or a `dmesg -x` line of a facility other than `kern`.
    NotKernel,
    /// A line with a time stamp or prefix of no known form, or a saved kmsg record whose header
    /// does not parse.
    Unrecognised,
    /// A ` KEY=value` line after a saved kmsg record (its dictionary: `SUBSYSTEM=`, `DEVICE=`).
    KmsgDictionary,
}

/// How many lines of each kind a [`FileParser`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Kernel messages (with a recognised prefix or bare).
    pub kernel_lines: u64,
    /// Of those, lines without any time: bare messages (no prefix), or a syslog day that fits
    /// no year near the file's.
    pub bare_lines: u64,
    pub boots: u64,
    pub markers: u64,
    pub blank: u64,
    pub not_kernel: u64,
    pub unrecognised: u64,
    /// Saved `/dev/kmsg` records of the kernel (each also counted in `kernel_lines`).
    pub kmsg_records: u64,
    /// Their ` KEY=value` dictionary lines.
    pub kmsg_dictionary: u64,
    /// `journalctl -o json` entries of the kernel (each also counted in `kernel_lines`).
    pub journal_entries: u64,
}

/// A year-less stamp and the time it was read as.
#[derive(Clone, Copy, Debug)]
struct YearLess {
    month: i8,
    day: i8,
    time: Time,
    wall: Option<SystemTime>,
}

/// Parses a file's lines one at a time (streaming: it keeps nothing but counts).
#[derive(Clone, Debug)]
pub struct FileParser {
    context: FileContext,
    counts: FileCounts,
    /// The last line was a saved kmsg record or its dictionary: a line starting with a space
    /// and holding `KEY=value` continues it.
    in_kmsg_record: bool,
    /// The first [`UNRECOGNISED_EXAMPLES`] lines of no known format, for a diagnostic.
    unrecognised_examples: Vec<String>,
    /// The last year-less stamp's month, day and time and the time it gave: a log's lines
    /// come many to a second, and the time zone's rules are looked up once per stamp.
    last_year_less: Cell<Option<YearLess>>,
}

/// How many lines of no known format [`FileParser::unrecognised_examples`] keeps (the rest are
/// only counted).
pub const UNRECOGNISED_EXAMPLES: usize = 8;

/// A recognised prefix's verdict.
enum Prefixed {
    Kernel(LogLine),
    NotKernel,
}

impl FileParser {
    pub fn new(context: FileContext) -> Self {
        Self {
            context,
            counts: FileCounts::default(),
            in_kmsg_record: false,
            unrecognised_examples: Vec::new(),
            last_year_less: Cell::new(None),
        }
    }

    pub fn counts(&self) -> FileCounts {
        self.counts
    }

    /// The first lines of no known format (at most [`UNRECOGNISED_EXAMPLES`], each cut to 300
    /// characters): what `oomtrace history -v` shows of them.
    pub fn unrecognised_examples(&self) -> &[String] {
        &self.unrecognised_examples
    }

    /// One line, with or without its line ending.
    pub fn parse_line(&mut self, line: &str) -> FileEvent {
        let line = line.trim_end_matches(['\n', '\r']);
        let event = self.classify(line);
        if event == FileEvent::Skipped(SkipReason::Unrecognised)
            && self.unrecognised_examples.len() < UNRECOGNISED_EXAMPLES
        {
            self.unrecognised_examples.push(line.chars().take(300).collect());
        }
        let counts = &mut self.counts;
        match &event {
            FileEvent::Line(line) => {
                counts.kernel_lines += 1;
                if line.since_boot.is_none() && line.wall.is_none() {
                    counts.bare_lines += 1;
                }
            }
            FileEvent::Kmsg(_) => {
                counts.kernel_lines += 1;
                counts.kmsg_records += 1;
            }
            FileEvent::Journal(_) => {
                counts.kernel_lines += 1;
                counts.journal_entries += 1;
            }
            FileEvent::Boot { .. } => counts.boots += 1,
            FileEvent::Marker => counts.markers += 1,
            FileEvent::Skipped(SkipReason::Blank) => counts.blank += 1,
            FileEvent::Skipped(SkipReason::NotKernel) => counts.not_kernel += 1,
            FileEvent::Skipped(SkipReason::Unrecognised) => counts.unrecognised += 1,
            FileEvent::Skipped(SkipReason::KmsgDictionary) => counts.kmsg_dictionary += 1,
        }
        event
    }

    fn classify(&mut self, line: &str) -> FileEvent {
        let after_record = std::mem::take(&mut self.in_kmsg_record);
        if after_record && is_kmsg_dictionary(line) {
            self.in_kmsg_record = true;
            return FileEvent::Skipped(SkipReason::KmsgDictionary);
        }
        if line.trim().is_empty() {
            return FileEvent::Skipped(SkipReason::Blank);
        }
        if line.starts_with("{\"") {
            // A JSON object that is no journal entry is of no known format, not a message.
            return match journal::parse_entry(line.as_bytes()) {
                Ok(entry) if entry.is_kernel() => FileEvent::Journal(entry),
                Ok(_) => FileEvent::Skipped(SkipReason::NotKernel),
                Err(_) => FileEvent::Skipped(SkipReason::Unrecognised),
            };
        }
        if looks_like_kmsg_record(line) {
            let Ok(record) = kmsg::parse_record(line.as_bytes()) else {
                return FileEvent::Skipped(SkipReason::Unrecognised);
            };
            self.in_kmsg_record = true;
            // Facility 0 is the kernel; user space (systemd and others) writes to /dev/kmsg too.
            return if record.is_kernel() {
                FileEvent::Kmsg(record)
            } else {
                FileEvent::Skipped(SkipReason::NotKernel)
            };
        }
        if let Some(marker) = journal_marker(line) {
            return marker;
        }
        if let Some(prefixed) = self.prefixed(line).or_else(|| self.grep_prefixed(line)) {
            return match prefixed {
                Prefixed::Kernel(line) => FileEvent::Line(line),
                Prefixed::NotKernel => FileEvent::Skipped(SkipReason::NotKernel),
            };
        }
        if looks_like_bare_message(line) {
            FileEvent::Line(LogLine { message: line.to_owned(), ..LogLine::default() })
        } else {
            FileEvent::Skipped(SkipReason::Unrecognised)
        }
    }

    /// `grep` over several files (`path:line`) or with `-n` (`path:12:line`, `12:line`).
    fn grep_prefixed(&self, line: &str) -> Option<Prefixed> {
        let mut rest = line;
        for _ in 0..2 {
            let (name, after) = rest.split_once(':')?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return None;
            }
            rest = after;
            if let Some(prefixed) = self.prefixed(rest) {
                return Some(prefixed);
            }
        }
        None
    }

    /// The line with a recognised prefix, or None.
    fn prefixed(&self, line: &str) -> Option<Prefixed> {
        if let Some((is_kern, rest)) = dmesg_level_prefix(line).or_else(|| raw_priority_prefix(line)) {
            return if is_kern {
                self.prefixed(rest).or_else(|| Some(kernel(rest, None, None)))
            } else {
                Some(Prefixed::NotKernel)
            };
        }
        if let Some(inside_and_rest) = line.strip_prefix('[') {
            let (inside, rest) = inside_and_rest.split_once(']')?;
            return self.bracketed(inside, rest);
        }
        let (first, rest) = token(line)?;
        if let Some(wall) = stamp::rfc3339(first) {
            // dmesg --time-format iso writes a decimal comma and no host; rsyslog and journalctl
            // a point (or no fraction) and a host.
            return Some(match syslog_tail(rest) {
                _ if first.contains(',') => kernel_message(strip_one_space(rest), None, Some(wall), None),
                SyslogTail::Kernel(message) => kernel(message, None, Some(wall)),
                SyslogTail::Other => Prefixed::NotKernel,
                SyslogTail::None => kernel_message(strip_one_space(rest), None, Some(wall), None),
            });
        }
        // short-unix always has a fraction; a bare `65536 pages RAM` is no time stamp.
        if let Some(wall) = first.contains('.').then(|| stamp::unix(first)).flatten() {
            return syslog_line(rest, Some(wall));
        }
        if stamp::is_weekday(first) {
            return self.short_full(rest);
        }
        let (day, rest) = token(rest)?;
        let (month, day) = stamp::month_day(first, day)?;
        let (time, rest) = token(rest)?;
        let time = stamp::time_of_day(time)?;
        // A day that fits no year near the file's (29 February) leaves the line without a time.
        syslog_line(rest, self.year_less(month, day, time))
    }

    /// A line opened by `[…]`: dmesg's stamps (since boot, `-T`, `-H`'s `Nov29 11:34` and
    /// `+0.000117`, `--time-format delta`'s `<   0.000117>`), or journalctl's short-monotonic.
    fn bracketed(&self, inside: &str, rest: &str) -> Option<Prefixed> {
        let (since_boot, wall) = if let Some(since_boot) = stamp::since_boot(inside) {
            // journalctl's short-monotonic names the kernel; anything else is dmesg's message.
            if let SyslogTail::Kernel(message) = syslog_tail(rest) {
                return Some(kernel(message, Some(since_boot), None));
            }
            (Some(since_boot), None)
        } else if let Some(wall) = stamp::ctime(inside, &self.context.time_zone) {
            (None, Some(wall))
        } else if let Some((month, day, time)) = stamp::month_day_minute(inside) {
            (None, self.year_less(month, day, time))
        } else if stamp::is_delta(inside) {
            (None, None)
        } else {
            return None;
        };
        let (caller, message) = caller_prefix(rest);
        Some(kernel_message(message, since_boot, wall, caller))
    }

    /// journalctl's `short-full` after its weekday: `2026-11-29 11:14:00 UTC host kernel: msg`.
    /// The zone is named by its abbreviation: UTC, or else taken to be the context's zone.
    fn short_full(&self, rest: &str) -> Option<Prefixed> {
        let (date, rest) = token(rest)?;
        let (time, rest) = token(rest)?;
        let (zone, rest) = token(rest)?;
        let date: Date = date.parse().ok()?;
        let datetime = date.to_datetime(stamp::time_of_day(time)?);
        let zone = if matches!(zone, "UTC" | "GMT") { &TimeZone::UTC } else { &self.context.time_zone };
        syslog_line(rest, stamp::local(datetime, zone))
    }

    /// A syslog `Mon DD HH:MM:SS[.frac]` in the year the context puts it.
    fn year_less(&self, month: i8, day: i8, time: Time) -> Option<SystemTime> {
        if let Some(last) = self.last_year_less.get()
            && (last.month, last.day, last.time) == (month, day, time)
        {
            return last.wall;
        }
        let wall = self.year_less_uncached(month, day, time);
        self.last_year_less.set(Some(YearLess { month, day, time, wall }));
        wall
    }

    fn year_less_uncached(&self, month: i8, day: i8, time: Time) -> Option<SystemTime> {
        let written_on = self.context.written_on;
        let latest = written_on.tomorrow().unwrap_or(written_on);
        let year = written_on.year();
        let date = [year.checked_add(1), Some(year), year.checked_sub(1)]
            .into_iter()
            .flatten()
            .filter_map(|year| Date::new(year, month, day).ok())
            .find(|date| *date <= latest)?;
        stamp::local(date.to_datetime(time), &self.context.time_zone)
    }
}

/// The part of a syslog line after its time stamp.
enum SyslogTail<'a> {
    /// `host kernel: message` (or `kernel: message` without a host): the message.
    Kernel(&'a str),
    /// `host program[pid]: …` of another program.
    Other,
    /// Not `host tag: …`.
    None,
}

fn syslog_tail(text: &str) -> SyslogTail<'_> {
    let Some((first, rest)) = token(text) else { return SyslogTail::None };
    if first == "kernel:" {
        return SyslogTail::Kernel(strip_one_space(rest));
    }
    let is_host = first.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let Some((tag, rest)) = token(rest).filter(|_| is_host) else { return SyslogTail::None };
    match syslog_tag(tag) {
        Some("kernel") => SyslogTail::Kernel(strip_one_space(rest)),
        Some(_) => SyslogTail::Other,
        None => SyslogTail::None,
    }
}

/// The program name of a syslog tag: `kernel:`, `sshd[12]:`.
fn syslog_tag(tag: &str) -> Option<&str> {
    let name = tag.strip_suffix(':')?;
    let name = match name.split_once('[') {
        Some((name, pid)) => {
            pid.strip_suffix(']').filter(|pid| pid.bytes().all(|b| b.is_ascii_digit())).map(|_| name)?
        }
        None => name,
    };
    (!name.is_empty() && !name.contains([':', '[', ']'])).then_some(name)
}

/// A syslog line's `host tag: message` after its time stamp.
fn syslog_line(rest: &str, wall: Option<SystemTime>) -> Option<Prefixed> {
    match syslog_tail(rest) {
        SyslogTail::Kernel(message) => Some(kernel(message, None, wall)),
        SyslogTail::Other => Some(Prefixed::NotKernel),
        SyslogTail::None => None,
    }
}

/// A kernel message as syslog carries it, possibly still opened by the kernel's own
/// `[  123.456789]` stamp (rsyslog's imklog, older klogd).
fn kernel(message: &str, since_boot: Option<Duration>, wall: Option<SystemTime>) -> Prefixed {
    if let Some(inside_and_rest) = message.strip_prefix('[')
        && let Some((inside, rest)) = inside_and_rest.split_once(']')
        && let Some(stamp) = stamp::since_boot(inside)
    {
        let (caller, message) = caller_prefix(rest);
        return kernel_message(message, since_boot.or(Some(stamp)), wall, caller);
    }
    kernel_message(message, since_boot, wall, None)
}

fn kernel_message(
    message: &str,
    since_boot: Option<Duration>,
    wall: Option<SystemTime>,
    caller: Option<Caller>,
) -> Prefixed {
    Prefixed::Kernel(LogLine { message: message.to_owned(), since_boot, wall, seq: None, caller })
}

/// After dmesg's stamp: `[ T1234] msg`, `[T1234] msg` or ` [ T1234] msg`, or just ` msg`.
fn caller_prefix(text: &str) -> (Option<Caller>, &str) {
    let bracketed = text.strip_prefix('[').or_else(|| text.strip_prefix(" ["));
    if let Some((inside, rest)) = bracketed.and_then(|text| text.split_once(']'))
        && let Some(caller) = parse_caller(inside.trim_start())
    {
        return (Some(caller), strip_one_space(rest));
    }
    (None, strip_one_space(text))
}

/// `dmesg -x`'s `kern  :err   : ` (facility, level): whether the facility is the kernel's, and
/// the rest of the line.
fn dmesg_level_prefix(line: &str) -> Option<(bool, &str)> {
    const FACILITIES: [&str; 20] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "local0",
        "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    const LEVELS: [&str; 8] = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];
    // Both names are padded to 6 columns ("authpriv" is longer): look no further than 9 bytes,
    // so the common line that is no such prefix costs nothing.
    let field = |text: &str| text.bytes().take(9).position(|b| b == b':');
    let colon = field(line)?;
    let (facility, rest) = (&line[..colon], &line[colon + 1..]);
    let colon = field(rest)?;
    let (level, rest) = (&rest[..colon], &rest[colon + 1..]);
    let facility = facility.trim_end();
    if !FACILITIES.contains(&facility) || !LEVELS.contains(&level.trim()) {
        return None;
    }
    Some((facility == "kern", strip_one_space(rest)))
}

/// `dmesg -r`'s `<6>` (the syslog priority, `facility << 3 | level`): whether the facility is
/// the kernel's, and the rest of the line.
fn raw_priority_prefix(line: &str) -> Option<(bool, &str)> {
    let (priority, rest) = line.strip_prefix('<')?.split_once('>')?;
    if priority.is_empty() || priority.len() > 4 || !priority.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let priority: u32 = priority.parse().ok()?;
    Some((priority >> 3 == 0, rest))
}

fn journal_marker(line: &str) -> Option<FileEvent> {
    let inside = line.strip_prefix("-- ")?;
    if inside.starts_with("cursor: ") {
        return Some(FileEvent::Marker);
    }
    let inside = inside.strip_suffix(" --")?;
    Some(match inside.strip_prefix("Boot ") {
        Some(boot_id) => FileEvent::Boot { boot_id: Some(boot_id.trim().to_owned()) },
        None if inside == "Reboot" => FileEvent::Boot { boot_id: None },
        None => FileEvent::Marker,
    })
}

/// Whether a line opens like a /dev/kmsg record: `priority,seq,µs,flags[,key=value…];`
/// (Documentation/ABI/testing/dev-kmsg), the priority a number and the flags one of `-`, `c`,
/// `+`. The sequence number and time are checked by the record's parser: a record with a bad
/// one is counted as unrecognised, not taken for a message.
fn looks_like_kmsg_record(line: &str) -> bool {
    let Some((header, _)) = line.split_once(';') else { return false };
    let mut fields = header.split(',');
    let priority = fields.next().is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let word = |field: Option<&str>| field.is_some_and(|f| !f.is_empty() && !f.contains(char::is_whitespace));
    priority
        && word(fields.next())
        && word(fields.next())
        && fields.next().is_some_and(|flags| matches!(flags, "-" | "c" | "+"))
}

/// A kmsg record's dictionary line: ` KEY=value`, the key in capitals, digits and `_`.
fn is_kmsg_dictionary(line: &str) -> bool {
    let Some((key, _)) = line.strip_prefix(' ').and_then(|entry| entry.split_once('=')) else { return false };
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A line without a recognised prefix is taken as a bare kernel message (pasted into a ticket,
/// `grep -h` output) unless it opens with what looks like a time stamp of another form
/// (`2026/11/29 11:14:00 …`) or holds control characters.
fn looks_like_bare_message(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or_default();
    let stamp_like = first.bytes().any(|b| b.is_ascii_digit())
        && first.bytes().any(|b| b"-/:.".contains(&b))
        && first.bytes().all(|b| b.is_ascii_digit() || b"-/:.,T+Z".contains(&b));
    !stamp_like && !line.chars().any(|c| c.is_control() && c != '\t')
}

/// The first whitespace-separated token and the text after it (its separating space kept).
fn token(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start_matches(' ');
    // A byte loop: tokens are short, and `str::find`'s searcher costs more to set up than
    // to run on them (profiled on `history --file`). A space is one byte, a char boundary.
    let end = text.bytes().position(|b| b == b' ').unwrap_or(text.len());
    let (token, rest) = text.split_at(end);
    (!token.is_empty()).then_some((token, rest))
}

/// Removes the one space that separates a prefix from its message; further spaces belong to
/// the message (call trace lines start with one).
fn strip_one_space(text: &str) -> &str {
    text.strip_prefix(' ').unwrap_or(text)
}

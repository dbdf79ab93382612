//! The kernel's ring buffer through syslog(2) (`klogctl`, what `dmesg` uses):
//! the one way to read the kernel log from an unprivileged container. Opening
//! /dev/kmsg there fails even with CAP_SYSLOG and the device bind-mounted
//! (the runtime's device cgroup allows no kmsg), while syslog(2) needs only
//! CAP_SYSLOG (where `kernel.dmesg_restrict=1`) and is allowed by the
//! RuntimeDefault seccomp profile for a holder of that capability.
//!
//! Each line is `<level>[seconds.micros] message` (with
//! `CONFIG_PRINTK_CALLER`, `[ T123]` after the time); there are no sequence
//! numbers, so readers order and deduplicate by the kernel timestamp.

/// `SYSLOG_ACTION_READ_ALL`: read the whole buffer without consuming it.
const READ_ALL: libc::c_int = 3;
/// `SYSLOG_ACTION_SIZE_BUFFER`: the buffer's size in bytes.
const SIZE_BUFFER: libc::c_int = 10;
/// Used when the kernel does not say (it always does since 2.6.6).
const FALLBACK_SIZE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error(
        "reading the kernel log with syslog(2) is not permitted: it needs CAP_SYSLOG when kernel.dmesg_restrict=1 \
         (it is {restrict} here){container}"
    )]
    NotPermitted { restrict: String, container: &'static str },
    #[error("reading the kernel log with syslog(2): {0}")]
    Other(std::io::Error),
}

/// The whole ring buffer as text (lossy UTF-8), oldest line first.
pub fn read_all() -> Result<String, SyslogError> {
    // SAFETY: SIZE_BUFFER takes no buffer (null, 0) and returns a size or -1.
    let size = unsafe { libc::klogctl(SIZE_BUFFER, std::ptr::null_mut(), 0) };
    let size = usize::try_from(size).ok().filter(|&n| n > 0).unwrap_or(FALLBACK_SIZE);
    let mut buffer = vec![0u8; size];
    let len = libc::c_int::try_from(buffer.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the kernel writes at most `len` bytes into `buffer`, which is
    // that long, and returns how many it wrote (or -1).
    let read = unsafe { libc::klogctl(READ_ALL, buffer.as_mut_ptr().cast(), len) };
    let Ok(read) = usize::try_from(read) else {
        let error = std::io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EPERM) => SyslogError::NotPermitted {
                restrict: std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict")
                    .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
                container: "; in Kubernetes add SYSLOG to the container's capabilities (deploy/kubernetes/components/history)",
            },
            _ => SyslogError::Other(error),
        });
    };
    buffer.truncate(read.min(buffer.len()));
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// The kernel messages of what [`read_all`] returned, oldest first.
pub fn log_lines(text: &str) -> impl Iterator<Item = oomtrace_klog::LogLine> + '_ {
    use oomtrace_klog::source::file::{FileContext, FileEvent, FileParser};
    // `[seconds] message` has no year to guess: any context does.
    let mut parser = FileParser::new(FileContext::for_year(i16::MAX));
    text.lines().filter_map(move |line| match parser.parse_line(strip_level(line)) {
        FileEvent::Line(line) => Some(line),
        _ => None,
    })
}

/// Strips the `<level>` prefix syslog(2) puts on each line.
pub fn strip_level(line: &str) -> &str {
    line.strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .filter(|(level, _)| !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()))
        .map_or(line, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_prefixes_are_stripped_and_nothing_else() {
        assert_eq!(strip_level("<6>[    1.000000] hello"), "[    1.000000] hello");
        assert_eq!(strip_level("<12>x"), "x");
        assert_eq!(strip_level("<a>x"), "<a>x");
        assert_eq!(strip_level("<>x"), "<>x");
        assert_eq!(strip_level("plain"), "plain");
    }

    #[test]
    fn reads_the_buffer_as_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: reading the kernel log needs root (CAP_SYSLOG) here");
            return;
        }
        let text = read_all().expect("root reads the kernel log");
        assert!(text.lines().next().is_some_and(|l| l.starts_with('<')), "{:?}", text.get(..80));
    }
}

//! One kernel message as a source delivers it.

use std::time::{Duration, SystemTime};

/// One kernel message, stripped of its source's prefix (syslog header,
/// `[  12.345678]`, `CONFIG_PRINTK_CALLER`'s `[T123]`, the kmsg record header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogLine {
    /// The message text, e.g. `Memory cgroup out of memory: Killed process 42 (hog) …`.
    pub message: String,
    /// Time since boot as the kernel stamped it (kmsg, `dmesg`, journal's monotonic time, a
    /// `[ 12.345678]` prefix inside a syslog line).
    pub since_boot: Option<Duration>,
    /// Wall-clock time the source gives (syslog, `dmesg -T`, `journalctl -k`, RFC 3339 prefixes).
    pub wall: Option<SystemTime>,
    /// `/dev/kmsg` sequence number (kmsg records only; the journal's own sequence numbers differ).
    pub seq: Option<u64>,
    /// `CONFIG_PRINTK_CALLER`: the task (`T<pid>`) or CPU (`C<n>`) that printed it.
    pub caller: Option<Caller>,
}

/// Who printed a message (`CONFIG_PRINTK_CALLER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Task(u32),
    Cpu(u32),
}

//! The kernel log's sources, read: /dev/kmsg ([`kmsg`]), the systemd journal ([`journal`]) and
//! saved files or stdin ([`file`]), each turning its input into `oomtrace_klog` lines through
//! the pure parsers of `oomtrace_klog::source`; [`source`] makes any of them one stream of
//! kernel lines marked with their boot. [`boot`] dates kernel stamps of this boot and names
//! it; [`state`] is the daemon's position in the log across restarts.

pub mod boot;
pub mod file;
pub mod journal;
pub mod kmsg;
pub mod source;
pub mod state;

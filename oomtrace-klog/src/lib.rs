//! The kernel log, parsed: where `oomtrace history` finds past OOM kills and
//! where live events get what only the kernel's OOM report has (the memcg's
//! memory.stat, the task table).
//!
//! A source (`/dev/kmsg`, the journal, a saved file) yields [`LogLine`]s: one
//! kernel message each, with whatever time and sequence number the source
//! carries. The report parser turns a stream of lines into OOM reports.
//! Everything here is pure parsing of outside input: no I/O, no panics.

pub mod line;
pub mod report;
pub mod source;

pub use line::{Caller, LogLine};
pub use report::{OomReport, ParseStats, Parsed, ReapedTask, ReportParser};

//! The kernel-log core, shared by every command that reads the kernel log (`live` and the
//! daemon through the pipeline, `history`, `diagnose`).
//!
//! Reading: /dev/kmsg ([`kmsg`]), the systemd journal ([`journal`]) and saved files or stdin
//! ([`file`]), each turning its input into `oomtrace_klog` lines through the pure parsers of
//! `oomtrace_klog::source`; [`source`] makes any of them one stream of kernel lines marked with
//! their boot. [`boot`] dates kernel stamps of this boot and names it; [`state`] is the daemon's
//! position in the log across restarts.
//!
//! From lines to events: [`collect`] feeds lines through the report parser, [`convert`] turns
//! each report into events; [`read`] reads a whole log ([`read::LogSource`]) that way,
//! [`attribute`] names the workloads of the events it gave, and [`reconcile`] says what was
//! found against the kernel's own count. [`join`] pairs the log's reports with live events
//! while tracing.

pub mod attribute;
pub mod boot;
pub mod collect;
pub mod convert;
pub mod file;
pub mod join;
pub mod journal;
pub mod kmsg;
pub mod read;
pub mod reconcile;
pub mod source;
pub mod state;

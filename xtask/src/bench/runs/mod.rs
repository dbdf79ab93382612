//! The measurements, each against the real kernel or component: the tracers
//! on their own and their peers, the daemon with both exporters, pod
//! attribution, and kernel log parsing. They read the settings and return
//! figures; none renders.

pub mod alternating;
mod child;
pub mod daemon;
pub mod enrichment;
pub mod kernel_cost;
mod kills;
pub mod klog;
pub mod object;
pub mod peers;
pub mod storm;
mod syslog_file;
pub mod tracers;

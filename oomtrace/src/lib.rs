//! oomtrace: explains kernel OOM kills from eBPF.
//!
//! The modules are layers, read bottom to top (README, "Structure"; checked
//! by tests/layers.rs); the event itself is the `oomtrace_event` crate:
//! - `kernel`, `host`, `config`: what the kernel offers, the node, the daemon's settings;
//! - `probe` (load, attach, read the ring buffer, decode the raw record into
//!   the event) and `enrich` (cgroup paths, containers, pods); `filter`
//!   (which events a command shows);
//! - `diagnosis`: why each kill happened and what to change;
//! - `klog`: the kernel-log core: reading a log, its reports as events, their
//!   attribution, and the join with live events;
//! - `pipeline`: the live path of `live` and `daemon`;
//! - `output` (table, JSON: what a person or a pipe reads) and `export`
//!   (Prometheus, OTLP: what a system scrapes or receives);
//! - the commands, each a thin reader of those cores: `live`, `daemon`,
//!   `history`, `diagnose`, `check`, `whois`;
//! - `cli`: their flags, turned into each command's options.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnose;
pub mod diagnosis;
pub mod enrich;
pub mod escape;
pub mod export;
pub mod filter;
pub mod forecast;
pub mod history;
pub mod host;
pub mod kernel;
pub mod klog;
pub mod live;
pub mod output;
pub mod pipeline;
pub mod probe;
pub mod sched;
pub mod top;
pub mod watch;
pub mod whois;

//! oomtrace: explains kernel OOM kills from eBPF.
//!
//! The modules follow the path an OOM event takes:
//! `kernel` (what the kernel offers) -> `probe` (load, attach, read the ring
//! buffer, decode the raw record into the owned event of `oomtrace_event`) ->
//! `enrich` (cgroup paths, containers, pods) -> `diagnosis` -> `output` (table,
//! JSON: what a person or a pipe reads) and `export` (Prometheus, OTLP: what a
//! system scrapes or receives). `klog` is the kernel-log core: reading a log,
//! its reports as events, their attribution, and the join with live events.
//! `pipeline` runs the live path for `live` and `daemon`; `filter` chooses
//! what a command shows. The commands, each a thin reader of those cores:
//! `live`, `daemon`, `history`, `diagnose`, `check`, `whois`; `cli` holds their
//! flags and turns them into each command's options.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnose;
pub mod diagnosis;
pub mod enrich;
pub mod export;
pub mod filter;
pub mod history;
pub mod host;
pub mod kernel;
pub mod klog;
pub mod live;
pub mod output;
pub mod pipeline;
pub mod probe;
pub mod whois;

//! oomtrace: explains kernel OOM kills from eBPF.
//!
//! The modules follow the path an OOM event takes:
//! `kernel` (what the kernel offers) -> `probe` (load, attach, read the ring
//! buffer) -> `event` (the owned event, decoded from the raw record) ->
//! `enrich` (cgroup paths, containers, pods) -> `output` (table, JSON: what a
//! person or a pipe reads) and `export` (Prometheus, OTLP: what a system
//! scrapes or receives). `pipeline` runs that path for `live` and `daemon`;
//! `live`, `check`, `whois` and `daemon` are the commands.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnose;
pub mod diagnosis;
pub mod enrich;
pub mod export;
pub mod history;
pub mod host;
pub mod join;
pub mod kernel;
pub mod klog;
pub mod live;
pub mod output;
pub mod pipeline;
pub mod probe;
pub mod whois;

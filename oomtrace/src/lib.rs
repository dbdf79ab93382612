//! oomtrace: explains kernel OOM kills from eBPF.
//!
//! The modules are layers, read bottom to top (README, "Structure"; checked
//! by tests/layers.rs): `kernel`, `host`, `config` (what the kernel offers,
//! the node, the daemon's settings) -> `probe` (load, attach, raw record ->
//! event) and `enrich` (cgroup paths, containers, pods) -> `diagnosis` ->
//! `klog` (the kernel log) -> `pipeline` (that path for `live` and
//! `daemon`) -> `output` and `export` -> the commands -> `cli`. The event
//! itself is the `oomtrace_event` crate.

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

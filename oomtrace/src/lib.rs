//! oomtrace: explains kernel OOM kills from eBPF.
//!
//! The modules follow the path an OOM event takes:
//! `kernel` (what the kernel offers) -> `probe` (load, attach, read the ring
//! buffer) -> `event` (decode into the owned event) -> `enrich` (cgroup paths)
//! -> `sink` (table, JSON). `live`, `check`, `whois` and `daemon` are the commands.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod enrich;
pub mod event;
pub mod kernel;
pub mod live;
pub mod pipeline;
pub mod probe;
pub mod sink;
pub mod whois;

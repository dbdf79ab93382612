//! What oomtrace's integration tests and `cargo xtask` share, written once:
//!
//! - [`cgroup`]: memory cgroups with limits, hogs the kernel OOM-kills in
//!   them, the kernel's own oom_kill counters;
//! - [`dmesg`]: the kernel's "Killed process" line, as numbers;
//! - [`cri`]: a CRI client that runs pods the way kubelet does, in the
//!   containerd of `scripts/runtime.sh`;
//! - [`observability`]: Prometheus' query API, the metrics text format, the
//!   OTLP receiver's output (`scripts/observability.sh`), over one [`http`] client;
//! - [`tracer`]: the one process runner for the tracers (oomtrace live and
//!   daemon, bpftrace), with [`live`] and [`daemon`] on top of it, reading
//!   events as typed [`event::Event`]s;
//! - [`procfs`]: clocks, CPU and memory of a process, the machine;
//! - [`bpf`]: the BPF programs and maps a process holds, with the kernel's
//!   run-time statistics of each program;
//! - [`components`]: the scripts that bring the shared components up;
//! - [`workload`]: memory behaviours (a leak, a burst, a sawtooth, page
//!   cache...) the test binary itself runs inside a limited cgroup;
//! - [`harness`]: tests that say what they need and skip visibly without it.
//!
//! It does not depend on the `oomtrace` crate: its oracles (hierarchy
//! detection, /proc/<pid>/cgroup, the event's JSON) are written independently.

pub mod bpf;
pub mod cgroup;
pub mod components;
pub mod cri;
pub mod daemon;
pub mod dmesg;
pub mod event;
pub mod fentry;
pub mod harness;
pub mod http;
pub mod live;
pub mod manifest;
pub mod observability;
pub mod procfs;
pub mod report;
pub mod systemd;
pub mod tracer;
pub mod warning;
pub mod workload;

//! What the enrichment run measured: `PodResolver::attribute` timed by the
//! `enrichment_bench` example of the oomtrace crate against a real pod.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EnrichmentFigures {
    /// The example was built with optimizations (as oomtrace ships).
    pub optimized: bool,
    /// "containerd 1.7.24".
    pub runtime: String,
    /// The container's memory cgroup, as events carry it.
    pub container_path: String,
    /// What the cold lookup gave.
    pub attribution: String,
    /// First attribute() on a fresh resolver: connects, then ContainerStatus.
    pub cold_connect: Vec<Duration>,
    /// First lookup of another container on an already connected resolver.
    pub cold_connected: Vec<Duration>,
    /// First attribute() after `warm()` listed every container (as the
    /// daemon does at startup).
    pub after_warm: Vec<Duration>,
    /// Repeated attribute() of the container looked up before.
    pub cached: Vec<Duration>,
    /// Repeated attribute() of a container whose main process has exited.
    pub exited: Vec<Duration>,
    pub exited_attribution: String,
    /// attribute() against a socket that accepts nothing, one resolver.
    pub hung: Vec<Duration>,
    pub hung_attribution: String,
    /// The resolver's CRI timeout (--cri-timeout).
    pub timeout: Duration,
}

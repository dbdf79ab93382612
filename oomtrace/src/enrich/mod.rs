//! Attributes events: cgroup ids to cgroup paths (later: containers, pods).

pub mod cgroup;

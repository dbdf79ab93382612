//! Attributes events: cgroup ids to cgroup paths, cgroup paths to
//! containers and pods (offline), containers to names (over CRI).

pub mod cgroup;
pub mod cgroup_path;
pub mod cri;
pub mod owner;
pub mod pod;

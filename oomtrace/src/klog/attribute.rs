//! The workloads of kills read from the kernel log, named the same way by `history`,
//! `diagnose` and the pipeline (for kills the probes did not see): the cgroups' ids where the
//! directories still exist, the pods the CRI still lists (it lists an exited container until it
//! is removed), the node's name. Not the main process: the container's pid then is not the one
//! at the kill.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    diagnosis::Diagnoser,
    enrich::{cgroup::detect_hierarchy, pod::PodResolver},
    host::node_name,
};
use oomtrace_event::OomEvent;

/// Names the workload of one kill read from the log: `root` is the cgroup hierarchy's root
/// (None: ids stay as they are), `node` the node's name for logs of this boot.
pub async fn attribute_kill(event: &mut OomEvent, root: Option<&Path>, pods: &mut PodResolver, node: Option<&str>) {
    if let Some(root) = root {
        for cgroup in event.victim_cgroup.iter_mut().chain(event.oom_cgroup.iter_mut().map(|o| &mut o.cgroup)) {
            cgroup.id = cgroup.path.as_deref().and_then(|p| live_cgroup_id(root, p)).unwrap_or(0);
        }
    }
    let path = event.victim_cgroup.as_ref().and_then(|c| c.path.clone());
    if path.is_some() {
        event.workload = Some(pods.attribute(path.as_deref(), None).await);
    }
    if let Some(node) = node {
        event.node = Some(node.to_owned());
    }
}

/// Attributes the kills of a whole log one by one (see [`attribute_kill`]) and diagnoses each in
/// log order, so that `repeated` counts the workload's earlier kills (the diagnoser's memory of
/// them is bounded). The node is named only in a log of `this_boot`.
pub struct Attributor {
    root: Option<PathBuf>,
    pods: PodResolver,
    node: Option<String>,
    diagnoser: Diagnoser,
}

impl Attributor {
    /// Finds the cgroup hierarchy and loads what the runtime knows; made at a log's first kill.
    pub async fn new(this_boot: bool, cri_socket: Option<PathBuf>, cri_timeout: Duration) -> Self {
        let root = detect_hierarchy().ok().map(|h| h.root().to_path_buf());
        let mut pods = PodResolver::new(cri_socket, cri_timeout);
        pods.warm().await;
        Self { root, pods, node: this_boot.then(node_name), diagnoser: Diagnoser::default() }
    }

    /// The log's next kill: attributed, then diagnosed.
    pub async fn attribute(&mut self, event: &mut OomEvent) {
        attribute_kill(event, self.root.as_deref(), &mut self.pods, self.node.as_deref()).await;
        event.diagnosis = Some(self.diagnoser.diagnose(event));
    }
}

/// The kernfs id (inode) of a cgroup that still exists.
fn live_cgroup_id(root: &Path, path: &str) -> Option<u64> {
    std::fs::metadata(root.join(path.trim_start_matches('/'))).ok().map(|m| m.ino())
}

//! [`CriClient`] for plain (non-async) tests: every call blocks on a private
//! current-thread runtime, and a pod is removed when its handle drops.

use std::{ops::Deref, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use tokio::runtime::Runtime;

use super::{CriClient, Pod, Qos, Status};

/// A blocking CRI client. Cheap to clone (the channel and runtime are shared).
#[derive(Clone)]
pub struct Cri {
    runtime: Arc<Runtime>,
    client: CriClient,
}

impl Cri {
    pub fn connect(socket: &str) -> Result<Cri> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a tokio runtime for the CRI client")?;
        let client = runtime.block_on(CriClient::connect(socket))?;
        Ok(Cri { runtime: Arc::new(runtime), client })
    }

    /// The runtime `scripts/runtime.sh up` runs ([`super::test_socket`]).
    pub fn connect_test_runtime() -> Result<Cri> {
        Self::connect(&super::test_socket())
    }

    pub fn socket(&self) -> &str {
        self.client.socket()
    }

    pub fn version(&self) -> Result<String> {
        self.runtime.block_on(self.client.version())
    }

    /// Runs a pod sandbox of `qos`; it is removed when the handle drops.
    pub fn run_pod(&self, name: &str, namespace: &str, uid: &str, qos: Qos) -> Result<PodHandle> {
        self.run_labelled_pod(name, namespace, uid, qos, &[])
    }

    /// Runs a pod sandbox of `qos` with the pod's own labels.
    pub fn run_labelled_pod(
        &self,
        name: &str,
        namespace: &str,
        uid: &str,
        qos: Qos,
        pod_labels: &[(&str, &str)],
    ) -> Result<PodHandle> {
        let pod = self.runtime.block_on(self.client.run_labelled_pod(name, namespace, uid, qos, pod_labels))?;
        Ok(PodHandle { pod, cri: self.clone(), removed: false })
    }

    /// Creates and starts a container of the test image in `pod`.
    pub fn run_container(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
        memory_limit_bytes: Option<u64>,
    ) -> Result<String> {
        self.runtime.block_on(self.client.run_limited_container(pod, name, command, memory_limit_bytes))
    }

    /// The `attempt`-th restart of container `name` (kubelet's attempt number
    /// and restart count).
    pub fn run_container_attempt(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
        memory_limit_bytes: Option<u64>,
        attempt: u32,
    ) -> Result<String> {
        self.runtime.block_on(self.client.run_container_attempt(pod, name, command, memory_limit_bytes, attempt))
    }

    pub fn container_status(&self, id: &str) -> Result<Status> {
        self.runtime.block_on(self.client.status(id))
    }

    /// Polls until the container has exited: (exit code, reason).
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> Result<(i32, String)> {
        self.runtime.block_on(self.client.wait_exited(id, timeout))
    }

    /// Removes the pod now (and its containers and cgroup), reporting failures.
    pub fn remove_pod(&self, mut pod: PodHandle) -> Result<()> {
        pod.removed = true;
        self.runtime.block_on(self.client.remove_pod(&pod.pod))
    }
}

/// A running pod sandbox; removed (with its containers) when dropped.
pub struct PodHandle {
    pod: Pod,
    cri: Cri,
    removed: bool,
}

impl Deref for PodHandle {
    type Target = Pod;

    fn deref(&self) -> &Pod {
        &self.pod
    }
}

impl Drop for PodHandle {
    fn drop(&mut self) {
        if !self.removed
            && let Err(error) = self.cri.runtime.block_on(self.cri.client.remove_pod(&self.pod))
        {
            eprintln!("warning: could not remove pod sandbox {} ({}): {error:#}", self.pod.id, self.pod.name);
        }
    }
}

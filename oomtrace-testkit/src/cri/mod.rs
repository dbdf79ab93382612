//! A CRI client for the tests and the bench: runs pods and containers in the
//! local containerd that `scripts/runtime.sh up` starts, shaped the way
//! kubelet shapes them (labels, cgroup parents, log paths, oom_score_adj).
//!
//! [`CriClient`] is async (the bench calls it inside its own runtime);
//! [`blocking::Cri`] drives it on a private current-thread runtime so tests
//! stay plain functions.

pub mod blocking;
mod pod;
pub mod proxy;

use std::{
    collections::hash_map::RandomState,
    future::Future,
    hash::{BuildHasher as _, Hasher as _},
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use hyper_util::rt::TokioIo;
pub use k8s_cri::v1::ContainerState;
use k8s_cri::v1::{VersionRequest, runtime_service_client::RuntimeServiceClient};
pub use oomtrace_common::kubelet::{
    CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL, RESTART_COUNT_ANNOTATION,
};
pub use pod::{Pod, Qos, Status};
pub mod daemonset;

pub use crate::cgroup::memory_cgroup_of;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where `scripts/runtime.sh up` puts containerd's socket.
pub const DEFAULT_SOCKET: &str = "/run/oomtrace-test/containerd/containerd.sock";
/// Environment variable naming another socket.
pub const SOCKET_ENV: &str = "OOMTRACE_TEST_CRI_SOCKET";
/// The image `scripts/runtime.sh` builds: busybox applets plus `hog MIB [DELAY]`.
pub const TEST_IMAGE: &str = "localhost/oomtrace-test:latest";
/// Pod log directories go below this (kubelet uses /var/log/pods).
pub const POD_LOG_ROOT: &str = "/run/oomtrace-test/logs/pods";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const HINT: &str = "start it with scripts/runtime.sh up";

/// The CRI socket of the test runtime: `$OOMTRACE_TEST_CRI_SOCKET` or [`DEFAULT_SOCKET`].
pub fn test_socket() -> String {
    std::env::var(SOCKET_ENV).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_SOCKET.to_owned())
}

/// The socket when containerd answers CRI on it, else why not.
pub fn available() -> Result<String> {
    let socket = test_socket();
    if !Path::new(&socket).exists() {
        bail!("containerd is not running on {socket}: {HINT}");
    }
    blocking::Cri::connect(&socket)
        .and_then(|client| client.version())
        .with_context(|| format!("containerd is not answering CRI on {socket}: {HINT}"))?;
    Ok(socket)
}

/// A fresh random pod uid in the usual UUID form.
pub fn new_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let word = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    let (a, b) = (word(), word());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// How the runtime places pods and containers in cgroups (kubelet's and the
/// runtime's `cgroupDriver` / `SystemdCgroup`, which must agree).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    /// `/kubepods/burstable/pod<uid>/<id>` (this repository's test containerd).
    #[default]
    Cgroupfs,
    /// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`
    /// (AKS nodes: containerd with `SystemdCgroup = true`).
    Systemd,
}

/// An async CRI client over a unix socket. Cheap to clone.
#[derive(Clone)]
pub struct CriClient {
    socket: String,
    channel: Channel,
    driver: CgroupDriver,
}

impl CriClient {
    pub async fn connect(socket: &str) -> Result<Self> {
        let path = socket.to_owned();
        let endpoint = Endpoint::try_from("http://[::]:0")?.connect_timeout(CONNECT_TIMEOUT);
        let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }));
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .with_context(|| format!("no connection to {socket} within {CONNECT_TIMEOUT:?}"))?
            .with_context(|| format!("connecting to {socket}"))?;
        Ok(CriClient { socket: socket.to_owned(), channel, driver: CgroupDriver::default() })
    }

    /// The same client, making pods for a runtime using `driver`.
    pub fn with_cgroup_driver(mut self, driver: CgroupDriver) -> Self {
        self.driver = driver;
        self
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    fn service(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// Runs one gRPC call to completion, bounded by `timeout`.
    async fn call<T>(
        what: &str,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(timeout, call).await {
            Err(_) => bail!("CRI {what}: no answer within {timeout:?}"),
            Ok(Err(status)) => bail!("CRI {what}: {:?}: {}", status.code(), status.message()),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// "containerd v1.7.x".
    pub async fn version(&self) -> Result<String> {
        let mut service = self.service();
        let request = VersionRequest { version: "v1".into() };
        let v = Self::call("Version", CONNECT_TIMEOUT, service.version(request)).await?;
        Ok(format!("{} {}", v.runtime_name, v.runtime_version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuids() {
        let uid = new_uid();
        let parts: Vec<usize> = uid.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{uid}");
        assert!(uid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{uid}");
        assert_ne!(uid, new_uid());
    }
}

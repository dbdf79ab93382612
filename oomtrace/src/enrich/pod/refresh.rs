//! Learning the containers the runtime starts before any of them is killed:
//! a node out of memory is when containerd is slowest to answer, so the
//! names of a container must already be known by then.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

use super::cache::SharedCache;
use crate::{
    enrich::cri::{CriClient, CriError},
    escape::escape_controls,
};

/// Minimum time between two warnings about failed refreshes.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Lists the runtime's containers and remembers those not known yet, with
/// their pods' labels (asked for only when a container is new). What is
/// known already is kept as it is: a ContainerStatus answer says more than
/// a listing. Returns how many were learned; the containers are remembered
/// even when their pods' labels could not be read (then that error).
pub(super) async fn learn_new_containers(cri: &CriClient, cache: &SharedCache) -> Result<usize, CriError> {
    let listed = cri.list().await?;
    let new: Vec<_> = {
        let known = cache.lock();
        listed.into_iter().filter(|c| !known.contains(&c.id)).collect()
    };
    if new.is_empty() {
        return Ok(0);
    }
    let (labels, failed) = match cri.all_pod_labels().await {
        Ok(labels) => (labels, None),
        Err(error) => (HashMap::new(), Some(error)),
    };
    let learned = new.len();
    let mut known = cache.lock();
    for mut info in new {
        info.pod_labels = info.pod_uid.as_ref().and_then(|uid| labels.get(uid)).cloned();
        known.insert(info, false);
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(learned),
    }
}

/// The background task of [`learn_new_containers`]; aborted when dropped.
pub struct Learner(JoinHandle<()>);

impl Learner {
    pub(super) fn spawn(cri: CriClient, cache: SharedCache, every: Duration) -> Self {
        Self(tokio::spawn(async move {
            let mut last_warning: Option<Instant> = None;
            let mut failures = 0u64;
            loop {
                tokio::time::sleep(every).await;
                match learn_new_containers(&cri, &cache).await {
                    Ok(0) => {}
                    Ok(learned) => tracing::debug!(learned, "new containers learned from the runtime"),
                    Err(error) => {
                        failures += 1;
                        if last_warning.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
                            last_warning = Some(Instant::now());
                            tracing::warn!(
                                reason = %escape_controls(&error.to_string()),
                                failures,
                                "cannot list the runtime's containers: a container started since is named \
                                 at its kill only if the runtime answers then"
                            );
                        }
                    }
                }
            }
        }))
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

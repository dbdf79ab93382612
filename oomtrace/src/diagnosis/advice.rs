//! What to change (issue 12, work in progress): the memory limit VPA would
//! set after this kill, and the workload that owns the pod, so the advice can
//! name the exact `kubectl set resources` command.

use serde::Serialize;

use super::{Cause, Finding};
use crate::event::{OomEvent, Owner};

const MIB: u64 = 1024 * 1024;

/// VPA's rule after an OOM kill (kubernetes/autoscaler, vertical-pod-autoscaler
/// `pkg/recommender/model/container.go`: `OOMBumpUpRatio` 1.2 and
/// `OOMMinBumpUp` 100 MiB; today the recommender's `--oom-bump-up-ratio` and
/// `--oom-min-bump-up-bytes` defaults): the larger of `used + 100 MiB` and
/// `used × 1.2`, where `used` is
/// the larger of the limit at the kill and the peak usage seen. In MiB,
/// rounded up.
pub fn recommended_limit_mib(limit_bytes: Option<u64>, peak_usage_bytes: Option<u64>) -> Option<u64> {
    let used = limit_bytes.max(peak_usage_bytes)?;
    let bumped = used.saturating_add(100 * MIB).max(used.saturating_mul(6) / 5);
    Some(bumped.div_ceil(MIB))
}

/// One step of the advice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// Stable name of the step (`raise_limit`, ...; docs/diagnosis.md).
    pub action: &'static str,
    /// What to do and why, for a person.
    pub text: String,
    /// The exact command, filled in; absent when the step is not one command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// What to change after this kill, following the AKS guide.
pub fn advise(_event: &OomEvent, _cause: Cause, _findings: &[Finding]) -> Vec<Advice> {
    Vec::new()
}

/// The owner from the pod's labels (kubelet passes them to the runtime, the
/// CRI returns them) and its name.
pub fn owner(pod: &str, labels: &[(&str, &str)]) -> Owner {
    let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if let Some(job) = label("batch.kubernetes.io/job-name").or_else(|| label("job-name")) {
        return Owner { kind: "job", name: job.to_owned(), guessed: false };
    }
    if label("statefulset.kubernetes.io/pod-name").is_some()
        && let Some((name, ordinal)) = pod.rsplit_once('-')
        && ordinal.bytes().all(|b| b.is_ascii_digit())
    {
        return Owner { kind: "statefulset", name: name.to_owned(), guessed: false };
    }
    if let Some(hash) = label("pod-template-hash")
        && let Some(prefix) = pod.strip_suffix(&suffix_after(pod)).and_then(|p| p.strip_suffix(&format!("-{hash}")))
    {
        return Owner { kind: "deployment", name: prefix.to_owned(), guessed: false };
    }
    if label("controller-revision-hash").is_some()
        && let Some((name, _)) = pod.rsplit_once('-')
    {
        return Owner { kind: "daemonset", name: name.to_owned(), guessed: false };
    }
    Owner { kind: "pod", name: pod.to_owned(), guessed: labels.is_empty() }
}

/// `-abcde`: the random suffix the ReplicaSet and DaemonSet controllers add.
fn suffix_after(pod: &str) -> String {
    pod.rsplit_once('-').map_or_else(String::new, |(_, s)| format!("-{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpa_bumps_by_100_mib_or_20_percent() {
        // 64 MiB limit: 64 + 100 > 64 × 1.2.
        assert_eq!(recommended_limit_mib(Some(64 * MIB), Some(64 * MIB)), Some(164));
        // 1 GiB: 1024 × 1.2 = 1228.8 -> 1229 > 1124.
        assert_eq!(recommended_limit_mib(Some(1024 * MIB), None), Some(1229));
        assert_eq!(recommended_limit_mib(None, Some(10 * MIB)), Some(110));
        assert_eq!(recommended_limit_mib(None, None), None);
    }

    #[test]
    fn owners_from_labels_and_names() {
        assert_eq!(
            owner("api-7d9f8c6b5d-x2x4q", &[("pod-template-hash", "7d9f8c6b5d")]),
            Owner { kind: "deployment", name: "api".to_owned(), guessed: false }
        );
        assert_eq!(
            owner("db-2", &[("statefulset.kubernetes.io/pod-name", "db-2"), ("controller-revision-hash", "db-5f")]),
            Owner { kind: "statefulset", name: "db".to_owned(), guessed: false }
        );
        assert_eq!(
            owner("node-exporter-8kq2m", &[("controller-revision-hash", "6c9b7d")]),
            Owner { kind: "daemonset", name: "node-exporter".to_owned(), guessed: false }
        );
        assert_eq!(
            owner("backup-28761120-abcde", &[("batch.kubernetes.io/job-name", "backup-28761120")]),
            Owner { kind: "job", name: "backup-28761120".to_owned(), guessed: false }
        );
        assert_eq!(owner("debug", &[]), Owner { kind: "pod", name: "debug".to_owned(), guessed: true });
    }
}

//! The controller that owns a pod, from what the node knows: the pod's labels
//! (kubelet hands every pod label to the runtime with the sandbox, and the CRI
//! returns them) and the shape of the pod's name. The node cannot read
//! `ownerReferences`; what it derives from a name alone is marked `guessed`.
//!
//! The label keys and name shapes, from the Kubernetes sources:
//! - Deployment: the ReplicaSet is `<deployment>-<pod-template-hash>`
//!   (`pkg/controller/deployment/sync.go`, label `pod-template-hash` =
//!   `apps/v1` `DefaultDeploymentUniqueLabelKey`); the hash is
//!   `rand.SafeEncodeString` of a decimal uint32, so only the characters that
//!   digits map to, `456789bcdf`, at most 10 of them.
//! - Pods of a ReplicaSet, DaemonSet or Job: `generateName` `<owner>-` plus 5
//!   characters of `bcdfghjklmnpqrstvwxz2456789` (apimachinery
//!   `pkg/util/rand`; apiserver `storage/names/generate.go` cuts the prefix to
//!   58 characters first).
//! - StatefulSet: `<set>-<ordinal>` with the label
//!   `statefulset.kubernetes.io/pod-name` (`apps/v1` `StatefulSetPodNameLabel`).
//! - DaemonSet: `controller-revision-hash` (`apps/v1`
//!   `DefaultDaemonSetUniqueLabelKey`; a StatefulSet's pods carry it too).
//! - Job: `batch.kubernetes.io/job-name` and the legacy `job-name`
//!   (`batch/v1` `JobNameLabel`, `LegacyJobNameLabel`).
//! - CronJob: its Jobs are `<cronjob>-<scheduled minute since the epoch>`
//!   (`pkg/controller/cronjob/utils.go`: `getJobName`, `getTimeHashInMinutes`).

use oomtrace_event::{Owner, OwnerKind};

const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
const STATEFULSET_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_NAME: &str = "job-name";

/// The characters of `generateName`'s random suffix.
const RANDOM_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
/// The characters a `pod-template-hash` is made of (decimal digits through
/// `SafeEncodeString`).
const HASH_ALPHABET: &str = "456789bcdf";
/// The CronJob's minute stamps of 2015-01-01 (23 667 360) and later have 8 or
/// more digits; a Job name ending in fewer is taken as not a CronJob's.
const CRONJOB_MINUTE_MIN: u64 = 23_667_360;

/// The owner of pod `pod` from its labels (as the CRI returns them with the
/// sandbox) and its name. An empty `labels` means they are unknown (a
/// sandbox always carries kubelet's `io.kubernetes.*` labels): the owner is
/// then derived from the name alone and marked `guessed`.
pub fn owner(pod: &str, labels: &[(&str, &str)]) -> Owner {
    if labels.is_empty() {
        return from_name(pod);
    }
    let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let known = |kind, name: &str| Owner { kind, name: name.to_owned(), guessed: false };
    if let Some(job) = label(JOB_NAME).or_else(|| label(LEGACY_JOB_NAME)) {
        return match cronjob_of(job) {
            Some(cronjob) => known(OwnerKind::CronJob, cronjob),
            None => known(OwnerKind::Job, job),
        };
    }
    if label(STATEFULSET_POD_NAME).is_some()
        && let Some((set, _)) = pod.rsplit_once('-').filter(|(_, ordinal)| is_number(ordinal))
    {
        return known(OwnerKind::StatefulSet, set);
    }
    if let Some(hash) = label(POD_TEMPLATE_HASH) {
        let prefix = strip_random_suffix(pod).unwrap_or(pod);
        if let Some(deployment) = prefix.strip_suffix(hash).and_then(|p| p.strip_suffix('-')) {
            return known(OwnerKind::Deployment, deployment);
        }
        // The apiserver cut `<deployment>-<hash>-` to 58 characters and added
        // 5: whole if the cut fell in the hash, else only its start is known.
        let cut = pod.get(..pod.len().saturating_sub(5)).unwrap_or(pod);
        return match cut.rsplit_once('-') {
            Some((deployment, part)) if !deployment.is_empty() && !part.is_empty() && hash.starts_with(part) => {
                known(OwnerKind::Deployment, deployment)
            }
            _ => Owner { kind: OwnerKind::Deployment, name: cut.trim_end_matches('-').to_owned(), guessed: true },
        };
    }
    if label(CONTROLLER_REVISION_HASH).is_some()
        && let Some(daemonset) = strip_random_suffix(pod)
    {
        return known(OwnerKind::DaemonSet, daemonset);
    }
    known(OwnerKind::Pod, pod)
}

/// The owner from the name's shape alone.
fn from_name(pod: &str) -> Owner {
    let guess = |kind, name: &str| Owner { kind, name: name.to_owned(), guessed: true };
    if let Some(prefix) = strip_random_suffix(pod) {
        if let Some(cronjob) = cronjob_of(prefix) {
            return guess(OwnerKind::CronJob, cronjob);
        }
        if let Some((deployment, hash)) = prefix.rsplit_once('-')
            && !deployment.is_empty()
            && (1..=10).contains(&hash.len())
            && hash.chars().all(|c| HASH_ALPHABET.contains(c))
        {
            return guess(OwnerKind::Deployment, deployment);
        }
        // A DaemonSet's pod, or a Job's: DaemonSets are the likelier on a node.
        return guess(OwnerKind::DaemonSet, prefix);
    }
    if let Some((set, _)) = pod.rsplit_once('-').filter(|(set, ordinal)| !set.is_empty() && is_number(ordinal)) {
        return guess(OwnerKind::StatefulSet, set);
    }
    guess(OwnerKind::Pod, pod)
}

/// `<cronjob>` of a Job named `<cronjob>-<scheduled minute>`.
fn cronjob_of(job: &str) -> Option<&str> {
    let (cronjob, minute) = job.rsplit_once('-')?;
    let minute: u64 = minute.parse().ok().filter(|_| is_number(minute))?;
    (!cronjob.is_empty() && minute >= CRONJOB_MINUTE_MIN).then_some(cronjob)
}

/// `name` without `generateName`'s `-xxxxx`, when it ends so.
fn strip_random_suffix(name: &str) -> Option<&str> {
    let (prefix, suffix) = name.rsplit_once('-')?;
    (!prefix.is_empty() && suffix.len() == 5 && suffix.chars().all(|c| RANDOM_ALPHABET.contains(c))).then_some(prefix)
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(kind: OwnerKind, name: &str) -> Owner {
        Owner { kind, name: name.to_owned(), guessed: false }
    }

    fn guessed(kind: OwnerKind, name: &str) -> Owner {
        Owner { kind, name: name.to_owned(), guessed: true }
    }

    /// Label sets as kubelet passes them on a sandbox (the pod's labels plus
    /// kubelet's own), from real pods of each controller.
    #[test]
    fn owners_from_labels() {
        let kubelet = [("io.kubernetes.pod.namespace", "kube-system"), ("io.kubernetes.pod.uid", "0b8c")];
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            kubelet.iter().chain(extra).copied().collect()
        };
        // AKS's CoreDNS Deployment.
        let coredns = with(&[("k8s-app", "kube-dns"), ("pod-template-hash", "5d78c9869d")]);
        assert_eq!(owner("coredns-5d78c9869d-q2x7w", &coredns), known(OwnerKind::Deployment, "coredns"));
        assert_eq!(
            owner("api-7d9f8c6b5d-x2x4q", &with(&[("pod-template-hash", "7d9f8c6b5d")])),
            known(OwnerKind::Deployment, "api")
        );
        let db = with(&[
            ("statefulset.kubernetes.io/pod-name", "db-2"),
            ("apps.kubernetes.io/pod-index", "2"),
            ("controller-revision-hash", "db-5f8c9d7b6"),
        ]);
        assert_eq!(owner("db-2", &db), known(OwnerKind::StatefulSet, "db"));
        let ds = with(&[("controller-revision-hash", "6c9b7d5f4"), ("pod-template-generation", "3")]);
        assert_eq!(owner("node-exporter-8kq2m", &ds), known(OwnerKind::DaemonSet, "node-exporter"));
        // A CronJob's Job: both job-name labels, the minute stamp 28761120 (2024-09-06).
        let backup = with(&[
            ("batch.kubernetes.io/job-name", "backup-28761120"),
            ("job-name", "backup-28761120"),
            ("batch.kubernetes.io/controller-uid", "5e1c"),
        ]);
        assert_eq!(owner("backup-28761120-x7k2p", &backup), known(OwnerKind::CronJob, "backup"));
        // A Job made by hand, and one whose name ends in a small number.
        assert_eq!(owner("migrate-xk2f9", &with(&[("job-name", "migrate")])), known(OwnerKind::Job, "migrate"));
        assert_eq!(owner("etl-v2-7bd4c", &with(&[("job-name", "etl-v2")])), known(OwnerKind::Job, "etl-v2"));
        assert_eq!(owner("report-2-7bd4c", &with(&[("job-name", "report-2")])), known(OwnerKind::Job, "report-2"));
        // A bare pod, and a static pod (named `<manifest>-<node>`).
        assert_eq!(owner("debug", &with(&[("run", "debug")])), known(OwnerKind::Pod, "debug"));
        assert_eq!(
            owner("kube-proxy-aks-nodepool1-12345678-vmss000000", &kubelet),
            known(OwnerKind::Pod, "kube-proxy-aks-nodepool1-12345678-vmss000000")
        );
    }

    /// Long Deployment names: the apiserver cut `generateName`
    /// (`<deployment>-<hash>-`) to 58 characters before adding 5.
    #[test]
    fn cut_names_give_the_deployment_or_its_start() {
        let hash = "5d78c9869d";
        let pod_of = |deployment: &str| format!("{}x2x4q", &format!("{deployment}-{hash}-")[..58]);
        let labels = [("io.kubernetes.pod.uid", "1"), ("pod-template-hash", hash)];
        // The cut falls in the hash: the name is whole.
        let whole = "a-very-long-deployment-name-for-the-payment-gateway";
        assert_eq!(owner(&pod_of(whole), &labels), known(OwnerKind::Deployment, whole));
        // The cut falls in the name (here right after a dash): only its start is known.
        let longer = "an-even-longer-deployment-name-for-the-payment-gateway-of-the-shop";
        assert_eq!(owner(&pod_of(longer), &labels), guessed(OwnerKind::Deployment, longer[..58].trim_end_matches('-')));
    }

    #[test]
    fn owners_from_the_name_alone_are_guessed() {
        assert_eq!(owner("api-7d9f8c6b5d-x2x4q", &[]), guessed(OwnerKind::Deployment, "api"));
        assert_eq!(owner("metrics-server-5dfc656944-lqxqz", &[]), guessed(OwnerKind::Deployment, "metrics-server"));
        assert_eq!(owner("backup-28761120-x7k2p", &[]), guessed(OwnerKind::CronJob, "backup"));
        assert_eq!(owner("web-0", &[]), guessed(OwnerKind::StatefulSet, "web"));
        assert_eq!(owner("kube-proxy-8kq2m", &[]), guessed(OwnerKind::DaemonSet, "kube-proxy"));
        // "shell" has vowels: no generateName suffix.
        assert_eq!(owner("debug-shell", &[]), guessed(OwnerKind::Pod, "debug-shell"));
        assert_eq!(owner("debug", &[]), guessed(OwnerKind::Pod, "debug"));
        assert_eq!(owner("-0", &[]), guessed(OwnerKind::Pod, "-0"));
    }
}

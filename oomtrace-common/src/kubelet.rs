//! The labels and annotations kubelet puts on every pod sandbox and container
//! it creates through CRI: oomtrace reads them to name a container's pod, and
//! its tests put them on the pods they run.

/// Pod name label of sandboxes and containers.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Pod namespace label of sandboxes and containers.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Pod uid label of sandboxes and containers.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Container name label (containers only).
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// How often kubelet restarted the container (an annotation, not a label).
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";

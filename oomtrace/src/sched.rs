//! How the event thread asks the scheduler to be served promptly.
//!
//! A node that OOM-kills is often a node whose CPUs are busy: a wave of 200
//! hogs on 2 CPUs kept oomtrace runnable for hundreds of milliseconds per
//! wake-up while it needed ~8 ms of CPU in all (`cargo xtask bench --only
//! storm`, traced with the sched tracepoints). EEVDF (Linux 6.6+) gives a
//! waking task no credit for having slept, so a task that wakes for an event
//! waits behind every runnable task with an earlier virtual deadline. Since
//! Linux 6.12 a SCHED_OTHER thread may ask for a shorter slice
//! (`sched_attr.sched_runtime`, 0.1–100 ms, no privilege needed): its
//! deadlines come sooner, so it is picked sooner after a wake-up and may
//! preempt the running task. Its share of the CPU is unchanged (that is the
//! weight, i.e. the nice value, which stays as it is). Before 6.12 the field
//! means nothing to a SCHED_OTHER thread (before 6.6, CFS credited sleepers); the
//! slice was seen taken only on this host's 6.18 (`se.slice` in
//! /proc/<pid>/task/<tid>/sched), and the kernel's answer is logged at debug
//! level whatever it is.

/// The slice asked for: the kernel's minimum for a custom slice. The event
/// path needs well under this per wake-up.
pub const EVENT_THREAD_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` (include/uapi/linux/sched/types.h), its first version.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Asks for a `slice_ns` slice for the calling thread, keeping its policy
/// (SCHED_OTHER) and its nice value, which is passed back as it is
/// (`SCHED_FLAG_KEEP_PARAMS` would also skip the slice). The error is the
/// kernel's.
pub fn request_slice(slice_ns: u64) -> std::io::Result<()> {
    // getpriority(2) returns the nice value itself (-1 is a valid one).
    // SAFETY: no pointers; who 0 is the calling thread.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_nice: nice,
        sched_runtime: slice_ns,
        ..SchedAttr::default()
    };
    // SAFETY: sched_setattr(2) reads `size` bytes of a valid, initialised
    // sched_attr that lives across the call; pid 0 is the calling thread.
    let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Asks for the event thread's short slice; says at debug level what the
/// kernel answered (nothing depends on it but latency under CPU contention).
pub fn serve_events_promptly() {
    match request_slice(EVENT_THREAD_SLICE_NS) {
        Ok(()) => tracing::debug!(slice_ns = EVENT_THREAD_SLICE_NS, "event thread: short scheduler slice asked for"),
        Err(error) => tracing::debug!(%error, "event thread: the kernel refused a short scheduler slice"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attr_is_the_kernels_first_version() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 48, "SCHED_ATTR_SIZE_VER0");
    }
}

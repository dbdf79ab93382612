//! Why an attach method did not attach ([`AttachError`]), in the words
//! `oomtrace check` prints, and the verifier's verdict pulled from its log.

use std::sync::Arc;

use aya::programs::{KProbeError, ProgramError};

use crate::kernel::btf::BtfError;

/// Why one method did not attach. `oomtrace check` chooses its advice by
/// variant; the message is what it prints.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The eBPF object itself did not load (when one method is tried alone).
    #[error("loading the eBPF object: {0}")]
    LoadObject(Box<aya::EbpfError>),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    /// The kernel BTF could not be read (tp_btf and fentry resolve their
    /// targets in it); shared by every attach that needs it, hence the `Arc`.
    #[error("needs BTF: {0}")]
    NoBtf(Arc<BtfError>),
    /// The kernel BTF does not describe the tracepoint a tp_btf program is loaded on.
    #[error("BTF has no btf_trace_{0}")]
    TracepointNotInBtf(&'static str),
    #[error("BTF does not describe oom_kill_process")]
    NoOomKillProcessInBtf,
    /// BTF was read but does not give the task_struct offsets tp_btf reads at.
    #[error("BTF lacks task_struct offsets")]
    TaskOffsetsNotInBtf,
    /// The reclaim counter finds the charging task's memory cgroups at offsets only BTF gives.
    #[error("needs the task's memory cgroup offsets (css_set, cgroup, kernfs_node) from BTF")]
    NoCgroupOffsets,
    /// raw_tp reads the victim's task_struct at offsets only BTF gives.
    #[error("needs task_struct offsets from BTF")]
    NoTaskOffsets,
    /// The tracepoint's `format` file could not be read (no tracefs, or no such tracepoint).
    #[error("the {0} format could not be read")]
    NoTracepointFormat(&'static str),
    /// The kernel answered EPERM (loading or attaching): lockdown or a security policy.
    #[error("{}", describe(.0))]
    Refused(ProgramError),
    /// No kprobe PMU (`/sys/bus/event_source/devices/kprobe/type` is missing):
    /// the kernel is built without CONFIG_KPROBES.
    #[error("{}", describe(.0))]
    NoKprobes(ProgramError),
    /// Any other failure to load or attach the program.
    #[error("{}", describe(.0))]
    Program(ProgramError),
}

impl AttachError {
    /// Whether the kernel answered one of `errnos` (a program load or attach).
    pub fn kernel_answered(&self, errnos: &[i32]) -> bool {
        match self {
            Self::Refused(error) | Self::NoKprobes(error) | Self::Program(error) => answered(error, errnos),
            _ => false,
        }
    }
}

impl From<ProgramError> for AttachError {
    fn from(error: ProgramError) -> Self {
        if let ProgramError::LoadError { verifier_log, .. } = &error {
            tracing::debug!(%verifier_log, "verifier log");
        }
        let no_kprobe_pmu = matches!(
            &error,
            ProgramError::KProbeError(KProbeError::FileError { io_error, .. })
                if io_error.kind() == std::io::ErrorKind::NotFound
        );
        if refused_by_kernel(&error) {
            Self::Refused(error)
        } else if no_kprobe_pmu {
            Self::NoKprobes(error)
        } else {
            Self::Program(error)
        }
    }
}

/// Whether the kernel answered EPERM anywhere in `error`'s chain (a program
/// load, an attach, a map creation).
pub fn refused_by_kernel(error: &(dyn std::error::Error + 'static)) -> bool {
    answered(error, &[libc::EPERM])
}

/// Whether the kernel answered one of `errnos` anywhere in `error`'s chain.
fn answered(error: &(dyn std::error::Error + 'static), errnos: &[i32]) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let errno = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .or_else(|| error.downcast_ref::<aya::sys::SyscallError>().and_then(|e| e.io_error.raw_os_error()));
        if errno.is_some_and(|errno| errnos.contains(&errno)) {
            return true;
        }
        next = error.source();
    }
    false
}

/// An aya error with its causes, on one line, and for a program the verifier
/// rejected, the verifier's verdict (the whole log stays at debug level).
fn describe(error: &ProgramError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let mut text = text.lines().next().unwrap_or_default().to_owned();
    if let ProgramError::LoadError { verifier_log, .. } = error
        && let Some(verdict) = verifier_verdict(&verifier_log.to_string())
        && !text.ends_with(verdict)
    {
        text.push_str(" ... ");
        text.push_str(verdict);
    }
    text
}

/// The line of a verifier log that says why it rejected the program: the last
/// one before its statistics.
fn verifier_verdict(log: &str) -> Option<&str> {
    const STATISTICS: [&str; 4] = ["processed ", "verification time", "stack depth", "-- END PROG LOAD LOG"];
    log.lines().rev().map(str::trim).find(|line| !line.is_empty() && !STATISTICS.iter().any(|s| line.starts_with(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_the_last_line_before_the_statistics() {
        let log = "func#0 @0\narg#0 type is not a struct\n0: (bf) r6 = r1\n\
                   R1 unbounded memory access, make sure to bounds check any such access\n\
                   processed 4561 insns (limit 1000000) max_states_per_insn 4 total_states 80\n";
        assert_eq!(
            verifier_verdict(log),
            Some("R1 unbounded memory access, make sure to bounds check any such access")
        );
        assert_eq!(verifier_verdict("\n"), None);
    }

    fn os_error(code: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code)
    }

    #[test]
    fn a_refused_perf_event_open_is_recognised_in_the_chain() {
        let refused = |code| {
            AttachError::from(ProgramError::from(aya::sys::SyscallError {
                call: "perf_event_open",
                io_error: os_error(code),
            }))
        };
        assert!(refused(libc::EACCES).kernel_answered(&[libc::EACCES, libc::EPERM]));
        assert!(refused(libc::EPERM).kernel_answered(&[libc::EACCES, libc::EPERM]));
        assert!(!refused(libc::EINVAL).kernel_answered(&[libc::EACCES, libc::EPERM]));
        assert!(!AttachError::NoTaskOffsets.kernel_answered(&[libc::EACCES]));
    }

    #[test]
    fn errors_are_classified_by_type() {
        let syscall =
            |code| ProgramError::from(aya::sys::SyscallError { call: "bpf_prog_load", io_error: os_error(code) });
        assert!(matches!(AttachError::from(syscall(libc::EPERM)), AttachError::Refused(_)));
        assert!(matches!(AttachError::from(syscall(libc::EINVAL)), AttachError::Program(_)));
        let pmu = KProbeError::FileError {
            filename: "/sys/bus/event_source/devices/kprobe/type".into(),
            io_error: os_error(libc::ENOENT),
        };
        let error = AttachError::from(ProgramError::from(pmu));
        assert!(matches!(error, AttachError::NoKprobes(_)));
        // The message keeps the causes, on one line.
        assert_eq!(
            error.to_string(),
            "`/sys/bus/event_source/devices/kprobe/type`: No such file or directory (os error 2)"
        );
    }
}

//! The attach fallback chains ([`AttachPlan::chain`]):
//! - victim (required): tp_btf -> raw_tp -> tracepoint `oom/mark_victim`
//! - context (optional): fentry -> kprobe `oom_kill_process` -> none
//! - kill confirmation (optional): tracepoint `signal/signal_generate`

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, KProbe, KProbeError, ProgramError, RawTracePoint, TracePoint},
};

use super::{AttachFailure, AttachPlan, Attached, Method, Role};
use crate::kernel::KernelFacts;

/// Why one method did not attach. `oomtrace check` chooses its advice by
/// variant; the message is what it prints.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The eBPF object itself did not load (when one method is tried alone).
    #[error("loading the eBPF object: {0}")]
    LoadObject(Box<aya::EbpfError>),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    /// The kernel BTF could not be read (tp_btf and fentry resolve their targets in it).
    #[error("needs BTF: {0}")]
    NoBtf(String),
    #[error("BTF has no btf_trace_mark_victim")]
    NoMarkVictimInBtf,
    #[error("BTF does not describe oom_kill_process")]
    NoOomKillProcessInBtf,
    /// BTF was read but does not give the task_struct offsets tp_btf reads at.
    #[error("BTF lacks task_struct offsets")]
    TaskOffsetsNotInBtf,
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
    let mut next = Some(error);
    while let Some(error) = next {
        if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.raw_os_error() == Some(libc::EPERM)) {
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

/// Attaches what `plan` asks for, falling back along the chains. Never fails:
/// what did not attach is listed in `failures`.
pub fn attach_all(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>, plan: &AttachPlan) -> Attached {
    let mut attached = Attached::default();
    for role in Role::ALL {
        for &method in plan.chain(role) {
            match attach_one(ebpf, facts, btf, method) {
                Ok(()) => {
                    tracing::debug!(program = method.target(), "attached");
                    attached.methods.push(method);
                    break;
                }
                Err(error) => {
                    tracing::debug!(program = method.target(), %error, "could not attach");
                    attached.failures.push(AttachFailure { method, error });
                }
            }
        }
    }
    attached
}

/// Loads the object afresh and attaches only `method` (then detaches): what
/// `oomtrace check` reports.
pub fn try_method(
    object: &[u8],
    facts: &KernelFacts,
    btf: &Result<Btf, String>,
    method: Method,
) -> Result<(), AttachError> {
    let mut ebpf = aya::EbpfLoader::new()
        .override_global("LAYOUT", &facts.layout, true)
        .load(object)
        .map_err(|e| AttachError::LoadObject(Box::new(e)))?;
    attach_one(&mut ebpf, facts, btf, method)
}

/// aya's view of the kernel BTF (it resolves tp_btf/fentry targets), parsed
/// once and shared by the loader and every attach.
pub fn kernel_btf(facts: &KernelFacts) -> Result<Btf, String> {
    match &facts.btf {
        Ok(_) => Btf::from_sys_fs().map_err(|e| e.to_string()),
        Err(why) => Err(why.clone()),
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    facts: &KernelFacts,
    btf: &Result<Btf, String>,
    method: Method,
) -> Result<(), AttachError> {
    match method {
        Method::TpBtf => attach_tp_btf(ebpf, facts, btf),
        Method::RawTp => attach_raw_tp(ebpf, facts),
        Method::Tracepoint => {
            if facts.layout.tp_victim_pid == oomtrace_common::ABSENT {
                return Err(AttachError::NoTracepointFormat("oom/mark_victim"));
            }
            attach_tracepoint(ebpf, "mark_victim_tp", "oom", "mark_victim")
        }
        Method::Fentry => attach_fentry(ebpf, facts, btf),
        Method::Kprobe => attach_kprobe(ebpf),
        Method::SignalGenerate => {
            if !facts.signal_generate_available {
                return Err(AttachError::NoTracepointFormat("signal/signal_generate"));
            }
            attach_tracepoint(ebpf, "signal_generate", "signal", "signal_generate")
        }
    }
}

/// Attaches a loaded program; on failure unloads it (rather than keeping it
/// loaded until exit).
macro_rules! attach_or_unload {
    ($prog:ident, $attach:expr) => {
        match $attach {
            Ok(_) => Ok(()),
            Err(error) => {
                let _ = $prog.unload();
                Err(AttachError::from(error))
            }
        }
    };
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, AttachError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(AttachError::MissingProgram(name))?;
    Ok(program.try_into()?)
}

fn attach_tp_btf(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>) -> Result<(), AttachError> {
    let btf = btf.as_ref().map_err(|why| AttachError::NoBtf(why.clone()))?;
    if !facts.btf.as_ref().is_ok_and(|b| b.has_mark_victim_tracepoint) {
        return Err(AttachError::NoMarkVictimInBtf);
    }
    if facts.layout.task_pid == oomtrace_common::ABSENT {
        return Err(AttachError::TaskOffsetsNotInBtf);
    }
    let prog: &mut BtfTracePoint = program(ebpf, "mark_victim_btf")?;
    prog.load("mark_victim", btf)?;
    attach_or_unload!(prog, prog.attach())
}

fn attach_raw_tp(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), AttachError> {
    if facts.layout.task_pid == oomtrace_common::ABSENT {
        return Err(AttachError::NoTaskOffsets);
    }
    let prog: &mut RawTracePoint = program(ebpf, "mark_victim_raw")?;
    prog.load()?;
    attach_or_unload!(prog, prog.attach("mark_victim"))
}

fn attach_tracepoint(ebpf: &mut Ebpf, name: &'static str, category: &str, event: &str) -> Result<(), AttachError> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load()?;
    attach_or_unload!(prog, prog.attach(category, event))
}

fn attach_fentry(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>) -> Result<(), AttachError> {
    let btf = btf.as_ref().map_err(|why| AttachError::NoBtf(why.clone()))?;
    if !facts.btf.as_ref().is_ok_and(|b| b.has_oom_kill_process) {
        return Err(AttachError::NoOomKillProcessInBtf);
    }
    let prog: &mut FEntry = program(ebpf, "oom_kill_process_fentry")?;
    prog.load("oom_kill_process", btf)?;
    attach_or_unload!(prog, prog.attach())
}

fn attach_kprobe(ebpf: &mut Ebpf) -> Result<(), AttachError> {
    let prog: &mut KProbe = program(ebpf, "oom_kill_process_kprobe")?;
    prog.load()?;
    attach_or_unload!(prog, prog.attach("oom_kill_process", 0))
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

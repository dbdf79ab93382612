//! The attach fallback chains.
//! - victim (required): tp_btf -> raw_tp -> tracepoint `oom/mark_victim`
//! - context (optional): fentry -> kprobe `oom_kill_process` -> none
//! - kill confirmation (optional): tracepoint `signal/signal_generate`

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, KProbe, ProgramError, RawTracePoint, TracePoint},
};

use crate::kernel::KernelFacts;

/// Which program reports victims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum VictimProbe {
    /// tp_btf, then raw_tp, then the classic tracepoint.
    #[default]
    Auto,
    TpBtf,
    RawTp,
    Tracepoint,
}

/// Which program reads the `oom_control` context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ContextProbe {
    /// fentry, then kprobe, then none.
    #[default]
    Auto,
    Fentry,
    Kprobe,
    /// Do not read the context: scope and OOMing memcg are then inferred.
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachPlan {
    pub victim: VictimProbe,
    pub context: ContextProbe,
    /// Attach `signal/signal_generate` to confirm kills.
    pub confirm_kills: bool,
}

impl AttachPlan {
    /// The context attach point the user asked for explicitly (then it must attach).
    pub fn requested_context_target(&self) -> Option<&'static str> {
        match self.context {
            ContextProbe::Fentry => Some(Method::Fentry.target()),
            ContextProbe::Kprobe => Some(Method::Kprobe.target()),
            ContextProbe::Auto | ContextProbe::None => None,
        }
    }
}

/// One attach attempt that failed.
#[derive(Clone, Debug)]
pub struct AttachFailure {
    /// The attach point, e.g. `fentry:oom_kill_process`.
    pub program: &'static str,
    pub error: String,
}

/// What ended up attached.
#[derive(Clone, Debug, Default)]
pub struct Attached {
    /// "tp_btf", "raw_tp" or "tracepoint".
    pub victim: Option<&'static str>,
    /// "fentry" or "kprobe".
    pub context: Option<&'static str>,
    pub kill_signal: bool,
    pub failures: Vec<AttachFailure>,
}

impl Attached {
    pub fn summary(&self) -> String {
        format!(
            "victim={} context={} kill_confirmation={}",
            self.victim.unwrap_or("none"),
            self.context.unwrap_or("none"),
            if self.kill_signal { "signal_generate" } else { "none" }
        )
    }
}

/// One attach method of one program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    TpBtf,
    RawTp,
    Tracepoint,
    Fentry,
    Kprobe,
    SignalGenerate,
}

impl Method {
    pub const ALL: [Method; 6] =
        [Self::TpBtf, Self::RawTp, Self::Tracepoint, Self::Fentry, Self::Kprobe, Self::SignalGenerate];

    /// Short name used in logs and `Attached`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TpBtf => "tp_btf",
            Self::RawTp => "raw_tp",
            Self::Tracepoint => "tracepoint",
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::SignalGenerate => "signal_generate",
        }
    }

    /// The attach point, as users know it.
    pub fn target(self) -> &'static str {
        match self {
            Self::TpBtf => "tp_btf:mark_victim",
            Self::RawTp => "raw_tp:mark_victim",
            Self::Tracepoint => "tracepoint:oom/mark_victim",
            Self::Fentry => "fentry:oom_kill_process",
            Self::Kprobe => "kprobe:oom_kill_process",
            Self::SignalGenerate => "tracepoint:signal/signal_generate",
        }
    }
}

/// Attaches what `plan` asks for, falling back along the chains. Never fails:
/// what did not attach is listed in `failures`.
pub fn attach_all(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>, plan: &AttachPlan) -> Attached {
    let mut attached = Attached::default();
    let mut try_attach = |method: Method| match attach_one(ebpf, facts, btf, method) {
        Ok(()) => {
            tracing::debug!(program = method.target(), "attached");
            true
        }
        Err(error) => {
            tracing::debug!(program = method.target(), %error, "could not attach");
            attached.failures.push(AttachFailure { program: method.target(), error });
            false
        }
    };

    let victims: &[Method] = match plan.victim {
        VictimProbe::Auto => &[Method::TpBtf, Method::RawTp, Method::Tracepoint],
        VictimProbe::TpBtf => &[Method::TpBtf],
        VictimProbe::RawTp => &[Method::RawTp],
        VictimProbe::Tracepoint => &[Method::Tracepoint],
    };
    let victim = victims.iter().copied().find(|&m| try_attach(m));

    let contexts: &[Method] = match plan.context {
        ContextProbe::Auto => &[Method::Fentry, Method::Kprobe],
        ContextProbe::Fentry => &[Method::Fentry],
        ContextProbe::Kprobe => &[Method::Kprobe],
        ContextProbe::None => &[],
    };
    let context = contexts.iter().copied().find(|&m| try_attach(m));
    let kill_signal = plan.confirm_kills && try_attach(Method::SignalGenerate);

    attached.victim = victim.map(Method::name);
    attached.context = context.map(Method::name);
    attached.kill_signal = kill_signal;
    attached
}

/// Loads the object afresh and attaches only `method` (then detaches): what
/// `oomtrace check` reports.
pub fn try_method(object: &[u8], facts: &KernelFacts, btf: &Result<Btf, String>, method: Method) -> Result<(), String> {
    let mut ebpf = aya::EbpfLoader::new()
        .override_global("OFFSETS", &facts.offsets, true)
        .load(object)
        .map_err(|e| format!("loading the eBPF object: {e}"))?;
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

fn attach_one(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>, method: Method) -> Result<(), String> {
    match method {
        Method::TpBtf => attach_tp_btf(ebpf, facts, btf),
        Method::RawTp => attach_raw_tp(ebpf, facts),
        Method::Tracepoint => {
            if facts.offsets.tp_victim_pid == oomtrace_common::ABSENT {
                return Err("the oom/mark_victim format could not be read".to_owned());
            }
            attach_tracepoint(ebpf, "mark_victim_tp", "oom", "mark_victim")
        }
        Method::Fentry => attach_fentry(ebpf, facts, btf),
        Method::Kprobe => attach_kprobe(ebpf),
        Method::SignalGenerate => {
            if !facts.signal_generate_available {
                return Err("the signal/signal_generate format could not be read".to_owned());
            }
            attach_tracepoint(ebpf, "signal_generate", "signal", "signal_generate")
        }
    }
}

/// Attaches a loaded program; on failure unloads it (rather than keeping it
/// loaded until exit) and describes the error.
macro_rules! attach_or_unload {
    ($prog:ident, $attach:expr) => {
        match $attach {
            Ok(_) => Ok(()),
            Err(error) => {
                let _ = $prog.unload();
                Err(describe(error))
            }
        }
    };
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the eBPF object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())
}

/// Formats an aya error with its causes (the verifier log stays at debug level).
fn describe(error: ProgramError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let ProgramError::LoadError { verifier_log, .. } = &error {
        tracing::debug!(%verifier_log, "verifier log");
    }
    text.lines().next().unwrap_or_default().to_owned()
}

fn attach_tp_btf(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>) -> Result<(), String> {
    let btf = btf.as_ref().map_err(|why| format!("needs BTF: {why}"))?;
    if !facts.btf.as_ref().is_ok_and(|b| b.has_mark_victim_tracepoint) {
        return Err("BTF has no btf_trace_mark_victim".to_owned());
    }
    if facts.offsets.task_pid == oomtrace_common::ABSENT {
        return Err("BTF lacks task_struct offsets".to_owned());
    }
    let prog: &mut BtfTracePoint = program(ebpf, "mark_victim_btf")?;
    prog.load("mark_victim", btf).map_err(describe)?;
    attach_or_unload!(prog, prog.attach())
}

fn attach_raw_tp(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), String> {
    if facts.offsets.task_pid == oomtrace_common::ABSENT {
        return Err("needs task_struct offsets from BTF".to_owned());
    }
    let prog: &mut RawTracePoint = program(ebpf, "mark_victim_raw")?;
    prog.load().map_err(describe)?;
    attach_or_unload!(prog, prog.attach("mark_victim"))
}

fn attach_tracepoint(ebpf: &mut Ebpf, name: &str, category: &str, event: &str) -> Result<(), String> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load().map_err(describe)?;
    attach_or_unload!(prog, prog.attach(category, event))
}

fn attach_fentry(ebpf: &mut Ebpf, facts: &KernelFacts, btf: &Result<Btf, String>) -> Result<(), String> {
    let btf = btf.as_ref().map_err(|why| format!("needs BTF: {why}"))?;
    if !facts.btf.as_ref().is_ok_and(|b| b.has_oom_kill_process) {
        return Err("BTF does not describe oom_kill_process".to_owned());
    }
    let prog: &mut FEntry = program(ebpf, "oom_kill_process_fentry")?;
    prog.load("oom_kill_process", btf).map_err(describe)?;
    attach_or_unload!(prog, prog.attach())
}

fn attach_kprobe(ebpf: &mut Ebpf) -> Result<(), String> {
    let prog: &mut KProbe = program(ebpf, "oom_kill_process_kprobe")?;
    prog.load().map_err(describe)?;
    attach_or_unload!(prog, prog.attach("oom_kill_process", 0))
}

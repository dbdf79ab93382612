//! The attach fallback chains ([`AttachPlan::chain`]):
//! - victim (required): tp_btf -> raw_tp -> tracepoint `oom/mark_victim`
//! - context (optional): fentry -> kprobe `oom_kill_process` -> none
//! - kill confirmation (optional): tp_btf -> raw_tp -> tracepoint `signal_generate`
//! - reclaim (optional, with warnings): tp_btf -> raw_tp `mm_vmscan_memcg_reclaim_end`

use std::sync::Arc;

use aya::{
    Ebpf,
    programs::{BtfTracePoint, FEntry, KProbe, ProgramError, RawTracePoint, TracePoint},
};

use super::{AttachFailure, AttachPlan, Attached, Method, Role, error::AttachError};
use crate::kernel::{
    BtfFacts, KernelFacts,
    hooks::{self, Tracepoint},
};

/// Attaches what `plan` asks for, falling back along the chains. Never fails:
/// what did not attach is listed in `failures`.
pub fn attach_all(ebpf: &mut Ebpf, facts: &KernelFacts, plan: &AttachPlan) -> Attached {
    let mut attached = Attached::default();
    for role in Role::ALL {
        for &method in plan.chain(role) {
            match attach_one(ebpf, facts, method) {
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
/// With `log` on, the programs are loaded with their log sites live: what
/// `--ebpf-log` will run.
pub fn try_method(object: &[u8], facts: &KernelFacts, method: Method, log: super::EbpfLog) -> Result<(), AttachError> {
    let mut ebpf = super::loader(facts, log).load(object).map_err(|e| AttachError::LoadObject(Box::new(e)))?;
    attach_one(&mut ebpf, facts, method)
}

/// What BTF says about attach points, or why there is no BTF.
fn btf_facts(facts: &KernelFacts) -> Result<&BtfFacts, AttachError> {
    facts.btf.as_ref().map_err(|why| AttachError::NoBtf(Arc::clone(why)))
}

fn attach_one(ebpf: &mut Ebpf, facts: &KernelFacts, method: Method) -> Result<(), AttachError> {
    match method {
        Method::TpBtf => attach_tp_btf(ebpf, facts),
        Method::RawTp => attach_raw_tp(ebpf, facts),
        Method::Tracepoint => {
            if facts.layout.tp_victim_pid == oomtrace_common::ABSENT {
                return Err(AttachError::NoTracepointFormat(hooks::MARK_VICTIM.path()));
            }
            attach_tracepoint(ebpf, "mark_victim_tp", hooks::MARK_VICTIM)
        }
        Method::Fentry => attach_fentry(ebpf, facts),
        Method::Kprobe => attach_kprobe(ebpf),
        Method::SignalGenerate => {
            if !facts.signal_generate_available {
                return Err(AttachError::NoTracepointFormat(hooks::SIGNAL_GENERATE.path()));
            }
            attach_tracepoint(ebpf, "signal_generate", hooks::SIGNAL_GENERATE)
        }
        Method::SignalTpBtf => {
            let btf = btf_facts(facts)?;
            if facts.layout.task_pid == oomtrace_common::ABSENT {
                return Err(AttachError::TaskOffsetsNotInBtf);
            }
            attach_btf_tracepoint(ebpf, btf, "signal_generate_btf", hooks::SIGNAL_GENERATE)
        }
        Method::SignalRawTp => {
            if facts.layout.task_pid == oomtrace_common::ABSENT {
                return Err(AttachError::NoTaskOffsets);
            }
            attach_raw_tracepoint(ebpf, "signal_generate_raw", hooks::SIGNAL_GENERATE)
        }
        Method::ReclaimTpBtf => {
            let btf = btf_facts(facts)?;
            if !has_cgroup_offsets(facts) {
                return Err(AttachError::NoCgroupOffsets);
            }
            attach_btf_tracepoint(ebpf, btf, "memcg_reclaim_end_btf", hooks::MEMCG_RECLAIM_END)
        }
        Method::ReclaimRawTp => {
            if !has_cgroup_offsets(facts) {
                return Err(AttachError::NoCgroupOffsets);
            }
            attach_raw_tracepoint(ebpf, "memcg_reclaim_end_raw", hooks::MEMCG_RECLAIM_END)
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

fn attach_tp_btf(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), AttachError> {
    let btf = btf_facts(facts)?;
    if facts.layout.task_pid == oomtrace_common::ABSENT {
        return Err(AttachError::TaskOffsetsNotInBtf);
    }
    attach_btf_tracepoint(ebpf, btf, "mark_victim_btf", hooks::MARK_VICTIM)
}

fn attach_raw_tp(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), AttachError> {
    if facts.layout.task_pid == oomtrace_common::ABSENT {
        return Err(AttachError::NoTaskOffsets);
    }
    attach_raw_tracepoint(ebpf, "mark_victim_raw", hooks::MARK_VICTIM)
}

fn attach_tracepoint(ebpf: &mut Ebpf, name: &'static str, tracepoint: Tracepoint) -> Result<(), AttachError> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load()?;
    attach_or_unload!(prog, prog.attach(tracepoint.category(), tracepoint.event()))
}

fn attach_fentry(ebpf: &mut Ebpf, facts: &KernelFacts) -> Result<(), AttachError> {
    let target = btf_facts(facts)?.function(hooks::OOM_KILL_PROCESS).ok_or(AttachError::NoOomKillProcessInBtf)?;
    let prog: &mut FEntry = program(ebpf, "oom_kill_process_fentry")?;
    prog.load_by_btf_id(target.id)?;
    attach_or_unload!(prog, prog.attach())
}

fn attach_kprobe(ebpf: &mut Ebpf) -> Result<(), AttachError> {
    let prog: &mut KProbe = program(ebpf, "oom_kill_process_kprobe")?;
    prog.load()?;
    attach_or_unload!(prog, prog.attach(hooks::OOM_KILL_PROCESS, 0))
}

/// A tp_btf program on `tracepoint`, loaded by the kernel type id of its
/// `btf_trace_<event>` typedef: aya's own `load` would want the whole kernel
/// BTF parsed into its types (~8 MiB resident here, for one id).
fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &BtfFacts,
    name: &'static str,
    tracepoint: Tracepoint,
) -> Result<(), AttachError> {
    let target = btf.tracepoint(tracepoint).ok_or(AttachError::TracepointNotInBtf(tracepoint.event()))?;
    let prog: &mut BtfTracePoint = program(ebpf, name)?;
    prog.load_by_btf_id(target.id)?;
    attach_or_unload!(prog, prog.attach())
}

/// A raw_tp program on `tracepoint`.
fn attach_raw_tracepoint(ebpf: &mut Ebpf, name: &'static str, tracepoint: Tracepoint) -> Result<(), AttachError> {
    let prog: &mut RawTracePoint = program(ebpf, name)?;
    prog.load()?;
    attach_or_unload!(prog, prog.attach(tracepoint.event()))
}

/// Whether the reclaim counter can find a task's memory cgroups and their ids.
fn has_cgroup_offsets(facts: &KernelFacts) -> bool {
    let layout = &facts.layout;
    [
        layout.task_cgroups,
        layout.css_set_subsys,
        layout.memory_cgrp_id,
        layout.css_cgroup,
        layout.cgroup_kn,
        layout.kn_id,
    ]
    .iter()
    .all(|&offset| offset != oomtrace_common::ABSENT)
}

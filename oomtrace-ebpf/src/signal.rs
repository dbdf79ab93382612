//! `signal:signal_generate`: remembers the SIGKILL a task sends from kernel
//! context (`SEND_SIG_PRIV`, si_code SI_KERNEL). `__oom_kill_process` sends it
//! just before `mark_oom_victim`, so the victim record can say whether the
//! kernel really killed (an already exiting victim is marked but not killed).
//!
//! Three ways in, the first two without perf_event_open (which Debian's and
//! Ubuntu's kernels refuse without CAP_SYS_ADMIN): tp_btf and raw_tp get the
//! tracepoint's arguments `(int sig, struct kernel_siginfo *info, struct
//! task_struct *task, int group, int result)`; the classic tracepoint gets
//! its record, read at offsets from its format file.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::{debug, warn};
use oomtrace_common::{ABSENT, RawKillSignal, source};

use crate::{KILL_SIGNALS, kernel::read, layout};

const SIGKILL: i32 = 9;
const SI_KERNEL: i32 = 0x80;
/// `SEND_SIG_PRIV`: the `info` pointer the kernel passes for its own signals
/// (the OOM killer's among them); the tracepoint records it as SI_KERNEL.
const SEND_SIG_PRIV: u64 = 1;

#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate_btf(ctx: BtfTracePointContext) -> i32 {
    let (sig, info, task): (i32, u64, u64) = (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    from_arguments(sig, info, task, source::SIGNAL_TP_BTF);
    0
}

#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_raw(ctx: RawTracePointContext) -> i32 {
    let (sig, info, task): (i32, u64, u64) = (ctx.arg::<u64>(0) as i32, ctx.arg(1), ctx.arg(2));
    from_arguments(sig, info, task, source::SIGNAL_RAW_TP);
    0
}

#[inline(always)]
fn from_arguments(sig: i32, info: u64, task: u64, source: u32) {
    if sig != SIGKILL || info != SEND_SIG_PRIV {
        return;
    }
    let Some(target_pid) = read::<u32>(task, layout!(task_pid)) else {
        debug!(&(), "signal_generate: SIGKILL target's task->pid unreadable");
        return;
    };
    remember(target_pid, source);
}

#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    let sig_off = layout!(tp_signal_sig);
    let code_off = layout!(tp_signal_code);
    let pid_off = layout!(tp_signal_pid);
    if sig_off == ABSENT || pid_off == ABSENT {
        return 0;
    }
    // SAFETY: offsets come from this tracepoint's format file; read_at is a
    // fault-safe probe read.
    let sig = unsafe { ctx.read_at::<i32>(sig_off as usize) }.unwrap_or(0);
    if sig != SIGKILL {
        return 0;
    }
    if code_off != ABSENT {
        // SAFETY: as above.
        let code = unsafe { ctx.read_at::<i32>(code_off as usize) }.unwrap_or(0);
        if code != SI_KERNEL {
            return 0;
        }
    }
    // SAFETY: the offset comes from this tracepoint's format file; read_at is
    // a fault-safe probe read.
    let target_pid = unsafe { ctx.read_at::<u32>(pid_off as usize) }.unwrap_or(0);
    remember(target_pid, source::SIGNAL);
    0
}

#[inline(always)]
fn remember(target_pid: u32, source: u32) {
    let signal = RawKillSignal {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        target_pid,
        source,
    };
    let trigger = bpf_get_current_pid_tgid();
    if let Err(error) = KILL_SIGNALS.insert(trigger, signal, 0) {
        warn!(&(), "signal_generate: SIGKILL of pid {} by {} not stored (error {})", target_pid, trigger as u32, error);
    }
}

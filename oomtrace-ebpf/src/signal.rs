//! `signal:signal_generate`: remembers the SIGKILL a task sends from kernel
//! context (`SEND_SIG_PRIV`, si_code SI_KERNEL). `__oom_kill_process` sends it
//! just before `mark_oom_victim`, so the victim record can say whether the
//! kernel really killed (an already exiting victim is marked but not killed).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use oomtrace_common::{ABSENT, RawKillSignal};

use crate::{KILL_SIGNALS, layout};

const SIGKILL: i32 = 9;
const SI_KERNEL: i32 = 0x80;

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
    let signal = RawKillSignal {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        // SAFETY: the offset comes from this tracepoint's format file;
        // read_at is a fault-safe probe read.
        target_pid: unsafe { ctx.read_at::<u32>(pid_off as usize) }.unwrap_or(0),
        _pad: 0,
    };
    let _ = KILL_SIGNALS.insert(bpf_get_current_pid_tgid(), signal, 0);
    0
}

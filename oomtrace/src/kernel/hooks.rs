//! The kernel places oomtrace hooks, each named once: the tracepoints (as
//! tracefs names them, `category/event`) and the kernel function. probe/
//! attaches to them, kernel/ reads their formats and BTF, and
//! `probe::Method::target` shows them to users.

/// A tracepoint, `events/<category>/<event>` in tracefs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracepoint(&'static str);

impl Tracepoint {
    /// `category/event`, as tracefs' directory and error messages show it.
    pub fn path(self) -> &'static str {
        self.0
    }

    pub fn category(self) -> &'static str {
        self.0.split_once('/').map_or(self.0, |(category, _)| category)
    }

    pub fn event(self) -> &'static str {
        self.0.split_once('/').map_or(self.0, |(_, event)| event)
    }
}

/// `oom:mark_victim`: every OOM victim (also BTF's `btf_trace_mark_victim`
/// for tp_btf and the raw tracepoint).
pub const MARK_VICTIM: Tracepoint = Tracepoint("oom/mark_victim");
/// `signal:signal_generate`: the SIGKILL that confirms a kill.
pub const SIGNAL_GENERATE: Tracepoint = Tracepoint("signal/signal_generate");
/// `vmscan:mm_vmscan_memcg_reclaim_end`: a run of memcg limit reclaim ended
/// (tp_btf / raw tracepoint only).
pub const MEMCG_RECLAIM_END: Tracepoint = Tracepoint("vmscan/mm_vmscan_memcg_reclaim_end");
/// The kernel function that runs one OOM kill (fentry / kprobe).
pub const OOM_KILL_PROCESS: &str = "oom_kill_process";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_splits_into_category_and_event() {
        assert_eq!((MARK_VICTIM.category(), MARK_VICTIM.event()), ("oom", "mark_victim"));
        assert_eq!((SIGNAL_GENERATE.category(), SIGNAL_GENERATE.event()), ("signal", "signal_generate"));
    }
}

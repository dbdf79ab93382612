//! The attach methods, what each is for (its [`Role`]), what the user asked
//! for ([`AttachPlan`]) and what ended up attached ([`Attached`]).

use oomtrace_common::source;

use super::error::AttachError;

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

/// What an attached program is for; its name (logs, the `role` label of
/// `oomtrace_probe_attached`) is the variant's in snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Reports each victim (`mark_victim`); the only required role.
    Victim,
    /// Reads the `oom_control` context in `oom_kill_process`.
    Context,
    /// Confirms the kill (the SIGKILL seen by `signal_generate`).
    KillConfirmation,
    /// Counts memcg limit reclaim per cgroup for the warnings before a kill
    /// (`mm_vmscan_memcg_reclaim_end`); without it warnings come from
    /// polling alone.
    Reclaim,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Victim, Self::Context, Self::KillConfirmation, Self::Reclaim];

    /// What events lack when no method of this role attaches.
    pub fn loss(self) -> &'static str {
        match self {
            Self::Victim => "no OOM kill can be traced",
            Self::Context => {
                "scope and the OOMing memcg are inferred from page counters; no oom_id, gfp_mask, order, \
                 totalpages or chosen_points"
            }
            Self::KillConfirmation => "events cannot say whether the kernel killed (`killed` is unavailable)",
            Self::Reclaim => "warnings turn `imminent` from limit hits alone and carry no `reclaim` count",
        }
    }

    /// The name in logs and in the `role` label of `oomtrace_probe_attached`.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One attach method of one program; its short name (logs, metrics) is the
/// variant's in snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Method {
    TpBtf,
    RawTp,
    Tracepoint,
    Fentry,
    Kprobe,
    SignalTpBtf,
    SignalRawTp,
    /// The classic tracepoint `signal/signal_generate`.
    SignalGenerate,
    ReclaimTpBtf,
    ReclaimRawTp,
}

impl Method {
    pub const ALL: [Method; 10] = [
        Self::TpBtf,
        Self::RawTp,
        Self::Tracepoint,
        Self::Fentry,
        Self::Kprobe,
        Self::SignalTpBtf,
        Self::SignalRawTp,
        Self::SignalGenerate,
        Self::ReclaimTpBtf,
        Self::ReclaimRawTp,
    ];

    /// What this method's program is for: the one place methods are grouped
    /// (attaching, `oomtrace check`, the startup log and the daemon's metrics).
    pub fn role(self) -> Role {
        match self {
            Self::TpBtf | Self::RawTp | Self::Tracepoint => Role::Victim,
            Self::Fentry | Self::Kprobe => Role::Context,
            Self::SignalTpBtf | Self::SignalRawTp | Self::SignalGenerate => Role::KillConfirmation,
            Self::ReclaimTpBtf | Self::ReclaimRawTp => Role::Reclaim,
        }
    }

    /// Whether attaching goes through perf_event_open (classic tracepoints
    /// and kprobes), which `kernel.perf_event_paranoid` can refuse.
    pub fn needs_perf_event_open(self) -> bool {
        matches!(self, Self::Tracepoint | Self::Kprobe | Self::SignalGenerate)
    }

    /// Short name used in logs and metrics.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The bit the eBPF program of this method sets in a record's `sources`
    /// (0: its programs write no records).
    pub fn source_bit(self) -> u32 {
        match self {
            Self::TpBtf => source::TP_BTF,
            Self::RawTp => source::RAW_TP,
            Self::Tracepoint => source::TRACEPOINT,
            Self::Fentry => source::FENTRY,
            Self::Kprobe => source::KPROBE,
            Self::SignalTpBtf => source::SIGNAL_TP_BTF,
            Self::SignalRawTp => source::SIGNAL_RAW_TP,
            Self::SignalGenerate => source::SIGNAL,
            Self::ReclaimTpBtf | Self::ReclaimRawTp => 0,
        }
    }

    /// The attach point, as users know it (and as an event's `sources` names
    /// the programs that filled it).
    pub fn target(self) -> &'static str {
        match self {
            Self::TpBtf => "tp_btf:mark_victim",
            Self::RawTp => "raw_tp:mark_victim",
            Self::Tracepoint => "tracepoint:oom/mark_victim",
            Self::Fentry => "fentry:oom_kill_process",
            Self::Kprobe => "kprobe:oom_kill_process",
            Self::SignalTpBtf => "tp_btf:signal_generate",
            Self::SignalRawTp => "raw_tp:signal_generate",
            Self::SignalGenerate => "tracepoint:signal/signal_generate",
            Self::ReclaimTpBtf => "tp_btf:mm_vmscan_memcg_reclaim_end",
            Self::ReclaimRawTp => "raw_tp:mm_vmscan_memcg_reclaim_end",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachPlan {
    pub victim: VictimProbe,
    pub context: ContextProbe,
    /// Attach a `signal_generate` program to confirm kills.
    pub confirm_kills: bool,
    /// Count memcg limit reclaim for the warnings before kills.
    pub count_reclaim: bool,
}

impl AttachPlan {
    /// The methods to try for `role`, in order: the first that attaches wins.
    pub fn chain(&self, role: Role) -> &'static [Method] {
        match role {
            Role::Victim => match self.victim {
                VictimProbe::Auto => &[Method::TpBtf, Method::RawTp, Method::Tracepoint],
                VictimProbe::TpBtf => &[Method::TpBtf],
                VictimProbe::RawTp => &[Method::RawTp],
                VictimProbe::Tracepoint => &[Method::Tracepoint],
            },
            Role::Context => match self.context {
                ContextProbe::Auto => &[Method::Fentry, Method::Kprobe],
                ContextProbe::Fentry => &[Method::Fentry],
                ContextProbe::Kprobe => &[Method::Kprobe],
                ContextProbe::None => &[],
            },
            // The classic tracepoint last: it needs perf_event_open.
            Role::KillConfirmation if self.confirm_kills => {
                &[Method::SignalTpBtf, Method::SignalRawTp, Method::SignalGenerate]
            }
            Role::KillConfirmation => &[],
            // No classic tracepoint: it needs perf_event_open, which the
            // DaemonSet lacks, and raw_tp attaches wherever it would.
            Role::Reclaim if self.count_reclaim => &[Method::ReclaimTpBtf, Method::ReclaimRawTp],
            Role::Reclaim => &[],
        }
    }

    /// The context method the user asked for explicitly (then it must attach).
    pub fn requested_context(&self) -> Option<Method> {
        match self.context {
            ContextProbe::Fentry => Some(Method::Fentry),
            ContextProbe::Kprobe => Some(Method::Kprobe),
            ContextProbe::Auto | ContextProbe::None => None,
        }
    }
}

/// One attach attempt that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", .method.target())]
pub struct AttachFailure {
    pub method: Method,
    pub error: AttachError,
}

/// What ended up attached.
#[derive(Debug, Default)]
pub struct Attached {
    /// The attached methods, at most one per role, in attach order.
    pub methods: Vec<Method>,
    pub failures: Vec<AttachFailure>,
}

impl Attached {
    /// The method attached for `role`, if any.
    pub fn method(&self, role: Role) -> Option<Method> {
        self.methods.iter().copied().find(|m| m.role() == role)
    }

    /// `victim=tp_btf context=none kill_confirmation=signal_tp_btf reclaim=none`.
    pub fn summary(&self) -> String {
        Role::ALL
            .iter()
            .map(|&role| format!("{}={}", role.name(), self.method(role).map_or("none", Method::name)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_in_the_auto_chain_of_its_role() {
        let plan = AttachPlan { confirm_kills: true, count_reclaim: true, ..AttachPlan::default() };
        for method in Method::ALL {
            assert!(plan.chain(method.role()).contains(&method), "{method:?}");
        }
    }

    #[test]
    fn the_summary_names_one_method_per_role() {
        let attached = Attached { methods: vec![Method::TpBtf, Method::SignalTpBtf], failures: Vec::new() };
        assert_eq!(attached.summary(), "victim=tp_btf context=none kill_confirmation=signal_tp_btf reclaim=none");
        assert_eq!(attached.method(Role::Context), None);
    }
}

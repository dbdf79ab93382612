//! What the kernel side of a tracer costs: its BPF programs' run time over
//! the kill runs (the kernel's own statistics), their sizes as loaded, and
//! the prebuilt object's programs as the verifier will see them.

use std::time::Duration;

use super::median_ms;

/// The hook a program runs on, from its name (the kernel keeps 15 bytes of
/// it: oomtrace's `oom_kill_process_kprobe` is `oom_kill_proces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    MarkVictim,
    SignalGenerate,
    OomKillProcess,
    Other,
}

impl Hook {
    pub fn of(program_name: &str) -> Hook {
        if program_name.starts_with("mark_victim") {
            Hook::MarkVictim
        } else if program_name.starts_with("signal_generate") {
            Hook::SignalGenerate
        } else if program_name.starts_with("oom_kill_proc") {
            Hook::OomKillProcess
        } else {
            Hook::Other
        }
    }
}

/// One program over the kill runs: what the kernel counted while run-time
/// statistics were on (after minus before), and its size as loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramCost {
    pub name: String,
    /// As bpftool names it: tracepoint, raw_tracepoint, tracing, kprobe.
    pub program_type: &'static str,
    pub runs: u64,
    pub run_time_ns: u64,
    /// Time per run in each sequential kill's window that it ran in.
    pub window_per_run: Vec<Duration>,
    /// After the verifier's rewrites.
    pub xlated_insns: Option<u32>,
    /// Instructions the verifier processed (its complexity limit counts these).
    pub verified_insns: Option<u32>,
    pub jited_bytes: u32,
}

impl ProgramCost {
    pub fn hook(&self) -> Hook {
        Hook::of(&self.name)
    }

    pub fn ns_per_run(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.run_time_ns as f64 / self.runs as f64)
    }

    /// The slowest sequential kill's window, per run.
    pub fn slowest_window(&self) -> Option<Duration> {
        self.window_per_run.iter().max().copied()
    }
}

/// The kernel side of one tracer during its kill runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelCost {
    pub programs: Vec<ProgramCost>,
    /// The ring buffer the tracer holds, in bytes (none for bpftrace, which
    /// prints through a perf buffer).
    pub ringbuf_bytes: Option<u32>,
}

impl KernelCost {
    /// ns per run of the programs on `hook`, all their runs together.
    pub fn ns_per_run(&self, hook: Hook) -> Option<f64> {
        let (runs, ns) = self
            .programs
            .iter()
            .filter(|p| p.hook() == hook)
            .fold((0u64, 0u64), |(runs, ns), p| (runs + p.runs, ns + p.run_time_ns));
        (runs > 0).then(|| ns as f64 / runs as f64)
    }

    /// The median over the sequential kills' windows of the time per run of
    /// the programs on `hook`, in ns: less sensitive than the mean to a few
    /// runs that an interrupt or a descheduled vCPU made slow.
    pub fn median_ns_per_run(&self, hook: Hook) -> Option<f64> {
        let windows: Vec<Duration> =
            self.programs.iter().filter(|p| p.hook() == hook).flat_map(|p| p.window_per_run.iter().copied()).collect();
        median_ms(&windows).map(|ms| ms * 1e6)
    }

    /// The translated instructions of the (first) program on `hook`.
    pub fn insns(&self, hook: Hook) -> Option<u32> {
        self.programs.iter().find(|p| p.hook() == hook)?.xlated_insns
    }

    /// Every program's run time over the kill runs, per OOM kill: an upper
    /// bound of a kill's cost, since a hook like `signal_generate` also runs
    /// for every other signal sent meanwhile.
    pub fn ns_per_kill(&self, kills: usize) -> Option<f64> {
        let total: u64 = self.programs.iter().map(|p| p.run_time_ns).sum();
        (kills > 0 && self.programs.iter().any(|p| p.runs > 0)).then(|| total as f64 / kills as f64)
    }
}

/// One program of the prebuilt eBPF object, read without loading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectProgram {
    pub name: String,
    pub section: String,
    /// Its own instructions plus those of the subprograms it calls (the
    /// loader appends them), in 8-byte slots as the kernel counts them.
    pub insns: u32,
    /// The `.text` functions it calls (bpf-to-bpf calls).
    pub subprograms: Vec<String>,
    /// The deepest stack byte its own code addresses.
    pub frame_bytes: u32,
    /// What the verifier adds up against the 512-byte limit: each frame of
    /// the deepest call chain rounded up to 32 bytes.
    pub stack_bytes: u32,
}

/// What one event's record takes: a fixed part, then the victim cgroup's
/// path names, only as many bytes as they use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Sent with no path names.
    pub fixed_bytes: usize,
    /// Sent with the longest names the kernel side captures.
    pub max_bytes: usize,
    /// The bench's sequential cgroup, as its events carry it.
    pub bench_cgroup: String,
    pub bench_bytes: usize,
}

/// The kernel cost of a report: the record size, and the prebuilt object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    pub event: EventRecord,
    /// The programs of the prebuilt object, or why it could not be read.
    pub prebuilt: Result<Vec<ObjectProgram>, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(name: &str, runs: u64, run_time_ns: u64) -> ProgramCost {
        ProgramCost {
            name: name.to_owned(),
            program_type: "tracepoint",
            runs,
            run_time_ns,
            window_per_run: [3_000, 1_000, 2_000].map(Duration::from_nanos).to_vec(),
            xlated_insns: Some(runs as u32),
            verified_insns: None,
            jited_bytes: 0,
        }
    }

    #[test]
    fn hooks_come_from_the_kernel_names() {
        assert_eq!(Hook::of("mark_victim_btf"), Hook::MarkVictim);
        assert_eq!(Hook::of("mark_victim"), Hook::MarkVictim);
        assert_eq!(Hook::of("oom_kill_proces"), Hook::OomKillProcess);
        assert_eq!(Hook::of("signal_generate"), Hook::SignalGenerate);
        assert_eq!(Hook::of("dump_bpf_map"), Hook::Other);
    }

    #[test]
    fn costs_per_run_and_per_kill() {
        let cost = KernelCost {
            programs: vec![
                program("mark_victim_btf", 10, 20_000),
                program("signal_generate", 1000, 100_000),
                program("oom_kill_proces", 0, 0),
            ],
            ringbuf_bytes: Some(256 << 10),
        };
        assert_eq!(cost.ns_per_run(Hook::MarkVictim), Some(2000.0));
        assert_eq!(cost.ns_per_run(Hook::SignalGenerate), Some(100.0));
        assert_eq!(cost.ns_per_run(Hook::OomKillProcess), None);
        assert_eq!(cost.median_ns_per_run(Hook::MarkVictim), Some(2_000.0));
        assert_eq!(KernelCost::default().median_ns_per_run(Hook::MarkVictim), None);
        assert_eq!(cost.insns(Hook::SignalGenerate), Some(1000));
        assert_eq!(cost.insns(Hook::Other), None);
        assert_eq!(cost.ns_per_kill(10), Some(12_000.0));
        assert_eq!(cost.ns_per_kill(0), None);
        assert_eq!(KernelCost::default().ns_per_kill(5), None);
        assert_eq!(cost.programs[2].ns_per_run(), None);
        assert_eq!(cost.programs[0].slowest_window(), Some(Duration::from_nanos(3_000)));
    }
}

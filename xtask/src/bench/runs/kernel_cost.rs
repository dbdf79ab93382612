//! The kernel side of a tracer over its kill runs: run-time statistics on
//! (`BPF_ENABLE_STATS`, held only for the kills), the programs its process
//! holds read before and after, and the difference.

use std::{collections::HashMap, time::Duration};

use anyhow::Result;

use crate::bench::figures::{EventRecord, KernelCost, ProgramCost};
use oomtrace_common::{CGROUP_PATH_NAMES_LEN, RawOomEvent};
use oomtrace_testkit::bpf::{self, Held, MAP_TYPE_RINGBUF, Program, RunTimeStats};

/// Statistics on, the tracer's programs as they were at the start, and the
/// windows sampled since.
pub struct KillWindow {
    _stats: RunTimeStats,
    pid: u32,
    before: Held,
    last: Held,
    /// Per program id: the time per run in each sampled window it ran in.
    windows: HashMap<u32, Vec<Duration>>,
}

/// Switches run-time statistics on, then reads `pid`'s programs.
pub fn open(pid: u32) -> Result<KillWindow> {
    let stats = RunTimeStats::enable()?;
    let before = bpf::held_by(pid)?;
    Ok(KillWindow { _stats: stats, pid, last: before.clone(), before, windows: HashMap::new() })
}

impl KillWindow {
    /// Closes a window (one sequential kill): the mean over all the kills
    /// hides whether a few slow runs make it, the windows' median does not.
    /// A failed read only merges this window into the next.
    pub fn sample(&mut self) {
        let Ok(now) = bpf::held_by(self.pid) else { return };
        for program in &now.programs {
            let (runs, run_time_ns) = ran_since(&self.last, program);
            if let Some(per_run_ns) = run_time_ns.checked_div(runs) {
                self.windows.entry(program.id).or_default().push(Duration::from_nanos(per_run_ns));
            }
        }
        self.last = now;
    }

    /// Reads the programs again (the tracer must still run) and switches
    /// the statistics off (unless another holder keeps them on).
    pub fn close(mut self) -> Result<KernelCost> {
        let after = bpf::held_by(self.pid)?;
        Ok(cost_between(&self.before, &after, &mut self.windows))
    }
}

/// The bytes oomtrace sends per event (`RawOomEvent::sent_len`), for a
/// victim in `cgroup` (a path from the hierarchy's root).
pub fn event_record(cgroup: &str) -> EventRecord {
    // Each level's name NUL-terminated, then the root's empty name and its NUL.
    let names_len: usize =
        cgroup.split('/').filter(|name| !name.is_empty()).map(|name| name.len() + 1).sum::<usize>() + 1;
    EventRecord {
        fixed_bytes: RawOomEvent::sent_len(0),
        // The kernel side keeps the names below CGROUP_PATH_NAMES_LEN.
        max_bytes: RawOomEvent::sent_len(CGROUP_PATH_NAMES_LEN - 1),
        bench_cgroup: cgroup.to_owned(),
        bench_bytes: RawOomEvent::sent_len(names_len),
    }
}

/// Runs and run time of `program` since `earlier` (a program loaded
/// meanwhile counts from zero).
fn ran_since(earlier: &Held, program: &Program) -> (u64, u64) {
    let before = earlier.programs.iter().find(|p| p.id == program.id);
    (
        program.run_count.saturating_sub(before.map_or(0, |p| p.run_count)),
        program.run_time_ns.saturating_sub(before.map_or(0, |p| p.run_time_ns)),
    )
}

/// Each program held at the end, with what it ran since `before`.
fn cost_between(before: &Held, after: &Held, windows: &mut HashMap<u32, Vec<Duration>>) -> KernelCost {
    let programs = after
        .programs
        .iter()
        .map(|program| {
            let (runs, run_time_ns) = ran_since(before, program);
            ProgramCost {
                name: program.name.clone(),
                program_type: bpf::program_type_name(program.program_type),
                runs,
                run_time_ns,
                window_per_run: windows.remove(&program.id).unwrap_or_default(),
                xlated_insns: program.xlated_bytes.map(|bytes| bytes / 8),
                verified_insns: program.verified_insns,
                jited_bytes: program.jited_bytes,
            }
        })
        .collect();
    let ringbuf_bytes = after.maps.iter().find(|m| m.map_type == MAP_TYPE_RINGBUF).map(|m| m.max_entries);
    KernelCost { programs, ringbuf_bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_testkit::bpf::Map;

    fn program(id: u32, name: &str, run_count: u64, run_time_ns: u64) -> Program {
        Program {
            id,
            name: name.to_owned(),
            program_type: 26,
            tag: "703d55e78702663e".to_owned(),
            run_time_ns,
            run_count,
            xlated_bytes: Some(800),
            jited_bytes: 512,
            verified_insns: Some(90),
        }
    }

    #[test]
    fn a_record_carries_its_path_names() {
        let record = event_record("/oomtrace-bench-42/seq");
        assert_eq!(record.bench_bytes, record.fixed_bytes + "seq\0oomtrace-bench-42\0\0".len());
        assert_eq!(record.max_bytes, std::mem::size_of::<RawOomEvent>() - 1);
        assert_eq!(event_record("/").bench_bytes, record.fixed_bytes + 1);
    }

    #[test]
    fn the_cost_is_what_ran_in_between() {
        let before = Held { programs: vec![program(7, "mark_victim_btf", 3, 9_000)], maps: Vec::new() };
        let after = Held {
            programs: vec![program(7, "mark_victim_btf", 13, 29_000), program(8, "signal_generate", 5, 500)],
            maps: vec![Map { id: 2, map_type: MAP_TYPE_RINGBUF, key_size: 0, value_size: 0, max_entries: 262_144 }],
        };
        let mut windows = HashMap::from([(7, vec![Duration::from_nanos(2_000)])]);
        let cost = cost_between(&before, &after, &mut windows);
        assert_eq!(cost.programs[0].window_per_run, [Duration::from_nanos(2_000)]);
        assert!(cost.programs[1].window_per_run.is_empty());
        assert_eq!(cost.ringbuf_bytes, Some(262_144));
        assert_eq!((cost.programs[0].runs, cost.programs[0].run_time_ns), (10, 20_000));
        assert_eq!((cost.programs[1].runs, cost.programs[1].run_time_ns), (5, 500));
        assert_eq!(cost.programs[0].program_type, "tracing");
        assert_eq!(cost.programs[0].xlated_insns, Some(100));
    }
}

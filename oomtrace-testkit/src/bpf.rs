//! The BPF programs and maps a process holds, as the kernel accounts them,
//! and the kernel's run-time statistics switched on while they are measured.
//!
//! A process is asked, not guessed at: the programs and maps are the
//! `anon_inode:bpf-prog` / `anon_inode:bpf-map` descriptors in
//! `/proc/<pid>/fd`, whose fdinfo names their ids; the program's name, sizes
//! and counters then come from `BPF_OBJ_GET_INFO_BY_FD` (aya's `ProgramInfo`).

use std::{fs, os::fd::OwnedFd, path::Path};

use anyhow::{Context as _, Result};

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)` held: the kernel counts each
/// program's runs and run time (`run_cnt`, `run_time_ns`) while this lives.
/// Dropping it closes the descriptor; the kernel counts holders, so a
/// `kernel.bpf_stats_enabled` sysctl someone else set, or another holder,
/// keeps the statistics on and nothing needs restoring.
pub struct RunTimeStats {
    _fd: OwnedFd,
}

impl RunTimeStats {
    /// Needs CAP_SYS_ADMIN and a 5.8+ kernel.
    pub fn enable() -> Result<Self> {
        let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)")?;
        Ok(RunTimeStats { _fd: fd })
    }
}

/// One loaded program, as `BPF_OBJ_GET_INFO_BY_FD` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub id: u32,
    /// The name given at load, cut to 15 bytes by the kernel.
    pub name: String,
    /// `bpf_prog_type` as the kernel numbers it (see [`program_type_name`]).
    pub program_type: u32,
    /// SHA of the instructions, as `bpftool prog show` prints it.
    pub tag: String,
    /// Accumulated only while run-time statistics are on.
    pub run_time_ns: u64,
    pub run_count: u64,
    /// The program after the verifier's rewrites (8 bytes an instruction).
    pub xlated_bytes: Option<u32>,
    pub jited_bytes: u32,
    /// Instructions the verifier processed (5.16+): what its complexity
    /// limit counts.
    pub verified_insns: Option<u32>,
}

/// One map, from its fdinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    pub id: u32,
    /// `bpf_map_type` as the kernel numbers it (27: ring buffer).
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    /// For a ring buffer, its size in bytes.
    pub max_entries: u32,
}

/// `BPF_MAP_TYPE_RINGBUF`.
pub const MAP_TYPE_RINGBUF: u32 = 27;

/// The programs and maps a process holds descriptors to.
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub programs: Vec<Program>,
    pub maps: Vec<Map>,
}

/// The BPF objects `pid` holds; a program unloaded meanwhile is left out.
pub fn held_by(pid: u32) -> Result<Held> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let mut program_types = Vec::new();
    let mut held = Held::default();
    let entries = fs::read_dir(proc_dir.join("fd")).with_context(|| format!("listing /proc/{pid}/fd"))?;
    for entry in entries.flatten() {
        let Ok(link) = fs::read_link(entry.path()) else { continue };
        let kind = link.to_string_lossy().into_owned();
        if kind != "anon_inode:bpf-prog" && kind != "anon_inode:bpf-map" {
            continue;
        }
        let Ok(fdinfo) = fs::read_to_string(proc_dir.join("fdinfo").join(entry.file_name())) else { continue };
        let field = |key: &str| fdinfo_field(&fdinfo, key);
        if kind == "anon_inode:bpf-prog" {
            if let (Some(id), Some(program_type)) = (field("prog_id"), field("prog_type")) {
                program_types.push((id, program_type));
            }
        } else if let (Some(id), Some(map_type), Some(key_size), Some(value_size), Some(max_entries)) =
            (field("map_id"), field("map_type"), field("key_size"), field("value_size"), field("max_entries"))
        {
            held.maps.push(Map { id, map_type, key_size, value_size, max_entries });
        }
    }
    for info in aya::programs::loaded_programs().flatten() {
        let Some(&(id, program_type)) = program_types.iter().find(|(id, _)| *id == info.id()) else { continue };
        held.programs.push(Program {
            id,
            name: String::from_utf8_lossy(info.name()).into_owned(),
            program_type,
            tag: format!("{:016x}", info.tag()),
            run_time_ns: info.run_time().as_nanos() as u64,
            run_count: info.run_count(),
            xlated_bytes: info.size_translated(),
            jited_bytes: info.size_jitted(),
            verified_insns: info.verified_instruction_count(),
        });
    }
    held.programs.sort_by_key(|p| p.id);
    held.programs.dedup_by_key(|p| p.id);
    held.maps.sort_by_key(|m| m.id);
    held.maps.dedup_by_key(|m| m.id);
    Ok(held)
}

/// `key:\tvalue` of an fdinfo file, as a number.
fn fdinfo_field(fdinfo: &str, key: &str) -> Option<u32> {
    fdinfo.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// How `bpftool` names the program types a tracer of OOM kills uses.
pub fn program_type_name(program_type: u32) -> &'static str {
    match program_type {
        2 => "kprobe",
        5 => "tracepoint",
        17 => "raw_tracepoint",
        26 => "tracing",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fdinfo_fields() {
        let fdinfo = "pos:\t0\nflags:\t02000002\nprog_type:\t5\nprog_tag:\t703d55e78702663e\nprog_id:\t3653\n";
        assert_eq!(fdinfo_field(fdinfo, "prog_id"), Some(3653));
        assert_eq!(fdinfo_field(fdinfo, "prog_type"), Some(5));
        assert_eq!(fdinfo_field(fdinfo, "prog_tag"), None);
        assert_eq!(fdinfo_field(fdinfo, "run_cnt"), None);
    }
}

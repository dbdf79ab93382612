//! The caller's privileges: loading tracing programs needs CAP_BPF and
//! CAP_PERFMON (or CAP_SYS_ADMIN on kernels before 5.8).

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privileges {
    pub euid: u32,
    pub cap_sys_admin: bool,
    pub cap_bpf: bool,
    pub cap_perfmon: bool,
}

impl Privileges {
    pub fn current() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self::from_status(&status)
    }

    /// Parses the `Uid:` and `CapEff:` lines of `/proc/<pid>/status`.
    pub fn from_status(status: &str) -> Self {
        let value = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
        let euid =
            value("Uid:").and_then(|v| v.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(u32::MAX);
        let caps = value("CapEff:").and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0);
        let has = |cap: u32| caps & (1u64 << cap) != 0;
        Self { euid, cap_sys_admin: has(CAP_SYS_ADMIN), cap_bpf: has(CAP_BPF), cap_perfmon: has(CAP_PERFMON) }
    }

    /// Enough to load and attach tracing programs.
    pub fn can_trace(&self) -> bool {
        self.cap_sys_admin || (self.cap_bpf && self.cap_perfmon)
    }

    /// What to do when [`can_trace`](Self::can_trace) is false.
    pub fn advice(&self) -> String {
        format!(
            "oomtrace needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); running as uid {} with \
             CAP_BPF={} CAP_PERFMON={} CAP_SYS_ADMIN={}: run it as root (sudo) or grant those capabilities",
            self.euid, self.cap_bpf, self.cap_perfmon, self.cap_sys_admin
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_with_full_capabilities() {
        let p = Privileges::from_status("Name:\tx\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n");
        assert_eq!(p.euid, 0);
        assert!(p.can_trace());
    }

    #[test]
    fn unprivileged_user() {
        let p = Privileges::from_status("Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n");
        assert!(!p.can_trace());
        assert!(p.advice().contains("uid 1000"));
    }

    #[test]
    fn bpf_and_perfmon_without_sys_admin() {
        let caps = (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON);
        let p = Privileges::from_status(&format!("Uid:\t0\t0\t0\t0\nCapEff:\t{caps:016x}\n"));
        assert!(p.can_trace());
    }
}

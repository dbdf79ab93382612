//! `oomtrace check`: what works on this node, and what to do about what doesn't.

use std::fmt::Write as _;

use crate::{
    enrich::cgroup::{MemoryHierarchy, detect_hierarchy},
    escape::escape_controls,
    kernel::{self, privileges::Privileges, syslog},
    klog::kmsg::KmsgReader,
    probe::{AttachError, EBPF_OBJECT, EbpfLog, Method, Role, attach::try_method},
    watch::{WatchEvent, WatchOptions, Watched, Watcher},
};

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub checks: Vec<Check>,
    /// The attach methods that worked.
    pub working: Vec<Method>,
}

impl Report {
    /// At least one victim source attaches.
    pub fn can_trace(&self) -> bool {
        !self.working(Role::Victim).is_empty()
    }

    /// The names of the working methods for `role`.
    fn working(&self, role: Role) -> Vec<&'static str> {
        self.working.iter().filter(|m| m.role() == role).map(|m| m.name()).collect()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let status = if check.ok { "ok" } else { "FAIL" };
            // A detail holds paths and error messages from the system.
            let _ = writeln!(out, "{:<34} {:<5} {}", check.name, status, escape_controls(&check.detail));
        }
        let context = self.working(Role::Context);
        let _ = writeln!(out);
        for role in [Role::Context, Role::KillConfirmation, Role::Reclaim] {
            if self.working(role).is_empty() {
                let _ = writeln!(out, "without {}: {}", role.name(), role.loss());
            }
        }
        if self.can_trace() {
            let _ = writeln!(
                out,
                "verdict: OOM kills can be traced (victim: {:?}; oom_kill_process context: {})",
                self.working(Role::Victim),
                if context.is_empty() {
                    "unavailable, scope and OOMing memcg will be inferred".to_owned()
                } else {
                    format!("{context:?}")
                }
            );
        } else {
            let _ = writeln!(out, "verdict: no OOM victim source can attach on this node; see the FAIL lines above");
        }
        out
    }
}

/// `ebpf_log`: try the programs with their log sites live at that level
/// (`--ebpf-log`), and say whether their messages can be read.
pub fn run(ebpf_log: EbpfLog) -> Report {
    let mut checks = Vec::new();
    let privileges = Privileges::current();
    checks.push(Check {
        name: "privileges",
        ok: privileges.can_trace(),
        detail: if privileges.can_trace() {
            format!(
                "uid {}, CAP_BPF={} CAP_PERFMON={} CAP_SYS_ADMIN={}",
                privileges.euid, privileges.cap_bpf, privileges.cap_perfmon, privileges.cap_sys_admin
            )
        } else {
            privileges.advice()
        },
    });
    let facts = kernel::discover();
    checks.push(Check {
        name: "btf",
        ok: facts.btf.is_ok(),
        detail: match &facts.btf {
            Ok(_) => {
                let missing = facts.layout.missing();
                if missing.is_empty() {
                    format!("{} (every offset resolved)", kernel::btf::VMLINUX_BTF)
                } else {
                    format!("{} (unresolved: {})", kernel::btf::VMLINUX_BTF, missing.join(", "))
                }
            }
            Err(why) => format!("{why}; cgroup, tgid and OOM context fields will be missing"),
        },
    });
    checks.push(Check {
        name: "tracefs",
        ok: facts.tracefs.is_ok(),
        detail: match &facts.tracefs {
            Ok(dir) => dir.display().to_string(),
            Err(why) => why.to_string(),
        },
    });
    checks.push(Check {
        name: "oom/mark_victim format",
        ok: !facts.mark_victim_fields.is_empty(),
        detail: if facts.mark_victim_fields.is_empty() {
            "unreadable (needs tracefs)".to_owned()
        } else {
            format!("fields: {}", facts.mark_victim_fields.join(" "))
        },
    });
    let hierarchy = detect_hierarchy();
    checks.push(Check {
        name: "cgroup",
        ok: hierarchy.is_ok(),
        detail: match &hierarchy {
            Ok(MemoryHierarchy::V1 { root }) => format!("v1, memory controller at {}", root.display()),
            Ok(MemoryHierarchy::V2 { root }) => format!("v2 at {}", root.display()),
            Err(error) => error.to_string(),
        },
    });
    checks.push(kernel_log_check());
    for warning in &facts.warnings {
        checks.push(Check { name: "warning", ok: false, detail: warning.clone() });
    }
    let mut working = Vec::new();
    for method in Method::ALL {
        let (ok, detail) = if !privileges.can_trace() {
            (false, "not tried: insufficient privileges".to_owned())
        } else {
            match try_method(EBPF_OBJECT, &facts, method, ebpf_log) {
                Ok(()) => (true, "attaches".to_owned()),
                Err(error) => (false, advice_for(method, &error)),
            }
        };
        if ok {
            working.push(method);
        }
        checks.push(Check { name: method.target(), ok, detail });
    }
    let reclaim = working.iter().copied().find(|m| m.role() == Role::Reclaim);
    checks.push(warnings_check(hierarchy.as_ref().ok(), reclaim));
    if ebpf_log != EbpfLog::Off && privileges.can_trace() {
        checks.push(ebpf_log_check(&facts, ebpf_log));
    }
    Report { checks, working }
}

/// Whether the kernel side's messages (`--ebpf-log`) can be read: the
/// programs above were loaded with their log sites live; this reads aya-log's
/// ring buffer of one more load. Never fails the verdict.
fn ebpf_log_check(facts: &kernel::KernelFacts, level: EbpfLog) -> Check {
    let readable = crate::probe::loader(facts, level)
        .load(EBPF_OBJECT)
        .map_err(|error| format!("loading the eBPF object failed: {error}"))
        .and_then(|mut ebpf| {
            aya_log::EbpfLogger::init_with_logger(&mut ebpf, log::logger())
                .map(drop)
                .map_err(|error| format!("aya-log's ring buffer cannot be read: {error}"))
        });
    let (ok, detail) = match readable {
        Ok(()) => (
            true,
            format!(
                "level {level}: the methods above were tried with their log sites live; `oomtrace live \
                 --ebpf-log={level}` logs the kernel side's messages under target {}",
                crate::probe::ebpf_log::TARGET
            ),
        ),
        Err(why) => (false, format!("{why}: `--ebpf-log` would show nothing")),
    };
    Check { name: "ebpf log", ok, detail }
}

/// Whether warnings before kills can be made, and from what: the watcher's
/// first scan and reading of every memory cgroup with a limit, and whether
/// the reclaim counter attaches (`reclaim`: the method that did). Never fails
/// the verdict: kills are traced without it.
fn warnings_check(hierarchy: Option<&MemoryHierarchy>, reclaim: Option<Method>) -> Check {
    let Some(hierarchy) = hierarchy else {
        return Check {
            name: "warnings",
            ok: false,
            detail: "no memory cgroup hierarchy: no warnings before kills".to_owned(),
        };
    };
    let mut watcher = Watcher::new(hierarchy, WatchOptions::default());
    let mut found = Vec::new();
    watcher.poll(std::time::Instant::now(), &mut found);
    let stats = watcher.stats();
    let node = found.iter().any(|event| matches!(event, WatchEvent::Reading(r) if r.watched == Watched::Node));
    let ok = stats.read_errors == 0 && node;
    let mut detail = format!(
        "polling cgroupfs: {} memory cgroup(s) with a limit, {} unreadable; node memory {} (usage every 0.1-2 s, \
         memory.stat when moving or past 50 % of the limit); {}",
        stats.watched,
        stats.read_errors,
        if node { "read" } else { "unreadable (/proc/meminfo)" },
        match reclaim {
            Some(method) => format!("limit reclaim counted by {}", method.target()),
            None => "no reclaim probe attaches: `imminent` comes from limit hits alone".to_owned(),
        }
    );
    if stats.read_errors > 0 {
        detail.push_str("; the unreadable ones are not predicted: mount cgroupfs readable (read-only is enough)");
    }
    Check { name: "warnings", ok, detail }
}

/// Whether the kernel log can be read, and how: /dev/kmsg, else syslog(2).
/// Without it kills get no kernel report records and past kills are not found;
/// tracing works all the same, so this never fails the verdict.
fn kernel_log_check() -> Check {
    let (ok, detail) = match KmsgReader::open() {
        Ok(_) => (true, "/dev/kmsg (kernel reports after live kills; history and past kills)".to_owned()),
        Err(kmsg) => match syslog::read_all() {
            Ok(_) => (true, format!("syslog(2), as dmesg reads it (/dev/kmsg: {kmsg})")),
            Err(error) => (
                false,
                format!("{kmsg}; {error}: kills will get no kernel report records and past kills will not be reported"),
            ),
        },
    };
    Check { name: "kernel log", ok, detail }
}

/// The error, and what to do about it.
fn advice_for(method: Method, error: &AttachError) -> String {
    let hint = match (method, error) {
        (Method::Kprobe, AttachError::NoKprobes(_)) => {
            " (this kernel has no kprobes: CONFIG_KPROBES is off; fentry or inference is used instead)"
        }
        (Method::Fentry, AttachError::Refused(_)) => {
            " (fentry refused by the kernel or a security policy; kprobe is tried next)"
        }
        (
            Method::TpBtf | Method::Fentry,
            AttachError::NoBtf(_)
            | AttachError::TracepointNotInBtf(_)
            | AttachError::NoOomKillProcessInBtf
            | AttachError::TaskOffsetsNotInBtf,
        ) => " (needs CONFIG_DEBUG_INFO_BTF)",
        _ => "",
    };
    if method.needs_perf_event_open() && error.kernel_answered(&[libc::EACCES, libc::EPERM]) {
        return format!("{error}{}", perf_event_refused());
    }
    format!("{error}{hint}")
}

/// Why perf_event_open was refused, from the kernel's own settings.
fn perf_event_refused() -> String {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unreadable".to_owned());
    let privileges = Privileges::current();
    format!(
        " (perf_event_open refused: kernel.perf_event_paranoid = {paranoid}, CAP_PERFMON={} CAP_SYS_ADMIN={}; \
         Debian's and Ubuntu's kernels refuse it above 2 without CAP_SYS_ADMIN. tp_btf and raw_tp need no \
         perf_event_open: this role falls back to them, or lacks this method only)",
        privileges.cap_perfmon, privileges.cap_sys_admin
    )
}

//! The first lines of a report: who invoked the OOM killer, and the `dump_stack` line that
//! names the CPU, pid and comm of the triggering task.

use serde::Serialize;

use super::text;

/// `<comm> invoked oom-killer: gfp_mask=…, order=…, oom_score_adj=…` (`dump_header` in
/// mm/oom_kill.c). Every version's format string:
/// - 2.6.32 (RHEL 6): `"%s invoked oom-killer: gfp_mask=0x%x, order=%d, oom_adj=%d, oom_score_adj=%d\n"`
/// - 3.10: `"%s invoked oom-killer: gfp_mask=0x%x, order=%d, oom_score_adj=%hd\n"`
/// - 4.8 – 4.19: `"%s invoked oom-killer: gfp_mask=%#x(%pGg), nodemask=%*pbl, order=%d, oom_score_adj=%hd\n"`
/// - 5.0 – 7.x: `"%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd\n"` (the
///   nodemask moved to the `oom-kill:` summary line)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Header {
    /// The task that ran into the limit and invoked the OOM killer (the trigger), up to 15 bytes,
    /// may contain spaces.
    pub trigger_comm: String,
    /// The allocation's GFP flags as a number (`gfp_mask=0xcc0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfp_mask: Option<u64>,
    /// The same flags by name as 4.8+ print them (`GFP_KERNEL|__GFP_NOWARN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfp_flags: Option<String>,
    /// The allocation's nodemask (4.8 – 4.19 only, e.g. `(null)` or `0-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodemask: Option<String>,
    /// The allocation order (`-1` for a sysrq-forced OOM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// The trigger's oom_score_adj.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The trigger's legacy oom_adj (2.6.32 kernels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_adj: Option<i32>,
}

const INVOKED: &str = " invoked oom-killer:";

/// Whether the line is an OOM-killer header (parsable or not).
pub(crate) fn is_header(line: &str) -> bool {
    line.contains(INVOKED)
}

/// Parses the header line; `None` when it is not one. Fields the line lacks stay `None`.
pub(crate) fn parse_header(line: &str) -> Option<Header> {
    let (comm, rest) = line.split_once(INVOKED)?;
    let comm = comm.trim();
    if comm.is_empty() {
        return None;
    }
    let mut header = Header { trigger_comm: comm.to_owned(), ..Header::default() };
    // Fields are separated by ", "; a nodemask list (`0,2-3`) has commas but no space after them.
    for field in rest.split(", ") {
        let Some((key, value)) = field.trim().split_once('=') else { continue };
        match key {
            "gfp_mask" => {
                let (number, names) = match value.split_once('(') {
                    Some((number, names)) => (number, names.strip_suffix(')')),
                    None => (value, None),
                };
                header.gfp_mask = text::hex(number);
                header.gfp_flags = names.map(str::to_owned);
            }
            "nodemask" => header.nodemask = Some(value.to_owned()),
            "order" => header.order = text::signed_i32(value),
            "oom_score_adj" => header.oom_score_adj = text::signed_i32(value),
            "oom_adj" => header.oom_adj = text::signed_i32(value),
            _ => {}
        }
    }
    Some(header)
}

/// The `dump_stack` line printed right after the header (lib/dump_stack.c
/// `dump_stack_print_info`):
/// - 3.10 – 6.x: `"%sCPU: %d PID: %d Comm: %.20s %s%s %s %.*s\n"` (kdump mark, taint, release, version)
/// - 6.12+: `"%sCPU: %d UID: %u PID: %d Comm: %.20s %s%s %s %.*s %s\n"` (+ preemption model)
/// - 2.6.32: `"Pid: %d, comm: %.20s %s %s %.*s\n"` (no CPU)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuLine {
    /// The CPU the trigger ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// The trigger's uid (6.12+ only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The trigger's pid (thread id).
    pub pid: u32,
    /// The trigger's comm.
    pub comm: String,
    /// `Not tainted` or `Tainted: G   W   O` as printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taint: Option<String>,
    /// The kernel release (`uname -r`), e.g. `6.1.0-47-cloud-amd64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
}

/// What may follow the comm on a `CPU:` line: the kdump mark or the taint state.
const AFTER_COMM: [&str; 3] = [" Kdump: loaded ", " Not tainted ", " Tainted: "];

/// Parses a `CPU: … PID: … Comm: …` (or 2.6.32 `Pid: …, comm: …`) line; `None` when it is not one.
pub(crate) fn parse_cpu_line(line: &str) -> Option<CpuLine> {
    if let Some(rest) = line.strip_prefix("CPU: ") {
        let (cpu, rest) = text::leading_u32(rest)?;
        let (uid, rest) = match rest.strip_prefix(" UID: ") {
            Some(rest) => {
                let (uid, rest) = text::leading_u32(rest)?;
                (Some(uid), rest)
            }
            None => (None, rest),
        };
        let rest = rest.strip_prefix(" PID: ")?;
        let (pid, rest) = text::leading_u32(rest)?;
        let rest = rest.strip_prefix(" Comm: ")?;
        let mut parsed = comm_and_state(rest);
        parsed.cpu = Some(cpu);
        parsed.uid = uid;
        parsed.pid = pid;
        return Some(parsed);
    }
    let rest = line.strip_prefix("Pid: ")?;
    let (pid, rest) = text::leading_u32(rest)?;
    let rest = rest.strip_prefix(", comm: ")?;
    let mut parsed = comm_and_state(rest);
    parsed.pid = pid;
    Some(parsed)
}

/// Splits `"<comm> Not tainted 6.1.0 #1 …"` at the first taint/kdump mark.
fn comm_and_state(text: &str) -> CpuLine {
    let boundary = AFTER_COMM.iter().filter_map(|mark| text.find(mark)).min();
    let Some(boundary) = boundary else {
        return CpuLine { comm: text.trim().to_owned(), ..CpuLine::default() };
    };
    let (comm, state) = text.split_at(boundary);
    let state = state.trim_start().strip_prefix("Kdump: loaded ").unwrap_or(state.trim_start());
    // `Tainted: <flags> <release>`: the flags are letters and spaces, the release starts with a digit.
    let (taint, release) = match state.strip_prefix("Not tainted ") {
        Some(release) => ("Not tainted".to_owned(), release),
        None => {
            let start = state.find(|c: char| c.is_ascii_digit()).unwrap_or(state.len());
            let (taint, release) = state.split_at(start);
            (taint.trim_end().to_owned(), release)
        }
    };
    let kernel_release = release.split_whitespace().next().map(str::to_owned);
    CpuLine { comm: comm.to_owned(), taint: Some(taint), kernel_release, ..CpuLine::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_version() {
        let cases: &[(&str, Header)] = &[
            (
                "dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
                Header {
                    trigger_comm: "dd".into(),
                    gfp_mask: Some(0xcc0),
                    gfp_flags: Some("GFP_KERNEL".into()),
                    order: Some(0),
                    oom_score_adj: Some(0),
                    ..Header::default()
                },
            ),
            (
                "java invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=-998",
                Header {
                    trigger_comm: "java".into(),
                    gfp_mask: Some(0x6000c0),
                    gfp_flags: Some("GFP_KERNEL".into()),
                    nodemask: Some("(null)".into()),
                    order: Some(0),
                    oom_score_adj: Some(-998),
                    ..Header::default()
                },
            ),
            (
                "Web Content invoked oom-killer: gfp_mask=0x201da, order=0, oom_score_adj=0",
                Header {
                    trigger_comm: "Web Content".into(),
                    gfp_mask: Some(0x201da),
                    order: Some(0),
                    oom_score_adj: Some(0),
                    ..Header::default()
                },
            ),
            (
                "mysqld invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=0, oom_score_adj=0",
                Header {
                    trigger_comm: "mysqld".into(),
                    gfp_mask: Some(0x201da),
                    order: Some(0),
                    oom_adj: Some(0),
                    oom_score_adj: Some(0),
                    ..Header::default()
                },
            ),
            (
                "a (b) invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), nodemask=0-1,3, order=-1, oom_score_adj=0",
                Header {
                    trigger_comm: "a (b)".into(),
                    gfp_mask: Some(0x100cca),
                    gfp_flags: Some("GFP_HIGHUSER_MOVABLE".into()),
                    nodemask: Some("0-1,3".into()),
                    order: Some(-1),
                    oom_score_adj: Some(0),
                    ..Header::default()
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_header(line).as_ref(), Some(want), "{line}");
        }
        assert_eq!(parse_header(" invoked oom-killer: gfp_mask=0x0"), None);
        assert_eq!(parse_header("dd invoked oom-killer"), None);
        let truncated = parse_header("dd invoked oom-killer: gfp_mask=0xcc0(GFP_KER").expect("comm is there");
        assert_eq!((truncated.gfp_mask, truncated.order), (Some(0xcc0), None));
    }

    #[test]
    fn cpu_lines_of_every_version() {
        let line = parse_cpu_line("CPU: 1 UID: 0 PID: 12589 Comm: dd Not tainted 6.18.44-fc-v657 #1 PREEMPT(none) ");
        assert_eq!(
            line,
            Some(CpuLine {
                cpu: Some(1),
                uid: Some(0),
                pid: 12589,
                comm: "dd".into(),
                taint: Some("Not tainted".into()),
                kernel_release: Some("6.18.44-fc-v657".into()),
            })
        );
        let line =
            parse_cpu_line("CPU: 3 PID: 4242 Comm: my prog Tainted: G        W  O      4.19.0-6-amd64 #1 Debian")
                .expect("4.19 form");
        assert_eq!((line.cpu, line.uid, line.pid), (Some(3), None, 4242));
        assert_eq!(line.comm, "my prog");
        assert_eq!(line.taint.as_deref(), Some("Tainted: G        W  O"));
        assert_eq!(line.kernel_release.as_deref(), Some("4.19.0-6-amd64"));
        let line = parse_cpu_line("CPU: 0 PID: 1 Comm: java Kdump: loaded Not tainted 3.10.0-957.el7.x86_64 #1")
            .expect("kdump mark");
        assert_eq!(line.kernel_release.as_deref(), Some("3.10.0-957.el7.x86_64"));
        let line = parse_cpu_line("Pid: 2592, comm: mysqld Not tainted 2.6.32-573.el6.x86_64 #1").expect("2.6.32");
        assert_eq!((line.cpu, line.pid, line.comm.as_str()), (None, 2592, "mysqld"));
        assert_eq!(parse_cpu_line("CPU: x PID: 1 Comm: a"), None);
        assert_eq!(parse_cpu_line("CPU: 1 PID: 1"), None);
        assert_eq!(parse_cpu_line("CPU0: Thermal monitoring enabled"), None);
    }
}

//! The big syslog file the parser is timed on: a real kernel log's lines (this
//! host's dmesg, oomtrace-klog/fixtures) in /var/log/syslog's traditional
//! form (`Nov 29 11:14:00 host kernel: [ 123.456789] message`), repeated with
//! both timestamps moved on each time, and other daemons' lines between them.

use std::io::{self, Write};

use anyhow::{Context as _, Result, bail};

use crate::bench::figures::SyslogShape;

/// The node's name on every line (the AKS fixture's).
const HOST: &str = "aks-nodepool1-24207654-vmss000001";

/// What other programs write to a node's syslog between kernel lines: the
/// first two are real (oomtrace-klog/fixtures/aks-5.15-syslog.txt), the rest
/// in the form systemd, kubelet, cron and rsyslogd use. None quotes the
/// kernel's kill line (node-problem-detector does; that would make grep's
/// count differ from the kills for a reason that is not the parser's).
const UNRELATED: &[&str] = &[
    "systemd[1]: cri-containerd-25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca.scope: A process \
     of this unit has been killed by the OOM killer.",
    "containerd[2388]: time=\"2023-10-12T19:00:20.879932879Z\" level=info msg=\"TaskOOM event \
     container_id:\\\"25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca\\\"\"",
    "kubelet[2510]: I1012 19:00:21.102334    2510 kubelet.go:2457] \"SyncLoop (PLEG): event for pod\" \
     pod=\"default/nginx-oom\" event={\"ID\":\"5931aa75-4603-4e65-b552-7c71cf55cfb5\",\"Type\":\"ContainerDied\"}",
    "CRON[40211]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "systemd[1]: Started session-1182.scope - Session 1182 of User azureuser.",
    "kubelet[2510]: E1012 19:00:22.514420    2510 pod_workers.go:1294] \"Error syncing pod, skipping\" \
     err=\"failed to \\\"StartContainer\\\" for \\\"nginx\\\" with CrashLoopBackOff\" pod=\"default/nginx-oom\"",
    "rsyslogd[612]: [origin software=\"rsyslogd\" swVersion=\"8.2112.0\" x-pid=\"612\"] rsyslogd was HUPed",
    "systemd[1]: Starting Daily apt upgrade and clean activities...",
];

/// One line of a `dmesg` capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLine<'a> {
    /// The kernel's timestamp, µs since boot.
    pub usec: u64,
    /// The message after `] ` (a leading space is part of it).
    pub message: &'a str,
}

/// The `[seconds.micros] message` lines of a dmesg capture; `#` lines are
/// the fixture's note on its source.
pub fn dmesg_lines(text: &str) -> Result<Vec<KernelLine<'_>>> {
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
        let parsed = line.strip_prefix('[').and_then(|rest| rest.split_once("] ")).and_then(|(stamp, message)| {
            let (seconds, micros) = stamp.trim().split_once('.')?;
            Some(KernelLine { usec: seconds.parse::<u64>().ok()? * 1_000_000 + micros.parse::<u64>().ok()?, message })
        });
        lines.push(parsed.with_context(|| format!("line {} is not `[seconds.micros] message`: {line}", number + 1))?);
    }
    if lines.is_empty() {
        bail!("no kernel lines");
    }
    Ok(lines)
}

/// How the copies of the kernel lines are laid out in time and among
/// other lines.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Stop after the repetition that reaches this many bytes.
    pub target_bytes: u64,
    /// Wall-clock time (Unix seconds, written as UTC) of the first line.
    pub start_unix_s: i64,
    /// Each repetition starts this much later than the one before.
    pub gap_s: u64,
    /// One unrelated line after every this many kernel lines.
    pub unrelated_every: usize,
}

/// Writes whole repetitions of `lines` until `layout.target_bytes` is reached.
pub fn write(out: &mut impl Write, lines: &[KernelLine], layout: Layout) -> Result<SyslogShape> {
    let first_usec = lines.first().map_or(0, |l| l.usec);
    let kills_per_repetition = lines.iter().filter(|l| l.message.contains("Killed process")).count() as u64;
    let mut shape = SyslogShape::default();
    let mut stamp = WallStamp::default();
    let mut unrelated = UNRELATED.iter().cycle();
    let mut text = String::with_capacity(512);
    while shape.bytes < layout.target_bytes {
        let shift_s = shape.repetitions * layout.gap_s;
        for (index, line) in lines.iter().enumerate() {
            // The wall clock's second turns with the kernel's.
            let offset_s = i64::try_from(shift_s + line.usec / 1_000_000 - first_usec / 1_000_000).unwrap_or(i64::MAX);
            let wall = stamp.of(layout.start_unix_s.saturating_add(offset_s))?;
            let usec = line.usec + shift_s * 1_000_000;
            text.clear();
            use std::fmt::Write as _;
            writeln!(text, "{wall} {HOST} kernel: [{:5}.{:06}] {}", usec / 1_000_000, usec % 1_000_000, line.message)
                .ok();
            shape.kernel_lines += 1;
            if (index + 1) % layout.unrelated_every.max(1) == 0
                && let Some(other) = unrelated.next()
            {
                writeln!(text, "{wall} {HOST} {other}").ok();
                shape.unrelated_lines += 1;
            }
            out.write_all(text.as_bytes()).context("writing the syslog file")?;
            shape.bytes += text.len() as u64;
        }
        shape.repetitions += 1;
        shape.kill_lines += kills_per_repetition;
    }
    out.flush().context("writing the syslog file")?;
    Ok(shape)
}

/// syslog's `Mmm dd HH:MM:SS`, formatted again only when the second changes.
#[derive(Default)]
struct WallStamp {
    second: Option<i64>,
    text: String,
}

impl WallStamp {
    fn of(&mut self, unix_s: i64) -> io::Result<&str> {
        if self.second != Some(unix_s) {
            let time = jiff::Timestamp::from_second(unix_s).map_err(io::Error::other)?;
            self.text = time.strftime("%b %e %H:%M:%S").to_string();
            self.second = Some(unix_s);
        }
        Ok(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: &str = "# Source: a test\n\
        [20275.552083]  __handle_mm_fault+0xa1e/0xf40\n\
        [20275.552272] Memory cgroup out of memory: Killed process 12588 (dd) total-vm:265120kB\n\
        [20276.100000] oom_reaper: reaped process 12588 (dd), now anon-rss:0kB\n";

    fn layout(target_bytes: u64) -> Layout {
        // 2026-11-29T09:59:58Z
        Layout { target_bytes, start_unix_s: 1_795_946_398, gap_s: 60, unrelated_every: 2 }
    }

    #[test]
    fn dmesg_lines_keep_the_message_as_printed() {
        let lines = dmesg_lines(CAPTURE).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], KernelLine { usec: 20_275_552_083, message: " __handle_mm_fault+0xa1e/0xf40" });
        assert!(dmesg_lines("20275.5 no bracket\n").is_err());
        assert!(dmesg_lines("# only a note\n").is_err());
    }

    #[test]
    fn repetitions_move_both_clocks_on() {
        let lines = dmesg_lines(CAPTURE).unwrap();
        let mut out = Vec::new();
        let shape = write(&mut out, &lines, layout(1)).unwrap();
        assert_eq!((shape.repetitions, shape.kernel_lines, shape.unrelated_lines, shape.kill_lines), (1, 3, 1, 1));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(shape.bytes, text.len() as u64);
        let first: Vec<&str> = text.lines().collect();
        assert_eq!(first[0], format!("Nov 29 09:59:58 {HOST} kernel: [20275.552083]  __handle_mm_fault+0xa1e/0xf40"));
        assert!(first[2].starts_with(&format!("Nov 29 09:59:58 {HOST} systemd[1]: cri-containerd-")));
        assert_eq!(first[3], format!("Nov 29 09:59:59 {HOST} kernel: [20276.100000] {}", lines[2].message));

        let mut out = Vec::new();
        let shape = write(&mut out, &lines, layout(shape.bytes + 1)).unwrap();
        assert_eq!((shape.repetitions, shape.kill_lines), (2, 2));
        let text = String::from_utf8(out).unwrap();
        let second_copy = text.lines().nth(4).unwrap();
        assert_eq!(
            second_copy,
            format!("Nov 29 10:00:58 {HOST} kernel: [20335.552083]  __handle_mm_fault+0xa1e/0xf40")
        );
        assert_eq!(text.matches("Killed process").count(), 2);
    }

    #[test]
    fn no_unrelated_line_looks_like_a_kill() {
        for line in UNRELATED {
            assert!(!line.contains("Killed process") && !line.contains("kernel:"), "{line}");
        }
    }
}

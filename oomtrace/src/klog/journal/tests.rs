use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A stand-in journalctl: a shell script printing `stdout`, then `stderr` to stderr, exiting
/// with `status`; it records its arguments next to itself.
fn fake_journalctl(name: &str, stdout: &str, stderr: &str, status: i32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oomtrace-klog-journal-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stdout"), stdout).unwrap();
    let script = dir.join("journalctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > '{dir}/args'\ncat '{dir}/stdout'\necho '{stderr}' >&2\nexit {status}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn query(program: &Path) -> JournalQuery {
    JournalQuery { program: program.into(), ..JournalQuery::default() }
}

fn args_seen(program: &Path) -> String {
    std::fs::read_to_string(program.with_file_name("args")).unwrap().trim().to_owned()
}

const ENTRIES: &str = concat!(
    r#"{"__REALTIME_TIMESTAMP":"1795949897692990","_BOOT_ID":"2f5630380a4c44f86ef49659a83bef18","_TRANSPORT":"kernel","_SOURCE_MONOTONIC_TIMESTAMP":"20291692735","PRIORITY":"3","MESSAGE":"Memory cgroup out of memory: Killed process 13567 (dd) total-vm:265120kB"}"#,
    "\nnot json\n",
    r#"{"__REALTIME_TIMESTAMP":"1795949897700000","_TRANSPORT":"kernel","_SOURCE_MONOTONIC_TIMESTAMP":"20291700000","MESSAGE":"Memory cgroup stats for /pod:\nanon 4096"}"#,
    "\n"
);

#[test]
fn streams_the_entries_of_journalctls_output() {
    let program = fake_journalctl("entries", ENTRIES, "", 0);
    let mut reader = JournalReader::spawn(&JournalQuery { since: Some("-1h".into()), ..query(&program) }).unwrap();
    let entries: Vec<JournalEntry> = reader.by_ref().map(|entry| entry.unwrap()).collect();
    assert_eq!(entries.len(), 2);
    assert!(entries[0].is_kernel());
    assert_eq!(entries[0].lines[0].since_boot, Some(Duration::from_micros(20_291_692_735)));
    assert_eq!(entries[1].lines.len(), 2);
    assert_eq!(reader.summary(), JournalSummary { entries: 2, lines: 3, malformed: 1 });
    assert_eq!(args_seen(&program), "-k -o json --all --no-pager -b --since -1h");
}

#[test]
fn boot_filters_become_arguments() {
    let for_boot = |boot| JournalQuery { boot, ..JournalQuery::default() }.args().join(std::ffi::OsStr::new(" "));
    assert_eq!(for_boot(BootFilter::Current), "-k -o json --all --no-pager -b");
    assert_eq!(for_boot(BootFilter::Id("2f56".into())), "-k -o json --all --no-pager -b 2f56");
    assert_eq!(for_boot(BootFilter::All), "-k -o json --all --no-pager");
}

#[test]
fn a_failing_journalctl_is_an_error_with_its_words() {
    let program = fake_journalctl("fails", "", "Data from the specified boot (+0) is not available", 1);
    let error = JournalReader::spawn(&query(&program)).unwrap().next_entry().unwrap_err();
    assert!(matches!(error, JournalError::Failed { .. }), "{error:?}");
    assert!(error.to_string().contains("Data from the specified boot (+0) is not available"), "{error}");
}

#[test]
fn no_entries_is_an_error_saying_what_to_do() {
    let hint = "Hint: You are currently not seeing messages from other users and the system.";
    let program = fake_journalctl("empty", "", hint, 0);
    let error = JournalReader::spawn(&query(&program)).unwrap().next_entry().unwrap_err();
    assert!(matches!(error, JournalError::NoEntries { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(hint) && message.contains("systemd-journal") && message.contains("--file"), "{message}");
}

#[test]
fn a_missing_journalctl_says_so() {
    let error = JournalReader::spawn(&query(Path::new("/nonexistent/journalctl"))).unwrap_err();
    assert!(matches!(error, JournalError::NotInstalled { .. }), "{error:?}");
    assert!(error.to_string().contains("/dev/kmsg"));
}

/// This machine's own journalctl, if it has one: it either returns kernel entries or one of
/// the errors above, never a panic or a hang.
#[test]
fn this_machines_journalctl_gives_entries_or_a_clear_error() {
    let mut reader = match JournalReader::spawn(&JournalQuery::default()) {
        Ok(reader) => reader,
        Err(error) => return eprintln!("no journalctl here: {error}"),
    };
    match reader.next_entry() {
        Ok(Some(entry)) => assert!(entry.is_kernel(), "{entry:?}"),
        Ok(None) => panic!("an empty journal is an error, not an empty result"),
        Err(error) => {
            eprintln!("journal here: {error}");
            assert!(matches!(error, JournalError::NoEntries { .. } | JournalError::Failed { .. }), "{error:?}");
        }
    }
}

/// journald 252's real output on this machine (oomtrace-klog's fixture) through a stand-in
/// journalctl and the kernel line stream: every kernel message, the one a process wrote to
/// /dev/kmsg left out, all of one boot.
#[test]
fn real_journal_output_becomes_kernel_lines_of_one_boot() {
    use crate::klog::source::KernelLogSource;
    let fixture = include_str!("../../../../oomtrace-klog/src/source/testdata/journald-252-host-6.18-memcg.json");
    let program = fake_journalctl("real", fixture, "", 0);
    let source = KernelLogSource::journal(JournalReader::spawn(&query(&program)).unwrap());
    let lines: Vec<_> = source.map(|line| line.unwrap()).collect();
    assert_eq!(lines.len(), 106);
    assert!(lines.iter().all(|l| l.boot == 0 && l.boot_id.as_deref() == Some("b6b1cdd3f9ba40e79902714dfdf4f8d1")));
    let kills = lines.iter().filter(|l| l.line.message.contains("Memory cgroup out of memory: Killed process"));
    assert_eq!(kills.count(), 2);
    assert!(!lines.iter().any(|l| l.line.message.starts_with("oomtrace klog follow test")));
}

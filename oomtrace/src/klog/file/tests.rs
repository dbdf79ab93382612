use std::io::Cursor;
use std::time::Duration;

use jiff::civil::date;
use oomtrace_klog::LogLine;
use oomtrace_klog::source::file::SkipReason;

use super::*;

fn source(text: &'static [u8]) -> Result<FileSource, FileError> {
    let context = FileContext { written_on: date(2026, 11, 29), time_zone: TimeZone::UTC };
    FileSource::from_reader(PathBuf::from("test.log"), Box::new(Cursor::new(text)), context)
}

fn kernel_lines(source: FileSource) -> Vec<LogLine> {
    source
        .map(|event| event.unwrap())
        .filter_map(|event| match event {
            FileEvent::Line(line) => Some(line),
            _ => None,
        })
        .collect()
}

#[test]
fn a_mixed_file_streams_its_kernel_lines() {
    let text = b"-- Boot 2f5630380a4c44f86ef49659a83bef18 --\n\
        Nov 29 10:58:17 node-1 kernel: Memory cgroup out of memory: Killed process 13567 (dd)\n\
        Nov 29 10:58:18 node-1 sshd[12]: Accepted publickey for root\n\
        \n\
        [20291.692735] oom_reaper: reaped process 13567 (dd), now anon-rss:0kB\r\n\
        bad \xff byte";
    let mut source = source(text).unwrap();
    assert_eq!(
        source.next_event().unwrap(),
        Some(FileEvent::Boot { boot_id: Some("2f5630380a4c44f86ef49659a83bef18".into()) })
    );
    let rest: Vec<FileEvent> = source.by_ref().map(|event| event.unwrap()).collect();
    assert_eq!(rest.len(), 5);
    assert_eq!(rest[1], FileEvent::Skipped(SkipReason::NotKernel));
    assert_eq!(rest[2], FileEvent::Skipped(SkipReason::Blank));
    let FileEvent::Line(reaper) = &rest[3] else { panic!("{:?}", rest[3]) };
    assert_eq!(reaper.message, "oom_reaper: reaped process 13567 (dd), now anon-rss:0kB");
    assert_eq!(reaper.since_boot, Some(Duration::from_micros(20_291_692_735)));
    let FileEvent::Line(lossy) = &rest[4] else { panic!("{:?}", rest[4]) };
    assert_eq!(lossy.message, "bad \u{fffd} byte", "the last line needs no newline");
    let counts = source.counts();
    assert_eq!((counts.kernel_lines, counts.boots, counts.not_kernel, counts.blank), (3, 1, 1, 1));
}

#[test]
fn a_gzip_file_is_refused_with_advice() {
    let error = source(b"\x1f\x8b\x08\x00rest").unwrap_err();
    assert!(error.to_string().contains("zcat test.log | oomtrace history --file -"), "{error}");
}

#[test]
fn a_huge_line_is_cut_and_the_next_line_still_read() {
    let mut text = vec![b'x'; LINE_LIMIT_BYTES + 10];
    text.extend_from_slice(b"\nMemory cgroup out of memory: Killed process 1 (a)\n");
    let mut line = Vec::new();
    let mut reader = io::BufReader::with_capacity(4096, Cursor::new(text));
    assert_eq!(read_bounded_line(&mut reader, &mut line).unwrap(), Some(()));
    assert_eq!(line.len(), LINE_LIMIT_BYTES);
    read_bounded_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, b"Memory cgroup out of memory: Killed process 1 (a)");
    assert_eq!(read_bounded_line(&mut reader, &mut line).unwrap(), None);
}

#[test]
fn a_real_file_gets_its_mtime_as_context() {
    let path = std::env::temp_dir().join(format!("oomtrace-klog-file-{}.log", std::process::id()));
    std::fs::write(&path, "[Sun Nov 29 10:58:17 2026] Memory cgroup out of memory: Killed process 13567 (dd)\n")
        .unwrap();
    let source = FileSource::open(&FileInput::from_arg(&path)).unwrap();
    let lines = kernel_lines(source);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].wall.is_some());
    std::fs::remove_file(&path).unwrap();
    let missing = FileSource::open(&FileInput::from_arg(&path)).unwrap_err();
    assert!(matches!(missing, FileError::Open { .. }) && missing.to_string().contains(&path.display().to_string()));
    assert_eq!(FileInput::from_arg(Path::new("-")), FileInput::Stdin);
}

#[test]
fn the_context_is_the_day_written_in_the_zone() {
    let at = SystemTime::try_from("2027-01-01T02:00:00Z".parse::<Timestamp>().unwrap()).unwrap();
    assert_eq!(context(at, TimeZone::UTC).written_on, date(2027, 1, 1));
    assert_eq!(context(at, TimeZone::fixed(jiff::tz::offset(-5))).written_on, date(2026, 12, 31));
}

//! Arbitrary bytes through the three log source parsers: a kmsg record, a journal JSON line,
//! and a saved log's lines (UTF-8 decoded lossily, as the file reader does), saved kmsg records
//! among them joined as `history --file` joins them. None may panic, and each line they yield
//! keeps the invariants the report parser relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_klog::source::file::{FileContext, FileEvent, FileParser};
use oomtrace_klog::source::{journal, kmsg};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = kmsg::parse_record(data) {
        assert!(!record.lines.is_empty(), "a record yields at least one line");
        assert!(record.lines.iter().all(|line| line.seq == Some(record.seq) && !line.message.contains('\n')));
    }
    // The same bytes as a run of records, one a line, through the fragment joiner.
    let mut joiner = kmsg::FragmentJoiner::default();
    for record in data.split(|&b| b == b'\n').filter_map(|line| kmsg::parse_record(line).ok()) {
        assert!(joiner.push(record).iter().all(|record| !record.lines.is_empty()));
    }
    joiner.flush();
    if let Ok(entry) = journal::parse_entry(data) {
        assert!(entry.lines.iter().all(|line| !line.message.contains('\n')));
    }
    let text = String::from_utf8_lossy(data);
    let mut parser = FileParser::new(FileContext::for_year(2026));
    let mut kernel_lines = 0;
    let mut records = 0;
    let mut joiner = kmsg::FragmentJoiner::default();
    for line in text.split('\n') {
        match parser.parse_line(line) {
            FileEvent::Line(line) => {
                kernel_lines += 1;
                assert!(!line.message.contains('\n'));
                joiner.flush();
            }
            FileEvent::Kmsg(record) => {
                kernel_lines += 1;
                records += 1;
                assert!(record.is_kernel() && !record.lines.is_empty());
                assert!(record.lines.iter().all(|line| line.seq == Some(record.seq) && !line.message.contains('\n')));
                joiner.push(record);
            }
            FileEvent::Journal(entry) => {
                kernel_lines += 1;
                assert!(entry.is_kernel() && entry.lines.iter().all(|line| !line.message.contains('\n')));
            }
            _ => {}
        }
    }
    joiner.flush();
    let counts = parser.counts();
    assert_eq!((counts.kernel_lines, counts.kmsg_records), (kernel_lines, records));
    assert!(parser.unrecognised_examples().len() as u64 <= counts.unrecognised.min(8));
});

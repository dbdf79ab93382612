//! The parser's speed, a benchmark figure rather than a timed test (issue 11 asks for a 1 MiB kmsg
//! buffer or a 100 MB syslog file in ≤ 2 s, source included):
//! `cargo test --release -p oomtrace-klog --test throughput -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use common::fixture;
use oomtrace_klog::ReportParser;

#[test]
#[ignore = "a benchmark: run it in release with --ignored --nocapture"]
fn hundred_megabytes_of_real_reports() {
    let lines = fixture("host-6.18-cgroup-v1-dmesg.txt");
    let bytes_per_pass: usize = lines.iter().map(|line| line.message.len() + 1).sum();
    let passes = 100_000_000 / bytes_per_pass + 1;
    let mut parser = ReportParser::new();
    let mut out = Vec::new();
    let started = Instant::now();
    for _ in 0..passes {
        for line in &lines {
            parser.push(line, &mut out);
        }
        out.clear();
    }
    parser.finish(&mut out);
    let elapsed = started.elapsed();
    let megabytes = (passes * bytes_per_pass) as f64 / 1e6;
    println!(
        "{megabytes:.0} MB of messages ({} lines, {} reports) in {:.2} s: {:.0} MB/s",
        parser.stats().lines,
        parser.stats().reports,
        elapsed.as_secs_f64(),
        megabytes / elapsed.as_secs_f64()
    );
    assert_eq!(parser.stats().reports, 49 * passes as u64);
}

//! CPU time from `/proc`, for the benchmarks that report CPU per request.

use std::time::Duration;

/// utime + stime of a `/proc/…/stat` file (a process or one of its threads).
pub fn stat_cpu(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here,
    // in clock ticks of 10 ms (USER_HZ).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

//! Wall-clock helpers: milliseconds since the epoch and RFC 3339 text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 with milliseconds, UTC: `2026-11-24T12:00:00.123Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses RFC 3339 text or a bare number of milliseconds since the epoch,
/// up to the last instant an event id can carry (48 bits of milliseconds:
/// the year 10889); later ones would wrap around in the id bounds.
pub fn parse_instant_ms(s: &str) -> Option<u64> {
    let ms = match s.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_rfc3339_weak(s)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)?,
    };
    (ms < 1 << 48).then_some(ms)
}

/// A duration back from `now`: `15m`, `2h`, `3d`, `1h 30m`, `2h ago`.
pub fn ago_ms(s: &str, now: u64) -> Option<u64> {
    let d = humantime::parse_duration(s.trim().trim_end_matches(" ago")).ok()?;
    Some(now.saturating_sub(d.as_millis().try_into().unwrap_or(u64::MAX)))
}

/// What a `since`/`until` filter takes: [`parse_instant_ms`] or
/// [`ago_ms`].
pub fn parse_instant_at(s: &str, now: u64) -> Option<u64> {
    parse_instant_ms(s).or_else(|| ago_ms(s, now))
}

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

/// Parses RFC 3339 text (any offset: `Z`, `+05:30`, `-08:00`), the same
/// without an offset (`2026-11-24T12:00:00`, or a space for the `T`: taken
/// as UTC), or a bare number of milliseconds since the epoch, up to the
/// last instant an event id can carry (48 bits of milliseconds: the year
/// 10889); later ones would wrap around in the id bounds, earlier than the
/// epoch are refused.
pub fn parse_instant_ms(s: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let ms = match s.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            let t = time::OffsetDateTime::parse(s, &Rfc3339)
                .or_else(|e| match has_zone(s) {
                    true => Err(e),
                    false => time::OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339),
                })
                .ok()?;
            u64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?
        }
    };
    (ms < 1 << 48).then_some(ms)
}

/// Whether RFC 3339-like text names its zone: `Z`, or a sign after the
/// date (an offset).
fn has_zone(s: &str) -> bool {
    s.ends_with(['Z', 'z']) || s.get(10..).is_some_and(|time| time.contains(['+', '-']))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_offsets_move_the_instant() {
        let utc = parse_instant_ms("2026-12-02T16:48:41.112Z").unwrap();
        assert_eq!(utc, 1_796_230_121_112);
        let five = 5 * 3_600_000;
        for (text, want) in [
            ("2026-12-02T16:48:41.112+00:00", utc),
            ("2026-12-02T16:48:41.112+05:00", utc - five),
            ("2026-12-02T16:48:41.112-05:00", utc + five),
            ("2026-12-02T16:48:41+05:00", utc - 112 - five),
            ("2026-12-02T16:48:41-05:00", utc - 112 + five),
            ("2026-12-02T16:48:41.112+05:30", utc - five - 1_800_000),
            // No zone: UTC, as before.
            ("2026-12-02T16:48:41.112", utc),
            ("2026-12-02 16:48:41.112", utc),
            ("2026-12-02T16:48:41Z", utc - 112),
            ("2026-12-02t16:48:41.112z", utc),
            ("2026-12-02t16:48:41.112", utc),
            ("1796230121112", utc),
        ] {
            assert_eq!(parse_instant_ms(text), Some(want), "{text}");
        }
    }

    #[test]
    fn offsets_that_are_not_offsets_are_refused() {
        for text in [
            // humantime read these as UTC, skipping the offset.
            "2026-12-02T16:48:41.112+99:99",
            "2026-12-02T16:48:41.112+ab:cd",
            "2026-12-02T16:48:41.112+garbag",
            "2026-12-02T16:48:41.112+05",
            "2026-12-02T16:48:41+5:00",
            "2026-12-02T16:48:41.112-",
            "2026-12-02T16:48:41.Z",
            "2026-12-02T16:48:60Z",
            "1969-12-31T23:59:59.9995Z",
            "yesterday",
        ] {
            assert_eq!(parse_instant_ms(text), None, "{text}");
        }
    }
}

//! The endpoints page's small chart: events and failures per minute over the
//! last hour, as SVG geometry computed here (plain numbers; the template only
//! places them), so no script or chart library is needed.

/// Minutes shown.
pub const MINUTES: usize = 60;
/// Drawing size in SVG units: 4 units per minute.
pub const WIDTH: u32 = 240;
pub const HEIGHT: u32 = 40;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub h: u32,
    pub fail_y: u32,
    pub fail_h: u32,
    /// Tooltip: "12:04 UTC · 7 events, 2 failed attempts".
    pub title: String,
}

#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub bars: Vec<Bar>,
    pub total: usize,
    pub failed: usize,
    pub peak: usize,
    /// True when the per-page event budget was reached: counts are a floor.
    pub capped: bool,
}

/// Buckets `(received_at_ms, failed)` pairs into the minutes before `now_ms`.
pub fn build(points: &[(u64, bool)], now_ms: u64, capped: bool) -> Chart {
    let mut events = [0usize; MINUTES];
    let mut fails = [0usize; MINUTES];
    let now_min = now_ms / 60_000;
    for &(at, failed) in points {
        let m = at / 60_000;
        if m > now_min || now_min - m >= MINUTES as u64 {
            continue;
        }
        let slot = MINUTES - 1 - (now_min - m) as usize;
        events[slot] += 1;
        if failed {
            fails[slot] += 1;
        }
    }
    draw(events, fails, now_min, capped)
}

/// From per-minute counts (oldest first, `MINUTES` long): the store's
/// per-minute counters, so drawing costs the same however busy the
/// endpoint is. Failures are failed attempts in that minute.
pub fn from_counts(events: &[u64], fails: &[u64], now_ms: u64) -> Chart {
    let mut e = [0usize; MINUTES];
    let mut f = [0usize; MINUTES];
    for (i, (a, b)) in events.iter().zip(fails).take(MINUTES).enumerate() {
        e[i] = *a as usize;
        f[i] = *b as usize;
    }
    draw(e, f, now_ms / 60_000, false)
}

fn draw(events: [usize; MINUTES], fails: [usize; MINUTES], now_min: u64, capped: bool) -> Chart {
    let peak = events.iter().copied().max().unwrap_or(0);
    let scale = |n: usize| -> u32 {
        if peak == 0 || n == 0 {
            0
        } else {
            // At least one unit, so a single event is visible.
            ((n as u64 * HEIGHT as u64).div_ceil(peak as u64) as u32).clamp(1, HEIGHT)
        }
    };
    let bars = (0..MINUTES)
        .filter(|&i| events[i] > 0)
        .map(|i| {
            let h = scale(events[i]);
            let fail_h = scale(fails[i]).min(h);
            let minute = now_min - (MINUTES - 1 - i) as u64;
            let stamp = crate::time::rfc3339_ms(minute * 60_000);
            let hhmm = stamp.get(11..16).unwrap_or("");
            Bar {
                x: i as u32 * (WIDTH / MINUTES as u32),
                y: HEIGHT - h,
                h,
                fail_y: HEIGHT - fail_h,
                fail_h,
                title: format!(
                    "{hhmm} UTC · {} events, {} failed attempts",
                    events[i], fails[i]
                ),
            }
        })
        .collect();
    Chart {
        bars,
        total: events.iter().sum(),
        failed: fails.iter().sum(),
        peak,
        capped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        let now = 1_000 * 60_000 + 30_000;
        let c = build(
            &[
                (now, false),
                (now - 1_000, true),
                (now - 60_000, false),
                (now - 3_600_000, false),
            ],
            now,
            false,
        );
        assert_eq!((c.total, c.failed, c.peak), (3, 1, 2));
        assert_eq!(c.bars.len(), 2);
        let last = c.bars.last().unwrap();
        assert_eq!((last.x, last.h, last.fail_h), (236, 40, 20));
        assert_eq!(c.bars[0].h, 20);
    }
}

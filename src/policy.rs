//! The failure-disable policy as pure rules: what counts as success, and what
//! an attempt's outcome does to an endpoint's consecutive-failure count.
//!
//! No I/O here: `relay` applies the result and persists it in the same batch
//! as the attempt that caused it.

use crate::endpoint::{Endpoint, Status, SuccessCodes, set_status};

/// A status is a success when `success_codes` lists it; no status (connect,
/// TLS or timeout error) is always a failure.
pub fn is_success(status: Option<u16>, codes: &SuccessCodes) -> bool {
    status.is_some_and(|s| codes.contains(s))
}

/// What observing one outcome did to the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The stored endpoint must be rewritten (count or status moved).
    pub changed: bool,
    /// This outcome tripped the policy: the endpoint is now disabled.
    pub disabled_now: bool,
}

/// Counts one attempt to the endpoint's own target. The endpoint is disabled
/// when the count of consecutive failures exceeds `failure_threshold` (with
/// the default 5: on the 6th failure in a row).
pub fn observe(ep: &mut Endpoint, success: bool, now_ms: u64, what: &str) -> Observation {
    if success {
        let changed = ep.consecutive_failures != 0;
        ep.consecutive_failures = 0;
        return Observation {
            changed,
            disabled_now: false,
        };
    }
    ep.consecutive_failures = ep.consecutive_failures.saturating_add(1);
    // A paused endpoint stays paused: the one who paused it decides when
    // it resumes (which resets the count), and gets no disable notice for
    // a delivery that was under way when they paused it.
    let disabled_now =
        ep.status == Status::Active && ep.consecutive_failures > ep.failure_threshold;
    if disabled_now {
        let n = ep.consecutive_failures;
        let reason = format!(
            "{n} consecutive failed deliver{} (threshold {}); last: {what}",
            if n == 1 { "y" } else { "ies" },
            ep.failure_threshold
        );
        set_status(ep, Status::Disabled, Some(reason), now_ms);
    }
    Observation {
        changed: true,
        disabled_now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Slug;

    /// Runs outcomes (true = success) and returns the attempt ordinals (1-based)
    /// at which the endpoint became disabled.
    fn check(threshold: u32, outcomes: &[bool]) -> Vec<usize> {
        let mut ep = Endpoint::new(Slug::parse("t").unwrap(), 0);
        ep.failure_threshold = threshold;
        let mut disabled_at = Vec::new();
        for (i, ok) in outcomes.iter().enumerate() {
            if observe(&mut ep, *ok, 0, "500").disabled_now {
                disabled_at.push(i + 1);
            }
        }
        disabled_at
    }

    #[test]
    fn disables_on_the_failure_after_the_threshold() {
        assert_eq!(check(5, &[false; 5]), Vec::<usize>::new());
        assert_eq!(check(5, &[false; 6]), vec![6]);
        // WooCommerce's own code disables on the 7th: threshold 6.
        assert_eq!(check(6, &[false; 7]), vec![7]);
        assert_eq!(check(0, &[false]), vec![1]);
        // Disabled once, not again on later failures.
        assert_eq!(check(5, &[false; 9]), vec![6]);
    }

    #[test]
    fn a_paused_endpoint_is_not_disabled_by_failures() {
        let mut ep = Endpoint::new(Slug::parse("t").unwrap(), 0);
        ep.status = Status::Paused;
        for _ in 0..10 {
            assert!(!observe(&mut ep, false, 0, "500").disabled_now);
        }
        assert_eq!(ep.status, Status::Paused);
        assert_eq!(ep.consecutive_failures, 10);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut o = vec![false; 5];
        o.push(true);
        o.extend([false; 5]);
        assert_eq!(check(5, &o), Vec::<usize>::new());
        o.push(false);
        assert_eq!(check(5, &o), vec![12]);
    }

    #[test]
    fn success_codes_judge_statuses() {
        let codes = SuccessCodes::default();
        assert!(is_success(Some(200), &codes));
        assert!(is_success(Some(302), &codes));
        assert!(!is_success(Some(303), &codes));
        assert!(!is_success(None, &codes));
    }
}

//! Memory budgets for request bodies: ingest holds a body whole until it
//! is stored and sent, and a budget bounds how many bytes of them are in
//! memory at once, so slow senders (or a slow mirror) cannot exhaust the
//! host. A [`BodyShare`] is one body's part of a budget, given back when
//! its last holder drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many request-body bytes ingest holds in memory at once (being
/// received, stored or forwarded), at least: 40 bodies of the default
/// `--max-body`, far beyond what webhooks send. Mirror copies have a
/// quarter of it apart.
pub const BODY_MEMORY: usize = 1 << 30;

/// The request bodies ingest holds in memory, against one limit
/// ([`BODY_MEMORY`], or `--max-body` when larger, so that one body of
/// the largest size always fits).
pub struct BodyBudget {
    held: AtomicUsize,
    limit: AtomicUsize,
    max_body: usize,
}

impl BodyBudget {
    pub fn new(max_body: usize) -> BodyBudget {
        BodyBudget {
            held: AtomicUsize::new(0),
            limit: AtomicUsize::new(BODY_MEMORY.max(max_body)),
            max_body,
        }
    }

    /// Sets the limit (at least `--max-body`) before serving.
    pub fn set_limit(&self, bytes: usize) {
        self.limit
            .store(bytes.max(self.max_body), Ordering::Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes held now (for `/metrics`).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// One body's share of the [`BodyBudget`], given back when the last
/// holder of the body (the request, its forward, its mirror copy) drops it.
pub struct BodyShare {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyShare {
    pub(crate) fn new(budget: &Arc<BodyBudget>) -> BodyShare {
        BodyShare {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Takes `n` more bytes; false, taking nothing, when they do not fit.
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let before = self.budget.held.fetch_add(n, Ordering::AcqRel);
        if before + n > self.budget.limit() {
            self.budget.held.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.bytes += n;
        true
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A share of `n` bytes, waited for until they fit: for work that can
    /// wait its turn (a queued delivery) rather than be refused. More than
    /// the whole budget (a body stored under a larger `--max-body`) counts
    /// as the whole budget, so it still goes, alone.
    pub(crate) async fn wait_for(budget: &Arc<BodyBudget>, n: usize) -> BodyShare {
        let mut share = BodyShare::new(budget);
        let n = n.min(budget.limit());
        let mut wait = std::time::Duration::from_millis(5);
        while !share.grow(n) {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_millis(500));
        }
        share
    }
}

impl Drop for BodyShare {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_share_larger_than_the_budget_waits_for_all_of_it() {
        let budget = Arc::new(BodyBudget::new(100));
        budget.set_limit(100);
        let mut held = BodyShare::new(&budget);
        assert!(held.grow(30));
        let waiting = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { BodyShare::wait_for(&budget, 250).await.bytes() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("a share larger than the budget never fitted");
        assert_eq!(got.unwrap(), 100);
        assert_eq!(budget.held(), 0);
    }
}

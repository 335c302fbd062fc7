//! One replay of an event at a time: a bulk job decides whether an event
//! still needs sending by the attempts already recorded, so two jobs (a
//! double-clicked "Replay all matching", a CLI that sent its request
//! twice) sending the same event at once would each find none and both
//! send it. Taking turns, the later one finds the earlier one's success.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Default)]
pub struct Turns {
    busy: Mutex<HashSet<String>>,
    freed: Notify,
}

/// Held while an event is replayed; the next waiting replay of it goes
/// when this is dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    id: String,
}

impl Turns {
    /// Waits until no other replay of `id` is under way, and takes the turn.
    pub async fn take(&self, id: &str) -> Turn<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a turn given back between the
            // look and the wait is not missed.
            freed.as_mut().enable();
            if self.lock().insert(id.to_string()) {
                return Turn {
                    turns: self,
                    id: id.to_string(),
                };
            }
            freed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.lock().remove(&self.id);
        self.turns.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::Turns;

    #[tokio::test]
    async fn one_turn_per_event_and_the_next_goes_when_it_ends() {
        let turns = Turns::default();
        let first = turns.take("a").await;
        let _other = turns.take("b").await;
        let mut second = std::pin::pin!(turns.take("a"));
        assert!(
            futures_util::poll!(second.as_mut()).is_pending(),
            "a second replay of one event waits"
        );
        drop(first);
        assert!(futures_util::poll!(second.as_mut()).is_ready());
    }
}

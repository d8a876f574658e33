//! Write generations that keep an L2 read from filling L1 with a value that a concurrent
//! write (set or delete) of the same key has made old.
//!
//! A reader takes a [`Ticket`] before it reads L2 and fills L1 through
//! [`WriteVersions::fill_if_unchanged`], which fills only when no write of the key began
//! since the ticket and none is in progress. A writer holds a [`WriteGuard`] from before it
//! touches either tier until it is done with both. Beginning a write waits for fills in
//! progress, so a fill that passed the check lands in L1 before the writer touches L1.
//!
//! Keys share a fixed number of stripes (one generation each), so a write can also refuse
//! the fill of another key in its stripe: that fill is skipped (the next read goes to L2
//! again), never wrong.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::RwLock;

use crate::tier::CacheKey;

const STRIPES: usize = 1024;

#[derive(Default)]
struct Stripe {
    /// Fills hold it shared while they check and insert; a write takes it exclusively to begin.
    fill: RwLock<()>,
    /// Bumped when a write begins and when it ends.
    generation: AtomicU64,
    /// Writes in progress.
    writing: AtomicU64,
}

pub struct WriteVersions {
    stripes: Box<[Stripe]>,
    hasher: RandomState,
}

/// The state of a key's stripe before an L2 read.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    generation: u64,
}

/// A write in progress; ends when dropped (also on a panic or a cancelled future).
pub struct WriteGuard {
    versions: Arc<WriteVersions>,
    stripe: usize,
}

impl Default for WriteVersions {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl WriteVersions {
    fn stripe_of(&self, key: &CacheKey) -> usize {
        // STRIPES is a power of two much smaller than u64::MAX: the cast keeps the low bits.
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    /// Taken before reading `key` from L2.
    pub fn ticket(&self, key: &CacheKey) -> Ticket {
        let stripe = self.stripe_of(key);
        Ticket {
            stripe,
            generation: self.stripes[stripe].generation.load(Ordering::SeqCst),
        }
    }

    /// Runs `fill` (an L1 insert) when no write of the ticket's stripe began since the ticket
    /// and none is in progress; no write begins until it is done. Whether it ran.
    pub async fn fill_if_unchanged(&self, ticket: Ticket, fill: impl Future<Output = ()>) -> bool {
        let stripe = &self.stripes[ticket.stripe];
        let _shared = stripe.fill.read().await;
        let unchanged = stripe.generation.load(Ordering::SeqCst) == ticket.generation
            && stripe.writing.load(Ordering::SeqCst) == 0;
        if unchanged {
            fill.await;
        }
        unchanged
    }

    /// Call before touching either tier for `key`; hold the guard until both are done.
    pub async fn begin_write(self: &Arc<Self>, key: &CacheKey) -> WriteGuard {
        self.begin_stripe(self.stripe_of(key)).await
    }

    /// [`WriteVersions::begin_write`] for every key at once; hold until done.
    pub async fn begin_write_all(self: &Arc<Self>) -> Vec<WriteGuard> {
        let mut guards = Vec::with_capacity(STRIPES);
        for index in 0..STRIPES {
            guards.push(self.begin_stripe(index).await);
        }
        guards
    }

    async fn begin_stripe(self: &Arc<Self>, index: usize) -> WriteGuard {
        let stripe = &self.stripes[index];
        let _exclusive = stripe.fill.write().await;
        stripe.writing.fetch_add(1, Ordering::SeqCst);
        stripe.generation.fetch_add(1, Ordering::SeqCst);
        WriteGuard {
            versions: self.clone(),
            stripe: index,
        }
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let stripe = &self.versions.stripes[self.stripe];
        // Generation first: a reader that saw `writing` drop to zero also sees the new
        // generation, so a ticket taken during the write cannot fill.
        stripe.generation.fetch_add(1, Ordering::SeqCst);
        stripe.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;

    use futures::poll;

    fn key(k: &str) -> CacheKey {
        CacheKey::new("ns", k)
    }

    #[tokio::test]
    async fn fills_only_without_a_write_since_the_ticket() {
        let versions = Arc::new(WriteVersions::default());
        let ticket = versions.ticket(&key("k"));
        assert!(versions.fill_if_unchanged(ticket, async {}).await);

        let before = versions.ticket(&key("k"));
        let write = versions.begin_write(&key("k")).await;
        let during = versions.ticket(&key("k"));
        assert!(!versions.fill_if_unchanged(before, async {}).await);
        assert!(!versions.fill_if_unchanged(during, async {}).await);
        drop(write);
        assert!(!versions.fill_if_unchanged(before, async {}).await);
        assert!(!versions.fill_if_unchanged(during, async {}).await);
        let after = versions.ticket(&key("k"));
        assert!(versions.fill_if_unchanged(after, async {}).await);
    }

    #[tokio::test]
    async fn a_refused_fill_does_not_run() {
        let versions = Arc::new(WriteVersions::default());
        let ticket = versions.ticket(&key("k"));
        let _write = versions.begin_write(&key("k")).await;
        let mut ran = false;
        assert!(
            !versions
                .fill_if_unchanged(ticket, async { ran = true })
                .await
        );
        assert!(!ran);
    }

    #[tokio::test]
    async fn a_write_begins_only_after_a_fill_in_progress() {
        let versions = Arc::new(WriteVersions::default());
        let (done, wait) = tokio::sync::oneshot::channel::<()>();
        let ticket = versions.ticket(&key("k"));
        let mut fill = pin!(versions.fill_if_unchanged(ticket, async {
            wait.await.expect("sender kept");
        }));
        assert!(poll!(fill.as_mut()).is_pending(), "the fill waits inside");
        let k = key("k");
        let mut write = pin!(versions.begin_write(&k));
        assert!(poll!(write.as_mut()).is_pending(), "the write waits for it");
        done.send(()).expect("fill waiting");
        assert!(fill.await);
        let _write = write.await;
    }
}

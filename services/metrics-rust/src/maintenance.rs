//! Background work of the metrics service: removing series that stopped receiving samples,
//! and closing the steps of the per-agent summaries. Both stop when the store is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::Clock;
use crate::metrics::ServiceMetrics;
use crate::store::Store;
use crate::summary::Summaries;

/// How often expiry looks for idle series: a tenth of the TTL, between 100 ms and 10 s, so
/// a series leaves at most about 10 % after its TTL.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// Spawns the expiry and summary loops on the current Tokio runtime.
pub fn spawn(
    store: &Arc<Store>,
    summaries: &Arc<Summaries>,
    metrics: &Arc<ServiceMetrics>,
    clock: Clock,
    ttl: Duration,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let weak = Arc::downgrade(store);
    let metrics = Arc::clone(metrics);
    every(sweep_interval(ttl), weak.clone(), move |store| {
        metrics.series_expired(store.expire(clock.now(), ttl_ms));
    });
    let summaries = Arc::clone(summaries);
    let step = Duration::from_millis(summaries.step_ms());
    every(step, weak, move |store| summaries.tick(store, clock.now()));
}

fn every(period: Duration, store: Weak<Store>, work: impl Fn(&Store) + Send + 'static) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            work(&store);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_follow_the_ttl_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(300)),
            Duration::from_secs(10)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
    }
}

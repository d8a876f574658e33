//! Time as the store sees it: a monotonic millisecond count for expiry and summaries, and
//! the wall clock for exemplars. Tests pass their own `Now` values instead of sleeping.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    /// Milliseconds since the service started (monotonic).
    pub mono_ms: u64,
    /// Unix time in seconds.
    pub unix_s: f64,
}

impl Now {
    /// A moment for tests: `mono_ms` after start, at Unix time 1.7e9 + the same offset.
    pub fn at(mono_ms: u64) -> Self {
        Self {
            mono_ms,
            unix_s: 1.7e9 + mono_ms as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Now {
            mono_ms: u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
            unix_s,
        }
    }
}

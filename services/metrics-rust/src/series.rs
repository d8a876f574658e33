//! One series' value: atomics that any number of ingest streams update without a lock
//! (a counter's or gauge's f64 bits, a histogram's per-bucket counts), plus the latest
//! exemplar of each histogram bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::sample::{ExemplarView, HistogramView, Kind};

/// An f64 kept as its bits in an `AtomicU64`.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, delta: f64) {
        // The closure always returns Some, so this cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + delta).to_bits())
            });
    }
}

/// The exemplar kept for one bucket: the latest traced observation that fell in it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExemplar {
    pub trace_id: Box<str>,
    pub value: f64,
    /// Unix time in seconds.
    pub time: f64,
}

#[derive(Debug)]
pub struct HistogramCells {
    /// Per bucket, not cumulative; the last is +Inf. The total count is their sum, so a
    /// scrape never shows a count that disagrees with its buckets.
    buckets: Box<[AtomicU64]>,
    sum: AtomicF64,
    /// Allocated at the first exemplar: most histograms never get one.
    exemplars: OnceLock<Box<[Mutex<Option<StoredExemplar>>]>>,
}

/// A consistent-enough copy of a histogram: bucket counts and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl HistogramCells {
    fn new(buckets: usize) -> Self {
        Self {
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
            exemplars: OnceLock::new(),
        }
    }

    /// Per-bucket counts, read one by one (a scrape does not copy them).
    pub fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed))
    }

    pub fn sum(&self) -> f64 {
        self.sum.get()
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.get(),
        }
    }

    /// The exemplar of each bucket, where one was recorded.
    pub fn exemplars(&self) -> Option<Vec<Option<StoredExemplar>>> {
        let slots = self.exemplars.get()?;
        Some(
            slots
                .iter()
                .map(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .collect(),
        )
    }

    fn record_exemplar(&self, bucket: usize, exemplar: &ExemplarView<'_>, received: f64) {
        let slots = self
            .exemplars
            .get_or_init(|| (0..self.buckets.len()).map(|_| Mutex::new(None)).collect());
        let time = exemplar
            .time
            .map_or(received, |(s, n)| s as f64 + f64::from(n) / 1e9);
        *slots[bucket].lock().unwrap_or_else(|e| e.into_inner()) = Some(StoredExemplar {
            // A trace id is checked to be ASCII hex.
            trace_id: String::from_utf8_lossy(exemplar.trace_id).into(),
            value: exemplar.value,
            time,
        });
    }
}

#[derive(Debug)]
pub enum Cells {
    Counter(AtomicF64),
    Gauge(AtomicF64),
    Histogram(HistogramCells),
}

/// The bucket a value falls in: the first whose upper bound is >= value; the +Inf bucket
/// (index `bounds.len()`) when none is.
pub fn bucket_of(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|&upper| upper < value)
}

impl Cells {
    /// Empty cells of `kind`; `bounds` are the family's histogram bounds.
    pub fn new(kind: Kind, bounds: &[f64]) -> Self {
        match kind {
            Kind::Counter => Cells::Counter(AtomicF64::default()),
            Kind::Gauge => Cells::Gauge(AtomicF64::default()),
            Kind::Histogram => Cells::Histogram(HistogramCells::new(bounds.len() + 1)),
        }
    }

    /// Applies a validated sample whose histogram bounds (if any) equal `bounds`.
    /// `received` is the Unix time in seconds, for exemplars without their own time.
    pub fn apply(
        &self,
        value: f64,
        histogram: Option<&HistogramView<'_>>,
        exemplars: &[ExemplarView<'_>],
        bounds: &[f64],
        received: f64,
    ) {
        match self {
            Cells::Counter(total) => total.add(value),
            Cells::Gauge(current) => current.set(value),
            Cells::Histogram(cells) => {
                match histogram {
                    Some(data) => {
                        for (cell, &count) in cells.buckets.iter().zip(data.counts.iter()) {
                            if count > 0 {
                                cell.fetch_add(count, Ordering::Relaxed);
                            }
                        }
                        if data.sum != 0.0 {
                            cells.sum.add(data.sum);
                        }
                    }
                    None => {
                        cells.buckets[bucket_of(bounds, value)].fetch_add(1, Ordering::Relaxed);
                        cells.sum.add(value);
                    }
                }
                for exemplar in exemplars {
                    cells.record_exemplar(bucket_of(bounds, exemplar.value), exemplar, received);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const BOUNDS: [f64; 3] = [0.1, 1.0, 10.0];

    #[test]
    fn buckets_are_upper_inclusive_and_overflow_to_inf() {
        assert_eq!(bucket_of(&BOUNDS, -5.0), 0);
        assert_eq!(bucket_of(&BOUNDS, 0.1), 0);
        assert_eq!(bucket_of(&BOUNDS, 0.100001), 1);
        assert_eq!(bucket_of(&BOUNDS, 10.0), 2);
        assert_eq!(bucket_of(&BOUNDS, 11.0), 3);
    }

    #[test]
    fn counter_adds_gauge_sets() {
        let counter = Cells::new(Kind::Counter, &[]);
        let gauge = Cells::new(Kind::Gauge, &[]);
        for v in [1.5, 2.0] {
            counter.apply(v, None, &[], &[], 0.0);
            gauge.apply(v, None, &[], &[], 0.0);
        }
        match (&counter, &gauge) {
            (Cells::Counter(c), Cells::Gauge(g)) => assert_eq!((c.get(), g.get()), (3.5, 2.0)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn histogram_takes_observations_and_aggregates_with_exemplars() {
        let cells = Cells::new(Kind::Histogram, &BOUNDS);
        cells.apply(0.5, None, &[], &BOUNDS, 0.0);
        let aggregated = HistogramView {
            bounds: Cow::Borrowed(&BOUNDS),
            counts: Cow::Owned(vec![2, 0, 1, 4]),
            sum: 100.0,
        };
        let exemplar = ExemplarView {
            trace_id: b"4bf92f3577b34da6a3ce929d0e0e4736",
            value: 50.0,
            time: None,
        };
        cells.apply(0.0, Some(&aggregated), &[exemplar], &BOUNDS, 1234.5);
        let Cells::Histogram(h) = &cells else {
            unreachable!()
        };
        let snapshot = h.snapshot();
        assert_eq!(snapshot.buckets, vec![2, 1, 1, 4]);
        assert_eq!(snapshot.count(), 8);
        assert_eq!(snapshot.sum, 100.5);
        let exemplars = h.exemplars().expect("exemplars");
        assert_eq!(exemplars[..3], [None, None, None]);
        assert_eq!(
            exemplars[3],
            Some(StoredExemplar {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                value: 50.0,
                time: 1234.5
            })
        );
    }
}

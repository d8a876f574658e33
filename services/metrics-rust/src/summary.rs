//! Per agent and model summaries over a recent window (`SummarizeAgents`), read from the
//! agent LLM metrics that workers send (names below, documented in docs/metrics.md).
//!
//! Every `step` the summaries take what each series gained since the step before (a series
//! that is new, or that expired and came back, counts from zero, as PromQL's `increase`
//! does with resets) and keep these per-step gains per (agent, model) for `retention`. A
//! window adds the steps it covers and the gains since the last step.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hashbrown::Equivalent;

use crate::clock::Now;
use crate::series::Cells;
use crate::store::{Series, Store};

/// LLM requests that reached the provider: counter, labels agent, model, outcome.
pub const LLM_REQUESTS: &str = "taskloom_agent_llm_requests";
/// Their latency: histogram, labels agent, model.
pub const LLM_REQUEST_DURATION: &str = "taskloom_agent_llm_request_duration_seconds";
/// Tokens spent: counter, labels agent, model, kind (prompt|completion).
pub const LLM_TOKENS: &str = "taskloom_agent_llm_tokens";
/// LLM cache lookups: counter, labels agent, model, result (hit|miss).
pub const LLM_CACHE: &str = "taskloom_agent_llm_cache";
/// The `outcome` of a failed request.
pub const OUTCOME_ERROR: &str = "error";
/// The `result` of a cache hit.
pub const RESULT_HIT: &str = "hit";

/// Gains of one (agent, model) over some time.
#[derive(Debug, Clone, Default, PartialEq)]
struct Gains {
    requests: f64,
    errors: f64,
    tokens: f64,
    cache_hits: f64,
    cache_lookups: f64,
    /// Latency histogram bucket gains, with the bounds they belong to.
    latency: Option<(Arc<[f64]>, Vec<u64>)>,
}

impl Gains {
    fn add(&mut self, other: &Gains) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.tokens += other.tokens;
        self.cache_hits += other.cache_hits;
        self.cache_lookups += other.cache_lookups;
        if let Some((bounds, buckets)) = &other.latency {
            self.add_latency(bounds, buckets);
        }
    }

    fn add_latency(&mut self, bounds: &Arc<[f64]>, buckets: &[u64]) {
        match &mut self.latency {
            Some((mine, sums)) if mine.as_ref() == bounds.as_ref() => {
                for (sum, b) in sums.iter_mut().zip(buckets) {
                    *sum += b;
                }
            }
            // A metric recreated with other bounds: the newer bounds win.
            _ => self.latency = Some((Arc::clone(bounds), buckets.to_vec())),
        }
    }
}

type AgentModel = (String, String);

/// An (agent, model) key borrowed from a series' labels: finds its gains without
/// allocating. Hashes as `AgentModel` does (field by field, `str` as `String`).
#[derive(Hash)]
struct AgentModelRef<'a>(&'a str, &'a str);

impl Equivalent<AgentModel> for AgentModelRef<'_> {
    fn equivalent(&self, key: &AgentModel) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl From<&AgentModelRef<'_>> for AgentModel {
    fn from(key: &AgentModelRef<'_>) -> Self {
        (key.0.to_string(), key.1.to_string())
    }
}

type GainsByAgent = hashbrown::HashMap<AgentModel, Gains>;

/// A series' cumulative value when last looked at.
enum Baseline {
    Value(f64),
    Buckets(Vec<u64>),
}

/// Keyed by the series' address; the `Arc` keeps the address from being reused.
type Baselines = HashMap<usize, (Arc<Series>, Baseline)>;

struct Step {
    start_ms: u64,
    gains: GainsByAgent,
}

struct State {
    /// When the newest step ended (or the summaries started).
    last_tick_ms: u64,
    baselines: Baselines,
    steps: VecDeque<Step>,
}

/// One (agent, model) over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSummary {
    pub agent: String,
    pub model: String,
    pub requests: f64,
    pub requests_per_second: f64,
    pub errors: f64,
    pub error_ratio: Option<f64>,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p90_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
    pub tokens: f64,
    pub tokens_per_second: f64,
    pub cache_hit_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub agents: Vec<AgentSummary>,
    /// The window covered, in milliseconds.
    pub window_ms: u64,
}

/// A window outside what the summaries keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOutOfRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

pub struct Summaries {
    step_ms: u64,
    retention_ms: u64,
    state: Mutex<State>,
}

/// The default window when a request sets none.
pub const DEFAULT_WINDOW_MS: u64 = 5 * 60 * 1000;

impl Summaries {
    pub fn new(step_ms: u64, retention_ms: u64, now: Now) -> Self {
        Self {
            step_ms,
            retention_ms,
            state: Mutex::new(State {
                last_tick_ms: now.mono_ms,
                baselines: HashMap::new(),
                steps: VecDeque::new(),
            }),
        }
    }

    pub fn step_ms(&self) -> u64 {
        self.step_ms
    }

    /// The window used when a request sets none: 5 minutes, or the retention if shorter.
    pub fn default_window_ms(&self) -> u64 {
        DEFAULT_WINDOW_MS.min(self.retention_ms)
    }

    /// Closes a step: records what every agent series gained since the last one.
    pub fn tick(&self, store: &Store, now: Now) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut baselines = Baselines::new();
        let gains = gains_since(store, &state.baselines, Some(&mut baselines));
        let start_ms = state.last_tick_ms;
        state.steps.push_back(Step { start_ms, gains });
        state.baselines = baselines;
        state.last_tick_ms = now.mono_ms;
        let oldest = now.mono_ms.saturating_sub(self.retention_ms);
        while state.steps.front().is_some_and(|s| s.start_ms < oldest) {
            state.steps.pop_front();
        }
    }

    /// Summaries over the last `window_ms`, optionally of one agent and/or model.
    pub fn summarize(
        &self,
        store: &Store,
        window_ms: u64,
        now: Now,
        agent: Option<&str>,
        model: Option<&str>,
    ) -> Result<Summary, WindowOutOfRange> {
        if window_ms < self.step_ms || window_ms > self.retention_ms {
            return Err(WindowOutOfRange {
                min_ms: self.step_ms,
                max_ms: self.retention_ms,
            });
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let live = gains_since(store, &state.baselines, None);
        let since = now.mono_ms.saturating_sub(window_ms);
        let mut start_ms = state.last_tick_ms;
        let mut totals: BTreeMap<AgentModel, Gains> = BTreeMap::new();
        let steps = state.steps.iter().rev().take_while(|s| s.start_ms >= since);
        for gains in steps
            .map(|s| {
                start_ms = s.start_ms;
                &s.gains
            })
            .chain([&live])
        {
            for (key, g) in gains {
                let wanted = agent.is_none_or(|a| a == key.0) && model.is_none_or(|m| m == key.1);
                if wanted {
                    totals.entry(key.clone()).or_default().add(g);
                }
            }
        }
        let window_ms = now.mono_ms.saturating_sub(start_ms);
        let seconds = window_ms as f64 / 1000.0;
        let per_second = |v: f64| if seconds > 0.0 { v / seconds } else { 0.0 };
        let ratio = |part: f64, whole: f64| (whole > 0.0).then(|| part / whole);
        let agents = totals
            .into_iter()
            .map(|((agent, model), g)| {
                let quantile = |q| {
                    g.latency
                        .as_ref()
                        .and_then(|(bounds, buckets)| histogram_quantile(q, bounds, buckets))
                };
                AgentSummary {
                    agent,
                    model,
                    requests: g.requests,
                    requests_per_second: per_second(g.requests),
                    errors: g.errors,
                    error_ratio: ratio(g.errors, g.requests),
                    latency_p50_seconds: quantile(0.5),
                    latency_p90_seconds: quantile(0.9),
                    latency_p99_seconds: quantile(0.99),
                    tokens: g.tokens,
                    tokens_per_second: per_second(g.tokens),
                    cache_hit_ratio: ratio(g.cache_hits, g.cache_lookups),
                }
            })
            .collect();
        Ok(Summary { agents, window_ms })
    }
}

/// What each agent series gained since `baselines`, per (agent, model); the series'
/// current values go to `next` when the caller keeps them as the new baselines.
fn gains_since(
    store: &Store,
    baselines: &Baselines,
    mut next: Option<&mut Baselines>,
) -> GainsByAgent {
    let mut gains = GainsByAgent::new();
    for name in [LLM_REQUESTS, LLM_REQUEST_DURATION, LLM_TOKENS, LLM_CACHE] {
        let Some(family) = store.family(name) else {
            continue;
        };
        let bounds: Arc<[f64]> = family.bounds().into();
        family.for_each_shard(|series| {
            for s in series {
                let Some(agent) = s.label("agent") else {
                    continue;
                };
                let key = AgentModelRef(agent, s.label("model").unwrap_or(""));
                let id = Arc::as_ptr(s) as usize;
                let before = baselines.get(&id).map(|(_, b)| b);
                let entry = gains.entry_ref(&key).or_default();
                match &s.cells {
                    Cells::Counter(total) => {
                        let now = total.get();
                        let gained = match before {
                            Some(Baseline::Value(then)) if *then <= now => now - then,
                            _ => now,
                        };
                        match name {
                            LLM_REQUESTS => {
                                entry.requests += gained;
                                if s.label("outcome") == Some(OUTCOME_ERROR) {
                                    entry.errors += gained;
                                }
                            }
                            LLM_TOKENS => entry.tokens += gained,
                            LLM_CACHE => {
                                entry.cache_lookups += gained;
                                if s.label("result") == Some(RESULT_HIT) {
                                    entry.cache_hits += gained;
                                }
                            }
                            _ => {}
                        }
                        if let Some(next) = next.as_deref_mut() {
                            next.insert(id, (Arc::clone(s), Baseline::Value(now)));
                        }
                    }
                    Cells::Histogram(h) if name == LLM_REQUEST_DURATION => {
                        let now = h.snapshot().buckets;
                        let gained: Vec<u64> = match before {
                            Some(Baseline::Buckets(then)) if then.len() == now.len() => now
                                .iter()
                                .zip(then)
                                .map(|(n, t)| n.saturating_sub(*t))
                                .collect(),
                            _ => now.clone(),
                        };
                        entry.add_latency(&bounds, &gained);
                        if let Some(next) = next.as_deref_mut() {
                            next.insert(id, (Arc::clone(s), Baseline::Buckets(now)));
                        }
                    }
                    // The agent metrics under another kind than documented: not summarized.
                    _ => {}
                }
            }
        });
    }
    gains
}

/// The `q` quantile of per-bucket counts as PromQL's `histogram_quantile` estimates it:
/// linear within the bucket, the lowest bucket starting at 0 (if its bound is positive),
/// and the highest finite bound when the quantile falls in +Inf.
pub fn histogram_quantile(q: f64, bounds: &[f64], buckets: &[u64]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &count) in buckets.iter().enumerate() {
        let cumulative = below + count;
        if cumulative as f64 >= rank && count > 0 {
            let Some(&upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = match i {
                0 if upper > 0.0 => 0.0,
                0 => return Some(upper),
                _ => bounds[i - 1],
            };
            return Some(lower + (upper - lower) * (rank - below as f64) / count as f64);
        }
        below = cumulative;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{HistogramView, SampleView};
    use crate::store::Limits;
    use std::borrow::Cow;
    use taskloom_proto::v1::MetricKind;

    const BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];

    #[test]
    fn a_borrowed_agent_model_finds_the_owned_key() {
        let mut gains = GainsByAgent::new();
        gains.insert(("a".into(), "m".into()), Gains::default());
        assert!(gains.get(&AgentModelRef("a", "m")).is_some());
        assert!(gains.get(&AgentModelRef("a", "")).is_none());
        gains.entry_ref(&AgentModelRef("a", "m")).or_default();
        assert_eq!(gains.len(), 1, "the entry was found, not added again");
    }

    fn store() -> Store {
        Store::new(Limits {
            max_series: 1000,
            max_series_per_metric: 1000,
        })
    }

    fn counter<'a>(name: &'a str, value: f64, labels: &[(&'a str, &'a str)]) -> SampleView<'a> {
        SampleView::of(name, MetricKind::Counter, value, labels)
    }

    fn latency<'a>(counts: &'a [u64], labels: &[(&'a str, &'a str)]) -> SampleView<'a> {
        SampleView {
            histogram: Some(Box::new(HistogramView {
                bounds: Cow::Borrowed(&BOUNDS),
                counts: Cow::Borrowed(counts),
                sum: 1.0,
            })),
            ..SampleView::of(LLM_REQUEST_DURATION, MetricKind::Histogram, 0.0, labels)
        }
    }

    /// One agent's traffic: `ok` and `failed` requests, tokens, cache hits and misses.
    fn traffic<'a>(agent: &'a str, ok: f64, failed: f64, tokens: f64) -> Vec<SampleView<'a>> {
        let am = |extra: (&'a str, &'a str)| vec![("agent", agent), ("model", "m1"), extra];
        vec![
            counter(
                "taskloom_agent_llm_requests_total",
                ok,
                &am(("outcome", "ok")),
            ),
            counter(
                "taskloom_agent_llm_requests_total",
                failed,
                &am(("outcome", "error")),
            ),
            counter(
                "taskloom_agent_llm_tokens_total",
                tokens,
                &am(("kind", "prompt")),
            ),
            counter(
                "taskloom_agent_llm_cache_total",
                3.0,
                &am(("result", "hit")),
            ),
            counter(
                "taskloom_agent_llm_cache_total",
                1.0,
                &am(("result", "miss")),
            ),
        ]
    }

    #[test]
    fn quantiles_interpolate_like_promql() {
        // 10 in (0, 0.1], 10 in (0.1, 0.5], none above.
        let buckets = [10, 10, 0, 0];
        let near = |q, want: f64| {
            let got = histogram_quantile(q, &BOUNDS, &buckets).expect("some");
            assert!((got - want).abs() < 1e-12, "q{q}: {got} != {want}");
        };
        near(0.5, 0.1);
        near(0.25, 0.05);
        near(0.75, 0.3);
        assert_eq!(histogram_quantile(0.99, &BOUNDS, &[0, 0, 0, 5]), Some(1.0));
        assert_eq!(histogram_quantile(0.5, &BOUNDS, &[0, 0, 0, 0]), None);
    }

    #[test]
    fn a_window_sums_the_steps_it_covers_and_the_gains_since() {
        let store = store();
        let summaries = Summaries::new(10_000, 3_600_000, Now::at(0));
        let ingest = |mut samples: Vec<SampleView<'_>>, at| {
            store.ingest(&mut samples, Now::at(at)).expect("valid");
        };
        ingest(traffic("a", 8.0, 2.0, 100.0), 1_000);
        ingest(
            vec![latency(&[10, 10, 0, 0], &[("agent", "a"), ("model", "m1")])],
            1_000,
        );
        summaries.tick(&store, Now::at(10_000));
        ingest(traffic("a", 8.0, 2.0, 100.0), 15_000);
        summaries.tick(&store, Now::at(20_000));
        ingest(traffic("b", 1.0, 0.0, 0.0), 25_000);

        // Everything since start: 30 s.
        let all = summaries
            .summarize(&store, 60_000, Now::at(30_000), None, None)
            .expect("in range");
        assert_eq!(all.window_ms, 30_000);
        assert_eq!(all.agents.len(), 2);
        let a = &all.agents[0];
        assert_eq!((a.agent.as_str(), a.model.as_str()), ("a", "m1"));
        assert_eq!((a.requests, a.errors, a.tokens), (20.0, 4.0, 200.0));
        assert_eq!(a.requests_per_second, 20.0 / 30.0);
        assert_eq!(a.error_ratio, Some(0.2));
        assert_eq!(a.cache_hit_ratio, Some(0.75));
        assert_eq!(a.latency_p50_seconds, Some(0.1));
        let p90 = a.latency_p90_seconds.expect("p90");
        assert!((p90 - 0.42).abs() < 1e-9, "{p90}");

        // The last 10 s: only the step that started at 20 s and the live gains.
        let recent = summaries
            .summarize(&store, 10_000, Now::at(30_000), None, None)
            .expect("in range");
        assert_eq!(recent.window_ms, 10_000);
        let names: Vec<_> = recent.agents.iter().map(|s| s.agent.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(recent.agents[0].requests, 0.0);
        assert_eq!(recent.agents[0].latency_p50_seconds, None);
        assert_eq!(recent.agents[1].requests, 1.0);
        assert_eq!(recent.agents[1].cache_hit_ratio, Some(0.75));

        let only_b = summaries
            .summarize(&store, 60_000, Now::at(30_000), Some("b"), Some("m1"))
            .expect("in range");
        assert_eq!(only_b.agents.len(), 1);
        let none = summaries
            .summarize(&store, 60_000, Now::at(30_000), None, Some("other"))
            .expect("in range");
        assert!(none.agents.is_empty());
    }

    #[test]
    fn an_expired_series_that_returns_counts_from_zero() {
        let store = store();
        let summaries = Summaries::new(1_000, 60_000, Now::at(0));
        let mut first = traffic("a", 5.0, 0.0, 0.0);
        store.ingest(&mut first, Now::at(0)).expect("valid");
        summaries.tick(&store, Now::at(1_000));
        store.expire(Now::at(20_000), 10_000);
        let mut again = traffic("a", 2.0, 0.0, 0.0);
        store.ingest(&mut again, Now::at(20_000)).expect("valid");
        let summary = summaries
            .summarize(&store, 60_000, Now::at(21_000), None, None)
            .expect("in range");
        assert_eq!(summary.agents[0].requests, 7.0);
    }

    #[test]
    fn windows_outside_step_and_retention_are_refused() {
        let summaries = Summaries::new(10_000, 60_000, Now::at(0));
        let store = store();
        for window in [9_999, 60_001] {
            assert_eq!(
                summaries.summarize(&store, window, Now::at(0), None, None),
                Err(WindowOutOfRange {
                    min_ms: 10_000,
                    max_ms: 60_000
                })
            );
        }
    }

    #[test]
    fn old_steps_leave_after_the_retention() {
        let store = store();
        let summaries = Summaries::new(1_000, 5_000, Now::at(0));
        let mut samples = traffic("a", 5.0, 0.0, 0.0);
        store.ingest(&mut samples, Now::at(0)).expect("valid");
        for second in 1..=10 {
            summaries.tick(&store, Now::at(second * 1_000));
        }
        let summary = summaries
            .summarize(&store, 5_000, Now::at(10_000), None, None)
            .expect("in range");
        assert_eq!(summary.agents[0].requests, 0.0);
        assert_eq!(summaries.state.lock().expect("lock").steps.len(), 5);
    }
}

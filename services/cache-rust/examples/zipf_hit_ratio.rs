//! `make bench SCENARIO=cache` helper: replays a key trace (one key number per line on
//! stdin; bench/scenarios/cache.py draws it from Zipf(0.99)) through the cache's L1 (moka,
//! TinyLFU admission) holding CAPACITY entries, filling it on every miss (read-through), and
//! prints the hit ratio as one JSON line.
//!
//! Usage: zipf_hit_ratio CAPACITY < trace

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use taskloom_cache::l1::{L1Config, L1};
use taskloom_cache::tier::{CacheKey, Entry};

const VALUE_BYTES: usize = 100;
/// What L1 weighs an entry of a `key:NNNNNNNN` key in namespace `z` (see `l1.rs`), so that
/// its byte budget holds exactly CAPACITY of them.
const ENTRY_WEIGHT: u64 = (1 + 12 + VALUE_BYTES + 64) as u64;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let capacity: u64 = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: zipf_hit_ratio CAPACITY < trace"))?
        .parse()?;
    let l1 = L1::new(L1Config {
        max_bytes: capacity * ENTRY_WEIGHT,
        default_ttl: Duration::from_secs(3600),
        namespace_ttls: HashMap::new(),
    });
    let (mut requests, mut hits) = (0u64, 0u64);
    for line in std::io::stdin().lock().lines() {
        let number: u64 = line?.trim().parse()?;
        let key = CacheKey::new("z", format!("key:{number:08}"));
        requests += 1;
        if l1.get(&key).await.is_some() {
            hits += 1;
        } else {
            let entry = Entry::new(vec![0u8; VALUE_BYTES], Duration::from_secs(3600));
            l1.set(key, entry).await;
        }
    }
    l1.sync().await;
    println!(
        "{}",
        serde_json::json!({
            "capacity": capacity,
            "requests": requests,
            "hit_ratio": hits as f64 / requests.max(1) as f64,
            "entries_at_end": l1.entry_count(),
        })
    );
    Ok(())
}

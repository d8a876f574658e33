//! All collections of the service and their durability. Each collection is a directory
//! under the data directory: `config.json`, `wal.log` (every acknowledged write, synced
//! before the acknowledgement) and `snapshot.bin` (the whole collection with its graph,
//! written when the log passes a size, after which the log is emptied). Opening replays
//! the log over the snapshot; how long that took is logged per collection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Instant;

use rayon::prelude::*;
use regex::Regex;
use serde::Deserialize;
use tracing::{info, warn};

use crate::collection::{
    Collection, CollectionConfig, CollectionInfo, Point, ScoredPoint, SearchQuery, SearchTuning,
    VectorError,
};
use crate::distance::Distance;
use crate::filter::PayloadBelow;
use crate::hnsw::HnswParams;
use crate::snapshot;
use crate::wal::{Record, Wal};

pub const MAX_DIMENSION: usize = 4096;
const CONFIG_FILE: &str = "config.json";
const WAL_FILE: &str = "wal.log";
const SNAPSHOT_FILE: &str = "snapshot.bin";
/// The one-file-per-collection format of earlier versions, imported at open.
const LEGACY_SUFFIX: &str = ".collection.json";

static COLLECTION_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_-]{1,64}$").expect("valid regex"));

/// The store's limits and knobs, from the service's settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub tuning: SearchTuning,
    /// Most points one collection may hold.
    pub max_points_per_collection: usize,
    /// Most bytes (estimated: vectors, links, ids, payloads) all collections may hold.
    pub max_bytes: usize,
    /// A collection is snapshotted once its log grows past this, or past an eighth of
    /// the collection's size if that is more (so replay after a crash stays a small
    /// share of the collection, and snapshots do not rewrite a large one too often).
    pub snapshot_wal_bytes: u64,
    /// Threads of parallel inserts, repairs and batch searches.
    pub threads: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            tuning: SearchTuning::default(),
            max_points_per_collection: 10_000_000,
            max_bytes: 8 << 30,
            snapshot_wal_bytes: 8 << 20,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// One collection: its state, guarded for many readers or one writer, and its log.
/// Lock order: `state`, then `wal`.
struct Handle {
    dir: PathBuf,
    state: RwLock<Collection>,
    wal: Mutex<Wal>,
}

pub struct Store {
    data_dir: PathBuf,
    options: StoreOptions,
    /// Runs graph work under a collection's write lock (inserts, repairs). Apart from
    /// `search_pool`, whose threads may wait on that lock, so a writer never waits for
    /// threads that wait for it.
    build_pool: rayon::ThreadPool,
    search_pool: rayon::ThreadPool,
    collections: RwLock<BTreeMap<String, Arc<Handle>>>,
    used_bytes: AtomicUsize,
}

fn storage_error(path: &Path, e: impl std::fmt::Display) -> VectorError {
    VectorError::Storage(format!("{}: {e}", path.display()))
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens `data_dir` (creating it), recovering every collection saved there.
    pub fn open(data_dir: impl Into<PathBuf>, options: StoreOptions) -> Result<Self, VectorError> {
        let started = Instant::now();
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir).map_err(|e| storage_error(&data_dir, e))?;
        let pool = |role: &'static str| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(options.threads.max(1))
                .thread_name(move |i| format!("vector-{role}-{i}"))
                .build()
                .map_err(|e| VectorError::Storage(format!("thread pool: {e}")))
        };
        let store = Self {
            build_pool: pool("build")?,
            search_pool: pool("search")?,
            data_dir,
            options,
            collections: RwLock::new(BTreeMap::new()),
            used_bytes: AtomicUsize::new(0),
        };
        let mut legacy = Vec::new();
        let entries =
            std::fs::read_dir(&store.data_dir).map_err(|e| storage_error(&store.data_dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| storage_error(&store.data_dir, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.starts_with('.') {
                // A collection half created or half deleted when the process stopped.
                let _ = std::fs::remove_dir_all(&path);
            } else if name.ends_with(LEGACY_SUFFIX) {
                legacy.push(path);
            } else if path.join(CONFIG_FILE).is_file() {
                let handle = store.recover(&path)?;
                let name = read_lock(&handle.state).config.name.clone();
                write_lock(&store.collections).insert(name, handle);
            }
        }
        for path in legacy {
            store.import_legacy(&path)?;
        }
        let (collections, points) = store.totals();
        info!(
            collections,
            points,
            seconds = started.elapsed().as_secs_f64(),
            "vector store recovered"
        );
        Ok(store)
    }

    /// Loads a collection's snapshot and replays its log.
    fn recover(&self, dir: &Path) -> Result<Arc<Handle>, VectorError> {
        let started = Instant::now();
        let config_path = dir.join(CONFIG_FILE);
        let config: CollectionConfig = std::fs::read(&config_path)
            .map_err(|e| storage_error(&config_path, e))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| storage_error(&config_path, e)))?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let (mut collection, after_seq) = if snapshot_path.exists() {
            snapshot::read(&snapshot_path).map_err(|e| storage_error(&snapshot_path, e))?
        } else {
            (Collection::new(config.clone()), 0)
        };
        let from_snapshot = collection.len();
        let mut replayed = 0usize;
        let wal_path = dir.join(WAL_FILE);
        let wal = Wal::open(&wal_path, after_seq, config.dimension, |record| {
            replayed += 1;
            match record {
                Record::Upsert(points) => {
                    collection.apply_upsert(points, Some(&self.build_pool));
                }
                Record::Delete(ids) => {
                    collection.apply_delete(&ids, Some(&self.build_pool));
                }
            }
        })
        .map_err(|e| storage_error(&wal_path, e))?;
        info!(
            collection = %config.name,
            points = collection.len(),
            from_snapshot,
            wal_records = replayed,
            seconds = started.elapsed().as_secs_f64(),
            "collection recovered"
        );
        self.used_bytes
            .fetch_add(collection.memory_bytes(), Ordering::Relaxed);
        Ok(Arc::new(Handle {
            dir: dir.to_path_buf(),
            state: RwLock::new(collection),
            wal: Mutex::new(wal),
        }))
    }

    fn import_legacy(&self, path: &Path) -> Result<(), VectorError> {
        #[derive(Deserialize)]
        struct LegacyFile {
            name: String,
            dimension: usize,
            distance: Distance,
            points: Vec<Point>,
        }
        let file: LegacyFile = std::fs::read(path)
            .map_err(|e| storage_error(path, e))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| storage_error(path, e)))?;
        if !read_lock(&self.collections).contains_key(&file.name) {
            self.create(
                &file.name,
                file.dimension,
                file.distance,
                HnswParams::default(),
            )?;
            self.upsert(&file.name, file.points)?;
        }
        std::fs::remove_file(path).map_err(|e| storage_error(path, e))?;
        info!(collection = %file.name, "imported a collection saved by an earlier version");
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn get(&self, name: &str) -> Result<Arc<Handle>, VectorError> {
        read_lock(&self.collections)
            .get(name)
            .cloned()
            .ok_or_else(|| VectorError::CollectionNotFound(name.to_string()))
    }

    pub fn create(
        &self,
        name: &str,
        dimension: usize,
        distance: Distance,
        hnsw: HnswParams,
    ) -> Result<CollectionInfo, VectorError> {
        if !COLLECTION_NAME.is_match(name) {
            return Err(VectorError::invalid(
                "name",
                "must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -",
            ));
        }
        if !(1..=MAX_DIMENSION).contains(&dimension) {
            return Err(VectorError::invalid(
                "dimension",
                format!("must be between 1 and {MAX_DIMENSION}"),
            ));
        }
        CollectionConfig::validate_hnsw(&hnsw)?;
        let mut all = write_lock(&self.collections);
        if all.contains_key(name) {
            return Err(VectorError::CollectionExists(name.to_string()));
        }
        let config = CollectionConfig {
            name: name.to_string(),
            dimension,
            distance,
            hnsw,
        };
        let dir = self.data_dir.join(name);
        let staging = self.data_dir.join(format!(".{name}.creating"));
        let io = |e: std::io::Error| storage_error(&dir, e);
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(io)?;
        let config_bytes =
            serde_json::to_vec_pretty(&config).map_err(|e| storage_error(&dir, e))?;
        let config_file = std::fs::File::create(staging.join(CONFIG_FILE)).map_err(io)?;
        std::io::Write::write_all(&mut &config_file, &config_bytes).map_err(io)?;
        config_file.sync_all().map_err(io)?;
        snapshot::sync_dir(&staging).map_err(io)?;
        std::fs::rename(&staging, &dir).map_err(io)?;
        snapshot::sync_dir(&self.data_dir).map_err(io)?;
        let wal_path = dir.join(WAL_FILE);
        let wal = Wal::open(&wal_path, 0, dimension, |_| {}).map_err(io)?;
        let collection = Collection::new(config);
        let info = collection.info();
        all.insert(
            name.to_string(),
            Arc::new(Handle {
                dir,
                state: RwLock::new(collection),
                wal: Mutex::new(wal),
            }),
        );
        Ok(info)
    }

    pub fn info(&self, name: &str) -> Result<CollectionInfo, VectorError> {
        Ok(read_lock(&self.get(name)?.state).info())
    }

    /// Collections sorted by name, starting after `after`; at most `limit`. The second
    /// value says whether more follow.
    pub fn list(&self, after: &str, limit: usize) -> (Vec<CollectionInfo>, bool) {
        let all = read_lock(&self.collections);
        let mut page: Vec<CollectionInfo> = all
            .iter()
            .filter(|(name, _)| name.as_str() > after)
            .take(limit + 1)
            .map(|(_, h)| read_lock(&h.state).info())
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }

    pub fn delete(&self, name: &str) -> Result<(), VectorError> {
        let mut all = write_lock(&self.collections);
        let handle = all
            .get(name)
            .cloned()
            .ok_or_else(|| VectorError::CollectionNotFound(name.to_string()))?;
        // Renamed away first, so a crash mid-removal never leaves a half collection.
        let doomed = self.data_dir.join(format!(".{name}.deleting"));
        let _ = std::fs::remove_dir_all(&doomed);
        std::fs::rename(&handle.dir, &doomed).map_err(|e| storage_error(&handle.dir, e))?;
        snapshot::sync_dir(&self.data_dir).map_err(|e| storage_error(&self.data_dir, e))?;
        all.remove(name);
        let bytes = read_lock(&handle.state).memory_bytes();
        self.used_bytes.fetch_sub(
            bytes.min(self.used_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            warn!(path = %doomed.display(), error = %e, "deleted collection's files not removed");
        }
        Ok(())
    }

    /// Validates, logs (synced) and applies; writes to one collection are serialized by
    /// its lock, so log order is apply order.
    pub fn upsert(&self, name: &str, points: Vec<Point>) -> Result<usize, VectorError> {
        let handle = self.get(name)?;
        let mut collection = write_lock(&handle.state);
        let points = collection.validate_upsert(points)?;
        let new = points
            .iter()
            .filter(|p| !collection.contains(&p.id))
            .count();
        let limit = self.options.max_points_per_collection;
        if collection.len() + new > limit {
            return Err(VectorError::CapacityExceeded {
                limit: "max_points_per_collection",
                message: format!(
                    "collection {name:?} holds {} points; {new} more would pass the limit of {limit}",
                    collection.len()
                ),
            });
        }
        let adding = collection.estimate_bytes(&points);
        let used = self.used_bytes.load(Ordering::Relaxed);
        if used + adding > self.options.max_bytes {
            return Err(VectorError::CapacityExceeded {
                limit: "max_bytes",
                message: format!(
                    "the service holds about {used} bytes; {adding} more would pass the limit of {}",
                    self.options.max_bytes
                ),
            });
        }
        let record = Record::Upsert(points);
        lock(&handle.wal)
            .append(&record)
            .map_err(|e| storage_error(&handle.dir, e))?;
        let Record::Upsert(points) = record else {
            unreachable!("built as an upsert above");
        };
        let before = collection.memory_bytes();
        let n = collection.apply_upsert(points, Some(&self.build_pool));
        self.account(before, collection.memory_bytes());
        drop(collection);
        self.maybe_snapshot(&handle);
        Ok(n)
    }

    /// Deletes the points with these ids and those any of `below` holds for, in one logged
    /// record; returns how many existed.
    pub fn delete_points(
        &self,
        name: &str,
        ids: &[String],
        below: &[PayloadBelow],
    ) -> Result<usize, VectorError> {
        let handle = self.get(name)?;
        let mut collection = write_lock(&handle.state);
        let mut present: Vec<String> = ids
            .iter()
            .filter(|id| collection.contains(id))
            .cloned()
            .collect();
        present.extend(collection.ids_below(below));
        present.sort_unstable();
        present.dedup();
        if present.is_empty() {
            return Ok(0);
        }
        let record = Record::Delete(present);
        lock(&handle.wal)
            .append(&record)
            .map_err(|e| storage_error(&handle.dir, e))?;
        let Record::Delete(present) = record else {
            unreachable!("built as a delete above");
        };
        let before = collection.memory_bytes();
        let n = collection.apply_delete(&present, Some(&self.build_pool));
        self.account(before, collection.memory_bytes());
        drop(collection);
        self.maybe_snapshot(&handle);
        Ok(n)
    }

    fn account(&self, before: usize, after: usize) {
        if after >= before {
            self.used_bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            let _ = self
                .used_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(before - after))
                });
        }
    }

    /// Snapshots the collection once its log is long enough, then empties the log.
    /// Searches go on meanwhile; writes wait. A failure is logged: the log still holds
    /// everything.
    fn maybe_snapshot(&self, handle: &Handle) {
        let collection = read_lock(&handle.state);
        let mut wal = lock(&handle.wal);
        let threshold = self
            .options
            .snapshot_wal_bytes
            .max(collection.memory_bytes() as u64 / 8);
        if wal.bytes() < threshold {
            return;
        }
        let started = Instant::now();
        let path = handle.dir.join(SNAPSHOT_FILE);
        match snapshot::write(&path, &collection, wal.last_seq()).and_then(|()| wal.truncate()) {
            Ok(()) => info!(
                collection = %collection.config.name,
                points = collection.len(),
                seconds = started.elapsed().as_secs_f64(),
                "snapshot written"
            ),
            Err(e) => warn!(collection = %collection.config.name, error = %e, "snapshot failed"),
        }
    }

    pub fn search(&self, name: &str, query: &SearchQuery) -> Result<Vec<ScoredPoint>, VectorError> {
        let handle = self.get(name)?;
        let collection = read_lock(&handle.state);
        collection.search(query, self.options.tuning)
    }

    /// Runs searches in parallel on the store's threads; one result per search, in order.
    pub fn search_batch(
        &self,
        searches: &[(String, SearchQuery)],
    ) -> Vec<Result<Vec<ScoredPoint>, VectorError>> {
        self.search_pool.install(|| {
            searches
                .par_iter()
                .map(|(name, query)| self.search(name, query))
                .collect()
        })
    }

    /// (collections, points) for the service's gauges.
    pub fn totals(&self) -> (usize, usize) {
        let all = read_lock(&self.collections);
        let points = all.values().map(|h| read_lock(&h.state).len()).sum();
        (all.len(), points)
    }

    /// Estimated bytes held by every collection.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;

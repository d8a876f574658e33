//! All collections of the service, and their persistence: each collection is one JSON
//! file in the data directory, rewritten (atomically) after every change and loaded at
//! start, so data survives restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, RwLock};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::collection::{Collection, CollectionInfo, Point, ScoredPoint, VectorError};
use crate::index::Distance;

pub const MAX_DIMENSION: usize = 4096;
const FILE_SUFFIX: &str = ".collection.json";

static COLLECTION_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_-]{1,64}$").expect("valid regex"));

/// The file format of one collection.
#[derive(Serialize, Deserialize)]
struct CollectionFile {
    name: String,
    dimension: usize,
    distance: Distance,
    points: Vec<Point>,
}

pub struct Store {
    data_dir: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<RwLock<Collection>>>>,
}

fn storage_error(path: &Path, e: impl std::fmt::Display) -> VectorError {
    VectorError::Storage(format!("{}: {e}", path.display()))
}

impl Store {
    /// Opens `data_dir` (creating it) and loads every collection saved there.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Self, VectorError> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir).map_err(|e| storage_error(&data_dir, e))?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&data_dir).map_err(|e| storage_error(&data_dir, e))? {
            let path = entry.map_err(|e| storage_error(&data_dir, e))?.path();
            if !path.to_string_lossy().ends_with(FILE_SUFFIX) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| storage_error(&path, e))?;
            let file: CollectionFile =
                serde_json::from_slice(&bytes).map_err(|e| storage_error(&path, e))?;
            let mut collection = Collection::new(file.name.clone(), file.dimension, file.distance);
            collection
                .upsert(file.points)
                .map_err(|e| storage_error(&path, e))?;
            collections.insert(file.name, Arc::new(RwLock::new(collection)));
        }
        Ok(Self {
            data_dir,
            collections: RwLock::new(collections),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.data_dir.join(format!("{name}{FILE_SUFFIX}"))
    }

    /// Writes the collection to a temporary file, then renames it over the old one.
    fn save(&self, collection: &Collection) -> Result<(), VectorError> {
        let path = self.path_of(&collection.name);
        let file = CollectionFile {
            name: collection.name.clone(),
            dimension: collection.dimension,
            distance: collection.distance,
            points: collection.points(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| storage_error(&path, e))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| storage_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| storage_error(&path, e))
    }

    fn get(&self, name: &str) -> Result<Arc<RwLock<Collection>>, VectorError> {
        self.collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| VectorError::CollectionNotFound(name.to_string()))
    }

    pub fn create(
        &self,
        name: &str,
        dimension: usize,
        distance: Distance,
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
        let mut all = self.collections.write().unwrap_or_else(|e| e.into_inner());
        if all.contains_key(name) {
            return Err(VectorError::CollectionExists(name.to_string()));
        }
        let collection = Collection::new(name.to_string(), dimension, distance);
        self.save(&collection)?;
        let info = collection.info();
        all.insert(name.to_string(), Arc::new(RwLock::new(collection)));
        Ok(info)
    }

    pub fn info(&self, name: &str) -> Result<CollectionInfo, VectorError> {
        Ok(self
            .get(name)?
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .info())
    }

    /// Collections sorted by name, starting after `after`; at most `limit`. The second
    /// value says whether more follow.
    pub fn list(&self, after: &str, limit: usize) -> (Vec<CollectionInfo>, bool) {
        let all = self.collections.read().unwrap_or_else(|e| e.into_inner());
        let mut page: Vec<CollectionInfo> = all
            .iter()
            .filter(|(name, _)| name.as_str() > after)
            .take(limit + 1)
            .map(|(_, c)| c.read().unwrap_or_else(|e| e.into_inner()).info())
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }

    pub fn delete(&self, name: &str) -> Result<(), VectorError> {
        let mut all = self.collections.write().unwrap_or_else(|e| e.into_inner());
        if !all.contains_key(name) {
            return Err(VectorError::CollectionNotFound(name.to_string()));
        }
        let path = self.path_of(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage_error(&path, e)),
        }
        all.remove(name);
        Ok(())
    }

    /// Upserts and saves; writes to one collection are serialized by its lock.
    pub fn upsert(&self, name: &str, points: Vec<Point>) -> Result<usize, VectorError> {
        let collection = self.get(name)?;
        let mut c = collection.write().unwrap_or_else(|e| e.into_inner());
        let n = c.upsert(points)?;
        self.save(&c)?;
        Ok(n)
    }

    pub fn delete_points(&self, name: &str, ids: &[String]) -> Result<usize, VectorError> {
        let collection = self.get(name)?;
        let mut c = collection.write().unwrap_or_else(|e| e.into_inner());
        let n = c.delete(ids);
        if n > 0 {
            self.save(&c)?;
        }
        Ok(n)
    }

    pub fn search(
        &self,
        name: &str,
        query: &[f32],
        top_k: usize,
        filter: &BTreeMap<String, String>,
        with_payload: bool,
    ) -> Result<Vec<ScoredPoint>, VectorError> {
        let collection = self.get(name)?;
        let c = collection.read().unwrap_or_else(|e| e.into_inner());
        c.search(query, top_k, filter, with_payload)
    }

    /// (collections, points) for the service's gauges.
    pub fn totals(&self) -> (usize, usize) {
        let all = self.collections.read().unwrap_or_else(|e| e.into_inner());
        let points = all
            .values()
            .map(|c| c.read().unwrap_or_else(|e| e.into_inner()).info().points)
            .sum();
        (all.len(), points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(id: &str, vector: &[f32]) -> Point {
        Point {
            id: id.into(),
            vector: vector.to_vec(),
            payload: json!({"tag": id}).as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .create("docs", 2, Distance::Euclidean)
                .expect("create");
            store.create("gone", 2, Distance::Dot).expect("create");
            store
                .upsert(
                    "docs",
                    vec![point("a", &[0.0, 0.0]), point("b", &[5.0, 5.0])],
                )
                .expect("upsert");
            store.delete("gone").expect("delete");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let (page, more) = store.list("", 10);
        assert!(!more);
        assert_eq!(page.len(), 1);
        assert_eq!(
            (
                page[0].name.as_str(),
                page[0].dimension,
                page[0].distance,
                page[0].points
            ),
            ("docs", 2, Distance::Euclidean, 2)
        );
        let hits = store
            .search("docs", &[4.0, 4.0], 1, &BTreeMap::new(), true)
            .expect("search");
        assert_eq!(hits[0].id, "b");
        assert_eq!(hits[0].payload.as_ref().expect("payload")["tag"], "b");
    }

    #[test]
    fn create_validates_and_refuses_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let invalid_field = |r: Result<CollectionInfo, VectorError>| match r {
            Err(VectorError::InvalidArgument { field, .. }) => field,
            other => panic!("expected invalid argument, got {other:?}"),
        };
        assert_eq!(
            invalid_field(store.create("bad name", 2, Distance::Cosine)),
            "name"
        );
        assert_eq!(
            invalid_field(store.create(&"a".repeat(65), 2, Distance::Cosine)),
            "name"
        );
        assert_eq!(
            invalid_field(store.create("c", 0, Distance::Cosine)),
            "dimension"
        );
        assert_eq!(
            invalid_field(store.create("c", 4097, Distance::Cosine)),
            "dimension"
        );
        store.create("c", 4096, Distance::Cosine).expect("create");
        assert_eq!(
            store.create("c", 3, Distance::Cosine),
            Err(VectorError::CollectionExists("c".into()))
        );
        assert_eq!(
            store.info("nope"),
            Err(VectorError::CollectionNotFound("nope".into()))
        );
    }

    #[test]
    fn list_pages_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for name in ["c", "a", "b"] {
            store.create(name, 1, Distance::Dot).expect("create");
        }
        let (first, more) = store.list("", 2);
        let names: Vec<_> = first.iter().map(|c| c.name.as_str()).collect();
        assert_eq!((names, more), (vec!["a", "b"], true));
        let (rest, more) = store.list("b", 2);
        assert_eq!((rest.len(), rest[0].name.as_str(), more), (1, "c", false));
    }
}

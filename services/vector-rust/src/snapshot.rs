//! A collection's snapshot file: its config, the sequence number of the last log record
//! it holds, the HNSW graph itself (so a restart does not rebuild it), and the id and
//! payload of every slot; a crc32 of all of it at the end. Written to a temporary file,
//! synced, then renamed over the previous snapshot.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::collection::{Collection, CollectionConfig};
use crate::hnsw::Hnsw;
use crate::wal::Cursor;

const MAGIC: &[u8; 8] = b"TLVSNAP1";

/// Passes bytes through while computing their crc32.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_bytes(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(bytes)
}

/// Writes the snapshot of `collection` holding log records up to `last_seq` to `path`.
pub fn write(path: &Path, collection: &Collection, last_seq: u64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp)?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    put_bytes(&mut w, &serde_json::to_vec(&collection.config)?)?;
    w.write_all(&last_seq.to_le_bytes())?;
    collection.graph().encode(&mut w)?;
    for entry in collection.slot_table() {
        match entry {
            Some((id, payload)) => {
                w.write_all(&[1])?;
                put_bytes(&mut w, id.as_bytes())?;
                let json = if payload.is_empty() {
                    Vec::new()
                } else {
                    serde_json::to_vec(payload)?
                };
                put_bytes(&mut w, &json)?;
            }
            None => w.write_all(&[0])?,
        }
    }
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"))
}

/// Reads a snapshot: the collection and the last log sequence number it holds.
pub fn read(path: &Path) -> io::Result<(Collection, u64)> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a Taskloom vector snapshot"));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != trailer {
        return Err(corrupt("checksum mismatch"));
    }
    let mut c = Cursor(&body[MAGIC.len()..]);
    let config: CollectionConfig =
        serde_json::from_slice(c.bytes().ok_or_else(|| corrupt("config"))?)
            .map_err(|e| corrupt(&e.to_string()))?;
    let seq = c.take(8).ok_or_else(|| corrupt("sequence"))?;
    let last_seq = u64::from_le_bytes(seq.try_into().map_err(|_| corrupt("sequence"))?);
    let mut rest = c.0;
    let graph = Hnsw::decode(&mut rest).map_err(|e| corrupt(&e.to_string()))?;
    let mut c = Cursor(rest);
    let mut slots = Vec::with_capacity(graph.capacity());
    for _ in 0..graph.capacity() {
        let flag = c.take(1).ok_or_else(|| corrupt("slot table"))?[0];
        slots.push(match flag {
            0 => None,
            _ => Some((
                c.string().ok_or_else(|| corrupt("point id"))?,
                c.payload().ok_or_else(|| corrupt("payload"))?,
            )),
        });
    }
    let collection = Collection::restore(config, graph, slots).map_err(|e| corrupt(&e))?;
    Ok((collection, last_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::{Point, SearchQuery, SearchTuning};
    use crate::distance::Distance;
    use crate::hnsw::HnswParams;
    use serde_json::json;

    #[test]
    fn a_snapshot_round_trips_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Collection::new(CollectionConfig {
            name: "c".into(),
            dimension: 2,
            distance: Distance::Euclidean,
            hnsw: HnswParams::default(),
        });
        let points = (0..50)
            .map(|i| Point {
                id: format!("p{i}"),
                vector: vec![i as f32, 1.0],
                payload: json!({"i": i}).as_object().cloned().unwrap_or_default(),
            })
            .collect();
        c.apply_upsert(points, None);
        c.apply_delete(&["p7".into()], None);
        let path = dir.path().join("snapshot.bin");
        write(&path, &c, 42).expect("write");
        let (copy, seq) = read(&path).expect("read");
        assert_eq!(
            (seq, copy.len(), copy.config.clone()),
            (42, 49, c.config.clone())
        );
        let q = SearchQuery {
            vector: vec![7.2, 1.0],
            top_k: 2,
            with_payload: true,
            ..SearchQuery::default()
        };
        let hits = copy.search(&q, SearchTuning::default()).expect("search");
        assert_eq!(hits, c.search(&q, SearchTuning::default()).expect("search"));
        assert_eq!(hits[0].id, "p8");
        assert_eq!(hits[0].payload.as_ref().expect("payload")["i"], 8);
        let mut bytes = std::fs::read(&path).expect("bytes");
        bytes[40] ^= 1;
        std::fs::write(&path, bytes).expect("damage");
        assert!(read(&path).is_err());
    }
}

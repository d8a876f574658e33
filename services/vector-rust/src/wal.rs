//! A collection's write-ahead log: every upsert and delete is appended and synced to disk
//! before it is applied and acknowledged, so a `kill -9` loses nothing acknowledged.
//!
//! A record is `[body length u32][crc32 of seq+body u32][seq u64][body]`, little-endian.
//! Replay stops at the first torn or corrupt record (a write cut short by the kill, never
//! acknowledged) and cuts the file there so later appends follow good records.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::collection::Point;
use crate::filter::Payload;

const HEADER_BYTES: usize = 16;
/// Larger lengths are corruption, not a record.
const MAX_RECORD_BYTES: u32 = 1 << 30;

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Upsert(Vec<Point>),
    Delete(Vec<String>),
}

pub struct Wal {
    file: File,
    path: PathBuf,
    /// The sequence number of the last record appended or replayed.
    last_seq: u64,
    bytes: u64,
}

impl Wal {
    /// Opens (creating) the log at `path` and replays every record after `after_seq`
    /// into `apply`, in order.
    pub fn open(
        path: &Path,
        after_seq: u64,
        dim: usize,
        mut apply: impl FnMut(Record),
    ) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut reader = BufReader::new(&mut file);
        let mut good = 0u64;
        let mut last_seq = after_seq;
        while let Some((seq, body)) = read_record(&mut reader)? {
            let Some(record) = decode(&body, dim) else {
                break;
            };
            good += (HEADER_BYTES + body.len()) as u64;
            if seq > after_seq {
                apply(record);
            }
            last_seq = last_seq.max(seq);
        }
        drop(reader);
        if file.metadata()?.len() > good {
            file.set_len(good)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            last_seq,
            bytes: good,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `record` and waits until it is on disk.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let seq = self.last_seq + 1;
        let body = encode(record);
        let mut frame = Vec::with_capacity(HEADER_BYTES + body.len());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&seq.to_le_bytes());
        crc.update(&body);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc.finalize().to_le_bytes());
        frame.extend_from_slice(&seq.to_le_bytes());
        frame.extend_from_slice(&body);
        if let Err(e) = self
            .file
            .write_all(&frame)
            .and_then(|()| self.file.sync_data())
        {
            // Cut a partial frame so the log stays readable past it.
            let _ = self.file.set_len(self.bytes);
            return Err(e);
        }
        self.last_seq = seq;
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// Empties the log once a snapshot holds everything up to `last_seq`; numbering
    /// continues from there.
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.bytes = 0;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_record(r: &mut impl Read) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0u8; HEADER_BYTES];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let seq_bytes: [u8; 8] = header[8..16].try_into().unwrap_or_default();
    if len > MAX_RECORD_BYTES {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    match r.read_exact(&mut body) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut check = crc32fast::Hasher::new();
    check.update(&seq_bytes);
    check.update(&body);
    if check.finalize() != crc {
        return Ok(None);
    }
    Ok(Some((u64::from_le_bytes(seq_bytes), body)))
}

const UPSERT: u8 = 1;
const DELETE: u8 = 2;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Points as `[id][dim f32][payload JSON]`, ids and payloads length-prefixed.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    match record {
        Record::Upsert(points) => {
            out.push(UPSERT);
            out.extend_from_slice(&(points.len() as u32).to_le_bytes());
            for p in points {
                put_bytes(&mut out, p.id.as_bytes());
                for x in &p.vector {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                let payload = if p.payload.is_empty() {
                    Vec::new()
                } else {
                    serde_json::to_vec(&p.payload).unwrap_or_default()
                };
                put_bytes(&mut out, &payload);
            }
        }
        Record::Delete(ids) => {
            out.push(DELETE);
            out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for id in ids {
                put_bytes(&mut out, id.as_bytes());
            }
        }
    }
    out
}

/// A little-endian reader over a record body; None past its end.
pub(crate) struct Cursor<'a>(pub(crate) &'a [u8]);

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    pub(crate) fn payload(&mut self) -> Option<Payload> {
        let raw = self.bytes()?;
        if raw.is_empty() {
            return Some(Payload::new());
        }
        serde_json::from_slice(raw).ok()
    }
}

pub fn decode(body: &[u8], dim: usize) -> Option<Record> {
    let mut c = Cursor(body);
    let kind = c.take(1)?[0];
    let count = c.u32()? as usize;
    match kind {
        UPSERT => {
            let mut points = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                let id = c.string()?;
                let vector = c
                    .take(dim * 4)?
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let payload = c.payload()?;
                points.push(Point {
                    id,
                    vector,
                    payload,
                });
            }
            Some(Record::Upsert(points))
        }
        DELETE => (0..count)
            .map(|_| c.string())
            .collect::<Option<Vec<_>>>()
            .map(Record::Delete),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upsert(id: &str, x: f32) -> Record {
        Record::Upsert(vec![Point {
            id: id.into(),
            vector: vec![x, -x],
            payload: json!({"n": x}).as_object().cloned().unwrap_or_default(),
        }])
    }

    fn replay(path: &Path, after: u64) -> (Wal, Vec<Record>) {
        let mut seen = Vec::new();
        let wal = Wal::open(path, after, 2, |r| seen.push(r)).expect("open");
        (wal, seen)
    }

    #[test]
    fn records_replay_in_order_after_the_snapshot_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal.log");
        let (mut wal, seen) = replay(&path, 0);
        assert!(seen.is_empty());
        let records = [
            upsert("a", 1.0),
            Record::Delete(vec!["a".into(), "b".into()]),
            upsert("c", 2.5),
        ];
        for r in &records {
            wal.append(r).expect("append");
        }
        assert_eq!(wal.last_seq(), 3);
        drop(wal);
        let (wal, seen) = replay(&path, 0);
        assert_eq!(seen, records);
        assert_eq!(wal.last_seq(), 3);
        let (_, seen) = replay(&path, 2);
        assert_eq!(seen, records[2..]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue_after_good_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal.log");
        let (mut wal, _) = replay(&path, 0);
        wal.append(&upsert("a", 1.0)).expect("append");
        wal.append(&upsert("b", 2.0)).expect("append");
        drop(wal);
        let full = std::fs::metadata(&path).expect("meta").len();
        // The kill cut the second record short.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(full - 3))
            .expect("cut");
        let (mut wal, seen) = replay(&path, 0);
        assert_eq!(seen, [upsert("a", 1.0)]);
        wal.append(&upsert("c", 3.0)).expect("append");
        drop(wal);
        let (_, seen) = replay(&path, 0);
        assert_eq!(seen, [upsert("a", 1.0), upsert("c", 3.0)]);
    }

    #[test]
    fn a_flipped_bit_ends_replay_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal.log");
        let (mut wal, _) = replay(&path, 0);
        wal.append(&upsert("a", 1.0)).expect("append");
        wal.append(&upsert("b", 2.0)).expect("append");
        drop(wal);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, bytes).expect("write");
        let (_, seen) = replay(&path, 0);
        assert_eq!(seen, [upsert("a", 1.0)]);
    }
}

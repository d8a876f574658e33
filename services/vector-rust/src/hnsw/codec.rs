//! The graph's binary form inside a collection snapshot, so a restart loads the graph
//! instead of rebuilding it. Little-endian; the caller checksums the whole snapshot.

use std::io::{self, Read, Write};

use super::{Hnsw, HnswParams, Metric, Slot, SlotState};

const MAGIC: &[u8; 8] = b"TLHNSW01";
const NO_ENTRY: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("graph: {0}")]
    Io(#[from] io::Error),
    #[error("graph: {0}")]
    Corrupt(&'static str),
}

fn write_u32s(w: &mut impl Write, words: impl IntoIterator<Item = u32>) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    for word in words {
        buf.extend_from_slice(&word.to_le_bytes());
        if buf.len() >= 64 * 1024 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

fn read_u32s(r: &mut impl Read, count: usize) -> io::Result<Vec<u32>> {
    let mut bytes = vec![0u8; count * 4];
    r.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl Hnsw {
    pub fn encode(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(MAGIC)?;
        let metric = match self.metric {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
        };
        let header = [
            self.dim as u32,
            metric,
            self.params.m as u32,
            self.params.ef_construction as u32,
            self.params.ef_search as u32,
            self.capacity() as u32,
            self.entry.unwrap_or(NO_ENTRY),
            self.max_level as u32,
        ];
        write_u32s(w, header)?;
        w.write_all(&self.rng.to_le_bytes())?;
        w.write_all(&self.states.iter().map(|s| *s as u8).collect::<Vec<u8>>())?;
        w.write_all(&self.levels)?;
        write_u32s(w, self.vectors.iter().map(|x| x.to_bits()))?;
        write_u32s(w, self.links0.iter().copied())?;
        for upper in &self.upper {
            write_u32s(w, upper.iter().copied())?;
        }
        Ok(())
    }

    pub fn decode(r: &mut impl Read) -> Result<Self, DecodeError> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(DecodeError::Corrupt("not a Taskloom HNSW graph"));
        }
        let h = read_u32s(r, 8)?;
        let (dim, metric, capacity) = (h[0] as usize, h[1], h[5] as usize);
        let metric = match metric {
            0 => Metric::L2,
            1 => Metric::InnerProduct,
            _ => return Err(DecodeError::Corrupt("unknown metric")),
        };
        let params = HnswParams {
            m: h[2] as usize,
            ef_construction: h[3] as usize,
            ef_search: h[4] as usize,
        };
        if dim == 0 || !super::M_RANGE.contains(&params.m) {
            return Err(DecodeError::Corrupt("bad header"));
        }
        let mut graph = Hnsw::new(dim, metric, params);
        let mut rng = [0u8; 8];
        r.read_exact(&mut rng)?;
        graph.rng = u64::from_le_bytes(rng);
        let mut states = vec![0u8; capacity];
        r.read_exact(&mut states)?;
        graph.states = states
            .into_iter()
            .map(|s| match s {
                0 => Ok(SlotState::Live),
                1 => Ok(SlotState::Deleted),
                2 => Ok(SlotState::Free),
                _ => Err(DecodeError::Corrupt("unknown slot state")),
            })
            .collect::<Result<_, _>>()?;
        graph.levels = vec![0u8; capacity];
        r.read_exact(&mut graph.levels)?;
        graph.vectors = read_u32s(r, capacity * dim)?
            .into_iter()
            .map(f32::from_bits)
            .collect();
        graph.links0 = read_u32s(r, capacity * (graph.m0 + 1))?;
        graph.upper = graph
            .levels
            .iter()
            .map(|&level| read_u32s(r, level as usize * (params.m + 1)).map(Vec::into_boxed_slice))
            .collect::<Result<_, _>>()?;
        let entry = h[6];
        graph.entry = (entry != NO_ENTRY).then_some(entry as Slot);
        graph.max_level = h[7] as usize;
        if graph.entry.is_some_and(|e| e as usize >= capacity) {
            return Err(DecodeError::Corrupt("entry point out of range"));
        }
        // Counts and links alike stay below this; a word past it is corruption.
        let bound = capacity.max(graph.m0 + 1) as u32;
        if graph
            .links0
            .iter()
            .chain(graph.upper.iter().flatten())
            .any(|&w| w >= bound)
        {
            return Err(DecodeError::Corrupt("link out of range"));
        }
        for (slot, state) in graph.states.iter().enumerate() {
            match state {
                SlotState::Live => graph.live += 1,
                SlotState::Deleted => graph.deleted += 1,
                SlotState::Free => graph.free.push(slot as Slot),
            }
        }
        Ok(graph)
    }
}

//! Deletes: a deleted point becomes a tombstone (searched through, never returned); once
//! tombstones pass a share of the graph, a repair relinks every node that pointed at one
//! to its live neighbours and theirs, then frees the tombstones' slots for reuse. This
//! keeps recall after many deletes without rebuilding the graph.

use rayon::prelude::*;

use super::{Hnsw, Near, Slot, SlotState};

/// Repair once tombstones are more than this share of the linked slots.
const REPAIR_SHARE: f64 = 0.1;

impl Hnsw {
    /// Tombstones `slot`; false when it was not live. May repair the graph.
    pub fn delete(&mut self, slot: Slot, pool: Option<&rayon::ThreadPool>) -> bool {
        if !self.is_live(slot) {
            return false;
        }
        self.states[slot as usize] = SlotState::Deleted;
        self.live -= 1;
        self.deleted += 1;
        if self.deleted as f64 > REPAIR_SHARE * (self.live + self.deleted) as f64 {
            self.repair(pool);
        }
        true
    }

    /// Relinks around every tombstone and frees their slots.
    pub fn repair(&mut self, pool: Option<&rayon::ThreadPool>) {
        if self.deleted == 0 {
            return;
        }
        let this = &*self;
        let affected: Vec<(Slot, usize)> = this
            .live_slots()
            .flat_map(|slot| {
                (0..=this.levels[slot as usize] as usize)
                    .filter(move |&layer| {
                        this.neighbors(slot, layer)
                            .iter()
                            .any(|&n| this.states[n as usize] != SlotState::Live)
                    })
                    .map(move |layer| (slot, layer))
            })
            .collect();
        let relink = |&(slot, layer): &(Slot, usize)| this.relinked(slot, layer);
        let new_links: Vec<Vec<Slot>> = match pool {
            Some(pool) => pool.install(|| affected.par_iter().map(relink).collect()),
            None => affected.iter().map(relink).collect(),
        };
        for ((slot, layer), links) in affected.into_iter().zip(new_links) {
            self.set_neighbors(slot, layer, links);
        }
        for slot in 0..self.capacity() {
            if self.states[slot] == SlotState::Deleted {
                self.states[slot] = SlotState::Free;
                self.links0[slot * (self.m0 + 1)] = 0;
                self.upper[slot] = Box::default();
                self.levels[slot] = 0;
                self.free.push(slot as Slot);
            }
        }
        self.deleted = 0;
        if self.entry.is_some_and(|e| !self.is_live(e)) {
            self.entry = self
                .live_slots()
                .max_by_key(|&s| (self.levels[s as usize], std::cmp::Reverse(s)));
            self.max_level = self.entry.map_or(0, |e| self.levels[e as usize] as usize);
        }
    }

    /// New links of `slot` on `layer`: its live neighbours and the live neighbours of its
    /// deleted ones (two hops through tombstones), chosen by the heuristic.
    fn relinked(&self, slot: Slot, layer: usize) -> Vec<Slot> {
        let mut candidates: Vec<Slot> = Vec::new();
        let through = |n: Slot, candidates: &mut Vec<Slot>| {
            if n != slot && self.is_live(n) && !candidates.contains(&n) {
                candidates.push(n);
            }
        };
        for &n in self.neighbors(slot, layer) {
            if self.is_live(n) {
                through(n, &mut candidates);
                continue;
            }
            for &m in self.neighbors(n, layer) {
                if self.is_live(m) {
                    through(m, &mut candidates);
                } else if self.levels[m as usize] as usize >= layer {
                    for &o in self.neighbors(m, layer) {
                        through(o, &mut candidates);
                    }
                }
            }
        }
        let base = self.vector(slot);
        let mut near: Vec<Near> = candidates
            .into_iter()
            .map(|s| Near {
                distance: (self.kernel)(base, self.vector(s)),
                slot: s,
            })
            .collect();
        near.sort_unstable();
        self.select_neighbors(&near, self.max_links(layer))
            .into_iter()
            .map(|n| n.slot)
            .collect()
    }
}

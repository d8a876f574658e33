//! The set of slots a search has already reached: a mark per slot compared against the
//! search's epoch, so clearing between searches is one increment, not a pass.

#[derive(Default)]
pub(super) struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Forgets every slot and makes room for `capacity` slots.
    pub(super) fn reset(&mut self, capacity: usize) {
        if self.marks.len() < capacity {
            self.marks.resize(capacity, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `slot`; false when it was already marked.
    #[inline]
    pub(super) fn insert(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        if *mark == self.epoch {
            return false;
        }
        *mark = self.epoch;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_forgets_even_after_the_epoch_wraps() {
        let mut visited = Visited::default();
        visited.reset(4);
        assert!(visited.insert(2));
        assert!(!visited.insert(2));
        for _ in 0..u16::MAX {
            visited.reset(4);
            assert!(visited.insert(2));
        }
        visited.reset(8);
        assert!(visited.insert(7));
        assert!(visited.insert(2));
    }
}

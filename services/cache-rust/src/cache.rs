//! The multi-level cache: L1 first, then L2 (when configured), filling L1 on an L2 hit.
//! Writes and deletes go to every tier.

use std::sync::Arc;
use std::time::Duration;

use crate::l1::L1;
use crate::tier::{CacheKey, Entry, Tier, TierError, TierKind};

#[derive(Clone)]
pub struct Cache {
    l1: L1,
    l2: Option<Arc<dyn Tier>>,
}

impl Cache {
    pub fn new(l1: L1, l2: Option<Arc<dyn Tier>>) -> Self {
        Self { l1, l2 }
    }

    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    /// The entry and the tier that had it.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<(Entry, TierKind)>, TierError> {
        if let Some(entry) = self.l1.get(key).await {
            return Ok(Some((entry, TierKind::L1)));
        }
        let Some(l2) = &self.l2 else {
            return Ok(None);
        };
        let Some(entry) = l2.get(key).await? else {
            return Ok(None);
        };
        self.l1.set(key.clone(), entry.clone()).await;
        Ok(Some((entry, l2.kind())))
    }

    /// Stores `value`; a `ttl` of `None` takes the namespace's default.
    pub async fn set(
        &self,
        key: CacheKey,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), TierError> {
        let ttl = ttl.unwrap_or_else(|| self.l1.default_ttl(&key.namespace));
        let entry = Entry::new(value, ttl);
        if let Some(l2) = &self.l2 {
            l2.set(key.clone(), entry.clone()).await?;
        }
        self.l1.set(key, entry).await;
        Ok(())
    }

    pub async fn delete(&self, key: &CacheKey) -> Result<bool, TierError> {
        let mut deleted = self.l1.delete(key).await;
        if let Some(l2) = &self.l2 {
            deleted |= l2.delete(key).await?;
        }
        Ok(deleted)
    }
}

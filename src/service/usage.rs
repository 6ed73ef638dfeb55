//! Coalesced last-used recording: successful validations are noted in
//! memory and written in one batched statement per flush.

use std::{collections::HashMap, sync::Mutex};

use uuid::Uuid;

use crate::{
    domain::Timestamp,
    storage::{StoreError, TokenStore},
};

/// Most recent use per token since the last flush.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<Uuid, Timestamp>>,
}

impl UsageRecorder {
    /// Notes a use of `id` at `now`, keeping the latest time per token.
    pub fn record(&self, id: Uuid, now: Timestamp) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending
            .entry(id)
            .and_modify(|time| *time = (*time).max(now))
            .or_insert(now);
    }

    /// Writes every pending use and returns how many tokens were written.
    ///
    /// # Errors
    ///
    /// Returns the storage error; the uses are kept for the next flush, so
    /// a short outage loses nothing.
    pub async fn flush(&self, store: &TokenStore) -> Result<usize, StoreError> {
        let batch: Vec<(Uuid, Timestamp)> = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match store.record_uses(&batch).await {
            Ok(()) => {
                metrics::counter!(crate::metrics::LAST_USED_FLUSHES).increment(1);
                metrics::counter!(crate::metrics::LAST_USED_TOKENS).increment(batch.len() as u64);
                Ok(batch.len())
            }
            Err(error) => {
                for (id, time) in batch {
                    self.record(id, time);
                }
                Err(error)
            }
        }
    }

    /// Returns the number of tokens waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_latest_use_per_token() {
        let recorder = UsageRecorder::default();
        let id = Uuid::now_v7();
        let early = Timestamp::from_unix(100, 0).unwrap();
        let late = Timestamp::from_unix(200, 0).unwrap();
        recorder.record(id, late);
        recorder.record(id, early);
        recorder.record(Uuid::now_v7(), early);
        assert_eq!(recorder.pending(), 2);
        assert_eq!(recorder.pending.lock().unwrap()[&id], late);
    }
}

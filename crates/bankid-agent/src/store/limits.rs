//! Rate-limit counters in `agent_rate_limits`, shared by every instance on the database, so a
//! password guesser gains nothing from a load balancer spreading their attempts.
//!
//! A counter is a fixed window per bucket (`{kind}:{key}`): the first event opens a window of
//! `per`, at most `max` events fit in it, and the next event after it opens a new one. Each
//! event is one atomic upsert, so two instances counting at once never lose a hit. (The
//! in-memory limiter slides its window instead; both allow `max` per `per`.)

use std::time::Duration;

use sqlx::Row;

use super::{ms, now_ms, AgentDb, StoreError};
use crate::limits::Limit;

/// One kind of counter (logins per name, per address, identifications per agent).
#[derive(Debug, Clone)]
pub(crate) struct SharedCounter {
    db: AgentDb,
    kind: &'static str,
    limit: Limit,
}

/// What a counter holds for one bucket.
struct Window {
    start: i64,
    hits: i64,
}

impl SharedCounter {
    pub(crate) fn new(db: AgentDb, kind: &'static str, limit: Limit) -> SharedCounter {
        SharedCounter { db, kind, limit }
    }

    fn bucket(&self, key: &str) -> String {
        format!("{}:{key}", self.kind)
    }

    /// `Some(wait)` when `key`'s window is full at `now`.
    fn full(&self, w: &Window, now: i64) -> Option<Duration> {
        let ends = w.start.saturating_add(ms(self.limit.per));
        (ends > now && w.hits >= self.limit.max as i64)
            .then(|| Duration::from_millis((ends - now) as u64))
    }

    /// `Some(wait)` when `key` has used up its window; nothing is recorded.
    pub(crate) async fn check(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let row = sqlx::query("SELECT window_start, hits FROM agent_rate_limits WHERE bucket = $1")
            .bind(self.bucket(key))
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let w = Window {
            start: row.try_get("window_start")?,
            hits: row.try_get("hits")?,
        };
        Ok(self.full(&w, now_ms()))
    }

    /// Counts one event for `key`: a new window if the last one is over. Returns the window
    /// after this event.
    async fn hit(&self, key: &str) -> Result<Window, StoreError> {
        let now = now_ms();
        let window_over = now.saturating_sub(ms(self.limit.per));
        let row = sqlx::query(
            "INSERT INTO agent_rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket) DO UPDATE SET \
               hits = CASE WHEN agent_rate_limits.window_start <= $3 THEN 1 ELSE agent_rate_limits.hits + 1 END, \
               window_start = CASE WHEN agent_rate_limits.window_start <= $3 THEN $2 ELSE agent_rate_limits.window_start END \
             RETURNING window_start, hits",
        )
        .bind(self.bucket(key))
        .bind(now)
        .bind(window_over)
        .fetch_one(self.db.pool())
        .await?;
        Ok(Window {
            start: row.try_get("window_start")?,
            hits: row.try_get("hits")?,
        })
    }

    /// Records one event for `key`.
    pub(crate) async fn record(&self, key: &str) -> Result<(), StoreError> {
        self.hit(key).await.map(|_| ())
    }

    /// Counts one event and says whether it was over the limit (`Some(wait)`): check and
    /// record in one step, so two instances cannot both take the last place.
    pub(crate) async fn take(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let w = self.hit(key).await?;
        let over = w.hits > self.limit.max as i64;
        let ends = w.start.saturating_add(ms(self.limit.per));
        Ok(over.then(|| Duration::from_millis(ends.saturating_sub(now_ms()).max(0) as u64)))
    }

    /// Forgets `key` (a name's failed logins after a successful one).
    pub(crate) async fn clear(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM agent_rate_limits WHERE bucket = $1")
            .bind(self.bucket(key))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Drops this kind's buckets whose window is over (bounds the table for unknown names).
    pub(crate) async fn prune(&self) -> Result<(), StoreError> {
        // A prefix match without LIKE: names may hold `_`, which LIKE takes as a wildcard. The
        // cast: PostgreSQL's substr takes an integer, the bound value is a BIGINT.
        let prefix = format!("{}:", self.kind);
        sqlx::query(
            "DELETE FROM agent_rate_limits \
             WHERE substr(bucket, 1, CAST($1 AS INTEGER)) = $2 AND window_start <= $3",
        )
        .bind(prefix.len() as i64)
        .bind(prefix)
        .bind(now_ms().saturating_sub(ms(self.limit.per)))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

//! Rate limits: at most `max` events per window of `per` — failed logins per agent name and
//! per client address, identifications per agent.
//!
//! [`Limiter`] is what the page uses: in memory ([`RateLimiter`], a sliding window) when
//! records are off, else counters in the database that every instance shares
//! (`crate::store::limits`, a fixed window).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::StartupError;
use crate::store::limits::SharedCounter;
use crate::store::{AgentDb, StoreError};

/// A limit: `max` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Events allowed in one window.
    pub max: usize,
    /// The window.
    pub per: Duration,
}

impl Limit {
    /// Parses `N/SECONDSs`, e.g. `5/900s`, or `N/MINUTESm`, e.g. `20/15m`.
    pub fn parse(s: &str) -> Result<Limit, StartupError> {
        let bad = || StartupError::Limit(s.to_string());
        let (n, w) = s.split_once('/').ok_or_else(bad)?;
        let max: usize = n.trim().parse().map_err(|_| bad())?;
        let w = w.trim();
        let per = if let Some(m) = w.strip_suffix('m') {
            Duration::from_secs(m.parse::<u64>().map_err(|_| bad())? * 60)
        } else if let Some(sec) = w.strip_suffix('s') {
            Duration::from_secs(sec.parse::<u64>().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        if max == 0 || per.is_zero() {
            return Err(bad());
        }
        Ok(Limit { max, per })
    }
}

/// Sliding-window counters keyed by agent name.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// A limiter enforcing `limit` per key.
    pub fn new(limit: Limit) -> RateLimiter {
        RateLimiter {
            limit,
            hits: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.hits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` when `key` has used up its window; nothing is recorded.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.lock();
        let Some(q) = hits.get_mut(key) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.limit.per)
        {
            q.pop_front();
        }
        if q.len() >= self.limit.max {
            let oldest = *q.front().expect("non-empty");
            return Err(self.limit.per.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    /// Records one event for `key`.
    pub fn record(&self, key: &str) {
        self.lock()
            .entry(key.to_string())
            .or_default()
            .push_back(Instant::now());
    }

    /// [`check`](Self::check), then [`record`](Self::record) when allowed.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.check(key)?;
        self.record(key);
        Ok(())
    }

    /// Forgets `key` (e.g. failed logins after a successful one).
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Drops keys whose events have all left the window (bounds memory for unknown names).
    pub fn prune(&self) {
        let now = Instant::now();
        let per = self.limit.per;
        self.lock()
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < per));
    }

    /// Keys held (for tests of pruning).
    pub fn keys(&self) -> usize {
        self.lock().len()
    }
}

/// A limit kept in memory or in the shared database.
pub(crate) enum Limiter {
    /// This process only.
    Memory(RateLimiter),
    /// `agent_rate_limits`.
    Shared(SharedCounter),
}

impl Limiter {
    /// `limit` for counters of `kind` (the bucket prefix in the database), in `db` or in
    /// memory.
    pub(crate) fn new(kind: &'static str, limit: Limit, db: Option<&AgentDb>) -> Limiter {
        match db {
            Some(db) => Limiter::Shared(SharedCounter::new(db.clone(), kind, limit)),
            None => Limiter::Memory(RateLimiter::new(limit)),
        }
    }

    /// `Some(wait)` when `key` has used up its window; nothing is recorded.
    pub(crate) async fn check(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        match self {
            Limiter::Memory(r) => Ok(r.check(key).err()),
            Limiter::Shared(c) => c.check(key).await,
        }
    }

    /// Records one event for `key`.
    pub(crate) async fn record(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Limiter::Memory(r) => {
                r.record(key);
                Ok(())
            }
            Limiter::Shared(c) => c.record(key).await,
        }
    }

    /// One event for `key` if allowed (`None`), else how long to wait.
    pub(crate) async fn take(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        match self {
            Limiter::Memory(r) => Ok(r.take(key).err()),
            Limiter::Shared(c) => c.take(key).await,
        }
    }

    /// Forgets `key`.
    pub(crate) async fn clear(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Limiter::Memory(r) => {
                r.clear(key);
                Ok(())
            }
            Limiter::Shared(c) => c.clear(key).await,
        }
    }

    /// Drops entries whose events have all left the window.
    pub(crate) async fn prune(&self) -> Result<(), StoreError> {
        match self {
            Limiter::Memory(r) => {
                r.prune();
                Ok(())
            }
            Limiter::Shared(c) => c.prune().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_max_events_per_window_and_others_are_independent() {
        let r = RateLimiter::new(Limit {
            max: 3,
            per: Duration::from_secs(60),
        });
        for _ in 0..3 {
            r.take("anna").unwrap();
        }
        let wait = r.take("anna").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        r.take("bertil").unwrap();
        r.clear("anna");
        r.take("anna").unwrap();
    }

    #[test]
    fn events_leave_the_window() {
        let r = RateLimiter::new(Limit {
            max: 1,
            per: Duration::from_millis(30),
        });
        r.take("a").unwrap();
        assert!(r.take("a").is_err());
        std::thread::sleep(Duration::from_millis(40));
        r.take("a").unwrap();
        std::thread::sleep(Duration::from_millis(40));
        r.prune();
        assert_eq!(r.keys(), 0);
    }

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("5/15m").unwrap(),
            Limit {
                max: 5,
                per: Duration::from_secs(900)
            }
        );
        assert_eq!(Limit::parse("20/60s").unwrap().per, Duration::from_secs(60));
        for bad in ["5", "0/1m", "5/0s", "x/1m", "5/1h"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
        let said = Limit::parse("5/1h").unwrap_err().to_string();
        assert_eq!(
            said,
            "\"5/1h\": a limit is N/SECONDSs or N/MINUTESm, e.g. 5/15m"
        );
    }
}

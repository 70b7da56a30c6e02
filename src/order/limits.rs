//! Anti-vishing limits: who may be sent a BankID request, and how often.
//!
//! Anybody can key in somebody else's personal number, and a phone order makes BankID ask that
//! person's phone whether they are on a call with us. `userDeclinedCall` is BankID telling us
//! the person is *not* — a fraud signal. So, for every entry point (C ABI, tools, agent page):
//! - after a declined call, no new order for that number for `declined_block` (default 15 min);
//! - at most `per_number` orders per personal number per hour, whoever asks;
//! - at most `per_caller` orders per caller ID per hour, when the host passes one.
//!
//! Counted in memory, per process: several IVR servers each count their own (see the README).
//! Entries older than an hour are pruned as the table is used; the number of callers tracked is
//! bounded so a flood of made-up caller IDs cannot grow memory without end.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::personnummer::Personnummer;

const WINDOW: Duration = Duration::from_secs(3600);
/// Caller IDs longer than this are cut (Asterisk's are far shorter).
const MAX_CALLER_ID: usize = 80;
/// At most this many numbers and callers tracked at once; beyond it the oldest hour is pruned
/// first, and if that is not enough a start is refused (fail closed).
const MAX_TRACKED: usize = 1_000_000;

/// Why a start was refused before anything was sent to BankID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This number declined a call recently; blocked for `remaining` more.
    DeclinedRecently {
        /// Time left of the block.
        remaining: Duration,
    },
    /// Too many orders for this number in the last hour.
    NumberRateLimited {
        /// The configured limit.
        limit: u32,
    },
    /// Too many orders from this caller ID in the last hour.
    CallerRateLimited {
        /// The configured limit.
        limit: u32,
    },
    /// More numbers and callers tracked than the table holds.
    Saturated,
}

impl Refusal {
    /// `declinedRecently`, `numberRateLimited`, `callerRateLimited`, `saturated`: the reason as
    /// the metrics label it and the audit records name it.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::DeclinedRecently { .. } => "declinedRecently",
            Refusal::NumberRateLimited { .. } => "numberRateLimited",
            Refusal::CallerRateLimited { .. } => "callerRateLimited",
            Refusal::Saturated => "saturated",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DeclinedRecently { remaining } => write!(
                f,
                "this personal number declined a BankID call recently (possible fraud attempt); \
                 new orders for it are refused for {} more minute(s)",
                remaining.as_secs().div_ceil(60)
            ),
            Refusal::NumberRateLimited { limit } => write!(
                f,
                "this personal number already had {limit} orders in the last hour \
                 (max_orders_per_number_per_hour)"
            ),
            Refusal::CallerRateLimited { limit } => write!(
                f,
                "this caller ID already started {limit} orders in the last hour \
                 (max_orders_per_caller_per_hour)"
            ),
            Refusal::Saturated => {
                f.write_str("too many personal numbers and callers tracked by the limits")
            }
        }
    }
}

/// The configured limits (0 turns one off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// How long a number is blocked after `userDeclinedCall`.
    pub declined_block: Duration,
    /// Orders per personal number per hour.
    pub per_number: u32,
    /// Orders per caller ID per hour.
    pub per_caller: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            declined_block: Duration::from_secs(15 * 60),
            per_number: 5,
            per_caller: 10,
        }
    }
}

#[derive(Default)]
struct Counts {
    declined: HashMap<Personnummer, Instant>,
    by_number: HashMap<Personnummer, VecDeque<Instant>>,
    by_caller: HashMap<String, VecDeque<Instant>>,
}

/// The limits and their counters. Thread-safe; every method is a short in-memory operation.
pub struct Limits {
    settings: LimitSettings,
    /// Shared with the limits of a reloaded configuration ([`Limits::with_settings`]): a
    /// certificate rotation must not forget who declined a call.
    counts: Arc<Mutex<Counts>>,
}

fn recent(times: &mut VecDeque<Instant>, now: Instant) -> usize {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
    times.len()
}

impl Limits {
    /// Limits with these settings and nothing counted yet.
    pub fn new(settings: LimitSettings) -> Limits {
        Limits {
            settings,
            counts: Arc::new(Mutex::new(Counts::default())),
        }
    }

    /// Limits with new settings that keep counting where these are (same counters).
    pub fn with_settings(&self, settings: LimitSettings) -> Limits {
        Limits {
            settings,
            counts: self.counts.clone(),
        }
    }

    /// Checks a start for `pnr` from `caller_id` at `now` and, when allowed, counts it.
    pub fn admit(
        &self,
        pnr: &Personnummer,
        caller_id: Option<&str>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let s = self.settings;
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&since) = c.declined.get(pnr) {
            let elapsed = now.saturating_duration_since(since);
            if elapsed < s.declined_block {
                return Err(Refusal::DeclinedRecently {
                    remaining: s.declined_block - elapsed,
                });
            }
            c.declined.remove(pnr);
        }
        if c.by_number.len() + c.by_caller.len() >= MAX_TRACKED {
            c.prune(now);
            if c.by_number.len() + c.by_caller.len() >= MAX_TRACKED {
                return Err(Refusal::Saturated);
            }
        }
        let number_count = c.by_number.get_mut(pnr).map_or(0, |t| recent(t, now));
        if s.per_number > 0 && number_count >= s.per_number as usize {
            return Err(Refusal::NumberRateLimited {
                limit: s.per_number,
            });
        }
        let caller = caller_id
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.chars().take(MAX_CALLER_ID).collect::<String>());
        if let Some(caller) = &caller {
            let caller_count = c.by_caller.get_mut(caller).map_or(0, |t| recent(t, now));
            if s.per_caller > 0 && caller_count >= s.per_caller as usize {
                return Err(Refusal::CallerRateLimited {
                    limit: s.per_caller,
                });
            }
        }
        if s.per_number > 0 {
            c.by_number.entry(pnr.clone()).or_default().push_back(now);
        }
        if let (Some(caller), true) = (caller, s.per_caller > 0) {
            c.by_caller.entry(caller).or_default().push_back(now);
        }
        Ok(())
    }

    /// Records that `pnr` declined a call at `now`.
    pub fn declined(&self, pnr: &Personnummer, now: Instant) {
        if self.settings.declined_block.is_zero() {
            return;
        }
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.declined.insert(pnr.clone(), now);
    }
}

impl Counts {
    fn prune(&mut self, now: Instant) {
        self.by_number.retain(|_, t| recent(t, now) > 0);
        self.by_caller.retain(|_, t| recent(t, now) > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pnr(s: &str) -> Personnummer {
        Personnummer::parse(s).unwrap()
    }

    #[test]
    fn a_declined_call_blocks_the_number_until_the_block_expires() {
        let l = Limits::new(LimitSettings {
            declined_block: Duration::from_secs(900),
            per_number: 0,
            per_caller: 0,
        });
        let t0 = Instant::now();
        let cecilia = pnr("197709083336");
        l.admit(&cecilia, None, t0).unwrap();
        l.declined(&cecilia, t0);
        let e = l
            .admit(&cecilia, None, t0 + Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(
            e,
            Refusal::DeclinedRecently {
                remaining: Duration::from_secs(840)
            }
        );
        assert!(e.to_string().contains("14 more minute"), "{e}");
        assert!(!e.to_string().contains("0908"), "no digits of the number");
        l.admit(&pnr("198503121116"), None, t0 + Duration::from_secs(60))
            .expect("another number is not affected");
        l.admit(&cecilia, None, t0 + Duration::from_secs(900))
            .expect("the block expires");
    }

    #[test]
    fn orders_per_number_and_per_caller_are_counted_over_an_hour() {
        let l = Limits::new(LimitSettings {
            declined_block: Duration::ZERO,
            per_number: 2,
            per_caller: 3,
        });
        let t0 = Instant::now();
        let anna = pnr("198503121116");
        l.admit(&anna, Some("070111"), t0).unwrap();
        l.admit(&anna, Some("070222"), t0).unwrap();
        assert_eq!(
            l.admit(&anna, Some("070333"), t0),
            Err(Refusal::NumberRateLimited { limit: 2 }),
            "across callers"
        );
        let sven = pnr("196801642395");
        let bengt = pnr("199105212220");
        l.admit(&sven, Some("070111"), t0).unwrap();
        l.admit(&bengt, Some("070111"), t0).unwrap();
        assert_eq!(
            l.admit(&pnr("199908072391"), Some(" 070111 "), t0),
            Err(Refusal::CallerRateLimited { limit: 3 }),
            "across numbers"
        );
        let later = t0 + WINDOW;
        l.admit(&anna, Some("070111"), later)
            .expect("an hour later both counts are free again");
        l.declined(&anna, later);
        l.admit(&anna, None, later)
            .expect("declined_block 0 blocks nothing");
    }

    #[test]
    fn refused_starts_are_not_counted() {
        let l = Limits::new(LimitSettings {
            declined_block: Duration::ZERO,
            per_number: 1,
            per_caller: 1,
        });
        let t0 = Instant::now();
        l.admit(&pnr("198503121116"), Some("a"), t0).unwrap();
        // Refused for the number: must not use up caller "b"'s one order.
        assert!(l.admit(&pnr("198503121116"), Some("b"), t0).is_err());
        l.admit(&pnr("196801642395"), Some("b"), t0).unwrap();
    }
}

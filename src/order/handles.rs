//! The handle table: where an [`OrderId`](super::OrderId) is turned back into its order.
//!
//! An id is `generation << 24 | (slot index + 1)`. Generations come from one counter for the
//! whole process, not per table, so an id is never reused — not after a release, and not after
//! the engine is shut down and a new one made (a host that reloads while another thread still
//! holds an old handle gets "stale", never somebody else's order). The counter has 40 bits:
//! after 2⁴⁰ (about 10¹²) orders in one process, starts are refused rather than reuse an id.
//! 0 is never an id (slot indexes start at 1).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of an id that hold the slot index + 1.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Generations available to the process (the id's remaining 40 bits).
const GENERATIONS: u64 = 1 << (64 - INDEX_BITS);

/// The most slots a table can hold (so `max_orders` is capped at this).
pub const MAX_SLOTS: usize = INDEX_MASK as usize;

/// The next generation, shared by every table in the process.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

struct Slot<T> {
    generation: u64,
    value: Option<T>,
}

/// Why an insert failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// Every slot is in use.
    Slots,
    /// The process used up its generations (2⁴⁰ orders).
    Generations,
}

/// Slots addressed by generation-checked ids.
pub struct HandleTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    used: usize,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        HandleTable {
            slots: Vec::new(),
            free: Vec::new(),
            used: 0,
        }
    }
}

fn encode(generation: u64, index: usize) -> u64 {
    (generation << INDEX_BITS) | (index as u64 + 1)
}

fn decode(id: u64) -> Option<(u64, usize)> {
    let index = ((id & INDEX_MASK) as usize).checked_sub(1)?;
    Some((id >> INDEX_BITS, index))
}

impl<T> HandleTable<T> {
    /// The value `id` names, if it is live.
    pub fn get(&self, id: u64) -> Option<&T> {
        let (generation, index) = decode(id)?;
        let slot = self.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// Stores `value` under a new id, unless `limit` slots are in use already.
    pub fn insert(&mut self, value: T, limit: usize) -> Result<u64, Full> {
        if self.used >= limit.min(MAX_SLOTS) {
            return Err(Full::Slots);
        }
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        if generation >= GENERATIONS {
            return Err(Full::Generations);
        }
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.generation = generation;
        slot.value = Some(value);
        self.used += 1;
        Ok(encode(generation, index))
    }

    /// Takes the value out; `id` turns stale.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        self.get(id)?;
        let (_, index) = decode(id)?;
        let slot = &mut self.slots[index];
        slot.generation = 0;
        self.free.push(index as u32);
        self.used -= 1;
        slot.value.take()
    }

    /// Live values held.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Every live id and value.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let v = s.value.as_ref()?;
            Some((encode(s.generation, i), v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generation_checked() {
        let mut t = HandleTable::default();
        let a = t.insert("a", 10).unwrap();
        assert_ne!(a, 0);
        assert_eq!(t.get(a), Some(&"a"));
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.get(a), None, "a released id is stale");
        let b = t.insert("b", 10).unwrap();
        assert_eq!(a & INDEX_MASK, b & INDEX_MASK, "the slot is reused");
        assert_ne!(a, b, "under a new id");
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(12345 << INDEX_BITS | 99), None);
        assert_eq!(t.remove(a), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_new_table_never_repeats_an_id_of_an_old_one() {
        // Two tables stand for an engine before and after bankid_shutdown + bankid_init.
        let mut old = HandleTable::default();
        let first_old = old.insert(1, 10).unwrap();
        let mut new = HandleTable::default();
        let first_new = new.insert(2, 10).unwrap();
        assert_ne!(first_old, first_new);
        assert_eq!(
            new.get(first_old),
            None,
            "an old handle is stale in the new table"
        );
    }

    #[test]
    fn inserts_stop_at_the_limit() {
        let mut t = HandleTable::default();
        t.insert((), 1).unwrap();
        assert_eq!(t.insert((), 1), Err(Full::Slots));
        assert_eq!(t.iter().count(), 1);
    }
}

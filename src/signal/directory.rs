//! Which worker hosts which room.
//!
//! A room lives on one worker. The first participant places it on the worker
//! with the fewest rooms; the last one to leave frees the entry. Entries are
//! reference counted under DashMap's per-shard lock, so a join racing the last
//! leave either keeps the room or places it anew, never loses it.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

#[derive(Debug)]
struct Placement {
    worker: usize,
    participants: usize,
}

/// Room -> worker placement with participant counts.
#[derive(Debug)]
pub struct Directory {
    rooms: DashMap<String, Placement>,
    rooms_per_worker: Vec<AtomicUsize>,
}

impl Directory {
    pub fn new(workers: usize) -> Self {
        Directory {
            rooms: DashMap::new(),
            rooms_per_worker: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Counts one more participant in `room` and returns its worker.
    pub fn acquire(&self, room: &str) -> usize {
        let mut placement = self.rooms.entry(room.to_string()).or_insert_with(|| {
            let worker = self.least_loaded();
            self.rooms_per_worker[worker].fetch_add(1, Ordering::Relaxed);
            Placement {
                worker,
                participants: 0,
            }
        });
        placement.participants += 1;
        placement.worker
    }

    /// Counts one participant out of `room`, freeing it when empty.
    pub fn release(&self, room: &str) {
        if let Entry::Occupied(mut entry) = self.rooms.entry(room.to_string()) {
            let placement = entry.get_mut();
            placement.participants = placement.participants.saturating_sub(1);
            if placement.participants == 0 {
                let worker = entry.remove().worker;
                self.rooms_per_worker[worker].fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Number of rooms with at least one participant.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    fn least_loaded(&self) -> usize {
        self.rooms_per_worker
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| n.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_spread_over_workers_and_are_freed_when_empty() {
        let d = Directory::new(2);
        let a = d.acquire("a");
        let b = d.acquire("b");
        assert_ne!(a, b, "second room goes to the idle worker");
        assert_eq!(d.acquire("a"), a, "same room, same worker");
        d.release("a");
        assert_eq!(d.room_count(), 2);
        d.release("a");
        d.release("b");
        assert_eq!(d.room_count(), 0);
        d.release("never-there");
        assert_eq!(d.room_count(), 0);
    }
}

//! Which worker hosts which room: routing only.
//!
//! A room lives on one worker. The first join places it on the worker with
//! the fewest rooms. Who is *in* a room is the media core's business alone
//! (its membership); the directory only mirrors whether the worker hosts the
//! room, from the core's `RoomOpened`/`RoomClosed` events, and counts the
//! joins on their way to it.
//!
//! An entry goes away when its worker no longer hosts the room and no join
//! is in flight. The join in flight is what a plain "remove when closed"
//! would get wrong: a join routed to worker A just before A's room empties
//! would recreate the room on A while the next join, finding no entry,
//! places it on B. A [`RoomLease`] keeps the entry until the worker has
//! handled the join; it is released on the worker thread after the join's
//! events, so for one room every change happens in the worker's order.
//! Changes to one entry happen under its DashMap shard lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::media::RoomName;

#[derive(Debug)]
struct Placement {
    worker: usize,
    /// Joins routed here that their worker has not handled yet.
    joins_in_flight: usize,
    /// The worker's core has the room (it said `RoomOpened` and not since
    /// `RoomClosed`).
    hosted: bool,
}

/// Room -> worker placement.
#[derive(Debug)]
pub struct Directory {
    rooms: DashMap<RoomName, Placement>,
    rooms_per_worker: Vec<AtomicUsize>,
    /// Rooms placed at most; joins that would open another are refused.
    max_rooms: usize,
}

/// Every room the server may host is open: a new one must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server hosts as many rooms as it may")]
pub struct ServerFull;

/// A join on its way to the worker that hosts `room`. Dropping it (after the
/// worker handled the join, or when the join never got there) releases the
/// placement if nothing else holds it.
#[derive(Debug)]
pub struct RoomLease {
    directory: Arc<Directory>,
    room: RoomName,
    worker: usize,
}

impl RoomLease {
    /// The worker the join must go to.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for RoomLease {
    fn drop(&mut self) {
        self.directory.release(&self.room);
    }
}

impl Directory {
    pub fn new(workers: usize, max_rooms: usize) -> Arc<Self> {
        Arc::new(Directory {
            rooms: DashMap::new(),
            rooms_per_worker: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            max_rooms,
        })
    }

    /// Routes one join for `room`, placing the room if it has no worker and
    /// the server may open another.
    pub fn lease(self: &Arc<Self>, room: &RoomName) -> Result<RoomLease, ServerFull> {
        let mut placement = match self.rooms.entry(room.clone()) {
            Entry::Occupied(o) => o.into_ref(),
            Entry::Vacant(v) => {
                // Counted from the per-worker atomics: `DashMap::len` would
                // wait for the shard this entry holds.
                if self.room_count() >= self.max_rooms {
                    return Err(ServerFull);
                }
                let worker = self.least_loaded();
                self.rooms_per_worker[worker].fetch_add(1, Ordering::Relaxed);
                v.insert(Placement {
                    worker,
                    joins_in_flight: 0,
                    hosted: false,
                })
            }
        };
        placement.joins_in_flight += 1;
        Ok(RoomLease {
            directory: self.clone(),
            room: room.clone(),
            worker: placement.worker,
        })
    }

    /// `worker`'s core now has `room`.
    pub fn room_opened(&self, room: &RoomName, worker: usize) {
        if let Some(mut placement) = self.rooms.get_mut(room) {
            if placement.worker == worker {
                placement.hosted = true;
            }
        }
    }

    /// `worker`'s core no longer has `room`.
    pub fn room_closed(&self, room: &RoomName, worker: usize) {
        if let Entry::Occupied(mut entry) = self.rooms.entry(room.clone()) {
            if entry.get().worker != worker {
                return;
            }
            entry.get_mut().hosted = false;
            if entry.get().joins_in_flight == 0 {
                self.rooms_per_worker[worker].fetch_sub(1, Ordering::Relaxed);
                entry.remove();
            }
        }
    }

    /// The worker `room` is placed on, if it is placed.
    pub fn worker_of(&self, room: &RoomName) -> Option<usize> {
        self.rooms.get(room).map(|p| p.worker)
    }

    /// Number of rooms placed on a worker.
    pub fn room_count(&self) -> usize {
        self.rooms_per_worker
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    fn release(&self, room: &RoomName) {
        if let Entry::Occupied(mut entry) = self.rooms.entry(room.clone()) {
            let placement = entry.get_mut();
            placement.joins_in_flight = placement.joins_in_flight.saturating_sub(1);
            if placement.joins_in_flight == 0 && !placement.hosted {
                let worker = entry.remove().worker;
                self.rooms_per_worker[worker].fetch_sub(1, Ordering::Relaxed);
            }
        }
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

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn rooms_spread_over_workers_and_are_freed_when_their_worker_closes_them() {
        let d = Directory::new(2, 100);
        let a = d.lease(&room("a")).unwrap();
        let b = d.lease(&room("b")).unwrap();
        assert_ne!(
            a.worker(),
            b.worker(),
            "second room goes to the idle worker"
        );
        let (wa, wb) = (a.worker(), b.worker());
        d.room_opened(&room("a"), wa);
        d.room_opened(&room("b"), wb);
        drop((a, b));
        assert_eq!(d.room_count(), 2, "hosted rooms stay after their joins");
        assert_eq!(
            d.lease(&room("a")).unwrap().worker(),
            wa,
            "same room, same worker"
        );
        d.room_closed(&room("a"), wb);
        assert_eq!(d.room_count(), 2, "only the hosting worker closes a room");
        d.room_closed(&room("a"), wa);
        d.room_closed(&room("b"), wb);
        assert_eq!(d.room_count(), 0);
    }

    #[test]
    fn a_join_in_flight_keeps_the_room_on_its_worker_across_a_close() {
        let d = Directory::new(2, 100);
        let first = d.lease(&room("r")).unwrap();
        let w = first.worker();
        d.room_opened(&room("r"), w);
        drop(first);
        let racing = d.lease(&room("r")).unwrap(); // routed to w just before ...
        d.room_closed(&room("r"), w); // ... the last participant there left
        assert_eq!(
            d.lease(&room("r")).unwrap().worker(),
            w,
            "still routed to w"
        );
        d.room_opened(&room("r"), w); // the racing join recreated it on w
        drop(racing);
        assert_eq!(d.room_count(), 1);
    }

    #[test]
    fn a_join_that_never_opened_its_room_frees_the_placement() {
        let d = Directory::new(1, 100);
        drop(d.lease(&room("r")).unwrap());
        assert_eq!(d.room_count(), 0);
    }

    #[test]
    fn no_room_beyond_the_maximum_is_opened() {
        let d = Directory::new(2, 2);
        let _a = d.lease(&room("a")).unwrap();
        let _b = d.lease(&room("b")).unwrap();
        assert_eq!(d.lease(&room("c")).unwrap_err(), ServerFull);
        assert!(
            d.lease(&room("a")).is_ok(),
            "joining an open room still works"
        );
    }
}

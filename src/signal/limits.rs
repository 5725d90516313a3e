//! Per-address limits on the control plane: concurrent signaling sessions
//! (WebSocket and WHIP/WHEP) and the join rate, so that one client cannot
//! take the server's capacity from the others.
//!
//! Addresses are counted per IPv4 address and per IPv6 /64 (one subscriber
//! line gets a whole /64). Loopback peers are not limited unless
//! `--limit-loopback` says so: they are local tools, or a reverse proxy in
//! front of the server, for which per-address limits would count every
//! client as one.
//!
//! Memory stays bounded: a session counter goes when its last session ends,
//! and join buckets that refilled are dropped whenever the table grows past
//! [`PRUNE_AT`]; past [`MAX_TRACKED`] addresses new ones are refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::worker::ServerFull;

/// Join buckets kept before the full ones are dropped.
const PRUNE_AT: usize = 4096;

/// Addresses tracked at most (each entry is a few dozen bytes).
const MAX_TRACKED: usize = 65_536;

/// The limits an operator sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub sessions_per_ip: usize,
    pub joins_per_ip_per_minute: u32,
    pub limit_loopback: bool,
}

/// A limit was hit: what, and when trying again makes sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}; retry in {} s", retry_after.as_secs().max(1))]
pub struct Limited {
    pub what: &'static str,
    pub retry_after: Duration,
}

/// How long a client is told to wait when a room or the server is full.
pub const CAPACITY_RETRY: Duration = Duration::from_secs(30);

impl Limited {
    /// A full room or server.
    pub fn capacity(what: &'static str) -> Self {
        Limited {
            what,
            retry_after: CAPACITY_RETRY,
        }
    }
}

impl From<ServerFull> for Limited {
    fn from(_: ServerFull) -> Self {
        Limited::capacity("the server hosts as many rooms as it may")
    }
}

/// The address key limits count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    /// The /64 prefix.
    V6(u64),
}

fn key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V4(v4) => Key::V4(v4.into()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::V4(v4.into()),
            None => Key::V6((u128::from(v6) >> 64) as u64),
        },
    }
}

/// A token bucket of joins.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The live counters.
pub struct Limits {
    config: LimitsConfig,
    sessions: Mutex<HashMap<Key, usize>>,
    joins: Mutex<HashMap<Key, Bucket>>,
}

/// One open session of an address; dropping it frees the slot.
pub struct SessionSlot {
    limits: Arc<Limits>,
    key: Option<Key>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut sessions = lock(&self.limits.sessions);
        if let Some(n) = sessions.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                sessions.remove(&key);
            }
        }
    }
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Arc<Self> {
        Arc::new(Limits {
            config,
            sessions: Mutex::default(),
            joins: Mutex::default(),
        })
    }

    fn counted(&self, ip: IpAddr) -> Option<Key> {
        (self.config.limit_loopback || !ip.is_loopback()).then(|| key(ip))
    }

    /// Takes a session slot for `ip`.
    pub fn open_session(self: &Arc<Self>, ip: IpAddr) -> Result<SessionSlot, Limited> {
        let key = self.counted(ip);
        if let Some(key) = key {
            let mut sessions = lock(&self.sessions);
            let tracked = sessions.len();
            let n = sessions.entry(key).or_insert(0);
            if *n >= self.config.sessions_per_ip || (*n == 0 && tracked >= MAX_TRACKED) {
                if *n == 0 {
                    sessions.remove(&key);
                }
                return Err(Limited {
                    what: "too many sessions from this address",
                    retry_after: Duration::from_secs(30),
                });
            }
            *n += 1;
        }
        Ok(SessionSlot {
            limits: self.clone(),
            key,
        })
    }

    /// Spends one join of `ip`'s budget.
    pub fn admit_join(&self, ip: IpAddr, now: Instant) -> Result<(), Limited> {
        let Some(key) = self.counted(ip) else {
            return Ok(());
        };
        let per_minute = f64::from(self.config.joins_per_ip_per_minute.max(1));
        let rate = per_minute / 60.0; // tokens per second
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(per_minute)
        };
        let mut joins = lock(&self.joins);
        if joins.len() >= PRUNE_AT && !joins.contains_key(&key) {
            joins.retain(|_, b| refill(b) < per_minute);
            if joins.len() >= MAX_TRACKED {
                return Err(Limited {
                    what: "the server is busy with joins",
                    retry_after: Duration::from_secs(10),
                });
            }
        }
        let bucket = joins.entry(key).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            return Err(Limited {
                what: "too many joins from this address",
                retry_after: Duration::from_secs_f64((1.0 - tokens) / rate),
            });
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }

    /// Addresses with open sessions, and with join buckets (for tests).
    pub fn tracked(&self) -> (usize, usize) {
        (lock(&self.sessions).len(), lock(&self.joins).len())
    }
}

/// Locks a table; a panic elsewhere while holding it cannot leave it torn
/// (every update is a single insert or remove), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(sessions: usize, joins: u32) -> Arc<Limits> {
        Limits::new(LimitsConfig {
            sessions_per_ip: sessions,
            joins_per_ip_per_minute: joins,
            limit_loopback: false,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sessions_per_address_are_capped_and_freed_on_drop() {
        let l = limits(2, 60);
        let a = l.open_session(ip("192.0.2.1")).unwrap();
        let _b = l.open_session(ip("192.0.2.1")).unwrap();
        let refused = l.open_session(ip("192.0.2.1")).err().unwrap();
        assert!(refused.to_string().contains("retry in"), "{refused}");
        assert!(
            l.open_session(ip("192.0.2.2")).is_ok(),
            "another address is unaffected"
        );
        drop(a);
        assert!(
            l.open_session(ip("192.0.2.1")).is_ok(),
            "a freed slot can be taken"
        );
    }

    #[test]
    fn one_ipv6_slash_64_counts_as_one_address() {
        let l = limits(1, 60);
        let _a = l.open_session(ip("2001:db8:1:2::1")).unwrap();
        assert!(l.open_session(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(l.open_session(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn loopback_is_not_limited_unless_asked() {
        let l = limits(1, 1);
        let _a = l.open_session(ip("127.0.0.1")).unwrap();
        let _b = l.open_session(ip("::1")).unwrap();
        let strict = Limits::new(LimitsConfig {
            limit_loopback: true,
            ..l.config
        });
        let _c = strict.open_session(ip("127.0.0.1")).unwrap();
        assert!(strict.open_session(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn joins_refill_at_the_configured_rate() {
        let l = limits(10, 6); // one join every 10 s, bursts of 6
        let start = Instant::now();
        for _ in 0..6 {
            l.admit_join(ip("192.0.2.1"), start).unwrap();
        }
        let refused = l.admit_join(ip("192.0.2.1"), start).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        assert!(l.admit_join(ip("192.0.2.9"), start).is_ok());
        assert!(l
            .admit_join(ip("192.0.2.1"), start + Duration::from_secs(5))
            .is_err());
        assert!(l
            .admit_join(ip("192.0.2.1"), start + Duration::from_secs(11))
            .is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let l = limits(10, 60);
        let start = Instant::now();
        for i in 0..20_000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            drop(l.open_session(addr).unwrap());
            // A minute apart, so earlier buckets have refilled and go.
            l.admit_join(addr, start + Duration::from_secs(u64::from(i) * 60))
                .unwrap();
        }
        let (sessions, joins) = l.tracked();
        assert_eq!(sessions, 0, "no session counters once sessions end");
        assert!(joins <= PRUNE_AT, "{joins} join buckets kept");
    }
}

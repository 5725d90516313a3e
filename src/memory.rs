//! Giving freed memory back to the operating system.
//!
//! A join storm allocates a lot for a short time: every joining
//! connection's `Rtc`, its DTLS handshake (in OpenSSL), its first packets.
//! When those participants leave, the memory is freed, but an allocator
//! keeps freed pages for reuse unless something tells it to let go, so the
//! server's resident size stayed at its peak long after the storm.
//!
//! Three things kept it from coming back:
//!
//! - mimalloc collects a page that other threads freed blocks into only when
//!   the page's owning thread next allocates from it or collects. A media
//!   worker or runtime thread that goes quiet after a storm never does, so
//!   each thread calls [`release_freed`] itself: a worker after participants
//!   left it, every runtime thread when it parks (see
//!   [`release_freed_when_idle`]).
//! - mimalloc returns freed pages to the OS only after a purge delay (1 s by
//!   default), on a later allocator call; after the storm there is none.
//!   [`configure_allocator`] makes purges immediate (a storm's frees cost a
//!   few more `madvise` calls; steady forwarding frees whole pages rarely:
//!   14 calls in 10 s of a 10-person meeting before, 19 after), and
//!   [`release_periodically`] collects on a timer as a trailing sweep.
//! - OpenSSL allocates through the C library's `malloc`, whose per-thread
//!   arenas keep their top free space; [`route_openssl_to_mimalloc`] sends it
//!   to mimalloc, where the same collection covers it.
//!
//! Without the `mimalloc` feature (the system allocator, e.g. for heap
//! profiling with heaptrack) [`release_freed`] asks glibc to trim instead.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often one thread at most collects on its own when it parks: often
/// enough that memory comes back within seconds of a storm, rarely enough
/// that the collection (a walk over the thread's pages) costs nothing.
pub const IDLE_RELEASE_INTERVAL: Duration = Duration::from_secs(1);

/// How often [`release_periodically`] collects.
pub const PERIODIC_RELEASE_INTERVAL: Duration = Duration::from_secs(5);

/// Frees the calling thread's empty pages (including those other threads
/// freed blocks into) and returns the allocator's free memory to the OS.
///
/// It walks every page the thread owns: call it after a burst of frees, not
/// per packet.
pub fn release_freed() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect has no preconditions; it only touches the calling
    // thread's heap and the process's arenas under mimalloc's own locks.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(not(feature = "mimalloc"), target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

thread_local! {
    static LAST_IDLE_RELEASE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// [`release_freed`] at most once per [`IDLE_RELEASE_INTERVAL`] per thread:
/// the hook for a thread pool's "going idle" callback (tokio's
/// `on_thread_park`), which runs far more often than that.
pub fn release_freed_when_idle() {
    let now = Instant::now();
    let due = LAST_IDLE_RELEASE.with(|last| match last.get() {
        Some(at) if now.duration_since(at) < IDLE_RELEASE_INTERVAL => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        release_freed();
    }
}

/// Calls [`release_freed`] every [`PERIODIC_RELEASE_INTERVAL`], forever: the
/// trailing collection after a storm that no thread's own would make (see
/// the module docs). Spawn it once on the runtime.
pub async fn release_periodically() {
    let mut every = tokio::time::interval(PERIODIC_RELEASE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        release_freed();
    }
}

/// mimalloc 3's `mi_option_purge_delay` (its place in `mi_option_e`; the
/// Rust bindings name only the older options). The test below checks that
/// it still holds the option's default, so a renumbered enum fails there.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator up to give memory back promptly: mimalloc purges a
/// freed page at once instead of a second later (see the module docs).
/// Call first thing in `main`. Without the `mimalloc` feature it does
/// nothing.
pub fn configure_allocator() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_option_set only stores the value; mimalloc reads it on each
    // purge decision.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Makes OpenSSL allocate through mimalloc instead of the C library's
/// `malloc`. Must run before anything uses OpenSSL (OpenSSL refuses the
/// change once it has allocated); returns whether OpenSSL took it. Without
/// the `mimalloc` feature it does nothing and returns false.
pub fn route_openssl_to_mimalloc() -> bool {
    #[cfg(feature = "mimalloc")]
    {
        openssl_memory::route()
    }
    #[cfg(not(feature = "mimalloc"))]
    {
        false
    }
}

#[cfg(feature = "mimalloc")]
mod openssl_memory {
    use std::ffi::{c_char, c_int, c_void};

    unsafe extern "C" {
        /// OpenSSL 3's hook (`crypto.h`); 1 when taken, 0 once OpenSSL has
        /// allocated.
        fn CRYPTO_set_mem_functions(
            malloc: unsafe extern "C" fn(usize, *const c_char, c_int) -> *mut c_void,
            realloc: unsafe extern "C" fn(*mut c_void, usize, *const c_char, c_int) -> *mut c_void,
            free: unsafe extern "C" fn(*mut c_void, *const c_char, c_int),
        ) -> c_int;
    }

    unsafe extern "C" fn malloc(size: usize, _file: *const c_char, _line: c_int) -> *mut c_void {
        // SAFETY: mi_malloc accepts any size (NULL when out of memory, as
        // OpenSSL expects of malloc).
        unsafe { libmimalloc_sys::mi_malloc(size) }
    }

    unsafe extern "C" fn realloc(
        block: *mut c_void,
        size: usize,
        _file: *const c_char,
        _line: c_int,
    ) -> *mut c_void {
        // SAFETY: once routed, every block OpenSSL holds came from mi_malloc
        // or mi_realloc (OpenSSL refuses the routing after its first
        // allocation), and NULL is allowed.
        unsafe { libmimalloc_sys::mi_realloc(block, size) }
    }

    unsafe extern "C" fn free(block: *mut c_void, _file: *const c_char, _line: c_int) {
        // SAFETY: as for realloc; NULL is allowed.
        unsafe { libmimalloc_sys::mi_free(block) }
    }

    pub fn route() -> bool {
        // SAFETY: the three functions have OpenSSL's signatures and keep
        // malloc's contract.
        unsafe { CRYPTO_set_mem_functions(malloc, realloc, free) == 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mimalloc")]
    #[test]
    fn the_purge_delay_option_is_where_configure_allocator_sets_it() {
        // SAFETY: reading an option has no preconditions.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // The test binary does not call configure_allocator: mimalloc 3's
        // default purge delay, 1000 ms, is what this option must read.
        assert_eq!(
            delay, 1000,
            "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay"
        );
    }

    #[test]
    fn an_idle_thread_releases_once_per_interval() {
        std::thread::spawn(|| {
            release_freed_when_idle();
            let first = LAST_IDLE_RELEASE
                .with(Cell::get)
                .expect("first call releases");
            release_freed_when_idle();
            assert_eq!(
                LAST_IDLE_RELEASE.with(Cell::get),
                Some(first),
                "a second call within the interval does not release again"
            );
        })
        .join()
        .unwrap();
    }
}

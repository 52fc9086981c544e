//! What the transport (`io`) and the management API (`http`) both take from the
//! operating system, so neither imports the other: the clock, the data
//! directory's disk, TCP listeners on several addresses, Unix socket listeners,
//! and loop-turn timing.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`now_ms`], the clock the core is given (monotonic, on the wall clock's scale) |
//! | [`disk`] | free bytes (`statvfs`), removing transient queue files |
//! | [`listeners`] | one accept over every address of a `bind` setting |
//! | [`stall`] | loop-turn timing: slow-turn warnings and the longest-turn metric |
//! | [`stream`] | a client's stream, TCP or Unix socket |
//! | [`unix_socket`] | a Unix domain socket listener: stale file removed, 0666, removed at shutdown |

// statvfs through libc: its `unsafe` blocks have `// SAFETY:` comments.
#[allow(unsafe_code)]
pub(crate) mod disk;
pub(crate) mod listeners;
pub(crate) mod stall;
pub(crate) mod stream;
pub(crate) mod unix_socket;

/// The core's clock: milliseconds on the Unix epoch's scale that never go
/// back. The wall clock is read once, at the first call, so that times the
/// broker persists (message timestamps, TTL deadlines, delayed messages' due
/// times) still compare across restarts; from then on the monotonic clock
/// (`CLOCK_MONOTONIC`) advances it. A wall clock stepped back by NTP or an
/// operator would otherwise stall or re-fire timers, expire messages late or
/// early, and reorder deadlines within one run. The cost: over a long run this
/// drifts from the wall clock as far as NTP slews it (parts per million) and by
/// the time the machine was suspended.
pub(crate) fn now_ms() -> u64 {
    static START: std::sync::OnceLock<(std::time::Instant, u64)> = std::sync::OnceLock::new();
    let (at, wall) = START.get_or_init(|| (std::time::Instant::now(), wall_ms()));
    wall + at.elapsed().as_millis() as u64
}

/// Milliseconds since the Unix epoch, as the wall clock says now.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_starts_at_the_wall_clock_and_never_goes_back() {
        let first = super::now_ms();
        let wall = super::wall_ms();
        assert!(first.abs_diff(wall) < 60_000, "{first} vs wall {wall}");
        let mut last = first;
        for _ in 0..10_000 {
            let now = super::now_ms();
            assert!(now >= last);
            last = now;
        }
    }
}

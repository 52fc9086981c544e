//! What the transport (`io`) and the management API (`http`) both take from the
//! operating system, so neither imports the other: the wall clock, the data
//! directory's disk, TCP listeners on several addresses, and loop-turn timing.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`now_ms`], the clock the core is given |
//! | [`disk`] | free bytes (`statvfs`), removing transient queue files |
//! | [`listeners`] | one accept over every address of a `bind` setting |
//! | [`stall`] | loop-turn timing: slow-turn warnings and the longest-turn metric |

// statvfs through libc: its `unsafe` blocks have `// SAFETY:` comments.
#[allow(unsafe_code)]
pub(crate) mod disk;
pub(crate) mod listeners;
pub(crate) mod stall;

/// Milliseconds since the Unix epoch: the `now` the core is given.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

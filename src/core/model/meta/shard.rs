//! Which shard owns a queue (`docs/shards.md`): `hash(vhost, name) mod N`.
//!
//! The hash is FNV-1a over the vhost's bytes, a zero byte and the name's bytes,
//! mixed by MurmurHash3's finaliser:
//! fixed forever (not the maps' seeded hasher), so the same queue lands on the
//! same shard in every process and every version; a queue's folder is
//! self-contained, so another `N` at the next start only moves queues between
//! shards, it loses nothing. The zero byte between the two keeps ("a", "bc")
//! and ("ab", "c") apart (names may hold zero bytes; then two such pairs share
//! a shard, which is only a matter of balance).

/// The most shards one broker runs: one per core, and 1,024 cores is beyond
/// any machine this targets (the rings between shards grow with N²).
pub const SHARDS_MAX: u16 = 1024;

/// A shard: one thread with its own event loop and its own part of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShardId(pub u16);

impl ShardId {
    /// Shard 0 owns the metadata log and the management API.
    pub const FIRST: ShardId = ShardId(0);

    /// The shard that owns queue `name` of `vhost` when the broker runs
    /// `shards` shards (1 to [`SHARDS_MAX`]).
    pub fn owner_of_queue(vhost: &str, name: &str, shards: u16) -> ShardId {
        assert!(
            (1..=SHARDS_MAX).contains(&shards),
            "shard count {shards} outside 1..={SHARDS_MAX}"
        );
        if shards == 1 {
            return ShardId::FIRST;
        }
        let h = fmix64(fnv1a(fnv1a(fnv1a(FNV_OFFSET, vhost.as_bytes()), &[0]), name.as_bytes()));
        // Multiply-shift instead of `%`: no division, and every bit counts.
        ShardId(((u128::from(h) * u128::from(shards)) >> 64) as u16)
    }
}

/// Which shard this is, and of how many: what a shard's model needs to tell
/// its own queues from the copies of other shards' queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    pub me: ShardId,
    pub count: u16,
}

impl Default for Shards {
    fn default() -> Self {
        Shards::ONE
    }
}

impl Shards {
    /// One shard, which owns everything.
    pub const ONE: Shards = Shards {
        me: ShardId::FIRST,
        count: 1,
    };

    /// Shard `me` of `count` (1 to [`SHARDS_MAX`]).
    pub fn new(me: ShardId, count: u16) -> Shards {
        assert!(
            (1..=SHARDS_MAX).contains(&count) && me.0 < count,
            "shard {} of {count}",
            me.0
        );
        Shards { me, count }
    }

    /// The shard that owns queue `name` of `vhost`.
    pub fn owner_of_queue(&self, vhost: &str, name: &str) -> ShardId {
        ShardId::owner_of_queue(vhost, name, self.count)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// MurmurHash3's 64-bit finaliser: FNV-1a alone leaves names that differ in
/// their last byte ("queue-1", "queue-2") close in the high bits.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_owns_everything() {
        for name in ["", "a", "orders", "amq.gen-xyz"] {
            assert_eq!(ShardId::owner_of_queue("/", name, 1), ShardId::FIRST);
        }
    }

    const PINNED: [u16; 8] = [28, 10, 48, 60, 16, 52, 28, 1];

    #[test]
    fn the_owner_is_fixed_forever() {
        // Values pinned: a change of hash would move every queue of a running
        // cluster to another shard at its next start.
        assert_eq!(fnv1a(FNV_OFFSET, b""), FNV_OFFSET);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        let owners: Vec<u16> = ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7"]
            .iter()
            .map(|q| ShardId::owner_of_queue("/", q, 64).0)
            .collect();
        assert_eq!(owners, PINNED);
    }

    #[test]
    fn owners_spread_evenly_and_stay_in_range() {
        for shards in [2u16, 3, 8, 64] {
            let mut counts = vec![0u32; usize::from(shards)];
            for i in 0..64_000 {
                let s = ShardId::owner_of_queue("/", &format!("queue-{i}"), shards);
                assert!(s.0 < shards);
                counts[usize::from(s.0)] += 1;
            }
            let mean = 64_000 / u32::from(shards);
            for (shard, &n) in counts.iter().enumerate() {
                assert!(
                    n > mean * 8 / 10 && n < mean * 12 / 10,
                    "{shards} shards: shard {shard} owns {n} of 64,000 queues (mean {mean})"
                );
            }
        }
    }

    #[test]
    fn vhost_and_name_are_kept_apart() {
        let spread = (0..64)
            .filter(|i| {
                let a = ShardId::owner_of_queue(&format!("v{i}"), "q", 64);
                let b = ShardId::owner_of_queue("v", &format!("{i}q"), 64);
                a != b
            })
            .count();
        assert!(spread > 48, "only {spread} of 64 split names landed apart");
    }

    #[test]
    #[should_panic(expected = "shard count 0")]
    fn zero_shards_is_a_bug() {
        ShardId::owner_of_queue("/", "q", 0);
    }
}

//! The seeded simulations' random numbers (xorshift64*): the same seed, the
//! same run.

pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// 1 to `max` random bytes (0 to `max - 1` with `from_zero`).
    pub(super) fn some_bytes(&mut self, max: u64, from_zero: bool) -> Vec<u8> {
        let n = self.below(max) as usize + usize::from(!from_zero);
        self.bytes(n)
    }
}

//! CRC32C (Castagnoli) of a few bytes without a call into the `crc32c` crate.
//!
//! The crate's hardware path costs about 100 instructions per call before its
//! first byte (dispatch, alignment, the three-way split for long inputs); a
//! small record's checksum made two calls, one of them over the 4-byte length
//! word alone (see `record::encode_into`). Here a byte at a time through a
//! 256-entry table built at compile time: about 4 instructions per byte, the
//! same function as `crc32c::crc32c_append` (checked against it in the tests).

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `TABLE[b]`: the CRC register after shifting byte `b` through it.
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// `crc32c::crc32c_append(crc, bytes)`, for inputs of a few bytes.
#[inline]
pub(crate) fn append_short(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_crate() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for seed in [0, 1, 0xdead_beef, x as u32] {
                assert_eq!(
                    append_short(seed, &bytes),
                    crc32c::crc32c_append(seed, &bytes),
                    "len {len}"
                );
            }
        }
        // The standard check value of CRC-32C.
        assert_eq!(append_short(0, b"123456789"), 0xE306_9283);
    }
}

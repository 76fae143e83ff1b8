//! A fast keyed hash for flow tables (connections, bindings).
//!
//! `std`'s SipHash is slow in wasm; flow tables are looked up for every
//! packet. This multiply-rotate hash with a final avalanche is seeded per
//! instance ([`seed_from_name`]). It is not a defence against a determined
//! hash-flooding attacker; tables are bounded instead.

use core::hash::{BuildHasher, Hasher};

/// A keyed, non-cryptographic hasher for flow keys (multiply-rotate, with a
/// final avalanche): much cheaper than SipHash in wasm, and seeded so that
/// different instances spread keys differently.
#[derive(Clone, Copy, Debug)]
pub struct FlowHasher {
    state: u64,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for FlowHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.state = (self.state ^ v).wrapping_mul(K).rotate_left(29);
    }
    fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Builds [`FlowHasher`]s from a seed.
#[derive(Clone, Copy, Debug)]
pub struct FlowHash {
    seed: u64,
}

impl FlowHash {
    /// Hashers starting from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        FlowHash { seed }
    }
}

impl BuildHasher for FlowHash {
    type Hasher = FlowHasher;
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher { state: self.seed }
    }
}

/// A seed derived from an instance's name (FNV-1a).
pub fn seed_from_name(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_seeds_differ() {
        let a = FlowHash::with_seed(seed_from_name("fw1"));
        let b = FlowHash::with_seed(seed_from_name("fw2"));
        let key = (6u8, [10u8, 0, 0, 1], 1234u16, [10u8, 0, 0, 2], 80u16);
        assert_eq!(a.hash_one(key), a.hash_one(key));
        assert_ne!(a.hash_one(key), b.hash_one(key));
        assert_ne!(
            a.hash_one(key),
            a.hash_one((6u8, [10u8, 0, 0, 1], 1235u16, [10u8, 0, 0, 2], 80u16))
        );
    }
}

//! Carrying a function's state to its replacement (`nfvhost replace`).
//!
//! A [`crate::Vnf`] that keeps state (connections, bindings, leases,
//! neighbours) implements [`crate::Vnf::save_state`] and
//! [`crate::Vnf::load_state`]; this module gives it a versioned encoding:
//!
//! ```
//! use vnf_sdk::prelude::*;
//! use vnf_sdk::state::{decode, encode, StateError};
//!
//! /// What survives a replace: the MAC addresses seen so far.
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Saved { seen: Vec<[u8; 6]> }
//!
//! struct Learner { seen: Vec<[u8; 6]> }
//!
//! impl Vnf for Learner {
//!     type Config = serde_json::Value;
//!     const STATE_VERSION: u32 = 1;
//!     fn new(_ctx: &mut InitContext, _config: Self::Config) -> Result<Self, ConfigError> {
//!         Ok(Learner { seen: Vec::new() })
//!     }
//!     fn process(&mut self, _ctx: &mut Context, frame: &mut Frame) -> Verdict {
//!         let src: [u8; 6] = frame.data()[6..12].try_into().unwrap();
//!         if !self.seen.contains(&src) {
//!             self.seen.push(src);
//!         }
//!         Verdict::Forward(1)
//!     }
//!     fn save_state(&self) -> Option<Vec<u8>> {
//!         Some(encode(&Saved { seen: self.seen.clone() }))
//!     }
//!     fn load_state(&mut self, version: u32, bytes: &[u8]) -> Result<(), StateError> {
//!         let saved: Saved = decode(Self::STATE_VERSION, version, bytes)?;
//!         self.seen = saved.seen;
//!         Ok(())
//!     }
//! }
//!
//! // What `nfvhost replace` does, natively: the new instance has the state.
//! let mut frame = [0u8; 60];
//! frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
//! let mut old = vnf_sdk::testing::Harness::<Learner>::new(&["a", "b"], serde_json::json!({})).unwrap();
//! old.process(0, &frame);
//! let mut new = old.replace::<Learner>(&["a", "b"], serde_json::json!({})).unwrap();
//! assert_eq!(new.vnf().seen, vec![[2, 0, 0, 0, 0, 1]]);
//! ```
//!
//! The blob is JSON (serde_json, which every module already links for its
//! configuration): readable in a log, tolerant of added fields with
//! `#[serde(default)]`. The host carries at most
//! [`nfvhost_abi::MAX_STATE_LEN`] (16 MiB) through both instances' memory.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a module refused the state handed to it; the host's `replace`
/// reports the message and keeps the running module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateError {
    /// Why, said so that the operator knows what to do.
    pub message: String,
}

impl StateError {
    /// A refusal with this reason.
    pub fn new(message: impl Into<String>) -> Self {
        StateError {
            message: message.into(),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Encodes `value` as a state blob.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Decodes a blob saved with format `version`, refusing any version other
/// than `expected` (the one this build writes) with a message that names
/// both.
pub fn decode<T: DeserializeOwned>(
    expected: u32,
    version: u32,
    bytes: &[u8],
) -> Result<T, StateError> {
    if version != expected {
        return Err(StateError::new(alloc::format!(
            "saved state has format version {version}; this module reads version {expected}"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| StateError::new(alloc::format!("unreadable saved state: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct S {
        a: u32,
        b: Vec<(u16, [u8; 4])>,
    }

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let s = S {
            a: 7,
            b: alloc::vec![(80, [10, 0, 0, 1])],
        };
        let blob = encode(&s);
        assert_eq!(decode::<S>(2, 2, &blob), Ok(s));
        let e = decode::<S>(2, 3, &blob).unwrap_err();
        assert_eq!(
            e.message,
            "saved state has format version 3; this module reads version 2"
        );
        assert!(decode::<S>(2, 2, b"{")
            .unwrap_err()
            .message
            .starts_with("unreadable"));
    }
}

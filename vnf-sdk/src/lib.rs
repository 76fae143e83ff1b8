//! vnf-sdk: write nfvhost network functions in safe Rust.
#![deny(unsafe_code)]

pub mod wire;

//! nfvhost: run network functions as WebAssembly modules in service chains.

pub mod chain;
pub mod sys;
pub mod engine;
pub mod logging;

//! nfvhost: run network functions as WebAssembly modules in service chains
//! over real Linux links.
//!
//! - [`bench`]: RFC 2544 measurements of a deployed chain (`nfvhost bench`).
//! - [`chain`]: chain files, parsed and validated.
//! - [`engine`]: the wasm engine, module checks and instances.
//! - [`datapath`]: ports, the worker loop and the stats segment.
//! - [`sys`]: namespaces, links, offloads and cgroups, behind seams.
//! - [`deploy`]: building, supervising, exporting and tearing down a chain.
//! - [`modtest`]: `nfvhost test`, frames from captures through a module.
//! - [`scaffold`]: `nfvhost new`, a VNF crate from a template.

#![deny(unsafe_code)]

pub mod bench;
pub mod chain;
// Its syscalls are in its own `datapath::sys`, which allows `unsafe` there.
pub mod datapath;
pub mod deploy;
pub mod engine;
pub mod instance;
pub mod logging;
pub mod modtest;
pub mod scaffold;
// The syscall wrappers: the one place `unsafe` is allowed, each block with
// a `// SAFETY:` comment.
#[allow(unsafe_code)]
pub mod sys;

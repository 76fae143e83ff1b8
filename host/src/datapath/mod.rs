//! The data path inside a worker: ports, the stats segment, and the loop
//! that moves batches of frames between ports and the module.
//!
//! - [`spec`]: what the supervisor tells a worker (JSON).
//! - [`setup`]: turning the process into a worker, then running the loop.
//! - [`worker`]: one module over its ports, against [`port::Port`]s only.
//! - [`group`]: the loop of a worker process, over one module or the
//!   members of a fused group, run to completion over in-memory links.
//! - [`port`]: the port abstraction and its kinds (packet socket, TAP,
//!   in-memory).
//! - [`stats`]: the shared-memory stats segment.
//! - [`transmit`]: sending a group of frames out of a port, checked, with
//!   offload state completed in software ([`offload`]) where the port
//!   cannot carry it.
//! - [`health`]: ports whose link went away: down, out of the poll set,
//!   looked at again once a second.
//! - [`sandbox`]: dropping the worker's privileges once it is set up.
//! - `sys`: every system call of the data path; the only place `unsafe` is
//!   allowed.
#![deny(unsafe_code)]

pub mod control;
pub mod group;
pub mod health;
pub mod offload;
pub mod port;
pub mod sandbox;
pub mod setup;
pub mod spec;
pub mod stats;
// Also used by `bench` (its packet sockets).
pub(crate) mod sys;
pub mod transmit;
pub mod vlan;
pub mod worker;

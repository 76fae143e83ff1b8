//! vnf-sdk: write nfvhost network functions in safe Rust.
//!
//! A function is a type that implements [`Vnf`], exported with one macro:
//!
//! ```
//! use vnf_sdk::prelude::*;
//!
//! /// The `config:` section of the VNF in the chain file.
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { out_port: String }
//!
//! /// Sends every frame out of one port.
//! struct Wire { out: u16, frames: Counter }
//!
//! impl Vnf for Wire {
//!     type Config = Config;
//!     fn new(ctx: &mut InitContext, config: Config) -> Result<Self, ConfigError> {
//!         let out = ctx
//!             .port(&config.out_port)
//!             .ok_or_else(|| ConfigError::at("out_port", "no such port"))?;
//!         Ok(Wire { out, frames: ctx.counter("wired", "Frames sent out of out_port") })
//!     }
//!     fn process(&mut self, _ctx: &mut Context, _frame: &mut Frame) -> Verdict {
//!         self.frames.inc();
//!         Verdict::Forward(self.out)
//!     }
//! }
//!
//! vnf_sdk::export_vnf!(Wire);
//!
//! // The same logic, natively, as a unit test would run it:
//! let config = serde_json::json!({ "out_port": "wan" });
//! let mut h = vnf_sdk::testing::Harness::<Wire>::new(&["lan", "wan"], config).unwrap();
//! assert_eq!(h.process(0, &[0u8; 60]).verdict, Verdict::Forward(1));
//! assert_eq!(h.counter("wired"), Some(1));
//! let bad = serde_json::json!({ "out_port": "dmz" });
//! let e = vnf_sdk::testing::Harness::<Wire>::new(&["lan", "wan"], bad).err().unwrap();
//! assert_eq!(e.path, "out_port");
//! ```
//!
//! Build it with `cargo build --target wasm32-unknown-unknown`; test its logic
//! natively with [`testing::Harness`], and the built module with captures
//! with `nfvhost test`. `nfvhost new NAME` starts a crate like this one, and
//! `docs/TUTORIAL.md` in the nfvhost repository goes from there to a
//! deployed, monitored function. A VNF author never writes `unsafe`:
//! the one module that talks to the host (`hostcalls`) and the generated
//! entry points are the only places that do.
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod context;
mod counter;
mod frame;
pub mod hash;
mod hostcalls;
pub mod icmp;
pub mod neighbor;
pub mod prefix;
#[doc(hidden)]
pub mod runtime;
pub mod state;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod vnf;
pub mod wire;

pub use context::{Context, InitContext, PortLink};
pub use counter::{Counter, Gauge};
pub use frame::{Frame, GsoKind};
pub use hostcalls::EmitError;
pub use nfvhost_abi::{DropReason, LogLevel, Verdict};
/// Offload flags of a frame (see [`Frame::checksum_partial`]), for
/// `testing::Harness::process_with_offload`.
pub use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4, FLAG_GSO_TCPV6, FLAG_GSO_UDP_L4};
pub use state::StateError;
pub use vnf::{ConfigError, Vnf};

/// Everything a VNF usually needs.
pub mod prelude {
    pub use crate::wire;
    pub use crate::{
        log_debug, log_error, log_info, log_warn, ConfigError, Context, Counter, DropReason, Frame,
        Gauge, InitContext, StateError, Verdict, Vnf,
    };
}

/// Logs an error through the host.
#[macro_export]
macro_rules! log_error { ($($arg:tt)*) => { $crate::runtime::log($crate::LogLevel::Error, &$crate::runtime::format(format_args!($($arg)*))) }; }
/// Logs a warning through the host.
#[macro_export]
macro_rules! log_warn { ($($arg:tt)*) => { $crate::runtime::log($crate::LogLevel::Warn, &$crate::runtime::format(format_args!($($arg)*))) }; }
/// Logs information through the host.
#[macro_export]
macro_rules! log_info { ($($arg:tt)*) => { $crate::runtime::log($crate::LogLevel::Info, &$crate::runtime::format(format_args!($($arg)*))) }; }
/// Logs a debug message through the host.
#[macro_export]
macro_rules! log_debug { ($($arg:tt)*) => { $crate::runtime::log($crate::LogLevel::Debug, &$crate::runtime::format(format_args!($($arg)*))) }; }

/// Exports a [`Vnf`] implementation as an nfvhost module (ABI v3).
///
/// Expands to the `nfv_*` entry points; each only dispatches into
/// [`runtime`], which calls the type's [`Vnf`] methods.
#[macro_export]
macro_rules! export_vnf {
    ($vnf:ty) => {
        #[cfg(target_arch = "wasm32")]
        mod __nfv_exports {
            use super::*;
            static INSTANCE: $crate::runtime::Slot<$vnf> = $crate::runtime::Slot::new();

            #[no_mangle]
            extern "C" fn nfv_abi_version() -> i32 {
                $crate::runtime::abi_version()
            }
            #[no_mangle]
            extern "C" fn nfv_alloc(len: i32) -> i32 {
                $crate::runtime::alloc(len)
            }
            #[no_mangle]
            extern "C" fn nfv_init(ptr: i32, len: i32) -> i32 {
                $crate::runtime::init(&INSTANCE, ptr, len)
            }
            #[no_mangle]
            extern "C" fn nfv_process(ptr: i32, count: i32) -> i32 {
                $crate::runtime::process(&INSTANCE, ptr, count)
            }
            #[no_mangle]
            extern "C" fn nfv_tick(now_ns: i64) {
                $crate::runtime::tick(&INSTANCE, now_ns)
            }
            #[no_mangle]
            extern "C" fn nfv_state_save(out: i32) -> i32 {
                $crate::runtime::state_save(&INSTANCE, out)
            }
            #[no_mangle]
            extern "C" fn nfv_state_load(version: i32, ptr: i32, len: i32) -> i32 {
                $crate::runtime::state_load(&INSTANCE, version, ptr, len)
            }
            #[no_mangle]
            extern "C" fn nfv_timer(now_ns: i64) {
                $crate::runtime::timer(&INSTANCE, now_ns)
            }
            #[no_mangle]
            extern "C" fn nfv_reconfigure(ptr: i32, len: i32) -> i32 {
                $crate::runtime::reconfigure(&INSTANCE, ptr, len)
            }
        }
    };
}

//! What a VNF can ask of the host while it runs.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;

use nfvhost_abi::MetricKind;

use crate::hostcalls::{self, EmitError};
use crate::{Counter, Gauge};

/// Handed to [`crate::Vnf::process`] and [`crate::Vnf::tick`].
#[derive(Debug, Default)]
pub struct Context {
    _private: (),
}

impl Context {
    pub(crate) fn new() -> Self {
        Context { _private: () }
    }

    /// Monotonic time in nanoseconds, from the host.
    pub fn now_ns(&self) -> u64 {
        hostcalls::now_ns()
    }

    /// Sends a new frame (an ARP reply, an ICMP error, a DHCP offer) out of
    /// `port`. The host copies it; the frame is sent after the current batch.
    pub fn emit(&mut self, port: u16, frame: &[u8]) -> Result<(), EmitError> {
        hostcalls::emit(port, frame)
    }
}

/// Handed to [`crate::Vnf::new`]: the VNF's name and ports, and the place to
/// declare counters.
#[derive(Debug)]
pub struct InitContext {
    vnf_name: String,
    ports: Vec<String>,
}

impl InitContext {
    pub(crate) fn new(vnf_name: String, ports: Vec<String>) -> Self {
        InitContext { vnf_name, ports }
    }

    /// The VNF's name in the chain file.
    pub fn vnf_name(&self) -> &str {
        &self.vnf_name
    }

    /// Port names, in port-number order.
    pub fn ports(&self) -> &[String] {
        &self.ports
    }

    /// The number of the port with this name.
    pub fn port(&self, name: &str) -> Option<u16> {
        self.ports.iter().position(|p| p == name).map(|i| i as u16)
    }

    /// Declares a counter, exported as `nfvhost_vnf_<name>_total`.
    /// `name` is `[a-z][a-z0-9_]*` without the `_total` suffix.
    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        let counter = Counter::new_cell();
        self.define(MetricKind::Counter, name, help, counter.cell());
        counter
    }

    /// Declares a gauge, exported as `nfvhost_vnf_<name>`.
    pub fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::new_cell();
        self.define(MetricKind::Gauge, name, help, gauge.cell());
        gauge
    }

    /// Registers `cell` with the host. A refused definition (bad name, too
    /// many) is logged by the host; the cell still works locally so the
    /// VNF's logic is unaffected.
    fn define(&mut self, kind: MetricKind, name: &str, help: &str, cell: &'static Cell<u64>) {
        if let Err(status) = hostcalls::counter_define(kind, name, help, cell) {
            hostcalls::log(
                crate::LogLevel::Warn,
                &alloc::format!("counter {name} refused by host (status {status})"),
            );
        }
    }
}

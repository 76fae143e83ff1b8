//! What a VNF can ask of the host while it runs.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;

use nfvhost_abi::MetricKind;

use crate::hostcalls::{self, EmitError};
use crate::wire::EthernetAddress;
use crate::{Counter, Gauge};

/// Handed to [`crate::Vnf::process`], [`crate::Vnf::tick`] and
/// [`crate::Vnf::timer`].
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

    /// Asks the host to call [`crate::Vnf::timer`] once [`Context::now_ns`]
    /// reaches `at_ns` (microsecond resolution; a time already past fires
    /// as soon as the current call returns). One timer per instance: this
    /// replaces a pending one.
    pub fn set_timer(&mut self, at_ns: u64) {
        hostcalls::timer_at(at_ns.min(i64::MAX as u64) as i64)
    }

    /// Cancels the pending timer, if any.
    pub fn cancel_timer(&mut self) {
        hostcalls::timer_at(-1)
    }
}

/// Handed to [`crate::Vnf::new`]: the VNF's name and ports, and the place to
/// declare counters.
#[derive(Debug)]
pub struct InitContext {
    vnf_name: String,
    ports: Vec<String>,
    links: Vec<PortLink>,
}

/// What the host says about a port's link (the init document's `ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortLink {
    /// The link's MTU: the largest IP packet the port can send. An IP hop
    /// uses it as its egress MTU and may only lower it.
    pub mtu: u16,
    /// The MAC address of the port's own interface, if it has one (a veth
    /// end does; a TAP link's VNF side does not).
    pub mac: Option<EthernetAddress>,
}

impl PortLink {
    /// The MTU of a link nothing else is known about (Ethernet's).
    pub const DEFAULT_MTU: u16 = 1500;
    /// The smallest MTU an IPv4 hop may have (RFC 791).
    pub const MIN_IPV4_MTU: u16 = 68;
}

impl InitContext {
    pub(crate) fn new(vnf_name: String, ports: Vec<(String, PortLink)>) -> Self {
        let (ports, links) = ports.into_iter().unzip();
        InitContext {
            vnf_name,
            ports,
            links,
        }
    }

    /// The link of port `index` (MTU, MAC); `None` for a port that does not
    /// exist.
    pub fn port_link(&self, index: u16) -> Option<PortLink> {
        self.links.get(usize::from(index)).copied()
    }

    /// The VNF's name in the chain file.
    pub fn vnf_name(&self) -> &str {
        &self.vnf_name
    }

    /// The egress MTU of an IP hop on port `index`: the link's MTU, or
    /// `configured` (the module's own `mtu:` setting, at config key `path`)
    /// when given, which may only lower it and must be at least 68 (RFC 791).
    pub fn egress_mtu(
        &self,
        index: u16,
        configured: Option<u16>,
        path: &str,
    ) -> Result<u16, crate::ConfigError> {
        let link = self
            .port_link(index)
            .map_or(PortLink::DEFAULT_MTU, |l| l.mtu);
        let Some(mtu) = configured else {
            return Ok(link);
        };
        if mtu < PortLink::MIN_IPV4_MTU {
            return Err(crate::ConfigError::at(
                path,
                alloc::format!("MTU must be at least {}, got {mtu}", PortLink::MIN_IPV4_MTU),
            ));
        }
        if mtu > link {
            return Err(crate::ConfigError::at(
                path,
                alloc::format!(
                    "MTU {mtu} is above the MTU of the port's link ({link}); it may only lower it (or set the link's `mtu:`)"
                ),
            ));
        }
        Ok(mtu)
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

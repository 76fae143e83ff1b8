//! Counters and gauges a module declares; the host exports them to
//! Prometheus. Both are one `u64` cell in linear memory that the host reads
//! without a host call; they differ in what the module may do with it.

use core::cell::Cell;

fn new_cell() -> &'static Cell<u64> {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(Cell::new(0)))
}

/// A monotonic count (exported as `nfvhost_vnf_<name>_total`).
///
/// Obtained from [`crate::InitContext::counter`]. Copy it freely.
#[derive(Clone, Copy, Debug)]
pub struct Counter(&'static Cell<u64>);

impl Counter {
    pub(crate) fn new_cell() -> Counter {
        Counter(new_cell())
    }

    /// Adds one.
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }

    /// The current value.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    pub(crate) fn cell(self) -> &'static Cell<u64> {
        self.0
    }
}

/// A value that goes up and down, such as a table size (exported as
/// `nfvhost_vnf_<name>`).
///
/// Obtained from [`crate::InitContext::gauge`]. Copy it freely.
#[derive(Clone, Copy, Debug)]
pub struct Gauge(&'static Cell<u64>);

impl Gauge {
    pub(crate) fn new_cell() -> Gauge {
        Gauge(new_cell())
    }

    /// Sets the value.
    pub fn set(self, v: u64) {
        self.0.set(v);
    }

    /// Adds `n`.
    pub fn add(self, n: u64) {
        self.0.set(self.0.get().saturating_add(n));
    }

    /// Subtracts `n`, saturating at zero.
    pub fn sub(self, n: u64) {
        self.0.set(self.0.get().saturating_sub(n));
    }

    /// The current value.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    pub(crate) fn cell(self) -> &'static Cell<u64> {
        self.0
    }
}

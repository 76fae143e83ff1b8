//! Counters a module declares; the host exports them to Prometheus.

use core::cell::Cell;

/// A metric cell in linear memory that the host reads without a host call.
///
/// Obtained from [`crate::InitContext::counter`] or
/// [`crate::InitContext::gauge`]. Copy it freely.
#[derive(Clone, Copy, Debug)]
pub struct Counter(&'static Cell<u64>);

impl Counter {
    pub(crate) fn new_cell() -> Counter {
        Counter(alloc::boxed::Box::leak(alloc::boxed::Box::new(Cell::new(
            0,
        ))))
    }

    /// Adds one.
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }

    /// Subtracts `n` (for gauges), saturating at zero.
    pub fn sub(self, n: u64) {
        self.0.set(self.0.get().saturating_sub(n));
    }

    /// Sets the value (for gauges).
    pub fn set(self, v: u64) {
        self.0.set(v);
    }

    /// The current value.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    pub(crate) fn cell(self) -> &'static Cell<u64> {
        self.0
    }
}

//! One batch in flight through a module: what arrived in each slot, and,
//! after [`super::VnfInstance::process`], each frame's verdict, sorted by
//! outcome in the same pass that decodes it.
//!
//! The batch is reused from call to call, so the hot path never allocates.

use nfvhost_abi::{DropReason, Verdict, MAX_BATCH, MAX_PORTS};

use super::vnet::VnetHeader;

/// One received frame, in slot order: where it came from, how long it is,
/// and its offload state (which the module sees as `FrameDesc.flags` and
/// `gso_size`, and which is re-attached when the frame is forwarded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameIn {
    pub in_port: u16,
    pub len: usize,
    pub vnet: VnetHeader,
}

impl FrameIn {
    /// A plain frame: complete checksums, no segmentation offload.
    pub fn plain(in_port: u16, len: usize) -> Self {
        FrameIn {
            in_port,
            len,
            vnet: VnetHeader::NONE,
        }
    }
}

/// Frames received for one call, and their outcome.
#[derive(Debug)]
pub struct Batch {
    frames: Vec<FrameIn>,
    /// Per frame: verdict and the length the module left.
    verdicts: Vec<(Verdict, usize)>,
    /// Slot indexes forwarded to each port, in slot order.
    forwarded: Vec<Vec<u16>>,
    consumed: u64,
    /// Drops per reason, in first-seen order (a batch has few reasons).
    drops: Vec<(DropReason, u64)>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new(MAX_BATCH)
    }
}

impl Batch {
    /// A batch of at most `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(MAX_BATCH);
        Batch {
            frames: Vec::with_capacity(capacity),
            verdicts: Vec::with_capacity(capacity),
            forwarded: (0..MAX_PORTS)
                .map(|_| Vec::with_capacity(capacity))
                .collect(),
            consumed: 0,
            drops: Vec::new(),
        }
    }

    /// Empties the batch for the next receive.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.verdicts.clear();
    }

    /// Adds the frame received into the next slot.
    pub fn push(&mut self, frame: FrameIn) {
        self.frames.push(frame);
    }

    /// Frames received, in slot order.
    pub fn frames(&self) -> &[FrameIn] {
        &self.frames
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// After a successful call: each frame's verdict and new length.
    pub fn verdicts(&self) -> &[(Verdict, usize)] {
        &self.verdicts
    }

    /// After a successful call: the slots forwarded out of `port`.
    pub fn forwarded_to(&self, port: usize) -> &[u16] {
        self.forwarded.get(port).map_or(&[], Vec::as_slice)
    }

    /// After a successful call: frames the module consumed.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// After a successful call: frames dropped, per reason.
    pub fn drops(&self) -> &[(DropReason, u64)] {
        &self.drops
    }

    /// Starts decoding a call's verdicts (for a module with `port_count`
    /// ports).
    pub(super) fn begin_verdicts(&mut self, port_count: u16) {
        self.verdicts.clear();
        for slots in &mut self.forwarded[..usize::from(port_count).min(MAX_PORTS)] {
            slots.clear();
        }
        self.consumed = 0;
        self.drops.clear();
    }

    /// Records the next frame's verdict, sorting it by outcome.
    pub(super) fn record(&mut self, verdict: Verdict, len: usize) {
        let slot = self.verdicts.len() as u16;
        self.verdicts.push((verdict, len));
        match verdict {
            Verdict::Forward(port) => match self.forwarded.get_mut(usize::from(port)) {
                Some(slots) => slots.push(slot),
                None => self.count_drop(DropReason::BadVerdict),
            },
            Verdict::Consume => self.consumed += 1,
            Verdict::Drop(reason) => self.count_drop(reason),
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        match self.drops.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.drops.push((reason, 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_verdicts_by_outcome_in_one_pass() {
        let mut b = Batch::new(8);
        for i in 0..6 {
            b.push(FrameIn::plain(0, 60 + i));
        }
        b.begin_verdicts(2);
        b.record(Verdict::Forward(1), 60);
        b.record(Verdict::Drop(DropReason::NoRoute), 0);
        b.record(Verdict::Consume, 61);
        b.record(Verdict::Forward(0), 62);
        b.record(Verdict::Forward(1), 63);
        b.record(Verdict::Drop(DropReason::NoRoute), 0);
        assert_eq!(b.forwarded_to(0), &[3]);
        assert_eq!(b.forwarded_to(1), &[0, 4]);
        assert_eq!(b.forwarded_to(99), &[] as &[u16]);
        assert_eq!(b.consumed(), 1);
        assert_eq!(b.drops(), &[(DropReason::NoRoute, 2)]);
        assert_eq!(b.verdicts()[2], (Verdict::Consume, 61));
        // The next call starts from nothing.
        b.begin_verdicts(2);
        assert!(b.forwarded_to(1).is_empty());
        assert_eq!(b.consumed(), 0);
        assert!(b.drops().is_empty());
    }
}

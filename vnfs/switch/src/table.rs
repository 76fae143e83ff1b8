//! The MAC address table: learned per VLAN (independent VLAN learning),
//! bounded, with aging.

use std::collections::HashMap;

use vnf_sdk::hash::FlowHash;
use vnf_sdk::wire::EthernetAddress;

#[derive(Clone, Copy, Debug)]
struct Entry {
    port: u16,
    seen_ns: u64,
}

/// What learning a source address did.
#[derive(Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new entry.
    New,
    /// The address moved to another port.
    Moved,
    /// Known on this port; its age was reset.
    Refreshed,
    /// The table is full; the address was not learned.
    Full,
}

pub struct MacTable {
    map: HashMap<(u16, EthernetAddress), Entry, FlowHash>,
    max: usize,
    aging_ns: u64,
}

impl MacTable {
    pub fn new(max: usize, aging_ns: u64, seed: u64) -> Self {
        MacTable {
            map: HashMap::with_capacity_and_hasher(max.min(4096), FlowHash::with_seed(seed)),
            max,
            aging_ns,
        }
    }

    fn alive(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.seen_ns) < self.aging_ns
    }

    /// Records that `mac` in `vlan` was seen on `port` at `now`.
    pub fn learn(&mut self, vlan: u16, mac: EthernetAddress, port: u16, now: u64) -> Learned {
        let aging = self.aging_ns;
        if let Some(e) = self.map.get_mut(&(vlan, mac)) {
            let was_alive = now.saturating_sub(e.seen_ns) < aging;
            let moved = e.port != port;
            *e = Entry { port, seen_ns: now };
            return match (was_alive, moved) {
                (true, true) => Learned::Moved,
                (true, false) => Learned::Refreshed,
                (false, _) => Learned::New,
            };
        }
        if self.map.len() >= self.max {
            // Make room from expired entries before refusing.
            self.expire(now);
            if self.map.len() >= self.max {
                return Learned::Full;
            }
        }
        self.map.insert((vlan, mac), Entry { port, seen_ns: now });
        Learned::New
    }

    /// The port `mac` in `vlan` was last seen on, if that is recent enough.
    pub fn lookup(&self, vlan: u16, mac: EthernetAddress, now: u64) -> Option<u16> {
        self.map
            .get(&(vlan, mac))
            .filter(|e| self.alive(e, now))
            .map(|e| e.port)
    }

    /// Removes expired entries; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.map.len();
        let aging = self.aging_ns;
        self.map
            .retain(|_, e| now.saturating_sub(e.seen_ns) < aging);
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);

    #[test]
    fn learns_moves_ages_and_stays_bounded() {
        let mut t = MacTable::new(1, 1_000, 7);
        assert_eq!(t.learn(10, A, 0, 0), Learned::New);
        assert_eq!(t.learn(10, A, 0, 10), Learned::Refreshed);
        assert_eq!(t.learn(10, A, 2, 20), Learned::Moved);
        assert_eq!(t.lookup(10, A, 500), Some(2));
        assert_eq!(t.lookup(20, A, 500), None, "learning is per VLAN");
        assert_eq!(t.learn(10, B, 1, 500), Learned::Full);
        assert_eq!(t.lookup(10, A, 1_020), None, "aged out");
        assert_eq!(
            t.learn(10, B, 1, 1_100),
            Learned::New,
            "expired entries make room"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(5_000), 1);
    }
}

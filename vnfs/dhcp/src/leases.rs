//! The lease table: one record per address ever handed out, so a client
//! that comes back gets its previous address, plus declined addresses.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use vnf_sdk::wire::EthernetAddress;

/// Where a lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Offered, waiting for the client's REQUEST.
    Offered,
    /// Acknowledged.
    Bound,
    /// Released or expired; the record remembers the last client.
    Free,
}

/// One address's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The (last) client.
    pub mac: EthernetAddress,
    pub state: State,
    /// When an offer or binding ends.
    pub expires_ns: u64,
}

impl Lease {
    /// Offered or bound.
    pub fn is_active(&self) -> bool {
        self.state != State::Free
    }
}

/// The lease table as carried to a replacement instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedLeases {
    /// `(address, client MAC, state: 0 offered 1 bound 2 free, expires_ns)`.
    pub records: Vec<([u8; 4], [u8; 6], u8, u64)>,
    /// Which address each client had last.
    pub clients: Vec<([u8; 6], [u8; 4])>,
    /// Declined addresses and until when they are held back.
    pub declined: Vec<([u8; 4], u64)>,
}

/// All records.
#[derive(Debug, Default)]
pub struct Leases {
    by_addr: BTreeMap<Ipv4Addr, Lease>,
    by_mac: BTreeMap<EthernetAddress, Ipv4Addr>,
    declined: BTreeMap<Ipv4Addr, u64>,
}

impl Leases {
    /// Every record, for a replacement instance.
    pub fn save(&self) -> SavedLeases {
        SavedLeases {
            records: self
                .by_addr
                .iter()
                .map(|(a, l)| (a.octets(), l.mac.0, l.state as u8, l.expires_ns))
                .collect(),
            clients: self.by_mac.iter().map(|(m, a)| (m.0, a.octets())).collect(),
            declined: self
                .declined
                .iter()
                .map(|(a, t)| (a.octets(), *t))
                .collect(),
        }
    }

    /// Takes over a predecessor's records (this table is empty).
    pub fn restore(&mut self, saved: &SavedLeases) -> Result<(), String> {
        for &(addr, mac, state, expires_ns) in &saved.records {
            let state = match state {
                0 => State::Offered,
                1 => State::Bound,
                2 => State::Free,
                other => return Err(format!("saved lease with unknown state {other}")),
            };
            self.by_addr.insert(
                Ipv4Addr::from(addr),
                Lease {
                    mac: EthernetAddress(mac),
                    state,
                    expires_ns,
                },
            );
        }
        for &(mac, addr) in &saved.clients {
            self.by_mac
                .insert(EthernetAddress(mac), Ipv4Addr::from(addr));
        }
        for &(addr, until) in &saved.declined {
            self.declined.insert(Ipv4Addr::from(addr), until);
        }
        Ok(())
    }

    /// The record of an address.
    pub fn get(&self, addr: Ipv4Addr) -> Option<&Lease> {
        self.by_addr.get(&addr)
    }

    /// The client's current or previous address and its record.
    pub fn of(&self, mac: EthernetAddress) -> Option<(Ipv4Addr, Lease)> {
        let addr = *self.by_mac.get(&mac)?;
        let lease = *self.by_addr.get(&addr)?;
        (lease.mac == mac).then_some((addr, lease))
    }

    /// The client holding `addr` by an offer or binding.
    pub fn holder(&self, addr: Ipv4Addr) -> Option<EthernetAddress> {
        self.by_addr
            .get(&addr)
            .filter(|l| l.is_active())
            .map(|l| l.mac)
    }

    /// Whether `addr` was declined and is still held back.
    pub fn is_declined(&self, addr: Ipv4Addr) -> bool {
        self.declined.contains_key(&addr)
    }

    /// Records `addr` for `mac`. An offer the client held on another
    /// address is withdrawn.
    pub fn set(&mut self, addr: Ipv4Addr, mac: EthernetAddress, state: State, expires_ns: u64) {
        if let Some(old) = self.by_mac.get(&mac).copied() {
            if old != addr {
                if let Some(l) = self.by_addr.get_mut(&old).filter(|l| l.mac == mac) {
                    // A client has one address; the previous one goes back.
                    l.state = State::Free;
                }
            }
        }
        if let Some(prev) = self.by_addr.get(&addr) {
            if prev.mac != mac && self.by_mac.get(&prev.mac) == Some(&addr) {
                self.by_mac.remove(&prev.mac);
            }
        }
        self.by_addr.insert(
            addr,
            Lease {
                mac,
                state,
                expires_ns,
            },
        );
        self.by_mac.insert(mac, addr);
    }

    /// Frees `addr` if `mac` holds it; returns whether it did.
    pub fn free(&mut self, addr: Ipv4Addr, mac: EthernetAddress) -> bool {
        match self.by_addr.get_mut(&addr) {
            Some(l) if l.mac == mac && l.is_active() => {
                l.state = State::Free;
                true
            }
            _ => false,
        }
    }

    /// Withdraws an offer `mac` holds (any address); returns whether there was one.
    pub fn withdraw_offer(&mut self, mac: EthernetAddress) -> bool {
        match self.of(mac) {
            Some((addr, l)) if l.state == State::Offered => self.free(addr, mac),
            _ => false,
        }
    }

    /// Holds `addr` back until `until_ns` and forgets its record.
    pub fn decline(&mut self, addr: Ipv4Addr, until_ns: u64) {
        if let Some(l) = self.by_addr.remove(&addr) {
            if self.by_mac.get(&l.mac) == Some(&addr) {
                self.by_mac.remove(&l.mac);
            }
        }
        self.declined.insert(addr, until_ns);
    }

    /// Ends offers and bindings, and holds on declined addresses, that are
    /// due; returns how many changed.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let mut changed = 0;
        for l in self.by_addr.values_mut() {
            if l.is_active() && l.expires_ns <= now_ns {
                l.state = State::Free;
                changed += 1;
            }
        }
        let before = self.declined.len();
        self.declined.retain(|_, until| *until > now_ns);
        changed + (before - self.declined.len())
    }

    /// (bound, offered).
    pub fn counts(&self) -> (u64, u64) {
        self.by_addr
            .values()
            .fold((0, 0), |(b, o), l| match l.state {
                State::Bound => (b + 1, o),
                State::Offered => (b, o + 1),
                State::Free => (b, o),
            })
    }
}

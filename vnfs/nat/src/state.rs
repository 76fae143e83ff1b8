//! The NAT's state across `nfvhost replace`: its bindings with their
//! timers and TCP close state, the masquerade port cursor, the ARP cache
//! and the frames waiting for it, and the ICMP identifier counter.

use vnf_sdk::neighbor::SavedNeighbors;
use vnf_sdk::StateError;

use crate::bindings::SavedTable;
use crate::Nat;

/// The format [`save`] writes.
pub const VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    table: SavedTable,
    arp: SavedNeighbors,
    ident: u16,
}

pub fn save(nat: &Nat) -> Vec<u8> {
    vnf_sdk::state::encode(&Saved {
        table: nat.table.save(),
        arp: nat.arp.save(),
        ident: nat.ident,
    })
}

pub fn load(nat: &mut Nat, version: u32, bytes: &[u8]) -> Result<(), StateError> {
    let saved: Saved = vnf_sdk::state::decode(VERSION, version, bytes)?;
    let taken = nat.table.restore(&saved.table).map_err(StateError::new)?;
    nat.arp.restore(&saved.arp);
    nat.ident = saved.ident;
    nat.update_gauges();
    vnf_sdk::log_info!(
        "took over {taken} of {} bindings and {} ARP entries",
        saved.table.bindings.len(),
        saved.arp.cache.len()
    );
    Ok(())
}

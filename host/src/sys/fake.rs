//! [`FakeOs`]: an [`Os`] that records every call and keeps a model of which
//! namespaces and interfaces exist, so deploy, rollback and teardown are
//! unit tested without root (the way youki tests its network setup). Its
//! cgroups are real directories under a temporary root laid out like
//! cgroup v2. Test builds only: not part of the binary or the public API.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::cgroup::{Cgroup, CgroupRoot, Limits};
use super::link::{
    check_ifname, check_prefix, vxlan_mtu, LinkError, LinkOps, LinkStats, VxlanConfig,
};
use super::os::{Os, OsError};

/// One call made on a [`FakeOs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsCall {
    CreateNetns {
        name: String,
    },
    DeleteNetns {
        name: String,
    },
    DisableIpv6 {
        ns: String,
    },
    CreateCgroup {
        rel_path: String,
    },
    RemoveCgroup {
        rel_path: String,
    },
    CreateVeth {
        ns_a: String,
        name_a: String,
        ns_b: String,
        name_b: String,
        mtu: Option<u32>,
    },
    CreateTap {
        ns: String,
        name: String,
        mtu: Option<u32>,
        vnet_hdr: bool,
    },
    OpenTap {
        ns: String,
        name: String,
        vnet_hdr: bool,
    },
    DeleteLink {
        ns: String,
        name: String,
    },
    SetUp {
        ns: String,
        name: String,
    },
    SetMac {
        ns: String,
        name: String,
        mac: [u8; 6],
    },
    AddAddress {
        ns: String,
        ifname: String,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    AddRoute {
        ns: String,
        dst: Option<(Ipv4Addr, u8)>,
        via: Ipv4Addr,
    },
    LinkIndex {
        ns: String,
        name: String,
    },
    LinkStats {
        ns: String,
        name: String,
    },
    MacAddress {
        ns: String,
        name: String,
    },
    DisableOffloads {
        ns: String,
        name: String,
    },
    CreateVxlan {
        ns: String,
        name: String,
        config: VxlanConfig,
    },
    LinkMtu {
        ns: String,
        name: String,
    },
}

impl OsCall {
    /// The operation's name, as [`FakeOs::fail_on`] takes it.
    pub fn op(&self) -> &'static str {
        match self {
            OsCall::CreateNetns { .. } => "create_netns",
            OsCall::DeleteNetns { .. } => "delete_netns",
            OsCall::DisableIpv6 { .. } => "disable_ipv6",
            OsCall::CreateCgroup { .. } => "create_cgroup",
            OsCall::RemoveCgroup { .. } => "remove_cgroup",
            OsCall::CreateVeth { .. } => "create_veth",
            OsCall::CreateTap { .. } => "create_tap",
            OsCall::OpenTap { .. } => "open_tap",
            OsCall::DeleteLink { .. } => "delete_link",
            OsCall::SetUp { .. } => "set_up",
            OsCall::SetMac { .. } => "set_mac",
            OsCall::AddAddress { .. } => "add_address",
            OsCall::AddRoute { .. } => "add_route",
            OsCall::LinkIndex { .. } => "link_index",
            OsCall::LinkStats { .. } => "link_stats",
            OsCall::MacAddress { .. } => "mac_address",
            OsCall::DisableOffloads { .. } => "disable_offloads",
            OsCall::CreateVxlan { .. } => "create_vxlan",
            OsCall::LinkMtu { .. } => "link_mtu",
        }
    }
}

/// `(namespace, interface)`.
type LinkKey = (String, String);

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<OsCall>,
    namespaces: BTreeSet<String>,
    /// (namespace, interface) -> (index, veth peer)
    links: BTreeMap<LinkKey, (u32, Option<LinkKey>)>,
    next_index: u32,
    fail_on: Option<&'static str>,
    fail_at: Option<usize>,
    stats: BTreeMap<LinkKey, LinkStats>,
    /// MTUs of the links created with one.
    mtus: BTreeMap<LinkKey, u32>,
    /// MTU of the underlay interface towards any VXLAN remote; `None`: no
    /// route (see [`FakeOs::set_underlay_mtu`]).
    underlay_mtu: Option<u32>,
}

/// The recording [`Os`]; see the module documentation.
#[derive(Debug)]
pub struct FakeOs {
    state: Mutex<FakeState>,
    cgroups: tempfile::TempDir,
}

impl Default for FakeOs {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeOs {
    pub fn new() -> Self {
        let cgroups = tempfile::tempdir().expect("a temporary cgroup root");
        std::fs::write(
            cgroups.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .expect("writing cgroup.controllers");
        std::fs::write(cgroups.path().join("cgroup.subtree_control"), "")
            .expect("writing cgroup.subtree_control");
        FakeOs {
            state: Mutex::new(FakeState {
                underlay_mtu: Some(1500),
                ..FakeState::default()
            }),
            cgroups,
        }
    }

    /// Every call so far, in order (including failed ones).
    pub fn calls(&self) -> Vec<OsCall> {
        self.lock().calls.clone()
    }

    /// The interfaces that currently exist, as `(namespace, name)`.
    pub fn links(&self) -> Vec<(String, String)> {
        self.lock().links.keys().cloned().collect()
    }

    /// The namespaces that currently exist.
    pub fn namespaces(&self) -> Vec<String> {
        self.lock().namespaces.iter().cloned().collect()
    }

    /// Makes a namespace exist without a recorded call (left by someone
    /// else, or by a deploy that was killed).
    pub fn add_foreign_netns(&self, name: &str) {
        self.lock().namespaces.insert(name.to_owned());
    }

    /// Whether the cgroup `rel_path` exists under the fake root.
    pub fn cgroup_exists(&self, rel_path: &str) -> bool {
        self.cgroups.path().join(rel_path).is_dir()
    }

    /// The real cgroup root the fake creates cgroups under.
    pub fn cgroup_root(&self) -> CgroupRoot {
        CgroupRoot::detect(self.cgroups.path()).expect("the fake v2 layout")
    }

    /// Makes every later call of operation `op` (e.g. `"add_route"`) fail
    /// with an injected error; `None` stops that.
    pub fn fail_on(&self, op: Option<&'static str>) {
        self.lock().fail_on = op;
    }

    /// Makes call number `n` (counting from 0, over all calls made on this
    /// fake so far and later) fail with an injected error.
    pub fn fail_at(&self, n: Option<usize>) {
        self.lock().fail_at = n;
    }

    /// The MTU of the underlay interface every VXLAN remote is routed
    /// through (1500 at first); `None`: no remote is reachable.
    pub fn set_underlay_mtu(&self, mtu: Option<u32>) {
        self.lock().underlay_mtu = mtu;
    }

    /// What [`LinkOps::link_stats`] returns for that interface.
    pub fn set_stats(&self, ns: &str, name: &str, stats: LinkStats) {
        self.lock().stats.insert(key(ns, name), stats);
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `call` and returns the locked state, or the injected failure.
    fn record(&self, call: OsCall) -> Result<MutexGuard<'_, FakeState>, &'static str> {
        let mut state = self.lock();
        let op = call.op();
        let n = state.calls.len();
        state.calls.push(call);
        if state.fail_on == Some(op) || state.fail_at == Some(n) {
            return Err(op);
        }
        Ok(state)
    }

    fn record_link(&self, call: OsCall) -> Result<MutexGuard<'_, FakeState>, LinkError> {
        self.record(call).map_err(|op| LinkError::Injected { op })
    }

    fn record_os(&self, call: OsCall) -> Result<MutexGuard<'_, FakeState>, OsError> {
        self.record(call).map_err(|op| OsError::Injected { op })
    }
}

fn key(ns: &str, name: &str) -> LinkKey {
    (ns.to_owned(), name.to_owned())
}

impl FakeState {
    fn add(&mut self, ns: &str, name: &str, peer: Option<LinkKey>) -> Result<(), LinkError> {
        if self.links.contains_key(&key(ns, name)) {
            return Err(LinkError::AlreadyExists {
                ns: ns.to_owned(),
                ifname: name.to_owned(),
            });
        }
        self.next_index += 1;
        self.links.insert(key(ns, name), (self.next_index, peer));
        Ok(())
    }

    fn index(&self, ns: &str, name: &str) -> Result<u32, LinkError> {
        self.links
            .get(&key(ns, name))
            .map(|(index, _)| *index)
            .ok_or_else(|| LinkError::NotFound {
                ns: ns.to_owned(),
                ifname: name.to_owned(),
            })
    }

    /// Removes a link and its veth peer.
    fn remove(&mut self, ns: &str, name: &str) {
        if let Some((_, Some(peer))) = self.links.remove(&key(ns, name)) {
            self.links.remove(&peer);
        }
    }
}

impl Os for FakeOs {
    fn links(&self) -> &dyn LinkOps {
        self
    }

    fn create_netns(&self, name: &str) -> Result<(), OsError> {
        let mut state = self.record_os(OsCall::CreateNetns { name: name.into() })?;
        if !state.namespaces.insert(name.to_owned()) {
            return Err(super::netns::NetNsError::AlreadyExists {
                name: name.to_owned(),
            }
            .into());
        }
        Ok(())
    }

    fn delete_netns(&self, name: &str) -> Result<(), OsError> {
        let mut state = self.record_os(OsCall::DeleteNetns { name: name.into() })?;
        state.namespaces.remove(name);
        // Interfaces inside go with it (and the other end of their veths).
        let inside: Vec<LinkKey> = state
            .links
            .keys()
            .filter(|(ns, _)| ns == name)
            .cloned()
            .collect();
        for (ns, ifname) in inside {
            state.remove(&ns, &ifname);
        }
        Ok(())
    }

    fn netns_exists(&self, name: &str) -> bool {
        self.lock().namespaces.contains(name)
    }

    fn list_netns(&self) -> Vec<String> {
        self.namespaces()
    }

    fn disable_ipv6(&self, ns: &str) -> Result<(), OsError> {
        let state = self.record_os(OsCall::DisableIpv6 { ns: ns.into() })?;
        if !state.namespaces.contains(ns) {
            return Err(OsError::Ipv6 {
                ns: ns.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        Ok(())
    }

    fn cgroup_mount(&self) -> &Path {
        self.cgroups.path()
    }

    fn create_cgroup(&self, rel_path: &str, limits: &Limits) -> Result<Cgroup, OsError> {
        let _state = self.record_os(OsCall::CreateCgroup {
            rel_path: rel_path.into(),
        })?;
        Ok(self.cgroup_root().create(rel_path, limits)?)
    }

    fn open_cgroup(&self, rel_path: &str) -> Result<Cgroup, OsError> {
        Ok(self.cgroup_root().open(rel_path)?)
    }

    fn cgroup_procs(&self, cgroup: &Cgroup) -> Vec<i32> {
        cgroup.procs().unwrap_or_default()
    }

    fn remove_cgroup(&self, cgroup: &Cgroup) -> Result<(), OsError> {
        let _state = self.record_os(OsCall::RemoveCgroup {
            rel_path: cgroup.rel_path().into(),
        })?;
        // The fake root holds plain files the kernel would not show; clear
        // them so rmdir behaves as on cgroupfs.
        for dir in cgroup.paths() {
            for level in dir.ancestors().take_while(|d| *d != self.cgroups.path()) {
                clear_files(level);
            }
        }
        Ok(cgroup.remove()?)
    }
}

/// Removes the regular files in `dir` (the fake's control files).
fn clear_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl LinkOps for FakeOs {
    fn create_veth(
        &self,
        ns_a: &str,
        name_a: &str,
        ns_b: &str,
        name_b: &str,
        mtu: Option<u32>,
    ) -> Result<(), LinkError> {
        let mut state = self.record_link(OsCall::CreateVeth {
            ns_a: ns_a.into(),
            name_a: name_a.into(),
            ns_b: ns_b.into(),
            name_b: name_b.into(),
            mtu,
        })?;
        check_ifname(name_a)?;
        check_ifname(name_b)?;
        if state.links.contains_key(&key(ns_b, name_b)) {
            return Err(LinkError::AlreadyExists {
                ns: ns_b.into(),
                ifname: name_b.into(),
            });
        }
        state.add(ns_a, name_a, Some(key(ns_b, name_b)))?;
        state.add(ns_b, name_b, Some(key(ns_a, name_a)))
    }

    fn create_tap(
        &self,
        ns: &str,
        name: &str,
        mtu: Option<u32>,
        vnet_hdr: bool,
    ) -> Result<(), LinkError> {
        let mut state = self.record_link(OsCall::CreateTap {
            ns: ns.into(),
            name: name.into(),
            mtu,
            vnet_hdr,
        })?;
        check_ifname(name)?;
        state.add(ns, name, None)
    }

    fn open_tap(&self, ns: &str, name: &str, vnet_hdr: bool) -> Result<OwnedFd, LinkError> {
        let state = self.record_link(OsCall::OpenTap {
            ns: ns.into(),
            name: name.into(),
            vnet_hdr,
        })?;
        state.index(ns, name)?;
        let null = File::open("/dev/null").map_err(|source| LinkError::OpenTun {
            ns: ns.into(),
            source,
        })?;
        Ok(null.into())
    }

    fn delete_link(&self, ns: &str, name: &str) -> Result<(), LinkError> {
        let mut state = self.record_link(OsCall::DeleteLink {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.remove(ns, name);
        Ok(())
    }

    fn set_up(&self, ns: &str, name: &str) -> Result<(), LinkError> {
        let state = self.record_link(OsCall::SetUp {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name).map(drop)
    }

    fn set_mac(&self, ns: &str, name: &str, mac: [u8; 6]) -> Result<(), LinkError> {
        let state = self.record_link(OsCall::SetMac {
            ns: ns.into(),
            name: name.into(),
            mac,
        })?;
        state.index(ns, name).map(drop)
    }

    fn add_address(
        &self,
        ns: &str,
        ifname: &str,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let state = self.record_link(OsCall::AddAddress {
            ns: ns.into(),
            ifname: ifname.into(),
            addr,
            prefix_len,
        })?;
        check_prefix(addr, prefix_len)?;
        state.index(ns, ifname).map(drop)
    }

    fn add_route(
        &self,
        ns: &str,
        dst: Option<(Ipv4Addr, u8)>,
        via: Ipv4Addr,
    ) -> Result<(), LinkError> {
        drop(self.record_link(OsCall::AddRoute {
            ns: ns.into(),
            dst,
            via,
        })?);
        match dst {
            Some((addr, prefix_len)) => check_prefix(addr, prefix_len),
            None => Ok(()),
        }
    }

    fn link_index(&self, ns: &str, name: &str) -> Result<u32, LinkError> {
        let state = self.record_link(OsCall::LinkIndex {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name)
    }

    fn link_stats(&self, ns: &str, name: &str) -> Result<LinkStats, LinkError> {
        let state = self.record_link(OsCall::LinkStats {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name)?;
        Ok(state.stats.get(&key(ns, name)).copied().unwrap_or_default())
    }

    fn mac_address(&self, ns: &str, name: &str) -> Result<[u8; 6], LinkError> {
        let state = self.record_link(OsCall::MacAddress {
            ns: ns.into(),
            name: name.into(),
        })?;
        let index = state.index(ns, name)?.to_be_bytes();
        // Locally administered, unicast, derived from the index.
        Ok([0x02, 0x00, index[0], index[1], index[2], index[3]])
    }

    fn disable_offloads(&self, ns: &str, name: &str) -> Result<(), LinkError> {
        let state = self.record_link(OsCall::DisableOffloads {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name).map(drop)
    }

    fn create_vxlan(&self, ns: &str, name: &str, config: &VxlanConfig) -> Result<u32, LinkError> {
        let mut state = self.record_link(OsCall::CreateVxlan {
            ns: ns.into(),
            name: name.into(),
            config: *config,
        })?;
        check_ifname(name)?;
        let Some(underlay_mtu) = state.underlay_mtu else {
            return Err(LinkError::Unreachable {
                ns: super::netns::OWN_NETNS.to_owned(),
                remote: config.remote,
                reason: "no route (FakeOs)".to_owned(),
            });
        };
        let mtu = vxlan_mtu(name, config.mtu, underlay_mtu)?;
        state.add(ns, name, None)?;
        state.mtus.insert(key(ns, name), mtu);
        Ok(mtu)
    }

    fn link_mtu(&self, ns: &str, name: &str) -> Result<u32, LinkError> {
        let state = self.record_link(OsCall::LinkMtu {
            ns: ns.into(),
            name: name.into(),
        })?;
        state.index(ns, name)?;
        Ok(state.mtus.get(&key(ns, name)).copied().unwrap_or(1500))
    }
}

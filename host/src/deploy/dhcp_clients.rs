//! DHCP clients for test-host interfaces with `dhcp: true`: ISC `dhclient`
//! run inside the host's namespace with a private script, lease file and
//! pid file, so it never touches the machine's own `/etc/resolv.conf` or
//! lease files.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use super::netns_name;
use super::state::{ChainState, ProcRef};
use crate::chain::names::{self, NameKind};
use crate::sys::private_file;

/// The script dhclient runs on lease events: it applies the lease to the
/// interface with `ip` inside the namespace and records it in the bound
/// file. Nothing is written into its text: dhclient runs scripts with a
/// clean environment, so the paths reach it as `NFV_BOUND` / `NFV_RESOLV`
/// through dhclient's `-e`, and every expansion is quoted.
const SCRIPT: &str = r#"#!/bin/sh
# Written by nfvhost: apply a DHCP lease inside a test host's namespace
# without touching the machine's /etc/resolv.conf.
case "$reason" in
PREINIT)
    ip link set dev "$interface" up
    ;;
BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        ip -4 addr flush dev "$interface"
    fi
    ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" \
        valid_lft "${new_dhcp_lease_time:-forever}" preferred_lft "${new_dhcp_lease_time:-forever}"
    for r in $new_routers; do ip -4 route replace default via "$r" dev "$interface"; break; done
    printf 'nameserver %s\n' $new_domain_name_servers > "$NFV_RESOLV"
    echo "$reason $new_ip_address/$new_subnet_mask router=$new_routers lease=$new_dhcp_lease_time" >> "$NFV_BOUND"
    ;;
EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface"
    ;;
esac
exit 0
"#;

/// Where a client records its leases.
pub fn bound_file(chain: &str, host: &str, ifname: &str) -> PathBuf {
    ChainState::dir(chain).join(format!("{host}-{ifname}.bound"))
}

/// Starts one client per DHCP interface, records them in the state, and
/// waits until each has a lease.
pub fn start(
    state: &mut ChainState,
    hosts: &[(String, String)],
    mut progress: impl FnMut(&str),
) -> anyhow::Result<()> {
    if hosts.is_empty() {
        return Ok(());
    }
    let dir = ChainState::dir(&state.chain);
    let script = dir.join("dhclient-script");
    private_file::write_atomic(&script, SCRIPT.as_bytes(), 0o700)?;
    for (host, ifname) in hosts {
        // Names were checked by the chain decoder; checked again here since
        // they become file names and dhclient arguments.
        names::check(NameKind::Node, host).map_err(|e| anyhow!("host name {host:?} {e}"))?;
        names::check(NameKind::Interface, ifname)
            .map_err(|e| anyhow!("interface name {ifname:?} {e}"))?;
        progress(&format!("starting dhclient on {host}:{ifname}"));
        let ns = crate::sys::netns::NetNs::open(&netns_name(&state.chain, host))?;
        let log = private_file::create(&dir.join(format!("{host}-{ifname}.dhclient.log")))?;
        let mut env_bound = OsString::from("NFV_BOUND=");
        env_bound.push(bound_file(&state.chain, host, ifname));
        let mut env_resolv = OsString::from("NFV_RESOLV=");
        env_resolv.push(dir.join(format!("{host}-resolv.conf")));
        let mut cmd = Command::new("dhclient");
        cmd.args(["-d", "-4", "-sf"])
            .arg(&script)
            .arg("-e")
            .arg(env_bound)
            .arg("-e")
            .arg(env_resolv)
            .arg("-lf")
            .arg(dir.join(format!("{host}-{ifname}.leases")))
            .arg("-pf")
            .arg(dir.join(format!("{host}-{ifname}.pid")))
            .arg(ifname)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own session, inside the host's namespace.
        crate::sys::process::new_session_in_netns_on_exec(&mut cmd, &ns)?;
        let child = cmd
            .spawn()
            .context("starting dhclient (is isc-dhcp-client installed?)")?;
        if let Some(p) = ProcRef::of(child.id() as i32) {
            state.helpers.push(p);
        }
        state.save()?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (host, ifname) in hosts {
        let bound = bound_file(&state.chain, host, ifname);
        while !bound.exists() {
            if Instant::now() > deadline {
                bail!(
                    "{host}:{ifname} got no DHCP lease within 30s; see {}",
                    dir.join(format!("{host}-{ifname}.dhclient.log")).display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let lease = std::fs::read_to_string(&bound).unwrap_or_default();
        progress(&format!(
            "{host}:{ifname} leased {}",
            lease
                .lines()
                .last()
                .unwrap_or("")
                .split_whitespace()
                .nth(1)
                .unwrap_or("?")
        ));
    }
    Ok(())
}

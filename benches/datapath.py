#!/usr/bin/env python3
"""nfvhost data-path benchmark: nfvhost against the Linux kernel, side by side.

One command (as root, from anywhere):

    python3 benches/datapath.py            # full run, medians of several runs
    python3 benches/datapath.py --short    # one quick run of each (CI)

For each case ("router": h1 - r1 - h2, "edge": lan - dhcp - fw - r1 - nat - wan,
"edge-fused": the same four VNFs fused into one group, one worker, one core)
it builds, in the same run, a kernel chain of the same shape in plain
namespaces (prefix ``nfvb-``) and the nfvhost chain (generated from
chains/basic.yaml and chains/edge.yaml under other names and metrics ports),
drives traffic from the test-host namespaces (iperf3 TCP, trafgen 64-byte UDP
frames at a fixed offered load, ping RTT) and prints nfvhost/kernel ratios.
Results go to benches/results/latest.json and latest.svg.

Python standard library only. Never fails on a figure: the exit code is
non-zero only when something is broken (a chain does not deploy, no traffic
passes at all, a tool is missing). Every namespace it creates is removed at
the end, pass or fail.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NFVHOST = os.environ.get("NFVHOST") or os.path.join(ROOT, "target", "release", "nfvhost")
PREFIX = "nfvb-"
CHAIN_ROUTER = "nfvbr"
CHAIN_EDGE = "nfvbe"
CHAIN_LONG = "nfvbl"
METRICS = {CHAIN_ROUTER: 19464, CHAIN_EDGE: 19465, CHAIN_LONG: 19466}

# Goals of issue 5, as nfvhost / kernel ratios (for the table and the chart).
GOALS = {"udp64_pps": (">=", 1.0), "tcp_bps": (">=", 0.8),
         "rtt_median_us": ("<=", 1.5), "rtt_p99_us": ("<=", 1.5),
         "udp64_pps_busy": (">=", 1.0), "rtt_median_us_busy": ("<=", 1.5),
         "rtt_p99_us_busy": ("<=", 1.5),
         "udp64_pps_adaptive": (">=", 1.0), "rtt_median_us_adaptive": ("<=", 1.5)}

# Goals of issue 12 for the fused edge chain (one worker, one core), where
# they differ from the above.
CASE_GOALS = {"edge-fused": {"udp64_pps": (">=", 1.2), "tcp_bps": (">=", 0.9),
                             "rtt_median_us": ("<=", 2.0), "rtt_median_us_busy": ("<=", 1.5)},
              "router": {"udp64_pps": (">=", 1.0), "tcp_bps": (">=", 0.8),
                         "rtt_median_us": ("<=", 2.0), "rtt_median_us_busy": ("<=", 1.3)}}

# The worker poll modes measured (`datapath: { poll: ... }`), by run name.
POLL_RUNS = {"nfvhost": "sleep", "nfvhost_adaptive": "adaptive", "nfvhost_busy": "busy"}

CPU_LIMIT = 1.0
AS_SHIPPED = False     # --as-shipped: the chain files' resources unchanged
EXTRA_DATAPATH = ""    # --datapath: more `datapath:` keys for every VNF, e.g. "io: tpacket"

OFFLOADS = ["tx", "sg", "tso", "gso", "gro"]

started_pids = []      # processes we started and must stop
created_ns = []        # kernel-baseline namespaces we created
deployed = []          # nfvhost chains we deployed


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, check=True, timeout=120, env=None, capture=True):
    """Runs a command (list); returns stdout."""
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout if capture else ""


def nsx(ns, *cmd, **kw):
    return sh(["ip", "netns", "exec", ns, *cmd], **kw)


# --------------------------------------------------------------------------
# Cleanup

def spawn(cmd):
    """Starts a background command in its own process group (trafgen forks a
    worker per CPU and `ip netns exec` may fork too), so that stop() ends
    every process it started and nothing else."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    started_pids.append(p)
    return p


def stop(p, grace=5.0):
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # the group we created, by its id
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if p in started_pids:
        started_pids.remove(p)


def cleanup():
    for p in list(started_pids):
        stop(p, grace=0)
    for chain in list(deployed):
        sh([NFVHOST, "destroy", "--chain", chain], check=False, timeout=60)
        deployed.remove(chain)
    for ns in list(created_ns):
        sh(["ip", "netns", "del", ns], check=False)
        created_ns.remove(ns)


def leftover_cleanup():
    """Removes what an earlier, killed run of this benchmark left behind."""
    for ns in sh(["ip", "netns", "list"], check=False).split("\n"):
        name = ns.split(" ")[0]
        if name.startswith(PREFIX):
            sh(["ip", "netns", "del", name], check=False)
    for chain in (CHAIN_ROUTER, CHAIN_EDGE, CHAIN_LONG):
        sh([NFVHOST, "destroy", "--chain", chain], check=False, timeout=60)


# --------------------------------------------------------------------------
# Kernel baseline topologies

def add_ns(name):
    sh(["ip", "netns", "add", name])
    created_ns.append(name)
    nsx(name, "ip", "link", "set", "lo", "up")
    return name


def veth(ns_a, if_a, ns_b, if_b):
    sh(["ip", "-n", ns_a, "link", "add", "name", if_a, "type", "veth", "peer", "name", if_b,
        "netns", ns_b])
    sh(["ip", "-n", ns_a, "link", "set", "dev", if_a, "up"])
    sh(["ip", "-n", ns_b, "link", "set", "dev", if_b, "up"])


def addr(ns, ifname, cidr):
    sh(["ip", "-n", ns, "addr", "add", cidr, "dev", ifname])


def set_offloads(links, on):
    for ns, ifname in links:
        sh(["ip", "netns", "exec", ns, "ethtool", "-K", ifname] +
           [x for o in OFFLOADS for x in (o, "on" if on else "off")], check=False)


def kernel_router():
    """h1 (10.0.1.10) - r1 (ip_forward) - h2 (10.0.2.10), like chains/basic.yaml."""
    h1, r1, h2 = (add_ns(PREFIX + "r-" + n) for n in ("h1", "r1", "h2"))
    veth(h1, "eth0", r1, "lan")
    veth(r1, "wan", h2, "eth0")
    addr(h1, "eth0", "10.0.1.10/24")
    addr(r1, "lan", "10.0.1.1/24")
    addr(r1, "wan", "10.0.2.1/24")
    addr(h2, "eth0", "10.0.2.10/24")
    sh(["ip", "-n", h1, "route", "add", "default", "via", "10.0.1.1"])
    sh(["ip", "-n", h2, "route", "add", "default", "via", "10.0.2.1"])
    nsx(r1, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    links = [(h1, "eth0"), (r1, "lan"), (r1, "wan"), (h2, "eth0")]
    return {"src": h1, "dst": h2, "dst_ip": "10.0.2.10", "src_ip": "10.0.1.10",
            "gw_ip": "10.0.1.1", "links": links, "features": []}


FW_RULES = """
table bridge nfvb_fw {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ether type arp accept
    ct state established,related accept
    ct state invalid drop
    iifname "inside" tcp dport 25 reject with tcp reset
    iifname "inside" accept
    iifname "outside" ip daddr 192.168.1.50 tcp dport 80 accept
  }
}
"""

FW_INET_RULES = """
table inet nfvb_fw {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ct state invalid drop
    ip saddr 192.168.1.0/24 tcp dport 25 reject with tcp reset
    ip saddr 192.168.1.0/24 accept
    ip daddr 192.168.1.50 tcp dport 80 accept
  }
}
"""

NAT_RULES = """
table ip nfvb_nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "outside" masquerade
  }
  chain pre {
    type nat hook prerouting priority -100;
    iifname "outside" tcp dport 8080 dnat to 192.168.1.50:80
  }
}
"""


def nft(ns, rules):
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules,
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def kernel_edge():
    """lan - dhcp (bridge) - fw (bridge + nftables stateful) - r1 (forwarding)
    - nat (forwarding + nftables masquerade) - wan, like chains/edge.yaml."""
    lan, dh, fw, r1, nat, wan = (add_ns(PREFIX + "e-" + n)
                                 for n in ("lan", "dhcp", "fw", "r1", "nat", "wan"))
    veth(lan, "eth0", dh, "lan")
    veth(dh, "up", fw, "inside")
    veth(fw, "outside", r1, "lan")
    veth(r1, "wan", nat, "inside")
    veth(nat, "outside", wan, "eth0")
    sh(["ip", "-n", lan, "link", "set", "eth0", "address", "02:00:00:00:01:50"])
    for ns, ports in ((dh, ("lan", "up")), (fw, ("inside", "outside"))):
        sh(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
        for p in ports:
            sh(["ip", "-n", ns, "link", "set", "dev", p, "master", "br0"])
        sh(["ip", "-n", ns, "link", "set", "br0", "up"])
    addr(lan, "eth0", "192.168.1.50/24")
    sh(["ip", "-n", lan, "route", "add", "default", "via", "192.168.1.1"])
    addr(r1, "lan", "192.168.1.1/24")
    addr(r1, "wan", "10.255.0.1/30")
    sh(["ip", "-n", r1, "route", "add", "default", "via", "10.255.0.2"])
    addr(nat, "inside", "10.255.0.2/30")
    addr(nat, "outside", "203.0.113.1/24")
    sh(["ip", "-n", nat, "route", "add", "192.168.1.0/24", "via", "10.255.0.1"])
    addr(wan, "eth0", "203.0.113.10/24")
    for ns in (r1, nat):
        nsx(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    features = []
    ok, err = nft(fw, FW_RULES)
    if ok:
        features.append("fw: nftables bridge stateful")
    elif nsx(fw, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", check=False) is not None \
            and nft(fw, FW_INET_RULES)[0]:
        # No bridge conntrack in this kernel: br_netfilter hands the bridged
        # IPv4 traffic to the inet hooks, where conntrack works; directions
        # are told apart by address since iifname there is the bridge.
        features.append("fw: nftables inet stateful via br_netfilter")
    else:
        log(f"  bridge conntrack unavailable ({err}); stateless firewall rules")
        ok, err = nft(fw, FW_RULES.replace("    ct state established,related accept\n", "")
                      .replace("    ct state invalid drop\n", "")
                      .replace("reject with tcp reset", "drop")
                      .replace("policy drop", "policy accept"))
        if not ok:
            raise RuntimeError(f"nftables bridge firewall: {err}")
        features.append("fw: nftables bridge stateless (no bridge conntrack)")
    ok, err = nft(nat, NAT_RULES)
    if not ok:
        raise RuntimeError(f"nftables NAT: {err}")
    features.append("nat: nftables masquerade")
    links = [(lan, "eth0"), (dh, "lan"), (dh, "up"), (fw, "inside"), (fw, "outside"),
             (r1, "lan"), (r1, "wan"), (nat, "inside"), (nat, "outside"), (wan, "eth0")]
    return {"src": lan, "dst": wan, "dst_ip": "203.0.113.10", "src_ip": "192.168.1.50",
            "gw_ip": "192.168.1.1", "links": links, "features": features}


# --------------------------------------------------------------------------
# nfvhost chains

def gen_chain(src, name, port, tmp, poll="sleep"):
    with open(os.path.join(ROOT, "chains", src)) as f:
        text = f.read()
    fused = re.search(r"(?m)^groups:\n  (\S+): \{\}$", text)
    if fused:
        # A fused group: one worker with one core for the whole chain, and
        # its one poller spins if asked.
        # (--as-shipped: the group's cgroup as the file says, no quota.)
        parts = [] if AS_SHIPPED else [f"resources: {{ cpu: {CPU_LIMIT} }}"]
        if poll != "sleep":
            parts.append(f"datapath: {{ poll: {poll} }}")
        text = text.replace(fused.group(0),
                            f"groups:\n  {fused.group(1)}: {{ {', '.join(parts)} }}"
                            if parts else fused.group(0))
    # Every VNF polls as asked (in a group, its one worker does), and takes
    # the --datapath keys.
    keys = [k for k in (f"poll: {poll}" if poll != "sleep" and not fused else "",
                        EXTRA_DATAPATH) if k]
    if keys:
        text = re.sub(r"(?m)^(    ports: \[.*\]\n)",
                      lambda m: m.group(1) + f"    datapath: {{ {', '.join(keys)} }}\n", text)
    text = re.sub(r"(?m)^name: .*$", f"name: {name}", text)
    text = re.sub(r"(?m)^metrics: .*$", f"metrics: 127.0.0.1:{port}", text)
    # At most one whole CPU per worker, as the kernel's softirq forwarding
    # is not held to a cgroup quota either (the shipped files set none;
    # older ones said 0.5). --as-shipped keeps the file's limits.
    if not AS_SHIPPED:
        text = text.replace("cpu: 0.5,", f"cpu: {CPU_LIMIT},")
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def gen_long_chain(n, tmp, fused=False):
    lines = [f"name: {CHAIN_LONG}", f"metrics: 127.0.0.1:{METRICS[CHAIN_LONG]}", "hosts:",
             "  h1:", "    interfaces:", "      eth0: { address: 10.0.77.1/24 }",
             "  h2:", "    interfaces:", "      eth0: { address: 10.0.77.2/24 }"]
    if fused:
        # All n wires in one group: one worker, one core, in-memory links.
        lines += ["groups:", f"  wires: {{ resources: {{ cpu: {CPU_LIMIT}, memory: 1GiB }} }}"]
    lines.append("vnfs:")
    for i in range(n):
        lines += [f"  w{i:02}:", "    module: faulty", "    ports: [left, right]",
                  "    resources: { memory: 64MiB, pids: 32, wasm_memory: 16MiB }"]
        if fused:
            lines.append("    group: wires")
    lines.append("chain: [h1, " + ", ".join(f"w{i:02}" for i in range(n)) + ", h2]")
    path = os.path.join(tmp, f"{CHAIN_LONG}.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def deploy(path, name, env=None):
    t = time.monotonic()
    deployed.append(name)
    r = subprocess.run([NFVHOST, "deploy", path], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)
    took = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"nfvhost deploy {name} failed: {r.stderr.strip()[-2000:]}")
    return took


def destroy(name):
    sh([NFVHOST, "destroy", "--cleanup", "--chain", name], check=False, timeout=60)
    if name in deployed:
        deployed.remove(name)


def nfv_topology(case, name):
    ns = lambda n: f"nfv-{name}-{n}"  # noqa: E731
    if case == "router":
        return {"src": ns("h1"), "dst": ns("h2"), "dst_ip": "10.0.2.10",
                "src_ip": "10.0.1.10", "gw_ip": "10.0.1.1", "links": [], "features": []}
    return {"src": ns("lan"), "dst": ns("wan"), "dst_ip": "203.0.113.10",
            "src_ip": "192.168.1.50", "gw_ip": "192.168.1.1", "links": [], "features": []}


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except Exception as e:  # the figure is optional; the benchmark goes on
        return {"error": str(e)}
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(nfvhost_port_(?:rx|tx)_packets_total|nfvhost_vnf_drops_total|'
                     r'nfvhost_vnf_call_duration_seconds_(?:sum|count))\{([^}]*)\} (\S+)$', line)
        if m:
            out[m.group(1) + "{" + m.group(2) + "}"] = float(m.group(3))
    return out


def inspect_pids(name):
    try:
        rows = json.loads(sh([NFVHOST, "inspect", "--chain", name, "-o", "json"]))
    except Exception:
        return {}
    if isinstance(rows, dict):
        rows = rows.get("nodes", rows.get("rows", []))
    return {r["node"]: r["pid"] for r in rows if r.get("kind") == "vnf" and r.get("pid")}


def supervisor_pid(name):
    run_dir = os.environ.get("NFVHOST_RUN_DIR", "/run/nfvhost")
    try:
        with open(os.path.join(run_dir, name, "state.json")) as f:
            sup = json.load(f).get("supervisor")
        return sup and sup["pid"]
    except Exception:
        return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# --------------------------------------------------------------------------
# Measurements

def link_stats(ns, ifname="eth0"):
    j = json.loads(sh(["ip", "-n", ns, "-s", "-j", "link", "show", ifname]))[0]
    s = j["stats64"]
    return s["rx"]["packets"], s["tx"]["packets"]


def ping(topo, count, interval):
    out = nsx(topo["src"], "ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1",
              topo["dst_ip"], check=False, timeout=count * interval + 30)
    rtts = sorted(float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", out))
    if not rtts:
        return None
    p99 = rtts[min(len(rtts) - 1, int(round(0.99 * (len(rtts) - 1))))]
    return {"rtt_median_us": statistics.median(rtts), "rtt_p99_us": p99,
            "replies": len(rtts), "sent": count}


def iperf_tcp(topo, seconds):
    srv = spawn(["ip", "netns", "exec", topo["dst"], "iperf3", "-s", "-1",
                 "-B", topo["dst_ip"], "-p", "5299"])
    try:
        time.sleep(0.3)
        out = nsx(topo["src"], "iperf3", "-c", topo["dst_ip"], "-p", "5299", "-t",
                  str(seconds), "-J", check=False, timeout=seconds + 30)
        try:
            j = json.loads(out)
            return {"tcp_bps": j["end"]["sum_received"]["bits_per_second"],
                    "retransmits": j["end"]["sum_sent"].get("retransmits")}
        except (ValueError, KeyError):
            return None
    finally:
        stop(srv)


def gw_mac(topo):
    nsx(topo["src"], "ping", "-c", "1", "-W", "1", topo["dst_ip"], check=False)
    out = sh(["ip", "-n", topo["src"], "-j", "neigh", "show", topo["gw_ip"]])
    for n in json.loads(out or "[]"):
        if n.get("lladdr"):
            return n["lladdr"]
    return None


def src_mac(topo):
    return json.loads(sh(["ip", "-n", topo["src"], "-j", "link", "show", "eth0"]))[0]["address"]


def udp64(topo, pps, seconds, tmp):
    """64-byte frames (60 on the wire without FCS) at `pps` from the source host;
    counts what arrives at the destination host's eth0 (kernel counters)."""
    da = gw_mac(topo)
    if not da:
        return None
    cfg = os.path.join(tmp, "udp64.cfg")
    with open(cfg, "w") as f:
        f.write("{ eth(da=%s, sa=%s, type=0x0800), ipv4(saddr=%s, daddr=%s, ttl=64), "
                "udp(sport=4000, dport=9), fill(0x00, 18) }\n"
                % (da, src_mac(topo), topo["src_ip"], topo["dst_ip"]))
    gen = spawn(["ip", "netns", "exec", topo["src"], "trafgen", "--dev", "eth0", "--conf", cfg,
                 "--rate", f"{pps}pps", "--cpus", "1", "-C", "-n", str(int(pps * (seconds + 2)))])
    try:
        time.sleep(0.5)  # trafgen starts up; the chain fills its queues
        rx0, _ = link_stats(topo["dst"])
        _, tx0 = link_stats(topo["src"])
        t0 = time.monotonic()
        time.sleep(seconds)
        rx1, _ = link_stats(topo["dst"])
        _, tx1 = link_stats(topo["src"])
        took = time.monotonic() - t0
    finally:
        stop(gen, grace=0)
    time.sleep(1.0)  # let the chain drain its socket buffers before the next test
    sent, got = tx1 - tx0, rx1 - rx0
    return {"udp64_pps": got / took, "udp64_offered_pps": sent / took,
            "udp64_sent": sent, "udp64_received": got,
            "udp64_loss": 1 - got / sent if sent else None}


def med(runs, key):
    vals = [r[key] for r in runs if r and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def cpu_ns(pid):
    """Time the process has run on a CPU, in ns (schedstat: finer than ticks)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def measure(topo, label, args, tmp, tcp=True, other=True, pids=()):
    res = {"label": label, "features": topo["features"]}
    if tcp:
        runs = [iperf_tcp(topo, args.tcp_seconds) for _ in range(args.runs)]
        res["tcp_runs"] = runs
        res["tcp_bps"] = med(runs, "tcp_bps")
        log(f"  {label:22} tcp {fmt_bps(res['tcp_bps'])}")
    if other:
        runs = [udp64(topo, args.pps, args.udp_seconds, tmp) for _ in range(args.runs)]
        res["udp_runs"] = runs
        for k in ("udp64_pps", "udp64_offered_pps", "udp64_loss"):
            res[k] = med(runs, k)
        # What the workers cost while pinged 100 times a second: the price
        # of each poll mode at a low rate (one worker per group counted once).
        c0, t0 = {p: cpu_ns(p) for p in set(pids)}, time.monotonic()
        runs = [ping(topo, args.pings, 0.01) for _ in range(args.runs)]
        if c0:
            spent = sum((cpu_ns(p) or 0) - (c or 0) for p, c in c0.items())
            res["ping_worker_cpu_pct"] = 100.0 * spent / 1e9 / (time.monotonic() - t0)
        res["ping_runs"] = runs
        for k in ("rtt_median_us", "rtt_p99_us"):
            res[k] = med(runs, k)
        log(f"  {label:22} udp64 {fmt_num(res['udp64_pps'])} pps of "
            f"{fmt_num(res['udp64_offered_pps'])} offered; rtt median "
            f"{fmt_num(res['rtt_median_us'])} us p99 {fmt_num(res['rtt_p99_us'])} us"
            + (f"; workers {res['ping_worker_cpu_pct']:.1f} % CPU while pinged"
               if "ping_worker_cpu_pct" in res else ""))
    return res


def fmt_bps(v):
    return "-" if v is None else f"{v / 1e9:.2f} Gb/s"


def fmt_num(v, nd=1):
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.{nd}f}"


# --------------------------------------------------------------------------
# Cases

def run_case(case, args, tmp):
    log(f"== {case}")
    out = {"case": case}
    # Kernel: default offloads for TCP (the issue's reference), then offloads
    # off like nfvhost's links for everything.
    topo = kernel_router() if case == "router" else kernel_edge()
    src = {"router": "basic.yaml", "edge": "edge.yaml", "edge-fused": "edge-fused.yaml"}[case]
    out["kernel_default"] = measure(topo, "kernel (offloads on)", args, tmp)
    set_offloads(topo["links"], False)
    out["kernel_off"] = measure(topo, "kernel (offloads off)", args, tmp, other=False)
    for ns in list(created_ns):
        sh(["ip", "netns", "del", ns], check=False)
        created_ns.remove(ns)

    name = CHAIN_ROUTER if case == "router" else CHAIN_EDGE
    # The chain as shipped (sleeping workers), then with `datapath: { poll:
    # adaptive }` and `{ poll: busy }` on every VNF (on the group, if fused).
    for run, poll in POLL_RUNS.items():
        path = gen_chain(src, name, METRICS[name], tmp, poll=poll)
        deploy(path, name)
        try:
            topo = nfv_topology(case, name)
            pids = inspect_pids(name)
            m0 = metrics(METRICS[name])
            label = "nfvhost" + ("" if poll == "sleep" else f" poll: {poll}")
            out[run] = measure(topo, label, args, tmp, tcp=poll == "sleep",
                               pids=pids.values())
            if poll == "sleep":
                m1 = metrics(METRICS[name])
                out[run]["metrics_delta"] = {k: v - m0.get(k, 0) for k, v in m1.items()
                                             if isinstance(v, float)}
                out[run]["worker_rss_kib"] = {n: rss_kib(p) for n, p in pids.items()}
        finally:
            destroy(name)
    k_off, k_def, nv, busy, adaptive = (out["kernel_off"], out["kernel_default"],
                                        out["nfvhost"], out["nfvhost_busy"],
                                        out["nfvhost_adaptive"])
    out["ratios"] = {
        "udp64_pps": ratio(nv.get("udp64_pps"), k_def.get("udp64_pps")),
        "tcp_bps": ratio(nv.get("tcp_bps"), k_def.get("tcp_bps")),
        "tcp_bps_vs_offloads_off": ratio(nv.get("tcp_bps"), k_off.get("tcp_bps")),
        "rtt_median_us": ratio(nv.get("rtt_median_us"), k_def.get("rtt_median_us")),
        "rtt_p99_us": ratio(nv.get("rtt_p99_us"), k_def.get("rtt_p99_us")),
        "udp64_pps_busy": ratio(busy.get("udp64_pps"), k_def.get("udp64_pps")),
        "rtt_median_us_busy": ratio(busy.get("rtt_median_us"), k_def.get("rtt_median_us")),
        "rtt_p99_us_busy": ratio(busy.get("rtt_p99_us"), k_def.get("rtt_p99_us")),
        "udp64_pps_adaptive": ratio(adaptive.get("udp64_pps"), k_def.get("udp64_pps")),
        "rtt_median_us_adaptive": ratio(adaptive.get("rtt_median_us"),
                                        k_def.get("rtt_median_us")),
    }
    return out


def ratio(a, b):
    return a / b if a is not None and b else None


def run_deploy_figures(args, tmp):
    log("== deploy time, memory, idle CPU")
    out = {}
    cache = tempfile.mkdtemp(prefix="nfvb-cache-", dir=tmp)
    env = dict(os.environ, NFVHOST_CACHE_DIR=cache)
    path = gen_chain("edge.yaml", CHAIN_EDGE, METRICS[CHAIN_EDGE], tmp)
    out["edge_deploy_cold_s"] = deploy(path, CHAIN_EDGE, env)
    destroy(CHAIN_EDGE)
    out["edge_deploy_warm_s"] = deploy(path, CHAIN_EDGE, env)
    pids = inspect_pids(CHAIN_EDGE)
    out["edge_worker_rss_kib"] = {n: rss_kib(p) for n, p in pids.items()}
    sup = supervisor_pid(CHAIN_EDGE)
    if sup:
        out["supervisor_rss_kib"] = rss_kib(sup)
        hz = os.sysconf("SC_CLK_TCK")
        c0, t0 = cpu_ticks(sup), time.monotonic()
        time.sleep(args.idle_seconds)
        c1, t1 = cpu_ticks(sup), time.monotonic()
        out["supervisor_idle_cpu_pct"] = 100.0 * (c1 - c0) / hz / (t1 - t0)
        wc0 = {n: cpu_ticks(p) for n, p in pids.items()}
        time.sleep(args.idle_seconds)
        out["worker_idle_cpu_pct"] = {n: 100.0 * (cpu_ticks(p) - wc0[n]) / hz / args.idle_seconds
                                      for n, p in pids.items()}
    destroy(CHAIN_EDGE)
    path = gen_long_chain(32, tmp)
    out["long32_deploy_s"] = deploy(path, CHAIN_LONG, env)
    pids = inspect_pids(CHAIN_LONG)
    rss = [rss_kib(p) for p in pids.values()]
    rss = [r for r in rss if r]
    out["long32_workers"] = len(rss)
    out["long32_worker_rss_kib_median"] = statistics.median(rss) if rss else None
    out["long32_ping"] = ping({"src": f"nfv-{CHAIN_LONG}-h1", "dst_ip": "10.0.77.2"},
                              20 if args.short else 100, 0.01)
    t = time.monotonic()
    destroy(CHAIN_LONG)
    out["long32_destroy_s"] = time.monotonic() - t
    # The same 32 wires fused into one group (one worker, one core).
    path = gen_long_chain(32, tmp, fused=True)
    out["long32_fused_deploy_s"] = deploy(path, CHAIN_LONG, env)
    out["long32_fused_ping"] = ping({"src": f"nfv-{CHAIN_LONG}-h1", "dst_ip": "10.0.77.2"},
                                    20 if args.short else 100, 0.01)
    out["long32_fused_workers"] = len(set(inspect_pids(CHAIN_LONG).values()))
    destroy(CHAIN_LONG)
    shutil.rmtree(cache, ignore_errors=True)
    for k, v in out.items():
        log(f"  {k}: {v}")
    return out


# --------------------------------------------------------------------------
# Output

# (ratio key, title, format, nfvhost run, metric in that run)
ROWS = [("udp64_pps", "64 B UDP delivered (pps)", fmt_num, "nfvhost", "udp64_pps"),
        ("tcp_bps", "TCP (iperf3)", fmt_bps, "nfvhost", "tcp_bps"),
        ("rtt_median_us", "RTT median (us)", fmt_num, "nfvhost", "rtt_median_us"),
        ("rtt_p99_us", "RTT p99 (us)", fmt_num, "nfvhost", "rtt_p99_us"),
        ("udp64_pps_busy", "64 B UDP, busy_poll (pps)", fmt_num, "nfvhost_busy", "udp64_pps"),
        ("rtt_median_us_busy", "RTT median, busy_poll", fmt_num, "nfvhost_busy", "rtt_median_us"),
        ("rtt_p99_us_busy", "RTT p99, busy_poll (us)", fmt_num, "nfvhost_busy", "rtt_p99_us"),
        ("udp64_pps_adaptive", "64 B UDP, adaptive (pps)", fmt_num, "nfvhost_adaptive",
         "udp64_pps"),
        ("rtt_median_us_adaptive", "RTT median, adaptive", fmt_num, "nfvhost_adaptive",
         "rtt_median_us")]


def table(results):
    lines = []
    hdr = f"{'case':10} {'metric':26} {'kernel off':>12} {'kernel on':>12} {'nfvhost':>12} " \
          f"{'ratio':>7} {'goal':>6} {'met':>4}"
    lines += [hdr, "-" * len(hdr)]
    for c in results["cases"]:
        for key, title, f, run, metric in ROWS:
            koff, kon = (c[x].get(metric) for x in ("kernel_off", "kernel_default"))
            nv = c.get(run, {}).get(metric)
            r = c["ratios"].get(key)
            op, goal = CASE_GOALS.get(c["case"], {}).get(key, GOALS[key])
            met = "-" if r is None else ("yes" if (r >= goal if op == ">=" else r <= goal) else "no")
            lines.append(f"{c['case']:10} {title:26} {f(koff):>12} {f(kon):>12} {f(nv):>12} "
                         f"{'-' if r is None else f'{r:.2f}':>7} {op + str(goal):>6} {met:>4}")
        cpu = [f"{POLL_RUNS[run]} {c[run]['ping_worker_cpu_pct']:.1f} %" for run in POLL_RUNS
               if "ping_worker_cpu_pct" in c.get(run, {})]
        if cpu:
            lines.append(f"{c['case']:10} {'worker CPU while pinged 100/s: ' + ', '.join(cpu)}")
        r2 = c["ratios"].get("tcp_bps_vs_offloads_off")
        lines.append(f"{c['case']:10} {'TCP vs kernel offloads off':26} {'':>12} {'':>12} "
                     f"{'':>12} {'-' if r2 is None else f'{r2:.2f}':>7}")
    lines.append("ratio = nfvhost / kernel with default offloads (on), the state nfvhost "
                 "keeps its links in; 'kernel off' is TCP with every offload off, for reference.")
    d = results.get("deploy")
    if d:
        lines.append("")
        lines.append(f"deploy edge cold {d.get('edge_deploy_cold_s', 0):.2f} s, warm "
                     f"{d.get('edge_deploy_warm_s', 0):.2f} s; 32-VNF chain "
                     f"{d.get('long32_deploy_s', 0):.2f} s ({d.get('long32_workers')} workers, "
                     f"destroy {d.get('long32_destroy_s', 0):.2f} s)")
        rss = d.get("edge_worker_rss_kib") or {}
        lines.append("worker RSS (edge): " + ", ".join(f"{n} {v / 1024:.1f} MiB"
                                                       for n, v in rss.items() if v)
                     + f"; 32-VNF median {(d.get('long32_worker_rss_kib_median') or 0) / 1024:.1f} MiB")
        if "supervisor_idle_cpu_pct" in d:
            lines.append(f"supervisor idle CPU {d['supervisor_idle_cpu_pct']:.2f} % "
                         f"(RSS {(d.get('supervisor_rss_kib') or 0) / 1024:.1f} MiB); workers idle "
                         + ", ".join(f"{n} {v:.2f} %" for n, v in d["worker_idle_cpu_pct"].items()))
        lp = d.get("long32_ping")
        if lp:
            lines.append(f"ping through 32 wire VNFs: median {lp['rtt_median_us']:.0f} us, "
                         f"p99 {lp['rtt_p99_us']:.0f} us")
        lp = d.get("long32_fused_ping")
        if lp:
            lines.append(f"ping through 32 wire VNFs in one group "
                         f"({d.get('long32_fused_workers')} worker): median "
                         f"{lp['rtt_median_us']:.0f} us, p99 {lp['rtt_p99_us']:.0f} us "
                         f"(goal < 500 us)")
    return "\n".join(lines)


def svg(results, path):
    """A bar chart of the ratios, one group per case, drawn by hand."""
    bars = []
    for c in results["cases"]:
        for key, title, _, _, _ in ROWS:
            bars.append((c["case"], title, key, c["ratios"].get(key)))
    w, h, left, top, bottom = 1200, 460, 70, 50, 150
    plot_h = h - top - bottom
    vmax = max([2.0] + [b[3] * 1.1 for b in bars if b[3] is not None])
    bw = (w - left - 20) / max(1, len(bars))
    y = lambda v: top + plot_h - v / vmax * plot_h  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">nfvhost / kernel '
           f'({results["mode"]}, {results["when"]})</text>',
           f'<text x="{w / 2}" y="36" text-anchor="middle" fill="#555">throughput: higher is '
           f'better; RTT: lower is better; tick = goal</text>']
    for t in range(0, int(vmax * 2) + 1):
        v = t / 2
        out.append(f'<line x1="{left}" x2="{w - 20}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="{"#000" if v == 1 else "#ddd"}"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    colors = {"udp64_pps": "#4c72b0", "tcp_bps": "#55a868", "rtt_median_us": "#c44e52",
              "rtt_p99_us": "#dd8452", "udp64_pps_busy": "#8172b3",
              "rtt_median_us_busy": "#937860", "rtt_p99_us_busy": "#da8bc3",
              "udp64_pps_adaptive": "#8c8c8c", "rtt_median_us_adaptive": "#ccb974"}
    for i, (case, title, key, r) in enumerate(bars):
        x = left + i * bw + bw * 0.15
        if r is not None:
            out.append(f'<rect x="{x:.1f}" y="{y(min(r, vmax)):.1f}" width="{bw * 0.7:.1f}" '
                       f'height="{y(0) - y(min(r, vmax)):.1f}" fill="{colors[key]}"/>')
            out.append(f'<text x="{x + bw * 0.35:.1f}" y="{y(min(r, vmax)) - 4:.1f}" '
                       f'text-anchor="middle">{r:.2f}</text>')
        goal = CASE_GOALS.get(case, {}).get(key, GOALS[key])[1]
        out.append(f'<line x1="{x - 3:.1f}" x2="{x + bw * 0.7 + 3:.1f}" y1="{y(goal):.1f}" '
                   f'y2="{y(goal):.1f}" stroke="#000" stroke-dasharray="4 2"/>')
        lx, ly = x + bw * 0.35, y(0) + 10
        out.append(f'<text transform="translate({lx:.1f},{ly:.1f}) rotate(40)">'
                   f'{case}: {title}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="one quick run of each (CI)")
    ap.add_argument("--cases", default="router,edge,edge-fused",
                    help="comma list of router,edge,edge-fused")
    ap.add_argument("--as-shipped", action="store_true",
                    help="keep the chain files' resources (no CPU quota rewrite)")
    ap.add_argument("--runs", type=int, help="runs per measurement (median)")
    ap.add_argument("--datapath", default="",
                    help="more datapath keys for every nfvhost VNF, e.g. 'io: tpacket'")
    ap.add_argument("--pps", type=int, default=300000, help="offered load of 64 B frames")
    ap.add_argument("--no-deploy-figures", action="store_true",
                    help="skip deploy time / memory / idle CPU")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results"),
                    help="directory for latest.json and latest.svg")
    args = ap.parse_args()
    global AS_SHIPPED, EXTRA_DATAPATH
    AS_SHIPPED = args.as_shipped
    EXTRA_DATAPATH = args.datapath
    args.runs = args.runs or (1 if args.short else 3)
    args.tcp_seconds = 2 if args.short else 5
    args.udp_seconds = 1 if args.short else 4
    args.pings = 50 if args.short else 200
    args.idle_seconds = 1 if args.short else 5

    if os.geteuid() != 0:
        sys.exit("datapath.py: needs root (network namespaces)")
    for tool in ("ip", "iperf3", "trafgen", "nft", "ethtool", "ping"):
        if not shutil.which(tool):
            sys.exit(f"datapath.py: {tool} is not installed")
    if not os.path.exists(NFVHOST):
        sys.exit(f"datapath.py: build first: cargo build --release -p nfvhost && cargo vnfs "
                 f"({NFVHOST} is missing)")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    results = {"mode": "short" if args.short else "full",
               "when": time.strftime("%Y-%m-%d %H:%M:%S"),
               "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
               "git": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).strip(),
               "settings": {"runs": args.runs, "pps": args.pps, "datapath": args.datapath, "tcp_seconds": args.tcp_seconds,
                            "udp_seconds": args.udp_seconds, "pings": args.pings},
               "cases": []}
    broken = []
    tmp = tempfile.mkdtemp(prefix="nfvb-")
    leftover_cleanup()
    try:
        for case in args.cases.split(","):
            c = run_case(case, args, tmp)
            results["cases"].append(c)
            for who in ("kernel_default", *POLL_RUNS):
                if not c[who].get("rtt_median_us"):
                    broken.append(f"{case}: no ping replies through {who}")
        if not args.no_deploy_figures:
            results["deploy"] = run_deploy_figures(args, tmp)
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    results["table"] = table(results)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(results, f, indent=1)
    svg(results, os.path.join(args.out, "latest.svg"))
    print(f"# python3 benches/datapath.py {' '.join(sys.argv[1:])}")
    print(results["table"])
    log(f"wrote {os.path.join(args.out, 'latest.json')} and latest.svg")
    if broken:
        log("BROKEN: " + "; ".join(broken))
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()

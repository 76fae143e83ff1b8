#!/usr/bin/env python3
"""TAP port I/O: one system call per frame (read/write) against a batch per
io_uring_enter, in one run, on a router whose WAN link is `kind: tap`.

    python3 benches/tap_io.py [--rounds 2] [--pps 300000]   # as root

h1 (veth) -- lan [r1] wan -- (TAP) h2. For each mode (r1's `datapath: {
tap_io: ... }`: `read_write` or `io_uring`), alternating, ROUNDS times:
iperf3 TCP h1->h2 (TAP writes carry the data) and h2->h1 (-R: TAP reads
carry it), trafgen 64 B UDP at a fixed offered load h1->h2 and h2->h1, and
ping RTT; the worker's CPU time during each UDP flood. Prints medians per
mode. Uses benches/datapath.py's helpers; cleans up what it made.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import datapath as dp  # noqa: E402

CHAIN = "nfvbt"
PORT = 19467
MODES = ["read_write", "io_uring"]


def gen_chain(tmp, vnet, mode):
    text = f"""name: {CHAIN}
metrics: 127.0.0.1:{PORT}
defaults:
  resources: {{ memory: 64MiB, pids: 32, wasm_memory: 16MiB }}
hosts:
  h1:
    interfaces:
      eth0: {{ address: 10.0.1.10/24 }}
    gateway: 10.0.1.1
  h2:
    interfaces:
      tap0: {{ address: 10.0.2.10/24 }}
    gateway: 10.0.2.1
vnfs:
  r1:
    module: router
    ports: [lan, wan]
    resources: {{ cpu: 1.0 }}
    datapath: {{ offload: {'true' if vnet else 'false'}, tap_io: {mode} }}
    config:
      interfaces:
        lan: 10.0.1.1/24
        wan: 10.0.2.1/24
links:
  - [h1:eth0, r1:lan]
  - {{ a: r1:wan, b: h2:tap0, kind: tap }}
"""
    path = os.path.join(tmp, f"{CHAIN}-{mode}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def topo(reverse=False):
    h1, h2 = f"nfv-{CHAIN}-h1", f"nfv-{CHAIN}-h2"
    if reverse:
        return {"src": h2, "dst": h1, "src_if": "tap0", "dst_if": "eth0",
                "src_ip": "10.0.2.10", "dst_ip": "10.0.1.10", "gw_ip": "10.0.2.1"}
    return {"src": h1, "dst": h2, "src_if": "eth0", "dst_if": "tap0",
            "src_ip": "10.0.1.10", "dst_ip": "10.0.2.10", "gw_ip": "10.0.1.1"}


def tcp(t, seconds, reverse):
    srv = dp.spawn(["ip", "netns", "exec", t["dst"], "iperf3", "-s", "-1",
                    "-B", t["dst_ip"], "-p", "5298"])
    try:
        time.sleep(0.3)
        cmd = ["iperf3", "-c", t["dst_ip"], "-p", "5298", "-t", str(seconds), "-J"]
        if reverse:
            cmd.append("-R")
        out = dp.nsx(t["src"], *cmd, check=False, timeout=seconds + 30)
        import json
        try:
            return json.loads(out)["end"]["sum_received"]["bits_per_second"]
        except (ValueError, KeyError):
            return None
    finally:
        dp.stop(srv)


def udp64(t, pps, seconds, tmp, worker):
    import json
    dp.nsx(t["src"], "ping", "-c", "1", "-W", "1", t["dst_ip"], check=False)
    neigh = json.loads(dp.sh(["ip", "-n", t["src"], "-j", "neigh", "show", t["gw_ip"]]) or "[]")
    da = next((n["lladdr"] for n in neigh if n.get("lladdr")), None)
    if not da:
        return None
    sa = json.loads(dp.sh(["ip", "-n", t["src"], "-j", "link", "show", t["src_if"]]))[0]["address"]
    cfg = os.path.join(tmp, "udp64.cfg")
    with open(cfg, "w") as f:
        f.write("{ eth(da=%s, sa=%s, type=0x0800), ipv4(saddr=%s, daddr=%s, ttl=64), "
                "udp(sport=4000, dport=9), fill(0x00, 18) }\n"
                % (da, sa, t["src_ip"], t["dst_ip"]))
    gen = dp.spawn(["ip", "netns", "exec", t["src"], "trafgen", "--dev", t["src_if"], "--conf",
                    cfg, "--rate", f"{pps}pps", "--cpus", "1", "-C", "-n",
                    str(int(pps * (seconds + 2)))])
    try:
        time.sleep(0.5)
        rx0, _ = dp.link_stats(t["dst"], t["dst_if"])
        _, tx0 = dp.link_stats(t["src"], t["src_if"])
        c0 = dp.cpu_ticks(worker) if worker else None
        t0 = time.monotonic()
        time.sleep(seconds)
        rx1, _ = dp.link_stats(t["dst"], t["dst_if"])
        _, tx1 = dp.link_stats(t["src"], t["src_if"])
        c1 = dp.cpu_ticks(worker) if worker else None
        took = time.monotonic() - t0
    finally:
        dp.stop(gen, grace=0)
    time.sleep(1.0)
    hz = os.sysconf("SC_CLK_TCK")
    return {"pps": (rx1 - rx0) / took, "offered": (tx1 - tx0) / took,
            "cpu": (c1 - c0) / hz / took if c0 is not None else None}


def ping(t, count):
    import re
    out = dp.nsx(t["src"], "ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1", t["dst_ip"],
                 check=False, timeout=count * 0.01 + 30)
    rtts = sorted(float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", out))
    return statistics.median(rtts) if rtts else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pps", type=int, default=300000)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--offload", choices=["on", "off", "both"], default="both",
                    help="the chain's datapath offload (TAP with/without IFF_VNET_HDR)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tap_io.py: needs root")
    tmp = tempfile.mkdtemp(prefix="nfvb-")
    dp.sh([dp.NFVHOST, "destroy", "--cleanup", "--chain", CHAIN], check=False, timeout=60)
    offloads = {"on": [True], "off": [False], "both": [True, False]}[args.offload]
    rows = {}
    try:
        for vnet in offloads:
            for rnd in range(args.rounds):
                for mode in (MODES if rnd % 2 == 0 else MODES[::-1]):
                    dp.deploy(gen_chain(tmp, vnet, mode), CHAIN)
                    try:
                        worker = dp.inspect_pids(CHAIN).get("r1")
                        r = rows.setdefault((vnet, mode), {})
                        fwd, rev = topo(), topo(reverse=True)
                        r.setdefault("tcp_fwd", []).append(tcp(fwd, args.seconds, False))
                        r.setdefault("tcp_rev", []).append(tcp(fwd, args.seconds, True))
                        for name, t in (("udp_fwd", fwd), ("udp_rev", rev)):
                            u = udp64(t, args.pps, args.seconds, tmp, worker) or {}
                            r.setdefault(name, []).append(u.get("pps"))
                            r.setdefault(name + "_cpu", []).append(u.get("cpu"))
                            r.setdefault(name + "_offered", []).append(u.get("offered"))
                        r.setdefault("rtt", []).append(ping(fwd, 200))
                        dp.log(f"offload {vnet} {mode} round {rnd}: "
                               + ", ".join(f"{k} {v[-1]}" for k, v in r.items()))
                    finally:
                        dp.destroy(CHAIN)
    finally:
        dp.cleanup()
    print(f"# python3 benches/tap_io.py {' '.join(sys.argv[1:])}  "
          f"(medians of {args.rounds}; UDP offered {args.pps} pps, cpu = worker cores)")
    print(f"{'offload':8} {'mode':11} {'tcp h1>h2':>10} {'tcp h2>h1':>10} "
          f"{'udp64 h1>h2':>12} {'cpu':>5} {'udp64 h2>h1':>12} {'cpu':>5} {'rtt us':>7}")
    for (vnet, mode), r in rows.items():
        g = lambda k: med(r.get(k, []))  # noqa: E731
        f = lambda v, d=1e9, u="G": "-" if v is None else f"{v / d:.2f}{u}"  # noqa: E731
        print(f"{'on' if vnet else 'off':8} {mode:11} {f(g('tcp_fwd')):>10} {f(g('tcp_rev')):>10} "
              f"{f(g('udp_fwd'), 1e3, 'k'):>12} {f(g('udp_fwd_cpu'), 1, ''):>5} "
              f"{f(g('udp_rev'), 1e3, 'k'):>12} {f(g('udp_rev_cpu'), 1, ''):>5} "
              f"{f(g('rtt'), 1, ''):>7}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Charts of an `nfvhost bench` run: python3 benches/plot.py BENCH.json OUTDIR

`nfvhost bench --plot DIR` runs this (embedded in the binary) itself.
Writes throughput, latency and loss charts as SVG and PNG into OUTDIR and
prints their paths. Needs matplotlib (Debian: python3-matplotlib).
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def runs(report):
    """The report and, with --compare-kernel, the kernel's."""
    out = [report]
    if report.get("kernel"):
        out.append(report["kernel"])
    return out


def save(fig, outdir, name):
    paths = []
    for ext in ("svg", "png"):
        p = os.path.join(outdir, f"{name}.{ext}")
        fig.savefig(p, dpi=120, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def throughput(report, outdir):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in runs(report):
        sizes = [s["size"] for s in r["sizes"] if s.get("throughput")]
        if not sizes:
            continue
        tp = [s["throughput"] for s in r["sizes"] if s.get("throughput")]
        gen = [s["generator_max_pps"] for s in r["sizes"] if s.get("throughput")]
        for ax, scale, unit in ((ax1, lambda n, z: n / 1e6, "Mpps"),
                                (ax2, lambda n, z: n * z * 8 / 1e9, "Gb/s")):
            ax.plot(sizes, [scale(t["ndr_pps"], z) for t, z in zip(tp, sizes)], "o-",
                    label=f"{r['target']} NDR (0 loss)")
            ax.plot(sizes, [scale(t["pdr_pps"], z) for t, z in zip(tp, sizes)], "s--",
                    label=f"{r['target']} PDR ({r['settings']['loss_tolerance'] * 100:g} % loss)")
            if r is report:
                ax.plot(sizes, [scale(g, z) for g, z in zip(gen, sizes)], ":", color="grey",
                        label="generator max (plain veth; no line rate on veth)")
            ax.set_xlabel("frame size (bytes, FCS included)")
            ax.set_ylabel(f"throughput ({unit})")
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes)
            ax.set_xticklabels([str(s) for s in sizes])
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
    ax1.set_title("Frames per second by frame size")
    ax2.set_title("Bit rate by frame size")
    ax1.legend(fontsize=8)
    fig.suptitle(f"{report['target']} {report['from']} -> {report['to']}: RFC 2544 throughput")
    return save(fig, outdir, "throughput")


def latency(report, outdir):
    fig, ax = plt.subplots(figsize=(9, 4.5))
    keys = [("min_us", "min"), ("median_us", "median"), ("p99_us", "p99"),
            ("p999_us", "p99.9"), ("max_us", "max")]
    labels, series = [], {k: [] for k, _ in keys}
    for r in runs(report):
        for s in r["sizes"]:
            for load, i in s["latency"]:
                lat = r["trials"][i].get("latency")
                if not lat:
                    continue
                labels.append(f"{r['target']}\n{s['size']} B\n{load * 100:.0f} % NDR")
                for k, _ in keys:
                    series[k].append(lat[k])
    if not labels:
        plt.close(fig)
        return []
    x = range(len(labels))
    for k, name in keys:
        ax.plot(x, series[k], "o-", label=name)
    ax.set_yscale("log")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("one-way latency (µs, log scale)")
    ax.set_title("Latency percentiles by load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, outdir, "latency")


def loss(report, outdir):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    any_ = False
    for r in runs(report):
        for s in r["sizes"]:
            pts = [(load * 100, r["trials"][i]["loss_ratio"] * 100) for load, i in s["loss"]]
            if pts:
                any_ = True
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-",
                        label=f"{r['target']} {s['size']} B")
    if not any_:
        plt.close(fig)
        return []
    ax.set_xlabel("offered load (% of the generator's maximum)")
    ax.set_ylabel("frame loss (% of frames sent)")
    ax.set_title("Frame loss rate against offered load (RFC 2544 26.3)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, outdir, "loss")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        report = json.load(f)
    outdir = sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    for p in throughput(report, outdir) + latency(report, outdir) + loss(report, outdir):
        print(p, file=sys.stderr)


if __name__ == "__main__":
    main()

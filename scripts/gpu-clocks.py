#!/usr/bin/env python3
"""The card's clocks and power by stage of a GPU run.

    scripts/gpu-clocks.py REPORT.txt GPU-CLOCKS.csv

gpu-clocks.csv: run.sh's nvidia-smi samples (every 100 ms from the model benchmark to the summary:
timestamp, SM clock, memory clock, power, temperature, clock-event reasons as a bit mask). The
stages' start times come from report.txt's section lines ("== NAME (HH:MM:SS, N s)"). For each
stage with samples: the SM clock's median, 5th percentile and minimum (MHz), the power's median
and maximum (W), and the share of samples with the software power cap (bit 0x4) or a hardware or
thermal slowdown (0x8, 0x20, 0x40, 0x80) among the active reasons.
"""
import re
import sys
from datetime import datetime


def stages(report):
    """[(name, seconds since midnight UTC)] in order."""
    out = []
    for line in open(report, encoding="utf-8", errors="replace"):
        m = re.match(r"^== (.*) \((\d\d):(\d\d):(\d\d), \d+ s\)$", line.rstrip("\n"))
        if m:
            h, mi, se = int(m.group(2)), int(m.group(3)), int(m.group(4))
            out.append((m.group(1), h * 3600 + mi * 60 + se))
    return out


def samples(csv):
    """[(seconds since midnight, sm MHz, power W, reasons mask)]; rows that do not parse are skipped."""
    out = []
    for line in open(csv, encoding="utf-8", errors="replace"):
        f = [x.strip() for x in line.split(",")]
        if len(f) < 6:
            continue
        try:
            t = datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f")
            sm, power = float(f[1]), float(f[3])
            reasons = int(f[5], 16) if f[5].lower().startswith("0x") else int(f[5])
        except ValueError:
            continue
        out.append((t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6, sm, power, reasons))
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gpu-clocks.py REPORT.txt GPU-CLOCKS.csv")
    st, sa = stages(sys.argv[1]), samples(sys.argv[2])
    if not sa:
        print("no samples in", sys.argv[2])
        return
    print(f"{'stage':44} {'n':>5} {'SM MHz med':>10} {'p5':>6} {'min':>6} {'W med':>7} {'W max':>7} {'power cap':>9} {'slowdown':>8}")
    for i, (name, t0) in enumerate(st):
        t1 = st[i + 1][1] if i + 1 < len(st) else float("inf")
        xs = [s for s in sa if t0 <= s[0] < t1]
        if not xs:
            continue
        sm, w = [s[1] for s in xs], [s[2] for s in xs]
        cap = sum(1 for s in xs if s[3] & 0x4) / len(xs)
        slow = sum(1 for s in xs if s[3] & (0x8 | 0x20 | 0x40 | 0x80)) / len(xs)
        print(f"{name[:44]:44} {len(xs):5d} {pct(sm, 0.5):10.0f} {pct(sm, 0.05):6.0f} {min(sm):6.0f} {pct(w, 0.5):7.0f} {max(w):7.0f} {cap:9.0%} {slow:8.0%}")


if __name__ == "__main__":
    main()

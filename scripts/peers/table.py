#!/usr/bin/env python3
"""Prints the figures of one or more scripts/peers/run.sh reports as a Markdown table:
items/s at the median repetition, the slowest-fastest range, and the CPU share the peer got.
With --summary: one row per (peer, batch) over all reports: the median of the runs' medians, the
range of the runs' medians, and the median CPU share.
Usage: scripts/peers/table.py [--summary] target/peers/peers-*.json"""
import json
import statistics
import sys


def rows(report):
    ort, pt = report.get("onnxruntime"), report.get("pytorch")
    if ort:
        for r in ort["results"]:
            yield "ONNX Runtime %s Java, fp32" % ort["onnxruntime"], r
    if pt:
        for r in pt["results"]:
            name = "PyTorch %s %s" % (pt["torch"], "fp32" if r["precision"] == "fp32" else "bf16 autocast")
            yield name, r


def cell(r, key):
    if key + "_per_s" not in r:
        return "-"
    lo, hi = r[key + "_per_s_range"]
    share = r.get(key + "_cpu_share")
    return "%.1f (%.1f-%.1f; cpu %s)" % (r[key + "_per_s"], lo, hi, "?" if share is None else "%.2f" % share)


def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        sys.exit(f"table.py: cannot read {path}: {e}")


def summary(paths):
    groups = {}
    for path in paths:
        for name, r in rows(load(path)):
            groups.setdefault((name, r["batch"]), []).append(r)
    keys = ["image", "text77", "text_prompt"]
    print("| peer | batch | runs | images/s | 77-token texts/s | ImageNet prompts/s |")
    print("| --- | ---: | ---: | --- | --- | --- |")
    for (name, b), rs in groups.items():
        cells = []
        for k in keys:
            v = [r[k + "_per_s"] for r in rs if k + "_per_s" in r]
            sh = [r[k + "_cpu_share"] for r in rs if r.get(k + "_cpu_share") is not None]
            cells.append("-" if not v else "%.1f (%.1f-%.1f%s)" % (statistics.median(v), min(v), max(v),
                         "; cpu %.2f" % statistics.median(sh) if sh else ""))
        print("| %s | %d | %d | %s |" % (name, b, len(rs), " | ".join(cells)))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--summary":
        if len(args) < 2:
            sys.exit(__doc__)
        return summary(args[1:])
    if not args:
        sys.exit(__doc__)
    print("| run | peer | batch | images/s | 77-token texts/s | ImageNet prompts/s | load |")
    print("| --- | --- | ---: | --- | --- | --- | ---: |")
    for path in args:
        report = load(path)
        for name, r in rows(report):
            print("| %s | %s | %d | %s | %s | %s | %s |" % (report.get("date", path), name, r["batch"], cell(r, "image"),
                  cell(r, "text77"), cell(r, "text_prompt"), r.get("load_avg_1min", "?")))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds the GPU benchmark table: jclip (gpu-info --model-bench --json) beside the PyTorch peer
(peer.py --json) measured in the same run. Usage: gpu-compare.py JCLIP.json PEER.json > table.md"""
import json, sys


def main():
    ours = json.load(open(sys.argv[1]))
    peer = json.load(open(sys.argv[2]))
    best_peer = {}
    for r in peer["results"]:
        if "error" in r:
            continue
        for k in ("image_per_s", "text77_per_s", "text_prompt_per_s"):
            key = (r["batch"], k)
            best_peer.setdefault(key, {})[r["variant"]] = r.get(k)
    print(f"jclip on {ours['device']} vs {peer['gpu']} torch {peer['torch']} transformers {peer['transformers']} ({peer['dtype']}, {peer['attn_implementation']})\n")
    print("| jclip config | batch | images/s | vs eager | vs compile | texts/s (77) | vs eager | prompts/s | vs eager |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in ours["results"]:
        cfg = r["precision"] + ("+flash" if r["flash_attention"] else "") + (" " + r["gemm"] if "gemm" in r else "") \
            + (" graph" if r.get("cuda_graph") else "")
        if "error" in r or "image_per_s" not in r or "text77_per_s" not in r:
            # a failed configuration (or a row cut short): say so instead of a number
            print(f"| {cfg} | {r.get('batch', '-')} | failed: {r.get('error', 'incomplete')[:80]} | | | | | | |")
            continue
        b = r["batch"]

        def ratio(k, variant):
            p = best_peer.get((b, k), {}).get(variant)
            return f"{r[k] / p:.2f}x" if p and r.get(k) else "-"

        print(f"| {cfg} | {b} | {r['image_per_s']:,.0f} | {ratio('image_per_s', 'eager')} | {ratio('image_per_s', 'compile')} | "
              f"{r['text77_per_s']:,.0f} | {ratio('text77_per_s', 'eager')} | "
              f"{r.get('text_prompt_per_s', 0):,.0f} | {ratio('text_prompt_per_s', 'eager')} |")


if __name__ == "__main__":
    main()

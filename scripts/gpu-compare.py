#!/usr/bin/env python3
"""Builds the GPU benchmark table: jclip (gpu-info --model-bench --json) beside the PyTorch peer
(peer.py --json) measured in the same run. Usage: gpu-compare.py JCLIP.json PEER.json [BENCH-GEMM.txt] > table.md,
or gpu-compare.py --kernels BENCH-GEMM.txt for the kernel tables alone
(the optional third file, gpu-info --gemm-bench's output, adds the fused-LINEAR and attention-kernel tables
and the bf16 GEMM peak for the goals table)

The tower comparison uses jclip's resident rows (inputs already on the device, the forward pass
alone timed), as the peer draws its inputs on the device; jclip's pipelined images/s (a stream of
batches, each uploaded while the previous one computes) and per-call images/s (upload, compute,
read, one after the other) stand beside them. Files from before the resident rows existed are
compared on their per-call rows, and the header says so.

A ratio is printed only where the two rows are the same work: the same batch and the same
precision (the peer runs fp16; jclip's bf16 and fp32 rows get none) and, for the prompt column,
the same prompt length (jclip's cut against the peer's padding; a mismatch is flagged). At batch 1
and 32 the peer launches every kernel from Python (eager, and torch.compile in its default mode,
which replays no CUDA graph) where jclip's "graph" rows replay one: those ratios measure launch
overhead more than kernels (the issue's ratio goals are at batch 1024)."""
import json, sys


def main():
    ours = json.load(open(sys.argv[1]))
    peer = json.load(open(sys.argv[2]))
    best_peer = {}
    peer_prompt_len = {}  # batch -> the peer's padded prompt length
    for r in peer["results"]:
        if "error" in r:
            continue
        for k in ("image_per_s", "text77_per_s", "text_prompt_per_s"):
            key = (r["batch"], k)
            best_peer.setdefault(key, {})[r["variant"]] = r.get(k)
        if "prompt_padded_len" in r:
            peer_prompt_len[r["batch"]] = r["prompt_padded_len"]
    peer_precision = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(peer.get("dtype"), peer.get("dtype"))
    resident = any("image_resident_per_s" in r for r in ours["results"])
    print(f"jclip on {ours['device']} vs {peer['gpu']} torch {peer['torch']} transformers {peer['transformers']} ({peer['dtype']}, {peer['attn_implementation']})\n")
    if resident:
        print("Towers: jclip resident (inputs on the device, forward pass alone) vs the peer; "
              "pipelined and per-call images/s include the uploads.\n")
    else:
        print("Towers: jclip per call (uploads included; this file has no resident rows) vs the peer.\n")
    print("Ratios only where the rows are the same work (same batch and precision; prompts of the same length). "
          "At batch 1 and 32 the peer launches every kernel from Python (torch.compile's default mode replays no "
          "CUDA graph) where jclip's graph rows replay one: those ratios measure launch overhead more than kernels.\n")
    print("| jclip config | batch | images/s | vs eager | vs compile | pipelined images/s | per-call images/s "
          "| texts/s (77) | vs eager | vs compile | prompts/s | vs eager | vs compile |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in ours["results"]:
        cfg = r["precision"] + ("+flash" if r["flash_attention"] else "") + (" " + r["gemm"] if "gemm" in r else "") \
            + (" graph" if r.get("cuda_graph") else "")
        if "error" in r or "image_per_s" not in r or "text77_per_s" not in r:
            # a failed configuration (or a row cut short): say so instead of a number
            print(f"| {cfg} | {r.get('batch', '-')} | failed: {r.get('error', 'incomplete')[:80]} | | | | | | | | | | |")
            continue
        b = r["batch"]

        def ours_of(k):
            # the resident figure of a peer column, where this file has it
            return r.get(k.replace("_per_s", "_resident_per_s")) if resident else r.get(k)

        same_precision = same_work_precision(r, peer_precision)
        # the prompt rows compare only where jclip's cut equals the peer's padded length
        len_ours, len_peer = r.get("prompt_len"), peer_prompt_len.get(b)
        prompt_mismatch = len_ours is not None and len_peer is not None and len_ours != len_peer

        def ratio(k, variant):
            p = best_peer.get((b, k), {}).get(variant)
            v = ours_of(k)
            if not (p and v and same_precision):
                return "-"
            if k == "text_prompt_per_s" and prompt_mismatch:
                return f"{v / p:.2f}x (jclip {len_ours} tokens, peer {len_peer}: not the same work)"
            return f"{v / p:.2f}x"

        def num(v):
            return f"{v:,.0f}" if v else "-"

        print(f"| {cfg} | {b} | {num(ours_of('image_per_s'))} | {ratio('image_per_s', 'eager')} | {ratio('image_per_s', 'compile')} | "
              f"{num(r.get('image_pipelined_per_s'))} | {num(r.get('image_per_s'))} | "
              f"{num(ours_of('text77_per_s'))} | {ratio('text77_per_s', 'eager')} | {ratio('text77_per_s', 'compile')} | "
              f"{num(ours_of('text_prompt_per_s'))} | {ratio('text_prompt_per_s', 'eager')} | {ratio('text_prompt_per_s', 'compile')} |")

    split_table(ours, best_peer, peer_precision)
    upload_table(ours)

    # The whole ImageNet prompt set (model bench "prompt_set", peer "prompt_set"): prompts/s.
    ps, pp = ours.get("prompt_set"), peer.get("prompt_set")
    if ps or pp:
        print("\nText tower over the whole ImageNet prompt set (zero-shot class embeddings), batch "
              f"{(ps or pp).get('batch')}, prompts/s (tokens per prompt after padding):\n")
        print("jclip resident: every batch's tokens on the device beforehand, the features read after the timing, as the "
              "peer times its own; pipelined: as Clip.encodeText runs, uploads and reads included; serial (files before "
              "session 20): one batch after the other, uploads and reads included.\n")
        print("| order | PyTorch eager | jclip, resident | ratio | jclip, pipelined | ratio | jclip, serial | ratio |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

        def cell(d, order, way=""):
            key = f"{order}{way}_per_s"
            if not d or "error" in d or key not in d:
                return "-", None
            # pipelined and resident must give the same features; where they do not, neither figure counts
            same = "" if d.get(f"{order}_pipelined_same_features", True) or way not in ("_pipelined", "_resident") else " (features differ!)"
            return f"{d[key]:,.0f} ({d[order + '_tokens_per_prompt']:.2f}){same}", d[key]

        def line(label, jorder, porder):
            b, bv = cell(pp, porder)
            cells = []
            for way in ("_resident", "_pipelined", ""):
                a, av = cell(ps, jorder, way)
                cells += [a, f"{av / bv:.2f}x" if av and bv else "-"]
            print(f"| {label} | {b} | " + " | ".join(cells) + " |")
        for order in ("given_order", "by_length"):
            line(order.replace("_", " "), order, order)
        line("not like for like: jclip sorted by length (Clip.encodeText's batching), PyTorch in the given order",
             "by_length", "given_order")

    # Where one forward pass at batch 1024 goes (model bench "profile"): ms by node, one column a
    # configuration, per tower.
    prof = [p for p in ours.get("profile", []) if "ms_by_node" in p]
    for tower in sorted({p["tower"] for p in prof}):
        cols = [p for p in prof if p["tower"] == tower]
        names = []
        for p in cols:
            for k in p["ms_by_node"]:
                if k not in names:
                    names.append(k)
        names.sort(key=lambda k: -max(p["ms_by_node"].get(k, 0) for p in cols))
        heads = [profile_label(p) for p in cols]
        print(f"\nProfile, {tower} tower, batch {cols[0]['batch']}, ms per forward pass (node totals):\n")
        print("| node | " + " | ".join(heads) + " |")
        print("| --- |" + " ---: |" * len(cols))
        print("| total | " + " | ".join(f"{sum(p['ms_by_node'].values()):.2f}" for p in cols) + " |")
        if any("pass_ms" in p for p in cols):
            print("| whole pass, kernels back to back | " + " | ".join(f"{p['pass_ms']:.2f}" if "pass_ms" in p else "-" for p in cols) + " |")
            print("| host time to launch the pass | " + " | ".join(f"{p['pass_host_ms']:.2f}" if "pass_host_ms" in p else "-" for p in cols) + " |")
        if any("batch1_launched_ms" in p for p in cols):
            print("| batch 1 without a CUDA graph, ms a pass | " + " | ".join(f"{p['batch1_launched_ms']:.3f}" if "batch1_launched_ms" in p else "-" for p in cols) + " |")
            print("| of it, queueing the launches | " + " | ".join(f"{p['batch1_host_ms']:.3f}" if "batch1_host_ms" in p else "-" for p in cols) + " |")
        for k in names:
            if max(p["ms_by_node"].get(k, 0) for p in cols) < 0.05:
                continue
            print(f"| {k} | " + " | ".join(f"{p['ms_by_node'].get(k, 0):.3f}" for p in cols) + " |")

    # Other image towers (model bench "architectures").
    arch = ours.get("architectures", [])
    if arch:
        print("\nOther image towers (random weights, fp16, flash, cuBLASLt, CUDA graph):\n")
        print("| model | px | batch | images/s resident | ms a batch | images/s per call |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for a in arch:
            if "error" in a or "image_resident_per_s" not in a:
                print(f"| {a.get('model')} | | | failed: {a.get('error', 'incomplete')[:80]} | | |")
                continue
            r = a["image_resident_per_s"]
            print(f"| {a['model']} | {a['resolution']} | {a['batch']} | {r:,.0f} | {1e3 * a['batch'] / r:.2f} | {a['image_per_s']:,.0f} |")

    gemm_lines = open(sys.argv[3]).read().splitlines() if len(sys.argv) > 3 else []
    goals(ours, peer, best_peer, gemm_lines)
    if gemm_lines:
        kernel_tables(gemm_lines)


def same_work_precision(r, peer_precision):
    """Whether jclip's row ran in the peer's precision: a ratio needs the same work."""
    return str(r.get("precision")).lower() == str(peer_precision).lower()


def upload_table(ours):
    """Where a batch's pixels spend their time on the way in (session 22: the model bench's
    "pixels_*_ms", each half of the pinned upload path timed alone, once per batch), beside the
    default rows' resident and pipelined milliseconds per batch: whether the pipelined stream is
    bound by the host copy or the DMA rather than by the model, and what rounding the pixels to fp16
    on the host (half the bytes over the bus) would take instead."""
    rows, seen = [], set()
    # a CUDA-graph row where there is one (the launch rows at batch 1 and 32 have no pipelined figure)
    for graph in (True, False):
        for r in ours["results"]:
            if "pixels_host_copy_ms" not in r or r.get("config") or r["batch"] in seen or "error" in r \
                    or bool(r.get("cuda_graph")) != graph:
                continue
            seen.add(r["batch"])
            rows.append(r)
    if not rows:
        return
    rows.sort(key=lambda r: r["batch"])
    print("\nThe pixels' way in, ms per batch (each part timed alone; resident and pipelined from the same row; "
          "pipelined, rounded on the host: the backend with -Djclip.cuda.inputCast=host, and its features against the "
          "device cast's):\n")
    print("| batch | resident | pipelined | host copy to pinned | DMA (GB/s) | fp16: host rounding | fp16: DMA "
          "| pipelined, rounded on the host (features off by) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def per_batch(r, k):
        v = r.get(k)
        return f"{1e3 * r['batch'] / v:.2f}" if v else "-"

    def host_cast(r):
        if not r.get("image_pipelined_host_cast_per_s"):
            return "-"
        err = r.get("image_host_cast_error")
        return f"{per_batch(r, 'image_pipelined_host_cast_per_s')} ({err:.1e})" if isinstance(err, (int, float)) else \
            f"{per_batch(r, 'image_pipelined_host_cast_per_s')} ({err})"
    for r in rows:
        b = r["batch"]
        dma = r.get("pixels_pinned_dma_ms")
        gbs = f" ({4 * 3 * 224 * 224 * b / (dma * 1e6):.1f})" if dma else ""
        print(f"| {b} | {per_batch(r, 'image_resident_per_s')} | {per_batch(r, 'image_pipelined_per_s')} | "
              f"{r['pixels_host_copy_ms']:.2f} | {dma:.2f}{gbs} | "
              f"{r['pixels_host_fp16_ms']:.2f} | {r['pixels_pinned_dma_fp16_ms']:.2f} | {host_cast(r)} |")


def split_table(ours, best_peer, peer_precision):
    """The rows that also timed the batch in parts (session 21): the parts one after the other on one
    compute stream, and alternately on two (two backends); beside the same row's whole batch and the
    peer's eager figure. A benchmark of whether smaller parts (activations nearer L2's size) or a
    second stream pay: Clip does not run a batch this way yet. Also the rows that timed two batches of
    their size at once ("lanes2"), on one stream and on two: what a second stream would give Clip's
    pipeline."""
    rows = []
    for r in ours["results"]:
        for key in ("split2", "split4", "lanes2"):
            if any(f"{t}_{key}_one_stream_per_s" in r for t in ("image", "text77")) or f"{key}_failed" in r:
                rows.append((r, key))
    if not rows:
        return
    print("\nThe batch in parts (part-batch CUDA graphs), resident: one after the other on one compute stream, and "
          "alternately on two (two backends), beside the same row's whole batch. Not yet what Clip does. A figure counts "
          "only where the parts' features agree with the whole batch's (16-bit tuning may change the last bits: within "
          "1e-2). \"2 batches\": two batches of the row's size, each its own inputs, at once (what a second stream would "
          "give Clip's pipeline); \"vs whole\" there is against the row's one batch, and the two streams' features "
          "are checked against the one stream's.\n")
    print("| jclip config | batch | parts | images/s whole | one stream | vs whole | two streams | vs whole | best vs eager "
          "| texts/s (77) whole | one stream | vs whole | two streams | vs whole | best vs eager | features vs whole, images / texts |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r, key in rows:
        cfg = r["precision"] + ("+flash" if r["flash_attention"] else "") + " " + r["gemm"]
        parts = "2 batches" if key == "lanes2" else key[len("split"):]
        if f"{key}_failed" in r:
            print(f"| {cfg} | {r['batch']} | {parts} | failed: {r[f'{key}_failed'][:80]} |" + " |" * 12)
            continue
        same_precision = same_work_precision(r, peer_precision)
        cells, errors = [], []
        for tower, k in (("image", "image_per_s"), ("text77", "text77_per_s")):
            whole = r.get(f"{tower}_resident_per_s")
            if f"{tower}_{key}_one_stream_per_s" not in r:  # the tuned-text rows time the texts alone
                cells += [f"{whole:,.0f}" if whole else "-"] + ["-"] * 5
                errors.append("-")
                continue
            one, two = r[f"{tower}_{key}_one_stream_per_s"], r[f"{tower}_{key}_two_streams_per_s"]
            err = float(r[f"{tower}_{key}_error"])  # Jackson writes NaN as the string "NaN"
            errors.append(f"{err:.1e}")
            agree = err <= 1e-2  # false for NaN
            eager = best_peer.get((r["batch"], k), {}).get("eager")

            def fig(v):
                return f"{v:,.0f}" if agree else f"({v:,.0f}: features differ)"

            def vs_whole(v):
                return f"{v / whole:.3f}x" if whole and agree else "-"
            cells += ([f"{whole:,.0f}" if whole else "-", fig(one), vs_whole(one), fig(two), vs_whole(two),
                       f"{max(one, two) / eager:.2f}x" if eager and agree and same_precision else "-"])
        print(f"| {cfg} | {r['batch']} | {parts} | " + " | ".join(cells) + f" | {' / '.join(errors)} |")


# ViT-B/32's image tower, GFLOP an image as jclip's bench counts them (the pooled graph).
VIT_B32_IMAGE_GFLOP = 8.297


def goals(ours, peer, best_peer, gemm_lines):
    """Issue 6's speed goals against this run's figures: jclip's default fp16 row (flash, cuBLASLt,
    CUDA graph; resident), and the tuned row where there is one."""
    import re
    def row(gemm, batch):
        for r in ours["results"]:
            if (str(r.get("precision")).lower() == "fp16" and r.get("flash_attention") and r.get("gemm") == gemm and r.get("cuda_graph")
                    and r.get("batch") == batch and "error" not in r):
                return r
        return None
    peak = None
    for line in gemm_lines:
        m = re.match(r"\[gemm\] bf16\s+8192 x\s+8192 x\s+8192:\s+([\d.]+) TFLOP/s", line)
        if m:
            peak = float(m.group(1))
    print("\nIssue 6's goals, this run:\n")
    print("| goal | jclip config | measured | met |")
    print("| --- | --- | ---: | --- |")
    # the defaults; the configuration this run's profile measured fastest on the image tower; and
    # where it differs, the one fastest on the 77-token text tower (batch 1024 only: the text goal)
    for gemm in ("cublaslt", "cublaslt tuned", "cublaslt tuned-text"):
        big, one = row(gemm, 1024), row(gemm, 1)
        if not big:
            continue
        if big.get("config"):  # the tuned rows' kernel choices (chosen from the same run's profile)
            print(f"| ({gemm.split()[-1]}: {big['config']}) | | | |")
        text_only = gemm.endswith("tuned-text")
        def vs(k, variant, want):
            p = best_peer.get((1024, k), {}).get(variant)
            v = big.get(k.replace("_per_s", "_resident_per_s"))
            return (f"{v / p:.2f}x", "yes" if v / p >= want else "no") if p and v else ("-", "-")
        for what, k, variant, want in (("image tower, batch 1024, 2x eager", "image_per_s", "eager", 2.0),
                                       ("image tower, batch 1024, 1.2x compiled", "image_per_s", "compile", 1.2),
                                       ("77-token texts, batch 1024, 2x eager", "text77_per_s", "eager", 2.0)):
            if text_only and not k.startswith("text"):
                continue
            m, ok = vs(k, variant, want)
            print(f"| {what} | {gemm} | {m} | {ok} |")
        if text_only:
            continue
        if peak:
            tflops = big["image_resident_per_s"] * VIT_B32_IMAGE_GFLOP / 1e3
            print(f"| 40% of the bf16 GEMM peak ({peak:.0f} TFLOP/s) | {gemm} | {tflops:.0f} TFLOP/s, {100 * tflops / peak:.0f}% | "
                  f"{'yes' if tflops >= 0.4 * peak else 'no'} |")
        if one and one.get("image_per_s"):
            ms = 1e3 / one["image_per_s"]
            print(f"| batch 1 under 1 ms with CUDA graphs (a call, uploads included) | {gemm} | {ms:.3f} ms | {'yes' if ms < 1 else 'no'} |")
    ps, pp = ours.get("prompt_set"), peer.get("prompt_set")
    if ps and pp and "error" not in ps and "error" not in pp:
        for order in ("given_order", "by_length"):
            for way, words in (("_resident", "resident, as the peer"), ("_pipelined", "pipelined as Clip.encodeText"), ("", "serial")):
                if f"{order}{way}_per_s" in ps and f"{order}_per_s" in pp:
                    if way and not ps.get(f"{order}_pipelined_same_features", True):
                        continue  # not a figure: the pipelined and resident (serial before session 20) passes' features differ
                    r = ps[f"{order}{way}_per_s"] / pp[f"{order}_per_s"]
                    print(f"| ImageNet prompt set, 2x eager, both {order.replace('_', ' ')} | defaults, {words} | {r:.2f}x | "
                          f"{'yes' if r >= 2 else 'no'} |")


def profile_label(p):
    """A profile row's configuration in a few words (the fields of runs 1-6 and of run 7 on)."""
    ln = p.get("layernorm") or ("vector" if p.get("vector_layernorm") else "plain")
    v = p.get("flash_v") or ("keys" if p.get("flash_v_by_key") else "rows")
    return ("fp16" + ("+flash" if p["flash_attention"] else " wmma") + f" LN-{ln}"
            + ("" if v == "rows" else f" V-{v}")
            + (" 4-blocks" if p.get("flash_four_blocks") else "")
            + (" fit-rows" if p.get("flash_fit_rows") else "")
            + (" pipelined" if p.get("flash_pipelined") else "")
            + (" staged" if p.get("flash_staged") else "")
            + (" pooled" if p.get("pooled_attention") else "")
            + (" vec-glue" if p.get("vector_glue") else "")
            + ((" sm90-" + p["fused_linear"] + "-" + (p.get("fused_linear_scope") or ("all" if p.get("fused_linear_all") else "c_fc")))
               if p.get("fused_linear") else "")
            + (" tuned-cuBLASLt" if p.get("gemm_tuned") else "")
            + (f" c_fc-chunks-{p['act_chunk_mb']}MB" if p.get("act_chunk_mb") else "")
            + (f" LN-folded-{p['ln_fold']}" if p.get("ln_fold") else "")
            + (" TMA-store" if p.get("gemm_store") == "tma" else "")
            + (" searched-cuBLASLt" if p.get("gemm_searched") else "")
            + (" reversed-flash" if p.get("flash_reversed") else "")
            + (" reversed-activation" if p.get("activation_reversed") else "")
            + (" lean-flash" if p.get("flash_lean") == "on" else " lean-flash-exp2" if p.get("flash_lean") == "exp2" else ""))


def kernel_tables(lines):
    """The [linear] rows (gemm_sm90's schedules against the default path) and the [attention] rows
    of gpu-info --gemm-bench, as tables: one row a shape, one column a method."""
    import re
    linear, attention = {}, {}
    for line in lines:
        # the precision as CudaGemmBench prints it (fp16; run 8's file), or upper case
        m = re.match(r"\[linear\] (.+?) ((?i:fp16|bf16|fp32))\s+(\d+) x\s+(\d+) x\s+(\d+) (.+?)\s+([\d.]+) ms\s+([\d.]+) TFLOP/s", line)
        if m:
            shape = f"{m.group(1).strip()} {m.group(2).lower()} {m.group(3)}x{m.group(4)}x{m.group(5)}"
            linear.setdefault(shape, {})[m.group(6).strip()] = f"{float(m.group(7)):.3f} ({float(m.group(8)):.0f})"
        m = re.match(r"\[attention\] (\S+(?: \S+)?)\s+B=\s*(\d+) N=\s*(\d+) H=\s*(\d+)( causal)?\s*:\s+([\d.]+) ms", line)
        if m:
            shape = f"B={m.group(2)} N={m.group(3)} H={m.group(4)}{' causal' if m.group(5) else ''}"
            attention.setdefault(shape, {})[m.group(1)] = f"{float(m.group(6)):.3f}"
    table("LINEARs at batch-1024 shapes, ms (TFLOP/s of the product)", linear)
    tuned = [line[len("[tune] "):].rstrip() for line in lines if line.startswith("[tune] ")]
    if tuned:
        print("\ncuBLASLt tuning (each problem's candidates, the heuristic's first against the fastest):\n")
        for t in tuned:
            print("- " + t)
    table("Attention kernels, ms a call", attention)


def table(title, cells):
    """cells {row: {column: text}} as a markdown table, columns in order of first appearance."""
    if not cells:
        return
    columns = []
    for v in cells.values():
        for k in v:
            if k not in columns:
                columns.append(k)
    print(f"\n{title}:\n")
    print("| shape | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for row, v in cells.items():
        print(f"| {row} | " + " | ".join(v.get(k, "-") for k in columns) + " |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--kernels":
        kernel_tables(open(sys.argv[2]).read().splitlines())
    else:
        main()

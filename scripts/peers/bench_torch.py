#!/usr/bin/python3
"""The PyTorch peer of jclip's CPU benchmark: openai/CLIP's ViT-B/32 towers (clip_vit.py, the same
seeded random weights as the ONNX export) in PyTorch 1.13 eager mode, float32 and bf16 autocast
(torch.autocast("cpu", dtype=torch.bfloat16): linear/matmul/conv in bf16 through oneDNN, LayerNorm in
fp32 as the reference does), on a fixed number of threads.

Per batch size: images/s (random pixels), 77-token texts/s, and ImageNet-template prompts/s (the
prompts of prompts.json in batches of B consecutive prompts, each batch padded with 0 to its longest
prompt; one repetition is a pass over all of them). Timing: warm-up, then the median of repetitions,
with the spread (slowest and fastest repetition). Prints one JSON object per measurement and writes
the whole report to --json.

Usage: /usr/bin/python3 scripts/peers/bench_torch.py [--precision fp32,bf16] [--batch 1,8,32]
       [--threads 2] [--peers target/peers] [--json FILE]
"""
import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

torch = None  # imported in main(), after OMP_WAIT_POLICY is settled (libgomp reads it once)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def check_outputs(visual, text, peers):
    """Sanity check that the rebuilt model is the exported one: same features as export time."""
    path = os.path.join(peers, "export.json")
    if not os.path.isfile(path):
        return None
    # The check file is safetensors; torch alone reads it via the header (no extra package).
    import struct
    with open(os.path.join(peers, "check.safetensors"), "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    def get(name):
        h = header[name]
        a, b = h["data_offsets"]
        dt = {"F32": torch.float32, "I64": torch.int64}[h["dtype"]]
        return torch.frombuffer(bytearray(data[a:b]), dtype=dt).reshape(h["shape"])
    with torch.inference_mode():
        ei = visual(get("pixels"))
        et = text(get("tokens"))
    rel = lambda a, b: float((a - b).norm() / b.norm())
    return {"image_rel_err": rel(ei, get("image_features")), "text_rel_err": rel(et, get("text_features"))}


def blas_library():
    """Which BLAS this process loaded: Debian's torch calls libblas.so.3, which is whatever the
    alternatives system points at (the reference BLAS is ~10x slower than OpenBLAS)."""
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "blas" in line.lower()}
        return sorted(os.path.realpath(p) for p in libs)
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peers", default=os.path.join(ROOT, "target", "peers"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--spin", action="store_true",
                    help="leave OpenMP's default busy-waiting on (default: OMP_WAIT_POLICY=PASSIVE unless set)")
    args = ap.parse_args()
    # On a machine shared with other jobs, OpenMP threads that spin at barriers steal the core their
    # partner needs and a call can take 10x longer; sleeping waits keep the figures meaningful.
    if not args.spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    global torch
    torch = common.need_torch()
    import clip_vit
    try:
        batches = [int(b) for b in args.batch.split(",")]
        assert batches and all(b >= 1 for b in batches)
    except (ValueError, AssertionError):
        sys.exit(f"bench_torch.py: --batch must be a comma-separated list of positive integers, got {args.batch!r}")
    precisions = args.precision.split(",")
    for p in precisions:
        if p not in ("fp32", "bf16"):
            sys.exit(f"bench_torch.py: unknown precision {p!r} (fp32 or bf16)")
    if "bf16" in precisions and not torch.backends.mkldnn.is_available():
        sys.exit("bench_torch.py: bf16 needs PyTorch built with oneDNN (mkldnn); this one is not")
    prompts = common.load_prompts(os.path.join(args.peers, "prompts.json"))["tokens"]

    torch.set_num_threads(args.threads)
    visual, text = clip_vit.build(args.seed)
    check = check_outputs(visual, text, args.peers)
    if check and max(check.values()) > 1e-4:
        sys.exit(f"bench_torch.py: the rebuilt model differs from the exported one ({check}); "
                 "export again: scripts/peers/export_onnx.py --force")
    blas = blas_library()
    if blas and not any("openblas" in p or "blis" in p or "mkl" in p for p in blas):
        print("bench_torch.py: WARNING: PyTorch's fp32 GEMMs run on the reference BLAS (%s), ~10x slower than "
              "OpenBLAS; install it: apt-get install -y libopenblas0-openmp" % blas, file=sys.stderr)
    report = {"peer": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
              "blas": blas,
              "python": platform.python_version(), "machine": platform.machine(),
              "model": "openai/CLIP ViT-B/32 structure, random weights (seed %d), eager" % args.seed,
              "check_vs_export": check, "prompt_count": len(prompts), "results": []}
    print(json.dumps({k: v for k, v in report.items() if k != "results"}), flush=True)

    for precision in precisions:
        for b in batches:
            pixels = torch.randn(b, 3, 224, 224)
            t77 = torch.tensor(common.text77(b), dtype=torch.int64)
            prompt_batches = [torch.tensor(common.pad_batch(prompts[i:i + b]), dtype=torch.int64)
                              for i in range(0, len(prompts), b)]

            def run(fn):
                def call():
                    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                        fn()
                return call

            row = {"precision": precision, "batch": b}
            timing = dict(min_reps=args.min_reps, min_seconds=args.min_seconds)
            for key, fn, items in [
                    ("image", lambda: visual(pixels), b),
                    ("text77", lambda: text(t77), b),
                    ("text_prompt", lambda: [text(t) for t in prompt_batches], len(prompts))]:
                r = common.time_calls(run(fn), items, args.threads, **timing)
                row[key + "_per_s"] = round(r["per_s"], 2)
                row[key + "_per_s_range"] = [round(r["per_s_min"], 2), round(r["per_s_max"], 2)]
                row[key + "_reps"] = r["reps"]
                row[key + "_cpu_share"] = round(r["cpu_share"], 2)
            row["load_avg_1min"] = round(os.getloadavg()[0], 2)
            row["prompt_padded_len_mean"] = round(sum(t.shape[1] for t in prompt_batches) / len(prompt_batches), 2)
            report["results"].append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(report, fh, indent=1)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Exports the peers' model: openai/CLIP's ViT-B/32 towers (clip_vit.py) with seeded random weights,
to two ONNX files, and prepares the inputs that every peer measures on.

Writes into OUT (default target/peers/, git-ignored):
  image.onnx          pixels  float32 [B,3,224,224] -> image_features float32 [B,512]   (dynamic B)
  text.onnx           tokens  int64   [B,L]         -> text_features  float32 [B,512]   (dynamic B, L <= 77)
  check.safetensors   inputs and PyTorch's fp32 outputs at a batch size and length other than the
                      export's, so a runtime can prove it computes the same thing with dynamic shapes
  prompts.json        ImageNet-template prompts (a seeded sample of templates x classes) and their
                      CLIP tokens (start ... end, unpadded), tokenized by `scripts/jclip tokenize`
  export.json         what was exported: versions, seed, geometry, sizes

Needs Debian's python3-torch (run with /usr/bin/python3) and, for the prompts, a JDK 25 for
scripts/jclip. Usage: /usr/bin/python3 scripts/peers/export_onnx.py [--out DIR] [--force]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

torch = common.need_torch()
import clip_vit  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def tokenize(prompts, jclip, vocab):
    """CLIP tokens of each prompt via jclip's tokenizer (tested for exact parity with the reference),
    cut after the end-of-text id: [49406, ids..., 49407]."""
    if not os.path.isfile(vocab):
        sys.exit(f"export_onnx.py: BPE vocabulary {vocab} is missing (pass --vocab bpe_simple_vocab_16e6.txt.gz)")
    lines = "".join(json.dumps(p) + "\n" for p in prompts)
    try:
        out = subprocess.run([jclip, "tokenize", "--vocab", vocab, "--truncate"], input=lines, text=True,
                             capture_output=True, check=False)
    except OSError as e:
        sys.exit(f"export_onnx.py: cannot run {jclip} ({e})")
    if out.returncode != 0:
        sys.exit(f"export_onnx.py: {jclip} tokenize failed (exit {out.returncode}):\n{out.stderr.strip()}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if len(rows) != len(prompts):
        sys.exit(f"export_onnx.py: {jclip} tokenize gave {len(rows)} rows for {len(prompts)} prompts")
    cut = []
    for p, r in zip(prompts, rows):
        if common.EOT not in r:
            sys.exit(f"export_onnx.py: no end-of-text token in the tokens of {p!r}: {r}")
        cut.append(r[: r.index(common.EOT) + 1])
    return cut


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "peers"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--prompts", type=int, default=64, help="how many prompts of the shuffled set to keep (default 64)")
    ap.add_argument("--reference", default=os.environ.get("JCLIP_REFERENCE", os.path.join(ROOT, "..", "shared", "clip-reference")))
    ap.add_argument("--vocab", default=None, help="default: REFERENCE/bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--jclip", default=os.path.join(ROOT, "scripts", "jclip"))
    ap.add_argument("--force", action="store_true", help="export again even if the files exist")
    args = ap.parse_args()
    if args.prompts < 1:
        sys.exit("export_onnx.py: --prompts must be at least 1")
    os.makedirs(args.out, exist_ok=True)
    names = ["image.onnx", "text.onnx", "check.safetensors", "prompts.json", "export.json"]
    if not args.force and all(os.path.isfile(os.path.join(args.out, n)) for n in names):
        with open(os.path.join(args.out, "export.json")) as fh:
            done = json.load(fh)
        if done.get("seed") == args.seed and done.get("opset") == args.opset and done.get("prompts") == args.prompts:
            print(f"export_onnx.py: {args.out} is up to date (use --force to export again)", file=sys.stderr)
            return

    # The prompt set: every ImageNet template with every class name, shuffled with a fixed seed
    # (the same order as scripts/gpu-peer.py), the first N kept.
    zs = os.path.join(args.reference, "zeroshot")
    try:
        with open(os.path.join(zs, "imagenet_classes.json"), encoding="utf-8") as fh:
            classes = json.load(fh)
        with open(os.path.join(zs, "imagenet_templates.json"), encoding="utf-8") as fh:
            templates = json.load(fh)
    except (OSError, ValueError) as e:
        sys.exit(f"export_onnx.py: cannot read the ImageNet classes/templates in {zs}: {e}")
    prompts = [t.format(c) for c in classes for t in templates]
    random.Random(0).shuffle(prompts)
    prompts = prompts[: args.prompts]
    tokens = tokenize(prompts, args.jclip, args.vocab or os.path.join(args.reference, "bpe_simple_vocab_16e6.txt.gz"))
    with open(os.path.join(args.out, "prompts.json"), "w", encoding="utf-8") as fh:
        json.dump({"source": "imagenet_templates x imagenet_classes, random.Random(0).shuffle, first %d" % len(prompts),
                   "prompts": prompts, "tokens": tokens}, fh, indent=0, ensure_ascii=False)

    t0 = time.time()
    visual, text = clip_vit.build(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with torch.no_grad():
        pixels = torch.randn(2, 3, 224, 224)
        toks = torch.tensor(common.text77(2), dtype=torch.int64)
        torch.onnx.export(visual, (pixels,), os.path.join(args.out, "image.onnx"), opset_version=args.opset,
                          input_names=["pixels"], output_names=["image_features"],
                          dynamic_axes={"pixels": {0: "batch"}, "image_features": {0: "batch"}})
        torch.onnx.export(text, (toks,), os.path.join(args.out, "text.onnx"), opset_version=args.opset,
                          input_names=["tokens"], output_names=["text_features"],
                          dynamic_axes={"tokens": {0: "batch", 1: "length"}, "text_features": {0: "batch"}})
        # Check inputs at shapes the export never saw: batch 3, prompts padded to their longest.
        gen = torch.Generator().manual_seed(args.seed + 1)
        cpix = torch.randn(3, 3, 224, 224, generator=gen)
        ctok = torch.tensor(common.pad_batch(tokens[:3]), dtype=torch.int64)
        check = {"pixels": cpix, "image_features": visual(cpix), "tokens": ctok, "text_features": text(ctok),
                 "tokens77": torch.tensor(common.text77(1), dtype=torch.int64)}
        check["text77_features"] = text(check["tokens77"])
    common.write_safetensors(os.path.join(args.out, "check.safetensors"), check,
                             {"torch": torch.__version__, "seed": args.seed})
    meta = {"model": "openai/CLIP ViT-B/32 structure (scripts/peers/clip_vit.py), random weights",
            "geometry": clip_vit.VIT_B32, "seed": args.seed, "opset": args.opset, "prompts": len(prompts),
            "torch": torch.__version__, "seconds": round(time.time() - t0, 1),
            "files": {n: os.path.getsize(os.path.join(args.out, n)) for n in ["image.onnx", "text.onnx"]}}
    with open(os.path.join(args.out, "export.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    print(f"export_onnx.py: wrote {args.out} ({meta['seconds']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()

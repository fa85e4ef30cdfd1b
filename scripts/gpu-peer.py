#!/usr/bin/env python3
"""The PyTorch peer for jclip's GPU benchmark (issue: CUDA backend).

HuggingFace transformers CLIPModel built from a default CLIPConfig (ViT-B/32 geometry: vision width
768, 12 layers, patch 32, 224 px; text width 512, 12 layers), random weights, fp16, SDPA attention,
eager and (unless --no-compile) torch.compile, at the given batch sizes, for
  - the image tower (get_image_features on random pixels),
  - the text tower on 77-token inputs,
  - the text tower on ImageNet-template prompts padded to the longest prompt in each batch,
  - (eager) the text tower over all 80,000 ImageNet prompts (1000 classes x 80 templates) at batch
    1024: in the given order, each batch padded to its longest prompt, and sorted by length first
    (what a careful PyTorch user can do too); tokenization excluded.
Timing: CUDA events, warm-up, then the median of repetitions; throughput in items/s.
Runs on the GPU machine only (it has PyTorch and transformers); writes one JSON file.
"""
import argparse, json, statistics, time, os, sys

import torch


def median_ms(fn, min_reps=5, min_seconds=0.5):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < min_reps or time.perf_counter() < t_end:
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
        if len(times) >= 200:
            break
    return statistics.median(times), min(times), max(times)


def features(out):
    if torch.is_tensor(out):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        if getattr(out, name, None) is not None:
            return getattr(out, name)
    return out[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--batches", default="1,32,256,1024")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-batches", default=None, help="batch sizes for torch.compile (default: all)")
    ap.add_argument("--full-batch", type=int, default=1024, help="batch size for the whole ImageNet prompt set (0: skip it)")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    import transformers
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    torch.manual_seed(0)
    dev = "cuda"
    config = CLIPConfig()
    try:
        model = CLIPModel._from_config(config, attn_implementation="sdpa", torch_dtype=torch.float16)
    except TypeError:
        model = CLIPModel._from_config(config, attn_implementation="sdpa", dtype=torch.float16)
    model = model.to(dev).eval()
    attn = getattr(model.config, "_attn_implementation", "?")
    result = {
        "torch": torch.__version__, "transformers": transformers.__version__, "gpu": torch.cuda.get_device_name(0),
        "attn_implementation": attn, "dtype": "float16", "results": [],
    }
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {result['gpu']}, attention {attn}", flush=True)

    tok = CLIPTokenizer(os.path.join(args.reference, "models/vit-b32-tiny/hf/vocab.json"),
                        os.path.join(args.reference, "models/vit-b32-tiny/hf/merges.txt"))
    classes = json.load(open(os.path.join(args.reference, "zeroshot/imagenet_classes.json")))
    templates = json.load(open(os.path.join(args.reference, "zeroshot/imagenet_templates.json")))
    # classes x templates in this order: jclip's benchmark (gpu-info --model-bench) takes the same
    # first `batch` prompts, so both measure the same texts
    prompts = [t.format(c) for c in classes for t in templates]

    def image_fn(m):
        return lambda px: features(m.get_image_features(pixel_values=px))

    def text_fn(m):
        return lambda ids, mask: features(m.get_text_features(input_ids=ids, attention_mask=mask))

    # One compiled callable a tower sees two shapes a batch size (77 tokens, the prompts' length):
    # in `full` mode 8 shapes, dynamo's default limit of recompilations, past which it would run
    # eager without a word. Raise the limit (its name changed across versions).
    # (imported under another name: "import torch._dynamo" here would make torch a local name of
    # main() and its first use above fail)
    try:
        import torch._dynamo as _dynamo
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(_dynamo.config, name):
                setattr(_dynamo.config, name, max(64, getattr(_dynamo.config, name)))
    except Exception as e:  # a torch without dynamo: its compile rows fail and say so
        print(f"torch._dynamo: {type(e).__name__}: {e}", flush=True)
    # torch.compile(model) compiles forward() alone: get_*_features on the wrapper would run eager.
    # So each tower's feature function is compiled itself (static shapes: one graph per batch size).
    compiled_image = torch.compile(image_fn(model), dynamic=False)
    compiled_text = torch.compile(text_fn(model), dynamic=False)
    variants = [("eager", image_fn(model), text_fn(model))]
    if not args.no_compile:
        variants.append(("compile", compiled_image, compiled_text))

    # The whole prompt set (zero-shot class embeddings), eager, batch --full-batch: run after the
    # eager rows and before torch.compile, so that a run cut short by its time limit has it.
    def prompt_set():
        if args.full_batch > 0:
            row = {"variant": "eager", "batch": args.full_batch, "prompt_set": len(prompts)}
            try:
                t0 = time.perf_counter()
                try:  # the Rust tokenizer: the Python one takes tens of seconds over 80,000 prompts
                    from transformers import CLIPTokenizerFast
                    fast = CLIPTokenizerFast(os.path.join(args.reference, "models/vit-b32-tiny/hf/vocab.json"),
                                             os.path.join(args.reference, "models/vit-b32-tiny/hf/merges.txt"))
                except Exception:
                    fast = tok
                ids = fast(prompts)["input_ids"]  # unpadded, with start and end of text
                row["tokenize_s"] = time.perf_counter() - t0
                g = text_fn(model)

                def run_set(order):
                    batches_ = []
                    for s0 in range(0, len(order), args.full_batch):
                        part = [ids[i] for i in order[s0:s0 + args.full_batch]]
                        n = max(len(x) for x in part)
                        t = torch.zeros(len(part), n, dtype=torch.long)
                        m = torch.zeros(len(part), n, dtype=torch.long)
                        for r, x in enumerate(part):
                            t[r, :len(x)] = torch.tensor(x)
                            m[r, :len(x)] = 1
                        batches_.append((t.to(dev), m.to(dev)))
                    tokens = sum(t.numel() for t, _ in batches_)

                    def all_batches():
                        for t, m in batches_:
                            g(t, m)
                    med, lo, hi = median_ms(all_batches, min_reps=3, min_seconds=0.5)
                    return len(order) / med * 1e3, tokens / len(order), [med, lo, hi]

                with torch.inference_mode():
                    given = list(range(len(prompts)))
                    row["given_order_per_s"], row["given_order_tokens_per_prompt"], row["given_order_ms"] = run_set(given)
                    by_len = sorted(given, key=lambda i: len(ids[i]))
                    row["by_length_per_s"], row["by_length_tokens_per_prompt"], row["by_length_ms"] = run_set(by_len)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:500]
            result["prompt_set"] = row
            print(json.dumps(row), flush=True)
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=1)


    with torch.inference_mode():
        for variant, f, g in variants:
            for b in batches:
                if variant == "compile" and args.compile_batches and b not in [int(x) for x in args.compile_batches.split(",")]:
                    continue
                row = {"variant": variant, "batch": b, "unix_time": time.time()}  # to set beside gpu-clocks.csv
                try:
                    t0 = time.perf_counter()
                    px = torch.randn(b, 3, 224, 224, device=dev, dtype=torch.float16)
                    med, lo, hi = median_ms(lambda: f(px))
                    row["image_per_s"] = b / med * 1e3
                    row["image_ms"] = [med, lo, hi]
                    ids = torch.randint(1, 49000, (b, 77), device=dev)
                    ids[:, -1] = 49407
                    mask = torch.ones_like(ids)
                    med, lo, hi = median_ms(lambda: g(ids, mask))
                    row["text77_per_s"] = b / med * 1e3
                    row["text77_ms"] = [med, lo, hi]
                    batch_prompts = [prompts[i % len(prompts)] for i in range(b)]
                    enc = tok(batch_prompts, padding="longest", return_tensors="pt")
                    pids, pmask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
                    med, lo, hi = median_ms(lambda: g(pids, pmask))
                    row["text_prompt_per_s"] = b / med * 1e3
                    row["text_prompt_ms"] = [med, lo, hi]
                    row["prompt_padded_len"] = int(pids.shape[1])
                    row["seconds"] = time.perf_counter() - t0
                except Exception as e:  # record and go on: a peer failure must not hide the rest
                    row["error"] = f"{type(e).__name__}: {e}"[:500]
                result["results"].append(row)
                print(json.dumps(row), flush=True)
                with open(args.json, "w") as fh:
                    json.dump(result, fh, indent=1)
            if variant == "eager":
                prompt_set()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The PyTorch peer of `jclip bench --random RN50 --device cpu`: openai/CLIP's ModifiedResNet image
tower at RN50's geometry (layers 3-4-6-3, width 64, 32 heads, 224 px, output 1024; the module
structure of scripts/torch-16bit.py, jclip's own code), seeded random weights, PyTorch eager on a
fixed number of threads, float32 and bf16 autocast (torch.autocast("cpu", dtype=torch.bfloat16):
convolutions and linears in bf16 through oneDNN). Images/s per batch size: warm-up, then the median
of repetitions, with the spread ((slowest - fastest) / median).

Usage: /usr/bin/python3 scripts/peers/bench_torch_rn50.py [--precision fp32,bf16] [--batch 1,8] [--threads 2] [--repeats 5]
"""
import argparse
import importlib.util
import os
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("torch16", os.path.join(HERE, "..", "torch-16bit.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    net = mod.ModifiedResNet((3, 4, 6, 3), 1024, 32, 224, 64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
    print(f"torch {torch.__version__}, {args.threads} threads, RN50 image tower, random weights")
    for b in [int(v) for v in args.batch.split(",")]:
        x = torch.randn(b, 3, 224, 224)
        for precision in args.precision.split(","):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                for _ in range(2):
                    net(x)
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    net(x)
                    times.append(time.perf_counter() - t)
            times.sort()
            mid = times[len(times) // 2]
            print(f"{precision} batch {b}: {b / mid:.2f} images/s, spread {100 * (times[-1] - times[0]) / mid:.0f}%", flush=True)


if __name__ == "__main__":
    main()

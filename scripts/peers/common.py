"""Shared by the PyTorch peer scripts: dependency checks, timing, the prompt set and its files."""
import json
import os
import statistics
import struct
import sys
import time

EOT = 49407
SOT = 49406


def need_torch():
    """Import torch or stop with the fix: these scripts need Debian's python3-torch (1.13)."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        sys.exit(f"{os.path.basename(sys.argv[0])}: PyTorch is missing ({e}) for {sys.executable}.\n"
                 "  Install Debian's build: scripts/peers/setup.sh (apt-get install -y python3-torch python3-numpy libopenblas0-openmp)\n"
                 "  and run the script with /usr/bin/python3 (or set PYTHON=/usr/bin/python3 for scripts/peers/run.sh).")
    return torch


def time_calls(fn, items, threads, warmup=2, min_reps=5, min_seconds=3.0, max_reps=50):
    """Calls fn() `warmup` times, then at least min_reps times and for at least min_seconds.
    Returns items/s at the median call time plus the spread (items/s of the slowest and fastest call),
    and cpu_share: the process's CPU time over wall time x threads while timing. On a machine shared
    with other jobs a share well under 1 says the figure is depressed by contention."""
    for _ in range(warmup):
        fn()
    times = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    end = time.perf_counter() + min_seconds
    while len(times) < min_reps or (time.perf_counter() < end and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    share = (time.process_time() - cpu0) / ((time.perf_counter() - wall0) * threads)
    med = statistics.median(times)
    return {"per_s": items / med, "per_s_min": items / max(times), "per_s_max": items / min(times),
            "ms_median": med * 1e3, "reps": len(times), "cpu_share": share}


def text77(batch):
    """A full 77-token text per row: start, 75 ids spread over the vocabulary, end. The values do not
    change the work; both peers build the same rows."""
    row = [SOT] + [(1 + 613 * i) % SOT for i in range(75)] + [EOT]
    return [list(row) for _ in range(batch)]


def pad_batch(rows):
    """Pads token rows with 0 (the reference's padding id) to the longest row."""
    n = max(len(r) for r in rows)
    return [r + [0] * (n - len(r)) for r in rows]


def load_prompts(path):
    if not os.path.isfile(path):
        sys.exit(f"{path} is missing: run scripts/peers/export_onnx.py first (scripts/peers/run.sh does).")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    tokens = data.get("tokens")
    if not tokens or not all(isinstance(r, list) and r and r[-1] == EOT for r in tokens):
        sys.exit(f"{path}: 'tokens' must be a non-empty list of token rows each ending with {EOT}")
    return data


def write_safetensors(path, tensors, metadata=None):
    """A minimal safetensors writer (header length, JSON header, raw little-endian data) for
    contiguous CPU tensors, so the check file needs no extra Python package."""
    import torch
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous().cpu()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    head = json.dumps(header).encode("utf-8")
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)))
        fh.write(head)
        for b in blobs:
            fh.write(b)

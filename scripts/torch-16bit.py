#!/usr/bin/env python3
"""How far PyTorch itself lands from the golden features when it runs the reference models in 16 bits.

jclip's golden test asks 16-bit features to stay within 5e-3 (relative, per row) of the golden
float32 ones. jclip meets that with fp16 ViTs and misses it with bf16 and with fp16 ResNets
(docs/gpu.md, "ViTs in 16 bits", "ResNets in 16 bits"). This script asks the same of PyTorch: it
builds each reference model of a clip-reference folder (or of the GPU bundle's copy) as openai/CLIP's
model.py structures it (its module names, so that the state dict loads strictly; the code here is
jclip's own), checks it in float32 against the golden features (within 1e-4, the issue's float32
bound, or nothing below counts), then runs it as `clip.load` does on a GPU: `convert_weights` (Conv, Linear,
MultiheadAttention and the projections in 16 bits; LayerNorm computing in float32 and giving back
the input's type; BatchNorm, embeddings in float32) and the inputs cast to the weights' type.

On a CPU, PyTorch lacks many operations in float16 (convolutions, matrix products, softmax,
BatchNorm). There fp16 runs under `HalfOnCpu`: an operation this PyTorch refuses in Half computes in
float32 on its inputs (already fp16 values) and rounds its outputs to fp16, which is what CUDA's
fp16 kernels with float32 accumulation give up to the order of summation. Such rows say
"fp16 emulated" and list the operations emulated; a GPU run gives the real ones.

Usage: torch-16bit.py --reference DIR [--device cpu|cuda] [--precisions fp16,bf16] [--json OUT]
Prints one line per model, precision and tower (worst and rms row error against the golden
features, whether the probability rows keep their argmax) and writes them as JSON.
"""
import argparse, contextlib, json, math, os, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
try:  # private modules (PyTorch 1.13 to 2.x); only the CPU's fp16 emulation needs them
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map
except ImportError:  # pragma: no cover
    TorchDispatchMode = None

# The ViT blocks, the reference's module structure: scripts/peers/clip_vit.py (beside this script
# in the GPU bundle).
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(here, "peers")]
from clip_vit import LayerNorm, Transformer, VisionTransformer  # noqa: E402


# --- safetensors and state dicts ---------------------------------------------------------------

_NP = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "F64": np.float64}


def read_safetensors(path):
    """{name: torch tensor} of a safetensors file (F32, F16, BF16, I32, I64, F64)."""
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy()).to(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_NP[info["dtype"]]).copy())
        out[name] = t.reshape(info["shape"])
    return out


def load_weights(model_dir):
    """The model's state dict: model.safetensors (the GPU bundle's copy) or state_dict.pt."""
    st = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(st):
        return read_safetensors(st)
    path = os.path.join(model_dir, "state_dict.pt")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code from the file runs
    except TypeError:  # a PyTorch without weights_only
        sd = torch.load(path, map_location="cpu")
    return {k: v for k, v in sd.items()}


# --- the model, as openai/CLIP's model.py structures it (the ResNet and the text side here) ----

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride > 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential()
            self.downsample.add_module("-1", nn.AvgPool2d(stride))
            self.downsample.add_module("0", nn.Conv2d(inplanes, planes * 4, 1, stride=1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class AttentionPool2d(nn.Module):
    def __init__(self, spacial, dim, heads, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial ** 2 + 1, dim) / dim ** 0.5)
        self.k_proj, self.q_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, out)
        self.heads = heads

    def forward(self, x):
        x = x.flatten(start_dim=2).permute(2, 0, 1)  # (HW, N, C)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0) + self.positional_embedding[:, None, :].to(x.dtype)
        x, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias,
            use_separate_proj_weight=True, training=False, need_weights=False)
        return x.squeeze(0)


class ModifiedResNet(nn.Module):
    def __init__(self, layers, out, heads, resolution, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._layer(width, layers[0])
        self.layer2 = self._layer(width * 2, layers[1], 2)
        self.layer3 = self._layer(width * 4, layers[2], 2)
        self.layer4 = self._layer(width * 8, layers[3], 2)
        self.attnpool = AttentionPool2d(resolution // 32, width * 32, heads, out)

    def _layer(self, planes, blocks, stride=1):
        mods = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * 4
        mods += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(F.relu(self.bn3(self.conv3(x))))
        return self.attnpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


class Clip(nn.Module):
    def __init__(self, sd):
        super().__init__()
        vit = "visual.proj" in sd
        embed = sd["text_projection"].shape[1]
        if vit:
            width = sd["visual.conv1.weight"].shape[0]
            layers = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
            patch = sd["visual.conv1.weight"].shape[-1]
            grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            self.visual = VisionTransformer(patch * grid, patch, width, layers, width // 64, embed)
        else:
            counts = [len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)]
            width = sd["visual.layer1.0.conv1.weight"].shape[0]
            grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            self.visual = ModifiedResNet(counts, embed, width * 32 // 64, grid * 32, width)
        ctx, twidth = sd["positional_embedding"].shape
        tlayers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
        mask = torch.full((ctx, ctx), float("-inf")).triu_(1)
        self.transformer = Transformer(twidth, tlayers, twidth // 64, mask)
        self.token_embedding = nn.Embedding(sd["token_embedding.weight"].shape[0], twidth)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, twidth))
        self.ln_final = LayerNorm(twidth)
        self.text_projection = nn.Parameter(torch.empty(twidth, embed))
        self.logit_scale = nn.Parameter(torch.ones([]))

    @property
    def dtype(self):
        return self.visual.conv1.weight.dtype

    def encode_image(self, image):
        return self.visual(image.to(self.dtype))

    def encode_text(self, tokens):
        x = self.token_embedding(tokens).to(self.dtype) + self.positional_embedding.to(self.dtype)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x).to(self.dtype)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection.to(self.dtype)


def convert_weights(model, dtype):
    """What the reference's convert_weights does, in `dtype`: Conv, Linear, attention, projections."""
    def convert(m):
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.weight.data = m.weight.data.to(dtype)
            if m.bias is not None:
                m.bias.data = m.bias.data.to(dtype)
        if isinstance(m, nn.MultiheadAttention):
            for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v"):
                t = getattr(m, name)
                if t is not None:
                    t.data = t.data.to(dtype)
            m.out_proj.weight.data = m.out_proj.weight.data.to(dtype)
            if m.out_proj.bias is not None:
                m.out_proj.bias.data = m.out_proj.bias.data.to(dtype)
        for name in ("text_projection", "proj"):
            t = getattr(m, name, None)
            if t is not None:
                t.data = t.data.to(dtype)
    model.apply(convert)


class HalfOnCpu(TorchDispatchMode or object):
    """fp16 on a CPU: an aten operation that this PyTorch refuses in Half runs in float32 on the same
    (fp16-valued) inputs and its float32 outputs are rounded to fp16; every other operation runs as
    it is. `emulated` counts the operations that needed it."""

    def __init__(self):
        super().__init__()
        self.emulated = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            return func(*args, **kwargs)
        except (RuntimeError, NotImplementedError) as e:
            if "'Half'" not in str(e):
                raise
        name = str(func)
        self.emulated[name] = self.emulated.get(name, 0) + 1
        up = lambda t: t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.float16 else t
        down = lambda t: t.half() if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t
        return tree_map(down, func(*tree_map(up, args), **tree_map(up, kwargs)))


# --- measuring ---------------------------------------------------------------------------------

def row_errors(got, want):
    got, want = got.double(), want.double()
    return ((got - want).norm(dim=1) / want.norm(dim=1)).tolist()


def probs(img, txt, scale):
    img = img / img.norm(dim=1, keepdim=True)
    txt = txt / txt.norm(dim=1, keepdim=True)
    return (scale * img @ txt.t()).softmax(dim=-1)


def ensemble(fp32_model, model, pixels, n, emulate):
    """Image rows' errors of `model` against `fp32_model` over n seeded perturbations of `pixels`."""
    errors = []
    for seed in range(n):
        g = torch.Generator().manual_seed(1234 + seed)
        px = pixels + 1e-3 * torch.randn(pixels.shape, generator=g).to(pixels.device)
        with torch.no_grad():
            want = fp32_model.encode_image(px).float().cpu()
            with (HalfOnCpu() if emulate else contextlib.nullcontext()):
                got = model.encode_image(px).float().cpu()
        errors += row_errors(got, want)
    errors.sort()
    return {"rows": len(errors), "rms": math.sqrt(sum(e * e for e in errors) / len(errors)), "median": errors[len(errors) // 2],
            "p90": errors[int(len(errors) * 0.9)], "max": errors[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="clip-reference folder (or the GPU bundle's copy)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precisions", default="fp16,bf16")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--ensemble", type=int, default=0, metavar="N",
                    help="also run N perturbed copies of the images (pixels + 1e-3 Gaussian noise, seeded) and give the "
                         "16-bit image rows' spread against the float32 model on the same input (as jclip's "
                         "Rn50RoundingDiagTest does for its own rounding)")
    args = ap.parse_args()
    wrong = [p for p in args.precisions.split(",") if p and p not in ("fp16", "bf16")]
    if wrong:
        ap.error(f"--precisions takes fp16 and bf16 (float32 always runs first, as the check), not {', '.join(wrong)}")
    dev = torch.device(args.device)
    # float32 means float32 (cuDNN's convolutions default to TF32 on Ampere and newer); the 16-bit
    # runs keep PyTorch's other defaults (fp16 GEMMs may reduce in reduced precision, attention
    # through scaled_dot_product_attention where this PyTorch has it), as a user's clip.load gets.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}
    result = {"torch": torch.__version__, "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
              "rows": []}
    models = os.path.join(args.reference, "models")
    for name in sorted(os.listdir(models)) if os.path.isdir(models) else []:
        mdir = os.path.join(models, name)
        if not os.path.exists(os.path.join(mdir, "golden.safetensors")):
            continue
        golden = read_safetensors(os.path.join(mdir, "golden.safetensors"))
        sd = load_weights(mdir)
        pixels, tokens = golden["pixels"].to(dev), golden["tokens"].long().to(dev)
        scale = math.exp(float(sd["logit_scale"]))
        want_p = probs(golden["image_features"], golden["text_features"], scale).argmax(dim=1)
        model = Clip(sd)
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        model = model.to(dev).eval()
        fp32 = {}
        for precision in ["fp32"] + [p for p in args.precisions.split(",") if p]:
            row = {"model": name, "precision": precision}
            try:
                t0 = time.perf_counter()
                m = model
                if precision != "fp32":
                    m = Clip(sd)
                    m.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
                    m = m.to(dev).eval()
                    convert_weights(m, dtypes[precision])
                emulate = precision == "fp16" and dev.type == "cpu" and TorchDispatchMode is not None
                emulation = HalfOnCpu() if emulate else contextlib.nullcontext()
                with torch.no_grad(), emulation:
                    img = m.encode_image(pixels).float().cpu()
                    txt = m.encode_text(tokens).float().cpu()
                if isinstance(emulation, HalfOnCpu):
                    row["fp16_emulated"] = sorted(emulation.emulated)
                for tower, got, want in (("image", img, golden["image_features"]), ("text", txt, golden["text_features"])):
                    e = row_errors(got, want)
                    row[tower + "_worst"] = max(e)
                    row[tower + "_rms"] = math.sqrt(sum(x * x for x in e) / len(e))
                p = probs(img, txt, scale)
                row["same_argmax"] = bool((p.argmax(dim=1) == want_p).all())
                if args.ensemble > 0 and precision != "fp32":
                    row["ensemble"] = ensemble(model, m, pixels, args.ensemble, emulate)
                row["seconds"] = time.perf_counter() - t0
                if precision == "fp32":
                    fp32 = row
                    row["valid"] = row["image_worst"] <= 1e-4 and row["text_worst"] <= 1e-4
                else:
                    row["valid"] = bool(fp32.get("valid"))
            except Exception as ex:  # e.g. an op this PyTorch lacks in this type on this device
                row["error"] = f"{type(ex).__name__}: {ex}"[:300]
            result["rows"].append(row)
            if "error" in row:
                print(f"{name:18s} {precision}: error {row['error']}", flush=True)
            else:
                print(f"{name:18s} {precision}: image worst {row['image_worst']:.2e} rms {row['image_rms']:.2e}, "
                      f"text worst {row['text_worst']:.2e} rms {row['text_rms']:.2e}, same argmax {row['same_argmax']}"
                      + (f"; ensemble of {args.ensemble} x {len(pixels)} images: rms {row['ensemble']['rms']:.2e} "
                         f"median {row['ensemble']['median']:.2e} p90 {row['ensemble']['p90']:.2e} max {row['ensemble']['max']:.2e}"
                         if "ensemble" in row else "")
                      + (f"  (fp16 emulated: {', '.join(row['fp16_emulated'])})" if "fp16_emulated" in row else "")
                      + ("" if row["valid"] else "  (NOT VALID: the float32 model is not at the golden features)"), flush=True)
    if not result["rows"]:
        print(f"torch-16bit.py: no reference model (models/*/golden.safetensors) under {args.reference}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0 if all(r.get("valid") for r in result["rows"] if r["precision"] == "fp32") else 1


if __name__ == "__main__":
    sys.exit(main())

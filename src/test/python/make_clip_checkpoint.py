"""A random-weight CLIP written as the real checkpoints are, with PyTorch's own features: the test
oracle for model geometries the reference data does not hold (its holdout set has others).

Builds an OpenAI-architecture CLIP (clip/model.py's structure and state-dict names: a
VisionTransformer or a ModifiedResNet, the causal text Transformer, QuickGELU, LayerNorm in fp32)
at the geometry config.json gives, draws its weights under torch.manual_seed(seed) so that no
tensor is trivial, rounds the tensors to fp16 that clip.model.convert_weights rounds (as OpenAI's
released files hold them), and writes:

  state_dict.pt          torch.save(state_dict), PyTorch's zip format (open_clip-style files); with
                         "all_fp16" every floating tensor in fp16 (LayerNorm, BatchNorm statistics,
                         embeddings, logit_scale too), which a loader must take as well
  openai-jit.pt          torch.jit.trace_module of the model (forward, encode_image, encode_text),
                         traced in fp32, then set back to the stored dtypes, with the int64 0-d
                         input_resolution, context_length and vocab_size of OpenAI's release files
  hf/model.safetensors   ViTs only: transformers' CLIPModel names (q/k/v split, projections
  hf/config.json         transposed), each tensor in its stored dtype; a CLIPConfig
  image_features.npy     encode_image(pixels), float32 [B, E], from the stored weights upcast to
  text_features.npy      float32 (what clip.load(..., device="cpu") computes); encode_text(tokens)
  logits_per_image.npy   exp(logit_scale) * normalised image @ normalised text.T, [B, T]

The modules here were written for this oracle from the architecture's description; nothing of
the reference is imported. float32 on the CPU.

  python3 make_clip_checkpoint.py DIR

DIR holds config.json (the fields read below), pixels.npy [B, 3, R, R] float32 and tokens.npy
[T, 77] int32.
"""
import json
import math
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_clip_features import LayerNorm, Transformer as _Transformer  # the text and ViT blocks, one definition


def Transformer(width, layers, heads, mask=None):
    """clip/model.py's Transformer: QuickGELU MLPs of 4 x width."""
    return _Transformer(width, layers, heads, 4 * width, "quick_gelu", mask)


class VisionTransformer(nn.Module):
    def __init__(self, res, patch, width, layers, heads, out):
        super().__init__()
        grid = res // patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, out))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class Bottleneck(nn.Module):
    """1x1, 3x3, (avg-pool when strided), 1x1 x4; the shortcut avg-pools, then a 1x1 conv + BN."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(OrderedDict([("-1", nn.AvgPool2d(stride)),
                                                         ("0", nn.Conv2d(inplanes, planes * 4, 1, stride=1, bias=False)),
                                                         ("1", nn.BatchNorm2d(planes * 4))]))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu3(out)


class AttentionPool(nn.Module):
    """Multi-head attention of the spatial mean (prepended) over the positions: its row alone is kept."""

    def __init__(self, spacial, dim, heads, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.empty(spacial * spacial + 1, dim))
        self.k_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, out)
        self.num_heads = heads
        self.scale = (dim // heads) ** -0.5

    def forward(self, x):
        x = x.flatten(start_dim=2).permute(2, 0, 1)  # [HW, N, C]
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        n, c, h = x.shape[1], x.shape[2], self.num_heads
        q = F.linear(x[:1], self.q_proj.weight, self.q_proj.bias)
        k = F.linear(x, self.k_proj.weight, self.k_proj.bias)
        v = F.linear(x, self.v_proj.weight, self.v_proj.bias)
        q = q.reshape(1, n * h, c // h).transpose(0, 1) * self.scale
        k = k.reshape(-1, n * h, c // h).transpose(0, 1)
        v = v.reshape(-1, n * h, c // h).transpose(0, 1)
        o = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1), v)  # [N*h, 1, c/h]
        o = o.transpose(0, 1).reshape(1, n, c)
        return F.linear(o, self.c_proj.weight, self.c_proj.bias).squeeze(0)


class ModifiedResNet(nn.Module):
    def __init__(self, layers, out, heads, res, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self.inplanes = width
        self.layer1 = self.stage(width, layers[0])
        self.layer2 = self.stage(width * 2, layers[1], 2)
        self.layer3 = self.stage(width * 4, layers[2], 2)
        self.layer4 = self.stage(width * 8, layers[3], 2)
        self.attnpool = AttentionPool(res // 32, width * 32, heads, out)

    def stage(self, planes, blocks, stride=1):
        mods = [Bottleneck(self.inplanes, planes, stride)]
        self.inplanes = planes * 4
        mods += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


class Clip(nn.Module):
    def __init__(self, c):
        super().__init__()
        e, res = c["embed_dim"], c["image_resolution"]
        if isinstance(c["vision_layers"], list):
            w = c["vision_width"]
            self.visual = ModifiedResNet(c["vision_layers"], e, w * 32 // 64, res, w)
        else:
            w = c["vision_width"]
            self.visual = VisionTransformer(res, c["vision_patch_size"], w, c["vision_layers"], w // 64, e)
        ctx, tw = c["context_length"], c["transformer_width"]
        mask = torch.full((ctx, ctx), float("-inf")).triu_(1)
        self.transformer = Transformer(tw, c["transformer_layers"], c["transformer_heads"], mask)
        self.token_embedding = nn.Embedding(c["vocab_size"], tw)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, tw))
        self.ln_final = LayerNorm(tw)
        self.text_projection = nn.Parameter(torch.empty(tw, e))
        self.logit_scale = nn.Parameter(torch.ones([]))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        i = self.encode_image(image)
        t = self.encode_text(text)
        i = i / i.norm(dim=1, keepdim=True)
        t = t / t.norm(dim=1, keepdim=True)
        logits = self.logit_scale.exp() * i @ t.t()
        return logits, logits.t()


def draw(model, c):
    """Weights under the seed: no tensor trivial, activations of order 1 through every layer."""
    g = torch.Generator().manual_seed(c["seed"])

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    state = model.state_dict()
    for name, t in state.items():
        leaf = name.rsplit(".", 1)[-1]
        shape = t.shape
        if name == "logit_scale":
            v = torch.tensor(float(c["logit_scale"]))
        elif leaf == "num_batches_tracked":
            v = torch.randint(0, 100000, (), generator=g)
        elif leaf == "running_mean":
            v = normal(shape, 0.1)
        elif leaf == "running_var":
            v = 0.5 + torch.rand(shape, generator=g)
        elif (".bn" in name or name.endswith("downsample.1.weight") or name.endswith("downsample.1.bias")
              or name.startswith("visual.bn") or ".ln_" in name or name.startswith("ln_")
              or name.startswith("visual.ln_")):
            v = 1 + normal(shape, 0.1) if leaf == "weight" else normal(shape, 0.05)
        elif leaf in ("bias", "in_proj_bias"):
            v = normal(shape, 0.05)
        elif name == "token_embedding.weight":
            v = normal(shape, 0.02)
        elif name == "positional_embedding":
            v = normal(shape, 0.01)
        elif name in ("visual.class_embedding", "visual.positional_embedding", "visual.attnpool.positional_embedding"):
            v = normal(shape, shape[-1] ** -0.5)
        elif name in ("text_projection", "visual.proj"):
            v = normal(shape, shape[0] ** -0.5)
        elif len(shape) == 4:  # convolutions: He for the ResNet (ReLU), 1/sqrt(fan in) for the patch embedding
            fan = shape[1] * shape[2] * shape[3]
            v = normal(shape, math.sqrt((1.0 if name == "visual.conv1.weight" and not c["resnet"] else 2.0) / fan))
        elif len(shape) == 2:  # Linear and attention projections
            v = normal(shape, shape[1] ** -0.5)
        else:
            raise SystemExit("no rule for " + name)
        state[name] = v.to(t.dtype)
    model.load_state_dict(state, strict=True)


def half_names(model):
    """The tensors clip.model.convert_weights rounds to fp16: Conv/Linear weights and biases, the
    attention's in_proj tensors, text_projection and visual.proj."""
    names = set()
    for mod_name, m in model.named_modules():
        prefix = mod_name + "." if mod_name else ""
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            names.update(prefix + p for p in ("weight", "bias") if getattr(m, p) is not None)
        if isinstance(m, nn.MultiheadAttention):
            names.update(prefix + p for p in ("in_proj_weight", "in_proj_bias") if getattr(m, p) is not None)
    names.add("text_projection")
    if isinstance(model.visual, VisionTransformer):
        names.add("visual.proj")
    return names


def write_safetensors(path, tensors):
    names = {torch.float16: "F16", torch.float32: "F32"}
    header, offset, blobs = OrderedDict(), 0, []
    for k, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def hf(d, c, state):
    """transformers' CLIPModel names and config (convert_clip_original_pytorch_to_hf.py's renames)."""
    out = OrderedDict()
    for name, t in state.items():
        for prefix, hp in (("visual.transformer.resblocks.", "vision_model.encoder.layers."), ("transformer.resblocks.", "text_model.encoder.layers.")):
            if name.startswith(prefix):
                i, rest = name[len(prefix):].split(".", 1)
                base = hp + i + "."
                if rest.startswith("attn.in_proj_"):
                    kind = rest.rsplit("_", 1)[-1]
                    for part, chunk in zip("qkv", t.chunk(3, dim=0)):
                        out[base + "self_attn.%s_proj.%s" % (part, kind)] = chunk
                else:
                    rest = (rest.replace("attn.out_proj", "self_attn.out_proj").replace("ln_1", "layer_norm1").replace("ln_2", "layer_norm2")
                            .replace("mlp.c_fc", "mlp.fc1").replace("mlp.c_proj", "mlp.fc2"))
                    out[base + rest] = t
                break
        else:
            plain = {"token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                     "positional_embedding": "text_model.embeddings.position_embedding.weight",
                     "ln_final.weight": "text_model.final_layer_norm.weight", "ln_final.bias": "text_model.final_layer_norm.bias",
                     "visual.class_embedding": "vision_model.embeddings.class_embedding",
                     "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
                     "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
                     "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight", "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
                     "visual.ln_post.weight": "vision_model.post_layernorm.weight", "visual.ln_post.bias": "vision_model.post_layernorm.bias",
                     "logit_scale": "logit_scale"}
            if name in ("text_projection", "visual.proj"):
                out["text_projection.weight" if name == "text_projection" else "visual_projection.weight"] = t.t().contiguous()
            else:
                out[plain[name]] = t
    os.makedirs(os.path.join(d, "hf"), exist_ok=True)
    write_safetensors(os.path.join(d, "hf", "model.safetensors"), out)
    vw, tw = c["vision_width"], c["transformer_width"]
    text = {"model_type": "clip_text_model", "vocab_size": c["vocab_size"], "hidden_size": tw, "intermediate_size": 4 * tw,
            "num_attention_heads": c["transformer_heads"], "num_hidden_layers": c["transformer_layers"],
            "max_position_embeddings": c["context_length"], "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
            "projection_dim": c["embed_dim"], "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
    vision = {"model_type": "clip_vision_model", "hidden_size": vw, "intermediate_size": 4 * vw, "num_attention_heads": vw // 64,
              "num_hidden_layers": c["vision_layers"], "image_size": c["image_resolution"], "patch_size": c["vision_patch_size"],
              "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": c["embed_dim"]}
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c["embed_dim"],
              "logit_scale_init_value": c["logit_scale"], "text_config": text, "vision_config": vision}
    with open(os.path.join(d, "hf", "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    c["resnet"] = isinstance(c["vision_layers"], list)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = Clip(c).float().eval()
    draw(model, c)
    halves = half_names(model)
    unknown = halves - set(model.state_dict())
    assert not unknown, unknown
    stored = OrderedDict()
    for name, t in model.state_dict().items():
        half = (name in halves or (name == "token_embedding.weight" and c.get("token_embedding_fp16", False))
                or (c.get("all_fp16", False) and t.is_floating_point()))  # a loader must take either dtype for any tensor
        stored[name] = t.half() if half else t.clone()
    torch.save(stored, os.path.join(d, "state_dict.pt"))
    # What clip.load(..., device="cpu") computes: the stored tensors upcast to float32.
    model.load_state_dict(OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in stored.items()), strict=True)
    pixels = torch.from_numpy(np.load(os.path.join(d, "pixels.npy")))
    tokens = torch.from_numpy(np.load(os.path.join(d, "tokens.npy")).astype(np.int64))
    with torch.no_grad():
        image = model.encode_image(pixels)
        text = model.encode_text(tokens)
        logits, _ = model(pixels, tokens)
    np.save(os.path.join(d, "image_features.npy"), image.numpy().astype(np.float32))
    np.save(os.path.join(d, "text_features.npy"), text.numpy().astype(np.float32))
    np.save(os.path.join(d, "logits_per_image.npy"), logits.numpy().astype(np.float32))
    if c.get("jit", True):
        for key in ("input_resolution", "context_length", "vocab_size"):
            model.register_buffer(key, torch.tensor(c[key if key != "input_resolution" else "image_resolution"], dtype=torch.int64))
        traced = torch.jit.trace_module(model, {"forward": (pixels, tokens), "encode_image": (pixels,), "encode_text": (tokens,)},
                                        check_trace=False)
        with torch.no_grad():
            for name, p in list(traced.named_parameters()) + list(traced.named_buffers()):
                if name in stored and stored[name].dtype != p.dtype:
                    p.data = stored[name].clone()
        torch.jit.save(traced, os.path.join(d, "openai-jit.pt"))
    if not c["resnet"] and c.get("hf", True):
        hf(d, c, stored)
    print("torch %s: %s image %s, text %s" % (torch.__version__, "ResNet" if c["resnet"] else "ViT", tuple(pixels.shape), tuple(tokens.shape)))


if __name__ == "__main__":
    main()

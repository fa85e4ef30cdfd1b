"""PyTorch's features for an OpenAI-architecture CLIP given as .npy files: the test oracle for
configurations the reference data does not cover (heads other than 64 wide, MLPs other than 4 x
width, GELU), as open_clip builds them (ViT-H-14, ViT-g-14, ViT-bigG-14).

The modules follow openai/CLIP's clip/model.py (VisionTransformer, Transformer,
ResidualAttentionBlock with ln_1 / attn / ln_2 / mlp.c_fc / mlp.c_proj, nn.MultiheadAttention in
the LND layout, LayerNorm in fp32, the causal mask, end-of-text pooling at the argmax), with the
head count, the MLP width and the activation as open_clip's configs give them. float32 on the CPU.

  python3 torch_clip_features.py DIR

DIR holds config.json (the fields below), one <state-dict name>.npy per weight, pixels.npy
[B, 3, R, R] float32 and tokens.npy [T, L] int32; the script writes image_features.npy [B, E] and
text_features.npy [T, E].
"""
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.type(torch.float32)).type(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, mlp, act, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, mlp)),
            ("gelu", QuickGELU() if act == "quick_gelu" else nn.GELU()),
            ("c_proj", nn.Linear(mlp, width)),
        ]))
        self.ln_2 = LayerNorm(width)
        self.attn_mask = attn_mask

    def forward(self, x):  # [N, B, D]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp, act, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, mlp, act, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class Clip(nn.Module):
    def __init__(self, c):
        super().__init__()
        vw, tw, res, patch = c["vision_width"], c["transformer_width"], c["image_resolution"], c["vision_patch_size"]
        grid = res // patch
        self.visual = nn.Module()
        self.visual.conv1 = nn.Conv2d(3, vw, kernel_size=patch, stride=patch, bias=False)
        self.visual.class_embedding = nn.Parameter(torch.empty(vw))
        self.visual.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, vw))
        self.visual.ln_pre = LayerNorm(vw)
        self.visual.transformer = Transformer(vw, c["vision_layers"], c["vision_heads"], c["vision_mlp"], c["activation"])
        self.visual.ln_post = LayerNorm(vw)
        self.visual.proj = nn.Parameter(torch.empty(vw, c["embed_dim"]))
        ctx = c["context_length"]
        mask = torch.full((ctx, ctx), float("-inf")).triu_(1)
        self.transformer = Transformer(tw, c["transformer_layers"], c["transformer_heads"], c["transformer_mlp"], c["activation"], mask)
        self.token_embedding = nn.Embedding(c["vocab_size"], tw)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, tw))
        self.ln_final = LayerNorm(tw)
        self.text_projection = nn.Parameter(torch.empty(tw, c["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.ones([]))

    def encode_image(self, x):  # [B, 3, R, R]
        v = self.visual
        x = v.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = v.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding
        x = v.ln_pre(x)
        x = v.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return v.ln_post(x[:, 0, :]) @ v.proj

    def encode_text(self, text):  # [T, L] int64, L = the context length
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    model = Clip(c).float().eval()
    state = {}
    for name, want in model.state_dict().items():  # a 0-d weight (logit_scale) comes as [1]
        state[name] = torch.from_numpy(np.load(os.path.join(d, name + ".npy"))).reshape(want.shape)
    model.load_state_dict(state, strict=True)
    pixels = torch.from_numpy(np.load(os.path.join(d, "pixels.npy")))
    tokens = torch.from_numpy(np.load(os.path.join(d, "tokens.npy")).astype(np.int64))
    with torch.no_grad():
        np.save(os.path.join(d, "image_features.npy"), model.encode_image(pixels).numpy().astype(np.float32))
        np.save(os.path.join(d, "text_features.npy"), model.encode_text(tokens).numpy().astype(np.float32))
    print("torch %s: image %s, text %s" % (torch.__version__, tuple(pixels.shape), tuple(tokens.shape)))


if __name__ == "__main__":
    main()

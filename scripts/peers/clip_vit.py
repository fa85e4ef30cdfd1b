"""The ViT CLIP towers for the peer benchmarks, written after openai/CLIP's clip/model.py.

Same module structure and names as the reference (VisionTransformer, Transformer,
ResidualAttentionBlock with ln_1 / attn / ln_2 / mlp.c_fc / mlp.c_proj, LND layout inside the
transformers, nn.MultiheadAttention, QuickGELU, fp32 LayerNorm), so the peers run exactly the
computation a user gets from the reference code. Two deliberate differences, neither of which
changes the numbers:
  - the text tower slices its positional embedding and causal mask to the input length L, so the
    same module (and its ONNX export) accepts prompts padded to the longest in a batch as well as
    77-token inputs (with L = 77 this is the reference computation);
  - initialisation is the reference's initialize_parameters() under a fixed seed; no checkpoint is
    needed because only speed is measured.
Shapes: B batch, N tokens, D width, E embedding, L text length.
"""
from collections import OrderedDict

import torch
from torch import nn

# ViT-B/32 as released (clip.load("ViT-B/32")): 8.82 GFLOP per image, 5.96 per 77-token text.
VIT_B32 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
               vision_patch_size=32, context_length=77, vocab_size=49408,
               transformer_width=512, transformer_heads=8, transformer_layers=12)


class LayerNorm(nn.LayerNorm):
    """As the reference: normalise in fp32 whatever the input dtype, return the input dtype."""

    def forward(self, x):
        dtype = x.dtype
        return super().forward(x.type(torch.float32)).type(dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]))
        self.ln_2 = LayerNorm(width)
        # Kept as a buffer of the full context length; sliced to the input length in forward.
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    def forward(self, x):  # x: [N, B, D]
        mask = None
        if self.attn_mask is not None:
            n = x.shape[0]
            mask = self.attn_mask[:n, :n].to(dtype=x.dtype)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, attn_mask=None):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        grid = input_resolution // patch_size
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):  # x: [B, 3, R, R]
        x = self.conv1(x)  # [B, D, G, G]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, G*G, D]
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B, N, D]
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # NLD -> LND -> NLD
        return self.ln_post(x[:, 0, :]) @ self.proj  # [B, E]


class TextTransformer(nn.Module):
    """CLIP.encode_text as a module of its own (the reference keeps these fields on CLIP)."""

    def __init__(self, embed_dim, context_length, vocab_size, width, heads, layers):
        super().__init__()
        mask = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.transformer = Transformer(width, layers, heads, attn_mask=mask)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))

    def forward(self, text):  # text: [B, L] int64, L <= context_length
        x = self.token_embedding(text) + self.positional_embedding[: text.shape[1]]  # [B, L, D]
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        # End-of-text pooling: the EOT id is the largest id in each row.
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection  # [B, E]


def initialize(text):
    """The reference's CLIP.initialize_parameters for the text side (the vision side keeps the
    constructor's scaled randn, as in the reference)."""
    nn.init.normal_(text.token_embedding.weight, std=0.02)
    nn.init.normal_(text.positional_embedding, std=0.01)
    t = text.transformer
    proj_std = (t.width ** -0.5) * ((2 * t.layers) ** -0.5)
    attn_std = t.width ** -0.5
    fc_std = (2 * t.width) ** -0.5
    for block in t.resblocks:
        nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
    nn.init.normal_(text.text_projection, std=t.width ** -0.5)


def build(seed=0, cfg=VIT_B32):
    """Both towers in float32, eval mode, with seeded random weights (same seed, same weights)."""
    torch.manual_seed(seed)
    visual = VisionTransformer(cfg["image_resolution"], cfg["vision_patch_size"], cfg["vision_width"],
                               cfg["vision_layers"], cfg["vision_width"] // 64, cfg["embed_dim"])
    text = TextTransformer(cfg["embed_dim"], cfg["context_length"], cfg["vocab_size"],
                           cfg["transformer_width"], cfg["transformer_heads"], cfg["transformer_layers"])
    initialize(text)
    return visual.float().eval(), text.float().eval()

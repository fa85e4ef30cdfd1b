package dev.jclip.graph;

/**
 * The operations of a CLIP graph. Fused ops are first-class so that every backend can implement
 * them in one pass. Shapes use the house alphabet: B batch, N tokens, D width, H heads, E
 * embedding, R resolution, G grid (R / patch), C channels, L text length, V vocabulary.
 */
public enum Op {
  /** A graph input (pixels or token ids); no computation. */
  INPUT,
  /** {@code y[.., N] = act(x[.., K] · weight[N, K]ᵀ + bias[N])}; PyTorch F.linear (+ activation). */
  LINEAR,
  /**
   * {@code y[.., N] = x[.., K] · weight[N, K]ᵀ + bias[N] + residual[.., N]}, inputs (x, residual):
   * a LINEAR without activation and the residual ADD that alone reads it, as one node that carries
   * the ADD's name ({@link Fusion#linearResidual}). Its value is exactly LINEAR then ADD on the
   * CPU and reference backends; a GPU folds bias and residual into the GEMM's epilogue. An op of
   * its own rather than a LINEAR with a second input: a backend unaware of the residual would
   * otherwise run such a node as a plain LINEAR and drop it without a word.
   */
  LINEAR_RESIDUAL,
  /** {@code y[.., N] = x[.., K] · weight[K, N]}; the {@code x @ proj} of CLIP's projections. */
  MATMUL,
  /** LayerNorm over the last dimension, fp32 statistics, biased variance. */
  LAYER_NORM,
  /**
   * {@code y = act(LayerNorm(x) · weight[N, K]ᵀ + bias[N])}: a LAYER_NORM read by nothing but a
   * LINEAR, as one node under the LINEAR's name ({@link Fusion#layerNormLinear}); params {@code
   * weight}, {@code bias} (optional), {@code ln_weight}, {@code ln_bias}; attributes {@code eps},
   * {@code activation} (optional) and {@code layer_norm} (the absorbed node's name). Its value is
   * LAYER_NORM then LINEAR; the CUDA backend folds gamma and beta into the GEMM's weights and
   * bias and reads x once more for the rows' statistics instead of writing the normalised rows.
   */
  LAYER_NORM_LINEAR,
  /** {@code y = a + b} (optionally followed by ReLU), same shapes. */
  ADD,
  /**
   * Multi-head self-attention: qkv [B, N, 3D] (q, k, v; attribute {@code heads} heads of Dh = D /
   * heads inside D, 64 in every OpenAI model) to [B, N, D], scores scaled by 1/√Dh.
   */
  ATTENTION,
  /**
   * Multi-head attention of one query row a sequence, inputs (q [B, D], kv [B, N, 2D]) or (q, kv,
   * ids [B, N]): q is the query of each sequence's pooled position (attribute {@code index}, or
   * with ids its end-of-text position, the first argmax), kv the keys then values of every
   * position (heads inside D); with {@code causal} only the keys up to the pooled position count.
   * To [B, D]: row {@code index} (or the end-of-text row) of ATTENTION on the whole qkv, which the
   * last block of a pooled tower reads alone ({@link Fusion#pooledAttention}).
   */
  ATTENTION_POOLED,
  /** {@code x · sigmoid(1.702 x)}. */
  QUICK_GELU,
  /** {@code 0.5 x (1 + erf(x / √2))}. */
  GELU,
  /** The patch convolution (kernel = stride = P, no bias) as a GEMM: [B, 3, R, R] to [B, G·G, D]. */
  PATCH_EMBED,
  /** Prepends the class embedding [D] and adds the positional embedding [G·G+1, D]: [B, G·G, D] to [B, G·G+1, D]. */
  CLASS_POS_EMBED,
  /** Token embedding gather plus positional embedding: ids [B, L] to [B, L, D]. */
  TOKEN_EMBED,
  /** Row {@code index} of every sequence: [B, N, D] to [B, D] (the class token). */
  TAKE_TOKEN,
  /** The row at each sequence's end-of-text position (first argmax of its ids): [B, L, D], ids [B, L] to [B, D]. */
  EOT_GATHER,
  /**
   * 2-D convolution, then an optional per-channel {@code scale} (an inference BatchNorm), bias and
   * optional ReLU: {@code y[o] = relu(scale[o] · (W ∗ x)[o] + bias[o])}; NCHW.
   */
  CONV2D,
  /** Average pooling with kernel = stride = k; NCHW. */
  AVG_POOL,
  /** AttentionPool2d's tokens: [B, C, H, W] to [B, H·W+1, C] (mean token first) plus positional embedding. */
  ATTNPOOL_TOKENS,
  /** Row-wise {@code x / ‖x‖₂}. */
  L2_NORMALIZE,
  /** {@code logits[M, T] = scale · x̂[M, E] · ŷ[T, E]ᵀ}, rows L2-normalised inside. */
  COSINE_LOGITS,
  /** Row-wise softmax over the last dimension. */
  SOFTMAX,
}

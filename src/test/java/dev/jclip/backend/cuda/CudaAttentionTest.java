package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.ReferenceOps;
import dev.jclip.backend.Precision;
import dev.jclip.testing.TestRandom;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Fused attention, cosine logits and casts against the reference on fresh random inputs at every
 * CLIP sequence length. fp32 within 1e-5; fp16/bf16 against the reference evaluated on the same
 * rounded inputs, so only the kernel's own rounding (P and the output in 16 bits) is measured.
 */
@Tag("cuda")
class CudaAttentionTest {
  static final int[] SEQS = {50, 77, 197, 257, 577, 1, 7, 15, 33, 65, 80};
  static final int[] HEADS = {8, 12, 16};
  /** fp16 keeps 11 significant bits: P and out each rounded once, relative 2^-11 ≈ 4.9e-4 each. */
  static final double FP16_TOL = 2e-3;
  /** bf16 keeps 8 significant bits: 2^-8 ≈ 3.9e-3 per rounding. */
  static final double BF16_TOL = 1e-2;

  static CudaDevice device;
  static CudaOps ops;
  final Random random = TestRandom.create(getClass().getSimpleName());

  @BeforeAll
  static void open() {
    device = CudaTestSupport.openDevice();
    ops = new CudaOps(device, null);
  }

  @AfterAll
  static void close() {
    if (ops != null) ops.close();
    if (device != null) device.close();
  }

  float[] randn(int n, double scale) {
    return TestRandom.gaussian(random, n, scale);
  }

  static short[] toHalf(float[] a, Precision p) {
    short[] s = new short[a.length];
    for (int i = 0; i < a.length; i++) s[i] = p == Precision.FP16 ? HalfFloats.fp16(a[i]) : HalfFloats.bf16(a[i]);
    return s;
  }

  static float[] fromHalf(short[] s, Precision p) {
    float[] a = new float[s.length];
    for (int i = 0; i < s.length; i++) a[i] = p == Precision.FP16 ? HalfFloats.fromFp16(s[i]) : HalfFloats.fromBf16(s[i]);
    return a;
  }

  /**
   * The bit checks of the opt-in flash variants, collected by family ("ldm": V read with
   * ldmatrix.trans, "staged": Q and the output through shared memory, "pipe": the pipelined
   * kernel, "fit": its 80-row items, "rev": its items walked last to first, "lean": its lean tile
   * (flashLean=on), "lean2": the lean tile's base-2 softmax, held to the tolerance, not to the bits;
   * "attention": one that has run before) instead of stopping at the first: a test that
   * fails prints {@code [attention-variant-failed] <families>}, from which scripts/gpu-run.sh leaves
   * only those kernels out of the model benchmark's profile. A launch that throws (a fault leaves
   * the context unusable) names its families and ends the test.
   */
  static final class Variants {
    final java.util.List<String> failures = new java.util.ArrayList<>();
    final java.util.Set<String> families = new java.util.TreeSet<>();

    /** The families of a block kernel with V layout {@code v}, staged or not. */
    static String[] of(CudaOps.FlashV v, boolean staged) {
      java.util.List<String> f = new java.util.ArrayList<>();
      if (v == CudaOps.FlashV.LDMATRIX) f.add("ldm");
      if (staged) f.add("staged");
      if (f.isEmpty()) f.add("attention");
      return f.toArray(String[]::new);
    }

    /** Runs {@code body}; where it fails, names {@code family} as failed first. */
    static void asFamily(String family, Runnable body) {
      try {
        body.run();
      } catch (AssertionError | RuntimeException e) {
        System.out.println("[attention-variant-failed] " + family);
        throw e;
      }
    }

    /** The families of the pipelined kernel, staged or not. */
    static String[] pipelined(boolean staged) {
      return staged ? new String[] {"pipe", "staged"} : new String[] {"pipe"};
    }

    /** The families of the pipelined kernel, staged or not, in 80-row items where the sequence takes them ("fit"). */
    static String[] pipelined(boolean staged, boolean fit, int n) {
      if (!fit || !CudaOps.flashPipeFits(n)) return pipelined(staged);
      return staged ? new String[] {"pipe", "staged", "fit"} : new String[] {"pipe", "fit"};
    }

    /** As {@link #pipelined(boolean, boolean, int)}, and "rev" where the items are walked last to first. */
    static String[] pipelined(boolean staged, boolean fit, int n, boolean reversed) {
      String[] f = pipelined(staged, fit, n);
      if (!reversed) return f;
      String[] r = java.util.Arrays.copyOf(f, f.length + 1);
      r[f.length] = "rev";
      return r;
    }

    /** {@code families} and the lean tile's family ("lean", or "lean2" for its base-2 softmax). */
    static String[] lean(String[] families, CudaOps.FlashLean lean) {
      String[] r = java.util.Arrays.copyOf(families, families.length + 1);
      r[families.length] = lean == CudaOps.FlashLean.EXP2 ? "lean2" : "lean";
      return r;
    }

    /**
     * The staged pipelined kernel's lean tiles, {@code run} launching one into a zeroed output and
     * returning its bits: ON must write {@code bits} (the default kernel's), EXP2 be within the
     * 16-bit tolerance of {@code want}; {@code families} those of the kernel they mirror.
     */
    void lean(short[] bits, float[] want, java.util.function.Function<CudaOps.FlashLean, short[]> run, String what, Precision p, String[] families) {
      same(bits, () -> run.apply(CudaOps.FlashLean.ON), "lean " + what, lean(families, CudaOps.FlashLean.ON));
      close(want, () -> run.apply(CudaOps.FlashLean.EXP2), "lean2 " + what, p, p == Precision.FP16 ? FP16_TOL : BF16_TOL,
          lean(families, CudaOps.FlashLean.EXP2));
    }

    /** The variant's output; a launch that throws names its families and ends the test. */
    private short[] run(java.util.function.Supplier<short[]> got, String... family) {
      try {
        return got.get();
      } catch (RuntimeException e) {
        families.addAll(java.util.List.of(family));
        report();
        throw e;
      }
    }

    void same(short[] want, java.util.function.Supplier<short[]> got, String what, String... family) {
      short[] bits = run(got, family);
      if (!java.util.Arrays.equals(want, bits)) {
        failures.add(what + " (" + String.join(", ", family) + ")");
        families.addAll(java.util.List.of(family));
      }
    }

    /**
     * A variant with other bits (the lean tile's base-2 softmax): its output within {@code tol}
     * (relative, whole output) of {@code want} (the reference, or the default kernel's output).
     */
    void close(float[] want, java.util.function.Supplier<short[]> got, String what, Precision p, double tol, String... family) {
      short[] bits = run(got, family);
      double err = ReferenceOps.relativeError(fromHalf(bits, p), want);
      System.out.printf("[cuda] %-44s relative error %.2e (tolerance %.0e)%n", what, err, tol);
      if (!(err <= tol)) {
        failures.add(what + ": relative error " + err + " > " + tol + " (" + String.join(", ", family) + ")");
        families.addAll(java.util.List.of(family));
      }
    }

    void report() {
      if (!families.isEmpty()) System.out.println("[attention-variant-failed] " + String.join(",", families));
    }

    void check() {
      report();
      assertTrue(failures.isEmpty(), failures.size() + " variants off the default kernel's bits:\n" + String.join("\n", failures));
    }
  }


  static void check(String what, float[] got, float[] want, double tol) {
    double err = ReferenceOps.relativeError(got, want);
    System.out.printf("[cuda] %-44s relative error %.2e (tolerance %.0e)%n", what, err, tol);
    assertTrue(err <= tol, what + ": relative error " + err + " > " + tol);
  }

  /** The fp32 kernel on {@code qkv} against the double-precision oracle, within 1e-5. */
  static void checkFp32(float[] qkv, int batch, int n, int heads, boolean causal, String what) {
    int d = heads * 64;
    try (DeviceBuffer dq = device.allocate(4L * qkv.length).upload(qkv);
        DeviceBuffer dout = device.allocate(4L * batch * n * d)) {
      ops.attention(dout, dq, batch, n, heads, causal, Precision.FP32);
      check(what, dout.downloadFloats(batch * n * d), ReferenceOps.attention(qkv, batch, n, heads, causal), 1e-5);
    }
  }

  @Test
  void attentionMatchesReferenceInEveryPrecision() {
    Variants variants = new Variants();
    for (int n : SEQS) {
      int heads = HEADS[random.nextInt(HEADS.length)];
      int batch = n >= 257 ? 1 : 1 + random.nextInt(2); // keeps the double-precision oracle fast
      for (boolean causal : new boolean[] {false, true}) {
        int d = heads * 64;
        // q, k at the scale of real CLIP activations after in_proj: scores of a few units
        float[] qkv = randn(batch * n * 3 * d, 0.6);
        String shape = "B=" + batch + " N=" + n + " H=" + heads + (causal ? " causal" : "");
        checkFp32(qkv, batch, n, heads, causal, "attention fp32 " + shape);
        for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
          short[] h = toHalf(qkv, p);
          float[] rounded = fromHalf(h, p);
          float[] want = ReferenceOps.attention(rounded, batch, n, heads, causal);
          for (boolean flash : new boolean[] {false, true}) {
            try (DeviceBuffer dq = device.allocate(2L * h.length).upload(h);
                DeviceBuffer dout = device.allocate(2L * batch * n * d)) {
              if (flash) ops.flashAttention(dout, dq, batch, n, heads, causal, p);
              else ops.attention(dout, dq, batch, n, heads, causal, p);
              short[] bits = dout.downloadShorts(batch * n * d);
              float[] got = fromHalf(bits, p);
              check((flash ? "flash attention " : "attention ") + p + " " + shape, got, want, p == Precision.FP16 ? FP16_TOL : BF16_TOL);
              if (flash) {
                int e = batch * n * d;
                // the kernel reading V key by key: the same values in the same places, the same bits
                variants.same(bits, () -> {
                  ops.flashAttention(dout, dq, batch, n, heads, causal, p, true);
                  return dout.downloadShorts(e);
                }, "flash attention with V read key by key, " + p + " " + shape, "attention");
                // both compiled for 4 resident blocks an SM, and in blocks fitted to sequences of
                // up to 80 tokens: the same code, the same bits
                // (and every V tile layout: transposed by rows or by keys, row-major read with ldmatrix.trans;
                // each with Q and the output straight from and to the fragments, or staged in shared memory)
                // (each output zeroed first: a kernel that skips a row cannot pass on what the one before wrote)
                for (CudaOps.FlashV v : CudaOps.FlashV.values()) {
                  for (boolean staged : new boolean[] {false, true}) {
                    String how = "V " + v + (staged ? ", Q and output staged" : "") + ", " + p + " " + shape;
                    String[] family = Variants.of(v, staged);
                    for (int form = 0; form < 3; form++) { // 3 blocks an SM, 4, fitted rows
                      boolean four = form == 1, fit = form == 2;
                      variants.same(bits, () -> {
                        dout.zero();
                        ops.flashAttention(dout, dq, batch, n, heads, causal, p, v, four, fit, staged);
                        return dout.downloadShorts(e);
                      }, "flash attention" + (four ? " for 4 blocks an SM" : fit ? " in fitted blocks" : "") + ", " + how, family);
                    }
                  }
                }
                for (boolean staged : new boolean[] {false, true}) {
                  for (boolean fit : new boolean[] {false, true}) { // fit: 80-row items for 65 to 80 tokens
                    for (boolean rev : new boolean[] {false, true}) { // rev: the items walked last to first
                      variants.same(bits, () -> {
                        dout.zero();
                        ops.flashAttentionPipelined(dout, dq, batch, n, heads, causal, p, staged, fit, rev);
                        return dout.downloadShorts(e);
                      }, "pipelined flash attention" + (staged ? ", output staged" : "") + (fit ? ", fitted items" : "") + (rev ? ", items last to first" : "")
                          + ", " + p + " " + shape, Variants.pipelined(staged, fit, n, rev));
                      if (!staged) continue;
                      // the lean tile: the same bits; its base-2 softmax: within the tolerance of the reference
                      variants.lean(bits, want, lean -> {
                        dout.zero();
                        ops.flashAttentionPipelined(dout, dq, batch, n, heads, causal, p, true, fit, rev, lean);
                        return dout.downloadShorts(e);
                      }, "flash" + (fit ? " fit" : "") + (rev ? " rev" : "") + " " + p + " " + shape, p, Variants.pipelined(true, fit, n, rev));
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    variants.check();
  }

  /**
   * The pipelined flash kernel (persistent blocks, the next tile copied while the current one
   * computes) writes the one-block-a-tile kernel's bits where each block walks many items and
   * items have several tiles: CLIP's image and text shapes at batch sizes that give every block
   * several items, causal and not, and 197 and 257 tokens (4 and 5 tiles an item); at 65, 77 and
   * 80 tokens also in 80-row items (flashRows=fit: one item a sequence, 5 warps, the last warps'
   * rows past the first tile); each also with the items walked last to first (flashOrder=reversed).
   */
  @Test
  void pipelinedFlashAttentionMatchesTheBlockKernelOnManyItems() {
    Variants variants = new Variants();
    int items = 4 * device.multiprocessors();
    int[][] shapes = {{50, 12}, {77, 8}, {15, 8}, {197, 12}, {257, 16}, {65, 12}, {80, 8}};
    for (int[] sh : shapes) {
      // (65 to 80 tokens: the fitted kernel's one item a sequence, so that its blocks too walk two or more)
      int n = sh[0], heads = sh[1], qblocks = CudaOps.flashPipeFits(n) ? 1 : (n + 63) / 64;
      int batch = 2 * items / (heads * qblocks) + 1 + random.nextInt(7); // every block two items or more
      int d = heads * 64;
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        short[] h = toHalf(randn(batch * n * 3 * d, 0.6), p);
        for (boolean causal : new boolean[] {false, true}) {
          String shape = p + " B=" + batch + " N=" + n + " H=" + heads + (causal ? " causal" : "");
          try (DeviceBuffer dq = device.allocate(2L * h.length).upload(h);
              DeviceBuffer want = device.allocate(2L * batch * n * d);
              DeviceBuffer got = device.allocate(2L * batch * n * d)) {
            ops.flashAttention(want, dq, batch, n, heads, causal, p, CudaOps.FlashV.LDMATRIX, true, false);
            short[] bits = want.downloadShorts(batch * n * d);
            for (boolean staged : new boolean[] {false, true}) {
              for (boolean fit : CudaOps.flashPipeFits(n) ? new boolean[] {false, true} : new boolean[] {false}) {
                for (boolean rev : new boolean[] {false, true}) {
                  int e = batch * n * d;
                  variants.same(bits, () -> {
                    got.zero();
                    ops.flashAttentionPipelined(got, dq, batch, n, heads, causal, p, staged, fit, rev);
                    return got.downloadShorts(e);
                  }, "pipelined flash attention" + (staged ? " (output staged)" : "") + (fit ? " (80-row items)" : "") + (rev ? " (items last to first)" : "")
                      + " against the block kernel, " + shape, Variants.pipelined(staged, fit, n, rev));
                  if (!staged) continue;
                  // the lean tile (its indices by FaDiv over many items): the same bits; its base-2
                  // softmax within the 16-bit tolerance of the block kernel's output
                  variants.lean(bits, fromHalf(bits, p), lean -> {
                    got.zero();
                    ops.flashAttentionPipelined(got, dq, batch, n, heads, causal, p, true, fit, rev, lean);
                    return got.downloadShorts(e);
                  }, "flash vs block" + (fit ? " fit" : "") + (rev ? " rev" : "") + " " + shape, p, Variants.pipelined(true, fit, n, rev));
                }
              }
            }
          }
        }
      }
    }
    variants.check();
  }

  /**
   * The ModifiedResNets' attention pools (a mean token and the positional embedding prepended to
   * the last feature map, every token attending to every other; N = (R/32)² + 1 at 32 to 64 heads:
   * RN50 and RN101 at 224 px, RN50x4 at 288, RN50x16 at 384, RN50x64 at 448) through the fp32
   * kernel and the flash kernel against the double-precision oracle.
   */
  @Test
  void attentionAtEveryResNetAttentionPoolShape() {
    int[][] shapes = {{50, 32}, {82, 40}, {145, 48}, {197, 64}};
    for (int[] sh : shapes) {
      int n = sh[0], heads = sh[1], d = heads * 64, batch = 1 + random.nextInt(2);
      float[] qkv = randn(batch * n * 3 * d, 0.6);
      String shape = "B=" + batch + " N=" + n + " H=" + heads;
      checkFp32(qkv, batch, n, heads, false, "attention pool fp32 " + shape);
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        short[] h = toHalf(qkv, p);
        float[] want = ReferenceOps.attention(fromHalf(h, p), batch, n, heads, false);
        try (DeviceBuffer dq = device.allocate(2L * h.length).upload(h);
            DeviceBuffer dout = device.allocate(2L * batch * n * d)) {
          ops.flashAttention(dout, dq, batch, n, heads, false, p);
          check("attention pool flash " + p + " " + shape, fromHalf(dout.downloadShorts(batch * n * d), p), want,
              p == Precision.FP16 ? FP16_TOL : BF16_TOL);
        }
      }
    }
  }

  /**
   * An output 4 bytes off a 16-byte boundary (a view into a larger allocation): the staged and the
   * pipelined kernels, whose 16-byte stores cannot take it, leave it to the unstaged block kernel,
   * so every variant still writes the default kernel's bits. Q, K and V off a 16-byte boundary are
   * refused before any launch: every flash kernel, the default too, reads them 16 bytes at a time
   * (a desk review found that this test first asked the fallback kernel to read them there, a
   * misaligned-address fault on the GPU).
   */
  @Test
  void flashAttentionOnBuffersOffSixteenBytes() {
    Variants.asFamily("ldm", this::flashAttentionOffSixteenBytes); // the fallback runs the ldmatrix block kernel
  }

  private void flashAttentionOffSixteenBytes() {
    int n = 77, heads = 8, batch = 3, d = heads * 64;
    for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
      short[] h = toHalf(randn(batch * n * 3 * d, 0.6), p);
      long outBytes = 2L * batch * n * d;
      try (DeviceBuffer dq = device.allocate(2L * h.length).upload(h);
          DeviceBuffer want = device.allocate(outBytes);
          DeviceBuffer qBig = device.allocate(2L * h.length + 16);
          DeviceBuffer outBig = device.allocate(outBytes + 16)) {
        ops.flashAttention(want, dq, batch, n, heads, true, p);
        short[] bits = want.downloadShorts(batch * n * d);
        DeviceBuffer q4 = qBig.view(4, 2L * h.length).upload(h);
        DeviceBuffer out4 = outBig.view(4, outBytes);
        // the output off 16 bytes: the staged and pipelined kernels fall back to the unstaged block kernel
        for (boolean staged : new boolean[] {false, true}) {
          outBig.zero();
          ops.flashAttention(out4, dq, batch, n, heads, true, p, CudaOps.FlashV.LDMATRIX, true, false, staged);
          org.junit.jupiter.api.Assertions.assertArrayEquals(bits, out4.downloadShorts(batch * n * d),
              "flash attention into a misaligned output" + (staged ? " (staged asked for)" : "") + ", " + p);
          outBig.zero();
          ops.flashAttentionPipelined(out4, dq, batch, n, heads, true, p, staged);
          org.junit.jupiter.api.Assertions.assertArrayEquals(bits, out4.downloadShorts(batch * n * d),
              "pipelined flash attention into a misaligned output" + (staged ? " (staged asked for)" : "") + ", " + p);
        }
        // Q, K and V off 16 bytes: every flash kernel reads them 16 bytes at a time, so it is refused
        // before anything is launched (the device stays usable)
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> ops.flashAttention(want, q4, batch, n, heads, true, p, CudaOps.FlashV.LDMATRIX, true, false, false));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> ops.flashAttentionPipelined(want, q4, batch, n, heads, true, p, false));
        org.junit.jupiter.api.Assertions.assertArrayEquals(bits, want.downloadShorts(batch * n * d), "a refused call wrote its output");
      }
    }
  }

  /**
   * The pooled attention kernel ({@link CudaOps#attentionPooled}: one query row a sequence) against
   * the double-precision oracle at CLIP's pooled shapes: the class token (ViT-B/32, ViT-B/16,
   * ViT-L/14@336px; RN50's attention pool with its 32 heads), the end-of-text token of causal
   * texts (77 tokens, and a 15-token prompt batch) at the first, last and random positions, and an
   * index in the middle, causal; in every precision, with the keys past the pooled position holding
   * huge values that a missing mask would let through.
   */
  @Test
  void pooledAttentionMatchesReference() {
    Variants.asFamily("pooled", this::pooledAttentionAtEveryPooledShape);
  }

  private void pooledAttentionAtEveryPooledShape() {
    // the class token (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px), the attention pools' mean token
    // (RN50 and RN101, RN50x4, RN50x16, RN50x64), end-of-text tokens, a middle index
    int[][] shapes = {{50, 12, 0}, {197, 12, 0}, {257, 16, 0}, {577, 16, 0}, {50, 32, 0}, {82, 40, 0}, {145, 48, 0}, {197, 64, 0},
      {77, 8, 1}, {15, 8, 1}, {33, 8, 2}};
    for (int[] sh : shapes) {
      int n = sh[0], heads = sh[1], d = 64 * heads, batch = 3 + random.nextInt(3);
      boolean eot = sh[2] == 1, causal = sh[2] >= 1;
      int index = sh[2] == 2 ? n / 2 : 0;
      float[] q = randn(batch * d, 0.6), kv = randn(batch * n * 2 * d, 0.6);
      int[] ids = new int[batch * n], pos = new int[batch];
      for (int b = 0; b < batch; b++) {
        pos[b] = eot ? (b == 0 ? 0 : b == 1 ? n - 1 : random.nextInt(n)) : index;
        for (int t = 0; t < n; t++) ids[b * n + t] = t == pos[b] ? 49407 : random.nextInt(49406);
        // what a causal row must not see
        if (causal) for (int t = pos[b] + 1; t < n; t++) for (int c = 0; c < 2 * d; c++) kv[(b * n + t) * 2 * d + c] = 1000f;
      }
      String shape = "B=" + batch + " N=" + n + " H=" + heads + (eot ? " end-of-text" : " index " + index) + (causal ? " causal" : "");
      for (Precision p : Precision.values()) {
        float[] qp = q, kvp = kv;
        short[] qh = null, kvh = null;
        if (p != Precision.FP32) {
          qh = toHalf(q, p);
          kvh = toHalf(kv, p);
          qp = fromHalf(qh, p);
          kvp = fromHalf(kvh, p);
        }
        float[] want = ReferenceOps.attentionPooled(qp, kvp, pos, batch, n, heads, causal);
        int elem = p == Precision.FP32 ? 4 : 2;
        try (DeviceBuffer dq = device.allocate((long) elem * q.length);
            DeviceBuffer dkv = device.allocate((long) elem * kv.length);
            DeviceBuffer dids = device.allocate(4L * ids.length).upload(ids);
            DeviceBuffer dout = device.allocate((long) elem * batch * d)) {
          if (p == Precision.FP32) {
            dq.upload(q);
            dkv.upload(kv);
          } else {
            dq.upload(qh);
            dkv.upload(kvh);
          }
          dout.zero();
          ops.attentionPooled(dout, dq, dkv, eot ? dids : null, batch, n, heads, index, causal, p);
          float[] got = p == Precision.FP32 ? dout.downloadFloats(batch * d) : fromHalf(dout.downloadShorts(batch * d), p);
          // fp32 arithmetic throughout: one rounding to 16 bits at the end
          check("pooled attention " + p + " " + shape, got, want, p == Precision.FP32 ? 1e-5 : p == Precision.FP16 ? 1e-3 : 8e-3);
        }
      }
    }
  }

  @Test
  void cosineLogitsMatchReference() {
    int[][] shapes = {{1, 3, 512}, {8, 1000, 512}, {130, 77, 768}, {64, 4096, 1024}, {5, 7, 48}};
    for (int[] s : shapes) {
      int m = s[0], t = s[1], e = s[2];
      float[] x = randn(m * e, 3);
      float[] y = randn(t * e, 0.2);
      float scale = (float) Math.exp(4.6052);
      try (DeviceBuffer dx = device.allocate(4L * x.length).upload(x);
          DeviceBuffer dy = device.allocate(4L * y.length).upload(y);
          DeviceBuffer dl = device.allocate(4L * m * t)) {
        ops.cosineLogits(dl, dx, dy, m, t, e, scale);
        check("cosine logits " + m + "x" + t + "x" + e, dl.downloadFloats(m * t), ReferenceOps.cosineLogits(x, y, m, t, e, scale), 1e-5);
      }
    }
  }

  @Test
  void castsRoundToNearestEven() {
    float[] x = randn(100_003, 50);
    x[0] = 65504f; // largest fp16
    x[1] = 1e-8f; // fp16 subnormal range
    for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
      try (DeviceBuffer src = device.allocate(4L * x.length).upload(x);
          DeviceBuffer half = device.allocate(2L * x.length);
          DeviceBuffer back = device.allocate(4L * x.length)) {
        ops.cast(half, p, src, Precision.FP32, x.length);
        short[] got = half.downloadShorts(x.length);
        short[] want = toHalf(x, p);
        for (int i = 0; i < x.length; i++) {
          final int idx = i;
          assertTrue(got[i] == want[i], () -> p + " cast of " + x[idx] + ": got " + got[idx] + ", want " + want[idx]);
        }
        ops.cast(back, Precision.FP32, half, p, x.length);
        check("cast " + p + " and back", back.downloadFloats(x.length), fromHalf(want, p), 0);
      }
    }
  }
}

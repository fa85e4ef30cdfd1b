package dev.jclip.backend.cpu;

import dev.jclip.backend.HostFloatBackend;
import dev.jclip.backend.Precision;
import dev.jclip.graph.Fusion;
import dev.jclip.graph.Graph;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/**
 * The CPU backend: GEMMs (LINEAR, MATMUL, the patch and ResNet convolutions as im2col + GEMM) in
 * OpenBLAS, everything else in Java over a fork-join pool owned by this backend, on the Vector API
 * when the {@code jdk.incubator.vector} module is present (else the scalar twin).
 *
 * <p>Buffers are heap {@code float[]} handed to OpenBLAS without copying (see {@link Blas}); token
 * ids are stored as floats (exact below 2²⁴). Parameters are converted to float once per backend
 * and shared. One backend may serve several executors on several threads at once: parameter
 * conversion is synchronised, scratch is per thread, and OpenBLAS is thread-safe.
 *
 * <pre>{@code
 * try (CpuBackend cpu = new CpuBackend(); Executor ex = new Executor(graphs.image(1), cpu, List.of())) {
 *   float[] features = ex.run(Map.of("pixels", pixels)).get("image_features");
 * }
 * }</pre>
 */
public final class CpuBackend extends HostFloatBackend {
  /** Below this many multiply-adds an op runs on the calling thread: forking costs more. */
  private static final long PARALLEL_WORK = 65_536;

  private final int threads;
  private final ForkJoinPool pool;
  private final ScalarKernels kernels;
  private final Map<Tensor, float[]> params = new IdentityHashMap<>();
  /**
   * Attention's scratch (K transposed, scores) per thread: small, and used by the pool's workers.
   */
  private final ThreadLocal<float[][]> scratch = ThreadLocal.withInitial(() -> new float[3][0]);
  /**
   * im2col columns (up to tens of MB) are borrowed from this pool and given back, so that many
   * calling threads do not each keep their own: it holds as many buffers as calls ran at once.
   */
  private final java.util.concurrent.ConcurrentLinkedDeque<float[]> columns = new java.util.concurrent.ConcurrentLinkedDeque<>();

  /** All available processors, vector kernels when the module is present. */
  public CpuBackend() {
    this(Runtime.getRuntime().availableProcessors(), true);
  }

  /**
   * @param threads threads for Java ops and OpenBLAS (OpenBLAS's count is process-wide)
   * @param vector use the Vector API kernels when the module is present; false forces the scalar twin
   */
  public CpuBackend(int threads, boolean vector) {
    this(threads, vector, Precision.FP32);
  }

  /**
   * @param threads threads for Java ops and the GEMMs
   * @param vector use the Vector API kernels when the module is present; false forces the scalar twin
   * @param precision {@link Precision#FP32}, or {@link Precision#BF16} (LINEAR operands rounded to
   *     bf16, fp32 accumulation, every other op in fp32) on a CPU with AVX-512 BF16 or AMX
   * @throws IllegalArgumentException for fp16, or bf16 on a CPU without bf16 instructions or without oneDNN
   */
  public CpuBackend(int threads, boolean vector, Precision precision) {
    this(threads, vector, precision, System.getProperty("jclip.cpu.gemm", "onednn"));
  }

  /** As above with the weight-GEMM library named: "onednn" or "openblas" (fp32 only). */
  CpuBackend(int threads, boolean vector, Precision precision, String gemm) {
    if (threads < 1) throw new IllegalArgumentException("threads must be at least 1, got " + threads);
    this.linear = openLinear(precision, threads, gemm);
    this.threads = threads;
    this.pool = new ForkJoinPool(threads);
    this.kernels = vector && vectorAvailable() ? newVectorKernels() : new ScalarKernels();
    this.scalar = vector && !vectorAvailable();
    // GEMMs are split over this backend's own threads, each calling single-threaded OpenBLAS:
    // OpenBLAS's own threads spin while waiting and collapse when the cores are shared (see
    // docs/cpu-backend.md); -Djclip.cpu.openblasThreads=true restores OpenBLAS threading to compare.
    this.openblasThreads = Boolean.getBoolean("jclip.cpu.openblasThreads");
    Blas.init(openblasThreads ? threads : 1);
  }

  private final boolean openblasThreads;
  /** LINEAR and PATCH_EMBED through oneDNN with packed weights; null: OpenBLAS ({@code -Djclip.cpu.gemm=openblas}). */
  private final DnnlLinear linear;

  /**
   * oneDNN for the weight GEMMs unless {@code -Djclip.cpu.gemm=openblas} asks for OpenBLAS (fp32
   * only); when oneDNN cannot be loaded, fp32 falls back to OpenBLAS and bf16 is refused.
   */
  private static DnnlLinear openLinear(Precision precision, int threads, String gemm) {
    if (precision == Precision.FP16) {
      throw new IllegalArgumentException("precision fp16 runs on a GPU only; the CPU computes in fp32 or bf16");
    }
    boolean bf16 = precision == Precision.BF16;
    if (!bf16 && gemm.equals("openblas")) return null;
    if (!gemm.equals("onednn") && !gemm.equals("openblas")) {
      throw new IllegalArgumentException("the CPU GEMM library (-Djclip.cpu.gemm) must be onednn or openblas, not '" + gemm + "'");
    }
    if (bf16 && !CpuFeatures.bf16()) {
      throw new IllegalArgumentException("--precision bf16 on the CPU needs AVX-512 BF16 or AMX, which this CPU lacks (" + CpuFeatures.describe()
          + "); use fp32");
    }
    try {
      return new DnnlLinear(Dnnl.get(), bf16 ? Dnnl.BF16 : Dnnl.F32, threads);
    } catch (IllegalStateException e) {
      if (bf16) throw new IllegalArgumentException("--precision bf16 on the CPU needs oneDNN: " + e.getMessage(), e);
      return null;
    }
  }

  /** Which library runs the weight GEMMs: "oneDNN fp32", "oneDNN bf16" or "OpenBLAS fp32". */
  public String gemmLibrary() {
    return linear == null ? "OpenBLAS fp32" : linear.bf16() ? "oneDNN bf16" : "oneDNN fp32";
  }

  /**
   * {@code c[M,N] = a[M,K] · b[N,K]ᵀ} as LINEAR runs it (for {@link CpuGemmBench}); with oneDNN, b
   * is packed on its first use, as a model's weights are.
   */
  void gemmNT(int m, int n, int k, float[] a, float[] b, float[] c) {
    if (linear != null) {
      Tensor w;
      synchronized (benchWeights) {
        w = benchWeights.computeIfAbsent(b, x -> Tensor.ofFloats("bench.weight", new long[] {n, k}, x));
      }
      linear.run(m, n, k, a, w, null, null, 0, c, kernels, this::parallel);
      return;
    }
    gemm(true, m, n, k, a, 0, b, 0, c, 0);
  }

  /** How many oneDNN workspaces (stream, memory objects, scratchpad) the GEMMs made, or -1 without oneDNN (the tests). */
  int dnnlWorkspaces() {
    return linear == null ? -1 : linear.workspaceCount();
  }

  /** How many times oneDNN's memory objects by shape were destroyed to make room, or -1 without oneDNN (the tests). */
  int dnnlMemoryEvictions() {
    return linear == null ? -1 : linear.memoryEvictions();
  }

  /** The benchmark's weight arrays as tensors (the packed-weight key), by identity. */
  private final Map<float[], Tensor> benchWeights = new IdentityHashMap<>();

  /**
   * Row-major {@code c[M,N] = a[M,K] · b} with b [N,K] ({@code transB}) or [K,N], split into
   * column blocks over the pool. Each output element is computed by one call with the same K
   * order whatever the split, so results do not depend on M (the end-of-text cut stays exact).
   */
  private void gemm(boolean transB, int m, int n, int k, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff) {
    int ldb = transB ? k : n;
    double work = 2.0 * m * n * k;
    if (openblasThreads || threads == 1 || work < 2e6 || n < 64) {
      Blas.sgemm(transB, m, n, k, a, aOff, k, b, bOff, ldb, c, cOff, n);
      return;
    }
    // Four blocks per thread (of at least 64 columns): when another process takes a core, the
    // other threads steal its blocks (measured: +20-40% at batch 1 on the shared 2-core machine,
    // even at batch 32; each block re-packs A, about 1% more work).
    int parts = (int) Math.min(threads * 4L, Math.max(1, n / 64));
    int per = (n + parts - 1) / parts;
    per = (per + 15) / 16 * 16; // whole 16-column panels per part
    int blocks = (n + per - 1) / per, perBlock = per;
    parallel(blocks, Long.MAX_VALUE / blocks, (p0, p1) -> {
      for (int p = p0; p < p1; p++) {
        int n0 = p * perBlock, n1 = Math.min(n, n0 + perBlock);
        Blas.sgemm(transB, m, n1 - n0, k, a, aOff, k, b, bOff + (transB ? n0 * k : n0), ldb, c, cOff + n0, n);
      }
    });
  }

  private static final java.util.concurrent.atomic.AtomicBoolean SAID_SCALAR = new java.util.concurrent.atomic.AtomicBoolean();

  /** Whether vector kernels were asked for and the JVM lacks the incubator module: the scalar ones run. */
  private final boolean scalar;

  /**
   * Says {@link #SCALAR_NOTE} on {@code say}, once per process, where this backend runs the scalar
   * kernels for want of the vector module.
   */
  public void noteIfScalar(java.util.function.Consumer<String> say) {
    if (scalar && SAID_SCALAR.compareAndSet(false, true)) say.accept(SCALAR_NOTE);
  }

  /** Said once per JVM (by {@link #noteIfScalar}) when a backend that would run the vector kernels cannot. */
  static final String SCALAR_NOTE = "jclip: this JVM was started without --add-modules jdk.incubator.vector, so the CPU runs its scalar kernels"
      + " (up to ~10x slower on long sequences); start java with --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED"
      + " (scripts/jclip does)";

  /** Whether the Vector API module was added to this JVM ({@code --add-modules jdk.incubator.vector}). */
  public static boolean vectorAvailable() {
    return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
  }

  private static ScalarKernels newVectorKernels() {
    return new VectorKernels();
  }

  /** Whether this backend runs the Vector API kernels. */
  public boolean vectorized() {
    return !(kernels.getClass() == ScalarKernels.class);
  }

  public int threads() {
    return threads;
  }

  @Override
  public String name() {
    return linear != null && linear.bf16() ? "cpu/bf16" : "cpu";
  }

  @Override
  public boolean supports(Op op) {
    return true;
  }

  private float[] p(Node n, String role) {
    Tensor t = n.param(role);
    if (t == null) return null;
    synchronized (params) {
      float[] f = params.get(t);
      if (f == null) params.put(t, f = t.toFloatArray());
      return f;
    }
  }

  private float[] borrowColumns(long floats) {
    if (floats > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("im2col scratch of " + floats + " floats is too large");
    float[] c = columns.pollFirst();
    return c != null && c.length >= floats ? c : new float[(int) floats];
  }

  private float[] scratch(int slot, long floats) {
    if (floats > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("CPU scratch of " + floats + " floats is too large");
    float[][] s = scratch.get();
    if (s[slot].length < floats) s[slot] = new float[(int) floats];
    return s[slot];
  }

  /**
   * A pooled tower's last attention for its pooled rows alone ({@link Fusion#pooledAttention}: the
   * same values, ~1.5% less work); no other fusion (LINEAR_RESIDUAL would save nothing here).
   */
  @Override
  public Graph prepare(Graph graph, Set<String> keep) {
    Graph g = pooledAttention ? Fusion.pooledAttention(graph, keep) : graph;
    // ResNet activations stay channels last between the convolutions where these run on oneDNN's
    // convolution primitive (its order: no reorders there and back around each convolution)
    if (linear != null && convMode.equals("primitive") && channelsLast) g = Fusion.channelsLast(g, keep);
    return g;
  }

  /** {@code -Djclip.cpu.channelsLast=on|off}: whether {@link #prepare} keeps ResNet activations NHWC between convolutions (on by default). */
  private volatile boolean channelsLast = twoWayProperty("jclip.cpu.channelsLast", "on", "off", "channels-last ResNet activations");

  /** Whether graphs prepared from now on keep ResNet activations channels last ({@link #prepare}; the tests compare both). */
  public void channelsLast(boolean on) {
    channelsLast = on;
  }

  private volatile boolean pooledAttention = pooledAttentionProperty();

  /** {@code -Djclip.cpu.pooledAttention}: on (the default) or off; anything else is refused. */
  private static boolean pooledAttentionProperty() {
    return twoWayProperty("jclip.cpu.pooledAttention", "on", "off", "pooled last attention");
  }

  /**
   * A choice between two values of a system property: true for {@code yes} (also when unset), false
   * for {@code no}; anything else is refused with a message naming the CPU backend's {@code what}.
   */
  private static boolean twoWayProperty(String property, String yes, String no, String what) {
    String v = System.getProperty(property, yes);
    if (v.equals(yes)) return true;
    if (v.equals(no)) return false;
    throw new IllegalArgumentException("the CPU backend's " + what + " (-D" + property + ") must be " + yes + " or " + no + ", not '" + v + "'");
  }

  /**
   * Whether graphs prepared from now on compute a pooled tower's last attention for the pooled rows
   * alone (the default, {@code -Djclip.cpu.pooledAttention=off} for backends built without saying;
   * {@link #prepare}), or for every row as the graph says (the same values up to float rounding:
   * the pooled rows' query GEMM and attention run in another order).
   */
  public void pooledAttention(boolean on) {
    pooledAttention = on;
  }

  @Override
  public void execute(Node n, List<Buffer> inputs, Buffer output) {
    float[] y = data(output);
    float[] x = data(inputs.get(0));
    TensorSpec in = n.input(0).spec(), out = n.output().spec();
    switch (n.op()) {
      case LINEAR -> linear(n, x, y, in, out);
      case LINEAR_RESIDUAL -> {
        // Exactly LINEAR then ADD (float addition commutes, so which input the ADD had first does
        // not matter): the fused graph gives the unfused graph's bits. This backend does not make
        // this fusion (its prepare does not), so only a graph fused elsewhere runs this.
        linear(n, x, y, in, out);
        float[] r = data(inputs.get(1));
        int e = (int) out.elements(), chunk = 4096;
        parallel((e + chunk - 1) / chunk, chunk, (c0, c1) -> kernels.add(r, y, y, c0 * chunk, Math.min(e, c1 * chunk), false));
      }
      case LAYER_NORM_LINEAR -> {
        // Exactly LAYER_NORM then LINEAR: the fused graph gives the unfused graph's bits. This
        // backend does not make this fusion (its prepare does not), so only a graph fused elsewhere runs this.
        float[] g = p(n, "ln_weight"), b = p(n, "ln_bias");
        int d = in.dim(-1);
        float eps = n.floatAttr("eps");
        float[] normed = new float[Math.toIntExact(in.elements())];
        parallel((int) in.rows(), 4L * d, (r0, r1) -> kernels.layerNorm(x, normed, g, b, d, r0, r1, eps));
        linear(n, normed, y, in, out);
      }
      case MATMUL -> gemm(false, (int) in.rows(), out.dim(-1), in.dim(-1), x, 0, p(n, "weight"), 0, y, 0);
      case LAYER_NORM -> {
        float[] g = p(n, "weight"), b = p(n, "bias");
        int d = in.dim(-1);
        float eps = n.floatAttr("eps");
        parallel((int) in.rows(), 4L * d, (r0, r1) -> kernels.layerNorm(x, y, g, b, d, r0, r1, eps));
      }
      case ADD -> {
        float[] b = data(inputs.get(1));
        boolean relu = n.boolAttr("relu");
        int e = (int) out.elements(), chunk = 4096;
        parallel((e + chunk - 1) / chunk, chunk, (c0, c1) -> kernels.add(x, b, y, c0 * chunk, Math.min(e, c1 * chunk), relu));
      }
      case ATTENTION -> attention(n, x, y, in);
      case ATTENTION_POOLED -> attentionPooled(n, x, data(inputs.get(1)), inputs.size() > 2 ? data(inputs.get(2)) : null, y);
      case QUICK_GELU, GELU -> {
        int e = (int) out.elements(), chunk = 4096, code = n.op() == Op.GELU ? 2 : 1;
        System.arraycopy(x, 0, y, 0, e);
        int rows = e / chunk, tail = e - rows * chunk;
        parallel(rows, 16L * chunk, (r0, r1) -> kernels.biasActivation(y, null, chunk, r0, r1, code));
        if (tail > 0) {
          float[] t = new float[tail];
          System.arraycopy(y, rows * chunk, t, 0, tail);
          kernels.biasActivation(t, null, tail, 0, 1, code);
          System.arraycopy(t, 0, y, rows * chunk, tail);
        }
      }
      case PATCH_EMBED -> patchEmbed(n, x, y, in, out);
      case CLASS_POS_EMBED -> {
        float[] cls = p(n, "class"), pos = p(n, "positional");
        int batch = out.dim(0), len = out.dim(1), d = out.dim(2);
        parallel(batch * len, d, (r0, r1) -> {
          for (int r = r0; r < r1; r++) {
            int b = r / len, t = r % len;
            for (int i = 0; i < d; i++) y[r * d + i] = (t == 0 ? cls[i] : x[(b * (len - 1) + t - 1) * d + i]) + pos[t * d + i];
          }
        });
      }
      case TOKEN_EMBED -> {
        float[] tok = p(n, "token"), pos = p(n, "positional");
        int len = out.dim(1), d = out.dim(2), vocab = tok.length / d;
        for (int r = 0; r < out.dim(0) * len; r++) {
          int id = (int) x[r];
          if (id < 0 || id >= vocab || id != x[r]) {
            throw new IllegalArgumentException(n.name() + ": token id " + (x[r] == (long) x[r] ? String.valueOf((long) x[r]) : String.valueOf(x[r])) + " at sequence " + r / len + ", position " + r % len
                + " is outside the vocabulary [0, " + vocab + ")");
          }
          int t = r % len;
          for (int i = 0; i < d; i++) y[r * d + i] = tok[id * d + i] + pos[t * d + i];
        }
      }
      case TAKE_TOKEN -> {
        int len = in.dim(1), d = in.dim(2), idx = n.intAttr("index");
        for (int b = 0; b < in.dim(0); b++) System.arraycopy(x, (b * len + idx) * d, y, b * d, d);
      }
      case EOT_GATHER -> {
        float[] ids = data(inputs.get(1));
        int len = in.dim(1), d = in.dim(2);
        for (int b = 0; b < in.dim(0); b++) {
          int best = 0;
          for (int t = 1; t < len; t++) if (ids[b * len + t] > ids[b * len + best]) best = t;
          System.arraycopy(x, (b * len + best) * d, y, b * d, d);
        }
      }
      case CONV2D -> conv2d(n, x, y, in, out);
      case AVG_POOL -> {
        int c = in.dim(1), h = in.dim(2), wd = in.dim(3), k = n.intAttr("kernel"), oh = out.dim(2), ow = out.dim(3);
        float inv = 1f / (k * k);
        if (n.boolAttr("nhwc")) { // each output cell's channels at once, summed in the NCHW loop's order
          parallel(in.dim(0) * oh, (long) k * wd * c, (p0, p1) -> {
            float[] s = new float[c];
            for (int bo = p0; bo < p1; bo++) {
              int b = bo / oh, oy = bo % oh;
              for (int ox = 0; ox < ow; ox++) {
                java.util.Arrays.fill(s, 0f);
                for (int ky = 0; ky < k; ky++) {
                  for (int kx = 0; kx < k; kx++) {
                    int at = ((b * h + oy * k + ky) * wd + ox * k + kx) * c;
                    for (int ch = 0; ch < c; ch++) s[ch] += x[at + ch];
                  }
                }
                int to = ((b * oh + oy) * ow + ox) * c;
                for (int ch = 0; ch < c; ch++) y[to + ch] = s[ch] * inv;
              }
            }
          });
          break;
        }
        parallel(in.dim(0) * c, (long) h * wd, (p0, p1) -> {
          for (int bc = p0; bc < p1; bc++) {
            for (int oy = 0; oy < oh; oy++) {
              for (int ox = 0; ox < ow; ox++) {
                float s = 0;
                for (int ky = 0; ky < k; ky++) for (int kx = 0; kx < k; kx++) s += x[(bc * h + oy * k + ky) * wd + ox * k + kx];
                y[(bc * oh + oy) * ow + ox] = s * inv;
              }
            }
          }
        });
      }
      case ATTNPOOL_TOKENS -> {
        float[] pos = p(n, "positional");
        int c = in.dim(1), hw = in.dim(2) * in.dim(3), len = hw + 1;
        if (n.boolAttr("nhwc")) { // x is [B, HW, C] already: the tokens are its rows, the mean first (summed in the NCHW loop's order)
          parallel(in.dim(0), (long) hw * c, (b0, b1) -> {
            double[] mean = new double[c];
            for (int b = b0; b < b1; b++) {
              java.util.Arrays.fill(mean, 0);
              for (int i = 0; i < hw; i++) for (int ch = 0; ch < c; ch++) mean[ch] += x[(b * hw + i) * c + ch];
              for (int ch = 0; ch < c; ch++) y[(b * len) * c + ch] = (float) (mean[ch] / hw) + pos[ch];
              for (int i = 0; i < hw; i++) {
                int src = (b * hw + i) * c, dst = (b * len + 1 + i) * c, p = (1 + i) * c;
                for (int ch = 0; ch < c; ch++) y[dst + ch] = x[src + ch] + pos[p + ch];
              }
            }
          });
          break;
        }
        parallel(in.dim(0) * c, hw, (p0, p1) -> {
          for (int bc = p0; bc < p1; bc++) {
            int b = bc / c, ch = bc % c;
            double mean = 0;
            for (int i = 0; i < hw; i++) mean += x[bc * hw + i];
            y[(b * len) * c + ch] = (float) (mean / hw) + pos[ch];
            for (int i = 0; i < hw; i++) y[(b * len + 1 + i) * c + ch] = x[bc * hw + i] + pos[(1 + i) * c + ch];
          }
        });
      }
      case L2_NORMALIZE -> {
        int d = in.dim(-1);
        for (int r = 0; r < in.rows(); r++) {
          double s = 0;
          for (int i = 0; i < d; i++) s += (double) x[r * d + i] * x[r * d + i];
          double inv = 1 / Math.sqrt(s);
          for (int i = 0; i < d; i++) y[r * d + i] = (float) (x[r * d + i] * inv);
        }
      }
      case COSINE_LOGITS -> {
        float[] t = data(inputs.get(1));
        int m = in.dim(0), e = in.dim(1), cols = out.dim(1);
        double scale = n.floatAttr("scale");
        double[] nt = new double[cols];
        for (int j = 0; j < cols; j++) nt[j] = norm(t, j * e, e);
        for (int i = 0; i < m; i++) {
          double ni = norm(x, i * e, e);
          for (int j = 0; j < cols; j++) {
            double dot = 0;
            for (int k = 0; k < e; k++) dot += (double) x[i * e + k] * t[j * e + k];
            y[i * cols + j] = (float) (scale * dot / ni / nt[j]);
          }
        }
      }
      case SOFTMAX -> {
        int d = in.dim(-1);
        for (int r = 0; r < in.rows(); r++) {
          double max = Double.NEGATIVE_INFINITY, s = 0;
          for (int i = 0; i < d; i++) max = Math.max(max, x[r * d + i]);
          for (int i = 0; i < d; i++) s += Math.exp(x[r * d + i] - max);
          for (int i = 0; i < d; i++) y[r * d + i] = (float) (Math.exp(x[r * d + i] - max) / s);
        }
      }
      case INPUT -> throw new IllegalStateException("INPUT nodes are not executed");
    }
  }

  /** LINEAR: {@code y = act(x · Wᵀ + b)}, activation absent for LINEAR_RESIDUAL. */
  private void linear(Node n, float[] x, float[] y, TensorSpec in, TensorSpec out) {
    float[] b = p(n, "bias");
    int k = in.dim(-1), m = (int) in.rows(), cols = out.dim(-1);
    Activation act = n.enumAttr("activation", (Activation) null);
    int code = act == Activation.QUICK_GELU ? 1 : act == Activation.GELU ? 2 : 0;
    if (linear != null) {
      // The weight is read straight from its tensor when packed: no float copy is kept.
      linear.run(m, cols, k, x, n.param("weight"), n.param("bias"), b, code, y, kernels, this::parallel);
      return;
    }
    float[] w = p(n, "weight");
    gemm(true, m, cols, k, x, 0, w, 0, y, 0);
    if (b != null || code != 0) {
      parallel(m, (long) cols * (code == 0 ? 1 : 16), (r0, r1) -> kernels.biasActivation(y, b, cols, r0, r1, code));
    }
  }

  private static double norm(float[] a, int off, int e) {
    double s = 0;
    for (int k = 0; k < e; k++) s += (double) a[off + k] * a[off + k];
    return Math.sqrt(s);
  }

  private void attention(Node n, float[] x, float[] y, TensorSpec in) {
    int batch = in.dim(0), len = in.dim(1), heads = n.intAttr("heads"), hd = in.dim(2) / (3 * heads);
    boolean causal = n.boolAttr("causal");
    int lanes = kernels.attentionLanes(), np = (len + lanes - 1) / lanes * lanes;
    // Split rows too when (sequence, head) pairs alone cannot keep every thread busy.
    int pairs = batch * heads, parts = Math.max(1, Math.min(len / 16, (2 * threads + pairs - 1) / pairs));
    int rowsPer = (len + parts - 1) / parts;
    parallel(pairs * parts, (long) rowsPer * len * 128, (t0, t1) -> {
      float[] kt = scratch(1, (long) hd * np), s = scratch(2, 2L * (np + lanes)); // room for two rows' scores
      for (int t = t0; t < t1; t++) {
        int pair = t / parts, part = t % parts, i0 = part * rowsPer, i1 = Math.min(len, i0 + rowsPer);
        if (i0 < i1) kernels.attention(x, y, pair / heads, pair % heads, i0, i1, len, heads, hd, causal, kt, s);
      }
    });
  }

  /**
   * One query row a sequence ({@link Op#ATTENTION_POOLED}): q [B, D], kv [B, N, 2D], the pooled
   * position from ids (first argmax) or the node's index; fp32, one (sequence, head) a task.
   */
  private void attentionPooled(Node n, float[] q, float[] kv, float[] ids, float[] y) {
    TensorSpec s = n.input(1).spec();
    int batch = s.dim(0), len = s.dim(1), heads = n.intAttr("heads"), d = s.dim(2) / 2, hd = d / heads;
    float scale = ScalarKernels.attentionScale(hd);
    boolean causal = n.boolAttr("causal");
    int index = ids == null ? n.intAttr("index") : 0;
    parallel(batch * heads, 4L * hd * len, (t0, t1) -> {
      float[] sc = scratch(2, len);
      float[] o = new float[hd];
      for (int t = t0; t < t1; t++) {
        int b = t / heads, h = t % heads, pos = index;
        if (ids != null) for (int i = 1; i < len; i++) if (ids[b * len + i] > ids[b * len + pos]) pos = i;
        int keys = causal ? pos + 1 : len, qo = b * d + h * hd;
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < keys; j++) {
          int ko = (b * len + j) * 2 * d + h * hd;
          float dot = 0;
          for (int k = 0; k < hd; k++) dot += q[qo + k] * kv[ko + k];
          sc[j] = dot * scale;
          max = Math.max(max, sc[j]);
        }
        float total = 0;
        for (int j = 0; j < keys; j++) total += sc[j] = (float) Math.exp(sc[j] - max);
        java.util.Arrays.fill(o, 0f);
        for (int j = 0; j < keys; j++) {
          int vo = (b * len + j) * 2 * d + d + h * hd;
          float p = sc[j];
          for (int k = 0; k < hd; k++) o[k] += p * kv[vo + k];
        }
        for (int k = 0; k < hd; k++) y[qo + k] = o[k] / total;
      }
    });
  }

  /** im2col of non-overlapping patches, then one GEMM: [B·G², 3·P²] · weight[D, 3·P²]ᵀ. */
  private void patchEmbed(Node n, float[] x, float[] y, TensorSpec in, TensorSpec out) {
    int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3), ps = n.intAttr("patch"), d = out.dim(2);
    int gw = wd / ps, cells = out.dim(1), kk = c * ps * ps;
    float[] col = borrowColumns((long) batch * cells * kk);
    try {
      patchColumns(x, col, batch, c, h, wd, ps, gw, cells, kk);
      if (linear != null) {
        linear.run(batch * cells, d, kk, col, n.param("weight"), null, null, 0, y, kernels, this::parallel);
      } else {
        gemm(true, batch * cells, d, kk, col, 0, p(n, "weight"), 0, y, 0);
      }
    } finally {
      columns.addFirst(col);
    }
  }

  private void patchColumns(float[] x, float[] col, int batch, int c, int h, int wd, int ps, int gw, int cells, int kk) {
    parallel(batch * cells, kk, (r0, r1) -> {
      for (int r = r0; r < r1; r++) {
        int b = r / cells, cell = r % cells, gy = cell / gw, gx = cell % gw;
        for (int ch = 0; ch < c; ch++) {
          for (int ky = 0; ky < ps; ky++) {
            System.arraycopy(x, ((b * c + ch) * h + gy * ps + ky) * wd + gx * ps, col, r * kk + (ch * ps + ky) * ps, ps);
          }
        }
      }
    });
  }

  /**
   * A convolution: through oneDNN's matmul ({@link #conv2dRows}) when the LINEARs run there and
   * {@code -Djclip.cpu.conv} is not {@code openblas}, else per image: im2col [C·k·k, OH·OW] (skipped
   * for 1×1 stride-1 convs), OpenBLAS GEMM weight[O, C·k·k] · col, then the channel scale (if any),
   * bias and ReLU.
   */
  private void conv2d(Node n, float[] x, float[] y, TensorSpec in, TensorSpec out) {
    if (linear != null && convMode.equals("primitive")) {
      conv2dPrimitive(n, x, y, in, out);
      return;
    }
    if (n.boolAttr("nhwcIn") || n.boolAttr("nhwcOut")) {
      throw new IllegalStateException(n.name() + ": a graph prepared for channels-last convolutions run with -Djclip.cpu.conv=" + convMode);
    }
    if (linear != null && convMode.equals("matmul")) {
      conv2dRows(n, x, y, in, out);
      return;
    }
    float[] w = p(n, "weight"), scale = p(n, "scale"), bias = p(n, "bias");
    int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3);
    int o = out.dim(1), oh = out.dim(2), ow = out.dim(3);
    int k = n.intAttr("kernel"), s = n.intAttr("stride"), pad = n.intAttr("padding");
    boolean relu = n.boolAttr("relu"), direct = k == 1 && s == 1 && pad == 0;
    int kk = c * k * k, cells = oh * ow;
    float[] cb = direct ? null : borrowColumns((long) kk * cells);
    try {
      for (int b = 0; b < batch; b++) convImage(x, y, w, cb, b, direct, c, h, wd, o, oh, ow, k, s, pad, kk, cells);
    } finally {
      if (cb != null) columns.addFirst(cb);
    }
    parallel(batch * o, cells, (r0, r1) -> {
      for (int r = r0; r < r1; r++) {
        float bv = bias[r % o], sv = scale == null ? 1f : scale[r % o];
        for (int i = r * cells; i < (r + 1) * cells; i++) {
          float v = y[i] * sv + bv;
          y[i] = relu ? Math.max(v, 0f) : v;
        }
      }
    });
  }

  /**
   * How convolutions run when the LINEARs run on oneDNN ({@code -Djclip.cpu.conv}): {@code
   * primitive} (the default: oneDNN's convolution primitive, {@link #conv2dPrimitive}), {@code
   * matmul} (im2row and LINEAR's matmul, {@link #conv2dRows}) or {@code openblas} (per-image im2col
   * and sgemm, as when the LINEARs run on OpenBLAS).
   */
  private volatile String convMode = convProperty();

  /** Sets how convolutions run ({@link #convMode}'s values; the tests run both oneDNN paths). */
  void convMode(String mode) {
    if (!CONV_MODES.contains(mode)) throw new IllegalArgumentException("no convolution mode " + mode);
    this.convMode = mode;
  }

  private static final List<String> CONV_MODES = List.of("primitive", "matmul", "openblas");

  private static String convProperty() {
    String v = System.getProperty("jclip.cpu.conv", "primitive");
    if (CONV_MODES.contains(v)) return v;
    throw new IllegalArgumentException("the CPU backend's convolutions (-Djclip.cpu.conv) must be primitive, matmul or openblas, not '" + v + "'");
  }

  /**
   * A convolution through oneDNN's convolution primitive ({@link DnnlLinear#conv}: each image alone,
   * fp32 in and out, NCHW or channels last as the graph's marks say; in bf16 mode bf16 operands and
   * fp32 accumulation), the channel scale, bias and ReLU in fp32 as the primitive's post-ops.
   */
  private void conv2dPrimitive(Node n, float[] x, float[] y, TensorSpec in, TensorSpec out) {
    DnnlLinear.ConvShape g = new DnnlLinear.ConvShape(in.dim(1), in.dim(2), in.dim(3), out.dim(1), out.dim(2), out.dim(3), n.intAttr("kernel"),
        n.intAttr("stride"), n.intAttr("padding"));
    linear.conv(in.dim(0), g, x, n.boolAttr("nhwcIn"), n.param("weight"), n.param("scale"), n.param("bias"), n.boolAttr("relu"), y,
        n.boolAttr("nhwcOut"), kernels, this::parallel);
  }

  /**
   * The most floats of im2row rows (or of their product, or of the NHWC input) one oneDNN
   * convolution call takes: a batch runs in groups of images under it (at least one image a
   * group), so the scratch stays under 3 x 64 MB whatever the batch (an image larger than that
   * takes what it needs).
   */
  private volatile long convRowsFloats = 1L << 24;

  /** Sets the convolutions' group budget ({@link #convRowsFloats}; the tests run a batch in groups of one and two). */
  void convRowsFloats(long floats) {
    if (floats < 1) throw new IllegalArgumentException("a convolution group budget must be positive, got " + floats);
    this.convRowsFloats = floats;
    if (linear != null) linear.convGroupBytes(Math.min(Long.MAX_VALUE / 4, floats) * 4); // the primitive's groups likewise
  }

  /** Rows a task of the NCHW/NHWC transposes takes: 16 floats, a cache line, of each column. */
  private static final int CONV_TILE = 16;

  /**
   * A convolution as one matmul over a group of images: the input to NHWC, im2row [images·OH·OW,
   * k·k·C] (each output cell's row: its k·k input cells' channels, copied whole), times the weight
   * permuted to [O, k, k, C] through {@link DnnlLinear} (packed once; in bf16 mode both operands
   * rounded to bf16 with fp32 accumulation, as a LINEAR), then back to NCHW with the channel scale,
   * bias and ReLU in fp32. A 1×1 stride-1 convolution's rows are the NHWC input itself. Every
   * output element is computed by the same kernel whatever the batch (the matmul's rows are
   * independent), so an image's features do not depend on its batch.
   */
  private void conv2dRows(Node n, float[] x, float[] y, TensorSpec in, TensorSpec out) {
    float[] scale = p(n, "scale"), bias = p(n, "bias");
    int batch = in.dim(0), c = in.dim(1), h = in.dim(2), wd = in.dim(3);
    int o = out.dim(1), oh = out.dim(2), ow = out.dim(3);
    int k = n.intAttr("kernel"), s = n.intAttr("stride"), pad = n.intAttr("padding");
    boolean relu = n.boolAttr("relu"), direct = k == 1 && s == 1 && pad == 0;
    int kk = c * k * k, cells = oh * ow, plane = h * wd;
    Tensor weight = k == 1 ? n.param("weight") : channelsLast(n.param("weight"), o, c, k);
    long perImage = Math.max((long) cells * Math.max(kk, o), (long) c * plane);
    int group = (int) Math.max(1, Math.min(batch, convRowsFloats / perImage));
    float[] nhwc = borrowColumns((long) group * c * plane);
    float[] rows = direct ? null : borrowColumns((long) group * cells * kk);
    float[] prod = borrowColumns((long) group * cells * o);
    try {
      for (int b0 = 0; b0 < batch; b0 += group) {
        int images = Math.min(group, batch - b0), first = b0;
        transposeTiles(x, first * c * plane, c, plane, images, nhwc, 0, null, null, false);
        if (!direct) {
          parallel(images * oh, (long) ow * kk, (t0, t1) -> {
            for (int t = t0; t < t1; t++) {
              int b = t / oh, oy = t % oh;
              for (int ox = 0; ox < ow; ox++) {
                int dst = (t * ow + ox) * kk;
                for (int ky = 0; ky < k; ky++) {
                  int iy = oy * s - pad + ky;
                  for (int kx = 0; kx < k; kx++, dst += c) {
                    int ix = ox * s - pad + kx;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) java.util.Arrays.fill(rows, dst, dst + c, 0f);
                    else System.arraycopy(nhwc, ((b * h + iy) * wd + ix) * c, rows, dst, c);
                  }
                }
              }
            }
          });
        }
        linear.run(images * cells, o, kk, direct ? nhwc : rows, weight, null, null, 0, prod, kernels, this::parallel);
        transposeTiles(prod, 0, cells, o, images, y, first * o * cells, scale, bias, relu);
      }
    } finally {
      columns.addFirst(prod);
      if (rows != null) columns.addFirst(rows);
      columns.addFirst(nhwc);
    }
  }

  /**
   * For each of {@code images} matrices [r, cols] at {@code srcOff} (one after another), its
   * transpose [cols, r] into {@code dst} from {@code dstOff}, CONV_TILE rows a task; with
   * {@code bias}, each value of source column j becomes v·scale[j] + bias[j] (then ReLU'd if asked).
   */
  private void transposeTiles(float[] src, int srcOff, int r, int cols, int images, float[] dst, int dstOff, float[] scale, float[] bias,
      boolean relu) {
    int rt = (r + CONV_TILE - 1) / CONV_TILE;
    parallel(images * rt, (long) CONV_TILE * cols, (t0, t1) -> {
      for (int t = t0; t < t1; t++) {
        int img = t / rt, i0 = (t % rt) * CONV_TILE, i1 = Math.min(r, i0 + CONV_TILE);
        kernels.transpose(src, srcOff + img * r * cols, r, cols, dst, dstOff + img * r * cols, i0, i1, scale, bias, relu);
      }
    });
  }

  /** A convolution weight [O, C, k, k] permuted to [O, k, k, C] (the im2row rows' order), made once per weight. */
  private Tensor channelsLast(Tensor w, int o, int c, int k) {
    synchronized (permuted) {
      Tensor t = permuted.get(w);
      if (t == null) {
        float[] f = w.toFloatArray(), g = new float[f.length];
        for (int oc = 0; oc < o; oc++) {
          for (int ic = 0; ic < c; ic++) {
            for (int q = 0; q < k * k; q++) g[(oc * k * k + q) * c + ic] = f[(oc * c + ic) * k * k + q];
          }
        }
        t = Tensor.ofFloats(w.name() + " (channels last)", new long[] {o, k, k, c}, g);
        permuted.put(w, t);
      }
      return t;
    }
  }

  /** Convolution weights permuted for {@link #conv2dRows}, by identity of the original. */
  private final Map<Tensor, Tensor> permuted = new IdentityHashMap<>();

  private void convImage(float[] x, float[] y, float[] w, float[] cb, int b, boolean direct, int c, int h, int wd, int o, int oh, int ow,
      int k, int s, int pad, int kk, int cells) {
    {
      float[] col;
      int colOff;
      if (direct) {
        col = x;
        colOff = b * c * h * wd;
      } else {
        int base = b * c * h * wd;
        parallel(kk, cells, (r0, r1) -> {
          for (int r = r0; r < r1; r++) {
            int ic = r / (k * k), ky = r / k % k, kx = r % k;
            for (int oy = 0; oy < oh; oy++) {
              int iy = oy * s - pad + ky, dst = r * cells + oy * ow;
              if (iy < 0 || iy >= h) {
                java.util.Arrays.fill(cb, dst, dst + ow, 0f);
                continue;
              }
              int src = base + (ic * h + iy) * wd;
              for (int ox = 0; ox < ow; ox++) {
                int ix = ox * s - pad + kx;
                cb[dst + ox] = ix < 0 || ix >= wd ? 0f : x[src + ix];
              }
            }
          }
        });
        col = cb;
        colOff = 0;
      }
      gemm(false, o, cells, kk, w, 0, col, colOff, y, b * o * cells);
    }
  }

  /**
   * Runs {@code body} over [0, n) split into about four chunks per thread, on the pool; inline when
   * the whole is smaller than {@link #PARALLEL_WORK} or there is one thread. {@code workPerItem}
   * is a rough cost per index.
   */
  private void parallel(int n, long workPerItem, DnnlLinear.Range body) {
    if (n <= 0) return;
    if (threads == 1 || n == 1 || (long) n * workPerItem < PARALLEL_WORK) {
      body.run(0, n);
      return;
    }
    int chunks = Math.min(n, threads * 4), per = (n + chunks - 1) / chunks;
    boolean inPool = ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool;
    if (!inPool && CALLER_RUNS) {
      callerRuns(n, per, body);
      return;
    }
    List<ForkJoinTask<?>> tasks = new ArrayList<>(chunks);
    for (int c = 0; c < n; c += per) {
      int from = c, to = Math.min(n, c + per);
      tasks.add(new RecursiveAction() {
        @Override
        protected void compute() {
          body.run(from, to);
        }
      });
    }
    if (inPool) {
      ForkJoinTask.invokeAll(tasks);
    } else {
      pool.invoke(new RecursiveAction() {
        @Override
        protected void compute() {
          invokeAll(tasks);
        }
      });
    }
  }

  /** {@code -Djclip.cpu.callerRuns=false} goes back to handing whole regions to the pool (to compare). */
  private static final boolean CALLER_RUNS = !"false".equals(System.getProperty("jclip.cpu.callerRuns"));

  /**
   * A parallel region started from outside the pool: the calling thread claims chunks from a
   * shared counter alongside the pool's workers, instead of handing the region over and sleeping.
   * A worker that wakes late (parked threads take tens to hundreds of µs to wake on a VM, as long
   * as a batch-1 GEMM block) finds the chunks already taken, and the caller never waits for a
   * wake-up before work starts. Exceptions from any chunk are rethrown here after all chunks end.
   */
  private void callerRuns(int n, int per, DnnlLinear.Range body) {
    int count = (n + per - 1) / per;
    java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
    java.util.concurrent.atomic.AtomicInteger done = new java.util.concurrent.atomic.AtomicInteger();
    java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
    Thread caller = Thread.currentThread();
    Runnable work = () -> {
      for (int c; (c = next.getAndIncrement()) < count; ) {
        try {
          body.run(c * per, Math.min(n, (c + 1) * per));
        } catch (Throwable t) {
          failure.compareAndSet(null, t);
        } finally {
          if (done.incrementAndGet() == count) java.util.concurrent.locks.LockSupport.unpark(caller);
        }
      }
    };
    for (int i = 0, helpers = Math.min(threads - 1, count - 1); i < helpers; i++) pool.execute(work);
    work.run();
    // park() returns at once while the interrupt flag is set: clear it for the wait (the region
    // finishes either way) and set it again after, so an interrupted caller waits, not spins
    boolean interrupted = false;
    while (done.get() < count) {
      java.util.concurrent.locks.LockSupport.park(this);
      if (Thread.interrupted()) interrupted = true;
    }
    if (interrupted) Thread.currentThread().interrupt();
    Throwable t = failure.get();
    if (t instanceof RuntimeException r) throw r;
    if (t instanceof Error e) throw e;
    if (t != null) throw new IllegalStateException(t);
  }

  @Override
  public void close() {
    if (linear != null) linear.close();
    pool.shutdown();
    synchronized (permuted) {
      permuted.clear();
    }
    synchronized (params) {
      params.clear();
    }
  }
}

package dev.jclip.backend.cpu;

import dev.jclip.io.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * LINEAR ({@code y[M,N] = act(x[M,K] · W[N,K]ᵀ + b)}) as oneDNN matmul primitives, in fp32 or
 * bf16, with the weights reordered once into the layout the primitive asks for.
 *
 * <p>Why: at batch 1 (M = 50 or 77 rows) oneDNN's kernels run CLIP's shapes 1.3-1.9x faster than
 * OpenBLAS's sgemm on one core, and bf16 (AVX-512 BF16 or AMX) about twice that again
 * (docs/cpu-backend.md has the measurements).
 *
 * <p>How: the weight's N columns are cut into blocks, each with its own primitive and weights. M is
 * given at run time ({@code DNNL_RUNTIME_DIM_VAL}), so one primitive serves every batch and every
 * end-of-text cut; oneDNN then picks its JIT gemm ({@code gemm:jit}, weights in plain K x N
 * layout, panels packed per call) rather than its brgemm with blocked weights, which it picks for
 * a fixed M (measured: no faster in fp32, 15-25% faster in bf16 at M = 50-77, one thread; but a
 * primitive per M would mean JIT-compiling 4 primitives per LINEAR for every new text length). A
 * call converts x once into native memory (bf16 rounded to nearest even, or a copy), then runs
 * (column block x row chunk) tasks over the backend's threads, each a single-threaded oneDNN call
 * writing its block of the result, copied back into {@code y}. Bias and QuickGELU (swish with α =
 * 1.702) or GELU (erf) run as the primitive's fused epilogue. Every element of y is computed by
 * the same kernel whatever the number of rows (one row is run as two: see {@link #run}), so results
 * do not depend on batching.
 *
 * <p>Native memory (weights, scratch) belongs to this object and is freed by {@link #close}; the
 * garbage collector frees nothing here.
 */
final class DnnlLinear implements AutoCloseable {
  /** Column blocks are at least this wide: narrower blocks lose more to the kernel's edges than they gain in balance. */
  private static final int MIN_BLOCK = 64;

  private final Dnnl dnnl;
  private final MemorySegment engine;
  private final int dtype;
  private final int threads;
  private final Arena arena = Arena.ofShared();
  private final Map<Tensor, List<Packed>> packed = new IdentityHashMap<>();
  private final List<Workspace> workspaces = new ArrayList<>();
  private final ThreadLocal<Workspace> workspace = ThreadLocal.withInitial(this::newWorkspace);
  private volatile boolean closed;

  /**
   * @param dtype {@link Dnnl#F32} or {@link Dnnl#BF16}: the operands' type (accumulation is fp32 either way)
   * @param threads the backend's thread count (sets how many column blocks a weight is cut into)
   */
  DnnlLinear(Dnnl dnnl, int dtype, int threads) {
    this.dnnl = dnnl;
    this.dtype = dtype;
    this.threads = threads;
    dnnl.singleThreaded(); // before anything of oneDNN runs on this thread (see Workspace)
    this.engine = dnnl.engine();
  }

  boolean bf16() {
    return dtype == Dnnl.BF16;
  }

  /** One column block of one weight: its packed weights and its primitive. */
  private record Block(int n0, int n1, MemorySegment primitive, MemorySegment pd, MemorySegment weights, MemorySegment bias) {}

  /** A weight packed for one (bias, activation) epilogue. */
  private record Packed(Tensor bias, int act, Block[] blocks) {}

  private record Shape(int rows, int cols, int type, int slot) {}

  /** Per-thread state: a oneDNN stream and memory objects by shape (small; scratch is pooled, see {@link #borrow}). */
  private final class Workspace {
    final MemorySegment stream = dnnl.stream(engine);
    final Map<Shape, MemorySegment[]> memories = new java.util.HashMap<>();
    final MemorySegment args = arena.allocate(16 * 4, 8);
    /** Where {@link Dnnl#execute} keeps this thread's signal mask while a primitive runs. */
    final MemorySegment savedMask = arena.allocate(Dnnl.SIGSET_BYTES, 8);

    /**
     * A memory object (with its descriptor) for a dense row-major [rows, cols] matrix, made once
     * per shape; {@code slot} keeps the source and destination of one call apart.
     */
    MemorySegment memory(int rows, int cols, int type, int slot) {
      Shape key = new Shape(rows, cols, type, slot);
      MemorySegment[] m = memories.get(key);
      if (m == null && memories.size() >= 256) {
        // Text batches bring a new row count with every end-of-text cut: keep this bounded.
        for (MemorySegment[] old : memories.values()) {
          dnnl.destroyMemory(old[1]);
          dnnl.destroyMd(old[0]);
        }
        memories.clear();
      }
      if (m == null) {
        MemorySegment md = dnnl.md(rows, cols, type, Dnnl.TAG_AB);
        m = new MemorySegment[] {md, dnnl.memory(engine, md, MemorySegment.NULL)};
        memories.put(key, m);
      }
      return m[1];
    }
  }

  private Workspace newWorkspace() {
    // This thread's oneDNN calls run on one OpenMP thread: the backend's tasks are the parallelism.
    dnnl.singleThreaded();
    Workspace w = new Workspace();
    synchronized (workspaces) {
      if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
      workspaces.add(w);
    }
    return w;
  }

  /** The parallel loop of the backend: runs body(i) for i in [0, n) over its threads. */
  @FunctionalInterface
  interface Parallel {
    void run(int n, long workPerItem, Range body);
  }

  @FunctionalInterface
  interface Range {
    void run(int from, int to);
  }

  /**
   * {@code y[m, n] = act(x[m, k] · w[n, k]ᵀ + b)}.
   *
   * @param weight the weight [n, k] (packed on first use; its identity is the key)
   * @param bias the bias tensor (null for none) and {@code b} its values
   * @param act 0 none, 1 QuickGELU, 2 GELU (erf)
   * @param kernels converts x to bf16
   */
  void run(int m, int n, int k, float[] x, Tensor weight, Tensor bias, float[] b, int act, float[] y, ScalarKernels kernels,
      Parallel parallel) {
    // The workspace first: it sets this thread's OpenMP team to one thread, which oneDNN reads
    // when a primitive is created (a primitive created with two would fork a team per call).
    workspace.get();
    Block[] blocks = blocks(weight, bias, b, act, n, k);
    int esize = dtype == Dnnl.BF16 ? 2 : 4;
    // oneDNN runs a single row through another kernel (a matrix-vector product) that sums in
    // another order: one row is computed as two equal rows, so that a row's result never depends
    // on how many rows the call has (DnnlLinearTest).
    int rowsRun = Math.max(m, 2);
    long srcBytes = (long) rowsRun * k * esize, dstBytes = 4L * rowsRun * n;
    long srcPadded = (srcBytes + 63) / 64 * 64;
    Scratch scratch = borrow(srcPadded + dstBytes);
    try {
      run(m, n, k, x, blocks, y, kernels, parallel, esize, rowsRun, scratch.seg.asSlice(0, srcBytes), scratch.seg.asSlice(srcPadded, dstBytes));
    } finally {
      giveBack(scratch);
    }
  }

  private void run(int m, int n, int k, float[] x, Block[] blocks, float[] y, ScalarKernels kernels, Parallel parallel, int esize,
      int rowsRun, MemorySegment src, MemorySegment dst) {
    parallel.run(rowsRun, k, (r0, r1) -> {
      for (int r = r0; r < r1; r++) {
        int from = Math.min(r, m - 1) * k; // the padding row repeats the last
        if (dtype == Dnnl.BF16) {
          kernels.toBf16(x, from, k, src, 2L * r * k);
        } else {
          MemorySegment.copy(x, from, src, ValueLayout.JAVA_FLOAT, 4L * r * k, k);
        }
      }
    });
    // Row chunks, for about four tasks per thread (stealing evens out a busy core), only when
    // there are many rows: every chunk streams its block's weights again, which at M = 50 or 77
    // (batch 1) costs more than the multiply.
    int chunks = m < 256 ? 1 : Math.max(1, Math.min((4 * threads + blocks.length - 1) / blocks.length, m / 128));
    int per = (rowsRun + chunks - 1) / chunks;
    int tasks = blocks.length * ((rowsRun + per - 1) / per);
    parallel.run(tasks, Long.MAX_VALUE / Math.max(1, tasks), (t0, t1) -> {
      Workspace ws = workspace.get();
      for (int t = t0; t < t1; t++) {
        Block blk = blocks[t % blocks.length];
        int r0 = (t / blocks.length) * per, r1 = Math.min(rowsRun, r0 + per), rows = r1 - r0, cols = blk.n1 - blk.n0;
        // Each block's part of y is dense in the scratch (block-major: rowsRun x cols from
        // rowsRun x n0), then copied row by row into y.
        MemorySegment sm = ws.memory(rows, k, dtype, 0), dm = ws.memory(rows, cols, Dnnl.F32, 1);
        long blockBase = 4L * ((long) rowsRun * blk.n0);
        dnnl.setHandle(sm, src.asSlice((long) r0 * k * esize));
        dnnl.setHandle(dm, dst.asSlice(blockBase + 4L * r0 * cols));
        int nargs = 0;
        Dnnl.arg(ws.args, nargs++, Dnnl.ARG_SRC, sm);
        Dnnl.arg(ws.args, nargs++, Dnnl.ARG_WEIGHTS, blk.weights);
        if (blk.bias != null) Dnnl.arg(ws.args, nargs++, Dnnl.ARG_BIAS, blk.bias);
        Dnnl.arg(ws.args, nargs++, Dnnl.ARG_DST, dm);
        dnnl.execute(blk.primitive, ws.stream, nargs, ws.args, ws.savedMask);
        for (int r = r0; r < Math.min(r1, m); r++) {
          MemorySegment.copy(dst, ValueLayout.JAVA_FLOAT, blockBase + 4L * r * cols, y, r * n + blk.n0, cols);
        }
      }
    });
  }

  /** Native scratch for one call's x and y, in its own arena so that it can be freed alone. */
  private record Scratch(Arena arena, MemorySegment seg) {}

  /**
   * Scratch is borrowed per call and given back, not kept per calling thread: a service calling
   * from hundreds of request threads holds as many buffers as calls ran at once.
   */
  private Scratch borrow(long bytes) {
    Scratch s = scratchPool.pollFirst();
    if (s != null && s.seg.byteSize() >= bytes) return s;
    if (s != null) free(s);
    Arena a = Arena.ofShared();
    Scratch fresh = new Scratch(a, a.allocate(Math.max(bytes, s == null ? 0 : s.seg.byteSize() * 3 / 2), 64));
    synchronized (allScratch) {
      allScratch.add(fresh);
    }
    return fresh;
  }

  private void giveBack(Scratch s) {
    if (closed) {
      free(s);
    } else {
      scratchPool.addFirst(s);
    }
  }

  private void free(Scratch s) {
    synchronized (allScratch) {
      if (allScratch.remove(s)) s.arena.close();
    }
  }

  private final java.util.concurrent.ConcurrentLinkedDeque<Scratch> scratchPool = new java.util.concurrent.ConcurrentLinkedDeque<>();
  private final java.util.Set<Scratch> allScratch = java.util.Collections.newSetFromMap(new IdentityHashMap<>());

  private Block[] blocks(Tensor weight, Tensor bias, float[] b, int act, int n, int k) {
    synchronized (packed) {
      if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
      List<Packed> list = packed.computeIfAbsent(weight, t -> new ArrayList<>(1));
      for (Packed p : list) if (p.bias == bias && p.act == act) return p.blocks;
      if (weight.numel() != (long) n * k) {
        throw new IllegalArgumentException("weight " + weight.name() + " has " + weight.numel() + " elements, expected " + n + " x " + k);
      }
      Block[] blocks = pack(weight.toFloatArray(), b, act, n, k);
      list.add(new Packed(bias, act, blocks));
      return blocks;
    }
  }

  /** Cuts w [n, k] into column blocks and packs each for its primitive. */
  private Block[] pack(float[] w, float[] b, int act, int n, int k) {
    // One block per thread: with the caller claiming work (CpuBackend.parallel) more, smaller
    // blocks only added calls (77-token texts at batch 1: 16.8-19.6 texts/s with one block per
    // thread, 15.7-17.9 with two, 13.8-18.0 with four, three interleaved rounds).
    int count = Math.max(1, Math.min(threads, n / MIN_BLOCK));
    int per = (n + count - 1) / count;
    per = (per + 15) / 16 * 16;
    count = (n + per - 1) / per;
    Block[] blocks = new Block[count];
    int alg = act == 1 ? Dnnl.ELTWISE_SWISH : act == 2 ? Dnnl.ELTWISE_GELU_ERF : -1;
    float alpha = act == 1 ? 1.702f : 0f;
    MemorySegment attr = dnnl.attr(Dnnl.FPMATH_STRICT, alg, alpha);
    try {
      for (int j = 0; j < count; j++) {
        int n0 = j * per, n1 = Math.min(n, n0 + per), cols = n1 - n0;
        MemorySegment srcMd = dnnl.md(Dnnl.RUNTIME, k, dtype, Dnnl.TAG_AB);
        MemorySegment anyMd = dnnl.md(k, cols, dtype, Dnnl.TAG_ANY);
        MemorySegment biasMd = b == null ? MemorySegment.NULL : dnnl.md(1, cols, Dnnl.F32, Dnnl.TAG_AB);
        MemorySegment dstMd = dnnl.md(Dnnl.RUNTIME, cols, Dnnl.F32, Dnnl.TAG_AB);
        MemorySegment pd;
        try {
          pd = dnnl.matmulPd(engine, srcMd, anyMd, biasMd, dstMd, attr);
        } finally {
          dnnl.destroyMd(srcMd);
          dnnl.destroyMd(anyMd);
          dnnl.destroyMd(dstMd);
        }
        MemorySegment biasMem = null;
        if (b != null) {
          MemorySegment bias = arena.allocate(4L * cols, 64);
          MemorySegment.copy(b, n0, bias, ValueLayout.JAVA_FLOAT, 0, cols);
          biasMem = dnnl.memory(engine, biasMd, bias);
          dnnl.destroyMd(biasMd);
        }
        MemorySegment packedMd = dnnl.queryMd(pd, Dnnl.QUERY_WEIGHTS_MD);
        MemorySegment weights = arena.allocate(dnnl.mdSize(packedMd), 64);
        MemorySegment weightsMem = dnnl.memory(engine, packedMd, weights);
        reorder(w, n0, cols, k, weightsMem, packedMd);
        blocks[j] = new Block(n0, n1, dnnl.primitive(pd), pd, weightsMem, biasMem);
      }
    } finally {
      dnnl.destroyAttr(attr);
    }
    return blocks;
  }

  /** Rows [n0, n0 + cols) of w [n, k] (fp32, row-major: a [k, cols] matrix in "ba" order) into the packed layout. */
  private void reorder(float[] w, int n0, int cols, int k, MemorySegment packedMem, MemorySegment packedMd) {
    try (Arena tmp = Arena.ofConfined()) {
      MemorySegment plain = tmp.allocate(4L * cols * k, 64);
      MemorySegment.copy(w, n0 * k, plain, ValueLayout.JAVA_FLOAT, 0, cols * k);
      MemorySegment plainMd = dnnl.md(k, cols, Dnnl.F32, Dnnl.TAG_BA);
      MemorySegment plainMem = dnnl.memory(engine, plainMd, plain);
      MemorySegment pd = dnnl.reorderPd(engine, plainMd, packedMd);
      MemorySegment prim = dnnl.primitive(pd);
      Workspace ws = workspace.get();
      Dnnl.arg(ws.args, 0, Dnnl.ARG_SRC, plainMem);
      Dnnl.arg(ws.args, 1, Dnnl.ARG_DST, packedMem);
      dnnl.execute(prim, ws.stream, 2, ws.args, ws.savedMask);
      dnnl.destroyPrimitive(prim);
      dnnl.destroyPd(pd);
      dnnl.destroyMemory(plainMem);
      dnnl.destroyMd(plainMd);
    }
  }

  @Override
  public void close() {
    synchronized (packed) {
      synchronized (workspaces) {
        if (closed) return;
        closed = true;
      }
      for (List<Packed> list : packed.values()) {
        for (Packed p : list) {
          for (Block b : p.blocks) {
            dnnl.destroyPrimitive(b.primitive);
            dnnl.destroyMemory(b.weights);
            if (b.bias != null) dnnl.destroyMemory(b.bias);
            dnnl.destroyPd(b.pd);
          }
        }
      }
      packed.clear();
      synchronized (workspaces) {
        for (Workspace w : workspaces) {
          for (MemorySegment[] m : w.memories.values()) {
            dnnl.destroyMemory(m[1]);
            dnnl.destroyMd(m[0]);
          }
          dnnl.destroyStream(w.stream);
        }
        workspaces.clear();
      }
      synchronized (allScratch) {
        for (Scratch sc : allScratch) sc.arena.close();
        allScratch.clear();
      }
      scratchPool.clear();
      dnnl.destroyEngine(engine);
      arena.close();
    }
  }
}

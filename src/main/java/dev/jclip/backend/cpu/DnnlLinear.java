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
 * primitive per M would mean JIT-compiling 4 primitives per LINEAR for every new text length). The
 * exception is bf16 on AMX, where oneDNN's runtime-M kernel computes wrong: there each call's rows
 * are rounded up to a multiple of 8 (at most 256 a call) and run by a primitive made for that
 * count, at most 32 a block ({@link #FIXED_ROW_STEP}). A call converts x once into native memory
 * (bf16 rounded to nearest even, or a copy), then runs (column block x row chunk) tasks over the
 * backend's threads, each a single-threaded oneDNN call writing its block of the result, copied
 * back into {@code y}. Bias and QuickGELU (swish with α = 1.702) or GELU (erf) run as the
 * primitive's fused epilogue. Every element of y is computed by the same kernel whatever the
 * number of rows (one row is run as two: see {@link #run}), so results do not depend on batching.
 * Each task brings a scratchpad of its own to every primitive it runs (see {@link Dnnl#attr}),
 * with its oneDNN stream and memory objects: a {@code Workspace} borrowed for the task from a pool
 * and given back, so that there are as many as tasks ever ran at once, not one per thread that
 * ever called (a service with a thread per request, virtual threads among them, kept one per
 * request until {@link #close}: session 23).
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
  /** Every workspace made (freed by {@link #close}); the idle ones are also in {@link #idleWorkspaces}. */
  private final List<Workspace> workspaces = new ArrayList<>();
  private final java.util.concurrent.ConcurrentLinkedDeque<Workspace> idleWorkspaces = new java.util.concurrent.ConcurrentLinkedDeque<>();
  private volatile boolean closed;
  /** Held for reading by every call and for writing by {@link #close}: closing waits for the calls running (a native use-after-free otherwise). */
  private final java.util.concurrent.locks.ReentrantReadWriteLock use = new java.util.concurrent.locks.ReentrantReadWriteLock();
  /** The most idle workspaces kept (more are destroyed when given back). */
  private final int maxIdleWorkspaces;
  private final java.util.concurrent.atomic.AtomicInteger idleCount = new java.util.concurrent.atomic.AtomicInteger();

  /**
   * @param dtype {@link Dnnl#F32} or {@link Dnnl#BF16}: the operands' type (accumulation is fp32 either way)
   * @param threads the backend's thread count (sets how many column blocks a weight is cut into)
   */
  DnnlLinear(Dnnl dnnl, int dtype, int threads) {
    this.dnnl = dnnl;
    this.dtype = dtype;
    this.threads = threads;
    this.maxIdleWorkspaces = Math.max(8, 4 * threads);
    dnnl.singleThreaded(); // before anything of oneDNN runs on this thread (see takeWorkspace)
    this.engine = dnnl.engine();
  }

  boolean bf16() {
    return dtype == Dnnl.BF16;
  }

  /**
   * One column block of one weight: its packed weights and its primitive (rows given at run time;
   * {@code pd} is that primitive's descriptor, kept for {@code weightsMd}).
   * {@code fixed} is non-null where that primitive would be oneDNN's AMX kernel, which computes wrong
   * with rows given at run time (see {@link #FIXED_ROW_STEP}): {@code primitive} is then null, and
   * {@code fixed} holds a primitive for each row count run, made for that count with the same packed
   * weights ({@code weightsMd}, owned by {@code pd}) and epilogue ({@code alg}, {@code alpha}).
   */
  private record Block(int n0, int n1, Exec primitive, MemorySegment pd, MemorySegment weights, MemorySegment bias,
      MemorySegment weightsMd, int alg, float alpha, java.util.concurrent.ConcurrentHashMap<Integer, Exec> fixed) {}

  /** A primitive, its descriptor, and the scratchpad an execution must bring (its descriptor, owned by {@code pd}, and bytes). */
  private record Exec(MemorySegment pd, MemorySegment primitive, MemorySegment scratchMd, long scratchBytes) {}

  private Exec exec(MemorySegment pd) {
    MemorySegment scratchMd = dnnl.queryMdOrNull(pd, Dnnl.QUERY_SCRATCHPAD_MD);
    return new Exec(pd, dnnl.primitive(pd), scratchMd, scratchMd.equals(MemorySegment.NULL) ? 0 : dnnl.mdSize(scratchMd));
  }

  /**
   * Where oneDNN runs a bf16 block on AMX ({@code brg_matmul:*_amx}), each call's rows are a
   * multiple of this (padding rows repeat the last) and at most {@link #FIXED_MAX_ROWS}, and run
   * through a primitive made for exactly that many rows: at most 32 primitives a block.
   *
   * <p>Why: oneDNN 3.11's (and 3.13's) AMX bf16 matmul with the row count given at run time
   * ({@code DNNL_RUNTIME_DIM_VAL}) computes some rows wrong. Measured on a Xeon with AMX-BF16
   * outside the JVM (docs/cpu-backend.md; {@code scripts/onednn-amx-check.c}): with K = 2560, 2816,
   * 3072, 3328 or 5120 (not 512-2048 or 4096), rows 17-31 of a 49-row call came out 0.65-0.87
   * off (relative), and 224 of the 246 row counts from 10 to 255 had such rows; with the row
   * count fixed when the primitive is made, every count tried was right (1-130 and eight up to
   * 1000), and a row's bits did not depend on the count (1-256 rows, one packed weight). CLIP's
   * c_proj has K = 3072 (width 768) and ViT-B/32's patch embedding K = 3072.
   */
  static final int FIXED_ROW_STEP = 8;

  /** The most memory objects by shape a workspace keeps (see {@code Workspace.makeRoom}). */
  static final int MAX_MEMORIES = 256;

  /** The most rows one call runs where primitives are made per row count (see {@link #FIXED_ROW_STEP}). */
  static final int FIXED_MAX_ROWS = 256;

  /** A weight packed for one (bias, activation) epilogue. */
  private record Packed(Tensor bias, int act, Block[] blocks) {}

  private record Shape(int rows, int cols, int type, int slot) {}

  /**
   * One task's state: a oneDNN stream, memory objects by shape and a scratchpad, used by one task at
   * a time ({@link #takeWorkspace}); the x and y scratch of a call are pooled apart ({@link #borrow}).
   */
  private final class Workspace {
    final MemorySegment stream = dnnl.stream(engine);
    final Map<Object, MemorySegment[]> memories = new java.util.HashMap<>();
    /** Growable native buffers of a convolution task, by slot, in their own arenas. */
    final Arena[] bufferArenas = new Arena[3];
    final MemorySegment[] buffers = new MemorySegment[3];

    /** Slot {@code slot}'s buffer, at least {@code bytes} (contents not kept when it grows). */
    MemorySegment buffer(int slot, long bytes) {
      if (buffers[slot] == null || buffers[slot].byteSize() < bytes) {
        if (bufferArenas[slot] != null) bufferArenas[slot].close();
        bufferArenas[slot] = Arena.ofShared();
        buffers[slot] = bufferArenas[slot].allocate(bytes, 64);
      }
      return buffers[slot].asSlice(0, bytes);
    }

    /**
     * A memory object (with its own descriptor: {@code dims}, {@code type}, {@code tag}) kept under
     * {@code key}, made on first use. Room is made beforehand ({@link #makeRoom}).
     */
    MemorySegment memory(Object key, long[] dims, int type, int tag) {
      MemorySegment[] m = memories.get(key);
      if (m == null) {
        MemorySegment md = dnnl.md(dims, type, tag);
        m = new MemorySegment[] {md, dnnl.memory(engine, md, MemorySegment.NULL)};
        memories.put(key, m);
      }
      return m[1];
    }
    /** How many times {@link #makeRoom} destroyed the memory objects (the tests). */
    int evictions;
    /** The workspace's own small native buffers, freed with it (a workspace destroyed after a burst frees them). */
    final Arena own = Arena.ofShared();
    final MemorySegment args = own.allocate(16 * 8, 8); // dnnl_exec_arg_t: src, weights, bias, dst, scratchpad
    /** Where {@link Dnnl#execute} keeps the running thread's signal mask while a primitive runs. */
    final MemorySegment savedMask = own.allocate(Dnnl.SIGSET_BYTES, 8);
    /** The scratchpad of every primitive run on this workspace (see {@link Dnnl#attr}), grown as needed; memory objects over it by size. */
    Arena scratchArena;
    MemorySegment scratch;
    final Map<Long, MemorySegment> scratchMemories = new java.util.HashMap<>();

    /** A memory object over this workspace's scratchpad for {@code e} (at least its {@code scratchBytes}). */
    MemorySegment scratchpad(Exec e) {
      if (scratch == null || scratch.byteSize() < e.scratchBytes) {
        if (scratchArena != null) scratchArena.close();
        scratchArena = Arena.ofShared();
        scratch = scratchArena.allocate(Math.max(e.scratchBytes, scratch == null ? 0 : scratch.byteSize() * 2), 64);
      }
      MemorySegment m = scratchMemories.get(e.scratchBytes);
      if (m == null) {
        m = dnnl.memory(engine, e.scratchMd, scratch);
        scratchMemories.put(e.scratchBytes, m);
      } else {
        dnnl.setHandle(m, scratch);
      }
      return m;
    }

    /** Frees its native objects (the backend closing). */
    void destroy() {
      for (MemorySegment[] m : memories.values()) {
        dnnl.destroyMemory(m[1]);
        dnnl.destroyMd(m[0]);
      }
      for (MemorySegment m : scratchMemories.values()) dnnl.destroyMemory(m);
      if (scratchArena != null) scratchArena.close();
      for (Arena a : bufferArenas) if (a != null) a.close();
      dnnl.destroyStream(stream);
      own.close();
    }

    /**
     * Makes room for the memory objects of one primitive's run: text batches bring a new row count
     * with every end-of-text cut, so the objects by shape are kept to {@link #MAX_MEMORIES}, all
     * destroyed when that many are held. Called before a run takes its objects, never between
     * (destroying the source's object while it is about to be used crashed the JVM in
     * {@code dnnl_memory::set_data_handle} under a service's load, session 23).
     */
    void makeRoom(int objects) {
      if (memories.size() + objects <= MAX_MEMORIES) return;
      for (MemorySegment[] old : memories.values()) {
        dnnl.destroyMemory(old[1]);
        dnnl.destroyMd(old[0]);
      }
      memories.clear();
      evictions++;
    }

    /**
     * A memory object (with its descriptor) for a dense row-major [rows, cols] matrix, made once
     * per shape; {@code slot} keeps the source and destination of one call apart. Room is made
     * beforehand ({@link #makeRoom}).
     */
    MemorySegment memory(int rows, int cols, int type, int slot) {
      Shape key = new Shape(rows, cols, type, slot);
      MemorySegment[] m = memories.get(key);
      if (m == null) {
        MemorySegment md = dnnl.md(rows, cols, type, Dnnl.TAG_AB);
        m = new MemorySegment[] {md, dnnl.memory(engine, md, MemorySegment.NULL)};
        memories.put(key, m);
      }
      return m[1];
    }
  }

  /** How many times the workspaces' memory objects by shape were destroyed to make room (the tests). */
  int memoryEvictions() {
    synchronized (workspaces) {
      return workspaces.stream().mapToInt(w -> w.evictions).sum();
    }
  }

  /**
   * A workspace for one task, idle or new, to give back with {@link #giveBack(Workspace)}. Sets the
   * calling thread's oneDNN calls to run on one OpenMP thread first (the backend's tasks are the
   * parallelism): a per-thread setting, made for every task, so that no thread (a virtual thread's
   * carrier included) runs a primitive without it.
   */
  private Workspace takeWorkspace() {
    if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
    dnnl.singleThreaded();
    Workspace w = idleWorkspaces.pollFirst();
    if (w != null) {
      idleCount.decrementAndGet();
      return w;
    }
    w = new Workspace();
    synchronized (workspaces) {
      workspaces.add(w);
    }
    return w;
  }

  /** Back to the idle ones, unless as many are idle already (after a burst of concurrent calls): then destroyed. */
  private void giveBack(Workspace w) {
    if (idleCount.incrementAndGet() <= maxIdleWorkspaces) {
      idleWorkspaces.addFirst(w);
      return;
    }
    idleCount.decrementAndGet();
    synchronized (workspaces) {
      workspaces.remove(w);
    }
    w.destroy();
  }

  /** How many workspaces were made (the tests: as many as tasks ran at once). */
  int workspaceCount() {
    synchronized (workspaces) {
      return workspaces.size();
    }
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
    use.readLock().lock();
    try {
      if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
      runOpen(m, n, k, x, weight, bias, b, act, y, kernels, parallel);
    } finally {
      use.readLock().unlock();
    }
  }

  private void runOpen(int m, int n, int k, float[] x, Tensor weight, Tensor bias, float[] b, int act, float[] y, ScalarKernels kernels,
      Parallel parallel) {
    // This thread's OpenMP team to one thread first, which oneDNN reads when a primitive is created
    // (a primitive created with two would fork a team per call).
    dnnl.singleThreaded();
    Block[] blocks = blocks(weight, bias, b, act, n, k);
    int esize = dtype == Dnnl.BF16 ? 2 : 4;
    // oneDNN runs a single row through another kernel (a matrix-vector product) that sums in
    // another order: one row is computed as two equal rows, so that a row's result never depends
    // on how many rows the call has (DnnlLinearTest). On AMX, rows are run in multiples of
    // FIXED_ROW_STEP.
    boolean fixed = java.util.Arrays.stream(blocks).anyMatch(blk -> blk.fixed != null);
    int rowsRun = fixed ? roundUp(m, FIXED_ROW_STEP) : Math.max(m, 2);
    long srcBytes = (long) rowsRun * k * esize, dstBytes = 4L * rowsRun * n;
    long srcPadded = (srcBytes + 63) / 64 * 64;
    Scratch scratch = borrow(srcPadded + dstBytes);
    try {
      run(m, n, k, x, blocks, fixed, y, kernels, parallel, esize, rowsRun, scratch.seg.asSlice(0, srcBytes), scratch.seg.asSlice(srcPadded, dstBytes));
    } finally {
      giveBack(scratch);
    }
  }

  private void run(int m, int n, int k, float[] x, Block[] blocks, boolean fixed, float[] y, ScalarKernels kernels, Parallel parallel, int esize,
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
    int even = (rowsRun + chunks - 1) / chunks;
    int per = fixed ? Math.min(FIXED_MAX_ROWS, roundUp(even, FIXED_ROW_STEP)) : even;
    int tasks = blocks.length * ((rowsRun + per - 1) / per);
    parallel.run(tasks, Long.MAX_VALUE / Math.max(1, tasks), (t0, t1) -> {
      Workspace ws = takeWorkspace();
      try {
        for (int t = t0; t < t1; t++) {
          Block blk = blocks[t % blocks.length];
          int r0 = (t / blocks.length) * per, r1 = Math.min(rowsRun, r0 + per), rows = r1 - r0, cols = blk.n1 - blk.n0;
          // Each block's part of y is dense in the scratch (block-major: rowsRun x cols from
          // rowsRun x n0), then copied row by row into y.
          ws.makeRoom(2);
          MemorySegment sm = ws.memory(rows, k, dtype, 0), dm = ws.memory(rows, cols, Dnnl.F32, 1);
          long blockBase = 4L * ((long) rowsRun * blk.n0);
          dnnl.setHandle(sm, src.asSlice((long) r0 * k * esize));
          dnnl.setHandle(dm, dst.asSlice(blockBase + 4L * r0 * cols));
          int nargs = 0;
          Dnnl.arg(ws.args, nargs++, Dnnl.ARG_SRC, sm);
          Dnnl.arg(ws.args, nargs++, Dnnl.ARG_WEIGHTS, blk.weights);
          if (blk.bias != null) Dnnl.arg(ws.args, nargs++, Dnnl.ARG_BIAS, blk.bias);
          Dnnl.arg(ws.args, nargs++, Dnnl.ARG_DST, dm);
          Exec e = blk.fixed == null ? blk.primitive : fixedPrimitive(blk, rows, k);
          if (e.scratchBytes > 0) Dnnl.arg(ws.args, nargs++, Dnnl.ARG_SCRATCHPAD, ws.scratchpad(e));
          dnnl.execute(e.primitive, ws.stream, nargs, ws.args, ws.savedMask);
          for (int r = r0; r < Math.min(r1, m); r++) {
            MemorySegment.copy(dst, ValueLayout.JAVA_FLOAT, blockBase + 4L * r * cols, y, r * n + blk.n0, cols);
          }
        }
      } finally {
        giveBack(ws);
      }
    });
  }


  /** A convolution's geometry for one image: input [c, h, w], output [o, oh, ow], a k x k kernel. */
  record ConvShape(int c, int h, int w, int o, int oh, int ow, int k, int stride, int pad) {}

  /**
   * One convolution weight made ready for one geometry: the reorder of an image from NCHW fp32 to
   * NHWC in the operands' type, and the output channels in blocks, each a convolution primitive
   * for one image with its packed weights writing NHWC fp32, and the reorder of that to NCHW.
   */
  private record ConvPlan(ConvShape shape, Tensor scale, Tensor bias, boolean relu, Exec srcReorder, ConvBlock[] blocks) {}

  /** A block's primitive, packed weights, the memory objects of its scale (null: none) and bias, and its output's reorder to NCHW. */
  private record ConvBlock(int o0, int o1, Exec conv, MemorySegment weights, MemorySegment scale, MemorySegment bias, Exec dstReorder) {}

  /**
   * Keys of a workspace's memory objects for the convolutions' steps: by shape, type, order and
   * role ({@code slot}), not by convolution, so that a model's many convolutions of one shape share
   * them (and a workspace's objects stay under {@link #MAX_MEMORIES} on many threads).
   */
  private record ConvMemory(long n, long c, long h, long w, int type, int tag, int slot) {}

  private static MemorySegment convMemory(Workspace ws, int slot, long[] dims, int type, int tag) {
    return ws.memory(new ConvMemory(dims[0], dims[1], dims[2], dims[3], type, tag, slot), dims, type, tag);
  }

  private final Map<Tensor, List<ConvPlan>> convPlans = new IdentityHashMap<>();

  /** The most bytes of NHWC images one convolution call converts at once: 64 MB (the tests set less, down to one image a group). */
  private volatile long convGroupBytes = 64L << 20;

  void convGroupBytes(long bytes) {
    if (bytes < 1) throw new IllegalArgumentException("a convolution group budget must be positive, got " + bytes);
    convGroupBytes = bytes;
  }

  /**
   * {@code y[b] = conv(x[b], weight)} for each of {@code batch} images (NCHW fp32 in and out, no
   * bias; the caller applies the channel scale, bias and ReLU) through oneDNN's convolution
   * primitive: in bf16 mode with bf16 operands and fp32 accumulation, as PyTorch's autocast runs
   * it. Each image is run alone through primitives made for one image, so an image's bits do not
   * depend on its batch; its output channels are cut into blocks ({@link #pack}'s rule), so that one
   * image still keeps every thread busy.
   *
   * @param weight [o, c, k, k] (packed on first use; its identity is a key)
   */
  void conv(int batch, ConvShape g, float[] x, Tensor weight, float[] y, Parallel parallel) {
    conv(batch, g, x, false, weight, null, null, false, y, false, null, parallel);
  }

  /**
   * {@link #conv(int, ConvShape, float[], Tensor, float[], Parallel)} with the input, the output or
   * both in channels-last order ([N, H, W, C]: {@code inNhwc}, {@code outNhwc}), as a graph marked
   * by {@link dev.jclip.graph.Fusion#channelsLast} keeps them between convolutions: an NHWC input
   * goes to the primitive as it is (rounded to bf16 in bf16 mode: {@code kernels}), an NHWC output
   * comes back without a reorder. The same primitives, hence the same bits, as in NCHW.
   */
  void conv(int batch, ConvShape g, float[] x, boolean inNhwc, Tensor weight, Tensor scale, Tensor bias, boolean relu, float[] y, boolean outNhwc,
      ScalarKernels kernels, Parallel parallel) {
    use.readLock().lock();
    try {
      if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
      dnnl.singleThreaded();
      ConvPlan plan = convPlan(weight, g, scale, bias, relu);
      int esize = dtype == Dnnl.BF16 ? 2 : 4;
      long inFloats = (long) g.c() * g.h() * g.w(), cells = (long) g.oh() * g.ow();
      long srcBytes = (inFloats * esize + 63) / 64 * 64;
      // Images in groups whose NHWC copies stay under convGroupBytes (at least one image a group).
      int group = (int) Math.max(1, Math.min(batch, convGroupBytes / srcBytes));
      Scratch scratch = borrow(group * srcBytes);
      try {
        for (int b0 = 0; b0 < batch; b0 += group) {
          int first = b0, images = Math.min(group, batch - b0);
          parallel.run(images, inFloats, (i0, i1) -> {
            Workspace ws = takeWorkspace();
            try {
              for (int i = i0; i < i1; i++) {
                int at = (int) ((first + i) * inFloats);
                if (inNhwc) { // already in the primitive's order: rounded to bf16 or copied as it is
                  if (dtype == Dnnl.BF16) kernels.toBf16(x, at, (int) inFloats, scratch.seg, i * srcBytes);
                  else MemorySegment.copy(x, at, scratch.seg, ValueLayout.JAVA_FLOAT, i * srcBytes, (int) inFloats);
                  continue;
                }
                MemorySegment stage = ws.buffer(0, 4 * inFloats);
                MemorySegment.copy(x, at, stage, ValueLayout.JAVA_FLOAT, 0, (int) inFloats);
                ws.makeRoom(2);
                MemorySegment from = convMemory(ws, 0, new long[] {1, g.c(), g.h(), g.w()}, Dnnl.F32, Dnnl.TAG_NCHW);
                MemorySegment to = convMemory(ws, 1, new long[] {1, g.c(), g.h(), g.w()}, dtype, Dnnl.TAG_NHWC);
                dnnl.setHandle(from, stage);
                dnnl.setHandle(to, scratch.seg.asSlice(i * srcBytes, inFloats * esize));
                runReorder(ws, plan.srcReorder, from, to);
              }
            } finally {
              giveBack(ws);
            }
          });
          ConvBlock[] blocks = plan.blocks;
          parallel.run(images * blocks.length, Long.MAX_VALUE / Math.max(1, images * blocks.length), (t0, t1) -> {
            Workspace ws = takeWorkspace();
            try {
              for (int t = t0; t < t1; t++) {
                int i = t / blocks.length;
                ConvBlock blk = blocks[t % blocks.length];
                int ob = blk.o1 - blk.o0;
                long outBytes = 4L * ob * cells;
                ws.makeRoom(4);
                MemorySegment src = convMemory(ws, 1, new long[] {1, g.c(), g.h(), g.w()}, dtype, Dnnl.TAG_NHWC);
                MemorySegment dst = convMemory(ws, 2, new long[] {1, ob, g.oh(), g.ow()}, Dnnl.F32, Dnnl.TAG_NHWC);
                dnnl.setHandle(src, scratch.seg.asSlice(i * srcBytes, inFloats * esize));
                MemorySegment out = ws.buffer(1, outBytes);
                dnnl.setHandle(dst, out);
                int nargs = 0;
                Dnnl.arg(ws.args, nargs++, Dnnl.ARG_SRC, src);
                Dnnl.arg(ws.args, nargs++, Dnnl.ARG_WEIGHTS, blk.weights);
                Dnnl.arg(ws.args, nargs++, Dnnl.ARG_DST, dst);
                int post = 0;
                if (blk.scale != null) Dnnl.arg(ws.args, nargs++, Dnnl.postOpSrc1(post++), blk.scale);
                Dnnl.arg(ws.args, nargs++, Dnnl.postOpSrc1(post), blk.bias);
                if (blk.conv.scratchBytes > 0) Dnnl.arg(ws.args, nargs++, Dnnl.ARG_SCRATCHPAD, ws.scratchpad(blk.conv));
                dnnl.execute(blk.conv.primitive, ws.stream, nargs, ws.args, ws.savedMask);
                if (outNhwc) {
                  // [cells, ob] of this block into each cell's channels [o0, o1) of [cells, o]
                  long base = (long) (first + i) * cells * g.o() + blk.o0;
                  if (ob == g.o()) {
                    MemorySegment.copy(out, ValueLayout.JAVA_FLOAT, 0, y, (int) base, (int) (ob * cells));
                  } else {
                    for (int cell = 0; cell < cells; cell++) {
                      MemorySegment.copy(out, ValueLayout.JAVA_FLOAT, 4L * cell * ob, y, (int) (base + (long) cell * g.o()), ob);
                    }
                  }
                  continue;
                }
                MemorySegment nchw = convMemory(ws, 3, new long[] {1, ob, g.oh(), g.ow()}, Dnnl.F32, Dnnl.TAG_NCHW);
                MemorySegment back = ws.buffer(2, outBytes);
                dnnl.setHandle(nchw, back);
                runReorder(ws, blk.dstReorder, dst, nchw);
                // The block's channels are contiguous in NCHW: [o0, o1) x cells of image first + i.
                MemorySegment.copy(back, ValueLayout.JAVA_FLOAT, 0, y, (int) (((long) (first + i) * g.o() + blk.o0) * cells), (int) (ob * cells));
              }
            } finally {
              giveBack(ws);
            }
          });
        }
      } finally {
        giveBack(scratch);
      }
    } finally {
      use.readLock().unlock();
    }
  }

  private void runReorder(Workspace ws, Exec reorder, MemorySegment from, MemorySegment to) {
    Dnnl.arg(ws.args, 0, Dnnl.ARG_SRC, from);
    Dnnl.arg(ws.args, 1, Dnnl.ARG_DST, to);
    int nargs = 2;
    if (reorder.scratchBytes > 0) Dnnl.arg(ws.args, nargs++, Dnnl.ARG_SCRATCHPAD, ws.scratchpad(reorder));
    dnnl.execute(reorder.primitive, ws.stream, nargs, ws.args, ws.savedMask);
  }

  /** The implementations oneDNN chose for {@code weight}'s convolution at geometry {@code g} (the tests and the profile). */
  List<String> convImplementations(Tensor weight, ConvShape g, Tensor scale, Tensor bias, boolean relu) {
    use.readLock().lock(); // as conv: close waits, and a closed object refuses
    try {
      if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
      dnnl.singleThreaded();
      ConvPlan plan = convPlan(weight, g, scale, bias, relu);
      List<String> names = new ArrayList<>();
      names.add("src reorder: " + dnnl.implementation(plan.srcReorder.pd));
      for (ConvBlock b : plan.blocks) {
        names.add("conv [" + b.o0 + ", " + b.o1 + "): " + dnnl.implementation(b.conv.pd) + ", dst reorder: " + dnnl.implementation(b.dstReorder.pd));
      }
      return names;
    } finally {
      use.readLock().unlock();
    }
  }

  private ConvPlan convPlan(Tensor weight, ConvShape g, Tensor scale, Tensor bias, boolean relu) {
    synchronized (convPlans) {
      if (closed) throw new IllegalStateException("the oneDNN GEMMs were closed");
      List<ConvPlan> list = convPlans.computeIfAbsent(weight, t -> new ArrayList<>(1));
      for (ConvPlan p : list) if (p.shape.equals(g) && p.scale == scale && p.bias == bias && p.relu == relu) return p;
      if (weight.numel() != (long) g.o() * g.c() * g.k() * g.k()) {
        throw new IllegalArgumentException("weight " + weight.name() + " has " + weight.numel() + " elements, expected " + g.o() + " x " + g.c() + " x "
            + g.k() + " x " + g.k());
      }
      dnnl.singleThreaded(); // as the primitives are made
      float[] w = weight.toFloatArray();
      float[] sc = scale == null ? null : scale.toFloatArray(), bi = bias == null ? new float[g.o()] : bias.toFloatArray();
      MemorySegment attr = dnnl.attr(Dnnl.FPMATH_STRICT, -1, 0f);
      try {
        long[] image = {1, g.c(), g.h(), g.w()};
        MemorySegment nchw = dnnl.md(image, Dnnl.F32, Dnnl.TAG_NCHW), nhwc = dnnl.md(image, dtype, Dnnl.TAG_NHWC);
        Exec srcReorder;
        try {
          srcReorder = exec(dnnl.reorderPd(engine, nchw, nhwc, attr));
        } finally {
          dnnl.destroyMd(nchw);
        }
        int count = Math.max(1, Math.min(threads, g.o() / MIN_BLOCK));
        int per = (g.o() + count - 1) / count;
        per = (per + 15) / 16 * 16;
        count = (g.o() + per - 1) / per;
        ConvBlock[] blocks = new ConvBlock[count];
        try {
          for (int j = 0; j < count; j++) {
            int o0 = j * per, o1 = Math.min(g.o(), o0 + per), ob = o1 - o0;
            blocks[j] = convBlock(w, sc, bi, relu, g, o0, ob, nhwc, attr);
          }
        } catch (RuntimeException | Error e) {
          // nothing made for a plan that failed is kept: a retry would leak it again
          for (ConvBlock b : blocks) if (b != null) destroy(b);
          destroy(srcReorder);
          throw e;
        } finally {
          dnnl.destroyMd(nhwc);
        }
        ConvPlan plan = new ConvPlan(g, scale, bias, relu, srcReorder, blocks);
        list.add(plan);
        return plan;
      } finally {
        dnnl.destroyAttr(attr);
      }
    }
  }

  /**
   * Output channels [o0, o0 + ob) of w: a convolution primitive writing NHWC fp32 (oneDNN 3.11's
   * brgemm kernels take no NCHW output: it would run its reference kernel), its weights packed in
   * the layout it asks for, and the reorder of its output to NCHW.
   */
  private ConvBlock convBlock(float[] w, float[] scale, float[] bias, boolean relu, ConvShape g, int o0, int ob, MemorySegment srcMd, MemorySegment attr) {
    long[] out = {1, ob, g.oh(), g.ow()};
    long[] wdims = {ob, g.c(), g.k(), g.k()};
    // What is made is undone, last first, if a later step fails (a retry would leak it again).
    java.util.ArrayDeque<Runnable> undo = new java.util.ArrayDeque<>();
    try {
      // The epilogue as post-ops: acc · scale + bias, then ReLU (the channel operands [1, ob, 1, 1])
      MemorySegment channelMd = dnnl.md(new long[] {1, ob, 1, 1}, Dnnl.F32, Dnnl.TAG_NCHW);
      MemorySegment scaleMem, biasMem, pd;
      try {
        scaleMem = scale == null ? null : channelMemory(channelMd, scale, o0, ob);
        if (scaleMem != null) undo.push(() -> dnnl.destroyMemory(scaleMem));
        biasMem = channelMemory(channelMd, bias, o0, ob);
        undo.push(() -> dnnl.destroyMemory(biasMem));
        MemorySegment convAttr = dnnl.convAttr(channelMd, scale != null, relu);
        MemorySegment anyWeights = dnnl.md(wdims, dtype, Dnnl.TAG_ANY), dstMd = dnnl.md(out, Dnnl.F32, Dnnl.TAG_NHWC);
        try {
          pd = dnnl.convPd(engine, srcMd, anyWeights, dstMd, g.stride(), g.pad(), convAttr);
        } finally {
          dnnl.destroyMd(anyWeights);
          dnnl.destroyMd(dstMd);
          dnnl.destroyAttr(convAttr);
        }
      } finally {
        dnnl.destroyMd(channelMd);
      }
      MemorySegment convPd = pd;
      undo.push(() -> dnnl.destroyPd(convPd));
      MemorySegment packedMd = dnnl.queryMd(pd, Dnnl.QUERY_WEIGHTS_MD);
      MemorySegment weights = dnnl.memory(engine, packedMd, arena.allocate(dnnl.mdSize(packedMd), 64));
      undo.push(() -> dnnl.destroyMemory(weights));
      int per = g.c() * g.k() * g.k();
      reorder(w, o0 * per, ob * per, dnnl.md(wdims, Dnnl.F32, Dnnl.TAG_NCHW) /* oihw */, weights, packedMd);
      Exec dstReorder;
      MemorySegment a = dnnl.md(out, Dnnl.F32, Dnnl.TAG_NHWC), b = dnnl.md(out, Dnnl.F32, Dnnl.TAG_NCHW);
      try {
        dstReorder = exec(dnnl.reorderPd(engine, a, b, attr));
      } finally {
        dnnl.destroyMd(a);
        dnnl.destroyMd(b);
      }
      undo.push(() -> destroy(dstReorder));
      Exec conv = exec(pd);
      return new ConvBlock(o0, o0 + ob, conv, weights, scaleMem, biasMem, dstReorder);
    } catch (RuntimeException | Error e) {
      while (!undo.isEmpty()) {
        try {
          undo.pop().run();
        } catch (RuntimeException suppressed) {
          e.addSuppressed(suppressed);
        }
      }
      throw e;
    }
  }

  /** A memory object over values [o0, o0 + ob) of {@code v}, copied into this object's arena. */
  private MemorySegment channelMemory(MemorySegment md, float[] v, int o0, int ob) {
    MemorySegment data = arena.allocate(4L * ob, 64);
    MemorySegment.copy(v, o0, data, ValueLayout.JAVA_FLOAT, 0, ob);
    return dnnl.memory(engine, md, data);
  }

  private static int roundUp(int v, int step) {
    return (Math.max(v, 1) + step - 1) / step * step;
  }

  /** Block {@code blk}'s primitive made for exactly {@code rows} rows (see {@link #FIXED_ROW_STEP}), made on first use. */
  private Exec fixedPrimitive(Block blk, int rows, int k) {
    return blk.fixed.computeIfAbsent(rows, r -> {
      int cols = blk.n1 - blk.n0;
      MemorySegment srcMd = dnnl.md(r, k, dtype, Dnnl.TAG_AB);
      MemorySegment biasMd = blk.bias == null ? MemorySegment.NULL : dnnl.md(1, cols, Dnnl.F32, Dnnl.TAG_AB);
      MemorySegment dstMd = dnnl.md(r, cols, Dnnl.F32, Dnnl.TAG_AB);
      MemorySegment attr = dnnl.attr(Dnnl.FPMATH_STRICT, blk.alg, blk.alpha);
      try {
        dnnl.singleThreaded(); // this thread's, as the primitive is made (a virtual thread may have moved since the task began)
        return exec(dnnl.matmulPd(engine, srcMd, blk.weightsMd, biasMd, dstMd, attr));
      } finally {
        dnnl.destroyAttr(attr);
        dnnl.destroyMd(srcMd);
        dnnl.destroyMd(dstMd);
        if (blk.bias != null) dnnl.destroyMd(biasMd);
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
          dnnl.singleThreaded(); // as the primitive is made: a virtual thread waiting for the lock above may have moved
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
        // rows [n0, n0 + cols) of w [n, k]: a [k, cols] matrix in "ba" order
        reorder(w, n0 * k, cols * k, dnnl.md(k, cols, Dnnl.F32, Dnnl.TAG_BA), weightsMem, packedMd);
        // bf16 on AMX: primitives per row count (FIXED_ROW_STEP); the runtime-rows one is kept for its packed layout.
        boolean amx = dtype == Dnnl.BF16 && dnnl.implementation(pd).contains("amx");
        blocks[j] = new Block(n0, n1, amx ? null : exec(pd), pd, weightsMem, biasMem, packedMd, alg, alpha,
            amx ? new java.util.concurrent.ConcurrentHashMap<>() : null);
      }
    } finally {
      dnnl.destroyAttr(attr);
    }
    return blocks;
  }

  /**
   * Values [from, from + count) of w, laid out as {@code plainMd} says (fp32; destroyed here), into
   * {@code packedMem}, whose layout is {@code packedMd}: a weight block packed for its primitive.
   */
  private void reorder(float[] w, int from, int count, MemorySegment plainMd, MemorySegment packedMem, MemorySegment packedMd) {
    try (Arena tmp = Arena.ofConfined()) {
      MemorySegment plain = tmp.allocate(4L * count, 64);
      MemorySegment.copy(w, from, plain, ValueLayout.JAVA_FLOAT, 0, count);
      MemorySegment plainMem = dnnl.memory(engine, plainMd, plain);
      MemorySegment pd = dnnl.reorderPd(engine, plainMd, packedMd);
      MemorySegment prim = dnnl.primitive(pd);
      Workspace ws = takeWorkspace();
      try {
        Dnnl.arg(ws.args, 0, Dnnl.ARG_SRC, plainMem);
        Dnnl.arg(ws.args, 1, Dnnl.ARG_DST, packedMem);
        dnnl.execute(prim, ws.stream, 2, ws.args, ws.savedMask);
      } finally {
        giveBack(ws);
        dnnl.destroyPrimitive(prim);
        dnnl.destroyPd(pd);
        dnnl.destroyMemory(plainMem);
        dnnl.destroyMd(plainMd);
      }
    }
  }

  private void destroy(Exec e) {
    dnnl.destroyPrimitive(e.primitive);
    dnnl.destroyPd(e.pd);
  }

  private void destroy(ConvBlock b) {
    destroy(b.conv);
    destroy(b.dstReorder);
    dnnl.destroyMemory(b.weights);
    if (b.scale != null) dnnl.destroyMemory(b.scale);
    dnnl.destroyMemory(b.bias);
  }

  @Override
  public void close() {
    use.writeLock().lock(); // the calls running end first
    try {
      closeNow();
    } finally {
      use.writeLock().unlock();
    }
  }

  private void closeNow() {
    synchronized (packed) {
      synchronized (workspaces) {
        if (closed) return;
        closed = true;
      }
      for (List<Packed> list : packed.values()) {
        for (Packed p : list) {
          for (Block b : p.blocks) {
            if (b.fixed != null) {
              for (Exec f : b.fixed.values()) {
                dnnl.destroyPrimitive(f.primitive);
                dnnl.destroyPd(f.pd);
              }
            }
            if (b.primitive != null) dnnl.destroyPrimitive(b.primitive.primitive);
            dnnl.destroyMemory(b.weights);
            if (b.bias != null) dnnl.destroyMemory(b.bias);
            dnnl.destroyPd(b.pd);
          }
        }
      }
      packed.clear();
      synchronized (convPlans) {
        for (List<ConvPlan> list : convPlans.values()) {
          for (ConvPlan p : list) {
            destroy(p.srcReorder);
            for (ConvBlock b : p.blocks) destroy(b);
          }
        }
        convPlans.clear();
      }
      synchronized (workspaces) {
        for (Workspace w : workspaces) w.destroy();
        workspaces.clear();
        idleWorkspaces.clear();
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

package dev.jclip.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import org.bytedeco.javacpp.Loader;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The part of oneDNN's C API that the bf16 CPU path needs (engine, stream, memory descriptors,
 * matmul and reorder primitives), bound through the foreign-function API. The library comes from
 * the JavaCPP preset {@code org.bytedeco:dnnl}, which extracts and loads it with its OpenMP runtime;
 * calls go straight to the C functions so that every status is checked and named here.
 *
 * <p>oneDNN runs each primitive on the calling thread's OpenMP team; {@link #singleThreaded()}
 * sets that team to one thread, because the backend splits GEMMs over its own threads (the reason
 * is in docs/cpu-backend.md: library thread pools spin and collapse when cores are shared).
 */
final class Dnnl {
  static final int BF16 = 2, F32 = 3;
  static final int TAG_ANY = 1, TAG_AB = 3, TAG_BA = 14, TAG_NCHW = 5, TAG_NHWC = 22;
  static final int ARG_SRC = 1, ARG_DST = 17, ARG_WEIGHTS = 33, ARG_BIAS = 41, ARG_SCRATCHPAD = 80;
  static final int QUERY_WEIGHTS_MD = 131, QUERY_SCRATCHPAD_MD = 136;
  private static final int FORWARD_INFERENCE = 96, CONVOLUTION_DIRECT = 1;
  private static final int SCRATCHPAD_USER = 1;
  /** dnnl_query_impl_info_str: the implementation's name, e.g. "brg_matmul:avx10_1_512_amx". */
  private static final int QUERY_IMPL_INFO_STR = 8;
  static final int ELTWISE_SWISH = 44, ELTWISE_GELU_ERF = 49, ELTWISE_RELU = 32;
  static final int BINARY_ADD = 131056, BINARY_MUL = 131057;
  /** DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1: the second operand of post-op {@code i}. */
  static int postOpSrc1(int i) {
    return 32768 * (i + 1) | 2;
  }
  static final int FPMATH_STRICT = 0, FPMATH_BF16 = 1;
  private static final int CPU = 1, STREAM_DEFAULT = 1, MAX_NDIMS = 12;
  /** DNNL_RUNTIME_DIM_VAL: a dimension given only at execution (INT64_MIN). */
  static final long RUNTIME = Long.MIN_VALUE;

  private static final Linker LINKER = Linker.nativeLinker();
  private static volatile Dnnl instance;
  private static volatile Throwable loadFailure;

  private final MethodHandle engineCreate, engineDestroy, streamCreate, streamWait, streamDestroy;
  private final MethodHandle mdCreateTag, mdDestroy, mdSize;
  private final MethodHandle matmulPd, convPd, reorderPd, pdQuery, pdQueryMd, pdDestroy, primCreate, primDestroy, primExecute;
  private final MethodHandle memCreate, memDestroy, memSetHandle;
  private final MethodHandle attrCreate, attrDestroy, attrSetPostOps, attrSetFpmath, attrSetScratchpad, postOpsCreate, postOpsDestroy, postOpsAppendEltwise,
      postOpsAppendBinary;
  private final MethodHandle ompSetNumThreads;
  private final MethodHandle effectiveIsa;
  private final MethodHandle sigmask;
  /** The asynchronous signals {@link #execute} holds off (see there); built once, read-only. */
  private final MemorySegment asyncSignals;

  /** Bytes of a glibc {@code sigset_t} (1024 bits), the size {@link #execute}'s saved mask needs. */
  static final long SIGSET_BYTES = 128;
  private static final int SIG_BLOCK = 0, SIG_SETMASK = 2;
  /** Signals raised by the faulting instruction itself: never blocked, so that a crash still reaches the JVM's handler. */
  private static final int[] SYNCHRONOUS = {4 /* ILL */, 5 /* TRAP */, 6 /* ABRT */, 7 /* BUS */, 8 /* FPE */, 11 /* SEGV */};

  private Dnnl(SymbolLookup lib, SymbolLookup omp) {
    engineCreate = h(lib, "dnnl_engine_create", ADDRESS, JAVA_INT, JAVA_LONG);
    engineDestroy = h(lib, "dnnl_engine_destroy", ADDRESS);
    streamCreate = h(lib, "dnnl_stream_create", ADDRESS, ADDRESS, JAVA_INT);
    streamWait = h(lib, "dnnl_stream_wait", ADDRESS);
    streamDestroy = h(lib, "dnnl_stream_destroy", ADDRESS);
    mdCreateTag = h(lib, "dnnl_memory_desc_create_with_tag", ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);
    mdDestroy = h(lib, "dnnl_memory_desc_destroy", ADDRESS);
    mdSize = LINKER.downcallHandle(find(lib, "dnnl_memory_desc_get_size"), FunctionDescriptor.of(JAVA_LONG, ADDRESS));
    matmulPd = h(lib, "dnnl_matmul_primitive_desc_create", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    convPd = h(lib, "dnnl_convolution_forward_primitive_desc_create", ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
        ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    reorderPd = h(lib, "dnnl_reorder_primitive_desc_create", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    pdQuery = h(lib, "dnnl_primitive_desc_query", ADDRESS, JAVA_INT, JAVA_INT, ADDRESS);
    pdQueryMd = LINKER.downcallHandle(find(lib, "dnnl_primitive_desc_query_md"), FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, JAVA_INT));
    pdDestroy = h(lib, "dnnl_primitive_desc_destroy", ADDRESS);
    primCreate = h(lib, "dnnl_primitive_create", ADDRESS, ADDRESS);
    primDestroy = h(lib, "dnnl_primitive_destroy", ADDRESS);
    primExecute = h(lib, "dnnl_primitive_execute", ADDRESS, ADDRESS, JAVA_INT, ADDRESS);
    memCreate = h(lib, "dnnl_memory_create", ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    memDestroy = h(lib, "dnnl_memory_destroy", ADDRESS);
    memSetHandle = h(lib, "dnnl_memory_set_data_handle", ADDRESS, ADDRESS);
    attrCreate = h(lib, "dnnl_primitive_attr_create", ADDRESS);
    attrDestroy = h(lib, "dnnl_primitive_attr_destroy", ADDRESS);
    attrSetPostOps = h(lib, "dnnl_primitive_attr_set_post_ops", ADDRESS, ADDRESS);
    attrSetFpmath = h(lib, "dnnl_primitive_attr_set_fpmath_mode", ADDRESS, JAVA_INT);
    attrSetScratchpad = h(lib, "dnnl_primitive_attr_set_scratchpad_mode", ADDRESS, JAVA_INT);
    postOpsCreate = h(lib, "dnnl_post_ops_create", ADDRESS);
    postOpsDestroy = h(lib, "dnnl_post_ops_destroy", ADDRESS);
    postOpsAppendEltwise = h(lib, "dnnl_post_ops_append_eltwise", ADDRESS, JAVA_INT, JAVA_FLOAT, JAVA_FLOAT);
    postOpsAppendBinary = h(lib, "dnnl_post_ops_append_binary", ADDRESS, JAVA_INT, ADDRESS);
    effectiveIsa = LINKER.downcallHandle(find(lib, "dnnl_get_effective_cpu_isa"), FunctionDescriptor.of(JAVA_INT));
    ompSetNumThreads = LINKER.downcallHandle(
        omp.find("omp_set_num_threads").orElseThrow(() -> new IllegalStateException("no omp_set_num_threads in the preset's libgomp")),
        FunctionDescriptor.ofVoid(JAVA_INT));
    SymbolLookup libc = LINKER.defaultLookup();
    sigmask = LINKER.downcallHandle(libcSymbol(libc, "pthread_sigmask"), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    MethodHandle fill = LINKER.downcallHandle(libcSymbol(libc, "sigfillset"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
    MethodHandle del = LINKER.downcallHandle(libcSymbol(libc, "sigdelset"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    asyncSignals = Arena.global().allocate(SIGSET_BYTES, 8);
    try {
      if ((int) fill.invokeExact(asyncSignals) != 0) throw new IllegalStateException("sigfillset failed");
      for (int sig : SYNCHRONOUS) {
        if ((int) del.invokeExact(asyncSignals, sig) != 0) throw new IllegalStateException("sigdelset(" + sig + ") failed");
      }
    } catch (Throwable t) {
      throw wrap(t, "building the signal mask");
    }
  }

  private static MemorySegment libcSymbol(SymbolLookup libc, String name) {
    return libc.find(name).orElseThrow(() -> new IllegalStateException("the C library has no " + name));
  }

  private static MemorySegment find(SymbolLookup lib, String name) {
    return lib.find(name).orElseThrow(() -> new IllegalStateException("oneDNN has no symbol " + name));
  }

  /** A function returning dnnl_status_t. */
  private static MethodHandle h(SymbolLookup lib, String name, ValueLayout... args) {
    return LINKER.downcallHandle(find(lib, name), FunctionDescriptor.of(JAVA_INT, args));
  }

  /**
   * The process-wide binding, loaded on first use.
   *
   * @throws IllegalStateException when the oneDNN natives cannot be loaded (the message says why)
   */
  static Dnnl get() {
    Dnnl d = instance;
    if (d != null) return d;
    synchronized (Dnnl.class) {
      if (instance != null) return instance;
      if (loadFailure != null) throw new IllegalStateException("oneDNN is not available: " + loadFailure.getMessage(), loadFailure);
      try {
        // Extracted from the preset's jar into JavaCPP's cache; libgomp first, so that libdnnl's
        // DT_NEEDED libgomp.so.1 resolves to the copy it was built with.
        String base = "/org/bytedeco/dnnl/" + Loader.getPlatform() + "/";
        Path gomp = Loader.cacheResource(Dnnl.class, base + "libgomp.so.1").toPath();
        SymbolLookup omp = SymbolLookup.libraryLookup(gomp, Arena.global());
        Path lib = Loader.cacheResource(Dnnl.class, base + "libdnnl.so.3").toPath();
        SymbolLookup dnnl = SymbolLookup.libraryLookup(lib, Arena.global());
        capIsa(dnnl); // before anything of oneDNN picks its kernels
        instance = new Dnnl(dnnl, omp);
        return instance;
      } catch (Exception | LinkageError e) {
        loadFailure = e;
        throw new IllegalStateException("oneDNN is not available: " + e.getMessage(), e);
      }
    }
  }

  /** dnnl_cpu_isa_avx512_core_bf16: AVX-512 with BF16 dot products, no AMX. */
  static final int ISA_AVX512_CORE_BF16 = 231;

  /**
   * oneDNN's effective instruction set (dnnl_get_effective_cpu_isa: a dnnl_cpu_isa_t bit mask;
   * AMX's masks contain AVX-512 BF16's, 231, and more bits).
   */
  int effectiveIsa() {
    try {
      return (int) effectiveIsa.invokeExact();
    } catch (Throwable t) {
      throw wrap(t, "dnnl_get_effective_cpu_isa");
    }
  }

  /** {@code -Djclip.cpu.amx}: whether oneDNN may use AMX ({@code on}, the default) or stops at AVX-512 BF16 ({@code off}). */
  static boolean amxAllowed() {
    return amxAllowed(System.getProperty("jclip.cpu.amx", "on"));
  }

  /** {@link #amxAllowed()} of the property's value {@code v}; anything but on or off is refused. */
  static boolean amxAllowed(String v) {
    return switch (v) {
      case "on" -> true;
      case "off" -> false;
      default -> throw new IllegalArgumentException("-Djclip.cpu.amx must be on or off, not '" + v + "'");
    };
  }

  /** dnnl_cpu_isa_avx512_core_amx: AMX's bits with AVX-512 BF16's (an effective ISA holding all of them has AMX). */
  static final int ISA_AMX = 0xfef;

  /**
   * Caps oneDNN's instruction set at AVX-512 BF16 when {@code -Djclip.cpu.amx=off}. AMX was off by
   * default until session 19: on a KVM guest with AMX-BF16, oneDNN's AMX kernels gave wrong bf16
   * results inside the JVM. Both causes were found outside the JVM, in oneDNN 3.11 itself, and are
   * worked around in {@link DnnlLinear} (rows fixed per primitive) and {@link #attr} (a scratchpad
   * a thread); docs/cpu-backend.md has the measurements. {@code off} remains for a machine where
   * AMX proves wrong again. Must run before any other oneDNN call that picks kernels; a refusal
   * (oneDNN's environment variable ONEDNN_MAX_CPU_ISA set, or a call too late) leaves oneDNN's own
   * choice and says so on stderr.
   */
  private static void capIsa(SymbolLookup lib) {
    if (amxAllowed()) return;
    try {
      MethodHandle set = h(lib, "dnnl_set_max_cpu_isa", JAVA_INT);
      int status = (int) set.invokeExact(ISA_AVX512_CORE_BF16);
      if (status != 0) {
        System.err.println("jclip: oneDNN refused to stop at AVX-512 BF16 (" + statusName(status) + "); AMX kernels may run");
      }
    } catch (Throwable t) {
      throw wrap(t, "dnnl_set_max_cpu_isa");
    }
  }

  private static void check(int status, String call) {
    if (status != 0) throw new IllegalStateException(call + " failed: oneDNN status " + status + " (" + statusName(status) + ")");
  }

  private static String statusName(int s) {
    return switch (s) {
      case 1 -> "out_of_memory";
      case 2 -> "invalid_arguments";
      case 3 -> "unimplemented";
      case 5 -> "runtime_error";
      case 6 -> "not_required";
      default -> "status " + s;
    };
  }

  /** A oneDNN constructor call: writes the new handle through {@code out}, returns a status. */
  @FunctionalInterface
  private interface Create {
    int call(MemorySegment out) throws Throwable;
  }

  /** Runs {@code c} with a fresh out-pointer, checks its status and returns the handle it wrote. */
  private static MemorySegment create(String name, Create c) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ADDRESS);
      check(c.call(out), name);
      return out.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap(t, name);
    }
  }

  private static RuntimeException wrap(Throwable t, String call) {
    if (t instanceof RuntimeException r) return r;
    if (t instanceof Error e) throw e;
    return new IllegalStateException(call + " failed", t);
  }

  /** Makes oneDNN's calls from the current thread run on one OpenMP thread. */
  void singleThreaded() {
    try {
      ompSetNumThreads.invokeExact(1);
    } catch (Throwable t) {
      throw wrap(t, "omp_set_num_threads");
    }
  }

  MemorySegment engine() {
    return create("dnnl_engine_create", out -> (int) engineCreate.invokeExact(out, CPU, 0L));
  }

  void destroyEngine(MemorySegment e) {
    call(engineDestroy, e, "dnnl_engine_destroy");
  }

  MemorySegment stream(MemorySegment engine) {
    return create("dnnl_stream_create", out -> (int) streamCreate.invokeExact(out, engine, STREAM_DEFAULT));
  }

  void destroyStream(MemorySegment s) {
    call(streamDestroy, s, "dnnl_stream_destroy");
  }

  private static void call(MethodHandle h, MemorySegment arg, String name) {
    try {
      check((int) h.invokeExact(arg), name);
    } catch (Throwable t) {
      throw wrap(t, name);
    }
  }

  /** A 2-D memory descriptor {@code [rows, cols]} with a format tag ({@link #TAG_AB}, {@link #TAG_BA}, {@link #TAG_ANY}). */
  MemorySegment md(long rows, long cols, int dtype, int tag) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment dims = a.allocate(JAVA_LONG, MAX_NDIMS);
      dims.setAtIndex(JAVA_LONG, 0, rows);
      dims.setAtIndex(JAVA_LONG, 1, cols);
      return create("dnnl_memory_desc_create_with_tag", out -> (int) mdCreateTag.invokeExact(out, 2, dims, dtype, tag));
    }
  }

  /** A memory descriptor of {@code dims} (up to 12) with a format tag ({@link #TAG_NCHW}, {@link #TAG_NHWC}, {@link #TAG_ANY}, ...). */
  MemorySegment md(long[] dims, int dtype, int tag) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment d = a.allocate(JAVA_LONG, MAX_NDIMS);
      for (int i = 0; i < dims.length; i++) d.setAtIndex(JAVA_LONG, i, dims[i]);
      return create("dnnl_memory_desc_create_with_tag", out -> (int) mdCreateTag.invokeExact(out, dims.length, d, dtype, tag));
    }
  }

  void destroyMd(MemorySegment md) {
    call(mdDestroy, md, "dnnl_memory_desc_destroy");
  }

  long mdSize(MemorySegment md) {
    try {
      return (long) mdSize.invokeExact(md);
    } catch (Throwable t) {
      throw wrap(t, "dnnl_memory_desc_get_size");
    }
  }

  /**
   * Primitive attributes: an fpmath mode ({@link #FPMATH_STRICT}, or {@link #FPMATH_BF16} to let an
   * f32 primitive compute with bf16 operands) and optionally one eltwise post-op ({@code alg} <
   * 0 for none; {@link #ELTWISE_GELU_ERF}, or {@link #ELTWISE_SWISH} with alpha 1.702 for
   * QuickGELU). The scratchpad is the caller's ({@code dnnl_scratchpad_mode_user}: an execution
   * passes its own as {@link #ARG_SCRATCHPAD}, sized by {@link #QUERY_SCRATCHPAD_MD}). With
   * oneDNN's own (3.11 as the preset builds it), two threads running one primitive at once share
   * its scratchpad: measured outside the JVM on AMX's bf16 matmul, 82-162 of 200 two-thread runs
   * differed from one thread's; none with a scratchpad a thread.
   */
  MemorySegment attr(int fpmath, int alg, float alpha) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ADDRESS);
      check((int) attrCreate.invokeExact(out), "dnnl_primitive_attr_create");
      MemorySegment attr = out.get(ADDRESS, 0);
      check((int) attrSetFpmath.invokeExact(attr, fpmath), "dnnl_primitive_attr_set_fpmath_mode");
      check((int) attrSetScratchpad.invokeExact(attr, SCRATCHPAD_USER), "dnnl_primitive_attr_set_scratchpad_mode");
      if (alg >= 0) {
        check((int) postOpsCreate.invokeExact(out), "dnnl_post_ops_create");
        MemorySegment ops = out.get(ADDRESS, 0);
        try {
          check((int) postOpsAppendEltwise.invokeExact(ops, alg, alpha, 0f), "dnnl_post_ops_append_eltwise");
          check((int) attrSetPostOps.invokeExact(attr, ops), "dnnl_primitive_attr_set_post_ops");
        } finally {
          check((int) postOpsDestroy.invokeExact(ops), "dnnl_post_ops_destroy");
        }
      }
      return attr;
    } catch (Throwable t) {
      throw wrap(t, "primitive attributes");
    }
  }

  /**
   * {@link #attr} (strict fpmath, a scratchpad per call) with the post-ops of a convolution's
   * epilogue: {@code acc · scale[o] + bias[o]} (binary mul then add, each a [1, O, 1, 1] operand
   * given at execution as {@link #postOpSrc1} 0 and 1; the mul left out where {@code channelMd}'s
   * scale is not wanted: {@code scale} false), then ReLU if {@code relu}.
   */
  MemorySegment convAttr(MemorySegment channelMd, boolean scale, boolean relu) {
    MemorySegment attr = attr(FPMATH_STRICT, -1, 0f);
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ADDRESS);
      check((int) postOpsCreate.invokeExact(out), "dnnl_post_ops_create");
      MemorySegment ops = out.get(ADDRESS, 0);
      try {
        if (scale) check((int) postOpsAppendBinary.invokeExact(ops, BINARY_MUL, channelMd), "dnnl_post_ops_append_binary(mul)");
        check((int) postOpsAppendBinary.invokeExact(ops, BINARY_ADD, channelMd), "dnnl_post_ops_append_binary(add)");
        if (relu) check((int) postOpsAppendEltwise.invokeExact(ops, ELTWISE_RELU, 0f, 0f), "dnnl_post_ops_append_eltwise(relu)");
        check((int) attrSetPostOps.invokeExact(attr, ops), "dnnl_primitive_attr_set_post_ops");
      } finally {
        check((int) postOpsDestroy.invokeExact(ops), "dnnl_post_ops_destroy");
      }
      return attr;
    } catch (Throwable t) {
      destroyAttr(attr);
      throw wrap(t, "convolution attributes");
    }
  }

  void destroyAttr(MemorySegment attr) {
    call(attrDestroy, attr, "dnnl_primitive_attr_destroy");
  }

  /** A matmul primitive descriptor ({@code bias} and {@code attr} may be {@link MemorySegment#NULL}). */
  MemorySegment matmulPd(MemorySegment engine, MemorySegment src, MemorySegment weights, MemorySegment bias, MemorySegment dst,
      MemorySegment attr) {
    return create("dnnl_matmul_primitive_desc_create", out -> (int) matmulPd.invokeExact(out, engine, src, weights, bias, dst, attr));
  }

  /**
   * A 2-D convolution's forward-inference primitive descriptor (direct algorithm, no bias, no
   * dilation), square {@code stride} and symmetric {@code pad}.
   */
  MemorySegment convPd(MemorySegment engine, MemorySegment src, MemorySegment weights, MemorySegment dst, int stride, int pad, MemorySegment attr) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment strides = a.allocate(JAVA_LONG, MAX_NDIMS), dilates = a.allocate(JAVA_LONG, MAX_NDIMS), padding = a.allocate(JAVA_LONG, MAX_NDIMS);
      for (int i = 0; i < 2; i++) {
        strides.setAtIndex(JAVA_LONG, i, stride);
        padding.setAtIndex(JAVA_LONG, i, pad);
      }
      return create("dnnl_convolution_forward_primitive_desc_create", out -> (int) convPd.invokeExact(out, engine, FORWARD_INFERENCE, CONVOLUTION_DIRECT,
          src, weights, MemorySegment.NULL, dst, strides, dilates, padding, padding, attr));
    }
  }

  MemorySegment reorderPd(MemorySegment engine, MemorySegment from, MemorySegment to) {
    return reorderPd(engine, from, to, MemorySegment.NULL);
  }

  /** A reorder with attributes ({@link #attr}: a reorder that several threads run at once needs a scratchpad each). */
  MemorySegment reorderPd(MemorySegment engine, MemorySegment from, MemorySegment to, MemorySegment attr) {
    return create("dnnl_reorder_primitive_desc_create", out -> (int) reorderPd.invokeExact(out, from, engine, to, engine, attr));
  }

  /** The descriptor a primitive descriptor chose (owned by the primitive descriptor: do not destroy). */
  MemorySegment queryMd(MemorySegment pd, int what) {
    MemorySegment md = queryMdOrNull(pd, what);
    if (md.equals(MemorySegment.NULL)) throw new IllegalStateException("dnnl_primitive_desc_query_md(" + what + ") gave no descriptor");
    return md;
  }

  /** {@link #queryMd}, or {@link MemorySegment#NULL} where there is none (a primitive that needs no scratchpad, say). */
  MemorySegment queryMdOrNull(MemorySegment pd, int what) {
    try {
      return (MemorySegment) pdQueryMd.invokeExact(pd, what, 0);
    } catch (Throwable t) {
      throw wrap(t, "dnnl_primitive_desc_query_md");
    }
  }

  /** The name of the implementation a primitive descriptor chose (dnnl_query_impl_info_str), e.g. "brg_matmul:avx10_1_512_amx". */
  String implementation(MemorySegment pd) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ADDRESS);
      check((int) pdQuery.invokeExact(pd, QUERY_IMPL_INFO_STR, 0, out), "dnnl_primitive_desc_query(impl_info_str)");
      return out.get(ADDRESS, 0).reinterpret(1024).getString(0);
    } catch (Throwable t) {
      throw wrap(t, "dnnl_primitive_desc_query(impl_info_str)");
    }
  }

  void destroyPd(MemorySegment pd) {
    call(pdDestroy, pd, "dnnl_primitive_desc_destroy");
  }

  MemorySegment primitive(MemorySegment pd) {
    return create("dnnl_primitive_create", out -> (int) primCreate.invokeExact(out, pd));
  }

  void destroyPrimitive(MemorySegment p) {
    call(primDestroy, p, "dnnl_primitive_destroy");
  }

  /** A memory object over {@code data} (not owned). */
  MemorySegment memory(MemorySegment engine, MemorySegment md, MemorySegment data) {
    return create("dnnl_memory_create", out -> (int) memCreate.invokeExact(out, md, engine, data));
  }

  /** Points a memory object at other data (of the same size and layout). */
  void setHandle(MemorySegment memory, MemorySegment data) {
    try {
      check((int) memSetHandle.invokeExact(memory, data), "dnnl_memory_set_data_handle");
    } catch (Throwable t) {
      throw wrap(t, "dnnl_memory_set_data_handle");
    }
  }

  void destroyMemory(MemorySegment m) {
    call(memDestroy, m, "dnnl_memory_destroy");
  }

  /**
   * Executes {@code primitive} on {@code stream} with (argument id, memory) pairs and waits for it,
   * with the calling thread's asynchronous signals held off until the primitive has finished.
   *
   * <p>Why: oneDNN's f32 JIT GEMM kernels ({@code gemm:jit:f32}: jit_avx512_common_gemm_f32,
   * jit_avx_gemm_f32; oneDNN 3.11 and older) point {@code rsp} into a heap buffer while they run.
   * A signal delivered then makes the kernel write its signal frame (the saved registers, full of
   * the kernel's floats) below that address, over the C heap: glibc later aborts ("corrupted size vs.
   * prev_size") or something else crashes. JFR's method sampling (10 ms in {@code settings=profile})
   * and profilers such as async-profiler send such signals (oneDNN issue 4845, fixed upstream after
   * 3.11 by not moving rsp). A blocked signal stays pending and is delivered when the mask is
   * restored, on the thread's own stack. Faults (SIGSEGV, SIGBUS, ...) are left unblocked so that a
   * crash still reaches the JVM. Two system calls per primitive, against the tens of µs or more that a
   * primitive takes.
   *
   * @param args a native array of {@code dnnl_exec_arg_t} ({int arg; dnnl_memory_t memory}, 16 bytes each)
   * @param savedMask {@link #SIGSET_BYTES} of scratch the caller holds for the call alone (holds the calling thread's signal mask meanwhile)
   */
  void execute(MemorySegment primitive, MemorySegment stream, int nargs, MemorySegment args, MemorySegment savedMask) {
    try {
      withSignalsHeld(savedMask, () -> {
        check((int) primExecute.invokeExact(primitive, stream, nargs, args), "dnnl_primitive_execute");
        check((int) streamWait.invokeExact(stream), "dnnl_stream_wait");
      });
    } catch (Throwable t) {
      throw wrap(t, "dnnl_primitive_execute");
    }
  }

  /** A native call sequence (its handles' invokeExact throw Throwable). */
  @FunctionalInterface
  interface NativeCalls {
    void run() throws Throwable;
  }

  /**
   * Runs {@code calls} with the calling thread's asynchronous signals blocked, then restores the
   * thread's mask (see {@link #execute} for why); {@code savedMask} holds the mask meanwhile.
   */
  void withSignalsHeld(MemorySegment savedMask, NativeCalls calls) throws Throwable {
    int rc = (int) sigmask.invokeExact(SIG_BLOCK, asyncSignals, savedMask);
    if (rc != 0) throw new IllegalStateException("pthread_sigmask failed: error " + rc);
    try {
      calls.run();
    } finally {
      int back = (int) sigmask.invokeExact(SIG_SETMASK, savedMask, MemorySegment.NULL);
      if (back != 0) throw new IllegalStateException("pthread_sigmask (restoring the mask) failed: error " + back);
    }
  }

  /** Whether signal {@code sig} is blocked on the calling thread (for tests of {@link #execute}'s mask). */
  boolean blockedHere(int sig) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment cur = a.allocate(SIGSET_BYTES, 8);
      int rc = (int) sigmask.invokeExact(SIG_BLOCK, MemorySegment.NULL, cur);
      if (rc != 0) throw new IllegalStateException("pthread_sigmask failed: error " + rc);
      // glibc's sigset_t: bit (sig - 1) of an array of unsigned longs
      return (cur.get(JAVA_LONG, 8L * ((sig - 1) / 64)) >>> ((sig - 1) % 64) & 1) != 0;
    } catch (Throwable t) {
      throw wrap(t, "pthread_sigmask");
    }
  }

  /** Sets entry {@code i} of a {@code dnnl_exec_arg_t} array. */
  static void arg(MemorySegment args, int i, int id, MemorySegment memory) {
    args.set(JAVA_INT, 16L * i, id);
    args.set(ADDRESS, 16L * i + 8, memory);
  }
}

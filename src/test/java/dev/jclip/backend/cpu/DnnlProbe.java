package dev.jclip.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * oneDNN matmul GFLOP/s at CLIP's LINEAR shapes on one thread with weights prepacked in oneDNN's
 * layout (a development measurement, not a test; docs/cpu-backend.md has the figures). Modes:
 * {@code bf16} (bf16 operands), {@code f32bf16} (f32 operands, fpmath mode bf16), {@code f32}; a
 * suffix {@code rt} gives M at run time, as {@link DnnlLinear} does. Usage: {@code DnnlProbe
 * [mode,mode,...]}.
 */
public final class DnnlProbe {
  public static void main(String[] args) {
    Dnnl d = Dnnl.get();
    d.singleThreaded();
    MemorySegment eng = d.engine(), st = d.stream(eng);
    int[] ms = {50, 77, 1600};
    String[] modes = args.length > 0 ? args[0].split(",") : new String[] {"bf16", "f32bf16", "f32"};
    for (String mode : modes) {
      for (int m : ms) {
        for (int[] kn : CpuGemmBench.CLIP_KN) {
          int k = kn[0], n = kn[1];
          try (Arena a = Arena.ofConfined()) {
            boolean bf = mode.startsWith("bf16"), rt = mode.endsWith("rt");
            long rm = rt ? Long.MIN_VALUE : m;
            int sdt = bf ? Dnnl.BF16 : Dnnl.F32;
            MemorySegment src = d.md(rm, k, sdt, Dnnl.TAG_AB), srcC = d.md(m, k, sdt, Dnnl.TAG_AB), dstC = d.md(m, n, Dnnl.F32, Dnnl.TAG_AB);
            MemorySegment wAny = d.md(k, n, bf ? Dnnl.BF16 : Dnnl.F32, Dnnl.TAG_ANY);
            MemorySegment dst = d.md(rm, n, Dnnl.F32, Dnnl.TAG_AB);
            MemorySegment attr = d.attr(mode.equals("f32bf16") ? Dnnl.FPMATH_BF16 : Dnnl.FPMATH_STRICT, -1, 0f);
            MemorySegment pd = d.matmulPd(eng, src, wAny, MemorySegment.NULL, dst, attr);
            MemorySegment wmd = d.queryMd(pd, Dnnl.QUERY_WEIGHTS_MD);
            MemorySegment prim = d.primitive(pd);
            MemorySegment sbuf = a.allocate(d.mdSize(srcC), 64), wbuf = a.allocate(d.mdSize(wmd), 64), dbuf = a.allocate(d.mdSize(dstC), 64);
            MemorySegment sm = d.memory(eng, srcC, sbuf), wm = d.memory(eng, wmd, wbuf), dm = d.memory(eng, dstC, dbuf);
            MemorySegment args2 = a.allocate(16 * 3, 8), mask = a.allocate(Dnnl.SIGSET_BYTES, 8);
            Dnnl.arg(args2, 0, Dnnl.ARG_SRC, sm);
            Dnnl.arg(args2, 1, Dnnl.ARG_WEIGHTS, wm);
            Dnnl.arg(args2, 2, Dnnl.ARG_DST, dm);
            double flop = 2.0 * m * n * k;
            for (int i = 0; i < 3; i++) d.execute(prim, st, 3, args2, mask);
            long t0 = System.nanoTime();
            int calls = 0;
            while (System.nanoTime() - t0 < 0.06e9) {
              d.execute(prim, st, 3, args2, mask);
              calls++;
            }
            double[] g = new double[5];
            for (int r = 0; r < 5; r++) {
              long t = System.nanoTime();
              for (int i = 0; i < calls; i++) d.execute(prim, st, 3, args2, mask);
              g[r] = flop * calls / ((System.nanoTime() - t) / 1e9) / 1e9;
            }
            Arrays.sort(g);
            System.out.printf("%-8s M=%5d K=%5d N=%5d  %7.1f GFLOP/s%n", mode, m, k, n, g[2]);
            for (MemorySegment x : new MemorySegment[] {sm, wm, dm}) d.destroyMemory(x);
            d.destroyPrimitive(prim);
            d.destroyPd(pd);
            d.destroyAttr(attr);
            for (MemorySegment x : new MemorySegment[] {src, wAny, dst}) d.destroyMd(x);
          }
        }
      }
    }
  }
}

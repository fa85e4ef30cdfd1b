package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * gemm_sm90's ew16s kernels ({@link Sm90Gemm.Schedule#EPILOGUE_WARPS_16_SPLIT}: the ew16 kernels
 * with each consumer warpgroup's half of a tile handed over on barriers of its own, the second
 * warpgroup starting {@link Sm90Gemm#splitLag} k steps behind the first). Only the order in which
 * the halves are handed over changes, so every output is held to the ew16 kernels' bits, at every
 * lag from 0 to {@link Sm90Gemm#MAX_SPLIT_LAG}: the plain, residual, LayerNorm-folded and
 * statistics kernels (the parts too); problems where a block goes round its loop six times (the
 * halves' barriers' phases wrap), K of one and of two steps (fewer than the lag: the second
 * warpgroup starts after the first's whole first tile), rows that end inside the second half or
 * before it (its rows all past M), N below a tile; the mainloop alone with the longest lag; and a
 * transformer block through the backend, the ew16 kernels' bits, CUDA-graph replay included. A
 * class of its own: where it fails, run.sh leaves out only the "ew16s" profile columns. Skipped
 * (with the reason) off compute capability 9.0.
 */
@Tag("cuda")
class CudaSm90EpilogueWarpsSplitTest {
  static final Random RNG = TestRandom.create("CudaSm90EpilogueWarpsSplitTest");
  static final Sm90Gemm.Schedule EW16 = Sm90Gemm.Schedule.EPILOGUE_WARPS_16, SPLIT = Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT;
  static CudaDevice device;

  @RegisterExtension
  static final CudaTestSupport.Gpu GPU = CudaTestSupport.sm90(d -> device = d);

  /** The problems every kernel runs: CLIP's LINEARs on a few rows, the edges named above, and a long persistent loop. */
  static List<CudaSm90GemmTest.Problem> problems(boolean residual) {
    List<CudaSm90GemmTest.Problem> ps = new ArrayList<>();
    if (residual) {
      ps.add(new CudaSm90GemmTest.Problem("out_proj", 154, 512, 512, 0, true, true));
      ps.add(new CudaSm90GemmTest.Problem("c_proj", 200, 768, 3072, 0, true, true));
      ps.add(new CudaSm90GemmTest.Problem("residual, no bias, rows end in half 0", 30, 768, 768, 0, false, true));
      ps.add(new CudaSm90GemmTest.Problem("QuickGELU + residual, rows end in half 1", 100, 512, 512, 1, true, true));
      ps.add(new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 0, true, true));
    } else {
      ps.add(new CudaSm90GemmTest.Problem("text in_proj", 154, 1536, 512, 0, true, false));
      ps.add(new CudaSm90GemmTest.Problem("text c_fc", 154, 2048, 512, 1, true, false));
      ps.add(new CudaSm90GemmTest.Problem("GELU N tail", 129, 520, 768, 2, true, false));
      ps.add(new CudaSm90GemmTest.Problem("N below a tile, rows end in half 0", 30, 56, 64, 1, true, false));
      ps.add(new CudaSm90GemmTest.Problem("one K step", 200, 768, 32, 0, true, false));
      ps.add(new CudaSm90GemmTest.Problem("two K steps", 200, 768, 64, 1, false, false));
      ps.add(new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 1, true, false));
    }
    return ps;
  }

  /** Checks {@code got} (a split kernel's C at lag {@code lag}) is {@code want} (the ew16 kernel's), bit for bit. */
  private static void sameBits(short[] want, short[] got, String what, int lag) {
    if (java.util.Arrays.equals(want, got)) return;
    int differ = 0, first = -1;
    for (int i = 0; i < want.length; i++) {
      if (want[i] != got[i]) {
        differ++;
        if (first < 0) first = i;
      }
    }
    throw new AssertionError(what + " lag " + lag + ": " + differ + " of " + want.length + " outputs differ from the ew16 kernel's, the first at "
        + first);
  }

  /** The plain kernel (in_proj, c_fc, the erf GELU): the ew16 kernel's bits at every lag, each launch an ew16s one. */
  @Test
  void splitWritesTheEw16KernelsBitsAtEveryLag() {
    atEveryLag(false);
  }

  /** The residual kernel (out_proj, c_proj, an activation before the residual): the ew16 residual kernel's bits at every lag. */
  @Test
  void splitResidualWritesTheEw16KernelsBitsAtEveryLag() {
    atEveryLag(true);
  }

  /** {@link #problems}({@code residual}) on the ew16 kernel, then on the ew16s kernel at every lag: the same bits, each an ew16s launch (a residual one with a residual). */
  private static void atEveryLag(boolean residual) {
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems(residual), (gemm, stream, in, what) -> {
      short[] ew16 = in.run(gemm, stream, EW16, false, 0);
      for (int lag = 0; lag <= Sm90Gemm.MAX_SPLIT_LAG; lag++) {
        gemm.splitLag(lag);
        long split = gemm.splitLaunches(), withResidual = gemm.epilogueWarpsResidualLaunches();
        short[] got = in.run(gemm, stream, SPLIT, false, 0);
        assertEquals(split + 1, gemm.splitLaunches(), "the ew16s kernel did not run");
        assertEquals(withResidual + (residual ? 1 : 0), gemm.epilogueWarpsResidualLaunches(), "not the residual kernel");
        sameBits(ew16, got, what, lag);
      }
      System.out.printf("[gemm_sm90 ew16s%s] %-52s the ew16 kernel's bits at lags 0-%d%n", residual ? " residual" : "", what, Sm90Gemm.MAX_SPLIT_LAG);
    });
  }

  /** The LayerNorm-folded kernel (in_proj, c_fc, N off the tile): the ew16 fold's bits at lags 0, 2 and 4; random statistics and column sums. */
  @Test
  void splitLayerNormFoldWritesTheEw16FoldsBits() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("in_proj", 154, 1536, 512, 0, true, false),
        new CudaSm90GemmTest.Problem("c_fc", 400, 3072, 768, 1, true, false), new CudaSm90GemmTest.Problem("N tail", 129, 520, 768, 0, true, false),
        new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 1, true, false));
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems, (gemm, stream, in, what) -> {
      CudaSm90GemmTest.Problem pr = in.pr;
      float[] stats = new float[2 * pr.m()], colsum = TestRandom.gaussian(RNG, pr.n(), 4);
      for (int r = 0; r < pr.m(); r++) {
        stats[2 * r] = (float) (4 * RNG.nextGaussian());
        stats[2 * r + 1] = (float) (0.3 + 2.7 * RNG.nextDouble());
      }
      short[] ew16 = CudaSm90EpilogueWarpsTest.folded(gemm, stream, in, stats, colsum, EW16);
      for (int lag : new int[] {0, 2, Sm90Gemm.MAX_SPLIT_LAG}) {
        gemm.splitLag(lag);
        long before = gemm.splitLaunches();
        short[] split = CudaSm90EpilogueWarpsTest.folded(gemm, stream, in, stats, colsum, SPLIT);
        assertEquals(before + 1, gemm.splitLaunches(), "the LayerNorm-folded ew16s kernel did not run");
        sameBits(ew16, split, what, lag);
      }
      System.out.printf("[gemm_ln_sm90 ew16s] %-56s the ew16 fold's bits%n", what);
    });
  }

  /**
   * The statistics kernel (out_proj at the text tower's width, width 640: a short last part; six
   * tiles a block): C and the parts the ew16 statistics kernel's, bit for bit, at lags 0, 2 and 4;
   * a NaN guard past the parts survives.
   */
  @Test
  void splitStatisticsWriteTheEw16KernelsParts() {
    List<CudaSm90GemmTest.Problem> problems = List.of(new CudaSm90GemmTest.Problem("out_proj", 154, 512, 512, 0, true, true),
        new CudaSm90GemmTest.Problem("width 640", 130, 640, 640, 0, true, true),
        new CudaSm90GemmTest.Problem("6 tiles a block", 66 * 128, 12 * 256, 512, 0, true, true));
    CudaSm90EpilogueWarpsTest.eachProblem(device, problems, (gemm, stream, in, what) -> {
      Object[] want = withParts(gemm, stream, in, EW16);
      for (int lag : new int[] {0, 2, Sm90Gemm.MAX_SPLIT_LAG}) {
        gemm.splitLag(lag);
        Object[] got = withParts(gemm, stream, in, SPLIT);
        sameBits((short[]) want[0], (short[]) got[0], what + " C", lag);
        float[] wp = (float[]) want[1], gp = (float[]) got[1];
        for (int i = 0; i < wp.length; i++) {
          if (Float.floatToRawIntBits(wp[i]) != Float.floatToRawIntBits(gp[i])) {
            throw new AssertionError(what + " lag " + lag + ": part value " + i + " is " + gp[i] + ", the ew16 kernel's " + wp[i]);
          }
        }
      }
      System.out.printf("[gemm_sm90 ew16s statistics] %-48s the ew16 kernel's C and parts%n", what);
    });
  }

  /** C and the parts (with one guard pair past them, which must stay NaN) of the statistics kernel of {@code schedule}. */
  private static Object[] withParts(Sm90Gemm gemm, CudaStream stream, CudaSm90GemmTest.Inputs in, Sm90Gemm.Schedule schedule) {
    CudaSm90GemmTest.Problem pr = in.pr;
    int m = pr.m(), n = pr.n(), parts = CudaOps.statsParts(n);
    try (DeviceBuffer da = device.allocate(2L * in.aHalf.length).upload(in.aHalf);
        DeviceBuffer dw = device.allocate(2L * in.wHalf.length).upload(in.wHalf);
        DeviceBuffer db = device.allocate(4L * n).upload(in.bias);
        DeviceBuffer dr = device.allocate(2L * in.resHalf.length).upload(in.resHalf);
        DeviceBuffer dc = device.allocate(2L * m * n);
        DeviceBuffer dp = device.allocate(8L * m * parts + 8)) {
      float[] nan = new float[2 * m * parts + 2];
      java.util.Arrays.fill(nan, Float.NaN);
      dp.upload(nan);
      assertTrue(gemm.runWithLayerNormParts(in.p, m, n, pr.k(), da, dw, db, dr, pr.act(), dc, dp, schedule), "refused");
      stream.synchronize();
      float[] all = dp.downloadFloats(2 * m * parts + 2);
      assertTrue(Float.isNaN(all[all.length - 2]) && Float.isNaN(all[all.length - 1]), "the guard past the parts was written");
      return new Object[] {dc.downloadShorts(m * n), java.util.Arrays.copyOf(all, 2 * m * parts)};
    }
  }

  /** act -1 at the longest lag: the mainloop alone ends (the second warpgroup's start is not waited for in vain) and writes nothing. */
  @Test
  void splitMainloopAloneEndsAndWritesNothing() {
    try (CudaStream stream = new CudaStream(device);
        Sm90Gemm gemm = new Sm90Gemm(device, stream.handle())) {
      gemm.splitLag(Sm90Gemm.MAX_SPLIT_LAG);
      for (Precision p : new Precision[] {Precision.FP16, Precision.BF16}) {
        CudaSm90GemmTest.Problem loop = new CudaSm90GemmTest.Problem("mainloop", 66 * 128, 8 * 256, 256, -1, true, false);
        short[] c = new CudaSm90GemmTest.Inputs(p, loop).run(gemm, stream, SPLIT, false, 0);
        short sentinel = p == Precision.FP16 ? HalfFloats.fp16(-7.25f) : HalfFloats.bf16(-7.25f);
        for (int i = 0; i < c.length; i++) assertEquals(sentinel, c[i], p + ": output " + i + " was written by the mainloop alone");
      }
    }
  }

  /**
   * Through the backend: the block of CudaSm90EpilogueWarpsTest's statistics test (out_proj,
   * ln_2 folded into c_fc, c_proj, ln_1 folded into the next in_proj) at the text tower's and
   * ViT-B/32's widths, with every LINEAR, both folds and their statistics on the ew16s kernels
   * (lag 2, not the default): the bits of the same block on the ew16 kernels, every GEMM an ew16s launch, and a
   * CUDA-graph replay giving the same bits.
   */
  @Test
  void splitBlockThroughTheBackendGivesTheEw16Bits() {
    CudaSm90EpilogueWarpsTest.blockOnTheBackend(device, new int[][] {{154, 512}, {100, 768}}, "ew16s", "the ew16 kernels'", backend -> {
      backend.layerNormStatsInEpilogue(true);
      backend.fusedLinear(true, EW16, CudaBackend.FusedScope.ALL);
      backend.layerNormFold(EW16);
    }, (backend, what) -> {}, backend -> {
      backend.fusedLinear(true, SPLIT, CudaBackend.FusedScope.ALL);
      backend.layerNormFold(SPLIT);
      backend.splitLag(2);
    }, (backend, what) -> assertEquals(4, backend.epilogueWarpsSplitLaunches(), what + ": not every GEMM ran on the ew16s kernels"), true);
  }
}

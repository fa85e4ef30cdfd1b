package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * How cuBLASLt tuning chooses among the timed algorithms and what it reports ({@link
 * CublasLt.Tuning}), without a GPU; the tuned matmuls themselves are checked against the reference
 * backend in {@link CudaLinearEpilogueTest}.
 */
class CublasLtTuningTest {
  @Test
  void theFastestCandidateWinsAndCandidatesThatDidNotRunAreSkipped() {
    assertEquals(2, CublasLt.Tuning.fastest(new double[] {0.5, 0.4, 0.3, 0.35}));
    assertEquals(1, CublasLt.Tuning.fastest(new double[] {Double.NaN, 0.4, Double.NaN}));
    assertEquals(0, CublasLt.Tuning.fastest(new double[] {0.3, 0.3, 0.4}), "a tie keeps the heuristic's order");
    assertEquals(-1, CublasLt.Tuning.fastest(new double[] {Double.NaN, Double.NaN}));
  }

  @Test
  void theReportNamesTheFirstTheFastestAndTheFailures() {
    String r = CublasLt.Tuning.report("P", new double[] {0.356, Double.NaN, 0.3301}, new String[] {"algo 1", "algo 2", "algo 3"},
        List.of("#1 status 15"));
    assertEquals("P: 3 candidates; heuristic's first 0.3560 ms (algo 1); fastest #2 0.3301 ms (algo 3), 1.08x the first; failed: #1 status 15", r);
    String first = CublasLt.Tuning.report("P", new double[] {0.2, 0.3}, new String[] {"a", "b"}, List.of());
    assertTrue(first.endsWith("; the first is the fastest"), first);
    String none = CublasLt.Tuning.report("P", new double[] {Double.NaN}, new String[] {"a"}, List.of("#0 state 7"));
    assertTrue(none.contains("did not run") && none.contains("none ran") && none.contains("#0 state 7"), none);
  }

  /**
   * The search around the heuristic's fastest ({@link CublasLt.Search#descend}): one dimension at a
   * time, each other value timed with the best of the dimensions before it, a move only when
   * faster by more than the margin, configurations refused before running neither timed nor
   * counted, those refused when run counted and never chosen, and the budget respected.
   */
  @Test
  void theSearchDescendsOneDimensionAtATime() {
    CublasLt.Search.Config start = new CublasLt.Search.Config(24, 35, 0, 0);
    java.util.Map<CublasLt.Search.Dim, int[]> values = new java.util.EnumMap<>(CublasLt.Search.Dim.class);
    values.put(CublasLt.Search.Dim.TILE, new int[] {24, 29, 209, 7});
    values.put(CublasLt.Search.Dim.STAGES, new int[] {35, 8, 9});
    values.put(CublasLt.Search.Dim.CLUSTER, new int[] {0, 2});
    values.put(CublasLt.Search.Dim.SWIZZLE, new int[] {0, 1});
    List<CublasLt.Search.Config> timed = new java.util.ArrayList<>();
    CublasLt.Search.Timer timer = c -> {
      if (c.tile() == 7) return Double.NaN; // refused by the check: not timed
      if (c.stages() == 9) return CublasLt.Search.REFUSED; // refused when run: counted, never chosen
      timed.add(c);
      double ms = 1.0;
      if (c.tile() == 29) ms -= 0.10; // the better tile
      if (c.tile() == 209) ms -= 0.005; // within the margin of the start: no move on its own
      if (c.stages() == 8) ms -= 0.05;
      if (c.swizzle() == 1) ms += 0.2;
      return ms;
    };
    CublasLt.Search.Result r = CublasLt.Search.descend(start, 1.0, values, timer, 48);
    assertEquals(new CublasLt.Search.Config(29, 8, 0, 0), r.best());
    assertEquals(0.85, r.bestMs(), 1e-12);
    // tiles 29 and 209 from the start; stages 8 and 9 with tile 29; cluster 2; swizzle 1
    assertEquals(List.of(new CublasLt.Search.Config(29, 35, 0, 0), new CublasLt.Search.Config(209, 35, 0, 0),
        new CublasLt.Search.Config(29, 8, 0, 0), new CublasLt.Search.Config(29, 8, 2, 0), new CublasLt.Search.Config(29, 8, 0, 1)), timed);
    assertEquals(6, r.timed(), "the five timed and the one refused when run");
    CublasLt.Search.Result capped = CublasLt.Search.descend(start, 1.0, values, timer, 1);
    assertEquals(1, capped.timed());
    assertEquals(new CublasLt.Search.Config(29, 35, 0, 0), capped.best());
    CublasLt.Search.Result none = CublasLt.Search.descend(start, 0.5, values, timer, 48);
    assertEquals(start, none.best(), "nothing beats a fast start");
    assertEquals(0.5, none.bestMs());
  }

  /** Building a neighbour sets only the attributes in which it differs from the start, and stops at the first refusal. */
  @Test
  void aNeighbourSetsOnlyWhatDiffers() {
    CublasLt.Search.Config from = new CublasLt.Search.Config(24, 35, 0, 0);
    List<String> set = new java.util.ArrayList<>();
    assertEquals(null, CublasLt.Search.apply(from.with(CublasLt.Search.Dim.STAGES, 8), from, (attr, v) -> {
      set.add(attr + "=" + v);
      return null;
    }));
    assertEquals(List.of(CublasLt.Search.Dim.STAGES.attr + "=8"), set);
    String why = CublasLt.Search.apply(new CublasLt.Search.Config(29, 8, 0, 0), from, (attr, v) -> attr == CublasLt.Search.Dim.TILE.attr ? "no" : null);
    assertEquals("no", why);
  }

  /** Many tiles leave room for the other dimensions: a dimension times at most {@link CublasLt.Search#PER_DIMENSION}. */
  @Test
  void oneDimensionCannotSpendTheWholeBudget() {
    CublasLt.Search.Config start = new CublasLt.Search.Config(0, 1, 0, 0);
    java.util.Map<CublasLt.Search.Dim, int[]> values = new java.util.EnumMap<>(CublasLt.Search.Dim.class);
    values.put(CublasLt.Search.Dim.TILE, java.util.stream.IntStream.range(1, 41).toArray());
    values.put(CublasLt.Search.Dim.STAGES, new int[] {2, 3});
    List<CublasLt.Search.Config> timed = new java.util.ArrayList<>();
    CublasLt.Search.Result r = CublasLt.Search.descend(start, 1.0, values, c -> {
      timed.add(c);
      return c.stages() == 3 ? 0.5 : 1.0;
    }, CublasLt.Search.BUDGET);
    assertEquals(CublasLt.Search.PER_DIMENSION + 2, timed.size());
    assertEquals(3, r.best().stages());
  }

  /** The confirming re-timings' medians, start and candidate alternating; a candidate that failed counts as slowest. */
  @Test
  void theConfirmingMediansTakeEveryOtherTiming() {
    double[] ms = {1.0, 0.9, 1.2, Double.NaN, 1.1, 0.8};
    assertEquals(1.1, CublasLt.Search.median(ms, 0));
    assertEquals(0.9, CublasLt.Search.median(ms, 1));
  }

  /** cuBLASLt refuses a configuration attribute got or set at another size than it stores: the cluster and inner shape ids are 16-bit. */
  @Test
  void clusterShapesAreSixteenBits() {
    assertEquals(2, CublasLt.configAttrBytes(org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
    assertEquals(2, CublasLt.configAttrBytes(org.bytedeco.cuda.global.cublas.CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID));
    for (CublasLt.Search.Dim d : new CublasLt.Search.Dim[] {CublasLt.Search.Dim.TILE, CublasLt.Search.Dim.STAGES, CublasLt.Search.Dim.SWIZZLE}) {
      assertEquals(4, CublasLt.configAttrBytes(d.attr), d.name());
    }
  }
}

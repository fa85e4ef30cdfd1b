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
}

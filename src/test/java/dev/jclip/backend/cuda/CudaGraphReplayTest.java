package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.Precision;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.testing.TestRandom;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * An executor that replays a captured CUDA graph gives, run after run with new inputs, exactly
 * what the same backend gives node by node; executors of other shapes on the same backend (which
 * grow its scratch buffers) do not disturb a recording. On both GEMM paths: cuBLASLt (the fused
 * graph, bias and residual in the GEMM epilogues) and cuBLAS.
 */
@Tag("cuda")
class CudaGraphReplayTest {
  @Test
  void replayEqualsEagerBitForBit() {
    Random random = TestRandom.create(getClass().getSimpleName());
    ClipConfig cfg = RandomWeights.config("ViT-B/32");
    ClipGraphs graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, random.nextLong()));
    try (CudaDevice device = CudaTestSupport.openDevice()) {
      for (Precision p : Precision.values()) {
        for (boolean lt : new boolean[] {true, false}) {
          try (CudaBackend backend = new CudaBackend(device, p, false, lt);
              Executor eager = new Executor(graphs.image(2), backend, List.of(), false);
              Executor replay = new Executor(graphs.image(2), backend, List.of(), true)) {
            for (int run = 0; run < 4; run++) {
              float[] pixels = TestRandom.gaussian(random, 2 * 3 * 224 * 224, 1);
              float[] want = eager.run(Map.of("pixels", pixels)).get("image_features");
              float[] got = replay.run(Map.of("pixels", pixels)).get("image_features");
              assertArrayEquals(want, got, p + " " + backend.gemmLibrary() + " run " + run + ": replay differs from eager");
              if (run == 0) assertFalse(replay.replaying(), "the first run warms up");
              else assertTrue(replay.replaying(), "run " + run + " should replay a CUDA graph: " + replay.recordingFailure());
              if (run == 1) {
                // another shape on the same backend grows its scratch buffers
                Graph big = graphs.image(16);
                try (Executor other = new Executor(big, backend, List.of(), true)) {
                  other.run(Map.of("pixels", TestRandom.gaussian(random, 16 * 3 * 224 * 224, 1)));
                }
              }
            }
          }
        }
      }
    }
  }
}

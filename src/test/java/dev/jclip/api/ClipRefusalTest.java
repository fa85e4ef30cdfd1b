package dev.jclip.api;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.backend.cuda.CudaBackend;
import dev.jclip.graph.Backend;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.model.Activation;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What {@link Clip} checks when it opens a device: a backend that cannot run a node of the model's
 * towers (the CUDA kernels and a head size other than 64) is named with the node before any batch
 * runs; {@code auto} then takes the CPU.
 */
class ClipRefusalTest {
  /** A backend that refuses as the CUDA backend does and is never run. */
  static final class Refusing implements Backend {
    boolean closed;

    @Override
    public String name() {
      return "cuda:0";
    }

    @Override
    public boolean supports(Op op) {
      return true;
    }

    @Override
    public String refuses(Node n) {
      return CudaBackend.headSizeRefusal(n);
    }

    @Override
    public Buffer allocate(long bytes) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void write(Buffer dst, TensorSpec spec, Object host) {
      throw new UnsupportedOperationException();
    }

    @Override
    public float[] read(Buffer src, TensorSpec spec) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void execute(Node node, List<Buffer> inputs, Buffer output) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  @Test
  void aModelWithHeadsOtherThan64IsRefusedByNodeBeforeItRuns() {
    ClipConfig h = new ClipConfig(ClipConfig.Architecture.VIT, 64, 28, List.of(1), 160, 14, 2, 77, 49408, 128, 2, 1, Activation.GELU, "test");
    String why = Clip.refusal(new ClipGraphs(h, RandomWeights.generate(h, 1)), new Refusing());
    assertTrue(why != null && why.startsWith("cuda:0 cannot run node visual.transformer.resblocks.0.attn of this model: 2 heads of 80")
        && why.contains("--device cpu"), why);
    ClipConfig b32 = RandomWeights.config("ViT-B/32");
    assertNull(Clip.refusal(new ClipGraphs(b32, RandomWeights.generate(b32, 1)), new Refusing()));
  }

  /** auto takes the CPU for a model the GPU refuses, and says so; a named device refuses; a CPU that cannot take it either says both. */
  @Test
  void autoTakesTheCpuForAModelTheGpuRefuses() {
    ClipConfig h = new ClipConfig(ClipConfig.Architecture.VIT, 64, 28, List.of(1), 160, 14, 2, 77, 49408, 128, 2, 1, Activation.GELU, "test");
    ClipGraphs graphs = new ClipGraphs(h, RandomWeights.generate(h, 1));
    List<String> log = new java.util.ArrayList<>();
    try (dev.jclip.backend.cpu.CpuBackend cpu = new dev.jclip.backend.cpu.CpuBackend(1, false)) {
      Refusing gpu = new Refusing();
      assertSame(cpu, Clip.checked(gpu, graphs, true, () -> cpu, log::add));
      assertTrue(gpu.closed, "the refusing backend is closed");
      assertTrue(log.size() == 1 && log.get(0).contains("heads of 80") && log.get(0).endsWith("using the CPU"), log.toString());

      Refusing named = new Refusing();
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Clip.checked(named, graphs, false, () -> cpu, log::add));
      assertTrue(named.closed && e.getMessage().contains("2 heads of 80") && e.getMessage().contains("--device cpu"), e.getMessage());

      Refusing fp16 = new Refusing();
      e = assertThrows(IllegalArgumentException.class, () -> Clip.checked(fp16, graphs, true, () -> {
        throw new IllegalArgumentException("--precision fp16 needs a GPU (--device cuda)");
      }, log::add));
      assertTrue(fp16.closed && e.getMessage().contains("heads of 80") && e.getMessage().contains("the CPU cannot run it either: --precision fp16 needs a GPU"),
          e.getMessage());

      ClipConfig b32 = RandomWeights.config("ViT-B/32");
      Refusing fine = new Refusing();
      assertSame(fine, Clip.checked(fine, new ClipGraphs(b32, RandomWeights.generate(b32, 1)), true, () -> cpu, log::add));
      assertTrue(!fine.closed && log.size() == 1, "a backend that runs the model is kept, nothing said");
    }
  }

  /**
   * fp16 on the CPU is refused before the model is read or downloaded, in words for the API and the
   * CLI alike; {@code auto} on a machine without a usable GPU says why it found none.
   */
  @Test
  void fp16OnTheCpuIsRefusedFirst() {
    String cpu = Clip.fp16Refusal(dev.jclip.backend.DeviceSpec.parse("cpu"), dev.jclip.backend.Precision.FP16);
    assertTrue(cpu != null && cpu.equals("precision fp16 runs on a GPU only; the CPU computes in fp32 or bf16"), cpu);
    assertTrue(Clip.fp16Refusal(dev.jclip.backend.DeviceSpec.parse("cpu"), dev.jclip.backend.Precision.BF16) == null);
    assertTrue(Clip.fp16Refusal(dev.jclip.backend.DeviceSpec.parse("cuda:0"), dev.jclip.backend.Precision.FP16) == null, "a named GPU decides for itself");
    String auto = Clip.fp16Refusal(dev.jclip.backend.DeviceSpec.AUTO, dev.jclip.backend.Precision.FP16);
    boolean gpu = dev.jclip.backend.DeviceSpec.AUTO.resolve(m -> {}).get(0).isCuda();
    if (gpu) {
      assertTrue(auto == null, auto);
    } else {
      assertTrue(auto != null && auto.startsWith(cpu + " (device auto: ") && !auto.contains("using the CPU"), auto);
    }
    // before the checkpoint is opened: a path that does not exist is not what fails
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Clip.load("/nonexistent/model.pt", Clip.Options.defaults().withDevice("cpu").withPrecision("fp16")));
    assertTrue(e.getMessage().equals(cpu), e.getMessage());
  }
}

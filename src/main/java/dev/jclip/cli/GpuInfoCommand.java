package dev.jclip.cli;

import dev.jclip.backend.Precision;
import dev.jclip.backend.cuda.CudaBackend;
import dev.jclip.backend.cuda.CudaDevice;
import dev.jclip.backend.cuda.CudaDriver;
import dev.jclip.backend.cuda.CudaException;
import dev.jclip.backend.cuda.CudaGemmBench;
import dev.jclip.backend.cuda.CudaModelBench;
import dev.jclip.backend.cuda.CudaOps;
import dev.jclip.backend.Precision;
import dev.jclip.backend.cuda.Cublas;
import dev.jclip.backend.cuda.CublasLt;
import dev.jclip.backend.cuda.CudaStream;
import dev.jclip.backend.cuda.DeviceBuffer;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.graph.GraphBuilder;
import dev.jclip.graph.Value;
import dev.jclip.io.DType;
import java.io.PrintWriter;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code jclip gpu-info}: which CUDA devices jclip sees, and optionally a quick self-test. */
@Command(
    name = "gpu-info",
    mixinStandardHelpOptions = true,
    description = {
      "List the CUDA devices jclip can use (driver, compute capability, memory).",
      "With --self-test, launch a PTX kernel, a cuBLAS GEMM and a cuBLASLt GEMM with bias and residual on each, send values through the pinned upload path, and check the results."
    })
final class GpuInfoCommand implements Callable<Integer> {
  @Spec picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = "--self-test", description = "Run a PTX kernel, a cuBLAS GEMM and a cuBLASLt GEMM on every device and check them.")
  boolean selfTest;

  @Option(names = "--gemm-bench", description = "Measure cuBLAS fp32/fp16/bf16 GEMM and fused-attention throughput on device 0.")
  boolean gemmBench;

  @Option(names = "--model-bench", description = "Measure a random ViT-B/32 on device 0 in every precision (images, 77-token texts, prompts).")
  boolean modelBench;

  @Option(names = "--model-bench-resume", paramLabel = "FILE",
      description = "The tuned rows of a --model-bench run that ended before them (its CUDA context lost in the profile, or killed; FILE: its --json), in this fresh process, into FILE.")
  java.nio.file.Path modelBenchResume;

  @Option(names = "--prompts", paramLabel = "DIR",
      description = "With --model-bench (or --model-bench-resume): a folder with imagenet_classes.json and imagenet_templates.json, for the prompt column (needs --vocab).")
  java.nio.file.Path promptsDir;

  @Option(names = "--vocab", paramLabel = "PATH", description = "With --prompts: bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json + merges.txt.")
  java.nio.file.Path vocab;

  @Option(names = "--precisions", paramLabel = "P[,P...]", split = ",", defaultValue = "fp16,bf16,fp32",
      description = "With --model-bench (or --model-bench-resume): the precisions of the throughput rows, in order (default: ${DEFAULT-VALUE}).")
  java.util.List<String> precisions;

  @Option(names = "--architectures", paramLabel = "NAME[,NAME...]", split = ",",
      description = "With --model-bench: also the image tower of these OpenAI models with random weights (RN50, ..., ViT-L/14@336px; fp16, batch 256 or 64).")
  java.util.List<String> architectures = new java.util.ArrayList<>();

  @Option(names = "--json", paramLabel = "FILE", description = "With --model-bench: also write the results as JSON.")
  java.nio.file.Path json;

  @Override
  public Integer call() throws java.io.IOException {
    PrintWriter out = spec.commandLine().getOut();
    // a misspelt precision fails before any device work
    java.util.List<dev.jclip.backend.Precision> benchPrecisions;
    try {
      benchPrecisions = precisions.stream().map(dev.jclip.backend.Precision::parse).toList();
    } catch (IllegalArgumentException e) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--precisions: " + e.getMessage());
    }
    for (String a : architectures) {
      if (!dev.jclip.model.RandomWeights.NAMES.contains(a)) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(),
            "--architectures: no random geometry for '" + a + "' (" + String.join(", ", dev.jclip.model.RandomWeights.NAMES) + ")");
      }
    }
    int count;
    try {
      count = CudaDriver.deviceCount();
      out.println("CUDA driver " + CudaDriver.driverVersion() + ", " + count + " device(s)");
      try {
        out.println("kernel choices (-Djclip.cuda.*, docs/gpu.md): " + dev.jclip.backend.cuda.CudaBackend.kernelChoices());
      } catch (IllegalArgumentException e) { // a misspelt -Djclip.cuda.* value: every backend would refuse it
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
    } catch (CudaException e) {
      out.println("CUDA unavailable: " + e.getMessage());
      return 3;
    }
    int failures = 0;
    for (int i = 0; i < count; i++) {
      try (CudaDevice dev = CudaDevice.open(i)) {
        long[] mem = dev.memoryInfo();
        out.println(dev + ", " + (mem[0] >> 20) + " MiB free");
        if (selfTest) failures += selfTest(dev, out) ? 0 : 1;
        if (gemmBench && i == 0) {
          CudaGemmBench.run(dev, System.out);
          CudaGemmBench.attention(dev, System.out);
          CudaGemmBench.search(dev, System.out); // cuBLASLt's own kernels, before jclip's gemm_sm90
          CudaGemmBench.fusedLinear(dev, System.out); // last: a kernel that traps leaves the context unusable
        }
        // false: the CUDA context was lost before the tuned rows (the JSON says so; run.sh resumes them in a fresh process)
        if (modelBench && i == 0 && !CudaModelBench.run(dev, promptsDir == null ? null : prompts(promptsDir, vocab), json, System.out,
            benchPrecisions, architectures)) {
          failures++;
        }
        if (modelBenchResume != null && i == 0
            && !CudaModelBench.resume(dev, promptsDir == null ? null : prompts(promptsDir, vocab), modelBenchResume, System.out, benchPrecisions)) {
          failures++;
        }
      } catch (CudaException e) {
        out.println("cuda:" + i + " failed: " + e.getMessage());
        failures++;
      }
    }
    out.flush();
    return failures == 0 ? 0 : 1;
  }

  /** The ImageNet prompts (classes x templates, in that order) as 77-token ids. */
  private static int[][] prompts(java.nio.file.Path dir, java.nio.file.Path vocab) {
    if (vocab == null) throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(new GpuInfoCommand()), "--prompts needs --vocab");
    try {
      java.util.List<String> texts = dev.jclip.tokenizer.Prompts.expand(
          dev.jclip.tokenizer.Prompts.readList(dir.resolve("imagenet_classes.json")),
          dev.jclip.tokenizer.Prompts.readList(dir.resolve("imagenet_templates.json")));
      dev.jclip.tokenizer.ClipTokenizer tok = dev.jclip.tokenizer.ClipTokenizer.load(vocab);
      return tok.tokenize(texts, 77, true); // all of them: the model benchmark also times the whole set
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException("reading prompts from " + dir, e);
    }
  }

  /**
   * QuickGELU on a PTX kernel, a small SGEMM, and the same product through cuBLASLt with a bias and
   * a residual in its epilogue, each checked against a host computation (the GEMMs' small
   * integers are exact in fp32).
   */
  private static boolean selfTest(CudaDevice dev, PrintWriter out) {
    int rows = 77, cols = 512;
    float[] x = new float[rows * cols];
    for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i * 0.01) * 4;
    double kernelErr = 0;
    try (CudaOps ops = new CudaOps(dev, null);
        DeviceBuffer d = dev.allocate(4L * x.length).upload(x)) {
      ops.biasQuickGelu(d, null, rows, cols);
      float[] y = d.downloadFloats(x.length);
      for (int i = 0; i < x.length; i++) {
        double v = x[i];
        kernelErr = Math.max(kernelErr, Math.abs(y[i] - v / (1 + Math.exp(-1.702 * v))));
      }
    }
    int m = 64, n = 96, k = 128;
    float[] a = new float[m * k], b = new float[n * k];
    for (int i = 0; i < a.length; i++) a[i] = (i % 7) - 3;
    for (int i = 0; i < b.length; i++) b[i] = (i % 5) - 2;
    double gemmErr = 0;
    try (Cublas blas = new Cublas(dev);
        DeviceBuffer da = dev.allocate(4L * a.length).upload(a);
        DeviceBuffer db = dev.allocate(4L * b.length).upload(b);
        DeviceBuffer dc = dev.allocate(4L * m * n)) {
      blas.sgemmNT(m, n, k, 1f, da, db, 0f, dc);
      float[] c = dc.downloadFloats(m * n);
      for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
          double s = 0;
          for (int t = 0; t < k; t++) s += a[i * k + t] * b[j * k + t];
          gemmErr = Math.max(gemmErr, Math.abs(c[i * n + j] - s));
        }
      }
      out.println("  cuBLAS " + blas.version());
    }
    double ltErr;
    try {
      ltErr = cublasLtSelfTest(dev, a, b, m, n, k, out);
    } catch (RuntimeException e) {
      out.println("  cuBLASLt failed: " + e.getMessage());
      ltErr = Double.NaN;
    }
    long wrong;
    try {
      wrong = pipelineMismatches(dev);
    } catch (RuntimeException e) {
      out.println("  pinned upload path failed: " + e);
      wrong = -1;
    }
    boolean ok = kernelErr < 1e-5 && gemmErr == 0 && ltErr == 0 && wrong == 0;
    out.printf("  self-test %s: PTX kernel bias_quick_gelu_f32 max error %.2e, cuBLAS SGEMM %dx%dx%d max error %.2e, "
        + "cuBLASLt GEMM + bias + residual max error %.2e, pinned uploads and reads through two executors in flight (fp32, fp16): "
        + "%d wrong values%n", ok ? "passed" : "FAILED", kernelErr, m, n, k, gemmErr, ltErr, wrong);
    return ok;
  }

  /** {@code x · wᵀ + bias + residual} through cuBLASLt's bias epilogue and beta = 1; the largest difference from the host. */
  private static double cublasLtSelfTest(CudaDevice dev, float[] a, float[] b, int m, int n, int k, PrintWriter out) {
    float[] bias = new float[n], res = new float[m * n];
    for (int j = 0; j < n; j++) bias[j] = (j % 9) - 4;
    for (int i = 0; i < res.length; i++) res[i] = (i % 11) - 5;
    try (CudaStream stream = new CudaStream(dev);
        CublasLt lt = new CublasLt(dev);
        DeviceBuffer work = dev.allocate(4L << 20);
        DeviceBuffer da = dev.allocate(4L * a.length).upload(a);
        DeviceBuffer db = dev.allocate(4L * b.length).upload(b);
        DeviceBuffer dbias = dev.allocate(4L * n).upload(bias);
        DeviceBuffer dres = dev.allocate(4L * res.length).upload(res);
        DeviceBuffer dc = dev.allocate(4L * m * n)) {
      lt.bind(stream, work);
      if (!lt.linear(m, n, k, CublasLt.dataType(Precision.FP32), da, db, dbias, dres, dc)) {
        throw new IllegalStateException("no cuBLASLt algorithm: " + lt.unsupported());
      }
      stream.synchronize();
      float[] c = dc.downloadFloats(m * n);
      double err = 0;
      for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
          double s = bias[j] + res[i * n + j];
          for (int t = 0; t < k; t++) s += a[i * k + t] * b[j * k + t];
          err = Math.max(err, Math.abs(c[i * n + j] - s));
        }
      }
      out.println("  cuBLASLt " + lt.version());
      return err;
    }
  }

  /**
   * {@code y = relu(x + x)} on 2^20 values through the backend's upload path (pinned staging, the
   * upload stream, the 16-bit cast, fenced reads), two executors in flight at once: the number of
   * values that differ from the exact result (the inputs are small integers, exact in fp16).
   */
  private static long pipelineMismatches(CudaDevice dev) {
    GraphBuilder g = new GraphBuilder();
    Value x = g.input("x", DType.F32, 1 << 10, 1 << 10);
    g.output("y", g.add("y", x, x, true));
    Graph graph = g.build();
    long wrong = 0;
    for (Precision p : new Precision[] {Precision.FP32, Precision.FP16}) {
      try (CudaBackend backend = new CudaBackend(dev, p);
          Executor a = new Executor(graph, backend, List.of());
          Executor b = new Executor(graph, backend, List.of())) {
        float[] xa = new float[1 << 20], xb = new float[1 << 20];
        for (int i = 0; i < xa.length; i++) {
          xa[i] = (i % 17) - 8;
          xb[i] = (i % 13) - 6;
        }
        a.submit(Map.of("x", xa));
        b.submit(Map.of("x", xb));
        float[] ya = a.collect().get("y"), yb = b.collect().get("y");
        for (int i = 0; i < xa.length; i++) {
          if (ya[i] != Math.max(2 * xa[i], 0)) wrong++;
          if (yb[i] != Math.max(2 * xb[i], 0)) wrong++;
        }
      }
    }
    return wrong;
  }
}

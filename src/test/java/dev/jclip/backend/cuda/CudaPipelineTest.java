package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.api.Clip;
import dev.jclip.api.ClipBatchEncoder;
import dev.jclip.api.ClipBatcher;
import dev.jclip.backend.Precision;
import dev.jclip.backend.ReferenceOps;
import dev.jclip.graph.Executor;
import dev.jclip.graph.Graph;
import dev.jclip.model.ClipConfig;
import dev.jclip.model.ClipGraphs;
import dev.jclip.model.RandomWeights;
import dev.jclip.pipeline.BatchEncoder;
import dev.jclip.testing.Reference;
import dev.jclip.testing.TestRandom;
import dev.jclip.tokenizer.ClipTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The upload path of {@link CudaBackend} (pinned staging per input, upload stream, events) and
 * {@link Executor#submit}/{@link Executor#collect}: two executors kept in flight give, bit for bit,
 * what one executor gives run after run; a batch's result survives the next batch's upload (and
 * the caller reusing the input arrays as soon as submit returns); pinned and device memory come
 * back when executors and backends close; {@link Clip#submitImage} and the embedding pipeline's
 * encoder give encodeImage's features.
 */
@Tag("cuda")
class CudaPipelineTest {
  static CudaDevice device;
  static ClipConfig cfg;
  static ClipGraphs graphs;

  @BeforeAll
  static void open() {
    device = CudaTestSupport.openDevice();
    cfg = RandomWeights.config("ViT-B/32");
    graphs = new ClipGraphs(cfg, RandomWeights.generate(cfg, 20261127L));
  }

  @AfterAll
  static void close() {
    if (device != null) device.close();
  }

  static Stream<Arguments> modes() {
    return Stream.of(Precision.FP32, Precision.FP16).flatMap(p -> Stream.of(Arguments.of(p, false), Arguments.of(p, true)));
  }

  static int[] tokens(Random random, int texts, int len) {
    int[] ids = new int[texts * len];
    for (int t = 0; t < texts; t++) {
      int eot = 3 + random.nextInt(len - 3);
      ids[t * len] = 49406;
      for (int i = 1; i < eot; i++) ids[t * len + i] = random.nextInt(49406);
      ids[t * len + eot] = 49407;
    }
    return ids;
  }

  /**
   * Runs {@code inputs} through {@code serial} one after the other, and through {@code a} and
   * {@code b} alternately with batch i+1 submitted before batch i is collected; asserts the outputs
   * equal bit for bit.
   */
  static void assertInterleavedEqualsSerial(String what, String output, Executor serial, Executor a, Executor b, List<Map<String, ?>> inputs) {
    // Warm up: the first run of each is eager, the second records a CUDA graph (in replay mode).
    for (Executor e : List.of(serial, a, b)) for (int i = 0; i < 2; i++) e.run(inputs.get(i));
    List<float[]> want = new ArrayList<>();
    for (Map<String, ?> in : inputs) want.add(serial.run(in).get(output));
    Executor[] ex = {a, b};
    List<float[]> got = new ArrayList<>();
    ex[0].submit(inputs.get(0));
    for (int i = 1; i < inputs.size(); i++) {
      ex[i % 2].submit(inputs.get(i));
      got.add(ex[(i - 1) % 2].collect().get(output));
    }
    got.add(ex[(inputs.size() - 1) % 2].collect().get(output));
    for (int i = 0; i < inputs.size(); i++) assertArrayEquals(want.get(i), got.get(i), what + ": batch " + i + " differs from the serial run");
    System.out.printf("[cuda] pipeline %s: %d batches through two executors equal the serial runs bit for bit%n", what, inputs.size());
  }

  @ParameterizedTest(name = "{0} replay {1}")
  @MethodSource("modes")
  void twoExecutorsInFlightEqualSerialRunsBitForBit(Precision p, boolean replay) {
    Random random = TestRandom.create("CudaPipelineTest." + p + replay);
    int images = 4, texts = 5, len = 77;
    List<Map<String, ?>> pixels = new ArrayList<>(), ids = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      pixels.add(Map.of("pixels", TestRandom.gaussian(random, images * 3 * 224 * 224, 1)));
      ids.add(Map.of("tokens", tokens(random, texts, len)));
    }
    try (CudaBackend backend = new CudaBackend(device, p)) {
      Graph image = graphs.image(images), text = graphs.text(texts, len);
      try (Executor s = new Executor(image, backend, List.of(), replay);
          Executor a = new Executor(image, backend, List.of(), replay);
          Executor b = new Executor(image, backend, List.of(), replay)) {
        assertInterleavedEqualsSerial(p + " replay " + replay + " image", "image_features", s, a, b, pixels);
        if (replay) assertTrue(a.replaying() && b.replaying(), "the pipelined executors replay: " + a.recordingFailure());
      }
      try (Executor s = new Executor(text, backend, List.of(), replay);
          Executor a = new Executor(text, backend, List.of(), replay);
          Executor b = new Executor(text, backend, List.of(), replay)) {
        assertInterleavedEqualsSerial(p + " replay " + replay + " text", "text_features", s, a, b, ids);
      }
    }
  }

  /**
   * Pixels rounded to the backend's 16-bit format on the host ({@link CudaBackend#hostInputCast},
   * session 22) give the features of the device's cast bit for bit, run by run and pipelined (two
   * executors in flight, CUDA graphs replayed), at a batch the host rounds in parallel chunks (64
   * images: 9.6M floats, 10 chunks of {@link HostCopy#ROUNDING_CHUNK}; parallel from 4M).
   */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(value = Precision.class, names = {"FP16", "BF16"})
  void pixelsRoundedOnTheHostGiveTheDeviceCastsFeatures(Precision p) {
    Random random = TestRandom.create("CudaPipelineTest.hostCast." + p);
    int images = 64;
    List<Map<String, ?>> pixels = new ArrayList<>();
    for (int i = 0; i < 4; i++) pixels.add(Map.of("pixels", TestRandom.gaussian(random, images * 3 * 224 * 224, 1)));
    try (CudaBackend backend = new CudaBackend(device, p)) {
      Graph image = graphs.image(images);
      List<float[]> want = new ArrayList<>();
      try (Executor e = new Executor(image, backend, List.of(), true)) {
        for (Map<String, ?> in : pixels) want.add(e.run(in).get("image_features"));
      }
      backend.hostInputCast(true);
      try (Executor s = new Executor(image, backend, List.of(), true);
          Executor a = new Executor(image, backend, List.of(), true);
          Executor b = new Executor(image, backend, List.of(), true)) {
        for (int i = 0; i < pixels.size(); i++) assertArrayEquals(want.get(i), s.run(pixels.get(i)).get("image_features"), p + " batch " + i);
        assertInterleavedEqualsSerial(p + " rounded on the host", "image_features", s, a, b, pixels);
      }
    }
  }

  @ParameterizedTest(name = "{0} replay {1}")
  @MethodSource("modes")
  void aBatchSurvivesTheNextBatchsUploadAndTheReuseOfItsArray(Precision p, boolean replay) {
    Random random = TestRandom.create("CudaPipelineTest.upload." + p + replay);
    int images = 64; // 38 MB of pixels per batch: an upload that takes a while
    float[] p0 = TestRandom.gaussian(random, images * 3 * 224 * 224, 1);
    float[] p1 = TestRandom.gaussian(random, images * 3 * 224 * 224, 1);
    try (CudaBackend backend = new CudaBackend(device, p);
        Executor s = new Executor(graphs.image(images), backend, List.of(), replay);
        Executor a = new Executor(graphs.image(images), backend, List.of(), replay);
        Executor b = new Executor(graphs.image(images), backend, List.of(), replay)) {
      for (Executor e : List.of(s, a, b)) for (int i = 0; i < 2; i++) e.run(Map.of("pixels", p1));
      float[] want0 = s.run(Map.of("pixels", p0)).get("image_features");
      float[] want1 = s.run(Map.of("pixels", p1)).get("image_features");
      float[] q0 = p0.clone(), q1 = p1.clone();
      a.submit(Map.of("pixels", q0));
      Arrays.fill(q0, Float.NaN); // the caller may reuse its array once submit returns
      b.submit(Map.of("pixels", q1)); // uploads while a computes
      Arrays.fill(q1, Float.NaN);
      // collected in the other order: b's read must not need a's, nor a's result be b's
      assertArrayEquals(want1, b.collect().get("image_features"), p + " replay " + replay + ": the second batch");
      assertArrayEquals(want0, a.collect().get("image_features"), p + " replay " + replay + ": the batch in flight during the upload");
      // and the same executors again, each with the other's batch
      a.submit(Map.of("pixels", p1));
      b.submit(Map.of("pixels", p0));
      assertArrayEquals(want1, a.collect().get("image_features"), p + " replay " + replay + ": a with the second batch");
      assertArrayEquals(want0, b.collect().get("image_features"), p + " replay " + replay + ": b with the first batch");
    }
  }

  @Test
  void closingExecutorsAndBackendsReturnsPinnedAndDeviceMemory() {
    Random random = TestRandom.create("CudaPipelineTest.leak");
    float[] pixels = TestRandom.gaussian(random, 8 * 3 * 224 * 224, 1);
    int[] ids = tokens(random, 8, 77);
    long pinnedAtStart = device.pinnedBytes();
    // One backend cycle first: module loading and cuBLAS keep some memory of their own for the context.
    cycleBackend(pixels);
    long freeBefore = device.memoryInfo()[0];
    try (CudaBackend backend = new CudaBackend(device, Precision.FP16)) {
      try (Executor warm = new Executor(graphs.image(8), backend, List.of(), true)) {
        warm.run(Map.of("pixels", pixels)); // parameters uploaded, scratch sized
      }
      try (Executor warm = new Executor(graphs.text(8, 77), backend, List.of(), true)) {
        warm.run(Map.of("tokens", ids));
      }
      long freeWarm = device.memoryInfo()[0];
      long pinnedWarm = device.pinnedBytes();
      for (int cycle = 0; cycle < 100; cycle++) {
        try (Executor e = new Executor(cycle % 3 == 2 ? graphs.text(8, 77) : graphs.image(8), backend, List.of(), cycle % 2 == 0)) {
          Map<String, ?> in = cycle % 3 == 2 ? Map.of("tokens", ids) : Map.of("pixels", pixels);
          e.run(in);
          e.submit(in);
          if (cycle % 4 != 0) e.collect(); // else closed with its run still in flight
        }
      }
      long leakedDevice = freeWarm - device.memoryInfo()[0];
      System.out.printf("[cuda] pipeline: 100 executor cycles: device memory %+d bytes, pinned %d -> %d bytes%n", -leakedDevice, pinnedWarm,
          device.pinnedBytes());
      assertEquals(pinnedWarm, device.pinnedBytes(), "pinned memory left by 100 closed executors");
      assertTrue(leakedDevice < 64L << 20, leakedDevice + " bytes of device memory left by 100 closed executors");
    }
    for (int cycle = 0; cycle < 10; cycle++) cycleBackend(pixels);
    long leaked = freeBefore - device.memoryInfo()[0];
    System.out.printf("[cuda] pipeline: 11 backend cycles: device memory %+d bytes, pinned %d bytes%n", -leaked, device.pinnedBytes());
    assertEquals(pinnedAtStart, device.pinnedBytes(), "pinned memory left by closed backends");
    assertTrue(leaked < 64L << 20, leaked + " bytes of device memory left by closed backends");
  }

  private static void cycleBackend(float[] pixels) {
    try (CudaBackend backend = new CudaBackend(device, Precision.FP16);
        Executor a = new Executor(graphs.image(8), backend, List.of(), true);
        Executor b = new Executor(graphs.image(8), backend, List.of(), true)) {
      a.run(Map.of("pixels", pixels));
      a.submit(Map.of("pixels", pixels));
      b.submit(Map.of("pixels", pixels)); // both in flight when the backend closes them
    }
  }

  @Test
  void clipSubmitImageAndThePipelineEncoderGiveEncodeImagesFeatures() throws Exception {
    Random random = TestRandom.create("CudaPipelineTest.clip");
    ClipTokenizer tok = ClipTokenizer.load(Reference.dir().resolve("models/vit-b32-tiny/hf"));
    Clip.Options o = Clip.Options.defaults().withDevice("cuda:" + device.ordinal()).withPrecision("fp16").withBatchSize(4);
    try (Clip clip = Clip.create(cfg, RandomWeights.generate(cfg, 7), tok, o)) {
      int per = 3 * 224 * 224, e = cfg.embedDim();
      Clip.Pixels all = new Clip.Pixels(10, 224, TestRandom.gaussian(random, 10 * per, 1));
      float[][] want = new float[10][]; // batch by batch: each call one batch, run serially
      for (int b0 = 0; b0 < 10; b0 += 4) {
        float[][] w = clip.encodeImage(all.slice(b0, Math.min(10, b0 + 4)));
        System.arraycopy(w, 0, want, b0, w.length);
      }
      float[][] piped = clip.encodeImage(all); // three batches, pipelined on a GPU
      for (int i = 0; i < want.length; i++) assertClose(want[i], piped[i], "image " + i + " by encodeImage");
      float[][] got;
      try (Clip.Pending pending = clip.submitImage(all)) { // three batches: 4, 4, 2
        got = pending.finish();
      }
      for (int i = 0; i < want.length; i++) assertClose(want[i], got[i], "image " + i + " by submitImage");
      // the embedding pipeline's order: submit batch n+1, then finish batch n
      ClipBatchEncoder enc = new ClipBatchEncoder(clip, "random ViT-B/32");
      float[] first = Arrays.copyOfRange(all.data(), 0, 4 * per), second = Arrays.copyOfRange(all.data(), 4 * per, 8 * per);
      float[] out0 = new float[4 * e], out1 = new float[4 * e];
      try (BatchEncoder.Pending b0 = enc.submitImages(first, 4, out0);
          BatchEncoder.Pending b1 = enc.submitImages(second, 4, out1)) {
        Arrays.fill(first, Float.NaN);
        Arrays.fill(second, Float.NaN);
        b0.finish();
        b1.finish();
      }
      for (int i = 0; i < 4; i++) {
        assertClose(want[i], Arrays.copyOfRange(out0, i * e, (i + 1) * e), "batch 0 row " + i);
        assertClose(want[4 + i], Arrays.copyOfRange(out1, i * e, (i + 1) * e), "batch 1 row " + i);
      }
      // texts the same way (batches cut at different lengths: executors of several shapes in flight)
      List<String> texts = List.of("a photo of a dog", "a diagram", "a cat sitting on a mat in the sun", "x", "two", "a very long caption "
          + "that goes on and on", "seven", "eight", "nine", "ten");
      Clip.Tokens tokens = clip.tokenize(texts, true);
      float[][] wantText = new float[texts.size()][]; // one text a call: one batch, run serially
      for (int i = 0; i < texts.size(); i++) wantText[i] = clip.encodeText(clip.tokenize(texts.subList(i, i + 1), true))[0];
      float[][] pipedText = clip.encodeText(tokens); // three batches, pipelined on a GPU
      for (int i = 0; i < texts.size(); i++) assertClose(wantText[i], pipedText[i], "text " + i + " by encodeText");
      try (Clip.Pending a = clip.submitText(tokens);
          Clip.Pending b = clip.submitText(clip.tokenize(texts.subList(0, 3), true))) {
        float[][] ga = a.finish(), gb = b.finish();
        for (int i = 0; i < texts.size(); i++) assertClose(wantText[i], ga[i], "text " + i + " by submitText");
        for (int i = 0; i < 3; i++) assertClose(wantText[i], gb[i], "text " + i + " of the second submitText");
      }
      // an abandoned batch gives its executor back, and the next call works
      enc.submitImages(second, 4, out1).close();
      assertClose(want[9], clip.encodeImage(all.slice(9, 10))[0], "after an abandoned batch");
    }
  }

  /**
   * {@code Clip}'s own batch on a GPU, none set by the caller (session 22): 256, and what an encode
   * call does when that does not fit. A first {@code Clip} measures, from the free device memory:
   * what its first batch of 256 takes ({@code first}: an executor's arena and fp32 pixel staging,
   * plus the backend's scratch growing to that batch) and what a second one in flight takes
   * ({@code one}: an executor alone). A second {@code Clip}, its weights uploaded, then finds
   * {@code first + one / 2} free: its first batch of 256 fits, the second in flight does not, two
   * of 128 do (with half a batch to spare either way). So encoding 512 images closes its idle
   * executor, tries again, halves the batch to 128 and gives the features of batches of 64; the
   * smaller batch is kept after the memory comes back.
   */
  @Test
  void clipRunsTheDevicesBatchAndHalvesItWhenTheGpuIsFull() throws Exception {
    Random random = TestRandom.create("CudaPipelineTest.deviceBatch");
    ClipTokenizer tok = ClipTokenizer.load(Reference.dir().resolve("models/vit-b32-tiny/hf"));
    Map<String, dev.jclip.io.Tensor> weights = RandomWeights.generate(cfg, 11);
    int per = 3 * 224 * 224, n = 512;
    Clip.Pixels all = new Clip.Pixels(n, 224, TestRandom.gaussian(random, n * per, 1));
    Clip.Options o = Clip.Options.defaults().withDevice("cuda:" + device.ordinal()).withPrecision("fp16");
    float[][] want;
    try (Clip small = Clip.create(cfg, weights, tok, o.withBatchSize(64))) {
      want = small.encodeImage(all);
    }
    long first, one;
    try (Clip measure = Clip.create(cfg, weights, tok, o)) {
      assertEquals(256, measure.batchSize(), "a GPU's batch");
      measure.encodeImage(all.slice(0, 1)); // the weights uploaded
      long f0 = device.memoryInfo()[0];
      measure.encodeImage(all.slice(0, 256)); // one executor of 256, idle in the pool afterwards
      long f1 = device.memoryInfo()[0];
      measure.encodeImage(all); // two in flight: the idle one and a second
      long f2 = device.memoryInfo()[0];
      first = f0 - f1;
      one = f1 - f2;
      assertEquals(256, measure.batchSize(), "512 images fit in batches of 256 on an empty GPU");
    }
    assertTrue(one > 0 && first >= one, "batches of 256 took " + first + " and " + one + " bytes of device memory");
    try (Clip clip = Clip.create(cfg, weights, tok, o)) {
      clip.encodeImage(all.slice(0, 1)); // the weights uploaded
      long target = first + one / 2;
      List<DeviceBuffer> hogs = new ArrayList<>(); // all but target: one big allocation, then top-ups backing off by 16 MiB
      float[][] got;
      try {
        hogs.add(device.allocate(device.memoryInfo()[0] - target - (512L << 20)));
        for (int tries = 0; device.memoryInfo()[0] > target + one / 8 && tries < 64; tries++) {
          long take = device.memoryInfo()[0] - target - ((long) tries << 24);
          if (take <= 0) break;
          try {
            hogs.add(device.allocate(take));
          } catch (CudaException refused) {
            // less, next time
          }
        }
        long left = device.memoryInfo()[0];
        assertTrue(left < first + one * 3 / 4, "could not fill the GPU: " + left / 1e6 + " MB left, two batches of 256 take "
            + (first + one) / 1e6);
        got = clip.encodeImage(all);
        System.out.printf("[cuda] device batch: batches of 256 took %.1f MB (the first) and %.1f MB (the next); with %.1f MB free, 512 "
            + "images ran in batches of %d%n", first / 1e6, one / 1e6, left / 1e6, clip.batchSize());
      } finally {
        for (DeviceBuffer h : hogs) h.close();
      }
      int b = clip.batchSize();
      assertTrue(b < 256 && b >= 32, "the batch after the GPU filled up: " + b);
      for (int i = 0; i < n; i++) assertClose(want[i], got[i], "image " + i + " with the GPU full");
      float[][] again = clip.encodeImage(all.slice(0, 300));
      assertEquals(b, clip.batchSize(), "the smaller batch is kept");
      for (int i = 0; i < 300; i++) assertClose(want[i], again[i], "image " + i + " afterwards");
    }
  }

  /**
   * {@link ClipBatcher} on a GPU (session 23): 48 one-image and 16 one-text requests submitted at
   * once from a pool of threads merge into padded batches (executors of several shapes captured
   * and in flight), and each request gets the features of its own call; then requests of 1-5
   * images through batches of at most 8 (requests cut between batches, two batches in flight);
   * then two Clips on this GPU behind one batcher (two backends, each its own stream, at once).
   */
  @Test
  void aBatcherMergesConcurrentRequestsIntoPaddedBatches() throws Exception {
    Random random = TestRandom.create("CudaPipelineTest.batcher");
    ClipTokenizer tok = ClipTokenizer.load(Reference.dir().resolve("models/vit-b32-tiny/hf"));
    Clip.Options o = Clip.Options.defaults().withDevice("cuda:" + device.ordinal()).withPrecision("fp16");
    try (Clip clip = Clip.create(cfg, RandomWeights.generate(cfg, 7), tok, o)) {
      int per = 3 * 224 * 224;
      List<Clip.Pixels> images = new java.util.ArrayList<>();
      for (int i = 0; i < 48; i++) images.add(new Clip.Pixels(1, 224, TestRandom.gaussian(random, per, 1)));
      List<Clip.Tokens> texts = new java.util.ArrayList<>();
      for (int i = 0; i < 16; i++) texts.add(clip.tokenize("a photo of " + "a very ".repeat(i % 4) + "small dog number " + i));
      List<float[]> want = new java.util.ArrayList<>();
      for (Clip.Pixels p : images) want.add(clip.encodeImage(p)[0]);
      for (Clip.Tokens t : texts) want.add(clip.encodeText(t)[0]);
      java.util.concurrent.ExecutorService callers = java.util.concurrent.Executors.newFixedThreadPool(16);
      try {
        batcherPhases(clip, callers, images, texts, want, random);
      } finally {
        callers.shutdownNow();
      }
    }
  }

  private static void batcherPhases(Clip clip, java.util.concurrent.ExecutorService callers, List<Clip.Pixels> images, List<Clip.Tokens> texts,
      List<float[]> want, Random random) throws Exception {
    try (ClipBatcher b = ClipBatcher.of(clip)) {
      List<java.util.concurrent.Future<float[][]>> got = new java.util.ArrayList<>();
      for (int i = 0; i < 64; i++) {
        int k = i;
        got.add(callers.submit(() -> k < 48 ? b.encodeImage(images.get(k)) : b.encodeText(texts.get(k - 48))));
      }
      for (int i = 0; i < 64; i++) assertClose(want.get(i), got.get(i).get(120, java.util.concurrent.TimeUnit.SECONDS)[0], "request " + i);
      ClipBatcher.Stats s = b.stats();
      assertEquals(64, s.requests());
      assertEquals(64, s.items());
      assertTrue(s.batches() < 64, "the requests queued behind a batch ran together: " + s);
      for (int size : s.batchesBySize().keySet()) assertEquals(size, ClipBatcher.paddedSize(size, clip.batchSize()), "a size from the list: " + s);
      assertEquals(0, s.failedBatches());
    }
    // batches of at most 8 and requests of 1-5 images: requests cut between batches, and full
    // batches submitted while the previous one is in flight
    try (ClipBatcher b = ClipBatcher.of(clip, ClipBatcher.Options.defaults().withMaxBatch(8))) {
      imagesInRequestsOfOneToFive(b, callers, images, want, random, "batches of 8");
      ClipBatcher.Stats s = b.stats();
      assertEquals(48, s.items());
      for (int size : s.batchesBySize().keySet()) assertTrue(size == 1 || size == 2 || size == 4 || size == 8, "sizes up to 8: " + s);
      assertEquals(0, s.failedBatches());
    }
    // two Clips on this GPU behind one batcher: two dispatcher threads, two backends (streams) at once
    Clip.Options o = Clip.Options.defaults().withDevice("cuda:" + device.ordinal()).withPrecision("fp16");
    try (Clip second = Clip.create(clip.config(), RandomWeights.generate(clip.config(), 7), clip.tokenizer(), o);
        ClipBatcher b = ClipBatcher.of(List.of(clip, second), ClipBatcher.Options.defaults().withMaxBatch(8))) {
      // the texts, and requests of 1-5 images (some cut between the two Clips' batches)
      List<java.util.concurrent.Future<float[][]>> gotTexts = new java.util.ArrayList<>();
      for (Clip.Tokens t : texts) gotTexts.add(callers.submit(() -> b.encodeText(t)));
      imagesInRequestsOfOneToFive(b, callers, images, want, random, "two Clips");
      for (int i = 0; i < texts.size(); i++) assertClose(want.get(48 + i), gotTexts.get(i).get(120, java.util.concurrent.TimeUnit.SECONDS)[0], "text " + i + " (two Clips)");
      ClipBatcher.Stats s = b.stats();
      assertEquals(48 + texts.size(), s.items());
      assertEquals(0, s.failedBatches());
      assertTrue(s.batchesByModel().get(0) > 0 && s.batchesByModel().get(1) > 0, "both Clips ran batches: " + s);
      System.out.println("[batcher] two Clips on one GPU: batches by Clip " + s.batchesByModel());
    }
  }

  /** The images in requests of 1-5 consecutive ones through {@code b}, from the callers: each row within fp16 rounding of {@code want}'s. */
  private static void imagesInRequestsOfOneToFive(ClipBatcher b, java.util.concurrent.ExecutorService callers, List<Clip.Pixels> images,
      List<float[]> want, Random random, String what) throws Exception {
    List<java.util.concurrent.Future<float[][]>> got = new java.util.ArrayList<>();
    List<Integer> firsts = new java.util.ArrayList<>();
    for (int i = 0, n; i < images.size(); i += n) {
      n = Math.min(images.size() - i, 1 + random.nextInt(5));
      Clip.Pixels req = Clip.Pixels.concat(images.subList(i, i + n));
      firsts.add(i);
      got.add(callers.submit(() -> b.encodeImage(req)));
    }
    for (int r = 0; r < got.size(); r++) {
      float[][] rows = got.get(r).get(120, java.util.concurrent.TimeUnit.SECONDS);
      for (int k = 0; k < rows.length; k++) assertClose(want.get(firsts.get(r) + k), rows[k], "image " + (firsts.get(r) + k) + " (" + what + ")");
    }
  }

  /**
   * Same features up to fp16 rounding (batches of another size may take other GEMM kernels): a row
   * of another image, or of a batch mixed with the next one's upload, is off by the order of 1.
   */
  private static void assertClose(float[] want, float[] got, String what) {
    double err = ReferenceOps.relativeError(got, want);
    assertTrue(err <= 1e-2, what + ": relative error " + err);
  }
}

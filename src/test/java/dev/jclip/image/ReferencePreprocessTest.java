package dev.jclip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.jclip.io.Downloader;
import dev.jclip.io.SafetensorsReader;
import dev.jclip.io.Tensor;
import dev.jclip.testing.Reference;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import dev.jclip.image.ImageDecoder.JpegCodec;
import dev.jclip.image.ImageDecoder.PngCodec;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Every image of the reference set against {@code preprocess/preprocess.safetensors}: decoded
 * pixels against {@code decoded_sha256}, geometry against the recorded resize/crop, {@code .rgb8}
 * byte for byte at every stored resolution, float tensors within 1e-5. On both JPEG paths: the
 * system's libjpeg-turbo (skipped where it is not installed) and the Java decoders; and on both PNG
 * paths: our reader ({@link PngDecoder}) and ImageIO.
 */
class ReferencePreprocessTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @ParameterizedTest(name = "JPEG {0}, PNG {1}")
  @CsvSource({"NATIVE, AUTO", "JAVA, JAVA", "JAVA, IMAGEIO"})
  void everyReferenceImageMatchesPillowAndTorchvision(JpegCodec codec, PngCodec png) throws Exception {
    Assumptions.assumeTrue(codec != JpegCodec.NATIVE || NativeJpeg.get() != null, "libturbojpeg.so.0 not installed (package libturbojpeg0): native JPEG path skipped");
    Path file = Reference.file("preprocess/preprocess.safetensors");
    ImageDecoder decoder = new ImageDecoder(ImageDecoder.DEFAULT_MAX_PIXELS, ImageDecoder.DEFAULT_MAX_FILE_BYTES, codec, png);
    List<String> failures = new ArrayList<>();
    Map<String, Long> differingBytes = new LinkedHashMap<>();
    int checkedFloats = 0;
    try (SafetensorsReader st = SafetensorsReader.open(file)) {
      JsonNode images = JSON.readTree(st.metadata().get("images"));
      JsonNode resolutions = JSON.readTree(st.metadata().get("resolutions"));
      for (var it = images.fields(); it.hasNext(); ) {
        var e = it.next();
        String name = e.getKey();
        JsonNode meta = e.getValue();
        DecodedImage im = decoder.decode(Reference.dir().resolve("images").resolve(name));

        assertEquals(meta.get("mode").asText(), im.mode().pillowName(), name + " mode");
        assertEquals(meta.get("width").asInt(), im.width(), name);
        assertEquals(meta.get("height").asInt(), im.height(), name);
        long[] shape = new long[meta.get("decoded_shape").size()];
        for (int i = 0; i < shape.length; i++) shape[i] = meta.get("decoded_shape").get(i).asLong();
        assertArrayEquals(shape, im.numpyShape(), name + " decoded shape");
        String sha = Downloader.sha256(im.numpyBytes());
        if (!sha.equals(meta.get("decoded_sha256").asText())) failures.add(name + ": decoded pixels differ from Pillow's");

        for (JsonNode rn : resolutions) {
          int r = rn.asInt();
          JsonNode p = meta.get("preprocess").get(String.valueOf(r));
          ClipPreprocessor.Geometry g = ClipPreprocessor.geometry(im.width(), im.height(), r);
          assertEquals(p.get("resized_width").asLong(), g.resizedWidth(), name + "@" + r);
          assertEquals(p.get("resized_height").asLong(), g.resizedHeight(), name + "@" + r);
          assertEquals(p.get("crop_left").asInt(), g.cropLeft(), name + "@" + r);
          assertEquals(p.get("crop_top").asInt(), g.cropTop(), name + "@" + r);
          assertEquals(p.get("resize_skipped").asBoolean(), g.resizeSkipped(), name + "@" + r);

          ClipPreprocessor pre = new ClipPreprocessor(r);
          byte[] got = pre.rgb8(im);
          byte[] want = st.tensor(name + "@" + r + ".rgb8").toByteArray();
          long diff = 0;
          int maxDiff = 0;
          for (int i = 0; i < want.length; i++) {
            int d = Math.abs((got[i] & 0xff) - (want[i] & 0xff));
            if (d != 0) diff++;
            maxDiff = Math.max(maxDiff, d);
          }
          differingBytes.put(name + "@" + r, diff);
          if (diff != 0) failures.add(name + "@" + r + ".rgb8: " + diff + " of " + want.length + " bytes differ (max " + maxDiff + ")");

          if (st.contains(name + "@" + r)) {
            Tensor t = st.tensor(name + "@" + r);
            float[] wantF = t.toFloatArray();
            float[] gotF = new float[pre.floatsPerImage() + 5];
            pre.toTensor(im, gotF, 5); // at an offset, as in a batch
            double worst = 0;
            for (int i = 0; i < wantF.length; i++) worst = Math.max(worst, Math.abs(gotF[5 + i] - wantF[i]));
            if (worst > 1e-5) failures.add(name + "@" + r + ": float tensor max abs diff " + worst);
            checkedFloats++;
          }
        }
      }
    }
    System.out.println(codec + " JPEG path, " + png + " PNG path, differing rgb8 bytes per image: " + differingBytes);
    assertTrue(checkedFloats > 0);
    assertTrue(failures.isEmpty(), String.join("\n", failures));
  }
}

package dev.jclip.image;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/** What the decoder tests' Pillow oracles share: the scripts' Python, and the comparison with what they wrote. */
final class PillowOracle {
  private PillowOracle() {}

  /**
   * {@code transform(im)}: CLIP's preprocessing up to the RGB bytes, as Pillow 9.4 and torchvision
   * 0.14 do it (the shorter side to {@code R} by bicubic resampling, unless already that size; the
   * centre crop; RGB), for a script that has imported {@code Image} and set {@code R}.
   */
  static final String TRANSFORM = """
      def transform(im):
          w, h = im.size
          short, long = (w, h) if w <= h else (h, w)
          new_long = int(R * long / short)
          nw, nh = (R, new_long) if w <= h else (new_long, R)
          if (nw, nh) != (w, h):
              im = im.resize((nw, nh), Image.BICUBIC)
          top, left = int(round((nh - R) / 2.0)), int(round((nw - R) / 2.0))
          return im.crop((left, top, left + R, top + R)).convert("RGB").tobytes()

      """;

  /** The bytes compared with the oracle's files, how many differ, and a failure line for each file that differs. */
  static final class Tally {
    long pixelBytes, differingPixelBytes, rgb8Bytes, differingRgb8Bytes;

    /** {@code im}'s decoded bytes against the oracle's {@code name.px}, and a palette image's palette against {@code name.pal}. */
    void pixels(Path out, String name, DecodedImage im, String mode, List<String> failures) throws IOException {
      byte[] want = Files.readAllBytes(out.resolve(name + ".px"));
      byte[] got = im.numpyBytes();
      long d = differing(want, got);
      pixelBytes += want.length;
      differingPixelBytes += d;
      if (d != 0) failures.add(name + ": " + d + " of " + want.length + " decoded bytes differ (first at " + Arrays.mismatch(want, got) + ")");
      if (mode.equals("P")) {
        byte[] pal = Files.readAllBytes(out.resolve(name + ".pal"));
        if (!Arrays.equals(pal, Arrays.copyOf(im.palette(), pal.length))) failures.add(name + ": palette differs");
      }
    }

    /** CLIP's RGB bytes at 224 against the oracle's {@code name.rgb8}. */
    void rgb8(Path out, String name, byte[] got, List<String> failures) throws IOException {
      byte[] want = Files.readAllBytes(out.resolve(name + ".rgb8"));
      long d = differing(want, got);
      rgb8Bytes += want.length;
      differingRgb8Bytes += d;
      if (d != 0) failures.add(name + ": " + d + " of " + want.length + " rgb8 bytes at 224 differ");
    }

    /** "N of M decoded bytes and K of L rgb8 bytes at 224 differ". */
    String summary() {
      return differingPixelBytes + " of " + pixelBytes + " decoded bytes and " + differingRgb8Bytes + " of " + rgb8Bytes + " rgb8 bytes at 224 differ";
    }

    private static long differing(byte[] a, byte[] b) {
      if (a.length != b.length) return Math.max(a.length, b.length);
      long d = 0;
      for (int i = 0; i < a.length; i++) if (a[i] != b[i]) d++;
      return d;
    }
  }
}

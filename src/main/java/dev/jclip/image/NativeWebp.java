package dev.jclip.image;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * WebP decoding with the system's libwebp (the library Pillow itself calls), through the Java
 * foreign-function API. Lossy WebP is a lossy codec whose output depends on the decoder's
 * upsampling and YUV conversion: Java decoders differ from libwebp by tens of levels (see
 * docs/preprocessing.md), so the reference's pixels can only come from libwebp itself.
 *
 * <p>Only libwebp's "simple" API is used ({@code WebPGetFeatures}, {@code WebPDecodeRGBA}, {@code
 * WebPFree}): plain calls with return codes, no callbacks. When the library is missing the caller
 * falls back to ImageIO.
 */
final class NativeWebp {
  /** WEBP_DECODER_ABI_VERSION of libwebp 1.1 to 1.5, checked by WebPGetFeaturesInternal. */
  private static final int DECODER_ABI_VERSION = 0x0209;

  private final MethodHandle getFeatures;
  private final MethodHandle decodeRgba;
  private final MethodHandle free;

  private NativeWebp(SymbolLookup lib) {
    Linker linker = Linker.nativeLinker();
    getFeatures =
        linker.downcallHandle(
            lib.find("WebPGetFeaturesInternal").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
    decodeRgba =
        linker.downcallHandle(
            lib.find("WebPDecodeRGBA").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
    free = linker.downcallHandle(lib.find("WebPFree").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
  }

  /** Loaded once, on first use; null when libwebp cannot be found or bound. */
  private static final class Holder {
    static final NativeWebp INSTANCE = SystemLibrary.load(NativeWebp::new, "libwebp.so.7", "libwebp.so", "libwebp.7.dylib", "libwebp.dylib");
  }

  /** The shared binding, or null when libwebp is not installed. */
  static NativeWebp get() {
    return Holder.INSTANCE;
  }

  /**
   * Decodes a still WebP as Pillow 9.4 does: RGBA from libwebp with its default (fancy) upsampling,
   * mode RGBA when the file has alpha, else RGB.
   */
  DecodedImage decode(Path file, byte[] b, ImageDecoder limits) throws ImageDecodeException {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment data = arena.allocate(b.length);
      MemorySegment.copy(b, 0, data, ValueLayout.JAVA_BYTE, 0, b.length);
      MemorySegment features = arena.allocate(ValueLayout.JAVA_INT, 10);
      int status = (int) getFeatures.invokeExact(data, (long) b.length, features, DECODER_ABI_VERSION);
      if (status != 0) {
        throw new ImageDecodeException(file, "corrupt or truncated WEBP file (libwebp status " + status + ")");
      }
      int w = features.getAtIndex(ValueLayout.JAVA_INT, 0);
      int h = features.getAtIndex(ValueLayout.JAVA_INT, 1);
      boolean alpha = features.getAtIndex(ValueLayout.JAVA_INT, 2) != 0;
      boolean animated = features.getAtIndex(ValueLayout.JAVA_INT, 3) != 0;
      if (animated) throw new ImageDecodeException(file, "animated WebP is not supported");
      limits.checkPixels(file, ImageDecoder.Format.WEBP, w, h);
      MemorySegment pw = arena.allocate(ValueLayout.JAVA_INT);
      MemorySegment ph = arena.allocate(ValueLayout.JAVA_INT);
      MemorySegment out = (MemorySegment) decodeRgba.invokeExact(data, (long) b.length, pw, ph);
      if (out.equals(MemorySegment.NULL)) {
        throw new ImageDecodeException(file, "corrupt or truncated WEBP file (libwebp could not decode it)");
      }
      try {
        if (pw.get(ValueLayout.JAVA_INT, 0) != w || ph.get(ValueLayout.JAVA_INT, 0) != h) {
          throw new ImageDecodeException(file, "libwebp decoded a size other than the header's");
        }
        long n = (long) w * h * 4;
        MemorySegment px = out.reinterpret(n);
        byte[] rgba = new byte[Math.toIntExact(n)];
        MemorySegment.copy(px, ValueLayout.JAVA_BYTE, 0, rgba, 0, rgba.length);
        if (alpha) return DecodedImage.of("WEBP", DecodedImage.Mode.RGBA, w, h, rgba);
        byte[] rgb = new byte[w * h * 3];
        for (int i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
          rgb[j] = rgba[i];
          rgb[j + 1] = rgba[i + 1];
          rgb[j + 2] = rgba[i + 2];
        }
        return DecodedImage.of("WEBP", DecodedImage.Mode.RGB, w, h, rgb);
      } finally {
        free.invokeExact(out);
      }
    } catch (ImageDecodeException | RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new ImageDecodeException(file, "libwebp call failed: " + t, t);
    }
  }
}

package dev.jclip.image;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.ref.Cleaner;
import java.nio.file.Path;

/**
 * JPEG decoding with the system's libjpeg-turbo through its TurboJPEG 2.1 API ({@code
 * libturbojpeg.so.0}), called with the Java foreign-function API. Pillow 9.4 decodes JPEGs with
 * libjpeg-turbo (2.1.5 in the reference environment, Debian 12's version), so calling the same
 * library gives its bytes by construction, at its SIMD speed.
 *
 * <p>Why the defaults are Pillow's: {@code tjDecompress2} runs {@code jpeg_read_header}, whose
 * {@code default_decompress_parms} sets {@code dct_method = JDCT_ISLOW}, {@code
 * do_fancy_upsampling = TRUE} and {@code do_block_smoothing = TRUE} for every image (libjpeg's
 * defaults, which Pillow keeps); TurboJPEG changes them only for {@code TJFLAG_FASTDCT} and {@code
 * TJFLAG_FASTUPSAMPLE}, never passed here. The requested size is the image's own, so the scaling
 * factor is 1/1. The output colour space is set from the pixel format ({@code JCS_EXT_RGB},
 * {@code JCS_GRAYSCALE} or {@code JCS_CMYK}): the same conversions from the guessed JPEG colour
 * space that Pillow's RGB/L/CMYK output uses (YCCK to CMYK included).
 *
 * <p>Errors and warnings. TurboJPEG's error manager longjmps only inside the library and returns
 * -1; warnings (libjpeg's recoverable "corrupt data" conditions) also end with -1 after a complete
 * decode. Pillow ignores libjpeg's warnings but feeds data through a suspending source, so a file
 * that ends before libjpeg is done is "image file is truncated". With TurboJPEG's memory source the
 * same condition is the warning "Premature end of JPEG file" (JWRN_JPEG_EOF, emitted when the
 * decoder asks for bytes past the end), which is turned into the same truncation error as the Java
 * path gives. libjpeg records the text of only the first warning of an image, so when the first
 * warning is anything else a truncation may hide behind it: such files, and fatal errors, are
 * handed back to the caller ({@code null}), which decodes them with the Java path exactly as
 * before this class existed. Clean files, by far the common case, never leave this class.
 *
 * <p>Only the functions of libjpeg-turbo 2.1 are used ({@code tjInitDecompress}, {@code
 * tjDecompressHeader3}, {@code tjDecompress2}, {@code tjGetErrorStr2}, {@code tjGetErrorCode},
 * {@code tjDestroy}); the TurboJPEG 3 API does not exist in 2.1.5. {@code unsigned long} sizes are
 * bound as 64-bit (LP64: Linux, macOS).
 */
final class NativeJpeg {
  static final int TJPF_RGB = 0;
  static final int TJPF_GRAY = 6;
  static final int TJPF_CMYK = 11;
  static final int TJCS_RGB = 0;
  static final int TJCS_YCBCR = 1;
  static final int TJCS_GRAY = 2;
  static final int TJCS_CMYK = 3;
  static final int TJCS_YCCK = 4;
  static final int TJERR_WARNING = 0;

  /** libjpeg's JWRN_JPEG_EOF text, the memory source's "needed more data than the file has". */
  static final String PREMATURE_END = "Premature end of JPEG file";

  /**
   * A session's buffers up to this size are kept for the next image; larger ones (above about 11
   * megapixels of RGB) are freed after the call, so that the sessions a decoder keeps (one per
   * processor at most) do not hold the largest image each ever saw.
   */
  private static final long RETAINED_BYTES = 32L << 20;

  private final MethodHandle initDecompress;
  private final MethodHandle decompressHeader3;
  private final MethodHandle decompress2;
  private final MethodHandle getErrorStr2;
  private final MethodHandle getErrorCode;
  private final MethodHandle destroy;
  /** Destroys the handles of sessions that became unreachable (their threads or decoders gone). */
  private final Cleaner cleaner = Cleaner.create();

  private NativeJpeg(SymbolLookup lib) {
    Linker linker = Linker.nativeLinker();
    ValueLayout A = ValueLayout.ADDRESS;
    ValueLayout I = ValueLayout.JAVA_INT;
    ValueLayout L = ValueLayout.JAVA_LONG;
    initDecompress = linker.downcallHandle(lib.find("tjInitDecompress").orElseThrow(), FunctionDescriptor.of(A));
    decompressHeader3 = linker.downcallHandle(lib.find("tjDecompressHeader3").orElseThrow(), FunctionDescriptor.of(I, A, A, L, A, A, A, A));
    decompress2 = linker.downcallHandle(lib.find("tjDecompress2").orElseThrow(), FunctionDescriptor.of(I, A, A, L, A, I, I, I, I, I));
    getErrorStr2 = linker.downcallHandle(lib.find("tjGetErrorStr2").orElseThrow(), FunctionDescriptor.of(A, A));
    getErrorCode = linker.downcallHandle(lib.find("tjGetErrorCode").orElseThrow(), FunctionDescriptor.of(I, A));
    destroy = linker.downcallHandle(lib.find("tjDestroy").orElseThrow(), FunctionDescriptor.of(I, A));
  }

  /** Loaded once, on first use; null when libturbojpeg cannot be found or bound. */
  private static final class Holder {
    static final NativeJpeg INSTANCE = SystemLibrary.load(NativeJpeg::new, "libturbojpeg.so.0", "libturbojpeg.so", "libturbojpeg.0.dylib", "libturbojpeg.dylib");
  }

  /** The shared binding, or null when libturbojpeg is not installed. */
  static NativeJpeg get() {
    return Holder.INSTANCE;
  }

  /**
   * One decompressor handle and its reusable native buffers. Not thread-safe: one decoding at a
   * time (TurboJPEG handles are single-threaded; its error text is read back from the handle). The handle is
   * destroyed when the session becomes unreachable; the buffers are GC-managed ({@code
   * Arena.ofAuto}), so nothing leaks whichever thread lets it go.
   */
  final class Session {
    private final MemorySegment handle;
    private final MemorySegment ints; // width, height, subsampling, colour space
    private MemorySegment in = MemorySegment.NULL;
    private MemorySegment out = MemorySegment.NULL;

    Session() {
      MemorySegment h;
      try {
        h = (MemorySegment) initDecompress.invokeExact();
      } catch (Throwable t) {
        throw new IllegalStateException("tjInitDecompress failed: " + t, t);
      }
      if (h.equals(MemorySegment.NULL)) throw new IllegalStateException("tjInitDecompress returned no handle");
      handle = h;
      ints = Arena.ofAuto().allocate(ValueLayout.JAVA_INT, 4);
      MethodHandle d = destroy;
      long address = h.address();
      // The action must not refer to this session, or it would never become unreachable.
      cleaner.register(this, () -> destroyHandle(d, address));
    }

    private static MemorySegment grow(MemorySegment current, long need) {
      if (current.byteSize() >= need) return current;
      // A little headroom so that a run of slightly larger images does not reallocate each time.
      long size = Math.min(Math.max(need, need + need / 4), Math.max(need, RETAINED_BYTES));
      return Arena.ofAuto().allocate(size, 64);
    }

    /** A buffer of at least {@code need} bytes: the retained one, or a one-off for huge images. */
    private MemorySegment input(long need, Arena oneOff) {
      if (need > RETAINED_BYTES) return oneOff.allocate(need, 64);
      in = grow(in, need);
      return in;
    }

    private MemorySegment output(long need, Arena oneOff) {
      if (need > RETAINED_BYTES) return oneOff.allocate(need, 64);
      out = grow(out, need);
      return out;
    }
  }

  private static void destroyHandle(MethodHandle destroy, long address) {
    try {
      int ignored = (int) destroy.invokeExact(MemorySegment.ofAddress(address));
    } catch (Throwable t) {
      // Nothing sensible to do in a cleaner: the handle is gone either way.
    }
  }

  Session newSession() {
    return new Session();
  }

  /**
   * Decodes a 1-, 3- or 4-component JPEG as Pillow 9.4 does (mode L, RGB or inverted CMYK), or
   * returns null when the file should go to the Java path: the header cannot be read, a fatal
   * error, or a warning other than truncation (see the class comment).
   *
   * <p>With {@code draft > 0} the image is decoded at the reduced scale Pillow's {@code
   * image.draft(mode, (draft, draft))} picks: {@code s = } the largest of 8, 4, 2, 1 not above
   * {@code min(w / draft, h / draft)}, giving {@code ceil(w / s) x ceil(h / s)} pixels from
   * libjpeg's scaled inverse DCT ({@code scale_num = 1, scale_denom = s}, as Pillow's decoder
   * sets them). TurboJPEG selects that same factor when asked for that size: it takes the first
   * of its factors (2/1 down to 1/8) whose scaled size fits, and for {@code s > 1} every larger
   * factor gives a larger size because the image is at least {@code 2 * draft} pixels wide.
   *
   * @param draft Pillow's draft size, or 0 to decode at full size
   * @throws ImageDecodeException the pixel limit is exceeded (checked from the header before any
   *     pixel buffer is allocated), the file is truncated, or it is a damaged arithmetic-coded
   *     file (which the Java path could not decode either)
   */
  DecodedImage decode(Session s, Path file, byte[] b, ImageDecoder limits, int draft) throws ImageDecodeException {
    try (Arena oneOff = Arena.ofConfined()) {
      MemorySegment data = s.input(b.length, oneOff);
      MemorySegment.copy(b, 0, data, ValueLayout.JAVA_BYTE, 0, b.length);
      MemorySegment ints = s.ints;
      for (int i = 0; i < 4; i++) ints.setAtIndex(ValueLayout.JAVA_INT, i, -1);
      int rc =
          (int)
              decompressHeader3.invokeExact(
                  s.handle,
                  data,
                  (long) b.length,
                  ints,
                  ints.asSlice(4),
                  ints.asSlice(8),
                  ints.asSlice(12));
      int w = ints.getAtIndex(ValueLayout.JAVA_INT, 0);
      int h = ints.getAtIndex(ValueLayout.JAVA_INT, 1);
      int colorspace = ints.getAtIndex(ValueLayout.JAVA_INT, 3);
      // tjDecompressHeader3 fills the size and colour space before it complains about an
      // unusual subsampling (which tjDecompress2 does not need); after a fatal libjpeg error, or
      // for a tables-only stream, they keep the -1 written above.
      if (w <= 0 || h <= 0 || colorspace < 0) return null;
      if (rc != 0) errorText(s); // consume the instance error, if any
      int format;
      DecodedImage.Mode mode;
      if (colorspace == TJCS_GRAY) {
        format = TJPF_GRAY;
        mode = DecodedImage.Mode.L;
      } else if (colorspace == TJCS_YCBCR || colorspace == TJCS_RGB) {
        format = TJPF_RGB;
        mode = DecodedImage.Mode.RGB;
      } else if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        // libjpeg's CMYK output (YCCK converted by libjpeg, as for Pillow), inverted below.
        format = TJPF_CMYK;
        mode = DecodedImage.Mode.CMYK;
      } else {
        return null;
      }
      // The limit applies to the file's size, as Pillow checks it when the file is opened.
      limits.checkPixels(file, ImageDecoder.Format.JPEG, w, h);
      int scale = draftScale(w, h, draft);
      int ow = (w + scale - 1) / scale;
      int oh = (h + scale - 1) / scale;
      int channels = mode.channels();
      long n = (long) ow * oh * channels;
      MemorySegment px = s.output(n, oneOff);
      rc = (int) decompress2.invokeExact(s.handle, data, (long) b.length, px, ow, ow * channels, oh, format, 0);
      if (rc != 0) {
        int code = (int) getErrorCode.invokeExact(s.handle);
        String msg = errorText(s);
        if (code == TJERR_WARNING && msg.startsWith(PREMATURE_END)) {
          throw new ImageDecodeException(file, "truncated JPEG file (" + msg + ")");
        }
        if (ImageDecoder.jpegArithmetic(b)) {
          // The Java path cannot decode arithmetic coding at all, so libjpeg-turbo's verdict is the
          // useful message. Pillow may conceal such damage; with only the first warning known
          // (a truncation could hide behind it), refusing is the safe side.
          throw new ImageDecodeException(file, "corrupt arithmetic-coded JPEG file (libjpeg-turbo: " + msg + ")");
        }
        // A fatal error, or a warning whose text hides whether the data also ran out: the Java
        // path decides, as it did for every file before.
        return null;
      }
      byte[] pixels = new byte[Math.toIntExact(n)];
      MemorySegment.copy(px, ValueLayout.JAVA_BYTE, 0, pixels, 0, pixels.length);
      if (mode == DecodedImage.Mode.CMYK) {
        // Pillow 9.4 reads every 4-component JPEG with rawmode "CMYK;I" ("assume adobe
        // conventions"): 255 - v of libjpeg's output.
        for (int i = 0; i < pixels.length; i++) pixels[i] = (byte) ~pixels[i];
      }
      return scale == 1 ? DecodedImage.of("JPEG", mode, w, h, pixels) : DecodedImage.drafted("JPEG", mode, ow, oh, pixels, w, h);
    } catch (ImageDecodeException | RuntimeException | Error e) {
      throw e;
    } catch (Throwable t) {
      throw new ImageDecodeException(file, "libturbojpeg call failed: " + t, t);
    }
  }

  /** Pillow's draft scale for a {@code w x h} JPEG and a requested {@code draft x draft}: 8, 4, 2 or 1. */
  static int draftScale(int w, int h, int draft) {
    if (draft <= 0) return 1;
    int scale = Math.min(w / draft, h / draft);
    for (int s : new int[] {8, 4, 2}) if (scale >= s) return s;
    return 1;
  }

  /** The last error or first warning text of this thread's (or the handle's) last call. */
  private String errorText(Session s) throws Throwable {
    MemorySegment p = (MemorySegment) getErrorStr2.invokeExact(s.handle);
    if (p.equals(MemorySegment.NULL)) return "";
    // JMSG_LENGTH_MAX is 200: the text is a NUL-terminated string within that.
    return p.reinterpret(200).getString(0);
  }
}

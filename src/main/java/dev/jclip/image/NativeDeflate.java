package dev.jclip.image;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Whole-stream zlib decompression by the system's libdeflate ({@code libdeflate.so.0}, Debian
 * package {@code libdeflate0}, which Pillow's libtiff already pulls in), called with the Java
 * foreign-function API. libdeflate inflates 3 to 6 times faster than zlib because it decompresses
 * into a buffer of the final size instead of streaming; deflate's output is fully determined by the
 * stream, so the bytes are zlib's.
 *
 * <p>Used by {@link PngDecoder} only when the answer is certain: the IDAT data is complete, the
 * stream decodes without error to exactly the image's size and its Adler-32 checksum matches.
 * Anything else (damaged, short, over-long or truncated streams) returns false and the file is
 * decoded again by the streaming {@code java.util.zip.Inflater} path, which decides it as Pillow
 * does. Plain C calls with return codes (nothing that can longjmp); the decompressor is allocated
 * per call (a few kilobytes), so the class is thread-safe.
 */
final class NativeDeflate {
  private static final int LIBDEFLATE_SUCCESS = 0;

  private final MethodHandle alloc;
  private final MethodHandle zlibDecompress;
  private final MethodHandle free;

  private NativeDeflate(SymbolLookup lib) {
    Linker linker = Linker.nativeLinker();
    ValueLayout A = ValueLayout.ADDRESS;
    alloc = linker.downcallHandle(lib.find("libdeflate_alloc_decompressor").orElseThrow(), FunctionDescriptor.of(A));
    // Critical with heap access: the compressed bytes and the output are Java arrays, passed
    // without copies (the call neither blocks nor calls back into Java).
    zlibDecompress =
        linker.downcallHandle(
            lib.find("libdeflate_zlib_decompress").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, A, A, ValueLayout.JAVA_LONG, A, ValueLayout.JAVA_LONG, A),
            Linker.Option.critical(true));
    free = linker.downcallHandle(lib.find("libdeflate_free_decompressor").orElseThrow(), FunctionDescriptor.ofVoid(A));
  }

  /** Loaded once, on first use; null when libdeflate cannot be found or bound. */
  private static final class Holder {
    static final NativeDeflate INSTANCE = SystemLibrary.load(NativeDeflate::new, "libdeflate.so.0", "libdeflate.so", "libdeflate.0.dylib", "libdeflate.dylib");
  }

  /** The shared binding, or null when libdeflate is not installed. */
  static NativeDeflate get() {
    return Holder.INSTANCE;
  }

  /**
   * Decompresses the zlib stream {@code in[off, off + len)} into all of {@code out}.
   *
   * @return true when the stream was valid, checksum included, and gave exactly {@code
   *     out.length} bytes; false otherwise ({@code out} then holds garbage)
   */
  boolean zlibDecompress(byte[] in, int off, int len, byte[] out) {
    MemorySegment d;
    try {
      d = (MemorySegment) alloc.invokeExact();
    } catch (Throwable t) {
      return false;
    }
    if (d.equals(MemorySegment.NULL)) return false;
    try {
      int rc =
          (int)
              zlibDecompress.invokeExact(
                  d, MemorySegment.ofArray(in).asSlice(off, len), (long) len, MemorySegment.ofArray(out), (long) out.length, MemorySegment.NULL);
      return rc == LIBDEFLATE_SUCCESS;
    } catch (Throwable t) {
      return false;
    } finally {
      try {
        free.invokeExact(d);
      } catch (Throwable t) {
        // nothing more to do: the decompressor leaks a few kilobytes
      }
    }
  }
}

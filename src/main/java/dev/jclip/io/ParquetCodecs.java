package dev.jclip.io;

import static dev.jclip.io.ParquetFormat.*;

import com.github.luben.zstd.Zstd;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.zip.GZIPInputStream;
import net.jpountz.lz4.LZ4Factory;
import org.xerial.snappy.Snappy;
import org.xerial.snappy.SnappyError;

/**
 * Decompresses Parquet pages. Every codec is asked for exactly the declared uncompressed size and
 * no more, so a decompression bomb ends at that bound (itself capped by the reader) with an error.
 * Libraries: zstd-jni, snappy-java (JNI, their natives ship in the jars) and lz4-java's pure-Java
 * safe decompressor; GZIP is the JDK's.
 */
final class ParquetCodecs {
  private ParquetCodecs() {}

  static byte[] decompress(int codec, byte[] src, int off, int len, int usize) throws IOException {
    try {
      return run(codec, src, off, len, usize);
    } catch (LinkageError e) {
      // zstd-jni and snappy-java unpack a native library into java.io.tmpdir on first use.
      throw new IOException("the " + codecName(codec) + " codec's native library cannot be loaded (" + e + "); is java.io.tmpdir writable and executable?");
    }
  }

  private static byte[] run(int codec, byte[] src, int off, int len, int usize) throws IOException {
    byte[] out;
    switch (codec) {
      case CODEC_SNAPPY -> {
        int n;
        try {
          n = Snappy.uncompressedLength(src, off, len);
        } catch (SnappyError e) {
          throw new IOException(e.getMessage());
        }
        if (n != usize) throw new IOException("the data holds " + n + " bytes, the page declares " + usize);
        out = new byte[usize];
        int got;
        try {
          got = Snappy.uncompress(src, off, len, out, 0);
        } catch (SnappyError e) {
          throw new IOException(e.getMessage());
        }
        check(got, usize);
      }
      case CODEC_ZSTD -> {
        long declared = Zstd.getFrameContentSize(src, off, len);
        // A frame may omit its size (streaming writers); then only the page's size bounds it.
        if (declared >= 0 && declared != usize) throw new IOException("the frame holds " + declared + " bytes, the page declares " + usize);
        out = new byte[usize];
        long got = Zstd.decompressByteArray(out, 0, usize, src, off, len);
        if (Zstd.isError(got)) throw new IOException(Zstd.getErrorName(got));
        check(got, usize);
      }
      case CODEC_GZIP -> {
        out = new byte[usize];
        try (GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(src, off, len))) {
          int got = in.readNBytes(out, 0, usize);
          check(got, usize);
          if (in.read() >= 0) throw new IOException("the data holds more than the " + usize + " bytes the page declares");
        }
      }
      case CODEC_LZ4_RAW -> {
        out = new byte[usize];
        check(LZ4Factory.safeInstance().safeDecompressor().decompress(src, off, len, out, 0, usize), usize);
      }
      default -> throw new IOException("compression " + codecName(codec) + " is not supported");
    }
    return out;
  }

  private static void check(long got, int usize) throws IOException {
    if (got != usize) throw new IOException("the data holds " + got + " bytes, the page declares " + usize);
  }
}

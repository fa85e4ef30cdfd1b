package dev.jclip.io;

/**
 * The numbers of Apache Parquet's format ({@code parquet.thrift} enums and the file magic) that
 * {@link ParquetWriter} and {@link ParquetReader} share, named as in the spec.
 */
final class ParquetFormat {
  private ParquetFormat() {}

  /** "PAR1" at both ends of a file. */
  static final byte[] MAGIC = {'P', 'A', 'R', '1'};
  /** "PARE": a file whose footer is encrypted. */
  static final byte[] MAGIC_ENCRYPTED = {'P', 'A', 'R', 'E'};

  // Type (physical)
  static final int BOOLEAN = 0;
  static final int INT32 = 1;
  static final int INT64 = 2;
  static final int INT96 = 3;
  static final int FLOAT = 4;
  static final int DOUBLE = 5;
  static final int BYTE_ARRAY = 6;
  static final int FIXED_LEN_BYTE_ARRAY = 7;

  // FieldRepetitionType
  static final int REQUIRED = 0;
  static final int OPTIONAL = 1;
  static final int REPEATED = 2;

  // ConvertedType (the legacy annotation; LogicalType is the newer union)
  static final int CONVERTED_UTF8 = 0;
  static final int CONVERTED_DECIMAL = 5;
  static final int CONVERTED_DATE = 6;
  static final int CONVERTED_UINT_8 = 11;
  static final int CONVERTED_UINT_64 = 14;

  // LogicalType union member ids
  static final int LOGICAL_DECIMAL = 5;
  static final int LOGICAL_DATE = 6;
  static final int LOGICAL_INTEGER = 10;
  static final int LOGICAL_UUID = 14;

  // Encoding
  static final int ENCODING_PLAIN = 0;
  static final int ENCODING_PLAIN_DICTIONARY = 2;
  static final int ENCODING_RLE = 3;
  static final int ENCODING_BIT_PACKED = 4;
  static final int ENCODING_DELTA_BINARY_PACKED = 5;
  static final int ENCODING_DELTA_LENGTH_BYTE_ARRAY = 6;
  static final int ENCODING_DELTA_BYTE_ARRAY = 7;
  static final int ENCODING_RLE_DICTIONARY = 8;
  static final int ENCODING_BYTE_STREAM_SPLIT = 9;

  // CompressionCodec
  static final int CODEC_UNCOMPRESSED = 0;
  static final int CODEC_SNAPPY = 1;
  static final int CODEC_GZIP = 2;
  static final int CODEC_LZO = 3;
  static final int CODEC_BROTLI = 4;
  static final int CODEC_LZ4 = 5;
  static final int CODEC_ZSTD = 6;
  static final int CODEC_LZ4_RAW = 7;

  // PageType
  static final int PAGE_DATA = 0;
  static final int PAGE_DICTIONARY = 2;
  static final int PAGE_DATA_V2 = 3;

  static String encodingName(int e) {
    return switch (e) {
      case ENCODING_PLAIN -> "PLAIN";
      case ENCODING_PLAIN_DICTIONARY -> "PLAIN_DICTIONARY";
      case ENCODING_RLE -> "RLE";
      case ENCODING_BIT_PACKED -> "BIT_PACKED";
      case ENCODING_DELTA_BINARY_PACKED -> "DELTA_BINARY_PACKED";
      case ENCODING_DELTA_LENGTH_BYTE_ARRAY -> "DELTA_LENGTH_BYTE_ARRAY";
      case ENCODING_DELTA_BYTE_ARRAY -> "DELTA_BYTE_ARRAY";
      case ENCODING_RLE_DICTIONARY -> "RLE_DICTIONARY";
      case ENCODING_BYTE_STREAM_SPLIT -> "BYTE_STREAM_SPLIT";
      default -> "encoding " + e;
    };
  }

  static String codecName(int c) {
    return switch (c) {
      case CODEC_UNCOMPRESSED -> "UNCOMPRESSED";
      case CODEC_SNAPPY -> "SNAPPY";
      case CODEC_GZIP -> "GZIP";
      case CODEC_LZO -> "LZO";
      case CODEC_BROTLI -> "BROTLI";
      case CODEC_LZ4 -> "LZ4 (Hadoop framing)";
      case CODEC_ZSTD -> "ZSTD";
      case CODEC_LZ4_RAW -> "LZ4_RAW";
      default -> "codec " + c;
    };
  }

  static String typeName(int t) {
    return switch (t) {
      case BOOLEAN -> "BOOLEAN";
      case INT32 -> "INT32";
      case INT64 -> "INT64";
      case INT96 -> "INT96";
      case FLOAT -> "FLOAT";
      case DOUBLE -> "DOUBLE";
      case BYTE_ARRAY -> "BYTE_ARRAY";
      case FIXED_LEN_BYTE_ARRAY -> "FIXED_LEN_BYTE_ARRAY";
      default -> "type " + t;
    };
  }
}

package dev.jclip.io;

import java.io.IOException;
import java.util.Map;

/**
 * Writes tensors as a {@code torch.save} zip (one storage per tensor, protocol-2 pickle of an
 * OrderedDict), optionally wrapped as {@code {"epoch": 1, "state_dict": {...}}} like open_clip's
 * training checkpoints. For tests: the files are what PyTorch writes, minus the 64-byte alignment.
 */
final class TorchSaveWriter {
  private TorchSaveWriter() {}

  static String storageType(DType d) {
    return switch (d) {
      case F32 -> "FloatStorage";
      case F16 -> "HalfStorage";
      case BF16 -> "BFloat16Storage";
      case F64 -> "DoubleStorage";
      case I64 -> "LongStorage";
      case I32 -> "IntStorage";
      case I16 -> "ShortStorage";
      case I8 -> "CharStorage";
      case U8 -> "ByteStorage";
      case BOOL -> "BoolStorage";
    };
  }

  static byte[] write(Map<String, Tensor> tensors, String prefix, boolean wrapped) throws IOException {
    PickleBuilder p = new PickleBuilder().proto(2);
    if (wrapped) p.op('}').mark().str("epoch").integer(1).str("state_dict");
    p.global("collections", "OrderedDict").emptyTuple().reduce().mark();
    TorchZipWriter z = new TorchZipWriter("archive");
    int key = 0;
    for (var e : tensors.entrySet()) {
      Tensor t = e.getValue();
      long[] shape = t.shape();
      long[] stride = new long[shape.length];
      long s = 1;
      for (int i = shape.length - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i];
      }
      p.str(prefix + e.getKey()).tensor(storageType(t.dtype()), String.valueOf(key), t.numel(), 0, shape, stride);
      byte[] data = new byte[(int) t.byteSize()];
      t.data().get(data);
      z.put("data/" + key, data);
      key++;
    }
    p.op('u');
    if (wrapped) p.op('u');
    z.put("data.pkl", p.stop().bytes());
    z.put("version", "3\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    return z.bytes();
  }
}

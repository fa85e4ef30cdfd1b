package dev.jclip.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.Test;

class TensorTest {
  @Test
  void halfAndBfloatConvertExactly() {
    Random r = new Random(7);
    float[] v = new float[257];
    for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian() * 10;
    ByteBuffer h = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer bf = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    float[] wantH = new float[v.length];
    float[] wantBf = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      short s = Float.floatToFloat16(v[i]);
      h.putShort(2 * i, s);
      wantH[i] = Float.float16ToFloat(s);
      int bits = Float.floatToRawIntBits(v[i]) & 0xffff0000;
      bf.putShort(2 * i, (short) (bits >>> 16));
      wantBf[i] = Float.intBitsToFloat(bits);
    }
    assertArrayEquals(wantH, new Tensor("h", DType.F16, new long[] {257}, h).toFloatArray());
    assertArrayEquals(wantBf, new Tensor("b", DType.BF16, new long[] {257}, bf).toFloatArray());
  }

  @Test
  void sizeMismatchNamesTheTensor() {
    var e =
        assertThrows(
            IllegalArgumentException.class,
            () -> new Tensor("visual.proj", DType.F32, new long[] {2, 3}, ByteBuffer.allocate(20)));
    assertEquals(true, e.getMessage().contains("visual.proj"));
  }

  @Test
  void reshapeKeepsData() {
    Tensor t = Tensor.ofFloats("x", new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6});
    assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, t.reshaped(3, 2).toFloatArray());
    assertThrows(IllegalArgumentException.class, () -> t.reshaped(4, 2));
  }
}

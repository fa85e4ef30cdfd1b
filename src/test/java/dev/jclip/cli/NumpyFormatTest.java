package dev.jclip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Expected strings are what NumPy 1.x/2.x prints for the same float32 arrays (checked by hand). */
class NumpyFormatTest {
  @Test
  void alignsOnTheDecimalPoint() {
    assertEquals("[[0.9927937  0.00421068 0.00299572]]", NumpyFormat.format(new float[][] {{0.9927937f, 0.00421068f, 0.00299572f}}));
    assertEquals("[[1.  0.5]]", NumpyFormat.format(new float[][] {{1f, 0.5f}}));
    assertEquals("[[0.  0.5]]", NumpyFormat.format(new float[][] {{0f, 0.5f}}));
    assertEquals("[[10.5  -2.25]\n [ 3.    4.  ]]", NumpyFormat.format(new float[][] {{10.5f, -2.25f}, {3f, 4f}}));
  }

  @Test
  void smallOrWideRangesGoScientific() {
    assertEquals("[[9.999e-01 1.000e-06]]", NumpyFormat.format(new float[][] {{0.9999f, 1e-6f}}));
    assertEquals("[[1.e+00 1.e-05]]", NumpyFormat.format(new float[][] {{1f, 1e-5f}}));
    // a mantissa shorter than the column's gets the float's further digits, as numpy's min_digits
    // (numpy 1.24: str(np.array([[4.5330815e-02, 9.544496e-01, 2.1961273e-04]], np.float32)))
    assertEquals("[[4.5330815e-02 9.5444959e-01 2.1961273e-04]]", NumpyFormat.format(new float[][] {{4.5330815e-02f, 9.544496e-01f, 2.1961273e-04f}}));
    // softmax-like rows drawn with numpy 1.24 (np.random.default_rng(3)), printed by str()
    assertEquals("[[1.5813809e-08 5.4008124e-05 9.2790127e-01 7.2044753e-02]]", NumpyFormat.format(new float[][] {{1.581380892901052e-08f, 5.400812369771302e-05f, 0.9279012680053711f, 0.0720447525382042f}}));
    assertEquals("[[1.5358177e-06 3.0866462e-01 6.9122827e-01 1.0564553e-04]]", NumpyFormat.format(new float[][] {{1.5358176597146667e-06f, 0.30866461992263794f, 0.6912282705307007f, 0.00010564552940195426f}}));
    assertEquals("[[9.3770266e-01 3.0831484e-07 6.0702548e-03 5.6226838e-02]]", NumpyFormat.format(new float[][] {{0.9377026557922363f, 3.0831483854854014e-07f, 0.00607025483623147f, 0.05622683838009834f}}));
    assertEquals("[[0.00147389 0.01752097 0.10947955 0.8715256 ]]", NumpyFormat.format(new float[][] {{0.0014738867757841945f, 0.017520973458886147f, 0.10947955399751663f, 0.8715255856513977f}}));
    assertEquals("[[4.9147633e-04 3.6143363e-01 6.3745242e-01 6.2247779e-04]]", NumpyFormat.format(new float[][] {{0.0004914763267152011f, 0.36143362522125244f, 0.6374524235725403f, 0.0006224777898751199f}}));
    assertEquals("[[3.01338239e-23 9.99804914e-01 7.79424736e-05 1.17125564e-04]]", NumpyFormat.format(new float[][] {{3.0133823936282265e-23f, 0.9998049139976501f, 7.794247358106077e-05f, 0.00011712556442944333f}}));
  }

  @Test
  void longRowsWrapAt75Columns() {
    float[][] a = new float[1][12];
    for (int i = 0; i < 12; i++) a[0][i] = 0.12345678f;
    String s = NumpyFormat.format(a);
    for (String line : s.split("\n")) assertEquals(true, line.length() <= 75, line);
    assertEquals("[[0.12345678 0.12345678 0.12345678 0.12345678 0.12345678 0.12345678\n"
        + "  0.12345678 0.12345678 0.12345678 0.12345678 0.12345678 0.12345678]]", s);
  }
}

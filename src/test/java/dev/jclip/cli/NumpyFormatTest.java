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

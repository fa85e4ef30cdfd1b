package dev.jclip.image;

/** Python shared by the Pillow oracle scripts of the decoder tests. */
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
}

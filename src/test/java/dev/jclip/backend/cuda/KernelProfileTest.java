package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The profile's labels (the timing itself needs a GPU: the model benchmark prints it). */
class KernelProfileTest {
  @Test
  void labelsLeaveOutTheLayerIndex() {
    assertEquals("LINEAR visual.transformer.resblocks.*.mlp.c_fc", KernelProfile.label("LINEAR", "visual.transformer.resblocks.11.mlp.c_fc"));
    assertEquals("ATTENTION transformer.resblocks.*.attn", KernelProfile.label("ATTENTION", "transformer.resblocks.0.attn"));
    assertEquals("CONV2D visual.layer3.*.conv2", KernelProfile.label("CONV2D", "visual.layer3.4.conv2"));
    assertEquals("LAYER_NORM visual.ln_post", KernelProfile.label("LAYER_NORM", "visual.ln_post"));
  }
}

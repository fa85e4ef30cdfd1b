package dev.jclip.model;

import dev.jclip.io.Tensor;
import java.util.Map;

/** Looks up canonical (OpenAI state-dict) names, failing with the missing key named. */
record Weights(Map<String, Tensor> tensors) {
  Tensor get(String key) {
    Tensor t = tensors.get(key);
    if (t == null) throw new IllegalArgumentException("checkpoint has no tensor " + key);
    return t;
  }

  Tensor optional(String key) {
    return tensors.get(key);
  }
}

package dev.jclip.model;

import dev.jclip.io.Tensor;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * Looks up canonical (OpenAI state-dict) names, failing with the missing key named; and keeps the
 * tensors derived from them (a BatchNorm's channel scale and shift, q/k/v projections joined), so
 * that every graph built from these weights shares one tensor object per derived weight.
 * Backends cache converted and uploaded parameters by tensor identity: a derived tensor made
 * afresh for each graph (each batch size) would be converted, and on a GPU uploaded, again each
 * time, and kept until the backend closes.
 */
final class Weights {
  private final Map<String, Tensor> tensors;
  private final Map<String, Tensor> derived = new ConcurrentHashMap<>();

  Weights(Map<String, Tensor> tensors) {
    this.tensors = tensors;
  }

  Tensor get(String key) {
    Tensor t = tensors.get(key);
    if (t == null) throw new IllegalArgumentException("checkpoint has no tensor " + key);
    return t;
  }

  Tensor optional(String key) {
    return tensors.get(key);
  }

  /** The tensor derived under {@code name}, computed by {@code make} the first time it is asked for. */
  Tensor derived(String name, Supplier<Tensor> make) {
    return derived.computeIfAbsent(name, k -> make.get());
  }
}

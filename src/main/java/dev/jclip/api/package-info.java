/**
 * jclip's library surface: what an application is meant to call, and what is kept compatible.
 *
 * <ul>
 *   <li>{@link dev.jclip.api.Clip}: load a checkpoint ({@code Clip.load("ViT-B/32")}, a file or a
 *       folder), then {@code preprocess}, {@code tokenize}, {@code encodeImage}, {@code encodeText},
 *       {@code logits}, {@code probs}, as openai/CLIP's {@code clip.load}, {@code preprocess},
 *       {@code clip.tokenize} and {@code model.encode_image} / {@code encode_text} / {@code model(...)}
 *       do. {@link dev.jclip.api.Clip.Options} says the device, precision, vocabulary, threads,
 *       batch size, activation, and where the Clip's notes go.
 *   <li>{@link dev.jclip.api.ClipBatcher}: one queue in front of one Clip or several, merging many
 *       callers' small requests into batches (a service's front).
 * </ul>
 *
 * <p>The other packages ({@code dev.jclip.io}, {@code graph}, {@code backend}, {@code model},
 * {@code image}, {@code tokenizer}, {@code pipeline}, {@code cli}) are public for jclip's own use
 * across packages and for its tools and tests; they change without notice. So do the few methods
 * here that expose their types ({@link dev.jclip.api.Clip#create}, {@link dev.jclip.api.Clip#config},
 * {@link dev.jclip.api.Clip#tokenizer}, {@link dev.jclip.api.Clip#checkpointActivation}), and
 * {@link dev.jclip.api.ClipBatchEncoder}, the embed job's adapter.
 */
package dev.jclip.api;

/**
 * Graphs of CLIP's computation, built for concrete shapes and run on a backend.
 *
 * <p>{@link dev.jclip.graph.GraphBuilder} builds a {@link dev.jclip.graph.Graph} (nodes in
 * execution order, each named by its state-dict prefix, shapes checked as they are built); model
 * code builds graphs and never runs them. An {@link dev.jclip.graph.Executor} runs one graph on one
 * {@link dev.jclip.graph.Backend}: it first lets the backend {@linkplain
 * dev.jclip.graph.Backend#prepare prepare} the graph, then plans activation memory (buffers reused
 * once their value's last reader has run; outputs and captured nodes live to the end), and runs
 * the nodes in order, or replays a recording of them (a CUDA graph) where the backend can record.
 *
 * <p>{@link dev.jclip.graph.Fusion} holds the rewrites a backend may apply when it prepares a
 * graph. {@link dev.jclip.graph.Fusion#linearResidual} folds each residual ADD of a transformer
 * block into the LINEAR it adds, as one {@link dev.jclip.graph.Op#LINEAR_RESIDUAL} node {@code y =
 * x·Wᵀ + b + r} named after the ADD: the CUDA backend runs it as one cuBLASLt GEMM whose epilogue
 * adds bias and residual, saving a pass over the activations for each. A LINEAR named in the
 * executor's captures, one with an activation, or one read by anything else is left alone. The
 * CPU and reference backends keep the graph as built (their LINEAR_RESIDUAL, for graphs fused
 * elsewhere, is exactly LINEAR then ADD, so a fused graph gives them the same bits).
 *
 * <pre>{@code
 * Graph g = graphs.image(1024);
 * Graph fused = Fusion.linearResidual(g, Set.of()); // what CudaBackend.prepare does with cuBLASLt
 * try (Executor ex = new Executor(g, cuda, List.of("visual.transformer.resblocks.0"))) {
 *   Map<String, float[]> out = ex.run(Map.of("pixels", pixels)); // the block's output, captured by name
 * }
 * }</pre>
 */
package dev.jclip.graph;

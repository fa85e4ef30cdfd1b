package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
import static org.bytedeco.cuda.global.cudart.cuGraphDestroy;
import static org.bytedeco.cuda.global.cudart.cuGraphExecDestroy;
import static org.bytedeco.cuda.global.cudart.cuGraphInstantiate;
import static org.bytedeco.cuda.global.cudart.cuGraphLaunch;
import static org.bytedeco.cuda.global.cudart.cuStreamBeginCapture;
import static org.bytedeco.cuda.global.cudart.cuStreamEndCapture;

import dev.jclip.graph.Backend;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;

/**
 * A CUDA graph captured from a stream: one {@code cuGraphLaunch} replays every kernel and cuBLAS
 * call of a forward pass, which takes the host out of the loop (batch-1 latency is otherwise
 * bounded by ~150 individual launches).
 */
final class CudaGraph implements Backend.Recording {
  private final CudaDevice device;
  private final CudaStream stream;
  private final CUgraph_st graph;
  private final CUgraphExec_st exec;
  private boolean closed;

  private CudaGraph(CudaDevice device, CudaStream stream, CUgraph_st graph, CUgraphExec_st exec) {
    this.device = device;
    this.stream = stream;
    this.graph = graph;
    this.exec = exec;
  }

  static CudaGraph capture(CudaDevice device, CudaStream stream, Runnable body) {
    device.makeCurrent();
    CUgraph_st graph = new CUgraph_st();
    check(cuStreamBeginCapture(stream.handle(), CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
    RuntimeException failure = null;
    try {
      body.run();
    } catch (RuntimeException e) {
      failure = e;
    }
    int rc = cuStreamEndCapture(stream.handle(), graph);
    if (failure != null) {
      if (rc == 0 && !graph.isNull()) cuGraphDestroy(graph);
      throw new CudaException("recording a CUDA graph failed: " + failure.getMessage(), failure);
    }
    check(rc, "cuStreamEndCapture");
    CUgraphExec_st exec = new CUgraphExec_st();
    try {
      check(cuGraphInstantiate(exec, graph, 0L), "cuGraphInstantiate");
    } catch (CudaException e) {
      cuGraphDestroy(graph);
      throw e;
    }
    return new CudaGraph(device, stream, graph, exec);
  }

  @Override
  public void replay() {
    if (closed) throw new IllegalStateException("CUDA graph is closed");
    device.makeCurrent();
    check(cuGraphLaunch(exec, stream.handle()), "cuGraphLaunch");
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    device.makeCurrent();
    stream.synchronize();
    check(cuGraphExecDestroy(exec), "cuGraphExecDestroy");
    check(cuGraphDestroy(graph), "cuGraphDestroy");
  }
}

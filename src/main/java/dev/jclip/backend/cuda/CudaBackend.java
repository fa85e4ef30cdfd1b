package dev.jclip.backend.cuda;

import static dev.jclip.backend.cuda.CudaDriver.check;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoD;

import dev.jclip.graph.Backend;
import dev.jclip.graph.Node;
import dev.jclip.graph.Op;
import dev.jclip.graph.TensorSpec;
import dev.jclip.io.DType;
import dev.jclip.io.Tensor;
import dev.jclip.model.Activation;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs graphs on one NVIDIA GPU: cuBLAS for the GEMMs (fp32, no TF32: the parity mode), jclip's
 * PTX kernels for everything else. Parameters are uploaded once, the first time a node uses them,
 * and freed with the backend. Every op of {@link Op} is implemented, the ResNet convolutions as
 * im2col + GEMM.
 */
public final class CudaBackend implements Backend {
  private final CudaDevice device;
  private final CudaOps ops;
  private final Cublas blas;
  private final Map<Tensor, DeviceBuffer> params = new IdentityHashMap<>();
  private DeviceBuffer scratch;

  /** A backend on {@code device}; the caller keeps ownership of the device and closes it after this. */
  public CudaBackend(CudaDevice device) {
    this.device = device;
    this.ops = new CudaOps(device, null);
    this.blas = new Cublas(device);
  }

  @Override
  public String name() {
    return "cuda:" + device.ordinal();
  }

  @Override
  public boolean supports(Op op) {
    return op != Op.INPUT;
  }

  @Override
  public Buffer allocate(long bytes) {
    return device.allocate(bytes);
  }

  @Override
  public void write(Buffer dst, TensorSpec spec, Object host) {
    DeviceBuffer d = (DeviceBuffer) dst;
    if (spec.dtype() == DType.I32) d.upload((int[]) host);
    else d.upload((float[]) host);
  }

  @Override
  public float[] read(Buffer src, TensorSpec spec) {
    return ((DeviceBuffer) src).downloadFloats((int) spec.elements());
  }

  @Override
  public void synchronize() {
    device.synchronize();
  }

  /** The device copy of a parameter tensor, converted to fp32 once. */
  private DeviceBuffer param(Node n, String role) {
    Tensor t = n.param(role);
    if (t == null) return null;
    return params.computeIfAbsent(t, k -> device.allocate(4L * k.numel()).upload(k.toFloatArray()));
  }

  private DeviceBuffer scratch(long bytes) {
    if (scratch == null || scratch.bytes() < bytes) {
      if (scratch != null) scratch.close();
      scratch = device.allocate(bytes);
    }
    return scratch;
  }

  @Override
  public void execute(Node n, List<Buffer> inputs, Buffer output) {
    DeviceBuffer y = (DeviceBuffer) output;
    DeviceBuffer x = (DeviceBuffer) inputs.get(0);
    TensorSpec in = n.input(0).spec(), out = n.output().spec();
    switch (n.op()) {
      case LINEAR -> {
        int k = in.dim(-1), cols = out.dim(-1);
        long m = in.rows();
        blas.sgemmNT(Math.toIntExact(m), cols, k, 1f, x, param(n, "weight"), 0f, y);
        DeviceBuffer bias = param(n, "bias");
        Activation act = n.enumAttr("activation", (Activation) null);
        if (bias != null || act != null) ops.glue("bias_act_f32", m * cols, y, bias, m, cols, actCode(act));
      }
      case MATMUL -> blas.sgemmNN(Math.toIntExact(in.rows()), out.dim(-1), in.dim(-1), x, param(n, "weight"), y);
      case LAYER_NORM -> ops.addLayerNorm(y, null, x, null, param(n, "weight"), param(n, "bias"), in.rows(), in.dim(-1), n.floatAttr("eps"));
      case ADD -> ops.glue("add_f32", out.elements(), y, x, inputs.get(1), out.elements(), n.boolAttr("relu") ? 1 : 0);
      case ATTENTION -> ops.attention(y, x, in.dim(0), in.dim(1), n.intAttr("heads"), n.boolAttr("causal"), CudaOps.Precision.FP32);
      case QUICK_GELU, GELU -> {
        copy(y, x, 4L * in.elements());
        ops.glue("bias_act_f32", in.elements(), y, null, in.rows(), in.dim(-1), n.op() == Op.GELU ? 2 : 1);
      }
      case PATCH_EMBED -> {
        int b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3), p = n.intAttr("patch");
        int cells = out.dim(1), d = out.dim(2), k = c * p * p;
        long rows = (long) b * cells;
        DeviceBuffer patches = scratch(4L * rows * k);
        ops.glue("patchify_f32", rows * k, patches, x, b, c, h, w, p);
        blas.sgemmNT(Math.toIntExact(rows), d, k, 1f, patches, param(n, "weight"), 0f, y);
      }
      case CLASS_POS_EMBED -> ops.glue("class_pos_embed_f32", out.elements(), y, x, param(n, "class"), param(n, "positional"),
          out.dim(0), out.dim(1), out.dim(2));
      case TOKEN_EMBED -> ops.glue("token_embed_f32", out.elements(), y, x, param(n, "token"), param(n, "positional"),
          out.dim(0), out.dim(1), out.dim(2));
      case TAKE_TOKEN -> ops.glue("take_token_f32", out.elements(), y, x, in.dim(0), in.dim(1), in.dim(2), n.intAttr("index"));
      case EOT_GATHER -> ops.glue("eot_gather_f32", out.elements(), y, x, inputs.get(1), in.dim(0), in.dim(1), in.dim(2));
      case CONV2D -> conv2d(n, x, y, in, out);
      case AVG_POOL -> ops.glue("avg_pool_f32", out.elements(), y, x, (long) in.dim(0) * in.dim(1), in.dim(2), in.dim(3),
          n.intAttr("kernel"), out.dim(2), out.dim(3));
      case ATTNPOOL_TOKENS -> ops.glue("attnpool_tokens_f32", out.elements(), y, x, param(n, "positional"), in.dim(0), in.dim(1),
          in.dim(2) * in.dim(3));
      case L2_NORMALIZE -> ops.glueRows("l2_normalize_f32", in.rows(), y, x, in.rows(), in.dim(-1));
      case SOFTMAX -> ops.glueRows("softmax_f32", in.rows(), y, x, in.rows(), in.dim(-1));
      case COSINE_LOGITS -> ops.cosineLogits(y, x, (DeviceBuffer) inputs.get(1), in.dim(0), out.dim(1), in.dim(1), n.floatAttr("scale"));
      case INPUT -> throw new IllegalStateException("INPUT nodes are not executed");
    }
  }

  /** k x k convolution as im2col + one GEMM per image, then bias (folded BatchNorm) and ReLU. */
  private void conv2d(Node n, DeviceBuffer x, DeviceBuffer y, TensorSpec in, TensorSpec out) {
    int b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
    int o = out.dim(1), oh = out.dim(2), ow = out.dim(3);
    int k = n.intAttr("kernel"), stride = n.intAttr("stride"), pad = n.intAttr("padding");
    int plane = oh * ow, kk = c * k * k;
    DeviceBuffer weight = param(n, "weight");
    boolean direct = k == 1 && stride == 1 && pad == 0; // a 1x1 conv reads the image as its own im2col
    DeviceBuffer col = direct ? null : scratch(4L * kk * plane);
    for (int i = 0; i < b; i++) {
      DeviceBuffer img = x.view(4L * i * c * h * w, 4L * c * h * w);
      DeviceBuffer dst = y.view(4L * i * o * plane, 4L * o * plane);
      if (!direct) ops.glue("im2col_f32", (long) kk * plane, col, img, c, h, w, k, stride, pad, oh, ow);
      blas.sgemmNN(o, plane, kk, weight, direct ? img : col, dst);
    }
    ops.glue("bias_channel_act_f32", out.elements(), y, param(n, "bias"), (long) b, o, plane, n.boolAttr("relu") ? 1 : 0);
  }

  private static int actCode(Activation a) {
    return a == null ? 0 : a == Activation.QUICK_GELU ? 1 : 2;
  }

  private void copy(DeviceBuffer dst, DeviceBuffer src, long bytes) {
    device.makeCurrent();
    check(cuMemcpyDtoD(dst.address(), src.address(), bytes), "cuMemcpyDtoD(" + bytes + " bytes)");
  }

  @Override
  public void close() {
    for (DeviceBuffer b : params.values()) b.close();
    params.clear();
    if (scratch != null) scratch.close();
    scratch = null;
    blas.close();
    ops.close();
  }
}

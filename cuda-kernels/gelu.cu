// gelu.cu: bias + activation, fused, in place.
//
// Computes, for a row-major [rows, cols] activation x (the output of a LINEAR without bias) and a
// bias of [cols]:
//   bias_quick_gelu_f32: x = v * sigmoid(1.702 * v),          v = x + bias   (CLIP's QuickGELU)
//   bias_gelu_f32:       x = 0.5 * v * (1 + erf(v / sqrt(2))), v = x + bias   (exact GELU)
// PyTorch: QuickGELU()(x + b) from clip/model.py; torch.nn.functional.gelu(x + b) (approximate="none").
// bias may be NULL (activation alone).
// Layout: x row-major [rows, cols], contiguous. Launch: 1-D grid-stride loop,
//   block = 256 threads, grid = min(ceil(rows*cols / 256), 65535 * 4) blocks.
// Accuracy: fp32 throughout; expf/erff are the full-precision libdevice versions (no --use_fast_math).
#include "common.cuh"

__device__ __forceinline__ float quick_gelu(float v) { return v / (1.0f + expf(-1.702f * v)); }
__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

extern "C" __global__ void bias_quick_gelu_f32(float* __restrict__ x, const float* __restrict__ bias,
                                               long long rows, int cols) {
  long long n = rows * (long long)cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float v = x[i] + (bias ? bias[i % cols] : 0.0f);
    x[i] = quick_gelu(v);
  }
}

extern "C" __global__ void bias_gelu_f32(float* __restrict__ x, const float* __restrict__ bias,
                                         long long rows, int cols) {
  long long n = rows * (long long)cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float v = x[i] + (bias ? bias[i % cols] : 0.0f);
    x[i] = gelu_erf(v);
  }
}

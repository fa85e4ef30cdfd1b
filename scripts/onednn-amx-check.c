// The two oneDNN AMX faults that DnnlLinear works around, outside the JVM (docs/cpu-backend.md,
// "AMX"). Runs on any x86-64 CPU; the faults show only where oneDNN picks its AMX kernel
// (brg_matmul:*_amx), i.e. on a CPU with AMX-BF16.
//
//   1. bf16 matmul with the row count given at run time (DNNL_RUNTIME_DIM_VAL): some rows wrong.
//   2. One primitive run by two threads at once with oneDNN's own scratchpad: results vary.
//
// Build against the libdnnl.so.3 and headers of the JavaCPP preset jclip uses:
//   j=~/.m2/repository/org/bytedeco/dnnl/3.11-1.5.13/dnnl-3.11-1.5.13-linux-x86_64.jar
//   mkdir -p /tmp/onednn && (cd /tmp/onednn && unzip -qo "$j" 'org/bytedeco/dnnl/linux-x86_64/*')
//   L=/tmp/onednn/org/bytedeco/dnnl/linux-x86_64
//   gcc -O2 -I$L/include scripts/onednn-amx-check.c -o /tmp/onednn-amx-check -L$L -l:libdnnl.so.3 -lpthread -lm -Wl,-rpath,$L
//   OMP_NUM_THREADS=1 /tmp/onednn-amx-check
// Exit status 1 when a fault shows in a configuration jclip uses (fixed rows, a scratchpad a thread).
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oneapi/dnnl/dnnl.h"

#define CHECK(call)                                                          \
  do {                                                                       \
    dnnl_status_t status_ = (call);                                          \
    if (status_ != dnnl_success) {                                           \
      fprintf(stderr, "%s failed: status %d\n", #call, (int)status_);        \
      exit(2);                                                               \
    }                                                                        \
  } while (0)

static dnnl_engine_t engine;

static uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static dnnl_memory_desc_t md2(int64_t rows, int64_t cols, dnnl_data_type_t type, dnnl_format_tag_t tag) {
  dnnl_dims_t dims = {rows, cols};
  dnnl_memory_desc_t md;
  CHECK(dnnl_memory_desc_create_with_tag(&md, 2, dims, type, tag));
  return md;
}

// A bf16 matmul y[M,N] = x[M,K] w[K,N] with weights in the layout the primitive asks for.
typedef struct {
  dnnl_primitive_t primitive;
  dnnl_memory_t weights;
  size_t scratch_bytes;
  const_dnnl_memory_desc_t scratch_md;
  const char *impl;
} matmul_t;

static matmul_t make_matmul(int64_t rows, int K, int N, const float *w, int user_scratchpad) {
  dnnl_memory_desc_t src = md2(rows, K, dnnl_bf16, dnnl_ab), wany = md2(K, N, dnnl_bf16, dnnl_format_tag_any);
  dnnl_memory_desc_t dst = md2(rows, N, dnnl_f32, dnnl_ab), wplain = md2(K, N, dnnl_f32, dnnl_ba);
  dnnl_primitive_attr_t attr;
  CHECK(dnnl_primitive_attr_create(&attr));
  if (user_scratchpad) CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
  dnnl_primitive_desc_t pd;
  CHECK(dnnl_matmul_primitive_desc_create(&pd, engine, src, wany, NULL, dst, attr));
  matmul_t m;
  CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &m.impl));
  CHECK(dnnl_primitive_create(&m.primitive, pd));
  const_dnnl_memory_desc_t wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  m.scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  m.scratch_bytes = m.scratch_md ? dnnl_memory_desc_get_size(m.scratch_md) : 0;
  size_t wbytes = dnnl_memory_desc_get_size(wmd);
  void *packed = aligned_alloc(64, (wbytes + 63) / 64 * 64);
  dnnl_memory_t plain;
  CHECK(dnnl_memory_create(&plain, wplain, engine, (void *)w));
  CHECK(dnnl_memory_create(&m.weights, wmd, engine, packed));
  dnnl_primitive_desc_t rpd;
  CHECK(dnnl_reorder_primitive_desc_create(&rpd, wplain, engine, wmd, engine, NULL));
  dnnl_primitive_t reorder;
  CHECK(dnnl_primitive_create(&reorder, rpd));
  dnnl_stream_t stream;
  CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, plain}, {DNNL_ARG_DST, m.weights}};
  CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
  CHECK(dnnl_stream_wait(stream));
  return m;
}

// Runs rows [r0, r0 + rows) of x (bf16, K a row) into y (f32, N a row).
static void run(const matmul_t *m, dnnl_stream_t stream, const uint16_t *x, float *y, int rows, int K, int N, void *scratch) {
  dnnl_memory_desc_t src = md2(rows, K, dnnl_bf16, dnnl_ab), dst = md2(rows, N, dnnl_f32, dnnl_ab);
  dnnl_memory_t sm, dm, spm = NULL;
  CHECK(dnnl_memory_create(&sm, src, engine, (void *)x));
  CHECK(dnnl_memory_create(&dm, dst, engine, y));
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, m->weights}, {DNNL_ARG_DST, dm}, {DNNL_ARG_SCRATCHPAD, NULL}};
  int nargs = 3;
  if (scratch && m->scratch_bytes) {
    CHECK(dnnl_memory_create(&spm, m->scratch_md, engine, scratch));
    args[nargs++].memory = spm;
  }
  CHECK(dnnl_primitive_execute(m->primitive, stream, nargs, args));
  CHECK(dnnl_stream_wait(stream));
  dnnl_memory_destroy(sm);
  dnnl_memory_destroy(dm);
  if (spm) dnnl_memory_destroy(spm);
  dnnl_memory_desc_destroy(src);
  dnnl_memory_desc_destroy(dst);
}

// Fault 1: the worst row's relative error against a double product, rows given at run time or fixed.
static double worst_row(int M, int K, int N, int runtime_rows) {
  unsigned seed = 7;
  uint16_t *x = malloc(2L * M * K);
  float *xf = malloc(4L * M * K), *w = malloc(4L * K * N), *y = calloc((size_t)M * N, 4);
  for (long i = 0; i < (long)M * K; i++) xf[i] = from_bf16(x[i] = to_bf16(rand_r(&seed) / (float)RAND_MAX * 2 - 1));
  for (long i = 0; i < (long)K * N; i++) w[i] = from_bf16(to_bf16((rand_r(&seed) / (float)RAND_MAX * 2 - 1) * 0.05f));
  matmul_t m = make_matmul(runtime_rows ? DNNL_RUNTIME_DIM_VAL : M, K, N, w, 0);
  dnnl_stream_t stream;
  CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
  run(&m, stream, x, y, M, K, N, NULL);
  double worst = 0;
  for (int r = 0; r < M; r++) {
    double num = 0, den = 0;
    for (int c = 0; c < N; c++) {
      double want = 0;
      for (int i = 0; i < K; i++) want += (double)xf[(long)r * K + i] * w[(long)c * K + i];
      num += (y[(long)r * N + c] - want) * (y[(long)r * N + c] - want);
      den += want * want;
    }
    if (sqrt(num / den) > worst) worst = sqrt(num / den);
  }
  free(x), free(xf), free(w), free(y);
  return worst;
}

// Fault 2: two threads, each running every other 144-row chunk of 576 rows through one primitive.
typedef struct {
  const matmul_t *m;
  const uint16_t *x;
  float *y;
  int K, N, first, user_scratchpad;
} job_t;

static void *chunks(void *arg) {
  job_t *j = arg;
  dnnl_stream_t stream;
  CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
  void *scratch = j->user_scratchpad ? aligned_alloc(64, (j->m->scratch_bytes + 127) / 64 * 64) : NULL;
  for (int c = j->first; c < 4; c += 2) run(j->m, stream, j->x + (long)c * 144 * j->K, j->y + (long)c * 144 * j->N, 144, j->K, j->N, scratch);
  free(scratch);
  dnnl_stream_destroy(stream);
  return NULL;
}

static int differing_runs(int K, int N, int user_scratchpad, int runs) {
  unsigned seed = 3;
  uint16_t *x = malloc(2L * 576 * K);
  float *w = malloc(4L * K * N), *y = malloc(4L * 576 * N), *once = malloc(4L * 576 * N);
  for (long i = 0; i < 576L * K; i++) x[i] = to_bf16(rand_r(&seed) / (float)RAND_MAX * 2 - 1);
  for (long i = 0; i < (long)K * N; i++) w[i] = rand_r(&seed) / (float)RAND_MAX * 2 - 1;
  matmul_t m = make_matmul(144, K, N, w, user_scratchpad);
  job_t serial = {&m, x, once, K, N, 0, user_scratchpad}, odd = serial;
  odd.first = 1;
  chunks(&serial), chunks(&odd);  // one thread: the reference bits
  int differ = 0;
  for (int r = 0; r < runs; r++) {
    job_t a = {&m, x, y, K, N, 0, user_scratchpad}, b = a;
    b.first = 1;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, chunks, &a);
    pthread_create(&tb, NULL, chunks, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (memcmp(y, once, 4L * 576 * N)) differ++;
  }
  free(x), free(w), free(y), free(once);
  return differ;
}

int main(void) {
  CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
  const dnnl_version_t *v = dnnl_version();
  printf("oneDNN %d.%d.%d, effective ISA 0x%x\n", v->major, v->minor, v->patch, (unsigned)dnnl_get_effective_cpu_isa());
  int failed = 0;
  int counts[] = {15, 16, 49, 64, 77, 98, 112, 333};
  for (int i = 0; i < (int)(sizeof counts / sizeof counts[0]); i++) {
    double runtime = worst_row(counts[i], 3072, 64, 1), fixed = worst_row(counts[i], 3072, 64, 0);
    printf("K 3072, %3d rows: worst row %.2g with rows given at run time, %.2g with rows fixed\n", counts[i], runtime, fixed);
    if (fixed > 1e-5) failed = 1;
  }
  for (int user = 0; user <= 1; user++) {
    int d = differing_runs(588, 512, user, 100);
    printf("K 588, one primitive on two threads, %s scratchpad: %d of 100 runs differ from one thread's\n",
        user ? "a thread's own" : "oneDNN's", d);
    if (user && d) failed = 1;
  }
  return failed;
}

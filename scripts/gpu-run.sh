#!/usr/bin/env bash
# run.sh of the GPU bundle (built by scripts/gpu-bundle.sh from scripts/gpu-run.sh).
# Runs on the GPU machine alone: finds its CUDA libraries, unpacks the Java runtime, runs the
# self-test, every test tagged "cuda", the GEMM peak benchmark and the PyTorch peer benchmark,
# and writes everything under $OUT (report.txt, junit/, peer.json).
#
# Stage limits (seconds, env): JCLIP_TEST_TIMEOUT 240, JCLIP_BENCH_TIMEOUT 150, JCLIP_PEER_TIMEOUT 300;
# a device call may run 600 s, so lower the peer limit when the tests and benchmarks need their time.
#   ./run.sh [smoke|tests|full]  smoke: torch.compile peer at batch 1 and 1024 only; tests: eager peer only;
#                                full: torch.compile at every batch size
set -u
mode="${1:-full}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$here/out}"
mkdir -p "$OUT"
report="$OUT/report.txt"
: > "$report"
say() { echo "$@" | tee -a "$report"; }
section() { say ""; say "== $* ($(date -u +%H:%M:%S))"; }
started=$(date +%s)

section "machine"
say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit: $(tr '\n' ' ' < "$here/COMMIT")"
say "mode: $mode"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$report"
nvidia-smi 2>&1 | sed -n '3p' | sed 's/^/nvidia-smi: /' | tee -a "$report"
say "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

section "CUDA libraries"
# Do not assume where the toolkit lives: ask the linker cache, then look in the usual places.
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so\.1|libcudart\.so\.13|libcublas(Lt)?\.so\.13' | sed 's/^/ldconfig: /' | tee -a "$report"
# Directories holding each library: the linker cache first, then a search of the usual roots
# (the toolkit may sit in /usr/local/cuda-13.x/lib rather than lib64, or in pip's nvidia/ packages).
locate() {
  local lib="$1" hit
  hit="$(ldconfig -p 2>/dev/null | grep -m1 " $lib " | awk '{print $NF}')"
  [ -z "$hit" ] && hit="$(find /usr/local /opt /usr/lib /usr/lib64 / -xdev \( -path /proc -o -path /sys \) -prune -o \
      \( -name "$lib" -o -name "$lib.*" \) -print 2>/dev/null | head -1)"
  [ -n "$hit" ] && dirname "$hit"
}
libpath=""
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
  d="$(locate "$lib")"
  say "$lib: ${d:-NOT FOUND}"
  case ":$libpath:" in *":$d:"*) ;; *) [ -n "$d" ] && libpath="${libpath:+$libpath:}$d" ;; esac
done
for d in ${libpath//:/ }; do ls "$d" | grep -E '^lib(cudart|cublas|cublasLt)\.so\.[0-9]+\.[0-9.]*$' | sed "s|^|  $d/|" | tee -a "$report"; done
export LD_LIBRARY_PATH="${libpath}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
say "libcuda.so.1: $(ldconfig -p | grep -m1 'libcuda\.so\.1' | awk '{print $NF}')"

section "reference data"
[ -f "$here/models.tar.xz" ] && tar -C "$here" -xJf "$here/models.tar.xz"
ls "$here/clip-reference/models" 2>/dev/null | sed 's/^/  model: /' | tee -a "$report"

section "Java runtime"
jre=/tmp/jclip-jre
if [ ! -x "$jre/bin/java" ]; then mkdir -p "$jre" && tar -C "$jre" -xJf "$here/jre.tar.xz"; fi
java="$jre/bin/java"
"$java" -version 2>&1 | sed 's/^/  /' | tee -a "$report"
jflags=(--enable-native-access=ALL-UNNAMED -Dorg.bytedeco.javacpp.cachedir=/tmp/javacpp-cache -Djclip.reference="$here/clip-reference")
jclip() { "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" "$@"; }
jclip --version 2>&1 | sed 's/^/  /' | tee -a "$report"

section "jclip gpu-info --self-test"
timeout 120 "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" gpu-info --self-test 2>&1 | tee -a "$report"
if [ "${PIPESTATUS[0]}" != 0 ]; then
  say "self-test failed; JavaCPP loader debug output follows"
  "$java" "${jflags[@]}" -Dorg.bytedeco.javacpp.logger.debug=true -jar "$here/lib/jclip.jar" gpu-info 2>&1 | tail -40 | tee -a "$report"
fi

section "CUDA tests (JUnit, tag cuda)"
# Every stage runs under its own time limit: a kernel that hangs must not eat the session's GPU time.
timeout "${JCLIP_TEST_TIMEOUT:-240}" "$java" "${jflags[@]}" -Djclip.cuda.required=true -jar "$here/lib/junit-console.jar" execute \
  --class-path "$here/lib/jclip-tests.jar:$here/lib/jclip.jar" --scan-class-path --include-tag cuda \
  --details=tree --disable-banner --disable-ansi-colors --fail-if-no-tests --reports-dir "$OUT/junit" 2>&1 | tee "$OUT/junit-console.txt" | tail -40 | tee -a "$report"

section "cuBLAS GEMM peaks and attention kernels"
timeout "${JCLIP_BENCH_TIMEOUT:-150}" "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" gpu-info --gemm-bench --model-bench \
  --prompts "$here/clip-reference/zeroshot" --vocab "$here/clip-reference/models/vit-b32-tiny/hf" --json "$OUT/jclip-model.json" 2>&1 \
  | grep -E 'gemm|attention|model|TFLOP|rror|Exception' | tee -a "$report"

section "PyTorch peer (HuggingFace CLIPModel, ViT-B/32 geometry, random weights)"
case "$mode" in
  smoke) peer_args=(--batches 1,32,256,1024 --compile-batches 1,1024) ;;
  tests) peer_args=(--batches 1,32,256,1024 --no-compile) ;;
  *) peer_args=(--batches 1,32,256,1024) ;;
esac
timeout "${JCLIP_PEER_TIMEOUT:-300}" python3 "$here/peer.py" --reference "$here/clip-reference" --json "$OUT/peer.json" "${peer_args[@]}" 2>&1 \
  | grep -vE 'Warning|warn\(' | tail -30 | tee -a "$report"

section "done in $(( $(date +%s) - started )) s"

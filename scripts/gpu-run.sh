#!/usr/bin/env bash
# run.sh of the GPU bundle (built by scripts/gpu-bundle.sh from scripts/gpu-run.sh).
# Runs on the GPU machine alone: finds its CUDA libraries, unpacks the Java runtime, runs the
# self-test, every test tagged "cuda" (one JVM per test class, most important first), the
# whole-model benchmark, the PyTorch peer, and the cuBLAS GEMM and attention benchmark, and writes
# everything under $OUT (report.txt, junit/, junit-*.txt, jclip-model.json, bench-*.txt, peer.json, gpu-clocks.csv).
#
# Time: the whole run keeps within JCLIP_BUDGET seconds (default 540: a device call may run 600 s,
# and the session's 15 minutes include the machine's start), each stage within its own limit and
# within what is left of the budget; a stage with too little time left is skipped and says so, so
# that report.txt always ends with a summary. Stage limits (seconds, env): JCLIP_SELFTEST_TIMEOUT
# 60; JCLIP_TEST_TIMEOUT 270 for all test classes together, JCLIP_CLASS_TIMEOUT 150 for one (less for
# the classes known to be short: class_limit below);
# JCLIP_MODEL_BENCH_TIMEOUT 180, JCLIP_MODEL_RESUME_TIMEOUT 90 (its tuned rows in a fresh process, where it ended before them); JCLIP_NCU_TIMEOUT 45 (kernel metrics); JCLIP_BENCH_TIMEOUT 45 (GEMM peaks, attention kernels);
# JCLIP_EMBED_TIMEOUT 150 (jclip embed end to end); JCLIP_CALLERS_TIMEOUT 90 (bench callers: ClipBatcher, last); JCLIP_PEER_TIMEOUT 300 (gets what is left); JCLIP_TORCH16_TIMEOUT 60
# (the reference models in PyTorch's own fp16 and bf16, after the peer). JCLIP_TESTS=Class1,Class2 runs only those classes;
# JCLIP_MODEL_PRECISIONS=fp16,... the model benchmark's throughput rows; JCLIP_MODEL_ARCHS=RN50,ViT-L/14,... adds those image towers
# (random weights, fp16; default RN50,RN50x4,ViT-B/16,ViT-L/14@336px); JCLIP_PEER_ARGS="--batches 1024 ..." replaces the peer's
# batch arguments; JCLIP_JAVA_OPTS="-D..." adds JVM options to every stage (the kernel choices: -Djclip.cuda.fusedLinear=...).
# Everything under $OUT is also packed into $OUT/0-results.tar.gz (the device tool brings back 8 files).
#   ./run.sh [smoke|tests|full|bench|embed]  smoke: torch.compile peer at batch 1 and 1024 only; tests: eager peer,
#                                compiled at 1024 only; full: torch.compile at every batch size; bench: as tests without the CUDA tests;
#                                embed: only the embed stage. Stage order: self-test, CUDA tests, model benchmark,
#                                PyTorch peer, PyTorch's 16-bit reference, GEMM/attention benchmark and kernel metrics (ncu) (diagnosis, so after
#                                the figures the goals need), embed end to end, concurrent callers (ClipBatcher).
set -u
mode="${1:-full}"
# the model benchmark's other image towers (empty: none)
JCLIP_MODEL_ARCHS="${JCLIP_MODEL_ARCHS-RN50,RN50x4,ViT-B/16,ViT-L/14@336px}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$here/out}"
mkdir -p "$OUT"
report="$OUT/report.txt"
: > "$report"
say() { echo "$@" | tee -a "$report"; }
section() { say ""; say "== $* ($(date -u +%H:%M:%S), $(( $(date +%s) - started )) s)"; }
started=$(date +%s)
deadline=$(( started + ${JCLIP_BUDGET:-540} ))
summary=()
note() { summary+=("$*"); }
# want STAGE: whether this mode runs STAGE (selftest, tests, model, gemm, peer, embed)
want() {
  case "$mode" in
    bench) [ "$1" != tests ] ;;
    embed) [ "$1" = embed ] ;;
    *) true ;;
  esac
}
# limit WANT: seconds a stage may take, WANT capped by what is left of the budget (minus 20 s
# kept for the summary); prints 0 when under 20 s would be left.
limit() {
  local left=$(( deadline - $(date +%s) - 20 ))
  local l=$(( $1 < left ? $1 : left ))
  [ "$l" -lt 20 ] && l=0
  echo "$l"
}
# stage NAME RC: records how a timed command ended (124/137: killed at its time limit).
stage() {
  case "$2" in
    0) note "$1: ok" ;;
    124|137) note "$1: TIMED OUT" ;;
    86) note "$1: HUNG (a test waited in the driver past JCLIP_TEST_HANG; its JVM was halted)" ;;
    *) note "$1: FAILED (exit $2)" ;;
  esac
}

section "machine"
say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit: $(tr '\n' ' ' < "$here/COMMIT")"
say "mode: $mode, budget ${JCLIP_BUDGET:-540} s"
timeout -k 5 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$report"
timeout -k 5 20 nvidia-smi 2>&1 | sed -n '3p' | sed 's/^/nvidia-smi: /' | tee -a "$report"
say "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

section "CUDA libraries"
# Do not assume where the toolkit lives: ask the linker cache, then look in the usual places.
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so\.1|libcudart\.so\.13|libcublas(Lt)?\.so\.13' | sed 's/^/ldconfig: /' | tee -a "$report"
# Directories holding each library: the linker cache first, then a (time-limited) search of the
# usual roots (the toolkit may sit in /usr/local/cuda-13.x/lib rather than lib64, or in pip's
# nvidia/ packages).
locate() {
  local lib="$1" hit
  hit="$(ldconfig -p 2>/dev/null | grep -m1 "[[:space:]]$lib " | awk '{print $NF}')" # ldconfig -p indents with a tab
  [ -z "$hit" ] && hit="$(timeout 30 find /usr/local /opt /usr/lib /usr/lib64 / -xdev \( -path /proc -o -path /sys \) -prune -o \
      \( -name "$lib" -o -name "$lib.*" \) -print 2>/dev/null | head -1)"
  [ -n "$hit" ] && dirname "$hit"
}
libpath=""
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
  d="$(locate "$lib")"
  say "$lib: ${d:-NOT FOUND}"
  [ -z "$d" ] && note "CUDA library $lib: NOT FOUND"
  case ":$libpath:" in *":$d:"*) ;; *) [ -n "$d" ] && libpath="${libpath:+$libpath:}$d" ;; esac
done
for d in ${libpath//:/ }; do ls "$d" | grep -E '^lib(cudart|cublas|cublasLt)\.so\.[0-9]+\.[0-9.]*$' | sed "s|^|  $d/|" | tee -a "$report"; done
export LD_LIBRARY_PATH="${libpath}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
say "libcuda.so.1: $(ldconfig -p 2>/dev/null | grep -m1 'libcuda\.so\.1' | awk '{print $NF}')"
# JPEG decoding (embed): the machine's own libturbojpeg when it has one, else the bundle's copy.
turbo="$(ldconfig -p 2>/dev/null | grep -m1 '[[:space:]]libturbojpeg\.so\.0 ' | awk '{print $NF}')"
if [ -n "$turbo" ]; then
  say "libturbojpeg.so.0: $turbo (the machine's)"
elif [ -f "$here/native/libturbojpeg.so.0" ]; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$here/native"
  say "libturbojpeg.so.0: not on this machine; using the bundle's ($here/native)"
else
  say "libturbojpeg.so.0: NOT FOUND (embed decodes JPEGs with the Java path)"
fi

# unpack DIR FILE.tar.xz: tar with xz where they exist, else Python's tarfile (lzma built in)
unpack() {
  tar -C "$1" -xJf "$2" 2>/dev/null && return 0
  say "tar -xJf $2 failed; unpacking with Python's tarfile"
  python3 -c 'import sys, tarfile
t = tarfile.open(sys.argv[2])
t.extractall(sys.argv[1], filter="tar") if hasattr(tarfile, "tar_filter") else t.extractall(sys.argv[1])' "$1" "$2"
}

section "reference data"
# (clip-reference/models already holds the vocabulary files of gpu-bundle.files: a stamp, not
# the folder, says whether the models were unpacked)
if [ -f "$here/models.tar.xz" ] && [ ! -f "$here/clip-reference/.models-unpacked" ]; then
  unpack "$here" "$here/models.tar.xz" && touch "$here/clip-reference/.models-unpacked" || note "unpacking models.tar.xz: FAILED"
fi
ls "$here/clip-reference/models" 2>/dev/null | sed 's/^/  model: /' | tee -a "$report"

# The driver's JIT cache: PTX is compiled for the GPU on first load (gemm_sm90's 12 MB take ~20 s)
# and every test class and benchmark is its own process, so keep the compiled code in one place
# that is writable and large enough, whatever HOME is. (On compute capability 9.0 the bundled jar's
# ahead-of-time cubins load instead: scripts/gpu-bundle.sh; a "not used" line on stderr says when not.)
export CUDA_CACHE_PATH="${CUDA_CACHE_PATH:-/tmp/jclip-cuda-cache}" CUDA_CACHE_MAXSIZE="${CUDA_CACHE_MAXSIZE:-2147483648}"
mkdir -p "$CUDA_CACHE_PATH"
say "CUDA JIT cache: $CUDA_CACHE_PATH (at most $CUDA_CACHE_MAXSIZE bytes)"

section "Java runtime"
jre=/tmp/jclip-jre
# unpacked once per bundle: a runtime left in /tmp by another bundle (other modules) is replaced
pack_id="$(cksum < "$here/jre.tar.xz")"
if [ ! -x "$jre/bin/java" ] || [ "$(cat "$jre/.pack" 2>/dev/null)" != "$pack_id" ]; then
  rm -rf "$jre" && mkdir -p "$jre" && unpack "$jre" "$here/jre.tar.xz" && echo "$pack_id" > "$jre/.pack" || note "unpacking jre.tar.xz: FAILED"
fi
java="$jre/bin/java"
"$java" -version 2>&1 | sed 's/^/  /' | tee -a "$report"
jflags=(--enable-native-access=ALL-UNNAMED -Dorg.bytedeco.javacpp.cachedir=/tmp/javacpp-cache -Djclip.reference="$here/clip-reference")
# the nine models' CPU features for CudaAllModelsTest (the bundle has no CPU GEMM library to make them)
[ -f "$here/all-models.json" ] && jflags+=(-Djclip.cuda.allModels="$here/all-models.json")
# extra JVM options for every stage, e.g. JCLIP_JAVA_OPTS="-Djclip.cuda.fusedLinear=sm90ppc2 -Djclip.cuda.layernorm=vec"
# shellcheck disable=SC2206
[ -n "${JCLIP_JAVA_OPTS:-}" ] && jflags+=(${JCLIP_JAVA_OPTS})
"$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" --version 2>&1 | sed 's/^/  /' | tee -a "$report"

section "jclip gpu-info --self-test"
t=0; want selftest && t="$(limit "${JCLIP_SELFTEST_TIMEOUT:-60}")"
if [ "$t" -gt 0 ]; then
  timeout -k 10 "$t" "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" gpu-info --self-test 2>&1 | tee -a "$report"
  rc=${PIPESTATUS[0]}
  stage "self-test" "$rc"
  if [ "$rc" != 0 ] && [ "$(limit 30)" -gt 0 ]; then
    say "self-test failed; JavaCPP loader debug output follows"
    timeout -k 10 30 "$java" "${jflags[@]}" -Dorg.bytedeco.javacpp.logger.debug=true -jar "$here/lib/jclip.jar" gpu-info 2>&1 | tail -40 | tee -a "$report"
  fi
else
  note "self-test: SKIPPED (budget or mode)"
fi

section "CUDA tests (JUnit, tag cuda, one JVM per class)"
if want tests; then
# One JVM per class: a kernel that hangs, or an illegal address (which leaves the CUDA context
# unusable for the rest of the process), costs one class, not the others. Most important first:
# what has never run on a GPU, then what has; last the nine models at full geometry
# (CudaAllModelsTest, 1-2 minutes: in the documented plan a call of its own).
pkg=dev.jclip.backend.cuda
classes="${JCLIP_TESTS:-CudaSm90GemmTest,CudaSm90StoreTest,CudaSm90EpilogueWarpsTest,CudaSm90EpilogueWarps16Test,CudaSm90EpilogueWarpsSplitTest,CudaBackendOpsTest,CudaLinearEpilogueTest,CudaGraphReplayTest,CudaPipelineTest,CudaGoldenParityTest,CudaFullGeometryTest,CudaAttentionTest,CudaOpsTest,CudaAllModelsTest,CudaOtherHeadSizesTest}"
tests_deadline=$(( $(date +%s) + ${JCLIP_TEST_TIMEOUT:-270} ))
# A test that waits JCLIP_TEST_HANG seconds (default 30; 0: never) in one native CUDA call with the
# same stack (a kernel that never finishes: a named barrier waits forever) ends its JVM with exit 86
# and its name in $OUT/junit/NAME.hung (dev.jclip.testing.HangGuard), instead of holding the class
# to its whole limit; the class is then run again without the tests that hung, while time is left.
hang_exit=86
junit() { # junit NAME LIMIT ARGS...: one console-launcher run; output in $OUT/junit-NAME.txt
  local name="$1" t="$2"; shift 2
  mkdir -p "$OUT/junit"
  timeout -k 10 "$t" "$java" "${jflags[@]}" -Djclip.cuda.required=true \
    -Djclip.test.hangSeconds="${JCLIP_TEST_HANG:-30}" -Djclip.test.hangFile="$OUT/junit/$name.hung" \
    -jar "$here/lib/junit-console.jar" execute --config=junit.jupiter.extensions.autodetection.enabled=true \
    --class-path "$here/lib/jclip-tests.jar:$here/lib/jclip.jar" --details=tree --details-theme=ascii --disable-banner --disable-ansi-colors \
    --reports-dir "$OUT/junit/$name" "$@" > "$OUT/junit-$name.txt" 2>&1
}
# hung_tests FILE: the --exclude-methodname arguments for each test named in a .hung file (a test
# that hung before or after its class's tests, "Class (before all)", cannot be left out: none)
hung_tests() {
  local name
  while IFS=$'\t' read -r name _; do
    case "$name" in *"#"*) printf '%s\n' "--exclude-methodname" "\\Q$name\\E" ;; esac
  done < "$1"
}
failed_classes=""
# each class's exit status, or "skipped" when the budget ran out before it: a class that did not
# finish vouches for nothing, so the profile leaves out its opt-in kernels as for a failure
declare -A class_rc=()
# Classes known to be short get a shorter limit: a kernel that hangs there (a named barrier waits
# forever; only mbarrier waits trap) then costs that much device time, not JCLIP_CLASS_TIMEOUT.
declare -A class_limit=([CudaSm90StoreTest]=120 [CudaGoldenParityTest]=90 [CudaPipelineTest]=90 [CudaOpsTest]=90)
for cls in ${classes//,/ }; do
  left=$(( tests_deadline - $(date +%s) ))
  cl="${JCLIP_CLASS_TIMEOUT:-150}"
  [ -n "${class_limit[$cls]:-}" ] && [ "${class_limit[$cls]}" -lt "$cl" ] && cl="${class_limit[$cls]}"
  t="$(limit $(( left < cl ? left : cl )))"
  if [ "$t" -le 0 ]; then
    note "$cls: SKIPPED (budget or mode)"; say "$cls: skipped (budget)"
    class_rc[$cls]=skipped; failed_classes="$failed_classes $cls"
    continue
  fi
  t0=$(date +%s)
  rm -f "$OUT/junit/$cls.hung"
  junit "$cls" "$t" --select-class "$pkg.$cls" --fail-if-no-tests
  rc=$?
  class_rc[$cls]=$rc
  [ "$rc" != 0 ] && failed_classes="$failed_classes $cls"
  stage "$cls ($(( $(date +%s) - t0 )) s)" "$rc"
  say "-- $cls: exit $rc in $(( $(date +%s) - t0 )) s (limit $t s); full output in junit-$cls.txt"
  # the measured errors, then the failures and the counts
  # (the perturbed-image spreads apart: a few lines that must not fall out of the last 60)
  { grep -E '^\[(cuda|parity)' "$OUT/junit-$cls.txt" | grep -v 'perturbed inputs' | tail -60; grep -E '^\[parity\].*perturbed inputs' "$OUT/junit-$cls.txt"; } | tee -a "$report"
  [ "$rc" != 0 ] && grep -E '=> |\[X\]|Exception' "$OUT/junit-$cls.txt" | grep -v '^\[' | head -30 | tee -a "$report"
  grep -E 'tests (successful|failed|aborted|skipped)|containers failed' "$OUT/junit-$cls.txt" | sed 's/^/  /' | tee -a "$report"
  # A test that hung: the class again without it (twice at most), so that its other kernels are
  # still tested; the class stays failed (exit 86), so the profile leaves its opt-ins out.
  attempt=1
  while [ "$rc" = "$hang_exit" ] && [ -s "$OUT/junit/$cls.hung" ] && [ "$attempt" -le 2 ]; do
    awk -F'\t' '{ print "  hung: " $1 " (" $2 " s in " $3 ")" }' "$OUT/junit/$cls.hung" | tail -n 1 | tee -a "$report"
    mapfile -t excluded < <(hung_tests "$OUT/junit/$cls.hung")
    left=$(( tests_deadline - $(date +%s) ))
    t="$(limit $(( left < cl ? left : cl )))"
    if [ "${#excluded[@]}" -eq 0 ] || [ "$t" -lt 30 ]; then
      say "-- $cls: not run again (the hang was outside a test, or under 30 s left)"
      break
    fi
    t0=$(date +%s)
    cp "$OUT/junit/$cls.hung" "$OUT/junit/$cls.hung.before"
    junit "$cls-rerun$attempt" "$t" --select-class "$pkg.$cls" "${excluded[@]}"
    rc=$?
    # killed at its limit: the class did not finish, so all of its kernels go from the profile
    case "$rc" in 124 | 137) class_rc[$cls]=$rc ;; esac
    # the next round's exclusions: every test that hung so far
    cat "$OUT/junit/$cls-rerun$attempt.hung" >> "$OUT/junit/$cls.hung.before" 2>/dev/null
    mv "$OUT/junit/$cls.hung.before" "$OUT/junit/$cls.hung"
    stage "$cls without the hung tests ($(( $(date +%s) - t0 )) s)" "$rc"
    say "-- $cls again without $(( ${#excluded[@]} / 2 )) hung test(s): exit $rc in $(( $(date +%s) - t0 )) s (limit $t s); full output in junit-$cls-rerun$attempt.txt"
    grep -E 'tests (successful|failed|aborted|skipped)|containers failed' "$OUT/junit-$cls-rerun$attempt.txt" | sed 's/^/  /' | tee -a "$report"
    [ "$rc" != 0 ] && [ "$rc" != "$hang_exit" ] && grep -E '=> |\[X\]|Exception' "$OUT/junit-$cls-rerun$attempt.txt" | grep -v '^\[' | head -30 | tee -a "$report"
    attempt=$(( attempt + 1 ))
  done
done
# any other class tagged cuda (added after this list was written)
listed="$(echo "$classes" | sed "s/,/|/g")"
left=$(( tests_deadline - $(date +%s) ))
t="$(limit $(( left < 60 ? left : 60 )))"
if [ -z "${JCLIP_TESTS:-}" ] && [ "$t" -gt 0 ]; then
  junit others "$t" --scan-class-path --include-tag cuda --exclude-classname ".*\\.($listed)"
  rc=$?
  if grep -qE '[1-9][0-9]* tests found' "$OUT/junit-others.txt"; then
    stage "other cuda-tagged tests" "$rc"
    grep -E '=> |\[X\]|tests (successful|failed)' "$OUT/junit-others.txt" | head -30 | sed 's/^/  /' | tee -a "$report"
  fi
fi
else
  note "CUDA tests: not run in mode $mode"
fi

section "whole-model benchmark (random ViT-B/32; every precision, launches and CUDA graph)"
# The card's clocks, power and clock-event reasons every 100 ms from here to the summary, in
# $OUT/gpu-clocks.csv (scripts/gpu-results.sh sums them up by stage): run 8's CUDA-graph replay was
# 7% slower than its profile's node totals, and the GEMM benchmark ran 10% slower on random inputs
# than on zeros; whether sustained power lowers the clocks shows here, the peer's stage included.
clock_pid=""
if want model && command -v nvidia-smi > /dev/null; then
  clock_fields="timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active"
  timeout -k 5 10 nvidia-smi --query-gpu="$clock_fields" --format=csv,noheader > /dev/null 2>&1 \
    || clock_fields="timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active"
  # TZ=UTC: its timestamps are the machine's local time, and report.txt's stage times are UTC
  TZ=UTC nvidia-smi --query-gpu="$clock_fields" --format=csv,nounits -lms 100 > "$OUT/gpu-clocks.csv" 2> /dev/null &
  clock_pid=$!
fi
# The profile leaves out the opt-in kernels whose tests failed above (a kernel that faults would
# leave the CUDA context unusable for every configuration after it; one that computes wrong can
# never become a default): CudaModelBench.skipped reads the groups.
# Where only the LayerNorm fold's own tests failed, only the fold is left out.
failed_methods() { # the test methods that failed in class $1's JUnit XML reports, its runs again without hung tests included, and those that hung (none without a report)
  python3 - "$OUT/junit/$1" <<'PY' 2>/dev/null
import glob, os, sys
import xml.etree.ElementTree as ET
base = sys.argv[1]
for f in glob.glob(base + "/*.xml") + glob.glob(base + "-rerun*/*.xml"):
    for tc in ET.parse(f).getroot().iter("testcase"):
        if tc.find("failure") is not None or tc.find("error") is not None:
            print(tc.get("name"))
if os.path.exists(base + ".hung"):
    for line in open(base + ".hung"):
        test = line.split("\t")[0]
        if "#" in test:
            print(test.split("#", 1)[1] + "()")
PY
}
only() { # only PREFIX METHODS: whether METHODS is not empty and every line starts with PREFIX
  [ -n "$2" ] && ! printf '%s\n' "$2" | grep -qv "^$1"
}
skip=""
for cls in ${failed_classes:-}; do
  methods="$(failed_methods "$cls")"
  # a class that did not finish (skipped for the budget, killed at its limit: a hang, or no JUnit
  # report: a crash) says nothing about which of its kernels is at fault: all of its groups go
  whole=false
  case "${class_rc[$cls]:-}" in skipped | 124 | 137) whole=true ;; esac
  [ -z "$methods" ] && whole=true
  case "$cls" in
    CudaSm90GemmTest) if ! $whole && only aLayerNormFolded "$methods"; then skip="$skip,lnfold"; else skip="$skip,sm90"; fi ;;
    CudaAttentionTest) # the variant families the test names as failed (else, or when it did not finish, every variant)
      fams="$(grep -h '^\[attention-variant-failed\]' "$OUT/junit-$cls.txt" 2>/dev/null | sed 's/^[^ ]* //' | tr ',' '\n' | sort -u | tr '\n' ',')"
      $whole && fams="attention,"
      skip="$skip,${fams:-attention,}"; skip="${skip%,}" ;;
    CudaOpsTest) if ! $whole && only layerNormStats "$methods"; then skip="$skip,lnfold"; else skip="$skip,layernorm"; fi ;;
    CudaLinearEpilogueTest) skip="$skip,linear" ;;
    CudaSm90StoreTest) skip="$skip,tma" ;;
    CudaSm90EpilogueWarpsTest) # where only its residual (or LayerNorm-fold, or statistics) tests failed, only those kernels go
      if ! $whole && only residual "$methods"; then skip="$skip,ewres"; elif ! $whole && only layerNorm "$methods"; then skip="$skip,ewln"
      elif ! $whole && only statistics "$methods"; then skip="$skip,ewst"
      else skip="$skip,ew"; fi ;;
    CudaSm90EpilogueWarps16Test) skip="$skip,ew16" ;;
    CudaSm90EpilogueWarpsSplitTest) skip="$skip,ew16s" ;;
    CudaGoldenParityTest | CudaBackendOpsTest | CudaFullGeometryTest)
      # the pooled attention through the backend (Fusion.pooledAttention) is tested here only
      grep -qE '\[X\].*pooled' "$OUT/junit-$cls.txt" 2>/dev/null && skip="$skip,pooled" ;;
  esac
done
skip="${skip#,}"
[ -n "$skip" ] && say "the profile skips the opt-in kernels of failed tests: $skip"
t=0; want model && t="$(limit "${JCLIP_MODEL_BENCH_TIMEOUT:-180}")"
if [ "$t" -gt 0 ]; then
  timeout -k 10 "$t" "$java" "${jflags[@]}" -Djclip.bench.skip="$skip" -jar "$here/lib/jclip.jar" gpu-info --model-bench --precisions "${JCLIP_MODEL_PRECISIONS:-fp16,bf16,fp32}" ${JCLIP_MODEL_ARCHS:+--architectures "$JCLIP_MODEL_ARCHS"} \
    --prompts "$here/clip-reference/zeroshot" --vocab "$here/clip-reference/models/vit-b32-tiny/hf" --json "$OUT/jclip-model.json" \
    > "$OUT/bench-model.txt" 2>&1
  rc=$?
  model_rc=$rc
  stage "model benchmark" "$rc"
  grep -E 'model|profile|rror|Exception|CUDA|failed' "$OUT/bench-model.txt" | head -120 | tee -a "$report"
else
  note "model benchmark: SKIPPED (budget or mode)"
fi

section "PyTorch peer (HuggingFace CLIPModel, ViT-B/32 geometry, random weights)"
case "$mode" in
  smoke|bench) peer_args=(--batches 1,32,256,1024 --compile-batches 1,1024) ;;
  tests) peer_args=(--batches 1,32,256,1024 --compile-batches 1024) ;; # the eager rows first, then compiled at 1024 (the goal's)
  *) peer_args=(--batches 1,32,256,1024) ;;
esac
[ -n "${JCLIP_PEER_ARGS:-}" ] && read -r -a peer_args <<< "$JCLIP_PEER_ARGS"
# python_stage NAME SCRIPT OUTPUT LINES LIMIT ARGS...: one of the bundle's Python scripts within
# LIMIT seconds (0: skipped), its output in $OUT/OUTPUT, its last LINES lines (warnings left out)
# in the report.
python_stage() {
  local name="$1" script="$2" output="$3" lines="$4" t="$5"
  shift 5
  if [ "$t" -gt 0 ]; then
    timeout -k 10 "$t" python3 "$here/$script" "$@" > "$OUT/$output" 2>&1
    stage "$name (limit $t s)" "$?"
    grep -vE 'Warning|warn\(' "$OUT/$output" | tail -"$lines" | tee -a "$report"
  else
    note "$name: SKIPPED (budget or mode)"
  fi
}
t=0; want peer && t="$(limit "${JCLIP_PEER_TIMEOUT:-300}")"
python_stage "PyTorch peer" peer.py peer.txt 30 "$t" --reference "$here/clip-reference" --json "$OUT/peer.json" "${peer_args[@]}"

# A kernel that faulted in the model benchmark's profile left that process's CUDA context unusable
# ("context_lost"; exit 4 where one hung), or the process was killed at its limit: its tuned rows
# (the configurations measured fastest) run in a fresh process, into the same JSON. After the peer,
# which the default rows need in any case and which must share the call.
model_json="$OUT/jclip-model.json"
if want model && [ -s "$model_json" ] && ! grep -q '"resumed"' "$model_json" \
    && { grep -q '"context_lost"' "$model_json" || case "${model_rc:-0}" in 4|124|137) true ;; *) false ;; esac; }; then
  t="$(limit "${JCLIP_MODEL_RESUME_TIMEOUT:-90}")"
  if [ "$t" -gt 0 ]; then
    say "the model benchmark lost its CUDA context in the profile, or ended at its limit, before its tuned rows: they run in a fresh process"
    timeout -k 10 "$t" "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" gpu-info --model-bench-resume "$model_json" \
      --precisions "${JCLIP_MODEL_PRECISIONS:-fp16,bf16,fp32}" --prompts "$here/clip-reference/zeroshot" \
      --vocab "$here/clip-reference/models/vit-b32-tiny/hf" > "$OUT/bench-model-resumed.txt" 2>&1
    rc=$?
    stage "model benchmark, tuned rows resumed" "$rc"
    grep -E 'model|rror|Exception|CUDA|failed' "$OUT/bench-model-resumed.txt" | head -40 | tee -a "$report"
  else
    note "model benchmark, tuned rows resumed: SKIPPED (budget)"
  fi
fi

section "the reference models in PyTorch's own 16 bits (torch-16bit.py)"
# What the golden test's 5e-3 asks of 16-bit arithmetic: the reference models, built as
# openai/CLIP builds them and run as clip.load runs them on a GPU (convert_weights), fp16 and bf16,
# against the same golden features (TF32 off, so that the float32 check holds). Seconds.
t=0; want peer && t="$(limit "${JCLIP_TORCH16_TIMEOUT:-60}")"
python_stage "PyTorch 16-bit reference" torch-16bit.py torch16.txt 12 "$t" --reference "$here/clip-reference" --device cuda --ensemble 6 --json "$OUT/torch16.json"

section "cuBLAS GEMM peaks and attention kernels"
# After the peer: the figures the goals need (the model benchmark and the peer in the same call)
# come first, the kernel-level diagnosis after them.
t=0; want gemm && t="$(limit "${JCLIP_BENCH_TIMEOUT:-45}")"
if [ "$t" -gt 0 ]; then
  timeout -k 10 "$t" "$java" "${jflags[@]}" -Djclip.bench.skip="$skip" -jar "$here/lib/jclip.jar" gpu-info --gemm-bench > "$OUT/bench-gemm.txt" 2>&1
  rc=$?
  stage "GEMM/attention benchmark" "$rc"
  grep -E 'gemm|attention|TFLOP|rror|Exception|CUDA|failed' "$OUT/bench-gemm.txt" | head -60 | tee -a "$report"
else
  note "GEMM/attention benchmark: SKIPPED (budget or mode)"
fi

section "kernel metrics (Nsight Compute on dev.jclip.testing.KernelSample)"
# Why a kernel takes the time the profile shows: memory throughput, shared-memory bank conflicts,
# occupancy of each hot kernel at ViT-B/32's batch-1024 fp16 shapes (the second of two launches).
# The machine may refuse performance counters (ERR_NVGPUCTRPERM): then this says so and moves on.
t=0; want model && t="$(limit "${JCLIP_NCU_TIMEOUT:-45}")"
ncu_bin="$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)"
# How many kernels one of KernelSample's two iterations launches here (it asks the device whether
# gemm_sm90 runs): the profiler skips the first iteration and profiles the second.
launches=""
if [ "$t" -gt 0 ] && [ -n "$ncu_bin" ]; then
  launches="$(timeout -k 5 60 "$java" "${jflags[@]}" -Djclip.bench.skip="$skip" -cp "$here/lib/jclip.jar:$here/lib/jclip-tests.jar" dev.jclip.testing.KernelSample --count 2>>"$OUT/ncu.txt" | tail -1)"
  case "$launches" in '' | *[!0-9]*) note "kernel metrics (ncu): KernelSample --count printed '$launches'"; launches="" ;; esac
  t="$(limit "${JCLIP_NCU_TIMEOUT:-45}")"
fi
if [ "$t" -gt 0 ] && [ -n "$ncu_bin" ] && [ -n "$launches" ]; then
  timeout -k 10 "$t" "$ncu_bin" --kernel-name regex:'flash_attention|attention_pooled|layernorm|bias_act|patchify|class_pos_embed|gemm_bias_act_sm90|gemm_ln_sm90' --launch-skip "$launches" --launch-count "$launches" \
    --section SpeedOfLight --section MemoryWorkloadAnalysis_Tables --section Occupancy --section LaunchStats \
    --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
    "$java" "${jflags[@]}" -Djclip.bench.skip="$skip" -cp "$here/lib/jclip.jar:$here/lib/jclip-tests.jar" dev.jclip.testing.KernelSample >> "$OUT/ncu.txt" 2>&1
  stage "kernel metrics (ncu)" "$?"
  grep -E 'ERR_|==PROF==|==ERROR==|flash_attention|attention_pooled|layernorm|bias_act|patchify|class_pos_embed|gemm_bias_act_sm90|gemm_ln_sm90|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Bank|Stall|Issued Ipc|Eligible' "$OUT/ncu.txt" | head -120 | tee -a "$report"
else
  note "kernel metrics (ncu): SKIPPED (budget, mode, or no ncu on this machine)"
fi

section "jclip embed end to end on the GPU (synthetic JPEGs, random ViT-B/32, fp16)"
# Issue 7's GPU figure: embed's images/s against the model alone (bench) at the same batch size,
# and where the time goes, with all the machine's cores decoding for one GPU: real-size pictures
# (1.9-12 MP) and img2dataset-size ones (384x288), each set several times over through hard links.
# EmbedCorpus (test classes) makes the corpus and
# the model here, as the bundle carries neither.
t=0; want embed && t="$(limit "${JCLIP_EMBED_TIMEOUT:-150}")"
if [ "$t" -gt 0 ]; then
  ework=/tmp/jclip-embed
  rm -rf "$ework"
  embed_deadline=$(( $(date +%s) + t ))
  left() { local l=$(( embed_deadline - $(date +%s) )); [ "$l" -lt 1 ] && l=1; echo "$l"; } # timeout 0 would mean none
  vocab="$here/clip-reference/models/vit-b32-tiny/hf"
  {
    timeout -k 5 "$(left)" "$java" "${jflags[@]}" -cp "$here/lib/jclip.jar:$here/lib/jclip-tests.jar" dev.jclip.testing.EmbedCorpus \
      "$ework/big" ViT-B/32 "34:4000x3000,33:2560x1920,33:1600x1200" &&
    timeout -k 5 "$(left)" "$java" "${jflags[@]}" -cp "$here/lib/jclip.jar:$here/lib/jclip-tests.jar" dev.jclip.testing.EmbedCorpus \
      "$ework/small" - "3000:384x288" &&
    # Hard-linked copies (free to make, where encoding the JPEGs takes a minute) so that each job
    # runs long enough for its steady state rather than the JIT's warm-up: 8 x 3,000 small and
    # 9 x 100 big images (read from the page cache).
    for set in small:7 big:8; do
      for i in $(seq 1 "${set#*:}"); do
        mkdir -p "$ework/${set%:*}/photos/copy$i" && ln "$ework/${set%:*}"/photos/*.jpg "$ework/${set%:*}/photos/copy$i/"
      done
    done &&
    for b in 256; do
      echo "-- model alone: bench --batch $b"
      JCLIP_REFERENCE="$here/clip-reference" timeout -k 5 "$(left)" "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" bench --model "$ework/big/model.safetensors" --vocab "$vocab" \
        --device cuda --precision fp16 --batch "$b" --json
      for set in big small; do
        echo "-- embed $set, batch $b"
        timeout -k 5 "$(left)" "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" embed --model "$ework/big/model.safetensors" --vocab "$vocab" \
          --input "$ework/$set/photos" --output "$ework/out-$set-$b" --device cuda:all --precision fp16 --batch-size "$b" --progress none
        cp "$ework/out-$set-$b/job.json" "$OUT/embed-$set-$b-job.json" 2>/dev/null
      done
    done
  } > "$OUT/embed.txt" 2>&1
  rc=$?
  stage "embed end to end" "$rc"
  grep -E '^\[corpus\]|^-- |image_per_s|^embed:|_s  |rror|Exception' "$OUT/embed.txt" | cut -c1-400 | head -40 | tee -a "$report"
  rm -rf "$ework"
else
  note "embed end to end: SKIPPED (budget or mode)"
fi

section "concurrent callers: Clip called directly against ClipBatcher (random ViT-B/32, fp16)"
# A GPU service's load: N threads each sending one-image (then one-text) requests, each waiting for
# its answer, through the Clip directly (each request its own batch, the requests taking turns) and
# through ClipBatcher (the requests queued meanwhile merged into one batch). Last: a product
# figure, not one of the issue's goals, so the first stage the budget cuts.
t=0; want callers && t="$(limit "${JCLIP_CALLERS_TIMEOUT:-90}")"
if [ "$t" -gt 0 ]; then
  vocab="$here/clip-reference/models/vit-b32-tiny/hf"
  callers_deadline=$(( $(date +%s) + t ))
  {
    # then two Clips on the GPU behind one batcher (two streams), one-image requests
    for run in image:1 text:1 image:2; do
      ckind="${run%:*}"; nclips="${run#*:}"
      l=$(( callers_deadline - $(date +%s) )); [ "$l" -lt 5 ] && break
      echo "-- $ckind requests, $nclips Clip(s)"
      JCLIP_REFERENCE="$here/clip-reference" timeout -k 5 "$l" "$java" "${jflags[@]}" -jar "$here/lib/jclip.jar" bench callers --random ViT-B/32 \
        --vocab "$vocab" --device cuda --precision fp16 --kind "$ckind" --clips "$nclips" --callers "${JCLIP_CALLERS:-1,16,64,256}" --seconds 2 \
        --warmup-seconds 1 --json
    done
  } > "$OUT/callers.txt" 2>&1
  rc=$?
  stage "concurrent callers" "$rc"
  grep -vE '^\{|WARNING' "$OUT/callers.txt" | cut -c1-300 | head -30 | tee -a "$report"
else
  note "concurrent callers: SKIPPED (budget or mode)"
fi

# an ahead-of-time cubin the loader did not use (CudaModule: then the driver JIT-compiled the PTX,
# ~20 s of device time for gemm_sm90, once per machine)
rejected="$(grep -h 'cubin not used' "$OUT"/*.txt 2>/dev/null | sort -u | head -5)"
[ -n "$rejected" ] && note "cubins not used: $rejected"

[ -n "$clock_pid" ] && kill "$clock_pid" 2> /dev/null
section "summary"
for s in "${summary[@]}"; do say "  $s"; done
say "done in $(( $(date +%s) - started )) s"
# The device tool brings back at most 8 files from $OUT: one archive of everything, named to sort first.
tar -C "$OUT" -czf /tmp/jclip-results.tar.gz . 2>/dev/null; mv /tmp/jclip-results.tar.gz "$OUT/0-results.tar.gz" || true

#!/usr/bin/env bash
# The peers of jclip's CPU benchmark (docs/peers.md): exports openai/CLIP's ViT-B/32 with random
# weights to ONNX once, then measures ONNX Runtime from Java (fp32) and PyTorch (fp32, bf16
# autocast) on the same inputs with the same thread count, and writes one JSON file with every figure.
#
# Usage: scripts/peers/run.sh [--batch 1,8,32] [--threads 2] [--out FILE] [--peers DIR]
#                             [--only ort|torch] [--spin] [--min-seconds S] [--min-reps N]
# Environment: PYTHON (default /usr/bin/python3, Debian's, which has python3-torch), JAVA_HOME.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
batch=1,8,32 threads=2 peers="$root/target/peers" out="" only="" spin="" min_seconds=3 min_reps=5
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --spin) spin=--spin; shift ;;
    --min-seconds) min_seconds="$2"; shift 2 ;;
    --min-reps) min_reps="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$only" in ""|ort|torch) ;; *) echo "run.sh: --only takes ort or torch, not $only" >&2; exit 2 ;; esac
out="${out:-$peers/peers-$(date -u +%Y%m%dT%H%M%SZ).json}"
python="${PYTHON:-/usr/bin/python3}"

die() { echo "run.sh: $*" >&2; exit 1; }
[ -x "$python" ] || command -v "$python" >/dev/null || die "no Python at $python (set PYTHON)"
"$python" -c 'import torch' 2>/dev/null \
  || die "$python cannot import torch: run scripts/peers/setup.sh (Debian's python3-torch 1.13 and OpenBLAS), or set PYTHON"
. "$root/scripts/find-java.sh"
jclip_find_java || exit 1
if ! ls /usr/lib/x86_64-linux-gnu/openblas*/libopenblas*.so* >/dev/null 2>&1 && [ "$only" != ort ]; then
  echo "run.sh: WARNING: no OpenBLAS found; Debian's PyTorch then runs fp32 GEMMs on the reference BLAS (~10x slower): scripts/peers/setup.sh installs it" >&2
fi

mkdir -p "$peers"
cd "$root"
# The prompts are tokenized by jclip itself, so the jar must exist (scripts/jclip builds it).
"$python" scripts/peers/export_onnx.py --out "$peers"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "$only" != torch ]; then
  echo "run.sh: building the ONNX Runtime harness (test classes) ..." >&2
  ./mvnw -q -B -DskipTests test-compile >&2 || die "test-compile failed (run ./mvnw test-compile to see why)"
  # Hadoop (test scope, for the Parquet tests) crashes the ONNX Runtime JVM when on its classpath: left out below.
  ./mvnw -q -B dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$tmp/cp" >&2 \
    || die "could not resolve the test classpath (ONNX Runtime comes from Maven Central)"
  echo "run.sh: ONNX Runtime peer ..." >&2
  "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -Xmx2g \
    -cp "target/classes:target/test-classes:$(tr ':' '\n' < "$tmp/cp" | grep -viE '/(hadoop|parquet)' | paste -sd:)" dev.jclip.peers.OrtPeerBench \
    --peers "$peers" --batch "$batch" --threads "$threads" --min-seconds "$min_seconds" --min-reps "$min_reps" \
    $spin --json "$tmp/ort.json"
fi
if [ "$only" != ort ]; then
  echo "run.sh: PyTorch peer ..." >&2
  "$python" scripts/peers/bench_torch.py --peers "$peers" --batch "$batch" --threads "$threads" \
    --min-seconds "$min_seconds" --min-reps "$min_reps" $spin --json "$tmp/torch.json"
fi

"$python" - "$tmp" "$out" "$peers" <<'PY'
import json, os, platform, subprocess, sys, time
tmp, out, peers = sys.argv[1:4]
def load(name):
    p = os.path.join(tmp, name)
    return json.load(open(p)) if os.path.isfile(p) else None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "machine": {"cpu": cpu, "cores": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                      "isa": [f for f in flags if f.startswith(("avx512", "amx", "avx2"))]},
          "export": json.load(open(os.path.join(peers, "export.json"))),
          "onnxruntime": load("ort.json"), "pytorch": load("torch.json")}
json.dump(report, open(out, "w"), indent=1)
print(f"run.sh: wrote {out}", file=sys.stderr)
PY

#!/usr/bin/env bash
# Files a GPU run's results here, after the device tool has brought back $OUT:
#
#   scripts/gpu-results.sh DIR RUN     DIR: the folder with 0-results.tar.gz (the tool's files_at);
#                                      RUN: this run's number in docs/gpu.md (8, 9, ...)
#
# Unpacks 0-results.tar.gz into /tmp/jclip-run<RUN>, copies what docs/gpu-runs keeps of a run
# (report.txt, bench-model.txt, bench-model-resumed.txt, bench-gemm.txt, jclip-model.json, peer.json, ncu.txt, torch16.*, and the
# JUnit log of every test class that failed or timed out, and the clocks' summary) to docs/gpu-runs/<date>-<card>-run<RUN>-*,
# with the date and card read from report.txt, then prints the summary of report.txt, the tuned
# rows' configuration, gpu-compare.py's tables (the goals among them) and the card's clocks and
# power by stage (gpu-clocks.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 2 ] || { echo "usage: scripts/gpu-results.sh DIR RUN" >&2; exit 2; }
dir="$1" run="$2"
case "$run" in '' | *[!0-9]*) echo "gpu-results: RUN must be a number, not '$run'" >&2; exit 2 ;; esac
tarball="$dir/0-results.tar.gz"
[ -f "$tarball" ] || { echo "gpu-results: no $tarball (the device tool's files_at folder has it)" >&2; exit 1; }
work="/tmp/jclip-run$run"
rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xzf "$tarball"
report="$work/report.txt"
[ -f "$report" ] || { echo "gpu-results: $tarball holds no report.txt" >&2; exit 1; }

day="$(sed -n 's/^date: \([0-9-]*\)T.*/\1/p' "$report" | head -1)"
card="$(sed -n 's/^gpu: NVIDIA \([A-Za-z0-9]*\).*/\1/p' "$report" | head -1 | tr 'A-Z' 'a-z')"
[ -n "$day" ] || day="$(date -u +%F)"
[ -n "$card" ] || card="gpu"
prefix="$root/docs/gpu-runs/$day-$card-run$run"
if ls "$prefix"-* > /dev/null 2>&1; then echo "gpu-results: $prefix-* exist already; not overwriting" >&2; exit 1; fi

copied=()
for f in report.txt bench-model.txt bench-model-resumed.txt bench-gemm.txt jclip-model.json peer.json ncu.txt torch16.txt torch16.json; do
  if [ -s "$work/$f" ]; then cp "$work/$f" "$prefix-$f"; copied+=("$prefix-$f"); fi
done
# the JUnit logs of the classes the summary does not call ok
for cls in $(sed -n 's/^  \(Cuda[A-Za-z0-9]*Test\) ([0-9]* s): \(.*\)$/\1 \2/p' "$report" | awk '$2 != "ok" {print $1}'); do
  if [ -s "$work/junit-$cls.txt" ]; then cp "$work/junit-$cls.txt" "$prefix-junit-$cls.txt"; copied+=("$prefix-junit-$cls.txt"); fi
  # a class that hung ran again without the hung tests (run.sh): those logs too
  for again in "$work/junit-$cls-rerun"*.txt; do
    [ -s "$again" ] || continue
    cp "$again" "$prefix-${again##*/}"; copied+=("$prefix-${again##*/}")
  done
done

echo "== run $run: $card, $day; unpacked in $work; copied:"
for f in "${copied[@]}"; do echo "  ${f#$root/}"; done
echo
echo "== summary (report.txt)"
sed -n '/^== summary/,$p' "$report"
if [ -s "$work/jclip-model.json" ]; then
  echo
  echo "== the model benchmark's kernel choices and tuned rows"
  python3 - "$work/jclip-model.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("defaults:", j.get("kernel_choices", "(not recorded)"))
print("tuned rows:", j.get("tuned_config", "(not recorded)"))
print("tuned-text rows:", j.get("tuned_text_config", "(not recorded)"))
for p in j.get("profile", []):
    if "error" in p:
        print("profile error:", p.get("tower"), p["error"][:160])
PY
  if [ -s "$work/peer.json" ]; then
    echo
    gemm=()
    [ -s "$work/bench-gemm.txt" ] && gemm=("$work/bench-gemm.txt")
    python3 "$root/scripts/gpu-compare.py" "$work/jclip-model.json" "$work/peer.json" "${gemm[@]}"
  fi
fi
if { [ ! -s "$work/jclip-model.json" ] || [ ! -s "$work/peer.json" ]; } && [ -s "$work/bench-gemm.txt" ]; then
  echo
  echo "== the GEMM and attention kernels (bench-gemm.txt; no peer to compare the towers with)"
  python3 "$root/scripts/gpu-compare.py" --kernels "$work/bench-gemm.txt"
fi
if [ -s "$work/bench-gemm.txt" ] && grep -q '^\[search\].*: heuristic' "$work/bench-gemm.txt"; then
  echo
  echo "== cuBLASLt: the heuristic's first, tuned, and searched (bench-gemm.txt, gemmTune=search)"
  grep '^\[search\].*: heuristic' "$work/bench-gemm.txt"
fi
if [ -s "$work/gpu-clocks.csv" ]; then
  echo
  echo "== clocks and power by stage (gpu-clocks.csv, every 100 ms)"
  python3 "$root/scripts/gpu-clocks.py" "$report" "$work/gpu-clocks.csv" | tee "$prefix-clocks.txt"
  echo "(kept as ${prefix#$root/}-clocks.txt; the samples themselves stay in $work)"
fi
if [ -s "$work/torch16.txt" ]; then
  echo
  echo "== the reference models in PyTorch's own 16 bits (torch16.txt)"
  grep -vE 'Warning|warn\(' "$work/torch16.txt" | tail -12
fi

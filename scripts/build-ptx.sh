#!/usr/bin/env bash
# Compiles cuda-kernels/*.cu to PTX under src/main/resources/ptx/, each stamped with the SHA-256 of
# its source (the .cu followed by cuda-kernels/common.cuh), so a stale PTX is caught without a GPU.
#
#   scripts/build-ptx.sh          rebuild every PTX file
#   scripts/build-ptx.sh --check  verify stamps, recompile and compare (when nvcc is present), and
#                                 run ptxas -arch=sm_90 on every committed PTX (when ptxas is present;
#                                 sm_90a for sources whose "// jclip-ptx-arch:" line names sm_90a)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/cuda-kernels"
dst="$root/src/main/resources/ptx"
ARCH="${JCLIP_PTX_ARCH:-compute_80}"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
PTXAS="${PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}"

source_hash() { cat "$1" "$src/common.cuh" | sha256sum | cut -d' ' -f1; }

# The PTX target of a source: $ARCH, unless the source names its own in a "// jclip-ptx-arch: X"
# line (gemm_sm90.cu: sm_90a, for wgmma and TMA).
arch_of() { sed -n 's|^// jclip-ptx-arch: *\([a-z0-9_]*\).*|\1|p' "$1" | head -1 | grep . || echo "$ARCH"; }

# The ptxas target that checks a PTX file: sm_90, or sm_90a for PTX written for it.
ptxas_arch_of() { case "$(arch_of "$1")" in sm_90a) echo sm_90a ;; *) echo sm_90 ;; esac; }

compile() { # compile SRC.cu OUT.ptx
  local cu="$1" out="$2" tmp
  tmp="$(mktemp)"
  "$NVCC" -ptx -arch="$(arch_of "$cu")" -O3 -std=c++17 -I"$src" -o "$tmp" "$cu"
  { echo "// jclip-source-sha256: $(source_hash "$cu")"; echo "// jclip-source: cuda-kernels/$(basename "$cu")"; cat "$tmp"; } > "$out"
  rm -f "$tmp"
}

if [ "${1:-}" = "--check" ]; then
  status=0
  for cu in "$src"/*.cu; do
    name="$(basename "$cu" .cu)"; ptx="$dst/$name.ptx"
    if [ ! -f "$ptx" ]; then echo "MISSING $ptx (run scripts/build-ptx.sh)"; status=1; continue; fi
    want="$(source_hash "$cu")"; have="$(sed -n 's|^// jclip-source-sha256: ||p' "$ptx" | head -1)"
    if [ "$want" != "$have" ]; then echo "STALE   $ptx: source hash $want, stamped $have (run scripts/build-ptx.sh)"; status=1; continue; fi
    if [ -x "$NVCC" ]; then
      fresh="$(mktemp)"; compile "$cu" "$fresh"
      if ! cmp -s "$fresh" "$ptx"; then echo "DIFFERS $ptx: recompiling $cu gives other PTX"; status=1; fi
      rm -f "$fresh"
    fi
    if [ -x "$PTXAS" ]; then
      target="$(ptxas_arch_of "$cu")"
      if ! log="$("$PTXAS" -arch="$target" -v -o /dev/null "$ptx" 2>&1)"; then echo "PTXAS   $ptx rejected:"; echo "$log"; status=1; continue; fi
      spills="$(echo "$log" | grep -Eo '[0-9]+ bytes spill stores' | awk '{s+=$1} END {print s+0}')"
      echo "OK      $name.ptx (ptxas $target: $(echo "$log" | grep -c 'Used') kernels, $spills bytes spilled)"
    else
      echo "OK      $name.ptx (stamp only: ptxas not found)"
    fi
  done
  for ptx in "$dst"/*.ptx; do
    [ -f "$src/$(basename "$ptx" .ptx).cu" ] || { echo "ORPHAN  $ptx has no source"; status=1; }
  done
  exit $status
fi

mkdir -p "$dst"
for cu in "$src"/*.cu; do
  name="$(basename "$cu" .cu)"
  compile "$cu" "$dst/$name.ptx"
  echo "built $dst/$name.ptx"
done

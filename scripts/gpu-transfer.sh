#!/usr/bin/env bash
# The device tool sends the checkout's tracked (and untracked, not ignored) files along with the
# carried bundle, 64 MiB in all. The committed PTX (src/main/resources/ptx, ~17 MB) already travels
# inside the bundle's jar; tracked as well, it takes the total over the limit (75 MB in session 13).
#
#   scripts/gpu-transfer.sh size    MB that would travel: the tree's files plus target/gpu-bundle
#   scripts/gpu-transfer.sh start   on a clean tree: branch gpu-transfer at HEAD with the PTX
#                                   untracked (still on disk, ignored), for the device calls
#   scripts/gpu-transfer.sh end     back to the branch it started from; gpu-transfer deleted, the
#                                   PTX tracked again (unchanged on disk)
#
# Commit before `start`; make no commits on gpu-transfer (`end` deletes it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
branch=gpu-transfer
marker="# gpu-transfer.sh: the PTX travels in the bundle's jar"
exclude="$(git rev-parse --git-path info/exclude)"
from_file="$(git rev-parse --git-path gpu-transfer-from)"
limit=$((64 * 1024 * 1024))

tree_bytes() {
  # tracked files, and untracked ones git does not ignore, that exist on disk
  git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# A local run of the bundle's run.sh unpacks models.tar.xz inside the bundle (~59 MB more, over
# the limit): such a bundle is rebuilt before it travels.
bundle_fresh() {
  if [ -e target/gpu-bundle/clip-reference/.models-unpacked ]; then
    echo "gpu-transfer: target/gpu-bundle was run here (its reference models are unpacked, ~59 MB more): rebuild it, scripts/gpu-bundle.sh" >&2
    exit 1
  fi
}

case "${1:-}" in
  size)
    bundle_fresh
    tree=$(tree_bytes)
    bundle=$( [ -d target/gpu-bundle ] && du -sb target/gpu-bundle | cut -f1 || echo 0)
    total=$((tree + bundle))
    awk -v t="$tree" -v b="$bundle" -v l="$limit" 'BEGIN {
      printf "gpu-transfer: tree %.1f MB + bundle %.1f MB = %.1f MB of the %.1f MB the device tool takes\n", t / 1048576, b / 1048576, (t + b) / 1048576, l / 1048576
    }' 
    if [ "$total" -gt "$limit" ]; then
      echo "gpu-transfer: over the limit: run scripts/gpu-transfer.sh start before the device calls, end after" >&2
      exit 1
    fi
    ;;
  start)
    bundle_fresh
    if git show-ref --verify --quiet "refs/heads/$branch"; then
      echo "gpu-transfer: branch $branch exists already: scripts/gpu-transfer.sh end first" >&2
      exit 1
    fi
    if ! git diff --quiet HEAD --; then
      echo "gpu-transfer: the tree has uncommitted changes to tracked files: commit them first" >&2
      exit 1
    fi
    git rev-parse --abbrev-ref HEAD > "$from_file"
    git checkout -q -b "$branch"
    printf '%s\n/src/main/resources/ptx/*.ptx\n' "$marker" >> "$exclude"
    git rm -q --cached -- 'src/main/resources/ptx/*.ptx'
    git commit -q -m "gpu-transfer: the PTX untracked while the device tool sends the tree (temporary branch)"
    echo "gpu-transfer: on $branch (from $(cat "$from_file")); PTX untracked" >&2
    "$0" size
    ;;
  end)
    if [ "$(git rev-parse --abbrev-ref HEAD)" != "$branch" ]; then
      echo "gpu-transfer: not on $branch" >&2
      exit 1
    fi
    from="$(cat "$from_file" 2>/dev/null || echo main)"
    # the PTX is ignored here, so checking out the branch that tracks it rewrites it in place
    git checkout -q "$from"
    git branch -q -D "$branch"
    tmp="$(mktemp)"
    grep -v -x -F -e "$marker" -e '/src/main/resources/ptx/*.ptx' "$exclude" > "$tmp" || true
    cat "$tmp" > "$exclude"
    rm -f "$tmp" "$from_file"
    if ! git diff --quiet HEAD -- src/main/resources/ptx; then
      echo "gpu-transfer: the PTX differs from $from's: rebuild it (scripts/build-ptx.sh) or check it" >&2
      exit 1
    fi
    echo "gpu-transfer: back on $from" >&2
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Builds target/gpu-bundle/: what the lent GPU machine needs to run jclip's CUDA tests and GPU
# benchmark. That machine has the NVIDIA driver, the CUDA 13 toolkit and Python/PyTorch, but no
# Java, no Maven and no network, so the bundle carries a jlink'd Java 25 runtime (xz-packed),
# the jclip jar, the test classes with the JUnit console launcher, the reference data the GPU
# tests read, and run.sh. Limit: 60 MB.
#
#   scripts/gpu-bundle.sh           build the bundle
#   target/gpu-bundle/run.sh        (on the GPU machine) run it; results go to $OUT
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/gpu-bundle"
cache="$root/target/gpu-bundle-cache"
ref="${JCLIP_REFERENCE:-$root/../shared/clip-reference}"
limit_mb=60

. "$root/scripts/find-java.sh"
jclip_find_java

cd "$root"
echo "gpu-bundle: building jar and test classes" >&2
./mvnw -q -B -DskipTests package test-compile
junit_version="$(sed -n 's|.*<junit.version>\(.*\)</junit.version>.*|\1|p' pom.xml)"
console_version="1${junit_version#5}" # JUnit Jupiter 5.x.y ships with Platform 1.x.y
./mvnw -q -B dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$console_version" \
  -DoutputDirectory="$cache" >&2

rm -rf "$out"; mkdir -p "$out/lib" "$cache"
jre_version="$("$JAVA_HOME/bin/java" -version 2>&1 | head -1 | tr -dc '0-9.')"
# The runtime's modules: those the tests and the JUnit launcher use, and whatever jdeps finds the
# jar needs (run 3's runtime lacked java.net.http, which Clip.load links, and every embed failed).
modules="$( (echo java.base,java.desktop,java.logging,java.management,java.naming,java.sql,java.xml,jdk.unsupported,jdk.incubator.vector,jdk.zipfs
  "$JAVA_HOME/bin/jdeps" --print-module-deps --ignore-missing-deps --multi-release 25 target/jclip.jar) | tr ',' '\n' | sort -u | paste -sd, -)"
jre_pack="$cache/jre-$jre_version-$(echo "$modules" | sha256sum | cut -c1-8).tar.xz"
if [ ! -f "$jre_pack" ]; then
  echo "gpu-bundle: jlink $modules (once per JDK version)" >&2
  rm -rf "$cache/jre"
  "$JAVA_HOME/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages --compress zip-0 \
    --output "$cache/jre" 2>/dev/null
  tar -C "$cache/jre" -cf - . | xz -T0 -6 > "$jre_pack.tmp" && mv "$jre_pack.tmp" "$jre_pack"
  rm -rf "$cache/jre"
fi
cp "$jre_pack" "$out/jre.tar.xz"
# The kernels compiled ahead of time for the lent GPUs (H100/H200: compute capability 9.0), so
# that the GPU machine's driver need not JIT-compile the PTX (gemm_sm90's 12 MB take ~20 s of
# device time on each fresh machine): ptxas on each committed PTX (sm_90a for the sm_90a PTX),
# cached by the PTX's hash; each cubin goes into the bundled jar as ptx/<name>.cc90.cubin with
# the SHA-256 of its PTX beside it (CudaModule loads it only if that matches, else the PTX).
cubins="$cache/cubin-jar"
rm -rf "$cubins" && mkdir -p "$cubins/ptx"
PTXAS="${PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}"
if [ -x "$PTXAS" ]; then
  for ptx in src/main/resources/ptx/*.ptx; do
    name="$(basename "$ptx" .ptx)"
    arch=sm_90; grep -q '^\.target sm_90a' "$ptx" && arch=sm_90a
    sha="$(sha256sum "$ptx" | cut -d' ' -f1)"
    cached="$cache/cubin/$sha.$arch.cubin"
    if [ ! -f "$cached" ]; then
      mkdir -p "$cache/cubin"
      echo "gpu-bundle: ptxas -arch=$arch $name.ptx (once per PTX)" >&2
      if "$PTXAS" -arch="$arch" -O3 "$ptx" -o "$cached.tmp"; then
        mv "$cached.tmp" "$cached"
      else
        rm -f "$cached.tmp"
        echo "gpu-bundle: ptxas failed on $name.ptx: the GPU machine will JIT-compile it" >&2
        continue
      fi
    fi
    cp "$cached" "$cubins/ptx/$name.cc90.cubin"
    echo "$sha" > "$cubins/ptx/$name.cc90.cubin.sha256"
  done
else
  echo "gpu-bundle: no ptxas here: the GPU machine will JIT-compile the PTX" >&2
fi

# The GPU machine needs no CPU GEMM libraries: leave their natives out of the bundled jar (size).
# Of the CUDA preset's JNI libraries, only those of the presets jclip calls: the driver API and
# runtime (cudart) and cuBLAS/cuBLASLt (cublas). The others (NPP, cuSOLVER, cuDNN, nvJPEG, ...: ~4 MB
# packed) are never loaded. CudaBundleJniTest fails the build when the code starts using another
# preset without it being added here. JNI_KEEP is read by that test: one line, names only.
JNI_KEEP="libjnicudart.so libjnicublas.so"
python3 - target/jclip.jar "$out/lib/jclip.jar" "$cubins" "$JNI_KEEP" <<'PY'
import os, sys, zipfile
skip = ("org/bytedeco/openblas/linux-x86_64/", "org/bytedeco/dnnl/linux-x86_64/")
cuda_jni, jni_keep = "org/bytedeco/cuda/linux-x86_64/", set(sys.argv[4].split())
# The Parquet codecs' natives (zstd-jni, snappy-java, lz4-java) for every other platform too.
native = (".so", ".dll", ".dylib", ".a", ".jnilib")
keep = ("linux/amd64/", "org/xerial/snappy/native/Linux/x86_64/", "net/jpountz/util/linux/amd64/")
def wanted(name):
    if name.startswith(skip):
        return False
    if name.startswith(cuda_jni) and name.endswith(native):
        return name[len(cuda_jni):] in jni_keep
    return not name.endswith(native) or name.startswith(keep) or name.startswith("org/bytedeco/")
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if wanted(item.filename):
            dst.writestr(item, src.read(item.filename))
    for f in sorted(os.listdir(os.path.join(sys.argv[3], "ptx"))):  # the ahead-of-time cubins and their stamps
        dst.write(os.path.join(sys.argv[3], "ptx", f), "ptx/" + f)
# each stamp must name the PTX in the same jar (CudaModule ignores a cubin whose stamp does not)
import hashlib
with zipfile.ZipFile(sys.argv[2]) as jar:
    missing = [n for n in jni_keep if cuda_jni + n not in jar.namelist()]
    if missing:
        sys.exit(f"gpu-bundle: the CUDA preset's {', '.join(missing)} is not in the jar")
    for f in jar.namelist():
        if f.endswith(".cubin.sha256"):
            ptx = f.split(".cc")[0] + ".ptx"
            if jar.read(f).decode().strip() != hashlib.sha256(jar.read(ptx)).hexdigest():
                sys.exit(f"gpu-bundle: {f} does not match {ptx}")
PY
(cd target/test-classes && "$JAVA_HOME/bin/jar" --create --file "$out/lib/jclip-tests.jar" .)
cp "$cache/junit-platform-console-standalone-$console_version.jar" "$out/lib/junit-console.jar"
cp scripts/gpu-run.sh "$out/run.sh"
cp scripts/gpu-peer.py "$out/peer.py"
cp scripts/torch-16bit.py "$out/torch-16bit.py"
cp scripts/peers/clip_vit.py "$out/clip_vit.py" # torch-16bit.py's ViT blocks
# libjpeg-turbo's TurboJPEG library (needs only libc, glibc 2.14): used on the GPU machine only when
# it has none of its own, so that embed's decoding there is the fast, Pillow-exact one.
turbo="$(ldconfig -p 2>/dev/null | grep -m1 '[[:space:]]libturbojpeg\.so\.0 ' | awk '{print $NF}' || true)"
if [ -n "$turbo" ]; then
  mkdir -p "$out/native" && cp "$(readlink -f "$turbo")" "$out/native/libturbojpeg.so.0"
else
  echo "gpu-bundle: no libturbojpeg.so.0 here (apt install libturbojpeg0): the GPU machine decodes JPEGs with the Java path unless it has one" >&2
fi
chmod +x "$out/run.sh"

# Smoke test of the bundled runtime here, on the CPU: the commands the GPU run calls must find every
# class they link (a module missing from the jlink'd runtime only shows when a command runs). With
# the full jar: the bundle's leaves out the CPU GEMM libraries.
smoke="$(mktemp -d)"
trap 'rm -rf "$smoke"' EXIT
mkdir -p "$smoke/jre" "$smoke/images"
tar -C "$smoke/jre" -xJf "$out/jre.tar.xz"
cp "$ref/images/CLIP.png" "$ref/images/FreshFlower.jpg" "$smoke/images/"
if ! "$smoke/jre/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -jar target/jclip.jar embed \
    --model "$ref/models/vit-b32-tiny/state_dict.pt" --vocab "$ref/bpe_simple_vocab_16e6.txt.gz" --input "$smoke/images" --output "$smoke/out" --device cpu --batch-size 2 \
    --progress none > "$smoke/log" 2>&1 || ! grep -q '2 embedded' "$smoke/log"; then
  cat "$smoke/log" >&2
  echo "gpu-bundle: the bundled runtime failed the embed smoke test (above)" >&2
  exit 1
fi
echo "gpu-bundle: the bundled runtime runs embed (2 images, CPU)" >&2

# Reference data read by the GPU tests and the peer benchmark (scripts/gpu-bundle.files lists it).
mkdir -p "$out/clip-reference"
while read -r f; do
  case "$f" in ''|'#'*) continue ;; esac
  [ -e "$ref/$f" ] || { echo "gpu-bundle: reference file $ref/$f is missing" >&2; exit 1; }
  mkdir -p "$out/clip-reference/$(dirname "$f")"
  cp "$ref/$f" "$out/clip-reference/$f"
done < "$root/scripts/gpu-bundle.files"
# The reference models, repacked by dev.jclip.testing.BundleModels (unused token rows zeroed) and
# xz-packed: run.sh unpacks them into clip-reference/models.
echo "gpu-bundle: packing reference models" >&2
./mvnw -q -B dependency:build-classpath -Dmdep.outputFile="$cache/test-classpath.txt" -Dmdep.includeScope=test >&2
rm -rf "$cache/models"
"$JAVA_HOME/bin/java" -cp "target/test-classes:target/classes:$(cat "$cache/test-classpath.txt")" dev.jclip.testing.BundleModels \
  "$ref" "$cache/models/clip-reference" >&2
tar -C "$cache/models" -cf - clip-reference | xz -T0 -6 > "$out/models.tar.xz"
# The nine OpenAI models at full geometry: random weights and inputs from a fresh seed, and their
# features on this machine's CPU backend (oneDNN, which the bundle leaves out), for
# CudaAllModelsTest; the GPU machine makes the weights and inputs again from the seed (~90 s here).
echo "gpu-bundle: the nine models' CPU features (dev.jclip.testing.AllModelsFeatures)" >&2
"$JAVA_HOME/bin/java" -Xmx12g --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -cp "target/test-classes:target/classes:$(cat "$cache/test-classpath.txt")" dev.jclip.testing.AllModelsFeatures "$out/all-models.json" \
  2> >(grep -v '^WARNING' >&2)
git -C "$root" rev-parse HEAD > "$out/COMMIT" 2>/dev/null || echo unknown > "$out/COMMIT"
git -C "$root" status --porcelain | grep -q . && echo "+uncommitted" >> "$out/COMMIT" || true

size_kb="$(du -sk "$out" | cut -f1)"
echo "gpu-bundle: $out is $((size_kb / 1024)) MB" >&2
if [ "$size_kb" -gt $((limit_mb * 1024)) ]; then echo "gpu-bundle: over the ${limit_mb} MB limit" >&2; exit 1; fi
# what the device tool would send with it (the checkout's files too): over 64 MiB, the PTX must
# be untracked for the device calls (scripts/gpu-transfer.sh start / end)
"$root/scripts/gpu-transfer.sh" size || true

# jclip on an NVIDIA GPU:  docker build -t jclip . && docker run --gpus all jclip gpu-info --self-test
# Build stage: the jar (Maven wrapper, pinned) and a jlink'd Java 25 runtime.
FROM eclipse-temurin:25-jdk AS build
WORKDIR /src
COPY .mvn/ .mvn/
COPY mvnw pom.xml ./
RUN ./mvnw -B -q dependency:go-offline
COPY src/ src/
COPY weights/ weights/
# The runtime's modules: a fixed list (DockerfileModulesTest checks that it holds every module jclip's
# own classes use) plus whatever jdeps finds the jar's dependencies need.
RUN ./mvnw -B -q -DskipTests package \
 && modules="$( (echo java.base,java.desktop,java.logging,java.management,java.naming,java.net.http,java.sql,java.xml,jdk.unsupported,jdk.incubator.vector,jdk.zipfs; \
      jdeps --print-module-deps --ignore-missing-deps --multi-release 25 target/jclip.jar) | tr ',' '\n' | sort -u | paste -sd, -)" \
 && echo "jlink: $modules" \
 && jlink --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --output /opt/jre

# Runtime: CUDA 13 runtime libraries (cudart, cuBLAS) from NVIDIA's image; the driver comes from the host.
# libwebp and libturbojpeg: Pillow's WebP and JPEG codecs, for Pillow-exact and fast decoding (Ubuntu
# names the TurboJPEG package libturbojpeg, Debian libturbojpeg0); libdeflate: fast PNG inflating.
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04
RUN apt-get update \
 && apt-get install -y --no-install-recommends libwebp7 libdeflate0 \
 && (apt-get install -y --no-install-recommends libturbojpeg || apt-get install -y --no-install-recommends libturbojpeg0) \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/jre /opt/jre
COPY --from=build /src/target/jclip.jar /opt/jclip/jclip.jar
ENV PATH=/opt/jre/bin:$PATH
WORKDIR /data
ENTRYPOINT ["java", "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector", "-jar", "/opt/jclip/jclip.jar"]
CMD ["--help"]

# Sourced by the scripts: sets and exports JAVA_HOME to a JDK 25 or newer, or fails with what to install.
# Looks at $JAVA_HOME, then /usr/lib/jvm/temurin-25-jdk-amd64, then any /usr/lib/jvm/*25* JDK.
jclip_find_java() {
  local cand
  for cand in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*-25-* /usr/lib/jvm/*25*; do
    [ -n "$cand" ] && [ -x "$cand/bin/java" ] && [ -x "$cand/bin/javac" ] || continue
    if "$cand/bin/java" -version 2>&1 | head -1 | grep -Eq 'version "(2[5-9]|[3-9][0-9])'; then
      JAVA_HOME="$cand"; export JAVA_HOME; return 0
    fi
  done
  echo "jclip: needs a JDK 25 (set JAVA_HOME to it, or install one, e.g. 'apt-get install temurin-25-jdk' from Adoptium's repository, into /usr/lib/jvm/temurin-25-jdk-amd64)" >&2
  return 1
}

#!/usr/bin/env bash
# Fetch the Kafka applications the compaction tests run on shoal (issue 15) from Maven Central:
# - Kafka Streams 4.4 (kafka-streams and its runtime dependencies, RocksDB included) into
#   ${APPS_HOME}/streams, for the word-count program under tests/peers/java;
# - connect-mirror and connect-mirror-client (MirrorSourceConnector, MirrorMaker 2) as a Connect
#   plugin directory ${APPS_HOME}/connect-plugins/connect-mirror: the jars alone, since the worker
#   (connect-runtime 4.4, which kafka.sh's kafka-tools brings) provides the rest. 4.1.0 because
#   Maven Central does not serve connect-mirror 4.4.0 here (nor connect-file 4.4.0).
# Idempotent, cached (never in the repo); exits non-zero with the reason when it cannot.
set -euo pipefail

STREAMS_VERSION="${STREAMS_VERSION:-4.4.0}"
MIRROR_VERSION="${MIRROR_VERSION:-4.1.0}"
APPS_HOME="${SHOAL_KAFKA_APPS_HOME:-${HOME}/.cache/shoal/kafka-apps}"
DONE="${APPS_HOME}/.complete-streams-${STREAMS_VERSION}-mirror-${MIRROR_VERSION}-2"

for tool in java javac mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "kafka_apps.sh: '$tool' is missing (the Streams and Connect tests need a JDK 17+ and Maven)" >&2
        exit 1
    fi
done

fetch() {  # fetch NAME DEST EXTRA_MVN_ARGS... with the pom on stdin
    local name="$1" dest="$2"
    shift 2
    mkdir -p "${APPS_HOME}/${name}-pom"
    cat >"${APPS_HOME}/${name}-pom/pom.xml"
    rm -rf "$dest"
    mkdir -p "$dest"
    if ! mvn -q -B -f "${APPS_HOME}/${name}-pom/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$dest" "$@"; then
        echo "kafka_apps.sh: Maven could not fetch ${name}" >&2
        exit 1
    fi
}

if [ ! -f "$DONE" ]; then
    echo "kafka_apps.sh: fetching kafka-streams ${STREAMS_VERSION} and connect-mirror ${MIRROR_VERSION} into ${APPS_HOME}"
    fetch streams "${APPS_HOME}/streams" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shoal.peers</groupId>
  <artifactId>kafka-streams-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-streams</artifactId>
      <version>${STREAMS_VERSION}</version>
    </dependency>
  </dependencies>
</project>
POM
    fetch mirror "${APPS_HOME}/connect-plugins/connect-mirror" -DexcludeTransitive=true <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shoal.peers</groupId>
  <artifactId>connect-mirror-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>connect-mirror</artifactId>
      <version>${MIRROR_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>connect-mirror-client</artifactId>
      <version>${MIRROR_VERSION}</version>
    </dependency>
    <!-- packaged with the plugin, as a connector built for an older Kafka ships its client:
         connect-mirror 4.1 calls org.apache.kafka.common.utils.AppInfoParser, which kafka-clients
         4.4 moved to ...utils.internals. Connect's plugin class loader takes org.apache.kafka
         classes from the worker first and only falls back to the plugin's jars for what the
         worker lacks, so this jar only fills those gaps. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-clients</artifactId>
      <version>${MIRROR_VERSION}</version>
    </dependency>
  </dependencies>
</project>
POM
    touch "$DONE"
fi

for jar in "kafka-streams-${STREAMS_VERSION}.jar" ; do
    [ -f "${APPS_HOME}/streams/${jar}" ] || { echo "kafka_apps.sh: ${jar} missing from ${APPS_HOME}/streams" >&2; exit 1; }
done
[ -f "${APPS_HOME}/connect-plugins/connect-mirror/connect-mirror-${MIRROR_VERSION}.jar" ] \
    || { echo "kafka_apps.sh: connect-mirror-${MIRROR_VERSION}.jar missing" >&2; exit 1; }
echo "kafka_apps.sh: Kafka Streams ${STREAMS_VERSION} and connect-mirror ${MIRROR_VERSION} in ${APPS_HOME} ($(du -sh "$APPS_HOME" | cut -f1))"

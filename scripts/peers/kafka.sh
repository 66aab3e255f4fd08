#!/usr/bin/env bash
# Fetch Apache Kafka (broker kafka_2.13 + CLI tools kafka-tools, runtime dependencies only) from
# Maven Central into a cache directory, then check the broker's main class runs.
# Idempotent: when the cache holds a complete set of jars it does nothing but the check.
# Exits non-zero, with the reason, when Kafka cannot be provided, so CI fails instead of skipping.
# The jars land in ${SHOAL_KAFKA_HOME:-~/.cache/shoal/kafka-$KAFKA_VERSION}/libs (never in the repo);
# tests/peers/kafka_peer.py finds them there.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_HOME="${SHOAL_KAFKA_HOME:-${HOME}/.cache/shoal/kafka-${KAFKA_VERSION}}"
LIBS="${KAFKA_HOME}/libs"
DONE="${KAFKA_HOME}/.complete"

for tool in java mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "kafka.sh: '$tool' is missing (Apache Kafka needs Java 17+ and Maven to fetch it)" >&2
        exit 1
    fi
done

if [ ! -f "$DONE" ]; then
    echo "kafka.sh: fetching Apache Kafka ${KAFKA_VERSION} jars into ${LIBS}"
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    cat >"${KAFKA_HOME}/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shoal.peers</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <!-- the log4j2 backend Kafka's scripts put on the classpath, so the broker logs somewhere -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
POM
    if ! mvn -q -B -f "${KAFKA_HOME}/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS"; then
        echo "kafka.sh: Maven could not fetch org.apache.kafka:kafka_2.13/kafka-tools:${KAFKA_VERSION}" >&2
        exit 1
    fi
    touch "$DONE"
fi

if ! version=$(java -cp "${LIBS}/*" kafka.Kafka --version 2>&1); then
    echo "kafka.sh: Kafka jars are in ${LIBS} but 'kafka.Kafka --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "kafka.sh: Apache Kafka $(echo "$version" | tail -n 1) in ${LIBS} ($(du -sh "$LIBS" | cut -f1))"

# Apache Kafka from Maven Central: installed once into a cache folder, started by scripts/kafka.
# Sourced by scripts/lib/setup.sh; needs its log().
#
# Layout of the cache ($KAFKA_HOME):
#   libs/     the broker's, the KRaft storage tool's and the command-line tools' jars (Maven)
#   ext/      eventhubs-plain.jar: SASL PLAIN checked the way Event Hubs checks it
#   config/   log4j2 configurations (broker: a file in its state folder; tools: stderr)
#   bin/      kafka-server-start.sh, kafka-storage.sh, kafka-console-consumer.sh,
#             kafka-console-producer.sh, kafka-consumer-groups.sh, kafka-topics.sh,
#             kafka-configs.sh: the distribution's script names, for people and for tests
#   .stamp    what was installed (version and a hash of the recipe); a mismatch reinstalls

KAFKA_VERSION=4.3.1
KAFKA_HOME=${KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/eventhubs-kafka/kafka-$KAFKA_VERSION}
_kafka_recipe_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka"

_apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "${_apt_updated:-}" ]; then
        $sudo apt-get update -qq
        _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Java 17 from Debian. The JDK (not only the JRE) because the Event Hubs PLAIN handler is
# compiled here; Debian's default-jdk-headless brings default-jre-headless with it.
ensure_java() {
    if command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1; then
        return
    fi
    log "installing Java from Debian (default-jdk-headless)"
    _apt_install default-jdk-headless
}

ensure_maven() {
    command -v mvn >/dev/null 2>&1 && return
    log "installing Maven from Debian"
    _apt_install maven
}

_kafka_stamp() {
    cat "$_kafka_recipe_dir"/pom.xml "$_kafka_recipe_dir"/*.java "$_kafka_recipe_dir"/*.xml \
        "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16
}

# Resolve Kafka's jars with Maven (local repository ~/.m2, Maven Central only) when the cache
# is missing or was made from another recipe.
ensure_kafka() {
    ensure_java
    local stamp
    stamp="$KAFKA_VERSION $(_kafka_stamp)"
    if [ -f "$KAFKA_HOME/.stamp" ] && [ "$(cat "$KAFKA_HOME/.stamp")" = "$stamp" ]; then
        return
    fi
    ensure_maven
    log "installing Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME"
    local tmp="$KAFKA_HOME.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"/{libs,ext,config,bin,classes}
    if ! mvn -B -q -f "$_kafka_recipe_dir/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/maven.log" 2>&1; then
        cat "$tmp/maven.log" >&2
        log "Maven could not resolve Apache Kafka $KAFKA_VERSION (see above)"
        return 1
    fi
    javac -nowarn -d "$tmp/classes" -cp "$tmp/libs/kafka-clients-$KAFKA_VERSION.jar" \
        "$_kafka_recipe_dir/EventHubsPlainCallbackHandler.java"
    jar cf "$tmp/ext/eventhubs-plain.jar" -C "$tmp/classes" .
    rm -rf "$tmp/classes"
    cp "$_kafka_recipe_dir/log4j2.xml" "$_kafka_recipe_dir/tools-log4j2.xml" "$tmp/config/"
    _kafka_write_bin "$tmp" "$KAFKA_HOME"
    echo "$stamp" >"$tmp/.stamp"
    rm -rf "$KAFKA_HOME"
    mv "$tmp" "$KAFKA_HOME"
}

# The distribution's script names, each a line of Java: what users run against Event Hubs.
_kafka_write_bin() {
    local dir=$1 home=$2
    cat >"$dir/bin/kafka-run-class.sh" <<EOF
#!/bin/sh
# Apache Kafka $KAFKA_VERSION from Maven Central (installed by eventhubs-kafka's scripts/lib/kafka.sh)
exec java \${KAFKA_HEAP_OPTS:--Xmx512m} \${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1} \\
    \${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$home/config/tools-log4j2.xml} \${KAFKA_OPTS:-} \\
    -cp "$home/libs/*:$home/ext/*" "\$@"
EOF
    local pair name class
    for pair in \
        kafka-storage.sh:kafka.tools.StorageTool \
        kafka-console-consumer.sh:org.apache.kafka.tools.consumer.ConsoleConsumer \
        kafka-console-producer.sh:org.apache.kafka.tools.ConsoleProducer \
        kafka-consumer-groups.sh:org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        kafka-topics.sh:org.apache.kafka.tools.TopicCommand \
        kafka-configs.sh:kafka.admin.ConfigCommand; do
        name=${pair%%:*} class=${pair#*:}
        printf '#!/bin/sh\nexec "$(dirname "$0")/kafka-run-class.sh" %s "$@"\n' "$class" >"$dir/bin/$name"
    done
    # The broker: G1, a larger heap, the server log4j configuration (logs into
    # $KAFKA_LOG_DIR, default the working directory).
    cat >"$dir/bin/kafka-server-start.sh" <<EOF
#!/bin/sh
# usage: kafka-server-start.sh server.properties
export KAFKA_HEAP_OPTS="\${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
export KAFKA_JVM_PERFORMANCE_OPTS="\${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true}"
export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$home/config/log4j2.xml -Dkafka.logs.dir=\${KAFKA_LOG_DIR:-.}"
exec "\$(dirname "\$0")/kafka-run-class.sh" kafka.Kafka "\$@"
EOF
    chmod +x "$dir"/bin/*.sh
}

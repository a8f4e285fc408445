#!/usr/bin/env bash
# Makes sure Apache ZooKeeper can run here, for the tests against real servers
# (crates/zk/tests, through mantle_zk::testing). Idempotent; run as root, as CI and the
# test command do. Prints what it did and how to run a server by hand.
#
#   scripts/ensure-zookeeper.sh
#
# - Installs Debian's zookeeperd (which brings zookeeper, libzookeeper-java and a Java
#   runtime) when /usr/share/java/zookeeper.jar or java is missing.
# - Starts nothing: the tests start their own servers on free loopback ports, each with
#   its own data directory, and kill them when done. On a machine booted with systemd the
#   package's own service may start on port 2181; the tests do not use it.
set -euo pipefail

JAR=/usr/share/java/zookeeper.jar
did="zookeeper is installed; nothing to do"

fail() {
    echo "ensure-zookeeper: $*" >&2
    exit 1
}

if [[ ! -r $JAR ]] || ! command -v java >/dev/null; then
    [[ $(id -u) -eq 0 ]] || fail "need root to install zookeeperd"
    apt_log=$(mktemp)
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeperd; } >"$apt_log" 2>&1; then
        tail -20 "$apt_log" >&2
        fail "could not install zookeeperd"
    fi
    rm -f "$apt_log"
    [[ -r $JAR ]] || fail "zookeeperd is installed but $JAR is missing"
    did="installed zookeeperd"
fi

version=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
classpath="/etc/zookeeper/conf:$JAR"
[[ -r /usr/share/java/slf4j-simple.jar ]] && classpath+=":/usr/share/java/slf4j-simple.jar"

cat <<EOF
ensure-zookeeper: $did (zookeeper $version)
To run a standalone server by hand:
  mkdir -p /tmp/zk/data && cat >/tmp/zk/zoo.cfg <<CFG
tickTime=500
dataDir=/tmp/zk/data
clientPort=2181
clientPortAddress=127.0.0.1
admin.enableServer=false
CFG
  java -Xmx128m -XX:+UseSerialGC -cp $classpath \\
    org.apache.zookeeper.server.quorum.QuorumPeerMain /tmp/zk/zoo.cfg
An ensemble member adds initLimit, syncLimit and server.N=127.0.0.1:PEER:ELECTION lines,
and a myid file holding N in its dataDir.
EOF

#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock and that the test image
# mantle-test/busybox:latest exists, for the containerizer's Docker tests
# (crates/containerizer/tests/docker.rs). Idempotent; run as root, as CI and the test
# command do. Prints one line saying what it did.
#
#   scripts/ensure-docker.sh
#
# - Installs Debian's docker.io and busybox-static when dockerd, docker or /bin/busybox
#   is missing.
# - Starts dockerd in the background when `docker info` fails, logging to
#   /var/log/mantle-dockerd.log (MANTLE_DOCKERD_LOG overrides). It tries the default
#   configuration first, then without iptables, then also with the vfs storage driver,
#   since sandboxes differ in what they allow; MANTLE_DOCKERD_FLAGS="..." tries only those
#   flags. Each try gets 30 s to answer.
# - Imports mantle-test/busybox:latest (busybox-static and its applet links) when absent.
#   The Rust tests would import it themselves, but doing it here keeps concurrent test
#   binaries from racing to create it.
set -euo pipefail

LOG=${MANTLE_DOCKERD_LOG:-/var/log/mantle-dockerd.log}
IMAGE=mantle-test/busybox:latest
APPLETS=(sh sleep echo cat dd head nc id ls true false pwd)
WAIT_SECS=30
did=()

fail() {
    echo "ensure-docker: $*" >&2
    exit 1
}

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

# Waits until the engine answers; fails early if the given dockerd has exited.
wait_for_engine() {
    local pid=${1:-} deadline=$((SECONDS + WAIT_SECS))
    while ((SECONDS < deadline)); do
        engine_up && return 0
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.5
    done
    return 1
}

# Starts dockerd with the given flags; succeeds once it answers. A dockerd that does not
# answer in time is stopped (it is ours) so that the next try can take the socket.
try_dockerd() {
    printf '==> %s dockerd %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG"
    setsid dockerd "$@" >>"$LOG" 2>&1 </dev/null &
    local pid=$!
    if wait_for_engine "$pid"; then
        return 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    return 1
}

# 1. Packages.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || fail "need root to install ${missing[*]}"
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    apt_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -20 "$apt_log" >&2
        fail "could not install ${missing[*]}"
    fi
    rm -f "$apt_log"
    did+=("installed ${missing[*]}")
fi

# 2. The engine.
if engine_up; then
    :
else
    [[ $(id -u) -eq 0 ]] || fail "no docker engine answers and starting one needs root"
    mkdir -p "$(dirname "$LOG")"
    # A dockerd that is already starting (its pid file names a live process) gets its
    # chance first; a second one would only fail on the pid file.
    running=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [[ -n $running ]] && kill -0 "$running" 2>/dev/null; then
        wait_for_engine "$running" || fail "dockerd (pid $running) runs but does not answer; see $LOG"
        did+=("waited for the running dockerd")
    else
        if [[ -n ${MANTLE_DOCKERD_FLAGS:-} ]]; then
            tries=("$MANTLE_DOCKERD_FLAGS")
        else
            tries=("" "--iptables=false" "--iptables=false --storage-driver=vfs")
        fi
        started=
        for try in "${tries[@]}"; do
            read -r -a flags <<<"$try"
            if try_dockerd "${flags[@]}"; then
                started=${try:-default flags}
                break
            fi
        done
        [[ -n $started ]] || fail "dockerd did not start with any of the tried flags; see $LOG"
        did+=("started dockerd ($started, log $LOG)")
    fi
fi

# 3. The test image.
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root/bin" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in "${APPLETS[@]}"; do
        ln -s busybox "$root/bin/$applet"
    done
    tar -C "$root" -cf - . | docker import - "$IMAGE" >/dev/null
    did+=("imported $IMAGE")
fi

if ((${#did[@]})); then
    summary=$(printf '%s; ' "${did[@]}")
    echo "ensure-docker: ${summary%; }"
else
    echo "ensure-docker: docker engine answers and $IMAGE is present; nothing to do"
fi

#!/usr/bin/env bash
# Test-only Docker engines for gpubot's integration tests (Debian 12, run as root).
#
#   tests/infra/setup_docker.sh          install what is missing and start the engines
#   tests/infra/setup_docker.sh --stop   stop the engines this script started
#
# Idempotent: packages already installed and engines already answering are left alone.
# It starts, in the background:
#   1. dockerd on unix:///var/run/docker.sock with tests/infra/fake-nvidia's hook (copied
#      to /usr/local/libexec/gpubot-test-hook) first on its PATH, so that it registers its
#      "nvidia" device driver: containers with a GPU device request start, and the fake
#      hook logs the NVIDIA_VISIBLE_DEVICES it saw;
#   2. a second dockerd WITHOUT the hook (own socket, data-root, exec-root, pidfile and
#      bridge, no iptables): a host without the NVIDIA Container Toolkit, where a GPU
#      device request fails with "could not select device driver". It must not run with
#      --bridge=none: a dockerd started that way deletes the docker0 bridge of the main
#      engine, and every container start there then fails ("could not find bridge docker0");
#   3. a local image registry on 127.0.0.1:5000 (Docker trusts loopback registries over
#      plain HTTP), used to show that a missing image is pulled with progress;
#   4. a spare dockerd (tests/infra/spare_engine.sh): live-restore, btrfs storage (bounded
#      writable layers), restarted by the tests; build_images.sh copies the test image in.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The hook is installed outside the checkout: dockerd resolves it once, at start, and a
# running engine must not depend on a clone that may be deleted (a CI checkout).
HOOK_SRC="$HERE/fake-nvidia/nvidia-container-runtime-hook"
HOOK_DIR=/usr/local/libexec/gpubot-test-hook
HOOK_LOG="${GPUBOT_FAKE_HOOK_LOG:-/tmp/gpubot-fake-nvidia-hook.log}"
LOG_DIR=/var/log/gpubot-test
MAIN_SOCK=/var/run/docker.sock
MAIN_PID=/var/run/gpubot-test-dockerd.pid
NOHOOK_RUN=/run/gpubot-nohook
NOHOOK_SOCK="$NOHOOK_RUN/docker.sock"
NOHOOK_PID="$NOHOOK_RUN/docker.pid"
NOHOOK_DATA=/var/lib/gpubot-nohook-docker
NOHOOK_BRIDGE=gpubot-nohook0
NOHOOK_BRIDGE_CIDR=172.31.254.1/24
REGISTRY_ADDR="${GPUBOT_TEST_REGISTRY:-127.0.0.1:5000}"
REGISTRY_DATA=/var/lib/gpubot-test-registry
REGISTRY_PID=/run/gpubot-test-registry.pid
# openssh-client: the SSH tests log in to leases with the real ssh, scp, ssh-keyscan
PACKAGES=(docker.io debootstrap docker-registry busybox-static btrfs-progs iptables openssh-client)

log() { printf '[setup_docker] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts dockerd)"

stop_pidfile() {
    local pidfile=$1 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping pid $pid ($pidfile)"
        kill "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -f "$pidfile"
}

if [[ ${1:-} == --stop ]]; then
    "$HERE/spare_engine.sh" stop
    stop_pidfile "$REGISTRY_PID"
    stop_pidfile "$NOHOOK_PID"
    stop_pidfile "$MAIN_PID"
    exit 0
fi

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing: ${missing[*]}"
    # Keep the packages' init scripts from starting a dockerd/registry of their own:
    # the engines below are started with the environment the tests need.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    [[ $own_policy -eq 1 ]] && rm -f "$policy"
    return 0
}

wait_for_engine() {
    local host=$1 what=$2 logfile=$3
    for _ in $(seq 1 60); do
        docker -H "$host" info >/dev/null 2>&1 && return 0
        sleep 1
    done
    tail -n 30 "$logfile" >&2 || true
    die "$what did not answer on $host within 60 s (log: $logfile)"
}

start_main_engine() {
    if docker -H "unix://$MAIN_SOCK" info >/dev/null 2>&1; then
        if ! [[ -s $MAIN_PID ]] || ! kill -0 "$(cat "$MAIN_PID")" 2>/dev/null; then
            log "WARNING: a dockerd this script did not start answers on $MAIN_SOCK;" \
                "leaving it alone (it may lack the fake hook's 'nvidia' driver)"
            return 0
        fi
        if ! tr '\0' '\n' <"/proc/$(cat "$MAIN_PID")/environ" | grep -qx "PATH=$HOOK_DIR:.*"; then
            log "the engine was started with another hook path: restarting it"
            stop_pidfile "$MAIN_PID"
        elif ! ip link show docker0 >/dev/null 2>&1; then
            # A dockerd started with --bridge=none (as an older version of this script
            # did for the second engine) deletes docker0, and every container start then
            # fails. dockerd recreates the bridge when it starts.
            log "the docker0 bridge is gone: restarting the engine"
            stop_pidfile "$MAIN_PID"
        else
            log "engine with fake NVIDIA hook already running"
            return 0
        fi
    fi
    log "starting dockerd with the fake NVIDIA hook on its PATH"
    : >>"$HOOK_LOG"
    chmod 0666 "$HOOK_LOG"
    PATH="$HOOK_DIR:$PATH" GPUBOT_FAKE_HOOK_LOG="$HOOK_LOG" setsid dockerd \
        --host="unix://$MAIN_SOCK" --pidfile="$MAIN_PID" \
        >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
    wait_for_engine "unix://$MAIN_SOCK" "dockerd" "$LOG_DIR/dockerd.log"
}

start_nohook_engine() {
    if docker -H "unix://$NOHOOK_SOCK" info >/dev/null 2>&1; then
        log "engine without NVIDIA hook already running"
        return 0
    fi
    local path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    if PATH=$path command -v nvidia-container-runtime-hook >/dev/null; then
        log "WARNING: a real nvidia-container-runtime-hook is installed; the second" \
            "engine will register the nvidia driver too"
    fi
    log "starting a second dockerd without the NVIDIA hook"
    mkdir -p "$NOHOOK_RUN" "$NOHOOK_DATA"
    if ! ip link show "$NOHOOK_BRIDGE" >/dev/null 2>&1; then
        ip link add "$NOHOOK_BRIDGE" type bridge
        ip addr add "$NOHOOK_BRIDGE_CIDR" dev "$NOHOOK_BRIDGE"
    fi
    ip link set "$NOHOOK_BRIDGE" up
    PATH=$path setsid dockerd \
        --host="unix://$NOHOOK_SOCK" --pidfile="$NOHOOK_PID" \
        --data-root="$NOHOOK_DATA" --exec-root="$NOHOOK_RUN/exec" \
        --bridge="$NOHOOK_BRIDGE" --iptables=false \
        >>"$LOG_DIR/dockerd-nohook.log" 2>&1 </dev/null &
    wait_for_engine "unix://$NOHOOK_SOCK" "second dockerd" "$LOG_DIR/dockerd-nohook.log"
}

start_registry() {
    local url="http://$REGISTRY_ADDR/v2/"
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "$url" 2>/dev/null; then
        log "registry already answering on $REGISTRY_ADDR"
        return 0
    fi
    log "starting a local registry on $REGISTRY_ADDR"
    mkdir -p "$REGISTRY_DATA"
    cat >"$REGISTRY_DATA/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DATA/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    setsid docker-registry serve "$REGISTRY_DATA/config.yml" \
        >>"$LOG_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$REGISTRY_PID"
    for _ in $(seq 1 30); do
        python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
            "$url" 2>/dev/null && return 0
        sleep 1
    done
    die "registry did not answer on $url (log: $LOG_DIR/registry.log)"
}

install_packages
mkdir -p "$HOOK_DIR"
install -m 0755 "$HOOK_SRC" "$HOOK_DIR/"
command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
mkdir -p "$LOG_DIR"
start_main_engine
start_nohook_engine
start_registry
"$HERE/spare_engine.sh" start || log "WARNING: the spare engine did not start; its tests will say why"
ip link show docker0 >/dev/null 2>&1 \
    || die "the main engine's docker0 bridge is missing: containers could not start"

cat <<EOF
Docker engines for the gpubot tests are up:
  with fake NVIDIA hook : unix://$MAIN_SOCK       (hook log: $HOOK_LOG)
  without NVIDIA hook   : unix://$NOHOOK_SOCK
  spare (live-restore)  : unix:///run/gpubot-spare/docker.sock
  local registry        : $REGISTRY_ADDR
  logs                  : $LOG_DIR/
The tests use these by default; to point them elsewhere:
  export DOCKER_HOST=unix://$MAIN_SOCK
  export GPUBOT_NOHOOK_DOCKER_HOST=unix://$NOHOOK_SOCK
  export GPUBOT_SPARE_DOCKER_HOST=unix:///run/gpubot-spare/docker.sock
  export GPUBOT_FAKE_HOOK_LOG=$HOOK_LOG
  export GPUBOT_TEST_REGISTRY=$REGISTRY_ADDR
EOF

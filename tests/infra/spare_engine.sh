#!/usr/bin/env bash
# A third, test-only dockerd that the tests may restart and whose storage driver bounds a
# container's writable layer (Debian 12, root):
#
#   tests/infra/spare_engine.sh start [--no-live-restore]   start it (idempotent)
#   tests/infra/spare_engine.sh restart [--no-live-restore] stop it, start it again
#   tests/infra/spare_engine.sh stop
#   tests/infra/spare_engine.sh load IMAGE...                copy images from the main engine
#
# Its data root is a btrfs file system in a loop file: overlay2 bounds the writable layer
# (--storage-opt size) only on xfs with project quotas, which this kernel may lack, and
# the btrfs driver does it with quota groups. It runs with --live-restore (containers
# outlive a dockerd restart) unless told otherwise, its own socket, data and exec roots,
# pidfile and bridge, and --iptables=false: a second dockerd managing iptables would
# rewrite the main engine's chains.
set -euo pipefail

RUN=/run/gpubot-spare
SOCK=$RUN/docker.sock
PIDFILE=$RUN/docker.pid
DATA=/var/lib/gpubot-spare-docker
IMAGE_FILE=/var/lib/gpubot-spare-docker.btrfs
IMAGE_SIZE=12G
BRIDGE=gpubot-spare0
BRIDGE_CIDR=172.31.253.1/24
LOG=/var/log/gpubot-test/dockerd-spare.log

log() { printf '[spare_engine] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root"

answers() { docker -H "unix://$SOCK" info >/dev/null 2>&1; }

mount_data() {
    mountpoint -q "$DATA" && return 0
    command -v mkfs.btrfs >/dev/null || die "mkfs.btrfs missing: apt-get install btrfs-progs"
    mkdir -p "$DATA"
    if [[ ! -s $IMAGE_FILE ]]; then
        truncate -s "$IMAGE_SIZE" "$IMAGE_FILE"
        mkfs.btrfs -q "$IMAGE_FILE"
    fi
    mount -o loop "$IMAGE_FILE" "$DATA"
}

start() {
    local live=(--live-restore)
    [[ ${1:-} == --no-live-restore ]] && live=()
    answers && return 0
    mount_data
    mkdir -p "$RUN" "$(dirname "$LOG")"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
    setsid dockerd --host="unix://$SOCK" --pidfile="$PIDFILE" --data-root="$DATA" \
        --exec-root="$RUN/exec" --bridge="$BRIDGE" --iptables=false \
        --storage-driver=btrfs "${live[@]}" >>"$LOG" 2>&1 </dev/null &
    for _ in $(seq 1 60); do answers && return 0; sleep 0.5; done
    tail -n 20 "$LOG" >&2
    die "the spare dockerd did not answer on $SOCK within 30 s (log: $LOG)"
}

stop() {
    [[ -s $PIDFILE ]] || return 0
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && die "dockerd $pid did not stop within 30 s"
    fi
    rm -f "$PIDFILE"
}

load() {
    local image main spare
    for image in "$@"; do
        main=$(docker image inspect -f '{{.Id}}' "$image")
        spare=$(docker -H "unix://$SOCK" image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
        [[ $main == "$spare" ]] && continue
        log "copying $image to the spare engine"
        docker save "$image" | docker -H "unix://$SOCK" load -q >/dev/null
    done
}

case ${1:-} in
start) start "${2:-}" ;;
stop) stop ;;
restart) stop; start "${2:-}" ;;
load) shift; answers || die "the spare engine is not running"; load "$@" ;;
*) die "usage: $0 start|restart [--no-live-restore] | stop | load IMAGE..." ;;
esac

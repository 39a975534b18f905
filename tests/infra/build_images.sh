#!/usr/bin/env bash
# Builds the images the Docker integration tests run, without any image registry:
#   1. debootstrap a minimal Debian bookworm rootfs with python3 (+venv, pip) and CAs,
#   2. `docker import` it as gpubot-test-base:latest,
#   3. `docker build` image/ on top of it as gpubot-jupyter:test,
#   4. the same on a conda-shaped variant of the base (tests/infra/fake-conda) as
#      gpubot-jupyter:test-conda, to exercise image/install.sh's conda branch;
#   5. the second environment's recipe (image/conda.Dockerfile: conda ready in the
#      terminal) on gpubot-jupyter:test, its conda from that conda-shaped base, as
#      gpubot-jupyter:test-env-conda (no real conda distribution is reachable here).
# The debootstrap base is made only when missing (or with --rebuild); the docker builds
# always run, from the layer cache when nothing changed (seconds), so an edit of image/
# reaches the test images without --rebuild.
# Behind a TLS-intercepting proxy: the host's locally added CAs
# (/usr/local/share/ca-certificates, or the file named by EXTRA_CA_FILE) go into the
# build as EXTRA_CA_CERT, and an http(s) pip index configured on the host as PIP_INDEX_URL.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BASE_IMAGE=${GPUBOT_TEST_BASE_IMAGE:-gpubot-test-base:latest}
TEST_IMAGE=${GPUBOT_TEST_IMAGE:-gpubot-jupyter:test}
CONDA_BASE_IMAGE=gpubot-test-conda-base:latest
CONDA_IMAGE=${GPUBOT_TEST_CONDA_IMAGE:-gpubot-jupyter:test-conda}
ENV_CONDA_IMAGE=${GPUBOT_TEST_ENV_CONDA_IMAGE:-gpubot-jupyter:test-env-conda}
WORK=${GPUBOT_BUILD_DIR:-/var/tmp/gpubot-test-build}
ROOTFS=$WORK/rootfs
SUITE=bookworm
REBUILD=0

log() { printf '[build_images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for arg in "$@"; do
    case $arg in
    --rebuild) REBUILD=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    *) die "unknown argument: $arg" ;;
    esac
done
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap missing: run tests/infra/setup_docker.sh"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run tests/infra/setup_docker.sh"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
# After a rebuild: drop the previous image of that tag (kept while a container uses it).
drop_replaced() {
    local old=$1 tag=$2
    [[ -n $old && $old != "$(image_id "$tag")" ]] || return 0
    docker image rm "$old" >/dev/null 2>&1 || true
}
# Newest first: an image goes before the base it was built on.
TAGS=("$ENV_CONDA_IMAGE" "$CONDA_IMAGE" "$CONDA_BASE_IMAGE" "$TEST_IMAGE" "$BASE_IMAGE")
declare -A OLD_IDS
for tag in "${TAGS[@]}"; do OLD_IDS[$tag]=$(image_id "$tag"); done

# The Debian mirror apt uses on this host (deb822 .sources files or sources.list).
debian_mirror() {
    local uri
    uri=$(awk '
        /^URIs:/ { uris = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "'"$SUITE"'") { print uris; exit } }
        ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri && -f /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $3 == "'"$SUITE"'" { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# An http(s) pip index configured on this host, if any (file:// indexes stay local).
pip_index_url() {
    local url=${PIP_INDEX_URL:-}
    if [[ -z $url ]] && command -v pip3 >/dev/null; then
        url=$(pip3 config get global.index-url 2>/dev/null || true)
    fi
    [[ $url == http://* || $url == https://* ]] && echo "$url"
    return 0
}

extra_ca_pem() {
    if [[ -n ${EXTRA_CA_FILE:-} ]]; then
        cat "$EXTRA_CA_FILE"
    else
        find /usr/local/share/ca-certificates -name '*.crt' -type f -print0 2>/dev/null \
            | sort -z | xargs -0 -r cat
    fi
}

t_debootstrap=skipped t_import=skipped t_build=skipped t_conda=skipped t_env_conda=skipped

if [[ $REBUILD -eq 1 ]] || ! image_exists "$BASE_IMAGE"; then
    mirror=$(debian_mirror)
    log "debootstrap $SUITE (minbase) from $mirror into $ROOTFS"
    rm -rf "$ROOTFS"
    mkdir -p "$WORK"
    t0=$(now)
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$ROOTFS" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    t_debootstrap=$(elapsed "$t0" "$(now)")

    log "docker import -> $BASE_IMAGE"
    t0=$(now)
    tar -C "$ROOTFS" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    t_import=$(elapsed "$t0" "$(now)")
    rm -rf "$ROOTFS"
fi

build_args=(--build-arg "CUDA_VERSION=none")
ca=$(extra_ca_pem)
if [[ -n $ca ]]; then
    (( ${#ca} < 120000 )) || die "extra CA PEM too large for a build argument; put the *.crt into image/certs/"
    build_args+=(--build-arg "EXTRA_CA_CERT=$ca")
    log "passing $(grep -c 'BEGIN CERTIFICATE' <<<"$ca") extra CA certificate(s) to the build"
fi
index=$(pip_index_url)
if [[ -n $index ]]; then
    build_args+=(--build-arg "PIP_INDEX_URL=$index")
    log "using pip index $index"
fi

log "docker build $REPO/image on $BASE_IMAGE -> $TEST_IMAGE"
t0=$(now)
docker build -q "${build_args[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$TEST_IMAGE" "$REPO/image"
t_build=$(elapsed "$t0" "$(now)")

log "docker build $REPO/image on a conda-shaped base -> $CONDA_IMAGE"
t0=$(now)
docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$CONDA_BASE_IMAGE" "$HERE/fake-conda"
docker build -q "${build_args[@]}" --build-arg "BASE_IMAGE=$CONDA_BASE_IMAGE" -t "$CONDA_IMAGE" "$REPO/image"
t_conda=$(elapsed "$t0" "$(now)")

log "docker build $REPO/image/conda.Dockerfile on $TEST_IMAGE -> $ENV_CONDA_IMAGE"
t0=$(now)
docker build -q --build-arg "BASE_IMAGE=$TEST_IMAGE" --build-arg "CONDA_IMAGE=$CONDA_BASE_IMAGE" \
    -f "$REPO/image/conda.Dockerfile" -t "$ENV_CONDA_IMAGE" "$REPO/image"
t_env_conda=$(elapsed "$t0" "$(now)")

for tag in "${TAGS[@]}"; do drop_replaced "${OLD_IDS[$tag]}" "$tag"; done

# The spare engine (tests/infra/spare_engine.sh) has its own image store.
if [[ -S /run/gpubot-spare/docker.sock ]]; then
    "$HERE/spare_engine.sh" load "$TEST_IMAGE" || log "WARNING: could not copy $TEST_IMAGE to the spare engine"
fi

printf 'timings (s): debootstrap=%s import=%s build=%s conda-variant=%s conda-env=%s\n' \
    "$t_debootstrap" "$t_import" "$t_build" "$t_conda" "$t_env_conda"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
    | grep -E "^(${BASE_IMAGE}|${TEST_IMAGE}|${CONDA_IMAGE}|${ENV_CONDA_IMAGE})  " || true

#!/usr/bin/env bash
# Unpacks a gpubot Jupyter image's Python environment onto shared storage, where Slurm
# jobs run it without a Docker daemon (bot/adapters/slurm_script.py):
#
#   export_env.sh IMAGE ENV_ROOT     ->  ENV_ROOT/<image with / and : as _>/
#                                          venv/    the image's /opt/venv
#                                          jupyter_server_config.py  the image's own
#
# Why a venv and not the image's root filesystem under runc: the venv is what makes the
# image a Jupyter image, compute nodes already run the same Debian/Python, and a venv
# needs no privileges, so the job is an ordinary process tree that scancel ends (a
# container started by a daemon would escape the job). The venv's interpreter links to
# /usr/bin/python3, so nodes need the image's Python version (checked below).
# Idempotent: an environment already exported from the same image id is kept.
set -euo pipefail

IMAGE=${1:?usage: export_env.sh IMAGE ENV_ROOT}
ROOT=${2:?usage: export_env.sh IMAGE ENV_ROOT}
DEST="$ROOT/$(printf '%s' "$IMAGE" | tr '/:' '__')"
ID=$(docker image inspect --format '{{.Id}}' "$IMAGE")

log() { printf '[export_env] %s\n' "$*" >&2; }

if [[ -f "$DEST/.image-id" && $(cat "$DEST/.image-id") == "$ID" ]]; then
    exit 0
fi
log "exporting /opt/venv of $IMAGE to $DEST"
mkdir -p "$ROOT"
tmp=$(mktemp -d "$ROOT/.export.XXXXXX")
container=$(docker create "$IMAGE")
trap 'docker rm -f "$container" >/dev/null; rm -rf "$tmp"' EXIT
docker cp "$container:/opt/venv" "$tmp/venv"
docker cp "$container:/usr/local/share/gpubot/jupyter_server_config.py" "$tmp/"
# The venv's scripts name /opt/venv in their #! line: point them at where it now lives.
grep -lIs '^#!/opt/venv/bin/' "$tmp/venv/bin/"* | xargs -r sed -i "1s|^#!/opt/venv/|#!$DEST/venv/|"
printf '%s\n' "$ID" >"$tmp/.image-id"
"$tmp/venv/bin/python" -c 'import jupyter_server, jupyterlab' \
    || { log "ERROR: the exported venv does not run here (the image's Python differs)"; exit 1; }
chmod -R a+rX "$tmp"
rm -rf "$DEST"
mv "$tmp" "$DEST"

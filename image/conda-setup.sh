#!/bin/sh
# Build-time set-up of image/conda.Dockerfile, run as root: conda (copied to /opt/conda)
# ready in every terminal, its environments and package cache in the user's workspace.
set -eu
PREFIX=/opt/conda
say() { printf 'gpubot-conda: %s\n' "$*"; }
[ -x "$PREFIX/bin/conda" ] || { echo "gpubot-conda: no conda at $PREFIX/bin/conda" >&2; exit 1; }
[ -f "$PREFIX/etc/profile.d/conda.sh" ] || { echo "gpubot-conda: $PREFIX has no shell hook" >&2; exit 1; }

# Each person runs as their own uid with HOME=/workspace (their workspace, kept between
# leases): environments made with `conda create` land there and outlive the container;
# the base environment stays read-only (root's), shared by every lease of this image.
cat >"$PREFIX/.condarc" <<'RC'
envs_dirs:
  - ~/.conda/envs
pkgs_dirs:
  - ~/.conda/pkgs
auto_activate_base: false
changeps1: true
RC
[ -z "${PIP_CERT:-}" ] || printf 'ssl_verify: %s\n' "$PIP_CERT" >>"$PREFIX/.condarc"

# Login shells (Jupyter terminals run bash -l) and any interactive bash: the hook, then
# base, so `conda activate <env>` works with nothing to source. Named to run after
# gpubot-venv.sh: in a terminal, `python` and `pip` are conda's (pip installs into
# ~/.local when base is read-only), while JupyterLab keeps its own.
HOOK_FILE=/etc/profile.d/z-gpubot-conda.sh
cat >"$HOOK_FILE" <<HOOK
if [ -n "\${BASH_VERSION:-}" ] && [ -z "\${GPUBOT_CONDA_HOOKED:-}" ] && [ -f "$PREFIX/etc/profile.d/conda.sh" ]; then
    GPUBOT_CONDA_HOOKED=1
    . "$PREFIX/etc/profile.d/conda.sh"
    conda activate base
fi
HOOK
# Non-login interactive bash reads only bash.bashrc. A login shell reads it too (from
# /etc/profile, before profile.d), and there the hook must wait for profile.d's end.
if [ -f /etc/bash.bashrc ] && ! grep -q "$HOOK_FILE" /etc/bash.bashrc; then
    echo "shopt -q login_shell || { [ -f $HOOK_FILE ] && . $HOOK_FILE; }" >>/etc/bash.bashrc
fi
chmod -R a+rX,go-w "$PREFIX"
say "conda ready in terminals: $("$PREFIX/bin/conda" --version 2>/dev/null || echo "$PREFIX/bin/conda")"

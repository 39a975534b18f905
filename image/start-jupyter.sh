#!/bin/sh
# Entry point of the gpubot Jupyter image: JupyterLab on 0.0.0.0:8888, files in
# /workspace, password login only.
#
# Needs JUPYTER_PASSWORD_HASH: a jupyter_server password hash ("argon2:$argon2id$...",
# as made by jupyter_server.auth.passwd). Without one it refuses to start: a Jupyter
# server is a remote shell, it never runs without a password.
set -eu

hash=${JUPYTER_PASSWORD_HASH:-}
case "$hash" in
"")
    echo "start-jupyter: JUPYTER_PASSWORD_HASH is not set; refusing to start Jupyter" \
        "without a password (expected a jupyter_server hash such as 'argon2:\$argon2id\$...')" >&2
    exit 78 # EX_CONFIG
    ;;
argon2:* | sha1:*:* | sha256:*:* | sha512:*:*) ;;
*)
    echo "start-jupyter: JUPYTER_PASSWORD_HASH is not a jupyter_server password hash" \
        "(expected 'argon2:...'); refusing to start" >&2
    exit 78
    ;;
esac
# Kernels and terminals need not inherit it.
unset JUPYTER_PASSWORD_HASH

exec jupyter lab \
    --ServerApp.ip=0.0.0.0 \
    --ServerApp.port=8888 \
    --ServerApp.port_retries=0 \
    --ServerApp.root_dir=/workspace \
    --ServerApp.open_browser=False \
    --ServerApp.quit_button=False \
    --IdentityProvider.token= \
    --PasswordIdentityProvider.hashed_password="$hash" \
    --PasswordIdentityProvider.allow_password_change=False \
    "$@"

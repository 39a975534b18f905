#!/bin/sh
# Entry point of the gpubot Jupyter image: JupyterLab on 0.0.0.0:8888, files in
# /workspace, password login only.
#
# The password hash (a jupyter_server hash such as "argon2:$argon2id$...", as made by
# jupyter_server.auth.passwd) is read from the file named by JUPYTER_PASSWORD_HASH_FILE
# (the bot copies it into the container as a 0600 file before starting it). It never goes
# on a command line or into the environment: `ps` on the host shows every process's argv
# and `docker inspect` shows the environment. jupyter_server_config.py hands it to
# Jupyter. Without a valid hash it refuses to start: a Jupyter server is a remote shell.
set -eu

if [ -n "${JUPYTER_PASSWORD_HASH:-}" ] && [ -z "${JUPYTER_PASSWORD_HASH_FILE:-}" ]; then
    # Older callers pass the hash itself (visible in `docker inspect`): keep it off
    # Jupyter's environment at least.
    umask 077
    JUPYTER_PASSWORD_HASH_FILE=$(mktemp)
    printf '%s\n' "$JUPYTER_PASSWORD_HASH" >"$JUPYTER_PASSWORD_HASH_FILE"
    export JUPYTER_PASSWORD_HASH_FILE
fi
unset JUPYTER_PASSWORD_HASH

file=${JUPYTER_PASSWORD_HASH_FILE:-}
if [ -z "$file" ] || [ ! -r "$file" ]; then
    echo "start-jupyter: no password hash file (JUPYTER_PASSWORD_HASH_FILE=${file:-unset});" \
        "refusing to start Jupyter without a password (expected a jupyter_server hash" \
        "such as 'argon2:\$argon2id\$...')" >&2
    exit 78 # EX_CONFIG
fi
hash=
read -r hash <"$file" || true # `read`, a builtin: the hash is on no process's argv
case "$hash" in
argon2:* | sha1:*:* | sha256:*:* | sha512:*:*) ;;
*)
    echo "start-jupyter: $file: not a jupyter_server password hash" \
        "(expected 'argon2:...'); refusing to start" >&2
    exit 78
    ;;
esac
hash=

# SSH (GPUBOT_SSH): sshd beside Jupyter when the bot copied in a host key; a broken set-up
# fails the start here rather than leaving an access DM that points at nothing.
if [ -n "${GPUBOT_SSH_DIR:-}" ]; then
    /usr/local/bin/start-sshd
fi

exec jupyter lab \
    --config=/usr/local/share/gpubot/jupyter_server_config.py \
    --ServerApp.ip=0.0.0.0 \
    --ServerApp.port=8888 \
    --ServerApp.port_retries=0 \
    --ServerApp.root_dir=/workspace \
    --ServerApp.open_browser=False \
    --ServerApp.quit_button=False \
    --IdentityProvider.token= \
    --PasswordIdentityProvider.allow_password_change=False \
    "$@"

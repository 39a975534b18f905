#!/bin/sh
# Build-time setup of the gpubot Jupyter image, run as root by the Dockerfile.
# Works on a conda base (e.g. pytorch/pytorch) and on a plain Debian/Ubuntu base with
# apt's python3 (PEP 668: packages go into a venv, /opt/venv).
# Inputs (build args, seen here as environment): EXTRA_CA_CERT, PIP_INDEX_URL,
# PIP_TRUSTED_HOST; files: /usr/local/share/gpubot/{requirements.txt,certs/*.crt}.
set -eu

SHARE=/usr/local/share/gpubot
NB_UID=1000
NB_GID=1000
NB_USER=jovyan
VENV=/opt/venv

say() { printf 'gpubot-image: %s\n' "$*"; }
die() { printf 'gpubot-image: ERROR: %s\n' "$*" >&2; exit 1; }

[ -n "${PIP_INDEX_URL:-}" ] || unset PIP_INDEX_URL
[ -n "${PIP_TRUSTED_HOST:-}" ] || unset PIP_TRUSTED_HOST
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# --------------------------------------------------------------- extra CA certificates
BUNDLE=/etc/ssl/certs/ca-certificates.crt
install_extra_cas() {
    dest=/usr/local/share/ca-certificates
    mkdir -p "$dest"
    found=0
    if [ -n "${EXTRA_CA_CERT:-}" ]; then
        # One certificate per file, as update-ca-certificates expects.
        printf '%s\n' "$EXTRA_CA_CERT" | awk -v dir="$dest" '
            /-----BEGIN CERTIFICATE-----/ { n++; out = sprintf("%s/gpubot-extra-ca-%d.crt", dir, n) }
            out { print > out }
            /-----END CERTIFICATE-----/ { close(out); out = "" }'
        ls "$dest"/gpubot-extra-ca-*.crt >/dev/null 2>&1 || die "EXTRA_CA_CERT holds no PEM certificate"
        found=1
    fi
    for crt in "$SHARE"/certs/*.crt; do
        [ -f "$crt" ] || continue
        cp "$crt" "$dest/gpubot-$(basename "$crt")"
        found=1
    done
    [ "$found" -eq 1 ] || return 0
    if command -v update-ca-certificates >/dev/null 2>&1; then
        update-ca-certificates >/dev/null
    else
        mkdir -p "$(dirname "$BUNDLE")"
        cat "$dest"/gpubot-*.crt >>"$BUNDLE"
    fi
    grep -q 'BEGIN CERTIFICATE' "$BUNDLE" || die "no usable CA bundle at $BUNDLE"
    # pip (certifi) and conda ignore the system store unless told.
    export PIP_CERT="$BUNDLE" SSL_CERT_FILE="$BUNDLE" REQUESTS_CA_BUNDLE="$BUNDLE"
    say "extra CA certificates installed into $BUNDLE"
}

# pip settings for the users' terminals too (the same mirror and CA as the build).
write_pip_conf() {
    [ -n "${PIP_INDEX_URL:-}${PIP_CERT:-}" ] || return 0
    {
        echo "[global]"
        [ -z "${PIP_INDEX_URL:-}" ] || echo "index-url = $PIP_INDEX_URL"
        [ -z "${PIP_TRUSTED_HOST:-}" ] || echo "trusted-host = $PIP_TRUSTED_HOST"
        [ -z "${PIP_CERT:-}" ] || echo "cert = $PIP_CERT"
    } >/etc/pip.conf
}

# ------------------------------------------------------------------------ the user
create_user() {
    if ! getent group "$NB_GID" >/dev/null; then
        groupadd --gid "$NB_GID" "$NB_USER"
    fi
    if getent passwd "$NB_UID" >/dev/null; then
        NB_USER=$(getent passwd "$NB_UID" | cut -d: -f1)
        say "reusing the base image's uid $NB_UID user '$NB_USER'"
    else
        useradd --uid "$NB_UID" --gid "$NB_GID" --create-home --shell /bin/bash "$NB_USER"
    fi
    home=$(getent passwd "$NB_UID" | cut -d: -f6)
    mkdir -p "$home" /workspace
    chown "$NB_UID:$NB_GID" "$home" /workspace
}

# ---------------------------------------------------------------------- python env
find_conda() {
    for c in "${CONDA_DIR:-/opt/conda}/bin/conda" "$(command -v conda 2>/dev/null || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
    done
    return 1
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "no conda and no python3 with venv in the base image; install one"
    say "installing $* with apt"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    rm -rf /var/lib/apt/lists/*
}

setup_conda_python() {
    conda=$1
    prefix=$(dirname "$(dirname "$conda")")
    python=$prefix/bin/python
    [ -z "${PIP_CERT:-}" ] || "$conda" config --system --set ssl_verify "$PIP_CERT"
    "$python" -m pip install -r "$SHARE/requirements.txt"
    # `conda activate <env>` in Jupyter terminals (bash -l) and any interactive bash.
    cat >/etc/profile.d/gpubot-conda.sh <<EOF
if [ -n "\${BASH_VERSION:-}" ] && [ -z "\${GPUBOT_CONDA_HOOKED:-}" ] && [ -f "$prefix/etc/profile.d/conda.sh" ]; then
    GPUBOT_CONDA_HOOKED=1
    . "$prefix/etc/profile.d/conda.sh"
    conda activate base
fi
EOF
    if [ -f /etc/bash.bashrc ]; then
        echo '. /etc/profile.d/gpubot-conda.sh' >>/etc/bash.bashrc
    fi
    PYTHON=$python
}

setup_venv_python() {
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3 python3-venv python3-pip ca-certificates
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -r "$SHARE/requirements.txt"
    # Users may add packages to the venv for the life of their container.
    chown -R "$NB_UID:$NB_GID" "$VENV"
    # Login shells (Jupyter terminals) get PATH reset by /etc/profile: put the venv back.
    echo "case \":\$PATH:\" in *\":$VENV/bin:\"*) ;; *) PATH=\"$VENV/bin:\$PATH\" ;; esac" \
        >/etc/profile.d/gpubot-venv.sh
    PYTHON=$VENV/bin/python
}

# ------------------------------------------------------------------------------ ssh
# sshd for GPUBOT_SSH (image/start-sshd.sh runs it as the lease's user); nss_wrapper
# gives that uid a name. The package's host keys would be shared by every container of
# the image: they go, each lease gets its own from the bot.
install_sshd() {
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no apt-get: no sshd in this image (leases of it cannot use GPUBOT_SSH)"
        return 0
    fi
    apt_install openssh-server libnss-wrapper
    rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
}

install_extra_cas
write_pip_conf
create_user
install_sshd
PYTHON=""
if conda=$(find_conda); then
    say "conda base: installing into $(dirname "$(dirname "$conda")")"
    setup_conda_python "$conda"
else
    say "no conda: installing into the venv $VENV"
    setup_venv_python
fi
ln -sf "$PYTHON" /usr/local/bin/gpubot-python
"$PYTHON" -c 'import jupyterlab, jupyter_server, ipykernel, matplotlib, pandas, argon2' \
    || die "the installed Python environment is incomplete"
say "jupyter_server $("$PYTHON" -c 'import jupyter_server; print(jupyter_server.__version__)') on $PYTHON"

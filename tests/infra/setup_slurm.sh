#!/usr/bin/env bash
# What the Slurm engine's tests need on one Debian 12 machine (run as root):
#
#   tests/infra/setup_slurm.sh
#
# 1. Debian's Slurm 22.05: slurmctld, slurmd, slurmdbd, slurmrestd, the JWT plugin, munge
#    (the daemons themselves are started per test session by tests/infra/slurm_cluster.py
#    from configs in a temp dir, and stopped by PID; nothing here is a system service
#    except munged, which every Slurm daemon and command talks to);
# 2. a `gpubot` system user: slurmrestd refuses tokens for root, so jobs are submitted
#    (and run) as this user, as they would be by the bot's service account; and two lab
#    members' accounts (labalice, labbob) for jobs run as each person;
# 3. the Jupyter environment the jobs run, unpacked from the test image onto "shared
#    storage" (deploy/slurm/export_env.sh): jobs never `docker run`.
# MariaDB (slurmdbd's store) is expected on 127.0.0.1:3306, root without a password.
# Idempotent: what is already there is left alone.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKAGES=(slurm-wlm slurmctld slurmd slurmdbd slurmrestd slurm-wlm-jwt-plugin munge)
ENV_ROOT=${GPUBOT_TEST_SLURM_ENVS:-/var/lib/gpubot-slurm/envs}
TEST_IMAGE=${GPUBOT_TEST_IMAGE:-gpubot-jupyter:test}

log() { printf '[setup_slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts munged)"

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

id gpubot >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash gpubot
# Two lab members' own cluster accounts: jobs as each person (GPUBOT_SLURM_JWT_KEY)
for member in labalice labbob; do
    id "$member" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$member"
done

if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged does not answer"
fi

mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1 \
    || log "WARNING: MariaDB does not answer on 127.0.0.1:3306; slurmdbd (sacct, operators) will not start"

if docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
    bash "$HERE/../../deploy/slurm/export_env.sh" "$TEST_IMAGE" "$ENV_ROOT"
else
    log "WARNING: $TEST_IMAGE is not built (tests/infra/build_images.sh); no Jupyter environment for jobs"
fi
log "ready"

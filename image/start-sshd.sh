#!/bin/sh
# sshd for one lease, as the container's (unprivileged) user, started by start-jupyter
# when the bot copied in a host key (GPUBOT_SSH_DIR) and named the login
# (GPUBOT_SSH_LOGIN). Checks the configuration first (exit 78 on any problem: the
# container's start then fails with this message), then supervises sshd in the
# background: each death is logged to the container's log and sshd comes back, so an
# sshd crash never goes unnoticed and never takes the user's Jupyter with it.
#
# The person's uid has no passwd entry in the image, and sshd needs one (getpwnam).
# nss_wrapper (Debian libnss-wrapper, as OpenShift images do for arbitrary uids) gives
# sshd, and through SetEnv every SSH session, a passwd file with the image's accounts
# plus one line for this uid; /etc/passwd itself stays root's and read-only.
set -eu

die() { echo "start-sshd: $*" >&2; exit 78; } # EX_CONFIG
dir=${GPUBOT_SSH_DIR:-}
login=${GPUBOT_SSH_LOGIN:-}
config=/usr/local/share/gpubot/sshd_config
sshd=/usr/sbin/sshd # an absolute path: sshd re-executes itself for each connection
[ -n "$dir" ] && [ -f "$dir/ssh_host_ed25519_key" ] || die "no host key in ${dir:-GPUBOT_SSH_DIR (unset)}"
[ -f "$dir/authorized_keys" ] || die "no authorized_keys in $dir"
case "$login" in [a-z]*) ;; *) die "GPUBOT_SSH_LOGIN '$login' is not a login name" ;; esac
[ -x "$sshd" ] || die "this image has no sshd (openssh-server); SSH needs it"
lib=
for candidate in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so /usr/lib64/libnss_wrapper.so; do
    [ -f "$candidate" ] && { lib=$candidate; break; }
done
[ -n "$lib" ] || die "this image has no nss_wrapper (libnss-wrapper); SSH needs it"

uid=$(id -u)
gid=$(id -g)
nss=$(mktemp -d /tmp/gpubot-nss.XXXXXX)
grep -v "^[^:]*:[^:]*:$uid:" /etc/passwd >"$nss/passwd" || true
printf '%s:x:%s:%s:gpubot lease:/workspace:/bin/bash\n' "$login" "$uid" "$gid" >>"$nss/passwd"
grep -v "^[^:]*:[^:]*:$gid:" /etc/group >"$nss/group" || true
printf '%s:x:%s:\n' "$login" "$gid" >>"$nss/group"
chmod 0644 "$nss/passwd" "$nss/group"
export LD_PRELOAD="$lib" NSS_WRAPPER_PASSWD="$nss/passwd" NSS_WRAPPER_GROUP="$nss/group"
# Sessions get the same names, and the image's PATH (sshd would reset it to /usr/bin:/bin)
set -- -f "$config" -o "SetEnv=LD_PRELOAD=$lib NSS_WRAPPER_PASSWD=$nss/passwd NSS_WRAPPER_GROUP=$nss/group PATH=$PATH"
"$sshd" -t "$@" || die "sshd refuses its configuration (see above)"

(
    delay=1
    while :; do
        started=$(date +%s)
        code=0
        "$sshd" -D -e "$@" || code=$?
        # A run that lasted a minute was healthy: start again at once; else back off.
        if [ $(($(date +%s) - started)) -ge 60 ]; then delay=1; fi
        echo "start-sshd: sshd exited with status $code; starting it again in ${delay}s" >&2
        sleep "$delay"
        delay=$((delay * 2 > 30 ? 30 : delay * 2))
    done
) </dev/null &

"""``gpubot doctor``'s access checks (issue 13): Caddy's admin API and the certificate it
serves (a wildcard file, or its internal CA's root, which browsers must be told to trust),
and, per environment, the image and whether this host's driver runs its CUDA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.doctor import CheckResult
from bot.domain.environments import Environment, driver_runs
from bot.domain.gpus import DriverInfo

PROXY, CERT, ENVS = "Proxy (Caddy)", "Proxy certificate", "Environments"


def proxy(proxy: Any, domain: str | None) -> CheckResult:
    if proxy is None:
        return CheckResult(PROXY, True, "skipped: GPUBOT_PROXY=none: direct ports over plain "
                           "HTTP, for a trusted LAN only")
    from bot.adapters.caddy import ProxyError

    try:
        serving = proxy.serving()
    except ProxyError as exc:
        return CheckResult(PROXY, False, str(exc), "start Caddy: `systemctl start "
                           "gpubot-caddy` (deploy/systemd), or let `gpubot serve` start it")
    if not serving:
        return CheckResult(PROXY, False, f"Caddy answers at {proxy.admin_url} but does not "
                           f"serve *.{domain} yet", "start `gpubot serve`: it configures "
                           "Caddy (and its reconciler keeps the routes right)")
    routes = len(proxy.routes())
    return CheckResult(PROXY, True, f"Caddy at {proxy.admin_url} serves *.{domain} on "
                       f"{proxy.listen}; {routes} lease route(s)")


def certificate(proxy: Any, domain: str | None, root_file: Path | None = None) -> CheckResult:
    if proxy is None:
        return CheckResult(CERT, True, "skipped: no proxy")
    from cryptography import x509

    if proxy.tls_files:
        cert_file, key_file = proxy.tls_files
        try:
            cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
            Path(key_file).read_bytes()
        except (OSError, ValueError) as exc:
            return CheckResult(CERT, False, f"GPUBOT_TLS_CERT/KEY cannot be read: {exc}",
                               f"point them at the PEM certificate and key of *.{domain}")
        names = _names(cert)
        problem = _validity(cert)
        if f"*.{domain}" not in names:
            problem = f"it is for {', '.join(names) or 'no DNS name'}, not *.{domain}"
        if problem:
            return CheckResult(CERT, False, f"{cert_file}: {problem}",
                               f"get a certificate for *.{domain} (and its key)")
        return CheckResult(CERT, True, f"{cert_file}: *.{domain}, valid until "
                           f"{_until(cert)}")
    from cryptography.hazmat.primitives import hashes

    from bot.adapters.caddy import ProxyError

    try:
        pem = proxy.root_certificate()
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ProxyError, ValueError, KeyError) as exc:
        return CheckResult(CERT, False, f"Caddy's internal CA root cannot be read: {exc}",
                           "fix the 'Proxy (Caddy)' check first")
    problem = _validity(cert)
    where = (f"the file {root_file}" if root_file and root_file.is_file() else
             f"`curl -s {proxy.admin_url}/pki/ca/local` (root_certificate)")
    detail = (f"Caddy's internal CA signs *.{domain}: root "
              f"'{cert.subject.rfc4514_string()}', valid until {_until(cert)}, SHA-256 "
              f"{cert.fingerprint(hashes.SHA256()).hex(':').upper()}; users' browsers must "
              f"trust it: {where}")
    if problem:
        return CheckResult(CERT, False, f"{detail}; {problem}", "restart Caddy to renew its CA")
    return CheckResult(CERT, True, detail, "or set GPUBOT_TLS_CERT/KEY to a wildcard "
                       "certificate browsers already trust")


def environments(fake_gpus: int, envs: Sequence[Environment], driver: list[DriverInfo],
                 client: Any) -> CheckResult:
    if client is None:
        return CheckResult(ENVS, False, "not checked: Docker is not reachable",
                           "fix the 'Docker engine' check first")
    from bot.adapters.docker_images import DockerImages

    images = DockerImages(client)
    have = driver[0].cuda_version if driver else None
    parts, missing, too_new = [], [], []
    for env in envs:
        info = images.inspect(env.image)
        runs = True if fake_gpus else driver_runs(have, info.cuda)
        if not info.present:
            missing.append(env.image)
        elif runs is False:
            too_new.append(f"{env.name} needs CUDA {info.cuda}")
        parts.append(f"{env.name}={env.image} (CUDA {info.cuda or 'not stated'})")
    detail = "; ".join(parts)
    if missing:
        return CheckResult(ENVS, False, f"{detail}; not on this engine: {', '.join(missing)}",
                           "`docker pull` them or build them (image/README.md)")
    if too_new:
        return CheckResult(ENVS, False, f"{detail}; the driver supports CUDA {have}: "
                           f"{', '.join(too_new)}", "install a newer NVIDIA driver or offer "
                           "images built for an older CUDA")
    return CheckResult(ENVS, True, detail + ("" if fake_gpus else f"; driver CUDA {have}"))


def _names(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        return list(cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return []


def _validity(cert: Any) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc <= now:
        return f"it expired on {_until(cert)}"
    if cert.not_valid_before_utc > now:
        return "it is not valid yet"
    return ""


def _until(cert: Any) -> str:
    return cert.not_valid_after_utc.strftime("%Y-%m-%d")

"""Jupyter's password hash, read from the file start-jupyter checked: never on argv or in
the environment, where `ps` and `docker inspect` would show it."""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by traitlets
c.PasswordIdentityProvider.hashed_password = (
    Path(os.environ["JUPYTER_PASSWORD_HASH_FILE"]).read_text().strip()
)

# Behind gpubot's HTTPS proxy (GPUBOT_PROXY=caddy) Jupyter learns from X-Forwarded-Proto
# that the browser speaks HTTPS, and marks its session cookie Secure. Only the proxy can
# reach Jupyter then (published on loopback); with direct ports a client could only make
# its own cookie stricter.
c.ServerApp.trust_xheaders = True

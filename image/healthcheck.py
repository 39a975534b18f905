"""Docker HEALTHCHECK: healthy when Jupyter's login page answers 200 (stdlib only)."""

import sys
import urllib.request

URL = "http://127.0.0.1:8888/login"


def main() -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(URL, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {URL}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

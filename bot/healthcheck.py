"""``python -m bot.healthcheck``: the container image's HEALTHCHECK.

It asks the running bot's ``/healthz`` (served where ``REHOST_OBSERVABILITY_LISTEN`` says,
127.0.0.1:9464 by default, as the image sets it) and exits 0 on a 200, 1 on anything else,
printing one line: the status and the bot's reason (``docker inspect`` shows it). A
wildcard listen address (``0.0.0.0``, ``::``) is asked through loopback.

The standard library only, and nothing else of rehost: it runs every 30 seconds beside
the bot, so it should start fast, and it needs no curl in the slim image.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

VARIABLE = "REHOST_OBSERVABILITY_LISTEN"
DEFAULT_LISTEN = "127.0.0.1:9464"
TIMEOUT = 5.0  # seconds; the HEALTHCHECK's own --timeout should be at least this
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def healthz_url(environ: Mapping[str, str]) -> str:
    """The URL of ``/healthz`` for the listen address in ``environ``."""
    listen = environ.get(VARIABLE, "").strip() or DEFAULT_LISTEN
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    host = _LOOPBACK.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def check(url: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """Whether ``url`` answered 200, and a line saying what it answered."""
    # No proxy: HTTP_PROXY in the container's environment must not take a loopback request.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200, f"{response.status} {_body(response.read())}"
    except urllib.error.HTTPError as error:
        return False, f"{error.code} {_body(error.read())}"
    except (OSError, ValueError) as error:
        # OSError: refused, timed out; ValueError: a listen address that is no URL.
        reason = getattr(error, "reason", None) or error
        return False, f"{url}: {reason}"


def _body(data: bytes) -> str:
    """The answer's text on one line, cut short: /healthz answers a short JSON reason."""
    return " ".join(data.decode(errors="replace").split())[:500]


def main() -> int:
    healthy, said = check(healthz_url(os.environ))
    print(said, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())

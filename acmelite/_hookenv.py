"""The environment acmelite hands to the commands it runs (deploy hooks, DNS hooks).

Hooks get acmelite's environment — they often need a cloud CLI's credentials or a
KUBECONFIG — minus acmelite's own secrets, which no hook needs and which a hook that logs
its environment would leak.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["SECRET_VARIABLES", "hook_environ"]

#: acmelite's own secrets, never passed on to a hook.
SECRET_VARIABLES = frozenset(
    {
        "ACMELITE_TSIG_SECRET",
        "ACMELITE_DNS_TSIG_SECRET",
        "ACMELITE_DNS_API_KEY",
        "ACMELITE_EAB_HMAC_KEY",
    }
)


def hook_environ(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without acmelite's secrets, plus ``extra``."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k not in SECRET_VARIABLES}
    env.update(extra)
    return env

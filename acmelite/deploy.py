"""Getting a new certificate to the server that uses it: a deploy hook, a Kubernetes Secret.

The deploy hook is the user's shell command. It runs after the new files are in place
(after ``issue`` and after every renewal) with two variables in its environment:

``ACMELITE_CERT_DIR``
    the output directory (absolute), holding ``privkey.pem``, ``cert.pem``, ``chain.pem``,
    ``fullchain.pem`` and, with a Kubernetes Secret, ``secret.yaml``;
``ACMELITE_NAMES``
    the certificate's names, separated by spaces.

A hook that fails (non-zero status, or no end within its timeout) raises
:class:`DeployHookError` carrying the last line it wrote on stderr; the files stay.

The Secret is a ``kubernetes.io/tls`` Secret (``tls.crt`` = the full chain, ``tls.key``)
written as JSON, which is also YAML, so ``kubectl apply -f secret.yaml`` takes it and no
YAML library is needed. It holds the private key, so the file is 0600.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._hookenv import hook_environ
from .constants import serial_hex
from .errors import DeployHookError, InvalidInput
from .storage import atomic_write

__all__ = [
    "SECRET_FILE",
    "DeployHookError",
    "SecretRef",
    "run_deploy_hook",
    "secret_manifest",
    "write_secret",
]

SECRET_FILE = "secret.yaml"  # noqa: S105 - a file name
DEFAULT_HOOK_TIMEOUT = 600.0

# RFC 1123 names as Kubernetes checks them: a Secret name is a DNS subdomain (253
# characters), a namespace a DNS label (63).
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_NAMESPACE = re.compile(_LABEL)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRef:
    """``NAME[/NAMESPACE]`` of the Kubernetes Secret to write."""

    name: str
    namespace: str = ""

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        name, slash, namespace = text.strip().partition("/")
        if not name or len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
            raise InvalidInput(
                f"Secret name {name!r}: use lowercase letters, digits, '-' and '.'"
                " (a DNS subdomain, at most 253 characters)"
            )
        if slash and (len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace)):
            raise InvalidInput(
                f"namespace {namespace!r}: use lowercase letters, digits and '-'"
                " (a DNS label, at most 63 characters)"
            )
        return cls(name=name, namespace=namespace)

    def __str__(self) -> str:
        return f"{self.name}/{self.namespace}" if self.namespace else self.name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def secret_manifest(ref: SecretRef, *, fullchain_pem: bytes, key_pem: bytes) -> dict[str, object]:
    """The Secret as a JSON object; the namespace is left out unless ``ref`` names one."""
    if not key_pem:
        raise InvalidInput(
            "a Kubernetes TLS Secret needs the private key (there is none with a CSR of yours)"
        )
    from cryptography import x509  # here: `acmelite list` of a warm tree never needs it

    leaf = x509.load_pem_x509_certificate(fullchain_pem)
    metadata: dict[str, object] = {"name": ref.name}
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": "acmelite"}
    metadata["annotations"] = {
        "acmelite/serial": serial_hex(leaf.serial_number),
        "acmelite/not-after": leaf.not_valid_after_utc.isoformat(),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": _b64(fullchain_pem), "tls.key": _b64(key_pem)},
    }


def write_secret(out: str | Path, ref: SecretRef, *, fullchain_pem: bytes, key_pem: bytes) -> Path:
    """Write ``out/secret.yaml`` atomically with mode 0600; returns its path."""
    manifest = secret_manifest(ref, fullchain_pem=fullchain_pem, key_pem=key_pem)
    path = Path(out) / SECRET_FILE
    atomic_write(path, json.dumps(manifest, indent=2).encode() + b"\n", mode=0o600)
    return path


def hook_environment(cert_dir: str | Path, names: Sequence[str]) -> dict[str, str]:
    """The variables a deploy hook gets on top of acmelite's environment (less its secrets)."""
    return {
        "ACMELITE_CERT_DIR": os.path.abspath(cert_dir),
        "ACMELITE_NAMES": " ".join(names),
    }


def run_deploy_hook(
    command: str,
    *,
    cert_dir: str | Path,
    names: Sequence[str],
    timeout: float = DEFAULT_HOOK_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Run ``command`` through ``/bin/sh``; return what it printed (stdout then stderr).

    Raises :class:`DeployHookError` when it exits non-zero or outlives ``timeout``.
    """
    env = hook_environ(hook_environment(cert_dir, names), environ)
    try:
        # Its own process group, so a timeout stops the whole pipeline, not just /bin/sh.
        proc = subprocess.Popen(  # noqa: S602 - the hook is the user's shell command by design
            command,
            shell=True,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise DeployHookError(
            f"deploy hook could not start: {exc.strerror}", status=None, stderr=""
        ) from None
    with proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            raise DeployHookError(
                f"deploy hook did not finish within {timeout:g} s: {command}",
                status=None,
                stderr=stderr,
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
    if proc.returncode != 0:
        status = proc.returncode
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        last = _last_line(stderr) or _last_line(stdout) or "(no output)"
        raise DeployHookError(f"deploy hook {how}: {last}", status=status, stderr=stderr)
    return (stdout + stderr).strip()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""

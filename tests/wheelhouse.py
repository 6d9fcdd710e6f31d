"""Offline wheels of installed distributions, so a test can ``pip install`` with ``--no-index``.

A test that installs acmelite's wheel into a fresh virtualenv must not download its
dependencies. :func:`wheelhouse` packs every distribution the test environment already has
(the named ones and, recursively, what they require) back into a wheel from the files its
``RECORD`` lists, tagged as its ``WHEEL`` file says. pip then resolves the new wheel's
``Requires-Dist`` against those files alone, which also checks acmelite's dependency metadata.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_SKIP_IN_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def wheelhouse(names: Iterable[str], out: Path) -> list[Path]:
    """Wheels of ``names`` and of everything they require (without extras), into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    todo = list(names)
    wheels = []
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        key = canonicalize_name(dist.metadata["Name"])
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
        wheels.append(_repack(dist, out))
    return wheels


def _repack(dist: importlib.metadata.Distribution, out: Path) -> Path:
    name = dist.metadata["Name"].replace("-", "_").replace(".", "_")
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]  # fmt: skip
    if not tags:
        raise RuntimeError(f"{name} has no WHEEL file with a Tag: cannot repack it")
    wheel = out / f"{name}-{dist.version}-{tags[0]}.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            parts = file.parts
            if parts[0] == ".." or "__pycache__" in parts:
                continue
            if parts[0].endswith(".dist-info") and parts[-1] in _SKIP_IN_DIST_INFO:
                continue
            data = Path(str(file.locate())).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{file.as_posix()},sha256={digest.decode()},{len(data)}")
        info = next(p for p in (dist.files or []) if p.parts[0].endswith(".dist-info"))
        record_name = f"{info.parts[0]}/RECORD"
        archive.writestr(record_name, "\n".join([*record, f"{record_name},,"]) + "\n")
    return wheel

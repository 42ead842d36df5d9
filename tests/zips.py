"""Model-zip surgery for the tests that feed broken packages to the zip checks (tests/ and integration/ both use it)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def rezip(src: str | Path, dest: str | Path, drop: tuple[str, ...] = (), add: tuple[tuple[str, str | bytes], ...] = ()) -> str | Path:
    """Copy zip ``src`` to ``dest`` without the members named in ``drop``, then append ``add``'s ``(name, data)``
    members; returns ``dest``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for name in zin.namelist():
            if name not in drop:
                zout.writestr(name, zin.read(name))
        for name, data in add:
            zout.writestr(name, data)
    return dest

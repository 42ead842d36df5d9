"""Settings as dataclasses read from TOML: :func:`setting` declares a field with its help text (and choices),
:func:`build_settings` turns a TOML table into the dataclass, checking every field's type and choices, and
:func:`read_toml` reads the file.  Both halves define their settings with these; every problem is a
:class:`~distilrank.errors.ConfigError` naming the file and the dotted field."""

from __future__ import annotations

import dataclasses
import tomllib
import types
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Union, get_type_hints

from distilrank.errors import ConfigError


def setting(default: Any = dataclasses.MISSING, *, help: str, factory: Any = dataclasses.MISSING,
            choices: tuple[str, ...] | None = None, tasks: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its help text (shown by ``--help`` and the CLI reference), for a string with a fixed
    set of values its ``choices`` (checked by argparse and by :func:`build_settings`), and for a setting only some
    tasks read, those ``tasks`` (:func:`build_settings` rejects it in a config of another task)."""
    metadata = {"help": help, **({"choices": choices} if choices else {}), **({"tasks": tasks} if tasks else {})}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def optional_inner(hint: Any) -> Any:
    """``int`` for ``int | None`` (TOML has no null: a field that may be none is omitted), else ``hint``."""
    if isinstance(hint, types.UnionType) or getattr(hint, "__origin__", None) is Union:
        inner = [a for a in hint.__args__ if a is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return hint


def build_settings(cls: type, raw: Any, source: str, where: str, task: str | None = None) -> Any:
    """``cls`` from the TOML table ``raw`` (at dotted ``where`` of ``source``), nested tables and arrays of tables too:
    every field's type and choices checked, and, given the config's ``task``, a field that declares other ``tasks``
    refused (a setting of another task is an error, never silently ignored)."""
    if not isinstance(raw, dict):
        raise ConfigError(source, where or "<root>", f"expected a table, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(source, f"{where}.{unknown[0]}".lstrip("."), f"unknown field (known: {', '.join(sorted(names - {'source'}))})")
    kwargs = {}
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
    for key, value in raw.items():
        path = f"{where}.{key}".lstrip(".")
        tasks = meta[key].get("tasks")
        if task is not None and tasks and task not in tasks:
            raise ConfigError(source, path, f"applies to task {' / '.join(tasks)}, not to task {task!r}")
        kwargs[key] = convert_setting(hints[key], value, source, path, task)
        choices = meta[key].get("choices")
        if choices and kwargs[key] not in choices:
            raise ConfigError(source, path, f"must be one of {list(choices)}, got {kwargs[key]!r}")
    return cls(**kwargs)


def convert_setting(hint: Any, value: Any, source: str, path: str, task: str | None = None) -> Any:
    hint = optional_inner(hint)
    origin = getattr(hint, "__origin__", None)
    if dataclasses.is_dataclass(hint):
        return build_settings(hint, value, source, path, task)
    if origin is list:
        (inner,) = hint.__args__
        if not isinstance(value, list):
            raise ConfigError(source, path, f"expected a list, got {value!r}")
        return [convert_setting(inner, v, source, f"{path}[{i}]", task) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(source, path, f"expected {hint.__name__}, got {value!r}")
    return value


def read_toml(path: str | Path) -> dict:
    """The parsed TOML file; :class:`ConfigError` naming the file for a missing file or a syntax error."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, "<file>", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "<syntax>", str(exc)) from exc


def apply_overrides(raw: dict, overrides: Sequence[str], source: str | Path) -> dict:
    """A copy of the TOML table ``raw`` with each ``"dotted.key=VALUE"`` of ``overrides`` set (``teachers[0].epochs=2``
    indexes an array of tables).  ``VALUE`` is read as a TOML value (``1.5``, ``true``, ``[1, 2]``, ``"x"``), else as a
    string.  The result is validated like the file itself, so an unknown field or a wrong type is a
    :class:`ConfigError` naming it; a key whose table or array element does not exist is one too."""
    import copy
    import re

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(source, item, "an override is KEY=VALUE, e.g. distill.temperature=1.5")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        parts = key.strip().split(".")
        node: Any = out
        for depth, part in enumerate(parts):
            m = re.fullmatch(r"([A-Za-z_][\w-]*)(?:\[(\d+)\])?", part)
            if m is None:
                raise ConfigError(source, key, f"not a setting path: {part!r}")
            name, index = m.group(1), m.group(2)
            last = depth == len(parts) - 1
            if index is not None:
                seq = node.get(name) if isinstance(node, dict) else None
                if not isinstance(seq, list) or int(index) >= len(seq):
                    raise ConfigError(source, key, f"{name}[{index}] does not exist in the file")
                if last:
                    seq[int(index)] = value
                else:
                    node = seq[int(index)]
            elif last:
                node[name] = value
            else:
                node = node.setdefault(name, {})
                if not isinstance(node, dict):
                    raise ConfigError(source, key, f"{name} is not a table")
    return out

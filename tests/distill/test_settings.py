"""One definition per setting: the config dataclasses are the TOML sections, the CLI flags are generated from
their fields (with their help), and the training code's own dataclasses agree with them."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from distilrank.cli import build_parser
from distilrank.cli_support import settings_from_args
from distilrank.distill import cli
from distilrank.distill.config import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    RunConfig,
    StudentSection,
    TeacherConfig,
    load_config,
    read_toml,
)
from distilrank.errors import ConfigError
from distilrank.sources import DataSource
from tests.paths import REPO_ROOT, needs_config_data

ROOT = REPO_ROOT


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) for the parser and every nested subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def _parser_of(*path: str) -> argparse.ArgumentParser:
    return dict(_subcommands(build_parser()))[path]


def _flag_dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "json")}


def test_every_flag_of_every_subcommand_has_help():
    missing = []
    commands = list(_subcommands(build_parser()))
    assert len(commands) > 25  # run ... ab assign: the walk reaches the nested subcommands
    for path, parser in commands:
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"distilrank {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_settings_field_has_help():
    for cls in (DataSource, DataConfig, AugmentConfig, TeacherConfig, DistillConfig, StudentSection, RunConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help", "").strip(), f"{cls.__name__}.{f.name} has no help"


@pytest.mark.parametrize(("path", "cls", "excluded"), [
    (("augment",), AugmentConfig, cli.AUGMENT_EXCLUDED),
    (("teacher", "train"), TeacherConfig, cli.TEACHER_TRAIN_EXCLUDED),
    (("student", "train"), StudentSection, cli.STUDENT_TRAIN_EXCLUDED),
])
def test_section_fields_are_the_subcommand_flags(path, cls, excluded):
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(excluded) <= fields  # an exclusion names a real field
    assert fields - set(excluded) <= _flag_dests(_parser_of(*path))
    assert all(_parser_of(*path).get_default(name) is None for name in excluded)  # excluded really means no flag


@pytest.mark.parametrize(("argv", "cls"), [
    (["augment", "in.tsv", "--out", "o.jsonl"], AugmentConfig),
    (["teacher", "train", "--train", "t.tsv", "--out", "o"], TeacherConfig),
    (["student", "train", "--data", "d.tsv", "--out", "o"], StudentSection),
])
def test_cli_defaults_are_the_section_defaults(argv, cls):
    args = build_parser().parse_args(argv)
    assert settings_from_args(args, cls) == cls()


def test_flags_parse_into_the_section():
    args = build_parser().parse_args(["student", "train", "--data", "d", "--out", "o", "--hidden", "32,16", "--interactions",
                                          "--gold-epochs", "9", "--loss", "mse"])
    s = settings_from_args(args, StudentSection)
    assert (s.hidden, s.interactions, s.gold_epochs, s.loss) == ([32, 16], True, 9, "mse")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["student", "train", "--data", "d", "--out", "o", "--loss", "l1"])


def test_the_saved_architecture_record_has_the_section_defaults():
    """A student's saved architecture (``student_config.json``, :class:`StudentConfig`, which also records the real
    vocabulary size) starts from the defaults the ``[student]`` section (TOML, CLI) gives."""
    from distilrank.distill.student.model import StudentConfig

    for internal, section in ((StudentConfig, StudentSection),):
        ours = {f.name: f for f in dataclasses.fields(section)}
        shared = [f for f in dataclasses.fields(internal) if f.name in ours and f.name != "seed"
                  and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)]
        assert len(shared) >= 5, internal
        for f in shared:
            theirs = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            mine = ours[f.name].default if ours[f.name].default is not dataclasses.MISSING else ours[f.name].default_factory()
            assert theirs == mine, f"{internal.__name__}.{f.name} = {theirs!r} but {section.__name__}.{f.name} = {mine!r}"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_use_only_section_fields(path):
    raw = read_toml(path)
    if "experiment" in raw or "online" in raw or raw.get("task") == "ranking":
        return  # A/B, online A/B and ranking configs have their own dataclasses (distilrank.plugin.abtest.config,
        # distilrank.plugin.abtest.online_config, distilrank.distill.ranking.config)
    needs_config_data(path)
    cfg = load_config(path)
    for section, cls in (("augment", AugmentConfig), ("distill", DistillConfig), ("student", StudentSection)):
        assert set(raw.get(section, {})) <= {f.name for f in dataclasses.fields(cls)}
        assert set(raw.get(section, {})) <= set(dataclasses.asdict(getattr(cfg, section)))


def test_zero_is_not_none(tmp_path):
    (tmp_path / "d.tsv").write_text("sentence\tlabel\nfine\t1\n")
    base = '[data.train]\npath = "d.tsv"\n[data.dev]\npath = "d.tsv"\n[[teachers]]\nname = "t"\n[distill]\ncombine = "t"\n'
    for extra, where in (("[augment]\nmax_rows = 0\n", "augment.max_rows"), ("[student]\ngold_epochs = 0\n", "student.gold_epochs")):
        (tmp_path / "c.toml").write_text(base + extra)
        with pytest.raises(ConfigError, match=where.replace(".", r"\.") + ".*omit the field for none"):
            load_config(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text(base + '[student]\nloss = "l1"\n')
    with pytest.raises(ConfigError, match=r"student\.loss.*must be one of \['bce', 'mse', 'listwise'\]"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text(base + '[student]\nloss = "listwise"\n')
    with pytest.raises(ConfigError, match=r"student\.loss.*only ranking runs"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text(base)
    cfg = load_config(tmp_path / "c.toml")
    assert (cfg.augment.max_rows, cfg.student.gold_epochs, cfg.teachers[0].num_layers, cfg.data.train.limit) == (None, None, None, None)


def test_cli_reference_is_the_parser():
    from distilrank.cli_reference import REFERENCE_PATH, reference_markdown

    assert REFERENCE_PATH == ROOT / "core" / "CLI.md"
    assert REFERENCE_PATH.read_text(encoding="utf-8") == reference_markdown(build_parser()), \
        "core/CLI.md is stale: run `python -m distilrank.cli_reference --write`"


def test_function_defaults_are_the_section_defaults():
    """The four defaults that once disagreed (augment n_per_example, tokenizer vocab/min-count, teacher max_length,
    scoring batch size) and the other keyword defaults of the stage internals come from the sections."""
    import inspect

    from distilrank.distill.augment import augment
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.distill.teacher.scoring import score_transfer_set

    checks = [(augment, AugmentConfig, {}), (build_student_tokenizer, StudentSection, {}),
              (score_transfer_set, TeacherConfig, {"batch_size": "score_batch_size"})]
    for fn, section, renamed in checks:
        defaults = {f.name: f.default for f in dataclasses.fields(section)}
        params = inspect.signature(fn).parameters
        compared = 0
        for name, p in params.items():
            field_name = renamed.get(name, name)
            if field_name in defaults and p.default is not inspect.Parameter.empty and name != "seed":
                assert p.default == defaults[field_name], \
                    f"{fn.__name__}({name}={p.default!r}) but {section.__name__}.{field_name} = {defaults[field_name]!r}"
                compared += 1
        assert compared >= 2, fn.__name__

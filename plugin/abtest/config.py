"""The TOML file of ``distilrank ab run``: the index, the judged query set, the arms, the statistics options.

Example (``configs/ab-icecat.toml``)::

    [opensearch]                       # connection, as in distilrank.plugin.connection (optional; env vars also work)
    url = "http://127.0.0.1:9200"

    [experiment]
    name = "icecat-bm25-vs-student"
    index = "icecat"
    k = 10                             # metrics @k; every arm returns k hits
    judgments = "../integration/data/icecat-judgments.csv"   # CSV/TSV/JSON/JSONL or ESCI (SRW) file
    queryset = "queries.txt"           # optional: more queries (one per line or an SRW queryset file)
    grade_map = "esci"                 # optional
    gain = "exponential"               # or "linear"
    threshold = 1                      # grade >= threshold is relevant
    primary_metric = "NDCG@10"         # optional: what ab promote decides on (any spelling: "ndcg@10", "MRR", ...)
    baseline = "bm25"                  # default: the first arm
    out = "runs/ab/icecat"             # report.json + report.html
    id_field = "_id"                   # hit field matching the judgments' doc ids
    seed = 0

    [experiment.teacher_judge]         # optional: grade unjudged pooled docs with a teacher cross-encoder
    zip = "teacher.zip"                # an ML Commons ONNX zip (scored locally)   -- or --
    checkpoint = "teachers/minilm/best"  # a distilrank teacher checkpoint
    name = "MiniLM-L6"
    text_field = "title"
    depth = 10                         # pooled top-depth of every arm
    mode = "fill"                      # "fill": only unjudged docs; "replace": ignore the human judgments

    [[arm]]
    name = "bm25"
    query = { match = { title = "{{query}}" } }      # query template; "{{query}}" is replaced by the query text

    [[arm]]
    name = "student"
    pipeline = "distilrank-staging"    # or alias = "staging"
    query = { match = { title = "{{query}}" } }

    [[arm]]
    name = "student-rescorer"          # the same student inside the engine: the distilrank rescorer plugin
    query = { match = { title = "{{query}}" } }
    rescore = { model = "staging", fields = ["title"], window_size = 100 }   # + score_mode, query_weight, ...

Relative paths are resolved against the config file's folder. Errors name the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilrank.data_root import config_path
from distilrank.errors import ConfigError

PLACEHOLDER = "{{query}}"


@dataclass
class ArmConfig:
    name: str
    query: dict
    pipeline: str | None = None
    alias: str | None = None
    rerank: bool | None = None  # add ext.rerank (default: when the pipeline has a rerank processor)
    rescore: dict | None = None  # a distilrank rescore: model (alias or id), fields, window_size, score_mode, ...

    def body(self, query_text: str, k: int) -> dict:
        """The search body for one query: the template with ``{{query}}`` replaced (JSON-escaped), plus the
        ``distilrank`` rescore clause of a rescorer arm."""
        text = json.dumps(self.query).replace(PLACEHOLDER, json.dumps(query_text)[1:-1])
        body: dict = {"size": k, "query": json.loads(text)}
        if self.rescore:
            from distilrank.plugin.rescore import rescore_clause

            r = self.rescore
            body["rescore"] = rescore_clause(query_text, model=r["model"], fields=list(r["fields"]),
                                             window_size=int(r.get("window_size", 100)), score_mode=r.get("score_mode", "replace"),
                                             query_weight=r.get("query_weight"), model_weight=r.get("model_weight"),
                                             text_source=r.get("text_source"))
        return body


@dataclass
class TeacherJudgeConfig:
    name: str
    text_field: str = "title"
    zip: str | None = None
    checkpoint: str | None = None
    depth: int = 10
    mode: str = "fill"


@dataclass
class ABConfig:
    path: Path
    name: str
    index: str
    arms: list[ArmConfig]
    judgments: str | None = None
    queryset: str | None = None
    grade_map: Any = None
    k: int = 10
    gain: str = "exponential"
    threshold: float = 1.0
    baseline: str | None = None
    out: str = "runs/ab"
    id_field: str = "_id"
    seed: int = 0
    alpha: float = 0.05
    n_permutations: int = 10_000
    bootstrap_resamples: int = 10_000
    impressions: int = 10
    teacher_judge: TeacherJudgeConfig | None = None
    connection: dict = field(default_factory=dict)
    primary_metric: str | None = None


EXPERIMENT_KEYS = {"name", "index", "judgments", "queryset", "grade_map", "k", "gain", "threshold", "baseline", "out",
                   "id_field", "seed", "alpha", "n_permutations", "bootstrap_resamples", "impressions", "teacher_judge",
                   "primary_metric"}


def _check_primary_metric(path: Path, cfg: ABConfig) -> None:
    """``experiment.primary_metric``: a metric of every report (any spelling, e.g. ``"ndcg@10"`` or ``"NDCG@10"``),
    cut at ``experiment.k``; stored in the report's spelling."""
    from distilrank.errors import DistilRankError
    from distilrank.plugin.abtest.metrics import METRICS, canonical_metric_name, parse_metric_name

    if cfg.primary_metric is None:
        return
    if not isinstance(cfg.primary_metric, str) or parse_metric_name(cfg.primary_metric) is None:
        raise ConfigError(path, "experiment.primary_metric", f"{cfg.primary_metric!r} is not one of the metrics "
                          f"{', '.join(METRICS)} (written e.g. \"NDCG@{cfg.k}\", \"MRR\", \"ndcg@{cfg.k}\")")
    try:
        cfg.primary_metric = canonical_metric_name(cfg.primary_metric, cfg.k)
    except DistilRankError as exc:
        raise ConfigError(path, "experiment.primary_metric", str(exc)) from None


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    return str(config_path(base, value))


def _check_rescore(path: Path, where: str, arm: dict) -> None:
    """A rescorer arm: ``rescore = {model, fields, [window_size, score_mode, query_weight, model_weight, text_source]}``."""
    from distilrank.errors import DistilRankError
    from distilrank.plugin.rescore import rescore_clause

    r = arm["rescore"]
    if arm.get("pipeline") or arm.get("alias"):
        raise ConfigError(path, f"{where}.rescore", "a rescorer arm has no pipeline or alias (the model is rescore.model)")
    if not isinstance(r, dict):
        raise ConfigError(path, f"{where}.rescore", "must be a table, e.g. { model = \"staging\", fields = [\"title\"] }")
    known = {"model", "fields", "window_size", "score_mode", "query_weight", "model_weight", "text_source"}
    if set(r) - known:
        raise ConfigError(path, f"{where}.rescore.{sorted(set(r) - known)[0]}", f"unknown key (known: {', '.join(sorted(known))})")
    if not isinstance(r.get("fields"), list):
        raise ConfigError(path, f"{where}.rescore.fields", "required: the document fields the student reads, e.g. [\"title\"]")
    try:
        rescore_clause("q", model=r.get("model", ""), fields=r["fields"], window_size=r.get("window_size", 100),
                       score_mode=r.get("score_mode", "replace"), query_weight=r.get("query_weight"),
                       model_weight=r.get("model_weight"), text_source=r.get("text_source"))
    except DistilRankError as exc:
        raise ConfigError(path, f"{where}.rescore", str(exc)) from None


def load_ab_config(path: str | Path) -> ABConfig:
    """Read and validate an A/B config; raises :class:`ConfigError` naming the file and field."""
    from distilrank.settings import read_toml

    path = Path(path)
    raw = read_toml(path)
    base = path.resolve().parent
    exp = raw.get("experiment")
    if not isinstance(exp, dict):
        raise ConfigError(path, "experiment", "missing [experiment] table")
    unknown = set(exp) - EXPERIMENT_KEYS
    if unknown:
        raise ConfigError(path, f"experiment.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(EXPERIMENT_KEYS))})")
    for key in ("name", "index"):
        if not isinstance(exp.get(key), str) or not exp[key]:
            raise ConfigError(path, f"experiment.{key}", "required, a non-empty string")
    arms_raw = raw.get("arm")
    if not isinstance(arms_raw, list) or len(arms_raw) < 2:
        raise ConfigError(path, "arm", "at least two [[arm]] tables are needed")
    arms: list[ArmConfig] = []
    for i, a in enumerate(arms_raw):
        where = f"arm[{i}]"
        bad = set(a) - {"name", "query", "pipeline", "alias", "rerank", "rescore"}
        if bad:
            raise ConfigError(path, f"{where}.{sorted(bad)[0]}", "unknown key (known: name, query, pipeline, alias, rerank, rescore)")
        if not isinstance(a.get("name"), str) or not a["name"]:
            raise ConfigError(path, f"{where}.name", "required, a non-empty string")
        if not isinstance(a.get("query"), dict):
            raise ConfigError(path, f"{where}.query", "required: the query template as a table, e.g. { match = { title = \"{{query}}\" } }")
        if PLACEHOLDER not in json.dumps(a["query"]):
            raise ConfigError(path, f"{where}.query", f"the template must contain {PLACEHOLDER}")
        if a.get("pipeline") and a.get("alias"):
            raise ConfigError(path, f"{where}", "give pipeline or alias, not both")
        if "rescore" in a:
            _check_rescore(path, where, a)
        arms.append(ArmConfig(a["name"], a["query"], a.get("pipeline") or None, a.get("alias") or None, a.get("rerank"),
                              a.get("rescore")))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(path, "arm", f"arm names must be unique, got {names}")
    if exp.get("baseline") and exp["baseline"] not in names:
        raise ConfigError(path, "experiment.baseline", f"{exp['baseline']!r} is not one of the arms {names}")
    teacher = None
    if "teacher_judge" in exp:
        tj = exp["teacher_judge"]
        if not isinstance(tj, dict) or not tj.get("name"):
            raise ConfigError(path, "experiment.teacher_judge.name", "required")
        if bool(tj.get("zip")) == bool(tj.get("checkpoint")):
            raise ConfigError(path, "experiment.teacher_judge", "give exactly one of zip or checkpoint")
        if tj.get("mode", "fill") not in ("fill", "replace"):
            raise ConfigError(path, "experiment.teacher_judge.mode", "must be 'fill' or 'replace'")
        teacher = TeacherJudgeConfig(tj["name"], tj.get("text_field", "title"), _resolve(base, tj.get("zip")),
                                     _resolve(base, tj.get("checkpoint")), int(tj.get("depth", 10)), tj.get("mode", "fill"))
    if not exp.get("judgments") and teacher is None:
        raise ConfigError(path, "experiment.judgments", "required (or configure [experiment.teacher_judge] with a queryset)")
    if not exp.get("judgments") and not exp.get("queryset"):
        raise ConfigError(path, "experiment.queryset", "required when there are no judgments")
    try:
        cfg = ABConfig(
            path=path, name=exp["name"], index=exp["index"], arms=arms, judgments=_resolve(base, exp.get("judgments")),
            queryset=_resolve(base, exp.get("queryset")), grade_map=exp.get("grade_map"), k=int(exp.get("k", 10)),
            gain=str(exp.get("gain", "exponential")), threshold=float(exp.get("threshold", 1.0)), baseline=exp.get("baseline"),
            out=_resolve(base, exp.get("out", "runs/ab")), id_field=str(exp.get("id_field", "_id")), seed=int(exp.get("seed", 0)),
            alpha=float(exp.get("alpha", 0.05)), n_permutations=int(exp.get("n_permutations", 10_000)),
            bootstrap_resamples=int(exp.get("bootstrap_resamples", 10_000)), impressions=int(exp.get("impressions", 10)),
            teacher_judge=teacher, connection=dict(raw.get("opensearch", {})), primary_metric=exp.get("primary_metric"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(path, "experiment", f"a number field has a bad value ({exc})") from None
    if cfg.k < 1:
        raise ConfigError(path, "experiment.k", "must be >= 1")
    if cfg.gain not in ("exponential", "linear"):
        raise ConfigError(path, "experiment.gain", "must be 'exponential' or 'linear'")
    _check_primary_metric(path, cfg)
    return cfg

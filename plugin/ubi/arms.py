"""Live-traffic arms from an ``ab run`` config: each ``[[arm]]`` becomes a router :class:`Arm` with its whole search
body as the template (query, ``rescore.distilrank`` block, ``ext.rerank`` for a rerank pipeline), its pipeline, and
the model id / alias it serves, resolved on the cluster as ``ab run`` resolves them."""

from __future__ import annotations

from collections.abc import Sequence

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.config import PLACEHOLDER, ABConfig
from distilrank.plugin.abtest.router import Arm
from distilrank.plugin.transport import Transport


def equal_weights(n: int) -> list[float]:
    """``n`` percentages summing to exactly 100 (the last arm takes the rounding)."""
    if n < 1:
        raise DistilRankError("an experiment needs at least one arm")
    share = round(100.0 / n, 6)
    return [share] * (n - 1) + [100.0 - share * (n - 1)]


def router_arms(t: Transport, cfg: ABConfig, *, weights: Sequence[float] | None = None, k: int | None = None) -> list[Arm]:
    """One router arm per ``[[arm]]`` of ``cfg``, in config order, with ``weights`` percent of the users each
    (default: equal shares). ``k``: hits per search (default ``cfg.k``).

    The pipeline of an arm without one is ``"_none"``, so an index default pipeline does not leak into it (as in
    ``ab run``). Fails like ``ab run`` on a pipeline, alias or rescorer model that does not exist."""
    from distilrank.plugin.abtest.runner import resolve_arms

    weights = list(weights) if weights is not None else equal_weights(len(cfg.arms))
    if len(weights) != len(cfg.arms):
        raise DistilRankError(f"{cfg.path}: {len(weights)} weights for {len(cfg.arms)} arms "
                              f"({', '.join(a.name for a in cfg.arms)})")
    info = resolve_arms(t, cfg)
    out = []
    for arm, weight in zip(cfg.arms, weights):
        i = info[arm.name]
        template = arm.body(PLACEHOLDER, int(k or cfg.k))
        if i["rerank"]:
            template["ext"] = {"rerank": {"query_context": {"query_text": PLACEHOLDER}}}
        out.append(Arm(arm.name, i["pipeline"] or "_none", float(weight), template=template,
                       model_id=i.get("model_id"), alias=i.get("alias")))
    return out

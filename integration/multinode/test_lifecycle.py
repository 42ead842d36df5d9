"""The rescorer's model lifecycle on three nodes: a warm before an alias moves never evicts a model behind another
live alias (``staging``, ``prod`` and two A/B arms live, cache of 4 per node), and a deleted model leaves every node
(``_stats`` of each) while a search naming it gets the 4xx error whichever node coordinates."""
from __future__ import annotations

import os

import pytest
from conftest import INDEX, node_transport, rescorer_search

from distilrank.plugin import aliases, registry_store, rescore, rescorer_api
from distilrank.plugin.transport import ClusterError

PREFIX = f"lc{os.getpid()}"
LIVE = {"staging": 0, "prod": 1, "arm-a": 2, "arm-b": 3}  # alias -> model index


@pytest.fixture(scope="module")
def five(t3, mn_index, tmp_path_factory):
    """Five variants of one student uploaded to the rescorer (ids ``<prefix>-0`` .. ``-4``) and four aliases in the
    registry pointing at the first four (``<prefix>-staging`` -> 0, ``-prod`` -> 1, ``-arm-a`` -> 2, ``-arm-b`` -> 3).
    Everything removed at the end."""
    import icecat_student

    from tests.zips import rezip

    work = tmp_path_factory.mktemp("lc")
    base = icecat_student.build_icecat_student(work, seed=30, name="lc-student")
    ids = []
    for i in range(5):
        mid = f"{PREFIX}-{i}"
        rescore.upload_model(t3, mid, rezip(base.zip, work / f"v{i}.zip", add=(("variant.txt", str(i)),)))
        ids.append(mid)
    for alias, i in LIVE.items():
        registry_store.save_alias(t3, {"alias": f"{PREFIX}-{alias}", "model_id": ids[i], "history": []})
    yield ids
    for alias in LIVE:
        registry_store.delete_alias(t3, f"{PREFIX}-{alias}")
    for mid in ids:
        rescore.delete_model(t3, mid)


def _held(t) -> dict[str, list[str]]:
    """Node name -> the model ids its cache holds."""
    return {n["name"]: [m["model_id"] for m in n["models"]] for n in rescorer_api.stats(t)["nodes"].values()}


def _other_aliases(t) -> set[str]:
    """Model ids behind every alias in the registry, whoever made them (other tests' aliases are live too)."""
    return {r["model_id"] for r in registry_store.all_aliases(t) if r.get("model_id")}


def test_a_warm_never_evicts_a_model_behind_another_live_alias(cluster3, t3, five):
    ids = five
    for alias in LIVE:  # every live alias serves, so each node has loaded its model
        for url in cluster3["urls"]:
            body, params = rescorer_search("notebook", model=f"{PREFIX}-{alias}")
            assert node_transport(url).request("POST", f"/{INDEX}/_search", body, params=params)["_shards"]["failed"] == 0
    for mid in ids[:4]:
        aliases.warm_rescorer(t3, mid, window_size=15)
    # promote the fifth model to staging: prod and both arms must stay loaded on every node, staging's old model may go
    warmed = aliases.warm_rescorer(t3, ids[4], window_size=15, alias=f"{PREFIX}-staging")
    assert set(ids[1:4]) <= set(warmed["protected"]) and ids[0] not in warmed["protected"]
    registry_store.save_alias(t3, {"alias": f"{PREFIX}-staging", "model_id": ids[4], "history": [{"model_id": ids[0]}]})
    protected = _other_aliases(t3) - {ids[4]}
    for node, held in _held(t3).items():
        assert ids[4] in held, node
        assert set(ids[1:4]) <= set(held), (node, held)
        evicted = {e for n in warmed["nodes"].values() if n["name"] == node for e in n["evicted"]}
        assert not evicted & protected, (node, evicted)
    print(f"warm with 4 live aliases on a 4-model cache: evicted {sorted({e for n in warmed['nodes'].values() for e in n['evicted']})}, "
          f"kept {sorted(set(ids[1:4]))} on every node")


def test_a_deleted_model_leaves_every_node_and_every_coordinator_refuses_it(cluster3, t3, five):
    mid = five[0]
    for url in cluster3["urls"]:  # loaded everywhere first
        body, params = rescorer_search("laptop bag", model=mid)
        node_transport(url).request("POST", f"/{INDEX}/_search", body, params=params)
    assert all(mid in held for held in _held(t3).values())
    out = rescorer_api.delete_model(t3, mid)
    assert out["deleted"] is True and out["_nodes"]["failed"] == 0 and len(out["evicted_on"]) == cluster3["nodes"], out
    assert all(mid not in held for held in _held(t3).values())
    for url in cluster3["urls"]:
        body, params = rescorer_search("laptop bag", model=mid)
        with pytest.raises(ClusterError) as err:
            node_transport(url).request("POST", f"/{INDEX}/_search", body, params=params)
        assert err.value.status == 400 and mid in str(err.value), (url, str(err.value)[:300])
    assert all(mid not in held for held in _held(t3).values())  # the refused searches loaded nothing

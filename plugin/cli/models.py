"""``distilrank plugin ...``: a model's way from zip to serving in OpenSearch (preflight, register, deploy, predict,
pipeline), the aliases that serve it (promote, rollback, ensure, rescore-body) and its end (list, undeploy, delete)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distilrank.plugin.cli.cluster import add_connection_args, finish, log, transport


def _split_docs(values: list[str] | None, path: str | None) -> list[str]:
    docs = list(values or [])
    if path:
        from distilrank.errors import DataError

        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                docs.append(line)
        if not docs:
            raise DataError(path, None, "no documents in the file")
    return docs


def cmd_rescore_body(args: argparse.Namespace) -> None:
    """``distilrank plugin rescore-body``: print a checked search body for the distilrank rescorer."""
    from distilrank.cli_support import emit
    from distilrank.plugin.rescore import rescore_search_body

    fields = [f for f in (args.fields or "title").split(",") if f]
    query = json.loads(args.query) if args.query else None
    body = rescore_search_body(args.query_text, model=args.model, fields=fields, window_size=args.window_size, size=args.size,
                               query=query, score_mode=args.score_mode, query_weight=args.query_weight,
                               model_weight=args.model_weight, text_source=args.text_source, normalization=args.normalization,
                               token_ids_field=args.token_ids_field)
    if args.index:
        from distilrank.plugin.pipelines import check_fields

        check_fields(transport(args), args.index, fields)
    emit(args, body, json.dumps(body, indent=2, ensure_ascii=False))


def cmd_tokenize_index(args: argparse.Namespace) -> None:
    """``distilrank plugin tokenize-index``: :func:`distilrank.plugin.tokenize_index.tokenize_index`."""
    from distilrank.plugin.tokenize_index import tokenize_index

    t = transport(args)
    fields = [f for f in args.fields.split(",") if f]
    res = tokenize_index(t, args.index, args.zip, fields, field=args.field, batch=args.batch, log=log)
    finish(args, t, res, f"{res['documents']} documents of {res['index']} hold token ids in {res['field']} (tokenizer "
                         f"{res['fingerprint']}; {res['empty_texts']} with an empty text); rescore with "
                         f"\"token_ids_field\": \"{res['field']}\"")


def cmd_explain(args: argparse.Namespace) -> None:
    """``distilrank plugin explain``: why one document ranks where it does under the distilrank rescorer."""
    from distilrank.plugin.explain import explain_hit, format_explanation
    from distilrank.plugin.rescore import rescore_search_body

    fields = [f for f in (args.fields or "title").split(",") if f]
    query = json.loads(args.query) if args.query else None
    body = rescore_search_body(args.query_text, model=args.model, fields=fields, window_size=args.window_size, size=args.window_size,
                               query=query, score_mode=args.score_mode, normalization=args.normalization, source=False)
    t = transport(args)
    res = explain_hit(t, args.index, body, args.doc)
    head = f"{args.doc}: rank {res['rank']} of {res['hits']}, score {res['score']:.6g} (query {args.query_text!r}, model {args.model})"
    finish(args, t, res, "\n".join([head, *format_explanation(res["explanation"])]))


def _fields(args: argparse.Namespace) -> list[str] | None:
    """``--fields a,b`` as a list (``None`` when not given)."""
    return [f for f in (args.fields or "").split(",") if f] or None


def cmd_preflight(args: argparse.Namespace) -> None:
    from distilrank.plugin import api
    from distilrank.plugin.preflight import Check, format_checks

    t = transport(args)
    res = api.preflight(t)
    finish(args, t, res, format_checks([Check(**c) for c in res["checks"]]) + ("\npreflight passed" if res["passed"] else "\npreflight FAILED"))
    if not res["passed"]:
        raise SystemExit(1)


def cmd_register(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.register(t, args.zip, group=args.group, name=args.name, expected_sha256=args.sha256, chunk_size=args.chunk_size,
                       wait=args.wait, deploy=args.deploy, smoke=not args.no_smoke_test, tolerance=args.tolerance,
                       promote_alias=args.promote, index=args.index, document_fields=_fields(args), depth=args.depth,
                       size=args.size, check=not args.skip_preflight, progress=not args.json, log=log,
                       rescorer=not args.no_rescorer)
    what = "reused, nothing uploaded" if res["reused"] else f"{res['bytes_uploaded']:,} bytes in {res['chunks']} chunk(s)"
    lines = [f"model {res['model_id']} ({what}) in group {args.group} ({res['model_group_id']}), sha256 {res['sha256']}"]
    if "deployment" in res:
        d = res["deployment"]
        lines.append(f"deploy: {d['state']}" + (f" on {len(d['nodes'])} node(s)" if d["state"] == "DEPLOYED" else ""))
    if "smoke_test" in res:
        s = res["smoke_test"]
        lines.append(f"smoke test: {s['n_pairs']} pairs, max |node - local onnxruntime| = {s['max_abs_diff']:.2e} (tolerance {s['tolerance']:g})")
    if "rescorer" in res:
        r = res["rescorer"]
        lines.append("distilrank rescorer: " + ("already had this zip" if r["reused"] else f"zip uploaded in {r['chunks']} chunk(s)"))
    if "promoted" in res:
        lines.append(f"alias {res['promoted']['alias']} -> {res['model_id']} via search pipeline {res['promoted']['pipeline']}"
                     + _warmed(res["promoted"]))
    finish(args, t, res, "\n".join(lines))


def cmd_deploy(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.deploy(t, args.model_id, zip_path=args.zip, wait=args.wait, tolerance=args.tolerance, log=log)
    d = res["deployment"]
    human = f"model {args.model_id}: {d['state']}" + (" (was already deployed)" if d["already_deployed"] else f" in {d['seconds']:.1f} s")
    if "smoke_test" in res:
        human += f"\nsmoke test passed: max |node - local| = {res['smoke_test']['max_abs_diff']:.2e} over {res['smoke_test']['n_pairs']} pairs"
    finish(args, t, res, human)


def cmd_predict(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.predict(t, args.model_id, args.query, _split_docs(args.doc, args.docs_file), zip_path=args.zip)
    rows = [f"{r['score']:10.5f}" + (f"  local {r['local_score']:10.5f}" if "local_score" in r else "") + f"  {r['doc'][:80]}"
            for r in res["results"]]
    finish(args, t, res, "\n".join(rows) + (f"\nmax |node - local| = {res['max_abs_diff']:.2e}" if "max_abs_diff" in res else ""))


def cmd_pipeline(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    fields = _fields(args) or ["title"]
    res = api.pipeline(t, args.name, args.model_id, document_fields=fields, depth=args.depth or 100, size=args.size or 10, index=args.index)
    finish(args, t, res, f"search pipeline {args.name}: top {args.depth or 100} hits reranked by {args.model_id} on {fields}")


def cmd_promote(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.promote(t, args.alias, args.model_id, document_fields=_fields(args), depth=args.depth, size=args.size,
                      index=args.index, pipeline=args.pipeline)
    finish(args, t, res, f"alias {args.alias} -> {args.model_id} (was {res['previous_model_id']}) via pipeline {res['pipeline']}"
                         + _warmed(res))


def cmd_rollback(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.rollback(t, args.alias)
    finish(args, t, res, f"alias {args.alias} rolled back: {res['previous_model_id']} -> {res['model_id']} via pipeline {res['pipeline']}"
                         + _warmed(res))


def _warmed(change: dict) -> str:
    """The line saying the rescorer warmed the model before the alias moved (empty without a rescorer copy)."""
    from distilrank.plugin.aliases import warm_summary

    w = change.get("warmed")
    return f"\n{warm_summary(w)}" if w else ""


def cmd_list(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.list_models(t, group=args.group)
    finish(args, t, res, "\n".join(format_model_list(res)))


def format_model_list(res: dict) -> list[str]:
    """The lines of ``plugin list``: one per model version, then one per alias."""
    lines = [f"{'model_id':22} {'state':10} {'ver':>3} {'group':18} {'name':24} aliases/pipelines"]
    for m in res["models"]:
        card = m.get("card") or {}
        acc = ((card.get("metrics") or {}).get("student") or {}).get("accuracy") if card else None
        lines.append(f"{m['model_id']:22} {str(m['state']):10} {str(m['version']):>3} {str(m['group'])[:18]:18} {str(m['name'])[:24]:24} "
                     f"{','.join(m['aliases']) or '-'} / {','.join(m['pipelines']) or '-'}"
                     + (f"  [acc {acc:.4f}, {card.get('precision')}]" if isinstance(acc, float) else ""))
    for a in res["aliases"]:
        lines.append(f"alias {a['alias']}: {a['model_id']} via {a['pipeline']}" + ("" if a["in_sync"] else f" (pipeline now calls {a['live_model_id']}!)")
                     + f", {len(a.get('history', []))} earlier version(s)")
    lines += [f"PROBLEM: {p['problem']}" for p in res.get("problems", [])]
    return lines


def cmd_undeploy(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.undeploy(t, args.model_id, force=args.force)
    finish(args, t, res, f"model {args.model_id}: {res['state']}")


def cmd_delete(args: argparse.Namespace) -> None:
    from distilrank.plugin import api

    t = transport(args)
    res = api.delete(t, args.model_id, force=args.force)
    finish(args, t, res, f"model {args.model_id} deleted")


def cmd_plugin_ensure(args: argparse.Namespace) -> None:
    """``distilrank plugin ensure ALIAS``: :func:`distilrank.plugin.api.ensure`."""
    from distilrank.plugin import api

    t = transport(args)
    res = api.ensure(t, args.alias, zip_path=args.zip, index=args.index, wait=args.wait, tolerance=args.tolerance, log=log)
    smoke = res.get("smoke_test")
    finish(args, t, res, f"alias {args.alias}: {res['model_id']} serves via {res['pipeline']} ("
                         f"{'; '.join(res['actions']) or 'nothing to do'}; {res['check']}"
                         + (f"; smoke test max |node - local| {smoke['max_abs_diff']:.2e}" if smoke else "") + ")")


def _rerank_args(p: argparse.ArgumentParser, defaults: bool) -> None:
    """The flags of the rerank search pipeline (``register``, ``pipeline``: defaults; ``promote``: keep the alias's)."""
    p.add_argument("--fields", help="document field(s) the model reads, comma-separated" + (" (default title)" if defaults else " (default: keep)"))
    p.add_argument("--depth", type=int, help="first-stage hits reranked per search" + (" (default 100)" if defaults else " (default: keep)"))
    p.add_argument("--size", type=int, help="page size the depth is meant for; sample_factor = depth/size"
                   + (" (default 10)" if defaults else " (default: keep)"))
    p.add_argument("--index", help="check that the index has the document fields before creating the pipeline")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``plugin`` and its subcommands on the main ``distilrank`` parser."""
    plugin = sub.add_parser("plugin", help="register, deploy and serve models in OpenSearch (ML Commons + rerank pipelines)")
    cmds = plugin.add_subparsers(dest="plugin_command", required=True, metavar="COMMAND")

    def add(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help_)
        add_connection_args(p)
        p.set_defaults(func=func)
        return p

    from distilrank.plugin.cli import ubi

    ubi.add_plugin_commands(cmds)
    add("preflight", cmd_preflight, "check versions, plugins, ML Commons settings, ML nodes, breakers and disk; explain each fix")
    p = add("register", cmd_register, "register a model zip (idempotent by sha256); --deploy, --promote ALIAS for the whole way to a live pipeline")
    p.add_argument("zip", help="model zip from 'distilrank export' (model-card.json beside it is stored too)")
    p.add_argument("--group", default="distilrank", help="model group name (created or reused)")
    p.add_argument("--name", help="model name (default: the model card's name or the zip's stem)")
    p.add_argument("--sha256", help="expected SHA-256 of the zip; refuse to register if it differs")
    p.add_argument("--chunk-size", type=int, default=10_000_000, help="bytes per upload_chunk (at most 10,000,000)")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for registration / deploy")
    p.add_argument("--deploy", action="store_true", help="deploy and smoke-test after registering")
    p.add_argument("--no-smoke-test", action="store_true", help="skip the _predict vs local ONNX Runtime comparison")
    p.add_argument("--tolerance", type=float, default=1e-4, help="smoke test tolerance on |node - local| logits")
    p.add_argument("--promote", metavar="ALIAS", help="after deploying, point ALIAS (e.g. staging) at the model")
    p.add_argument("--skip-preflight", action="store_true", help="do not run the preflight checks before registering")
    p.add_argument("--no-rescorer", action="store_true", help="do not upload the zip to the distilrank rescorer plugin (uploaded "
                                                              "by default when every node has it)")
    _rerank_args(p, True)
    p = add("deploy", cmd_deploy, "deploy a registered model (bounded wait, per-node errors); --zip to smoke-test it")
    p.add_argument("--model-id", required=True, help="ML Commons model id")
    p.add_argument("--zip", help="the zip it was registered from: compare _predict with local ONNX Runtime, undeploy on mismatch")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait until it is DEPLOYED (default 300)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="smoke test tolerance on |node - local| logits (default 1e-4)")
    p = add("predict", cmd_predict, "score documents for a query on the cluster (raw logits); --zip to compare with local scores")
    p.add_argument("--model-id", required=True, help="ML Commons model id (deployed)")
    p.add_argument("--query", required=True, help="the query text")
    p.add_argument("--doc", action="append", help="a document text (repeatable)")
    p.add_argument("--docs-file", help="one document per line")
    p.add_argument("--zip", help="the model zip: also score locally with ONNX Runtime and report the largest difference")
    p = add("pipeline", cmd_pipeline, "create/update a search pipeline oversample -> rerank(ml_opensearch) -> truncate_hits")
    p.add_argument("--name", required=True, help="search pipeline name")
    p.add_argument("--model-id", required=True, help="ML Commons model id the rerank processor calls")
    _rerank_args(p, True)
    _add_alias_commands(add)


def _add_alias_commands(add) -> None:
    """``promote``, ``rescore-body``, ``rollback``, ``list``, ``undeploy``, ``delete`` (``add(name, func, help)``)."""
    p = add("promote", cmd_promote, "point an alias (staging, prod, ...) at a deployed model through its search pipeline")
    p.add_argument("alias", help="alias name (staging, prod, ...)")
    p.add_argument("--model-id", required=True, help="deployed ML Commons model id")
    p.add_argument("--pipeline", help="pipeline name for a new alias (default distilrank-ALIAS)")
    _rerank_args(p, False)
    p = add("explain", cmd_explain, "why a document ranks where it does: the rescorer's explanation (first pass, logit, "
                                    "normalisation, weights, model and alias) of one hit")
    p.add_argument("--index", required=True, help="the index to search")
    p.add_argument("--query-text", required=True, help="the user's query (first-stage query and the student's input)")
    p.add_argument("--doc", required=True, help="the document id to explain")
    p.add_argument("--model", default="prod", help="alias (staging, prod, ...) or model id (default prod)")
    p.add_argument("--fields", help="document field(s) the student reads, comma-separated (default title)")
    p.add_argument("--query", help="first-stage query as JSON (default: match / multi_match of --query-text on --fields)")
    p.add_argument("--window-size", type=int, default=100, help="hits rescored per shard (default 100)")
    p.add_argument("--score-mode", choices=["replace", "blend"], help="default: the model's stored blend settings")
    p.add_argument("--normalization", choices=["none", "min_max", "z_score"], help="default: the model's stored blend settings")
    p = add("rescore-body", cmd_rescore_body, "print a search body that rescores the top window_size hits per shard with the distilrank rescorer")
    p.add_argument("--query-text", required=True, help="the user's query (first-stage query and the student's input)")
    p.add_argument("--model", default="prod", help="alias (staging, prod, ...) or model id (default prod)")
    p.add_argument("--fields", help="document field(s) the student reads, comma-separated (default title)")
    p.add_argument("--window-size", type=int, default=100, help="hits rescored per shard (default 100)")
    p.add_argument("--size", type=int, default=10, help="hits returned (default 10)")
    p.add_argument("--score-mode", choices=["replace", "blend"],
                   help="replace: _score = logit; blend: query_weight * norm(first pass) + model_weight * norm(logit) "
                        "(default: blend when the model has stored blend settings, else replace)")
    p.add_argument("--query-weight", type=float, help="blend: weight of the first-pass score (default: the model's stored one, else 1)")
    p.add_argument("--model-weight", type=float, help="blend: weight of the student's logit (default: the model's stored one, else 1)")
    p.add_argument("--normalization", choices=["none", "min_max", "z_score"],
                   help="blend: per-shard-window normalisation of both signals (default: the model's stored one, else none)")
    p.add_argument("--text-source", choices=["auto", "_source", "stored", "doc_values"],
                   help="where the rescorer reads the fields (default: auto)")
    p.add_argument("--token-ids-field", help="binary field with index-time token ids (from 'plugin tokenize-index'): the "
                                             "rescorer reads ids instead of texts where they match the model's tokenizer")
    p.add_argument("--query", help="first-stage query as JSON (default: match/multi_match of --query-text on --fields)")
    p.add_argument("--index", help="check that the index maps the fields (needs the cluster)")
    p = add("tokenize-index", cmd_tokenize_index, "write each document's token ids under a model zip's tokenizer into a binary "
                                                  "doc-values field, so the rescorer reads ids instead of reading and tokenizing text")
    p.add_argument("--index", required=True, help="the index whose documents get token ids (updated in place)")
    p.add_argument("--zip", required=True, help="the model zip whose tokenizer.json tokenizes the documents")
    p.add_argument("--fields", required=True, help="document field(s) the model reads, comma-separated, as in the rescore body")
    p.add_argument("--field", default="distilrank_token_ids", help="the binary field to write (default distilrank_token_ids)")
    p.add_argument("--batch", type=int, default=500, help="documents per scroll page and bulk request (default 500)")
    p = add("rollback", cmd_rollback, "point an alias back at the model it pointed to before the last promote")
    p.add_argument("alias", help="alias name")
    p = add("ensure", cmd_plugin_ensure, "make an alias serve again (after a restart): recreate its pipeline, redeploy its model, check it")
    p.add_argument("alias", help="alias name (staging, prod, ...)")
    p.add_argument("--zip", help="the model's zip: smoke-test _predict against local ONNX Runtime")
    p.add_argument("--index", help="also run one search through the alias's pipeline on this index")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for a redeploy")
    p.add_argument("--tolerance", type=float, default=1e-4, help="smoke test tolerance on |node - local| logits")
    p = add("list", cmd_list, "model versions with state, hash, model card, aliases and pipelines; and the aliases")
    p.add_argument("--group", help="only the models of this model group")
    p = add("undeploy", cmd_undeploy, "undeploy a model unless a pipeline or alias uses it")
    p.add_argument("--model-id", required=True, help="ML Commons model id")
    p.add_argument("--force", action="store_true", help="undeploy even when a pipeline or alias uses it")
    p = add("delete", cmd_delete, "delete a model version (undeploying it) unless a pipeline, alias or rollback needs it")
    p.add_argument("--model-id", required=True, help="ML Commons model id")
    p.add_argument("--force", action="store_true", help="delete even when a pipeline, alias or rollback needs it")

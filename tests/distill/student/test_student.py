"""Student tokenizer, in-model n-gram featurisation, optimiser and training."""

import math

import numpy as np
import pytest
import torch

from distilrank.distill.config import StudentSection
from distilrank.distill.student.model import BIGRAM_HASH_MULTIPLIER, N_SPECIAL, StudentConfig, StudentModel
from distilrank.distill.student.optim import RowSparseAdam
from distilrank.distill.student.store import load_student
from distilrank.distill.student.tokenizer import CLS_ID, SEP_ID, UNK_ID, build_student_tokenizer, encode_pairs
from distilrank.distill.student.train import _train_step, fit_student
from distilrank.pairs import Pairs

CORPUS = ["red running shoes", "blue running shoes", "red wool socks", "Café crème 😀 mug"] * 3


@pytest.fixture()
def tok():
    return build_student_tokenizer(CORPUS, min_count=2, max_length=12)


def test_pair_template_marks_segments_and_boundaries(tok):
    enc = tok.encode("red shoes", "blue socks")
    assert enc.tokens == ["[CLS]", "red", "shoes", "[SEP]", "blue", "socks", "[SEP]"]
    assert enc.type_ids == [0, 0, 0, 0, 1, 1, 1]
    single = tok.encode("", "red socks")
    assert single.ids[:2] == [CLS_ID, SEP_ID] and single.type_ids == [0, 0, 1, 1, 1]


def test_normalisation_unknowns_and_truncation(tok):
    enc = tok.encode("", "CAFE creme unseenword")
    assert enc.tokens[2:4] == ["cafe", "creme"]  # accents stripped + lowercased, as in the vocabulary
    assert enc.ids[4] == UNK_ID
    long = tok.encode("red " * 20, "shoes " * 20)
    assert len(long.ids) == 12  # truncation from the json, longest-first
    assert long.type_ids.count(1) >= 4


def _manual_bags(model, ids, types):
    """Independent recomputation of the bags with Python loops."""
    cfg, emb = model.config, model.embedding.weight.detach()
    m = BIGRAM_HASH_MULTIPLIER
    out = []
    for seg in (0, 1):
        rows = [ids[i] for i in range(len(ids)) if types[i] == seg]
        rows += [cfg.vocab_size + (ids[i] * m + ids[i + 1]) % cfg.bigram_buckets
                 for i in range(len(ids) - 1) if types[i + 1] == seg]
        if cfg.trigrams:
            rows += [cfg.vocab_size + ((ids[i] * m + ids[i + 1]) * m + ids[i + 2]) % cfg.bigram_buckets
                     for i in range(len(ids) - 2) if types[i + 2] == seg]
        out.append(emb[rows].sum(0) / math.sqrt(len(rows)))
    return torch.stack(out)


@pytest.mark.parametrize("trigrams", [False, True])
def test_bags_match_manual_featurisation_and_ignore_padding(tok, trigrams):
    torch.manual_seed(0)
    model = StudentModel(StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=101, hidden=[8], trigrams=trigrams))
    enc = encode_pairs(tok, ["red shoes", "blue"], ["red wool socks", "mug"])
    ids, mask, types = (torch.from_numpy(a) for a in enc.batch(np.array([0, 1])))
    bags = model.bags(ids, mask, types)
    for r in range(2):
        n = int(mask[r].sum())
        expected = _manual_bags(model, ids[r, :n].tolist(), types[r, :n].tolist())
        torch.testing.assert_close(bags[r], expected, rtol=1e-5, atol=1e-6)
    # the short row padded to the long row's width scores the same as alone
    alone = [torch.from_numpy(a) for a in enc.batch(np.array([1]))]
    torch.testing.assert_close(model(ids, mask, types)[1], model(*alone)[0], rtol=1e-5, atol=1e-6)


def test_training_step_gradient_equals_dense_autograd(tok):
    torch.manual_seed(0)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=101, hidden=[16, 8])
    model = StudentModel(cfg)
    enc = encode_pairs(tok, ["red", "blue shoes", ""], ["red shoes", "blue running shoes", "socks"])
    batch = [torch.from_numpy(a) for a in enc.batch(np.arange(3))]
    target = torch.tensor([1.0, 0.0, 0.5])
    reference = StudentModel(cfg)
    reference.load_state_dict(model.state_dict())
    loss = torch.nn.functional.binary_cross_entropy_with_logits(reference(*batch).squeeze(1), target)
    loss.backward()
    dense_grad = reference.embedding.weight.grad
    captured = {}

    class Capture(RowSparseAdam):
        def step(self, rows, grad):
            captured["rows"], captured["grad"] = rows, grad

    _train_step(model, batch, target, torch.optim.SGD(model.dense_parameters(), lr=0.0), Capture(model.embedding.weight.data))
    torch.testing.assert_close(captured["grad"], dense_grad[captured["rows"]], rtol=1e-5, atol=1e-7)
    untouched = torch.ones(dense_grad.shape[0], dtype=torch.bool)
    untouched[captured["rows"]] = False
    assert torch.all(dense_grad[untouched] == 0)


def test_row_sparse_adam_equals_adam_when_every_row_is_used():
    torch.manual_seed(0)
    w_ref = torch.nn.Parameter(torch.randn(5, 3))
    w = w_ref.detach().clone()
    ref_opt = torch.optim.Adam([w_ref], lr=0.01)
    opt = RowSparseAdam(w, lr=0.01)
    for _ in range(5):
        g = torch.randn(5, 3)
        w_ref.grad = g.clone()
        ref_opt.step()
        opt.step(torch.arange(5), g)
    torch.testing.assert_close(w, w_ref.detach(), rtol=1e-5, atol=1e-6)


def _toy_task(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    colours, items = ["red", "blue", "green", "black"], ["shoes", "socks", "mug", "lamp"]
    queries, titles, labels = [], [], []
    for _ in range(n):
        c, i = rng.choice(colours), rng.choice(items)
        c2 = c if rng.random() < 0.5 else rng.choice(colours)
        queries.append(f"{c} {i}")
        titles.append(f"{c2} cotton {i}")
        labels.append(float(c2 == c))
    return Pairs(queries, titles, np.array(labels))


def test_student_learns_query_title_match_and_resumes(tmp_path):
    data = _toy_task()
    tok = build_student_tokenizer(data.queries + data.texts, min_count=1)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[64, 32], interactions=True)
    train_cfg = StudentSection(epochs=1, batch_size=64, lr=3e-3, embedding_lr=3e-2, lr_decay=1.0)
    first = fit_student(data, data.labels, tok, tmp_path / "s", model_config=cfg, config=train_cfg, progress=False)
    assert first.epochs_run == 1
    train_cfg.epochs = 6
    result = fit_student(data, data.labels, tok, tmp_path / "s", model_config=cfg, config=train_cfg, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6]  # epoch 1 was not run again
    student = load_student(tmp_path / "s")
    test = _toy_task(400, seed=1)
    acc = np.mean((student.score(test) > 0) == (test.labels > 0.5))
    assert acc > 0.95
    assert student.metadata["best_epoch"] == result.best_epoch


def test_bad_targets_are_rejected(tmp_path, tok):
    data = Pairs(["a"], ["red"], None)
    with pytest.raises(ValueError, match="probabilities"):
        fit_student(data, np.array([2.0]), tok, tmp_path / "s")
    with pytest.raises(ValueError, match="does not match"):
        fit_student(data, np.array([0.5, 0.5]), tok, tmp_path / "s")


def test_resume_refuses_a_state_saved_with_other_settings(tmp_path):
    data = _toy_task(200)
    tok = build_student_tokenizer(data.queries + data.texts, min_count=1)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[32])
    fit_student(data, data.labels, tok, tmp_path / "s", model_config=cfg, config=StudentSection(epochs=1, batch_size=64),
                  progress=False)
    with pytest.raises(ValueError, match=r"state.pt: saved by a run with other settings"):
        fit_student(data, data.labels, tok, tmp_path / "s", model_config=cfg,
                      config=StudentSection(epochs=2, batch_size=64, lr=5e-3), progress=False)
    wider = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[64])
    with pytest.raises(ValueError, match=r"other settings"):
        fit_student(data, data.labels, tok, tmp_path / "s", model_config=wider, config=StudentSection(epochs=2, batch_size=64),
                      progress=False)


def test_mse_loss_regresses_teacher_logits(tmp_path):
    data = _toy_task(400)
    tok = build_student_tokenizer(data.queries + data.texts, min_count=1)
    logits = np.where(data.labels > 0.5, 4.0, -4.0).astype(np.float32)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[64, 32], interactions=True)
    res = fit_student(data, logits, tok, tmp_path / "m", model_config=cfg, progress=False,
                        config=StudentSection(epochs=6, batch_size=64, lr=3e-3, embedding_lr=3e-2, lr_decay=1.0, loss="mse"))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    z = load_student(tmp_path / "m").score(data)
    assert np.mean((z > 0) == (data.labels > 0.5)) > 0.9 and np.abs(z).max() > 1.5  # logits, not probabilities
    with pytest.raises(ValueError, match="loss must be"):
        fit_student(data, logits, tok, tmp_path / "x", config=StudentSection(loss="hinge"))


def test_listwise_loss_is_the_cross_entropy_of_the_two_softmaxes_per_query():
    from distilrank.distill.student.train import listwise_loss

    logits = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0])
    teacher = torch.tensor([1.0, 0.0, 2.0, -1.0, 1.0])
    group = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])
    got = listwise_loss(logits, torch.stack([teacher, group], dim=1))
    expected = 0.0
    for rows in ([0, 1, 2], [3, 4]):
        p = torch.softmax(teacher[rows], 0)
        expected += -(p * torch.log_softmax(logits[rows], 0)).sum()
    torch.testing.assert_close(got, expected / 2)
    # a per-query offset of the student's logits changes nothing
    torch.testing.assert_close(listwise_loss(logits + torch.tensor([5.0, 5, 5, -3, -3]), torch.stack([teacher, group], 1)), got)


def _ranking_task(n_queries=150, seed=0):
    rng = np.random.default_rng(seed)
    colours, items = ["red", "blue", "green", "black"], ["shoes", "socks", "mug", "lamp"]
    queries, titles, scores, groups = [], [], [], []
    for g in range(n_queries):
        c, i = rng.choice(colours), rng.choice(items)
        for _ in range(8):
            c2, i2 = rng.choice(colours), rng.choice(items)
            queries.append(f"{c} {i}")
            titles.append(f"{c2} cotton {i2}")
            scores.append(2.0 * (i2 == i) + 1.0 * (c2 == c))
            groups.append(g)
    return Pairs(queries, titles, None), np.array(scores, np.float32), np.array(groups)


@pytest.mark.parametrize("match_features", [False, True])
def test_listwise_student_learns_the_order_inside_queries(tmp_path, match_features):
    from distilrank.distill.student.train import GroupedRows

    data, scores, groups = _ranking_task()
    tok = build_student_tokenizer(data.queries + data.texts, min_count=1)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[32], interactions=True,
                        match_features=match_features)
    train_cfg = StudentSection(epochs=6, batch_size=64, lr=3e-3, embedding_lr=3e-2, lr_decay=1.0, loss="listwise", val_fraction=0.1)
    res = fit_student(data, scores, tok, tmp_path / "s", model_config=cfg, config=train_cfg, groups=groups, progress=False)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    test, t_scores, t_groups = _ranking_task(60, seed=1)
    z = load_student(tmp_path / "s").score(test)
    agree = [np.corrcoef(z[t_groups == g], t_scores[t_groups == g])[0, 1] for g in range(60) if np.std(t_scores[t_groups == g]) > 0]
    assert np.nanmean(agree) > 0.7
    # batches hold whole queries; validation queries are never trained on
    rows = GroupedRows(encode_pairs(tok, data.queries, data.texts), scores, groups, train_cfg, np.random.default_rng(0))
    val = {int(groups[i]) for g in rows.val_groups for i in g}
    for _, target in rows.batches(np.random.default_rng(1)):
        local = target[:, 1].long()
        assert torch.equal(torch.unique(local), torch.arange(int(local.max()) + 1))
    trained = {int(groups[i]) for g in rows.train_groups for i in g}
    assert val and not val & trained
    with pytest.raises(ValueError, match="needs groups"):
        fit_student(data, scores, tok, tmp_path / "x", model_config=cfg, config=train_cfg, progress=False)


def test_match_features_by_hand(tok):
    model = StudentModel(StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=101, hidden=[8], match_features=True))
    enc = encode_pairs(tok, ["red running shoes", "unseenword mug", ""], ["blue running shoes", "unseenword", "red socks"])
    m = model.match(*[torch.from_numpy(a) for a in enc.batch(np.arange(3))])
    # red running shoes | blue running shoes: 2 of 3 words, 1 of 2 bigrams ("running shoes")
    torch.testing.assert_close(m[0], torch.tensor([2 / 3, 0.5, 0.0, 1.0, 3 ** -0.5]))
    # [UNK] is not a word (never matches, not counted): the query is "mug" alone, not in the title
    torch.testing.assert_close(m[1], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(m[2], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))  # empty query
    assert model(*[torch.from_numpy(a) for a in enc.batch(np.arange(3))]).shape == (3, 1)


def _match_over_all_positions(input_ids, attention_mask, token_type_ids) -> torch.Tensor:
    """The match features compared over every position pair ([B, S, S]): the definition the graph must equal."""
    word = (attention_mask > 0) & (input_ids >= N_SPECIAL)
    in_q, in_t = word & (token_type_ids == 0), word & (token_type_ids == 1)
    found = ((input_ids.unsqueeze(2) == input_ids.unsqueeze(1)) & in_t.unsqueeze(1)).any(dim=2) & in_q
    n_q = in_q.float().sum(1)
    share = found.float().sum(1) / n_q.clamp(min=1.0)
    pair = input_ids[:, :-1] * BIGRAM_HASH_MULTIPLIER + input_ids[:, 1:]
    bi_q, bi_t = in_q[:, :-1] & in_q[:, 1:], in_t[:, :-1] & in_t[:, 1:]
    bi_found = ((pair.unsqueeze(2) == pair.unsqueeze(1)) & bi_t.unsqueeze(1)).any(dim=2) & bi_q
    n_bi = bi_q.float().sum(1)
    return torch.stack([share, bi_found.float().sum(1) / n_bi.clamp(min=1.0), ((share >= 1) & (n_q > 0)).float(),
                        (n_bi > 0).float(), torch.rsqrt(n_q.clamp(min=1.0))], dim=1)


def _random_rows(rng: np.random.Generator, batch: int, length: int, query_len: int, *, scrambled: bool = False):
    ids = rng.integers(N_SPECIAL, N_SPECIAL + 12, (batch, length))  # a small vocabulary: many matches
    types = np.ones((batch, length), np.int64)
    mask = np.ones((batch, length), np.int64)
    for i in range(batch):
        q = min(int(rng.integers(0, query_len + 1)), length - 2)
        types[i, : q + 2] = 0
        end = int(rng.integers(q + 2, length + 1))
        mask[i, end:], ids[i, end:], types[i, end:] = 0, 0, 0
        if scrambled:  # not the tokenizer's layout: query tokens anywhere in the row
            types[i, :end] = rng.integers(0, 2, end)
    ids[:, 0] = CLS_ID
    return [torch.from_numpy(a) for a in (ids, mask, types)]


@pytest.mark.parametrize(("length", "query_len", "scrambled"), [(40, 6, False), (12, 12, False), (3, 1, False), (30, 8, True)])
def test_match_features_compare_only_query_positions_and_equal_the_all_positions_definition(length, query_len, scrambled):
    model = StudentModel(StudentConfig(vocab_size=40, bigram_buckets=101, hidden=[8], match_features=True))
    rows = _random_rows(np.random.default_rng(length), 64, length, query_len, scrambled=scrambled)
    torch.testing.assert_close(model.match(*rows), _match_over_all_positions(*rows), rtol=0, atol=0)


def test_match_features_in_onnx_follow_each_batch_query_length(tmp_path):
    """The query length is computed in the graph (Range + Gather), not frozen at export: batches with longer and
    shorter queries than the export example give PyTorch's features in ONNX Runtime."""
    import onnxruntime as ort

    model = StudentModel(StudentConfig(vocab_size=40, bigram_buckets=101, hidden=[8], match_features=True)).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = _random_rows(np.random.default_rng(0), 4, 10, 2)
    torch.onnx.export(model, tuple(example), str(tmp_path / "m.onnx"), input_names=names, output_names=["logits"],
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for seed, (batch, length, query_len) in enumerate([(50, 48, 20), (7, 9, 1), (100, 64, 6)]):
        rows = _random_rows(np.random.default_rng(seed + 1), batch, length, query_len)
        got = session.run(None, {n: r.numpy() for n, r in zip(names, rows, strict=True)})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, model(*rows).numpy(), atol=1e-5, rtol=1e-5)


def test_a_soup_averages_members_that_share_their_start_and_differ_in_data_order(tmp_path):
    """``soup = 3``: member 0 is exactly the ``soup = 1`` student, the others see the rows in other orders, and the
    saved student is the mean of the members' best weights; a second call reuses the finished members."""
    from distilrank.distill.student.train import average_state_dicts

    data, scores, groups = _ranking_task()
    tok = build_student_tokenizer(data.queries + data.texts, min_count=1)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[32], interactions=True)

    def section(soup: int) -> StudentSection:
        return StudentSection(epochs=3, batch_size=64, lr=3e-3, embedding_lr=3e-2, lr_decay=1.0, loss="listwise",
                              val_fraction=0.1, soup=soup)

    lines: list[dict] = []
    res = fit_student(data, scores, tok, tmp_path / "soup", model_config=cfg, config=section(3), groups=groups, progress=False,
                      on_epoch=lines.append)
    fit_student(data, scores, tok, tmp_path / "one", model_config=cfg, config=section(1), groups=groups, progress=False)
    members = [load_student(tmp_path / "soup" / "soup" / f"member-{i}").model.state_dict() for i in range(3)]
    one = load_student(tmp_path / "one").model.state_dict()
    assert all(torch.equal(members[0][k], one[k]) for k in one)
    assert not torch.equal(members[1]["mlp.0.weight"], members[0]["mlp.0.weight"])
    assert not torch.equal(members[2]["mlp.0.weight"], members[1]["mlp.0.weight"])
    soup = load_student(tmp_path / "soup")
    for k, v in soup.model.state_dict().items():
        torch.testing.assert_close(v, torch.stack([m[k] for m in members]).mean(0))
    assert soup.metadata["soup"]["members"] == 3 and len(soup.metadata["soup"]["member_val_loss"]) == 3
    assert math.isfinite(res.best_val_loss) and res.best_val_loss == soup.metadata["soup"]["val_loss"]
    assert [(r["soup_member"], r["epoch"]) for r in lines] == [(i, e) for i in range(3) for e in (1, 2, 3)]
    test, t_scores, t_groups = _ranking_task(60, seed=1)
    z = soup.score(test)
    agree = [np.corrcoef(z[t_groups == g], t_scores[t_groups == g])[0, 1] for g in range(60) if np.std(t_scores[t_groups == g]) > 0]
    assert np.nanmean(agree) > 0.7
    again = fit_student(data, scores, tok, tmp_path / "soup", model_config=cfg, config=section(3), groups=groups, progress=False)
    assert again.history == res.history  # every member had finished: nothing retrained
    with pytest.raises(ValueError, match="soup must be >= 1"):
        fit_student(data, scores, tok, tmp_path / "none", model_config=cfg, config=section(0), groups=groups, progress=False)
    with pytest.raises(ValueError, match="does not match the first one"):
        average_state_dicts([one, {k: v for k, v in one.items() if k != "mlp.0.bias"}])

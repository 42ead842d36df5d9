"""``distilrank.plugin.blend``: the rescorer's blend computed offline (normalisation edge cases, the rescored order,
the settings' dict form), and where the settings travel: the model card (``blend`` entry) and the model package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distilrank.distill.export.model_card import blend_entry
from distilrank.errors import DistilRankError
from distilrank.plugin.blend import NORMALIZATIONS, BlendSettings, blend_window, normalize_window, rescored_order
from distilrank.plugin.model_package import PackageError, card_blend, inspect_model_zip


def test_normalisations():
    x = np.array([3.0, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(normalize_window(x, "none"), [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(normalize_window(x, "min_max"), [1.0, 0.0, 0.5])
    sd = np.sqrt(2 / 3)
    np.testing.assert_allclose(normalize_window(x, "z_score"), [1 / sd, -1 / sd, 0.0], rtol=0, atol=1e-15)
    assert normalize_window(x, "z_score").dtype == np.float64
    with pytest.raises(ValueError, match="normalization must be one of"):
        normalize_window(x, "rank")


@pytest.mark.parametrize("normalization", ["min_max", "z_score"])
def test_one_hit_zero_range_and_an_empty_window(normalization):
    np.testing.assert_array_equal(normalize_window(np.array([7.5]), normalization), [0.0])
    np.testing.assert_array_equal(normalize_window(np.full(4, 2.25), normalization), np.zeros(4))
    assert normalize_window(np.array([]), normalization).shape == (0,)
    # a signal that carries no order in the window contributes nothing: the other one decides
    combined = blend_window(np.full(3, 4.0), np.array([1.0, 3.0, 2.0]), BlendSettings(5.0, 1.0, normalization))
    assert list(np.argsort(-combined)) == [1, 2, 0]
    assert combined.dtype == np.float32


def test_blend_window_is_float64_cast_to_float32():
    s, z = np.array([10.0, 0.0], np.float32), np.array([0.1, 0.2], np.float32)
    got = blend_window(s, z, BlendSettings(0.3, 2.0, "none"))
    want = (0.3 * s.astype(np.float64) + 2.0 * z.astype(np.float64)).astype(np.float32)
    assert got.tobytes() == want.tobytes()
    with pytest.raises(ValueError, match="2 first-pass scores but 1 logits"):
        blend_window(s, z[:1], BlendSettings())


def test_rescored_order_sorts_the_window_and_keeps_the_rest_in_first_pass_order():
    first = np.array([30, 20, 10, 9, 8, 8, 7], np.float32)  # raw BM25 far above any normalised score
    order = rescored_order(first, np.array([0.0, 2.0, 1.0]), 3, BlendSettings(1.0, 1.0, "min_max"))
    assert order.tolist() == [1, 0, 2, 3, 4, 5, 6]
    assert order.dtype == np.int64
    # logits for the whole list are accepted; only the window's are used
    assert rescored_order(first, np.array([0.0, 2.0, 1.0, 99, 99, 99, 99]), 3, BlendSettings(0, 1)).tolist() == [1, 2, 0, 3, 4, 5, 6]
    assert rescored_order(first[:2], np.array([0.0, 1.0]), 10, BlendSettings(0, 1)).tolist() == [1, 0]


def test_ties_keep_first_pass_order():
    first = np.array([5, 4, 3, 2], np.float32)
    assert rescored_order(first, np.array([1.0, 2.0, 1.0, 2.0]), 4, BlendSettings(0.0, 1.0)).tolist() == [1, 3, 0, 2]
    assert rescored_order(np.full(4, 3.0), np.full(4, 1.0), 4, BlendSettings(1, 1, "z_score")).tolist() == [0, 1, 2, 3]


def test_settings_validate_and_round_trip():
    s = BlendSettings(0.3, 2.0, "z_score")
    assert s.to_dict() == {"query_weight": 0.3, "model_weight": 2.0, "normalization": "z_score"}
    assert BlendSettings.from_dict(s.to_dict()) == s
    assert BlendSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert BlendSettings.from_dict({"normalization": "min_max"}) == BlendSettings(1.0, 1.0, "min_max")
    assert BlendSettings.from_dict({"query_weight": 2}).query_weight == 2.0
    assert set(NORMALIZATIONS) == {"none", "min_max", "z_score"}
    with pytest.raises(ValueError, match=r"unknown blend setting\(s\) \['score_mode', 'weight'\]"):
        BlendSettings.from_dict({"weight": 1, "score_mode": "blend"})
    with pytest.raises(ValueError, match="normalization must be one of"):
        BlendSettings.from_dict({"normalization": "L2"})
    with pytest.raises(ValueError, match="model_weight must be a finite number"):
        BlendSettings(1.0, float("nan"))
    with pytest.raises(ValueError, match="query_weight must be a finite number"):
        BlendSettings.from_dict({"query_weight": "inf"})
    with pytest.raises(ValueError):
        BlendSettings.from_dict({"query_weight": "heavy"})


def test_the_model_card_entry():
    assert blend_entry(None) is None
    assert blend_entry(BlendSettings(0.5, 1.0, "min_max")) == {"query_weight": 0.5, "model_weight": 1.0, "normalization": "min_max"}
    assert blend_entry({"normalization": "z_score"}) == {"query_weight": 1.0, "model_weight": 1.0, "normalization": "z_score"}
    with pytest.raises(DistilRankError, match="bad blend settings"):
        blend_entry({"normalization": "rank"})
    with pytest.raises(DistilRankError, match="BlendSettings or a dict"):
        blend_entry([0.5, 1.0])  # type: ignore[arg-type]


def test_card_blend():
    assert card_blend({}) is None
    assert card_blend({"blend": {"query_weight": 0.2, "model_weight": 1, "normalization": "min_max"}}) == BlendSettings(0.2, 1, "min_max")
    for bad in ({"normalization": "rank"}, {"score_mode": "blend"}, "min_max"):
        with pytest.raises(PackageError, match="card.json: bad blend settings"):
            card_blend({"blend": bad}, "model-card.json")  # type: ignore[arg-type]


def _tiny_zip(tmp_path):
    """A torch-free model zip ML Commons would accept: logits = sum of the ids, WordLevel tokenizer."""
    import onnx
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer, models, pre_tokenizers

    from distilrank.plugin.model_zip import build_model_zip

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])
    nodes = [helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f"], ["logits"], axes=[1], keepdims=1)]
    model = helper.make_model(helper.make_graph(nodes, "tiny", inputs, [out]), opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "model.onnx")
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "usb": 1, "cable": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    zip_path = tmp_path / "tiny.zip"
    return zip_path, build_model_zip(tmp_path / "model.onnx", tmp_path / "tokenizer.json", zip_path)


def test_the_package_reads_blend_from_the_card_beside_the_zip(tmp_path):
    zip_path, sha = _tiny_zip(tmp_path)
    assert inspect_model_zip(zip_path).blend is None  # no card
    card = {"name": "tiny", "zip": {"sha256": sha}, "blend": BlendSettings(0.25, 3.0, "z_score").to_dict()}
    (tmp_path / "model-card.json").write_text(json.dumps(card))
    pkg = inspect_model_zip(zip_path)
    assert pkg.blend == BlendSettings(0.25, 3.0, "z_score") and pkg.card["blend"]["normalization"] == "z_score"
    (tmp_path / "model-card.json").write_text(json.dumps({**card, "zip": {"sha256": "0" * 64}}))
    assert inspect_model_zip(zip_path).blend is None  # a card of another build is ignored, its blend too
    (tmp_path / "model-card.json").write_text(json.dumps({**card, "blend": {"normalization": "softmax"}}))
    with pytest.raises(PackageError, match="model-card.json: bad blend settings: normalization must be one of"):
        inspect_model_zip(zip_path)

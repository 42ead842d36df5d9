"""Choose ``student.gold_epochs`` (the gold-label student's epochs) without looking at dev.

Run: .venv/bin/python bench/choose_gold_epochs.py CONFIG 4,10,20,40

Trains the gold-label-only student of CONFIG once per epoch count (schedule stretched as the pipeline does) and
prints its accuracy on the run's held-out ``select`` sentences, or, without them, on 15% of the labeled rows held
out (seeded). Students go to ``<out_dir>/gold-epochs/e<N>``; the student tokenizer is the run's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from distilrank.distill.config import load_config
from distilrank.distill.pipeline import prepare_data, student_tokenizer, variant_configs
from distilrank.distill.student.store import load_student
from distilrank.distill.student.train import fit_student
from distilrank.distill.variants import StudentVariant
from distilrank.metrics import accuracy, positives


def main(config: str, epochs: str) -> int:
    torch.set_num_threads(1)
    cfg = load_config(config)
    out = Path(cfg.out_dir)
    data = prepare_data(cfg, out, print)
    tok = student_tokenizer(cfg, data, out)
    held, train = data.evals.get("select"), data.train
    if held is None:
        perm = np.random.default_rng(1).permutation(len(train))
        k = len(perm) * 15 // 100
        held, train = train.select(np.sort(perm[:k])), train.select(np.sort(perm[k:]))
    gold = StudentVariant(name="gold-labels-only", targets="gold", interactions=cfg.student.interactions, loss="bce")
    for e in (int(x) for x in epochs.split(",")):
        cfg.student.gold_epochs = e
        model_cfg, train_cfg = variant_configs(cfg.student, gold, tok.get_vocab_size(), cfg.seed)
        sdir = out / "gold-epochs" / f"e{e}"
        fit_student(train, positives(train.labels).astype(np.float32), tok, sdir, model_config=model_cfg, config=train_cfg, progress=False)
        z = load_student(sdir).score(held)
        print(f"gold epochs {e} (lr decay {train_cfg.lr_decay:.3f}/epoch): held-out accuracy {accuracy(z, held.labels):.4f} "
              f"({len(held)} rows)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

"""Digits three ways (10-way, CLIP-style, captioner) and a mini search engine (Zen of Python + builtin corpus).

python scripts/taxonomy_embeddings.py --out results/taxonomy_embeddings
"""

import argparse

from jaxequiv import provenance
from jaxequiv.taxonomy import experiment
from taxonomy_regression import DECODER


def main():
  d = experiment.ExperimentConfig("embeddings")
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=d.steps)
  ap.add_argument("--docs", type=int, default=d.docs, help="Zen lines plus builtin-corpus sentences, this many in all")
  ap.add_argument("--seed", type=int, default=d.seed)
  ap.add_argument("--out", default="results/taxonomy_embeddings")
  a = ap.parse_args()
  run = provenance.start()
  res = experiment.run(experiment.ExperimentConfig("embeddings", steps=a.steps, docs=a.docs, seed=a.seed))
  res.pop("arrays")
  print(res["digits"])
  print({k: res[k] for k in ("search", "search_zen_only")})
  d, s = res["digits"], res["search"]
  provenance.write(
      run, a.out, res, seeds=[a.seed],
      model=f"ReLU MLPs trained {a.steps} AdamW steps each: digits image encoder 64-128-32 with a 10-way head, a"
            f" CLIP-style pair of encoders, or a captioner (a character decoder of width 32); search: hashed"
            f" character trigrams -> MLP query encoder (64-d) with an atomic-id head, an id decoder (width 32) or a document encoder; {DECODER}",
      headline=[("digits: 10-way, CLIP-style zero-shot, captioner rank classification",
                 f"{d['accuracy_10way']:.3f}, {d['accuracy_clip_zero_shot']:.3f}, {d['accuracy_captioner_rank']:.3f}"),
                (f"search over {s['_data']['docs']} documents, Hits@1: classifier, id decoder, dual encoder, untrained"
                 " trigram", ", ".join(f"{s[k]['hits@1']:.2f}" for k in ("atomic_classifier", "id_decoder",
                                                                         "dual_encoder", "trigram_cosine_no_training")))])


if __name__ == "__main__":
  main()

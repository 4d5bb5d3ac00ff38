"""Digits three ways (10-way, CLIP-style, captioner) and a mini search engine (Zen of Python + builtin corpus).

python scripts/taxonomy_embeddings.py --out results/taxonomy_embeddings
"""

import argparse

from jaxequiv import provenance
from jaxequiv.lm import corpus
from jaxequiv.taxonomy import exp_embeddings
from taxonomy_regression import DECODER


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=1500)
  ap.add_argument("--docs", type=int, default=100, help="Zen lines plus builtin-corpus sentences, this many in all")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="results/taxonomy_embeddings")
  a = ap.parse_args()
  run = provenance.start()
  res = {"digits": exp_embeddings.digits_three_ways(steps=a.steps, seed=a.seed)}
  print(res["digits"])
  builtin = [s for s in corpus.load_sentences("builtin") if 6 <= len(s.split()) <= 25]
  zen = exp_embeddings.zen_lines()
  docs = zen + builtin[:max(0, a.docs - len(zen))]
  res["search"] = exp_embeddings.search_engine(docs, steps=a.steps, seed=a.seed)
  res["search_zen_only"] = exp_embeddings.search_engine(zen, steps=a.steps, seed=a.seed)
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

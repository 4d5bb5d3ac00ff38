"""Digits three ways (10-way, CLIP-style, captioner) and a mini search engine (Zen of Python + builtin corpus).

python scripts/taxonomy_embeddings.py --out results/taxonomy_embeddings.json
"""

import argparse
import json
import time

from jaxequiv.lm import corpus
from jaxequiv.taxonomy import exp_embeddings


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=1500)
  ap.add_argument("--docs", type=int, default=100, help="Zen lines plus builtin-corpus sentences, this many in all")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="results/taxonomy_embeddings.json")
  a = ap.parse_args()
  t0 = time.time()
  res = {"digits": exp_embeddings.digits_three_ways(steps=a.steps, seed=a.seed)}
  print(json.dumps(res["digits"], indent=1))
  builtin = [s for s in corpus.load_sentences("builtin") if 6 <= len(s.split()) <= 25]
  zen = exp_embeddings.zen_lines()
  docs = zen + builtin[:max(0, a.docs - len(zen))]
  res["search"] = exp_embeddings.search_engine(docs, steps=a.steps, seed=a.seed)
  res["search_zen_only"] = exp_embeddings.search_engine(zen, steps=a.steps, seed=a.seed)
  res["_config"] = {**vars(a), "seconds": round(time.time() - t0, 1)}
  print(json.dumps({k: res[k] for k in ("search", "search_zen_only", "_config")}, indent=1))
  with open(a.out, "w") as f:
    json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()

"""Digits three ways (10-way, CLIP-style, captioner) and a mini search engine (Zen of Python + builtin corpus), over seeds.

python scripts/taxonomy_embeddings.py --out results/taxonomy_embeddings
"""

import argparse

from jaxequiv import provenance
from jaxequiv.taxonomy import experiment
from taxonomy_regression import pm, seed_config, seed_flags

SEARCH = ("atomic_classifier", "id_decoder", "dual_encoder")


def main():
  d = experiment.ExperimentConfig("embeddings")
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=d.steps)
  ap.add_argument("--docs", type=int, default=d.docs, help="Zen lines plus builtin-corpus sentences, this many in all")
  seed_flags(ap, d)
  ap.add_argument("--out", default="results/taxonomy_embeddings")
  a = ap.parse_args()
  run = provenance.start()
  c = experiment.ExperimentConfig("embeddings", steps=a.steps, docs=a.docs, **seed_config(a))
  res = experiment.run(c)
  res.pop("arrays")
  g, s = res["digits"], res["search"]
  print({k: v for k, v in g.items()})
  print({k: res[k] for k in ("search", "search_zen_only")})
  provenance.write(
      run, a.out, res, seeds=c.seeds,
      model=f"ReLU MLPs trained {a.steps} AdamW steps each (batch {g['batch'][0]:.0f}), {len(c.seeds)} seeds: digits"
            f" image encoder {'-'.join(f'{w:.0f}' for w in g['image_encoder'])} with a 10-way head, a CLIP-style pair"
            f" of encoders, or a captioner; search: hashed character trigrams -> MLP query encoder"
            f" {'-'.join(f'{w:.0f}' for w in s['_data']['query_encoder'])} with an atomic-id head, an id decoder or a"
            f" document encoder; the captioner and the id decoder are each {g['decoder']}",
      headline=[("digits accuracy: 10-way, CLIP-style zero-shot, captioner rank classification",
                 ", ".join(pm(g[k], ".3f") for k in ("accuracy_10way", "accuracy_clip_zero_shot",
                                                     "accuracy_captioner_rank"))),
                ("digits NLL (nats per image): 10-way, CLIP-style zero-shot, captioner",
                 ", ".join(pm(g[k], ".3f") for k in ("nll_10way", "nll_clip_zero_shot", "nll_captioner"))),
                (f"search over {s['_data']['docs'][0]:.0f} documents, Hits@1: classifier, id decoder, dual encoder,"
                 " untrained trigram", ", ".join(pm(s[k]["hits@1"]) for k in (*SEARCH, "trigram_cosine_no_training"))),
                ("search NLL (nats per query): classifier, id decoder, dual encoder",
                 ", ".join(pm(s[k]["nll"]) for k in SEARCH))])


if __name__ == "__main__":
  main()

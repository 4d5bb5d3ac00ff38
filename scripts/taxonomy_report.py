"""Writes results/taxonomy.{json,md}: the taxonomy checks (run now) beside the experiments' records.

python scripts/taxonomy_report.py   # after scripts/taxonomy_{regression,embeddings,functions}.py
"""

import json

from jaxequiv import provenance
from jaxequiv.taxonomy import checks

R = provenance.ROOT / "results"
PARTS = ("taxonomy_regression", "taxonomy_embeddings", "taxonomy_functions")


def _load(name: str) -> dict:
  rec = json.loads((R / f"{name}.json").read_text())
  if "provenance" not in rec:
    raise SystemExit(f"results/{name}.json predates provenance: rerun python scripts/results.py --rerun {name}")
  return rec


def _part(rec: dict) -> list[str]:
  p = rec["provenance"]
  return [f"- `{p['command']}`: commit {p['commit'][:10]}{' (sources modified)' if p['dirty'] else ''},"
          f" {p['date_utc']}, {p['wall_s']:.0f} s, load {p['loadavg_start'][0]:.1f}",
          f"  models: {rec['model']}"]


def _ranked(values: dict[str, float]) -> list[str]:
  return sorted(values, key=values.get)


def _pm(v, fmt: str = ".3f") -> str:
  """``mean +- std`` of a ``[mean, std]`` pair."""
  return f"{v[0]:{fmt}} +- {v[1]:{fmt}}"


def _i(v) -> str:
  """A count stored as ``[mean, std]`` over seeds (or a plain number), as an integer."""
  return f"{(v[0] if isinstance(v, list) else v):.0f}"


def _dash(widths) -> str:
  return "-".join(_i(w) for w in widths)


def _converged() -> list[str]:
  """The neural processes trained at the reference widths (``scripts/cnp_converged.py``), if run."""
  lines = []
  for name in ("cnp_converged", "cnp_converged_acnp"):
    if (R / f"{name}.json").exists():
      rec = _load(name)
      lines += [f"- {h['what']}: {h['result']} (`results/{name}.md`)" for h in rec["headline"]]
  return (["Trained on fresh draws at the reference CNP's widths until the test NLL stops improving or the"
           " budget ends (each line says which):", "", *lines, ""]
          if lines else [])


def render(rec: dict) -> str:
  """results/taxonomy.md from its record (the checks) and the three experiments' records; every number from data."""
  recs = {n: _load(n) for n in PARTS}
  reg, emb, fun = (recs[n]["data"] for n in PARTS)
  heads, su = reg["heads"], reg["setup"]
  out = [
      "# Taxonomy: regression, embeddings and functions as conditional likelihoods",
      "",
      *provenance.header(rec),
      "",
      "Experiments (each file has its own provenance):",
      "",
      *[line for n in PARTS for line in _part(recs[n])],
      "",
      f"## Identities (`jaxequiv.taxonomy.checks.run_checks()`, jit-compiled, {rec['provenance']['wall_s']:.0f} s)",
      "",
      "```",
      *rec["data"]["checks"],
      "```",
      "",
      f"## Regression: scikit-learn diabetes ({su['rows']} rows), {su['folds']}-fold CV repeated over"
      f" {len(su['seeds'])} seeds, one MLP trunk ({_dash(su['trunk'])}), {sum(h != 'ridge' for h in heads)} heads"
      " on it and closed-form ridge beside them",
      "",
      "Targets standardised per fold; every head early-stopped on an inner"
      f" {su['early_stopping_split']:.0%} split of its training fold by its own loss (at most {su['steps']} steps);",
      "RMSE and NLL (nats per patient, density in the original units) on the held-out folds, averaged over folds,",
      f"then mean +- std over seeds. Binned heads use {su['bins']} bins on [{su['lo_std']}, {su['hi_std']}] standard",
      f"deviations (density = probability / bin width). `digits` spells the same range in {su['digit_bins']} bins as",
      f"{su['num_digits']} base-{su['digit_base']} digits and `'.'`; its decoder is {su['decoder']}, read out with",
      "trie-constrained probabilities and E[y] by recursion over the trie.",
      "",
      "| head | test RMSE | test NLL | fold std of RMSE (mean over seeds) |",
      "|---|---|---|---|",
  ]
  for h, v in heads.items():
    out.append(f"| {h} | {_pm(v['rmse'], '.2f')} | {_pm(v['nll'])} | {v['rmse_fold_std'][0]:.2f} |")
  pointwise = [h for h in heads if h not in ("digits", "ridge")]
  spread = lambda a, b: abs(heads[a]["rmse"][0] - heads[b]["rmse"][0]) / max(heads[a]["rmse"][1], heads[b]["rmse"][1], 1e-12)  # noqa: E731
  by_rmse = _ranked({h: heads[h]["rmse"][0] for h in heads})
  by_nll = _ranked({h: heads[h]["nll"][0] for h in heads})
  out += [
      "",
      "Anchor: decoder heads are reported as good as pointwise heads (Song & Bahri, \"Decoding-based regression\").",
      "Here the digit string head's RMSE differs from each pointwise head's by (in units of the larger seed std): "
      + ", ".join(f"{h} {spread('digits', h):.1f}" for h in pointwise) + ".",
      f"Ranked by RMSE: {', '.join(by_rmse)}. Ranked by NLL: {', '.join(by_nll)}"
      f" (ridge: closed form, alpha = {su['ridge_alpha']}, same folds).",
      "",
  ]
  d = emb["digits"]
  out += [
      f"## Embeddings: sklearn digits ({_i(d['train_images'])} train / {_i(d['test_images'])} test), one image-encoder"
      f" architecture and init ({_dash(d['image_encoder'])}), three ways, {len(emb['seeds'])} seeds",
      "",
      f"The captioner is {d['decoder']}.",
      "",
      "| model | test accuracy | test NLL (nats per image) |",
      "|---|---|---|",
      f"| 10-way classifier | {_pm(d['accuracy_10way'], '.4f')} | {_pm(d['nll_10way'])} |",
      f"| CLIP-style dual encoder, character text encoder, zero-shot over the captions"
      f" | {_pm(d['accuracy_clip_zero_shot'], '.4f')} | {_pm(d['nll_clip_zero_shot'])} |",
      f"| captioner (string head): rank classification; NLL trie-constrained over the captions"
      f" | {_pm(d['accuracy_captioner_rank'], '.4f')} | {_pm(d['nll_captioner'])} |",
      "",
      f"InfoNCE bound with N = {_i(d['infonce_batch'])} (one test image per class, {_i(d['infonce_draws'])} draws):"
      f" {_pm(d['infonce_bound_N10_nats'])} nats, against log N = {d['log10'][0]:.3f}, the most an InfoNCE bound",
      "with that N can show; the mutual information between a digit and its caption (a function of the class) is at",
      f"most log 10. Captioner leakage (mass on strings that are not captions):"
      f" {_pm(d['captioner_leakage_mean'])}.",
      "",
  ]
  models = ("atomic_classifier", "id_decoder", "dual_encoder", "trigram_cosine_no_training")
  for key, title in (("search", "Zen of Python + builtin-corpus sentences"), ("search_zen_only", "Zen of Python only")):
    s = emb[key]
    hits = [k for k in s["atomic_classifier"] if k.startswith("hits@")]
    out += [f"### Mini search engine: {title} ({_i(s['_data']['docs'])} documents, {_i(s['_data']['train_queries'])}"
            f" training queries incl. each full document, {_i(s['_data']['test_queries'])} held-out word spans)", "",
            "| model | " + " | ".join(h.replace("hits@", "Hits@") for h in hits) + " | test NLL (nats per query) |",
            "|---|" + "---|" * (len(hits) + 1)]
    for name in models:
      nll = _pm(s[name]["nll"]) if "nll" in s[name] else "(not a trained softmax)"
      out.append(f"| {name} | " + " | ".join(_pm(s[name][h]) for h in hits) + f" | {nll} |")
    out += ["", f"Ranked by {hits[0].replace('hits@', 'Hits@')}: "
            + ", ".join(_ranked({n: -s[n][hits[0]][0] for n in models})) + ".", ""]
  out += [
      f"The id decoder is {emb['search']['_data']['decoder']}; it spells decimal document ids, and its scores are the",
      "trie-constrained teacher-forced log-probabilities of all ids (= beam search with beam >= K). Anchor: DSI (Tay",
      "et al.) compares atomic and string ids with dual encoders on Natural Questions. The held-out queries are word",
      "spans of their documents, which the untrained trigram cosine matches directly.",
      "",
  ]
  c, e = fun["cnp"], fun["expressions"]
  gp = c["gp"]
  gap = c["cnp_nll"][0] - c["gp_posterior_nll"][0]
  out += [
      f"## Functions ({len(fun['seeds'])} seeds)",
      "",
      f"CNP on GP draws ({gp['kernel']}, lengthscale {gp['lengthscale'][0]}, x in {gp['x_range']}, noise"
      f" {gp['noise'][0]}; {c['context_points'][0]}..{c['context_points'][1]} context and {_i(c['target_points'])}"
      f" target points; encoder {_dash(c['encoder'])}, decoder {_dash(c['decoder'])}; {_i(c['steps'])} steps of"
      f" {_i(c['tasks_per_step'])} fresh draws, {_i(c['train_tasks'])} in all): test NLL per target point on"
      f" {_i(c['test_tasks'])} held-out tasks:",
      "",
      "| model | NLL per target point |",
      "|---|---|",
      f"| exact GP posterior predictive (the floor, same run) | {_pm(c['gp_posterior_nll'])} |",
      f"| CNP | {_pm(c['cnp_nll'])} (final training NLL {_pm(c['final_train_nll'])}) |",
      f"| GP prior (ignores the context) | {_pm(c['gp_prior_nll'])} |",
      "",
      f"The CNP is {gap:.3f} nats per point above the floor, "
      f"{gap / (c['gp_prior_nll'][0] - c['gp_posterior_nll'][0]):.0%} of the prior-to-posterior gap. Anchor: CNPs",
      "underfit the GP posterior (Kim et al., \"Attentive neural processes\").",
      "",
      *_converged(),
      f"Expression recovery: {_i(e['num_expressions'])} functions (grammar strings up to {_i(e['max_len'])} symbols,"
      f" deduplicated by value on a grid), {_i(e['points_per_set'])} random points per set, {_i(e['test_sets'])} fresh"
      f" test point sets (chance {e['chance'][0]:.4f}); DeepSets encoder width {_i(e['encoder_width'])},"
      f" {_i(e['steps'])} steps of batch {_i(e['batch'])}. The string head is {e['decoder']}.",
      "",
      "| head on the same DeepSets encoder | exact recovery | test NLL (nats per point set) |",
      "|---|---|---|",
      f"| K-way classifier | {_pm(e['recovery_kway'])} | {_pm(e['nll_kway'])} |",
      f"| string head, exact argmax over the trie | {_pm(e['recovery_decoder_exact_argmax'])} | {_pm(e['nll_decoder'])} |",
      f"| string head, trie-constrained greedy | {_pm(e['recovery_decoder_greedy'])} | |",
  ]
  return "\n".join(out)


def main():
  run = provenance.start()
  lines = [line for _, line in checks.run_checks()]
  recs = {n: _load(n) for n in PARTS}
  rec = provenance.write(
      run, R / "taxonomy", {"checks": lines, "parts": {n: recs[n]["provenance"]["source_hash"] for n in PARTS}},
      seeds=[], render=render,
      model="the identities use small random MLPs (no training); the experiments' models are listed per file below",
      headline=[h for n in PARTS for h in ((x["what"], x["result"]) for x in recs[n]["headline"])])
  print(render(rec))


if __name__ == "__main__":
  main()

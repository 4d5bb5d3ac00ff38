"""The labels experiment's report: what the run did and measured, as text and markdown tables.

``report_text`` is what ``python -m jaxequiv labels`` prints (and ``metrics.md``
holds): the settings, the class names, the final training losses with their
units (one-hot: nats per label; string: nats per character), the metrics table,
the first test images' labels as each head spells them, and the zero-shot table.
"""

from __future__ import annotations

from typing import Any

import jax


_ROWS = [
    ("test images", "images", "{:.0f}"),
    ("accuracy (one-hot: argmax; string: rank classification)", "accuracy", "{:.4f}"),
    ("NLL per image, nats (string: -log p(label chars))", "nll_per_image", "{:.4f}"),
    ("NLL per image, trie-constrained (string)", "nll_per_image_constrained", "{:.4f}"),
    ("ECE, 15 bins (string: rank probs renormalised over K)", "ece", "{:.4f}"),
    ("leakage: mass on non-label strings (string)", "leakage", "{:.4f}"),
    ("accuracy, trie-constrained greedy (string)", "greedy_accuracy", "{:.4f}"),
    ("accuracy, trie-constrained beam (string)", "beam_accuracy", "{:.4f}"),
    ("accuracy, free greedy over 64 chars (string)", "free_greedy_accuracy", "{:.4f}"),
    ("free greedy output is a valid label (string)", "free_greedy_valid", "{:.4f}"),
]


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
  """Markdown table: one row per metric, one column per head."""
  lines = ["| metric | one-hot head | string head |", "|---|---:|---:|"]
  for title, key, fmt in _ROWS:
    cells = [fmt.format(metrics[h][key]) if h in metrics and key in metrics[h] else "—" for h in ("onehot", "string")]
    lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
  return "\n".join(lines)


_ZS_ROWS = [
    ("held-out test images", "images", "{:.0f}"),
    ("one-hot head accuracy (no output for these classes)", "onehot_accuracy", "{:.4f}"),
    ("string: mean p(true label string)", "p_true_mean", "{:.4f}"),
    ("string: median p(true label string)", "p_true_median", "{:.4g}"),
    ("string: mean p(true label), trie-constrained over all combos", "p_true_constrained_mean", "{:.4f}"),
    ("string: mean mass on the held-out label set", "p_heldout_set_mean", "{:.4f}"),
    ("string: mean rank of true label among all combos", "rank_mean", "{:.2f}"),
    ("string: rank 1 (rank classification names it)", "rank1", "{:.4f}"),
    ("string: rank <= 3", "rank_le3", "{:.4f}"),
    ("string: named exactly, free greedy over chars", "named_free_greedy", "{:.4f}"),
    ("string: named exactly, trie greedy (all combos)", "named_trie_greedy", "{:.4f}"),
    ("string: named exactly, trie beam (all combos)", "named_trie_beam", "{:.4f}"),
    ("string: free greedy colour word correct", "colour_word_correct", "{:.4f}"),
    ("string: free greedy shape word correct", "shape_word_correct", "{:.4f}"),
    ("string, prior-corrected (PMI vs blank image): rank 1", "pmi_rank1", "{:.4f}"),
    ("string, prior-corrected: mean rank among all combos", "pmi_rank_mean", "{:.2f}"),
    ("seen-combination images: rank-classification accuracy", "rank_accuracy_seen", "{:.4f}"),
    ("seen-combination images: prior-corrected accuracy", "pmi_accuracy_seen", "{:.4f}"),
    ("chance of rank 1 (1/K)", "chance_rank1", "{:.4f}"),
]


def zero_shot_table(zs: dict[str, Any]) -> str:
  lines = ["| zero-shot metric | value |", "|---|---:|"]
  lines += [f"| {title} | {fmt.format(zs[key])} |" for title, key, fmt in _ZS_ROWS]
  return "\n".join(lines)


def examples_table(rows: list[dict[str, Any]]) -> str:
  """Markdown table of ``jaxequiv.labels.evaluate.examples``: each image's true label and what each head says."""
  lines = ["| test image | true label | one-hot head: top label (p) | string head: top label (p of spelling it;"
           " p over the K labels) | string head: free greedy spelling |", "|---:|---|---|---|---|"]
  for i, r in enumerate(rows):
    onehot = f"{r['onehot']} ({r['p_onehot']:.3f})" if "onehot" in r else "—"
    string = f"{r['string']} ({r['p_string']:.3g}; {r['p_string_k']:.3f})" if "string" in r else "—"
    spelled = repr(r["spelled"]) if "spelled" in r else "—"
    lines.append(f"| {i} | {r['label']} | {onehot} | {string} | {spelled} |")
  return "\n".join(lines)


def class_names_line(class_names: list[str], shown: int = 20) -> str:
  """``class names (K=..): a. | b. | ..``, the first ``shown`` of them."""
  more = f" | ... (+{len(class_names) - shown} more)" if len(class_names) > shown else ""
  return f"class names (K={len(class_names)}): " + " | ".join(class_names[:shown]) + more


def report_text(res: dict[str, Any]) -> str:
  """What ``python -m jaxequiv labels`` prints: header, classes, final losses, the metrics, examples, zero-shot.

  Args:
    res: ``jaxequiv.labels.experiment.run_experiment``'s result.
  """
  sec, trained = res["seconds"], res["trained"]
  head = (f"data={res['data']} train={res['num_train']} test={res['num_test']} K={len(res['test'].class_names)}"
          f" steps={res['steps']} batch={res['batch_size']} seed={res['seed']} token_dropout={res['token_dropout']}"
          f" backend={jax.default_backend()}"
          f" (load {sec['load']:.1f}s, train {sec['train']:.1f}s, eval {sec['eval']:.1f}s)")
  losses = [f"{name} {curve[-1]:.4f} {unit}" for name, curve, unit in (
      ("one-hot head", trained.onehot_curve, "nats per label"),
      ("string head", trained.string_curve, "nats per character")) if len(curve)]
  text = [head, class_names_line(list(res["test"].class_names)),
          f"training loss at step {res['steps']}: " + ", ".join(losses), "", metrics_table(res["metrics"])]
  if res.get("examples"):
    text += ["", "first test images:", "", examples_table(res["examples"])]
  if res["zero_shot"] is not None:
    zs = res["zero_shot"]
    text += ["", f"zero-shot: held out {', '.join(zs['heldout'])}", "", zero_shot_table(zs),
             "", f"free greedy outputs on held-out images (top 5): {zs['free_greedy_top']}"]
  return "\n".join(text)

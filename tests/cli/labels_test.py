"""Tests for jaxequiv.cli.labels: flags -> config -> experiment.run -> printed report and --out."""

import argparse
import json

from jaxequiv import cli
from jaxequiv.cli import labels as cli_labels


def test_cli_runs_end_to_end(tmp_path, capsys):
  # Same model config, batch size and beam size as tests/labels/, so their compiled functions are reused.
  rc = cli.main([
      "labels", "--data", "shapes", "--steps", "2", "--batch-size", "8", "--num-train", "32",
      "--num-test", "48", "--zero-shot", "--width", "32", "--heads", "2", "--channels", "8,16",
      "--beam-size", "3", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert rc == 0
  assert "| accuracy, trie-constrained beam (string) |" in out and "zero-shot metric" in out
  # It says what it does: the classes, the losses with their units, a few images' labels as each head spells them.
  assert "class names (K=16): red circle. | red square. |" in out
  assert "onehot step     2/2  loss" in out and "nats per label" in out and "nats per character" in out
  assert "training loss at step 2: one-hot head " in out
  table = out[out.index("| test image | true label |"):].split("\n\n")[0].splitlines()
  assert len(table) == 2 + 4 and all(row.count("|") == 6 for row in table)
  summary = json.loads((tmp_path / "metrics.json").read_text())
  zs = summary["zero_shot"]
  assert zs["onehot_accuracy"] == 0.0 and zs["onehot_can_output"] == 0.0  # no output for held-out labels
  assert 0.0 <= zs["p_true_mean"] <= 1.0 and 1.0 <= zs["rank_mean"] <= 16.0
  assert len(summary["string_curve"]) == 2 and set(summary["metrics"]) == {"onehot", "string"}
  # The run directory is experiment.run's (config.json, both heads' checkpoint), not written by the CLI by hand.
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["zero_shot_holdout"] is True and config["channels"] == [8, 16] and config["out_dir"] == str(tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints" / "2").iterdir()) == [
      "manifest.json", "meta.json", "onehot", "string"]
  assert (tmp_path / "metrics.md").read_text() in out and f"wrote {tmp_path}/config.json" in out


def test_every_labels_flag_says_its_default():
  parser = argparse.ArgumentParser()
  cli_labels.add_arguments(parser)
  flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]  # pylint: disable=protected-access
  assert len(flags) >= 20
  missing = [a.option_strings[0] for a in flags if "default" not in (a.help or "") and a.dest != "no_determinism_flags"]
  assert missing == [], f"flags whose help does not say their default: {missing}"

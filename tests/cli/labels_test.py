"""Tests for jaxequiv.cli.labels: flags -> config -> experiment.run -> printed report and --out."""

import json

from jaxequiv import cli


def test_cli_runs_end_to_end(tmp_path, capsys):
  # Same model config, batch size and beam size as tests/labels/, so their compiled functions are reused.
  rc = cli.main([
      "labels", "--data", "shapes", "--steps", "2", "--batch-size", "8", "--num-train", "32",
      "--num-test", "48", "--zero-shot", "--width", "32", "--heads", "2", "--channels", "8,16",
      "--beam-size", "3", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert rc == 0
  assert "| accuracy, trie-constrained beam (string) |" in out and "zero-shot metric" in out
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

"""Training throughput (images/s) of the one-hot head and the string head.

Both models share the CNN encoder; the string head adds a causal character
decoder run on T label positions per image, trained with ``jaxequiv.lm_nll``.
Times jitted Adam steps (compile excluded, ``block_until_ready`` after each
timed run) on the ``shapes`` data set and writes ``results/bench_labels.md``.

  python scripts/bench_labels.py --batch-sizes 64,256 --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

import jax
import numpy as np

from jaxequiv import training
from jaxequiv.labels import heads as im
from jaxequiv.labels import images
from jaxequiv.model import ModelConfig


def _machine() -> str:
  try:
    model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines() if line.startswith("Model name"))
  except Exception:  # pylint: disable=broad-except
    model = platform.processor() or "unknown"
  load = os.getloadavg()
  return (f"{os.cpu_count()} CPUs ({model}); load average at start {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f};"
          f" backend {jax.default_backend()} ({jax.devices()[0].device_kind}); jax {jax.__version__}")


def time_head(head: str, config: im.ImageModelConfig, data: images.ImageDataset, batch_size: int, steps: int,
              repeats: int) -> tuple[float, float, float]:
  """Median and min seconds per step over ``repeats`` runs of ``steps`` steps, and compile seconds."""
  rows = im.label_rows(data.class_names, config.decoder.seq_len)
  shape = data.images.shape[1:]
  if head == "onehot":
    params = im.init_onehot(jax.random.key(0), config, len(data.class_names), shape)
    loss = lambda p, x, y: im.onehot_loss(p, x, y, config)  # noqa: E731
    batch = lambda idx: (data.images[idx], data.labels[idx])  # noqa: E731
  else:
    params = im.init_string(jax.random.key(0), config, shape)
    loss = lambda p, x, b: im.string_loss(p, x, b, config)  # noqa: E731
    batch = lambda idx: (data.images[idx], im.gather_rows(rows, data.labels[idx]))  # noqa: E731
  opt = training.make_optimizer(im.optimizer_config(3e-3))
  step = training.jit_train_step(training.make_train_step(lambda p, b: loss(p, *b), opt))
  state = training.init_train_state(params, opt)
  idx = list(im.batch_indices(len(data.labels), batch_size, steps, 0))
  batches = [jax.device_put(batch(i)) for i in idx]
  t0 = time.perf_counter()
  state, l = step(state, batches[0])
  jax.block_until_ready((state, l))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for b in batches:
      state, l = step(state, b)
    jax.block_until_ready((state, l))
    times.append((time.perf_counter() - t0) / steps)
  return float(np.median(times)), float(np.min(times)), compile_s


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch-sizes", default="64,256")
  p.add_argument("--steps", type=int, default=30)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--image-size", type=int, default=16)
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--layers", type=int, default=1)
  p.add_argument("--out", default="results/bench_labels.md")
  args = p.parse_args(argv)
  data = images.load_images("shapes", "train", num_examples=2048, image_size=args.image_size)
  config = im.ImageModelConfig(embed_dim=args.width,
                               decoder=ModelConfig(num_layers=args.layers, width=args.width, num_heads=4, seq_len=16))
  date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  machine = _machine()
  rows = []
  for bs in (int(b) for b in args.batch_sizes.split(",")):
    for head in ("onehot", "string"):
      med, best, comp = time_head(head, config, data, bs, args.steps, args.repeats)
      rows.append((head, bs, bs / med, bs / best, med * 1e3, comp))
      print(f"{head:6s} batch {bs:4d}: {bs / med:9.1f} images/s (median; best {bs / best:.1f}),"
            f" {med * 1e3:.2f} ms/step, compile {comp:.1f}s", flush=True)
  cmd = "python scripts/bench_labels.py " + " ".join(sys.argv[1:] if argv is None else argv)
  lines = [
      "# Training throughput: one-hot head vs string head (images/s)",
      "",
      f"- date: {date}",
      f"- machine: {machine}",
      "- accelerator: none — no GPU was lent to this task; CPU numbers only.",
      "- the CPU was shared with other jobs while this ran, so timings are noisy (load average above).",
      f"- command: `{cmd.strip()}`",
      f"- data: shapes {args.image_size}x{args.image_size}x3, K=16 labels of up to 16 characters (decoder"
      f" seq_len 16); model: CNN channels {config.channels}, embed {config.embed_dim}; string decoder"
      f" {args.layers} layer(s), width {args.width}; Adam; {args.steps} timed steps x {args.repeats} repeats,"
      " compile excluded.",
      "",
      "| head | batch | images/s (median) | images/s (best) | ms/step (median) | compile s |",
      "|---|---:|---:|---:|---:|---:|",
  ]
  lines += [f"| {h} | {b} | {m:.0f} | {x:.0f} | {ms:.2f} | {c:.1f} |" for h, b, m, x, ms, c in rows]
  lines += ["", "The string head's extra cost is the decoder: one transformer block over T=16 label positions per"
            " image (teacher forcing, every character of the label in one pass), on top of the same encoder."]
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""Training throughput (images/s) of the one-hot head and the string head.

Both models share the CNN encoder; the string head adds a causal character
decoder run on T label positions per image, trained with ``jaxequiv.lm_nll``.
Times jitted Adam steps (compile excluded, ``block_until_ready`` after each
timed run) on the ``shapes`` data set and writes ``results/bench_labels.{json,md}``.

  python scripts/bench_labels.py --batch-sizes 64,256 --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from jaxequiv import provenance, training
from jaxequiv.labels import heads as im
from jaxequiv.labels import images
from jaxequiv.labels import train as labels_train
from jaxequiv.model import ModelConfig


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
  opt = training.make_optimizer(labels_train.optimizer_config(3e-3))
  step = training.jit_train_step(training.make_train_step(lambda p, b: loss(p, *b), opt))
  state = training.init_train_state(params, opt)
  idx = list(labels_train.batch_indices(len(data.labels), batch_size, steps, 0))
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


def render(rec: dict) -> str:
  """results/bench_labels.md from its record."""
  d = rec["data"]
  a = d["args"]
  lines = [
      "# Training throughput: one-hot head vs string head (images/s)", "", *provenance.header(rec),
      f"- data: shapes {a['image_size']}x{a['image_size']}x3, K=16 labels of up to 16 characters (decoder seq_len 16).",
      "- the CPU is shared with other jobs, so timings are noisy (load average above).", "",
      "| head | batch | images/s (median) | images/s (best) | ms/step (median) | compile s |",
      "|---|---:|---:|---:|---:|---:|",
  ]
  lines += [f"| {h} | {b} | {m:.0f} | {x:.0f} | {ms:.2f} | {c:.1f} |" for h, b, m, x, ms, c in d["rows"]]
  lines += ["", "The string head's extra cost is the decoder: a transformer over T=16 label positions per"
            " image (teacher forcing, every character of the label in one pass), on top of the same encoder."]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch-sizes", default="64,256")
  p.add_argument("--steps", type=int, default=30)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--image-size", type=int, default=16)
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--layers", type=int, default=1)
  p.add_argument("--out", default="results/bench_labels")
  args = p.parse_args(argv)
  run = provenance.start([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
  data = images.load_images("shapes", "train", num_examples=2048, image_size=args.image_size)
  config = im.ImageModelConfig(embed_dim=args.width,
                               decoder=ModelConfig(num_layers=args.layers, width=args.width, num_heads=4, seq_len=16))
  rows = []
  for bs in (int(b) for b in args.batch_sizes.split(",")):
    for head in ("onehot", "string"):
      med, best, comp = time_head(head, config, data, bs, args.steps, args.repeats)
      rows.append((head, bs, bs / med, bs / best, med * 1e3, comp))
      print(f"{head:6s} batch {bs:4d}: {bs / med:9.1f} images/s (median; best {bs / best:.1f}),"
            f" {med * 1e3:.2f} ms/step, compile {comp:.1f}s", flush=True)
  ratio = {b: dict((h, m) for h, b_, m, *_ in rows if b_ == b) for _, b, *_ in rows}
  rec = provenance.write(
      run, args.out, {"args": vars(args), "channels": list(config.channels), "rows": rows}, seeds=[0], render=render,
      model=f"CNN encoder (channels {tuple(config.channels)}, embed {config.embed_dim}) with a one-hot 16-way head, or"
            f" the same encoder with a {args.layers}-layer jaxequiv.model decoder (width {args.width}, T=16) over the"
            f" label's characters; Adam; {args.steps} timed steps x {args.repeats} repeats, compile excluded"
            " (a throughput benchmark: no accuracy)",
      headline=[("shapes, training images/s, one-hot vs string head (median)", ", ".join(
          f"batch {b}: {r['onehot']:.0f} vs {r['string']:.0f}" for b, r in ratio.items()))])
  print(render(rec))
  return 0


if __name__ == "__main__":
  sys.exit(main())

"""Drawing a label trie: ASCII text and a matplotlib figure."""

from __future__ import annotations

import numpy as np

from jaxequiv import alphabet
from jaxequiv.labels.trie import LabelTrie, label_trie  # noqa: F401  (label_trie: doctest)



def _compressed(trie: LabelTrie):
  """Radix view: (node, edge string, children) with chains of single-child nodes merged."""
  child = np.asarray(trie.child)
  kids = [list(child[n][child[n] >= 0]) for n in range(trie.num_nodes)]

  def walk(n: int, edge: str):
    while len(kids[n]) == 1:
      n = int(kids[n][0])
      edge += alphabet.ALPHABET[int(trie.char[n])]
    return n, edge, [walk(int(m), alphabet.ALPHABET[int(trie.char[m])]) for m in kids[n]]

  return (0, "", [walk(int(m), alphabet.ALPHABET[int(trie.char[m])]) for m in kids[0]])


def trie_text(trie: LabelTrie) -> str:
  """An ASCII drawing of the trie, with single-child chains merged; leaves show ``-> class``.

  >>> print(trie_text(label_trie(["cat.", "car.", "dog."])))
  (root)
  +-- 'ca'
  |   +-- 'r.'  -> 1
  |   +-- 't.'  -> 0
  +-- 'dog.'  -> 2
  """
  lines = ["(root)"]

  def draw(item, indent: str):
    for i, (n, edge, kids) in enumerate(item[2]):
      last = i == len(item[2]) - 1
      leaf = f"  -> {int(trie.leaf_class[n])}" if trie.leaf_class[n] >= 0 else ""
      lines.append(f"{indent}+-- {edge!r}{leaf}")
      draw((n, edge, kids), indent + ("    " if last else "|   "))

  draw(_compressed(trie), "")
  return "\n".join(lines)


def trie_figure(trie: LabelTrie, *, figsize: tuple[float, float] | None = None, title: str | None = None):
  """Draws the trie left to right (x = characters from the root) as a matplotlib Figure.

  Chains of single-child nodes are drawn as one edge labelled with their
  characters; each leaf is annotated with its class index. Readable up to a
  hundred or so labels. Uses ``matplotlib.figure.Figure`` (no pyplot state):
  save it with ``fig.savefig``, or in a notebook run ``%matplotlib inline`` once
  and then ``display(fig)`` (checked with nbclient: without that magic a bare
  Figure shows only as text, even after ``import matplotlib.pyplot``).
  """
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

  root = _compressed(trie)
  pos: dict[int, tuple[float, float]] = {}
  edges = []
  rank = [0]

  def place(item) -> float:
    n, edge, kids = item
    if not kids:
      y = -float(rank[0])
      rank[0] += 1
    else:
      y = float(np.mean([place(k) for k in kids]))
    pos[n] = (float(trie.depth[n]), y)
    for k in kids:
      edges.append((n, k[0], k[1]))
    return y

  place(root)
  k = trie.num_classes
  if figsize is None:
    figsize = (min(2.0 + 0.35 * trie.max_len, 30.0), min(1.0 + 0.32 * k, 60.0))
  fig = Figure(figsize=figsize)
  ax = fig.add_subplot()
  for a, bnode, text in edges:
    (x0, y0), (x1, y1) = pos[a], pos[bnode]
    ax.plot([x0, x0 + 0.3, x1], [y0, y1, y1], color="0.6", lw=1, zorder=1)
    ax.text((x0 + 0.3 + x1) / 2, y1 + 0.08, text, ha="center", va="bottom", family="monospace", fontsize=9)
  xs, ys = zip(*pos.values())
  ax.scatter(xs, ys, s=12, color="C0", zorder=2)
  for n, (x, y) in pos.items():
    if trie.leaf_class[n] >= 0:
      ax.text(x + 0.2, y, f"{int(trie.leaf_class[n])}", va="center", fontsize=8, color="C3")
  ax.set_xlabel("characters from the root")
  ax.set_yticks([])
  for side in ("left", "right", "top"):
    ax.spines[side].set_visible(False)
  ax.set_xlim(-0.5, trie.max_len + 1.0)
  ax.set_ylim(-k + 0.5, 0.8)
  ax.set_title(title or f"label trie: {k} labels, {trie.num_nodes} nodes")
  fig.tight_layout()
  return fig

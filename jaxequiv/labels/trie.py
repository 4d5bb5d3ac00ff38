"""The character trie of K class labels (``LabelTrie``) and its construction.

A *label* is a sentence over the 64-symbol alphabet: a non-empty string whose
only ``'.'`` is its last character, e.g. ``"maple tree."``. The set of labels is
therefore prefix-free and the K labels are the leaves of a character trie.
Label k, of length L_k, is the path ``root = n_0 -> n_1 -> .. -> n_{L_k}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxequiv import alphabet

V = alphabet.NUM_CLASSES  # 64 characters.


class LabelTrie(NamedTuple):
  """The character trie of K labels. Nodes are numbered in BFS order (root 0).

  Within a level, nodes are ordered by parent, then by character id, so
  ``parent[n] < n``. Class k is label k of the list given to ``label_trie``.
  All fields are int32 numpy arrays (a pytree ``jax.jit`` accepts).
  """

  parent: np.ndarray         # [N] parent node; -1 for the root.
  char: np.ndarray           # [N] character id on the edge into the node; -1 for the root.
  depth: np.ndarray          # [N] characters from the root.
  child: np.ndarray          # [N, 64] child node reached by each character; -1 if none.
  leaf_class: np.ndarray     # [N] class whose label ends at the node (a leaf); -1 otherwise.
  label_nodes: np.ndarray    # [K, Lmax+1] node after t characters of label k (t = 0..L_k); the leaf repeats after.
  label_chars: np.ndarray    # [K, Lmax] character ids of label k; 0 past its end.
  label_lengths: np.ndarray  # [K] L_k, characters in label k (including its '.').
  entry_node: np.ndarray     # [S] with entry_class: the pairs "label k passes through node n", sorted by
  entry_class: np.ndarray    # [S] (node, class); S = sum_k (L_k + 1). The sparse [N, K] descendant matrix.

  @property
  def num_nodes(self) -> int:
    return self.parent.shape[0]

  @property
  def num_classes(self) -> int:
    return self.label_lengths.shape[0]

  @property
  def max_len(self) -> int:
    """Lmax, the longest label's length: decoding takes at most this many steps."""
    return self.label_chars.shape[1]

  @property
  def label_mask(self) -> np.ndarray:
    """``[K, Lmax]`` bool: True at the real characters of each label."""
    return np.arange(self.max_len)[None, :] < np.asarray(self.label_lengths)[:, None]

  @property
  def labels(self) -> tuple[str, ...]:
    """The K label strings (concrete tries only)."""
    chars, lengths = np.asarray(self.label_chars), np.asarray(self.label_lengths)
    return tuple(alphabet.decode(chars[k, :lengths[k]]) for k in range(len(lengths)))


def _check_label(label, k: int) -> np.ndarray:
  where = f"label {k}"
  if not isinstance(label, str):
    raise TypeError(f"{where}: expected str, got {type(label).__name__} ({label!r})")
  if not label:
    raise ValueError(f"{where} is empty; a label is a sentence ending with its only '.', e.g. 'cat.'")
  ids = alphabet.encode(label, where=where)
  periods = np.flatnonzero(ids == alphabet.PERIOD)
  if periods.size == 0 or periods[-1] != len(label) - 1:
    raise ValueError(
        f"{where} does not end with '.': last character {label[-1]!r} at position {len(label) - 1}."
        f" Text: {label!r}. normalize_label() maps class names to labels.")
  if periods.size > 1:
    raise ValueError(
        f"{where} has a '.' at position {int(periods[0])} before its end; '.' ends a label, so it may"
        f" appear only last (this keeps the label set prefix-free). Text: {label!r}.")
  return ids


def label_trie(labels: Sequence[str]) -> LabelTrie:
  """Builds the character trie of K labels; class k is ``labels[k]``.

  Args:
    labels: K >= 1 distinct strings over the alphabet, each ending with its only
      ``'.'`` (use ``normalize_label`` for dataset class names).

  Returns:
    ``LabelTrie`` with N nodes (1 + the number of distinct non-empty prefixes).

  Raises:
    ValueError: naming the label index, and the character and its position, for
      empty labels, characters outside the alphabet, a missing final ``'.'`` or
      an early ``'.'``; naming both indices for duplicates.

  Examples:
    >>> trie = label_trie(["cat.", "car.", "dog."])
    >>> trie.num_nodes, trie.num_classes, trie.max_len
    (11, 3, 4)
  """
  if isinstance(labels, str):
    raise TypeError("labels must be a sequence of str, not one str")
  labels = list(labels)
  if not labels:
    raise ValueError("labels is empty; need at least one label")
  ids = [_check_label(s, k) for k, s in enumerate(labels)]
  first = {}
  for k, s in enumerate(labels):
    if s in first:
      raise ValueError(f"labels {first[s]} and {k} are both {s!r}; labels must be distinct")
    first[s] = k
  num_k = len(labels)
  lengths = np.array([len(s) for s in labels], np.int32)
  lmax = int(lengths.max())
  label_chars = np.zeros((num_k, lmax), np.int32)
  for k, x in enumerate(ids):
    label_chars[k, :len(x)] = x
  label_nodes = np.zeros((num_k, lmax + 1), np.int32)
  parent, char, depth, leaf_class, edges = [-1], [-1], [0], [-1], []
  frontier = [(0, list(range(num_k)))]
  d = 0
  while frontier:
    nxt = []
    for node, ks in frontier:
      groups: dict[int, list[int]] = {}
      for k in ks:
        if lengths[k] > d:
          groups.setdefault(int(label_chars[k, d]), []).append(k)
        else:  # Label k ends here; prefix-freeness makes it the node's only label.
          leaf_class[node] = k
          label_nodes[k, d:] = node
      for c in sorted(groups):
        nid = len(parent)
        parent.append(node)
        char.append(c)
        depth.append(d + 1)
        leaf_class.append(-1)
        edges.append((node, c, nid))
        for k in groups[c]:
          label_nodes[k, d + 1] = nid
        nxt.append((nid, groups[c]))
    frontier = nxt
    d += 1
  child = np.full((len(parent), V), -1, np.int32)
  for node, c, nid in edges:
    child[node, c] = nid
  on_path = np.arange(lmax + 1)[None, :] <= lengths[:, None]
  entry_node = label_nodes[on_path]
  entry_class = np.broadcast_to(np.arange(num_k, dtype=np.int32)[:, None], on_path.shape)[on_path]
  order = np.lexsort((entry_class, entry_node))
  i32 = lambda x: np.asarray(x, np.int32)
  return LabelTrie(i32(parent), i32(char), i32(depth), child, i32(leaf_class), label_nodes, label_chars, lengths,
                   i32(entry_node[order]), i32(entry_class[order]))


def descendant_classes(trie: LabelTrie) -> np.ndarray:
  """``[N, K]`` bool: True where class k's label passes through node n (numpy, for inspection)."""
  out = np.zeros((trie.num_nodes, trie.num_classes), bool)
  out[np.asarray(trie.entry_node), np.asarray(trie.entry_class)] = True
  return out


def node_prefixes(trie: LabelTrie) -> list[str]:
  """The string spelled from the root to each node (``""`` for the root)."""
  out = [""]
  for n in range(1, trie.num_nodes):
    out.append(out[int(trie.parent[n])] + alphabet.ALPHABET[int(trie.char[n])])
  return out


def advance(trie: LabelTrie, node_B: jax.Array, char_B: jax.Array) -> jax.Array:
  """The node reached from ``node_B`` by ``char_B``; -1 where the character leaves the trie."""
  return jnp.asarray(trie.child)[node_B, char_B]

r"""Class labels as strings: a trie over K labels and exact conversions both ways.

A *label* is a sentence over the 64-symbol alphabet (``jaxequiv.alphabet``): a
non-empty string whose only ``'.'`` is its last character, e.g. ``"maple tree."``.
The set of labels is therefore prefix-free and the K labels are the leaves of a
character trie (``LabelTrie``). Label k, of length L_k, is the path
``root = n_0 -> n_1 -> .. -> n_{L_k}`` (its leaf).

**K-way -> characters** (``char_conditionals``, ``path_char_logprobs``). A K-way
distribution p(k) defines a distribution over next characters at every trie
node n: with the node's mass :math:`M(n) = \sum_{k \text{ below } n} p(k)`,

.. math:: p(c \mid n) = M(\mathrm{child}(n, c)) / M(n),

and the product of the conditionals along label k's path telescopes to
:math:`M(\mathrm{leaf}_k) / M(\mathrm{root}) = p(k)`. So the class cross-entropy
is exactly the sum of the per-character cross-entropies. Computed in log space
with one segment-logsumexp over the K paths.

**Characters -> K-way** (``label_logprobs``, ``leakage``). A character model
scores label k by teacher forcing: :math:`\log p(k) = \sum_t \log p(c_{k,t}
\mid c_{k,<t})` (rank classification, as in T5). Mass on strings that are not
labels is the ``leakage``. Masking each step to the trie and renormalising
(``constrained_logprobs``) turns the model into a proper distribution over the K
labels, which ``greedy_decode`` and ``beam_decode`` search with fixed shapes
(``lax`` loops of Lmax steps; the step function may carry state, e.g. a KV cache).

Every function takes the ``LabelTrie`` as an ordinary argument. Its fields are
numpy arrays, so it works both closed over (constants) and passed to a jitted
function (traced int32 arrays; shapes stay static).

Examples:
  >>> import jax.numpy as jnp
  >>> from jaxequiv.labels import label_trie, trie_text, path_char_logprobs, label_model_inputs
  >>> trie = label_trie(["cat.", "car.", "dog."])
  >>> print(trie_text(trie))
  (root)
  +-- 'ca'
  |   +-- 'r.'  -> 1
  |   +-- 't.'  -> 0
  +-- 'dog.'  -> 2
  >>> logp_BxKxL = path_char_logprobs(trie, jnp.log(jnp.array([[.5, .3, .2]])))
  >>> logp_BxKxL.shape
  (1, 3, 4)
  >>> batch = label_model_inputs(trie, seq_len=8)   # teacher-forcing rows [K, T]
  >>> batch.inputs.shape
  (3, 8)
"""

from jaxequiv.labels.trie import LabelTrie as LabelTrie
from jaxequiv.labels.trie import label_trie as label_trie
from jaxequiv.labels.trie import descendant_classes as descendant_classes
from jaxequiv.labels.trie import node_prefixes as node_prefixes
from jaxequiv.labels.trie import advance as advance
from jaxequiv.labels.conversions import node_log_mass as node_log_mass
from jaxequiv.labels.conversions import char_conditionals as char_conditionals
from jaxequiv.labels.conversions import path_char_logprobs as path_char_logprobs
from jaxequiv.labels.conversions import label_model_inputs as label_model_inputs
from jaxequiv.labels.conversions import label_logprobs as label_logprobs
from jaxequiv.labels.conversions import leakage as leakage
from jaxequiv.labels.constrained import constrained_logprobs as constrained_logprobs
from jaxequiv.labels.constrained import StepFn as StepFn
from jaxequiv.labels.constrained import Decoded as Decoded
from jaxequiv.labels.constrained import greedy_decode as greedy_decode
from jaxequiv.labels.constrained import beam_decode as beam_decode
from jaxequiv.labels.names import normalize_label as normalize_label
from jaxequiv.labels.names import normalize_labels as normalize_labels
from jaxequiv.labels.drawing import trie_text as trie_text
from jaxequiv.labels.drawing import trie_figure as trie_figure

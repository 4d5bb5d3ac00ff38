"""Embedding experiments: sklearn digits three ways, and a mini search engine three ways.

Digits (captions ``"zero."`` .. ``"nine."``), one image-encoder architecture and
initialisation shared by: a 10-way classifier; a CLIP-style dual encoder with a
character text encoder (in-batch InfoNCE, batch 64, so classes repeat); a
captioner (a string head: the core causal transformer reading the image
features as a prefix embedding, ``taxonomy.decoder``) scored by rank classification. The InfoNCE bound
:math:`\\log N - \\mathcal L` is measured with N = 10 (one image per class), where
the true mutual information between an image and its caption is at most log 10.

Search: documents are the Zen of Python's lines (``this``) plus sentences of the
builtin corpus; queries are word spans of a document; held-out spans are never
trained on. One query encoder (hashed character trigrams -> MLP) feeds an
atomic-id classifier, an id decoder over the ids' trie (DSI; the same transformer
string head) and a dual encoder. Each model's test NLL (nats per example) is the
negative log-probability of the true class or document under its softmax (the
decoders: trie-constrained, normalised over the K strings).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxequiv import alphabet, labels
from jaxequiv.taxonomy import decoder, embeddings, nets, retrieval

CAPTIONS = ["zero.", "one.", "two.", "three.", "four.", "five.", "six.", "seven.", "eight.", "nine."]


def char_bag(texts: list[str], max_len: int) -> np.ndarray:
  """One-hot (position, character) features ``[B, max_len * 64]`` for a character text encoder."""
  out = np.zeros((len(texts), max_len, 64), np.float32)
  for i, t in enumerate(texts):
    ids = alphabet.encode(t[:max_len])
    out[i, np.arange(len(ids)), ids] = 1.0
  return out.reshape(len(texts), -1)


def _encoder(key, d_in, d_out, width=128):
  return nets.mlp_init(key, [d_in, width, d_out])


def digits_three_ways(steps: int = 1500, batch: int = 64, dim: int = 32, seed: int = 0,
                      models: tuple[str, ...] = ("10way", "clip", "captioner"), return_arrays: bool = False,
                      decoder_width: int = 32, decoder_layers: int = 2) -> dict[str, Any]:
  """Trains the digit models named in ``models``; returns test accuracies, the InfoNCE bound, the captioner's leakage.

  With ``return_arrays``, also ``"clip_arrays"``: test image and caption embeddings and test labels.
  """
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
  x, y = load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
  ytr, yte = ytr.astype(np.int32), yte.astype(np.int32)
  trie = labels.label_trie(CAPTIONS)
  head = decoder.string_head(trie, width=decoder_width, num_layers=decoder_layers)
  text_feats = jnp.asarray(char_bag(CAPTIONS, trie.max_len))
  key_img, key_head, key_txt = jax.random.split(jax.random.key(seed), 3)
  img0 = _encoder(key_img, 64, dim)   # the same image encoder init for all three models
  rng = np.random.default_rng(seed)
  batches = nets.minibatches(rng, len(xtr), batch, xtr, ytr)

  def clf_loss(p, b):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        nets.mlp_apply(p["head"], jax.nn.relu(nets.mlp_apply(p["img"], b[0]))), b[1]))

  def clip_embed(p, x_img, t_feats):
    u = embeddings.l2_normalize(nets.mlp_apply(p["img"], x_img))
    v = embeddings.l2_normalize(nets.mlp_apply(p["txt"], t_feats))
    return u, v, jnp.exp(p["log_scale"])

  def clip_loss(p, b):
    u, v, scale = clip_embed(p, b[0], text_feats[b[1]])
    return embeddings.clip_loss(u, v, scale)

  def cap_nll(p, x_img, y):
    return decoder.nll(p["dec"], jax.nn.relu(nets.mlp_apply(p["img"], x_img)), y, head)

  out: dict[str, Any] = {"test_images": int(len(yte)), "train_images": int(len(ytr)), "log10": float(np.log(10)),
                         "steps": steps, "batch": batch, "image_encoder": [64, 128, dim], "decoder": head.describe()}
  if "10way" in models:
    clf, _ = nets.fit(clf_loss, {"img": img0, "head": nets.mlp_init(key_head, [dim, 10])}, batches, steps)
    clf_scores = jax.jit(lambda p: nets.mlp_apply(p["head"], jax.nn.relu(nets.mlp_apply(p["img"], xte))))(clf)
    out["accuracy_10way"] = float(np.mean(np.argmax(np.asarray(clf_scores), 1) == yte))
    out["nll_10way"] = nets.class_nll(clf_scores, yte)
  if "clip" in models:
    clip, _ = nets.fit(clip_loss, {"img": img0, "txt": _encoder(key_txt, text_feats.shape[1], dim),
                                   "log_scale": jnp.log(10.0)}, batches, steps)
    u, v, scale = clip_embed(clip, xte, text_feats)
    zs_logits = scale * (u @ v.T)   # zero-shot classifier: class weights are the caption embeddings
    out["accuracy_clip_zero_shot"] = float(np.mean(np.argmax(np.asarray(zs_logits), 1) == yte))
    out["nll_clip_zero_shot"] = nets.class_nll(zs_logits, yte)
    # InfoNCE with N = 10: one test image per class, the 10 captions as the batch.
    idx = np.stack([[rng.choice(np.flatnonzero(yte == c)) for c in range(10)] for _ in range(200)])
    xent = jax.vmap(lambda i: embeddings.clip_loss(u[i], v, scale, symmetric=False))(jnp.asarray(idx))
    out["infonce_bound_N10_nats"] = embeddings.infonce_bound(float(jnp.mean(xent)), 10)
    out["infonce_batch"], out["infonce_draws"] = 10, len(idx)
    out["logit_scale"] = float(scale)
    if return_arrays:
      out["clip_arrays"] = (np.asarray(u), np.asarray(v), yte)
  if "captioner" in models:
    cap, _ = nets.fit(lambda p, b: cap_nll(p, *b), {"img": img0, "dec": decoder.init(key_head, dim, head)},
                      batches, steps)
    node = jax.jit(lambda p: decoder.node_logits(p["dec"], jax.nn.relu(nets.mlp_apply(p["img"], xte)), head))(cap)
    rank = labels.label_logprobs(trie, retrieval.path_logits(trie, node))   # rank classification, unconstrained
    out["accuracy_captioner_rank"] = float(np.mean(np.argmax(np.asarray(rank), 1) == yte))
    out["nll_captioner"] = nets.class_nll(retrieval.decoder_to_atomic(trie, node), yte)   # constrained: sums to 1 over captions
    out["captioner_leakage_mean"] = float(jnp.mean(labels.leakage(rank)))
  return out


# --- mini search engine --------------------------------------------------------------------------------------


def zen_lines() -> list[str]:
  """The Zen of Python's aphorisms, normalised into the alphabet (one sentence each)."""
  with contextlib.redirect_stdout(io.StringIO()):   # the first import prints the Zen
    import this  # pylint: disable=import-outside-toplevel
  text = codecs.decode(this.s, "rot13")
  out = []
  for line in text.splitlines()[2:]:
    out += alphabet.normalize(line)
  return [s for s in out if len(s.split()) >= 3]


def trigram_features(texts: list[str], dim: int = 1024) -> np.ndarray:
  """Hashed character-trigram counts (crc32), L2-normalised rows ``[B, dim]``."""
  out = np.zeros((len(texts), dim), np.float32)
  for i, t in enumerate(texts):
    t = f" {t.lower()} "
    for j in range(len(t) - 2):
      out[i, zlib.crc32(t[j:j + 3].encode()) % dim] += 1.0
  return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def spans(doc: str, rng: np.random.Generator, num: int, min_words: int = 3, max_words: int = 5) -> list[str]:
  """``num`` distinct word spans of a document (fewer if it has fewer)."""
  words = doc.rstrip(".").split()
  cands = sorted({" ".join(words[i:i + n]) for n in range(min_words, max_words + 1) for i in range(len(words) - n + 1)})
  rng.shuffle(cands)
  return cands[:num]


def search_engine(docs: list[str], steps: int = 1500, dim: int = 64, seed: int = 0, train_spans: int = 6,
                  test_spans: int = 3, decoder_width: int = 32, decoder_layers: int = 2) -> dict[str, Any]:
  """Indexes ``docs`` three ways; returns Hits@1/Hits@10 (and the trained models' NLL) on held-out spans."""
  rng = np.random.default_rng(seed)
  q_train, d_train, q_test, d_test = [], [], [], []
  for k, doc in enumerate(docs):
    sp = spans(doc, rng, train_spans + test_spans)
    cut = max(1, len(sp) - test_spans)
    q_train += [doc.rstrip(".")] + sp[:cut]
    d_train += [k] * (1 + cut)
    q_test += sp[cut:]
    d_test += [k] * len(sp[cut:])
  ftr, fte, fdoc = trigram_features(q_train), trigram_features(q_test), trigram_features([d.rstrip(".") for d in docs])
  ytr, yte = np.array(d_train, np.int32), np.array(d_test, np.int32)
  trie = labels.label_trie(retrieval.doc_id_labels(len(docs)))
  head = decoder.string_head(trie, width=decoder_width, num_layers=decoder_layers)
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  enc0 = _encoder(k1, ftr.shape[1], dim, 256)
  batches = nets.minibatches(rng, len(ftr), 64, ftr, ytr)

  def atomic_logits(p, f):
    return nets.mlp_apply(p["head"], jax.nn.relu(nets.mlp_apply(p["enc"], f)))

  def dec_nll(p, f, y):
    return decoder.nll(p["dec"], jax.nn.relu(nets.mlp_apply(p["enc"], f)), y, head)

  def dual(p, f_q, f_d):
    return (embeddings.l2_normalize(nets.mlp_apply(p["enc"], f_q)),
            embeddings.l2_normalize(nets.mlp_apply(p["doc"], f_d)), jnp.exp(p["log_scale"]))

  atomic, _ = nets.fit(lambda p, b: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(atomic_logits(p, b[0]), b[1])),
                       {"enc": enc0, "head": nets.mlp_init(k2, [dim, len(docs)])}, batches, steps)
  dec, _ = nets.fit(lambda p, b: dec_nll(p, *b), {"enc": enc0, "dec": decoder.init(k2, dim, head)}, batches, steps)
  fdoc_j = jnp.asarray(fdoc)
  duo, _ = nets.fit(lambda p, b: embeddings.clip_loss(*dual(p, b[0], fdoc_j[b[1]])),
                    {"enc": enc0, "doc": _encoder(k3, fdoc.shape[1], dim, 256), "log_scale": jnp.log(10.0)},
                    batches, steps)
  h = jax.nn.relu(nets.mlp_apply(dec["enc"], fte))
  scores = {"atomic_classifier": atomic_logits(atomic, fte),
            "id_decoder": retrieval.decoder_to_atomic(trie, jax.jit(lambda p: decoder.node_logits(p, h, head))(dec["dec"]))}
  u, v, s = dual(duo, fte, fdoc_j)
  scores["dual_encoder"] = s * (u @ v.T)
  scores["trigram_cosine_no_training"] = jnp.asarray(fte @ fdoc.T)
  out = {name: {"hits@1": float(retrieval.hits_at_k(sc, jnp.asarray(yte), 1)),
                "hits@10": float(retrieval.hits_at_k(sc, jnp.asarray(yte), 10))} for name, sc in scores.items()}
  for name in ("atomic_classifier", "id_decoder", "dual_encoder"):   # the trigram cosine is not a trained softmax
    out[name]["nll"] = nets.class_nll(scores[name], yte)
  out["_data"] = {"docs": len(docs), "train_queries": len(q_train), "test_queries": len(q_test), "steps": steps,
                  "query_encoder": [ftr.shape[1], 256, dim], "decoder": head.describe()}
  return out

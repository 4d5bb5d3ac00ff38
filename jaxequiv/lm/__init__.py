"""The LM wing: corpora, the synthetic grammar, batch iterators, training, data parallelism, decoding and sampling."""

"""The taxonomy wing: regression, embeddings, retrieval and function-valued models as conditional likelihoods.

Modules: ``regression`` (Gaussian heads, binned/digit-string regression, two-hot,
HL-Gauss), ``embeddings`` (CLIP as classification, distances as softmaxes),
``retrieval`` (DSI: atomic ids <-> id decoder), ``cnp`` (conditional neural
process and the exact GP floor), ``expressions`` (grammar-constrained
expression decoder), ``decoder`` (string heads: the core transformer read
after a prefix embedding of the input, trained with ``lm_nll``), ``checks``
(fast exact identities for ``verify``), ``nets`` and the ``exp_*`` experiment
modules. Imports the core and
``jaxequiv.labels``; never imported by them.
"""

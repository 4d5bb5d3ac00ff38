"""roles: one network class, many roles (GAN, density ratio, JEM) and the ReLU/tanh reductio.

Import the submodules you need, e.g. ``from jaxequiv.roles import gan, jem``.
"""

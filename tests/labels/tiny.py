"""The tiny image-model config and data the labels tests share (one compile per function across test files)."""

from jaxequiv.labels import heads as im
from jaxequiv.labels import images
from jaxequiv.model import ModelConfig

CFG = im.ImageModelConfig(channels=(8, 16), embed_dim=32,
                          decoder=ModelConfig(num_layers=1, width=32, num_heads=2, seq_len=16))
NAMES = images.SHAPE_CLASSES

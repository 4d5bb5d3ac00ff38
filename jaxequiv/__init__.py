"""jaxequiv: a character LM and a next-character classifier are the same model."""

from jaxequiv.alphabet import ALPHABET as ALPHABET
from jaxequiv.alphabet import BOS as BOS
from jaxequiv.alphabet import NUM_CLASSES as NUM_CLASSES
from jaxequiv.alphabet import PAD as PAD
from jaxequiv.alphabet import decode as decode
from jaxequiv.alphabet import encode as encode
from jaxequiv.alphabet import normalize as normalize
from jaxequiv.alphabet import validate_sentences as validate_sentences
from jaxequiv.batches import ClassificationBatch as ClassificationBatch
from jaxequiv.batches import LMBatch as LMBatch
from jaxequiv.batches import canonical_order as canonical_order
from jaxequiv.batches import lm_batch as lm_batch
from jaxequiv.batches import pad_examples as pad_examples
from jaxequiv.losses import classification_xent as classification_xent
from jaxequiv.losses import classification_xent_per_example as classification_xent_per_example
from jaxequiv.losses import lm_nll as lm_nll
from jaxequiv.losses import lm_nll_per_token as lm_nll_per_token
from jaxequiv.losses import token_xent as token_xent
from jaxequiv.model import ModelConfig as ModelConfig
from jaxequiv.model import apply as apply
from jaxequiv.model import init as init
from jaxequiv.model import make_apply as make_apply
from jaxequiv.prefix import PrefixExamples as PrefixExamples
from jaxequiv.prefix import pack as pack
from jaxequiv.prefix import prefix_examples as prefix_examples
from jaxequiv.prefix import unpacked as unpacked

from jaxequiv import bitwise as bitwise
from jaxequiv import determinism as determinism

__version__ = "0.1.0"

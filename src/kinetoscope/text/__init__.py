"""Text conditioning: prompts to token embeddings ``"b l d"`` with a mask ``"b l"``.

Two encoders share one interface (:class:`TextEncoder`): :class:`WordTextEncoder`, a small
transformer over a word vocabulary, trained here together with the diffusion transformer (the
shipped one), and :class:`HFTextEncoder`, a frozen T5, CLIP or sentence-transformer encoder
loaded through ``transformers`` from a local folder.
"""

from kinetoscope.text.base import TextEmbeddings, TextEncoder
from kinetoscope.text.hf_encoder import HFTextEncoder
from kinetoscope.text.tokenizer import WordTokenizer
from kinetoscope.text.word_encoder import WordTextEncoder, WordTextEncoderConfig

__all__ = [
    "HFTextEncoder",
    "TextEmbeddings",
    "TextEncoder",
    "WordTextEncoder",
    "WordTextEncoderConfig",
    "WordTokenizer",
]

"""The tiny-ioi tokenizer: one token per word, GPT-2-style spaces.

Text is split by GPT-2's byte-level pre-tokenizer (``" Mary"`` -> ``"ĠMary"``, punctuation
apart), and each pre-token is looked up in a closed word list (``WordLevel``); anything else
is ``<|unk|>``. So ``tokenizer.encode(" Mary", add_special_tokens=False)`` is one id, and
``decode`` gives back the spaces, as GPT-2's tokenizer does.

With ``digit_pairs=True`` (tiny-gt) a run of digits is cut further into pairs, the first one
keeping the leading space, as GPT-2 writes most years: ``" 1732"`` -> ``" 17"``, ``"32"``.

>>> tok = hf_tokenizer(build_tokenizer(["Then, Mary and John went to the store."]))
>>> tok.convert_ids_to_tokens(tok.encode(" Mary went home", add_special_tokens=False))
['ĠMary', 'Ġwent', '<|unk|>']
>>> pre_tokens(" the year 1732 to 17", digit_pairs=True)
['Ġthe', 'Ġyear', 'Ġ17', '32', 'Ġto', 'Ġ17']
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "<|pad|>",
    "bos_token": "<|bos|>",
    "eos_token": "<|eos|>",
    "unk_token": "<|unk|>",
}
"""Special tokens, ids 0..3 in this order."""

TOKENIZER_KWARGS: dict[str, object] = {
    **SPECIAL_TOKENS,
    "add_bos_token": True,
    "name_or_path": "tiny-ioi",
}
"""``PreTrainedTokenizerFast`` kwargs (``config.json``'s ``special_tokens``). TransformerLens
3.9 keeps the tokenizer as it is only with ``add_bos_token`` and ``name_or_path`` set."""


def _pre_tokenizer(digit_pairs: bool = False) -> pre_tokenizers.PreTokenizer:
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if not digit_pairs:
        return byte_level
    pairs = pre_tokenizers.Split(Regex(r"Ġ?[0-9]{2}"), behavior="isolated")
    return pre_tokenizers.Sequence([byte_level, pairs])


def pre_tokens(text: str, digit_pairs: bool = False) -> list[str]:
    """GPT-2's pre-tokens of ``text`` in byte-level form (``" Mary"`` -> ``"ĠMary"``), digit
    runs cut into pairs with ``digit_pairs``."""
    return [piece for piece, _ in _pre_tokenizer(digit_pairs).pre_tokenize_str(text)]


def build_tokenizer(texts: list[str], digit_pairs: bool = False) -> Tokenizer:
    """A word-level tokenizer whose vocabulary is every pre-token of ``texts``.

    Ids: the four ``SPECIAL_TOKENS`` first, then the pre-tokens in sorted order, so the
    result depends only on the set of pre-tokens.
    """
    words = sorted({piece for text in texts for piece in pre_tokens(text, digit_pairs)})
    specials = list(SPECIAL_TOKENS.values())
    vocab = {token: i for i, token in enumerate(specials + [w for w in words if w not in specials])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = _pre_tokenizer(digit_pairs)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(specials)
    return tokenizer


def tokenizer_kwargs(name: str = "tiny-ioi") -> dict[str, object]:
    """``TOKENIZER_KWARGS`` for the embedded model ``name``."""
    return {**TOKENIZER_KWARGS, "name_or_path": name}


def hf_tokenizer(tokenizer: Tokenizer | str, name: str = "tiny-ioi"):
    """A ``PreTrainedTokenizerFast`` around a ``Tokenizer`` or a ``tokenizer.json`` path,
    configured as ``saebench.model._load_embedded`` configures the embedded model ``name``."""
    from transformers import PreTrainedTokenizerFast

    if isinstance(tokenizer, str):
        return PreTrainedTokenizerFast(tokenizer_file=tokenizer, **tokenizer_kwargs(name))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **tokenizer_kwargs(name))

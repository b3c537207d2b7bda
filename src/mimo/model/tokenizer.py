"""Special tokens, and a small byte-level BPE tokenizer for the ``tiny`` preset."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from mimo.core.schema import IMAGE_TOKEN, PHRASE_END, PHRASE_START, REGION_TOKEN, SEG_TOKEN, SPECIAL_TOKENS

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"


def add_special_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add ``<image> <region> <p> </p> <SEG>`` (and a pad token if missing) to any tokenizer."""
    tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    special_token_ids(tokenizer)
    return tokenizer


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Look the special tokens up by name and check each is one id of its own."""
    names = {
        "image": IMAGE_TOKEN,
        "region": REGION_TOKEN,
        "phrase_start": PHRASE_START,
        "phrase_end": PHRASE_END,
        "seg": SEG_TOKEN,
    }
    ids = {}
    for key, token in names.items():
        token_id = tokenizer.convert_tokens_to_ids(token)
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if token_id is None or token_id == tokenizer.unk_token_id or encoded != [token_id]:
            raise ValueError(
                f"tokenizer: {token!r} must be a single special token (got id {token_id}, encodes to {encoded}); "
                "call mimo.model.tokenizer.add_special_tokens(tokenizer) first"
            )
        ids[key] = token_id
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"tokenizer: special tokens share ids: {ids}")
    return ids


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``, with MIMO's special tokens as single ids."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK, *SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    plain = [_strip_special(t) for t in texts]
    backend.train_from_iterator(plain, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=list(SPECIAL_TOKENS),
        clean_up_tokenization_spaces=False,
    )
    special_token_ids(tokenizer)
    return tokenizer


def _strip_special(text: str) -> str:
    for token in SPECIAL_TOKENS:
        text = text.replace(token, " ")
    return text

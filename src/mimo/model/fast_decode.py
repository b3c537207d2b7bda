"""Fast greedy decoding: a static KV cache and, on request, a compiled decoder step.

``generate`` with its default (dynamic) cache grows the keys and values every step and runs
Python-side logits processing between steps; here the cache is one preallocated
``transformers.StaticCache`` (reused across calls of the same batch size and length bucket),
the attention mask has one fixed shape, and the one-token decoder step can be wrapped in
``torch.compile`` (``mode="reduce-overhead"`` on CUDA: CUDA graphs, so a step is one launch).

The result is what ``generate(do_sample=False)`` gives: the same tokens (padding after a row's
EOS, stopping when every row is done or after ``max_new_tokens``) and the last-layer hidden
state of every generated token that was fed back, from which ``<SEG>`` masks are decoded.
Only plain greedy decoding is covered; :func:`fast_supported` says when a call qualifies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from transformers import StaticCache

LOG = logging.getLogger(__name__)
CACHE_BUCKET = 512  # cache lengths are rounded up to this, so a compiled step rarely recompiles
_PLAIN_KEYS = {"max_new_tokens", "do_sample", "pad_token_id", "eos_token_id"}


def fast_supported(model, generate_kwargs: dict) -> bool:
    """Whether ``generate(**generate_kwargs)`` is plain greedy decoding, which the fast path reproduces."""
    if set(generate_kwargs) - _PLAIN_KEYS or generate_kwargs.get("do_sample"):
        return False
    cfg = model.generation_config
    plain = (
        (cfg.num_beams or 1) == 1
        and (cfg.repetition_penalty or 1.0) == 1.0
        and not cfg.no_repeat_ngram_size
        and not cfg.bad_words_ids
        and not cfg.suppress_tokens
        and not cfg.begin_suppress_tokens
        and not (cfg.min_new_tokens or cfg.min_length)
    )  # do_sample: generate_with_masks passes do_sample=False unless the caller asks otherwise
    return bool(plain) and _has_static_layers(model)


def _has_static_layers(model) -> bool:
    layer_types = getattr(model.config.text_config, "layer_types", None)
    return not layer_types or all(t == "full_attention" for t in layer_types)


class FastDecoder:
    """Greedy decoding for one ``MimoForConditionalGeneration`` (held as ``model._fast_decoder``)."""

    def __init__(self, model, compile: bool = False) -> None:
        self.model = model
        self.compile = compile
        self.compile_failed = False
        self._caches: dict[tuple, StaticCache] = {}
        self._step: Callable | None = None

    @classmethod
    def of(cls, model, compile: bool = False) -> FastDecoder:
        decoder = getattr(model, "_fast_decoder", None)
        if decoder is None or decoder.compile != compile:
            decoder = cls(model, compile)
            model._fast_decoder = decoder
        return decoder

    def _cache(
        self, batch: int, length: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[StaticCache, int]:
        """An empty static cache for ``batch`` rows of at least ``length`` tokens, and its length."""
        size = -(-length // CACHE_BUCKET) * CACHE_BUCKET
        key = (batch, size, dtype, str(device))
        cache = self._caches.get(key)
        if cache is None:
            self._caches = {}  # one live cache: a new shape frees the old one's memory
            cache = self._caches[key] = StaticCache(config=self.model.config.text_config, max_cache_len=size)
        else:
            cache.reset()
        return cache, size

    def _eager_step(self, token, mask, position, cache):
        model = self.model
        out = model.language_model.get_decoder()(
            inputs_embeds=model.get_input_embeddings()(token[:, None]),
            attention_mask=mask,
            position_ids=position[:, None],
            cache=cache,
            use_cache=True,
        )
        hidden = out.last_hidden_state[:, -1]
        return model.get_output_embeddings()(hidden), hidden

    def _step_fn(self) -> Callable:
        if not self.compile:
            return self._eager_step
        if self._step is None:
            mode = "reduce-overhead" if self.model.device.type == "cuda" else None
            self._step = _with_eager_fallback(torch.compile(self._eager_step, mode=mode, dynamic=False), self)
        return self._step

    @torch.no_grad()
    def generate(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        max_new_tokens: int,
        eos_token_id: int | list[int] | None,
        pad_token_id: int,
        seg_token_id: int | None = None,
        suppress_token_ids: list[int] | tuple = (),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sequences (B, n), hidden (B, n', H))``: the generated ids (answer only) and the
        last-layer hidden state of each generated token: ``n' = n`` when some row ends in
        ``seg_token_id`` (the final token is fed once more for its state), else ``n - 1``."""
        batch, prompt = attention_mask.shape
        device = embeds.device
        mask = torch.ones((batch, 1), dtype=attention_mask.dtype, device=device)
        cache, size = self._cache(batch, prompt + max_new_tokens, embeds.dtype, device)
        mask = torch.cat([attention_mask, mask.expand(batch, size - prompt)], dim=1)
        positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        out = self.model.language_model.get_decoder()(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
        )
        logits = self.model.get_output_embeddings()(out.last_hidden_state[:, -1])
        eos = _eos_tensor(eos_token_id, device)
        unfinished = torch.ones(batch, dtype=torch.bool, device=device)
        position = positions[:, -1]
        tokens, hidden = [], []
        step = self._step_fn()
        suppress = torch.tensor(list(suppress_token_ids), dtype=torch.long, device=device)
        for i in range(max_new_tokens):
            token = logits.float().index_fill(-1, suppress, float("-inf")).argmax(-1)
            token = torch.where(unfinished, token, torch.full_like(token, pad_token_id))
            tokens.append(token)
            if eos is not None:
                unfinished &= ~torch.isin(token, eos)
            last = i == max_new_tokens - 1 or not bool(unfinished.any())
            if last and not (seg_token_id is not None and bool((token == seg_token_id).any())):
                break
            position = position + 1
            logits, state = step(token, mask, position, cache)
            hidden.append(state.clone())  # a CUDA-graph step reuses its output buffers
            logits = logits.clone()
            if last:
                break
        sequences = torch.stack(tokens, dim=1)
        width = embeds.shape[-1]
        states = torch.stack(hidden, dim=1) if hidden else embeds.new_zeros((batch, 0, width))
        return sequences, states


def _with_eager_fallback(compiled: Callable, decoder: FastDecoder) -> Callable:
    """``compiled``, or the eager step from the first call on if compiling fails (logged once):
    a compiler problem must cost speed, not answers."""

    def step(*args):
        if not decoder.compile_failed:
            try:
                return compiled(*args)
            except Exception as exc:  # noqa: BLE001 - torch.compile raises many kinds
                LOG.warning("compiling the decoder step failed (%s); decoding uncompiled", exc)
                decoder.compile_failed = True
        return decoder._eager_step(*args)

    return step


def _eos_tensor(eos_token_id, device: torch.device) -> torch.Tensor | None:
    if eos_token_id is None:
        return None
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.tensor(ids, device=device) if ids else None

"""Inference defaults used by several packages (the model, the predictor, the command lines and
the server); each has its home here and nowhere else."""

MASK_THRESHOLD = 0.5
"""A mask pixel is in where the model's sigmoid probability exceeds this."""

MAX_NEW_TOKENS = 128
"""Longest generated answer, in tokens (predictor, ``mimo chat``/``eval``/``segment``, ``mimo serve``)."""

MAX_NEW_TOKENS_PER_SLICE = 64
"""Longest answer per slice of ``mimo segment-volume`` (one short grounding answer a slice)."""

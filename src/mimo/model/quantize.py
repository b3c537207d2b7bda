"""The LLM in 4 bits (bitsandbytes NF4, double-quantised scales: QLoRA's format) on a CUDA GPU.

``quantize_llm_4bit(model, device)`` replaces every ``nn.Linear`` of the LLM's decoder layers by
a ``bitsandbytes.nn.Linear4bit`` holding the same weights, quantised when moved to the GPU (the
way bitsandbytes documents it); the embeddings, the output head, the norms and the vision, SAM
and MIMO modules stay in ``compute_dtype`` (bf16). LoRA then trains on top of the frozen 4-bit
weights. It works on any built model: random presets, ``from_components`` and saved models.
"""

from __future__ import annotations

import torch
from torch import nn

CUDA_ERROR = (
    "load_in_4bit: the 4-bit LLM (bitsandbytes) needs a CUDA GPU and this machine has none; "
    "run without --load-in-4bit / model.load_in_4bit, or on a GPU"
)


def require_4bit(device: str | torch.device | None = None):
    """``bitsandbytes``, or a ``ValueError`` that says what is missing (a CUDA GPU, the package)."""
    if not torch.cuda.is_available():
        raise ValueError(CUDA_ERROR)
    if device is not None and torch.device(device).type != "cuda":
        raise ValueError(f"load_in_4bit: the 4-bit LLM runs on a CUDA device, not {str(device)!r}")
    try:
        import bitsandbytes
    except ImportError:
        raise ValueError(
            "load_in_4bit: needs the bitsandbytes package (pip install 'mimo-med[gpu]')"
        ) from None
    return bitsandbytes


def quantize_llm_4bit(model, device: str | torch.device = "cuda", compute_dtype=torch.bfloat16):
    """Put ``model`` on ``device`` in ``compute_dtype`` with its LLM decoder linears in 4 bits."""
    bnb = require_4bit()
    model.to(compute_dtype)
    for layer in model.language_model.get_decoder().layers:
        for parent in list(layer.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    setattr(parent, name, _linear_4bit(bnb, child, compute_dtype).to(device))
    return model.to(device)


def _linear_4bit(bnb, linear: nn.Linear, compute_dtype) -> nn.Module:
    quantized = bnb.nn.Linear4bit(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        compute_dtype=compute_dtype,
        compress_statistics=True,
        quant_type="nf4",
    )
    quantized.load_state_dict(linear.state_dict())
    quantized.requires_grad_(False)
    return quantized

"""Interoperation with the field's published data: readers of MeCoVQA (-G, -G+),
SA-Med2D-20M, LLaVA-Med, VQA-RAD, SLAKE and PathVQA in their published forms, and a
writer back to the MeCoVQA form.

``RECORD_KINDS``: source kinds whose samples are already question/answer records; the
builder passes them through (``mimo.data.interop.build``). SA-Med2D-20M has no text: it
is a segmentation source read as cases (``mimo.data.interop.samed2d``) and goes through the
perspective generator like any other.
"""

from __future__ import annotations

RECORD_KINDS: dict[str, str] = {
    "mecovqa": "mimo.data.interop.mecovqa:read_mecovqa",
    "llava-med": "mimo.data.interop.vqa_sets:read_llava_med",
    "vqa-rad": "mimo.data.interop.vqa_sets:read_vqa_rad",
    "slake": "mimo.data.interop.vqa_sets:read_slake",
    "pathvqa": "mimo.data.interop.vqa_sets:read_pathvqa",
    "caption": "mimo.data.interop.captions:read_captions",
}

__all__ = ["RECORD_KINDS"]

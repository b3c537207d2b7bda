"""The Python API: ``Predictor`` (one question, many questions) and ``ChatSession`` (multi-turn).

    predictor = Predictor.from_pretrained("runs/mimo-tiny")
    pred = predictor.predict("scan.png", "What is in this region?", boxes=[(10, 12, 40, 44)])
    pred.answer    # "It is the <p>liver</p> <SEG>."  (markup kept)
    pred.text      # "It is the liver."
    pred.segments  # [Segment(phrase="liver", mask=<bool HxW>, score=0.93)]

Visual prompts: ``points`` ``[(x, y), ...]`` (one region each, a positive click),
``boxes`` ``[(x0, y0, x1, y1), ...]``, ``scribbles`` (each a list of strokes, a stroke a list
of ``(x, y)``; a bare stroke is accepted too) and ``masks`` (boolean ``(H, W)`` arrays), in
image pixels. Their regions are taken in that order: points, boxes, scribbles, masks.

The ``<region>`` rule: the n-th ``<region>`` of the question is the n-th region. A question
that holds no ``<region>`` while prompts are given gets them inserted before its final
punctuation (``.?!``), or at its end, joined with "and": "What is this?" with a box becomes
"What is this <region>?", with two boxes "What is this <region> and <region>?". A question
holding some ``<region>`` must hold exactly one per prompt (the processor checks the counts).

History (multi-turn): a list of turns ``{"from": "human"|"gpt", "value": str}``, human first,
alternating; a human turn may carry its own ``"regions"`` (schema dicts, see
``mimo.core.schema``) and ``"masks"`` (key -> array) for the ``<region>`` it holds. The first
human turn gets the ``<image>`` placeholder when it lacks one. ``ChatSession`` keeps this
history for you and caches the image's processor tensors, vision patch features and SAM
embeddings, so later turns neither preprocess the image nor run an image encoder again. No
training targets are built at inference: earlier answers' ``<SEG>`` need no masks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mimo.core.defaults import MASK_THRESHOLD, MAX_NEW_TOKENS
from mimo.core.results import Prediction, Segment  # noqa: F401  (Segment: re-exported)
from mimo.core.schema import IMAGE_TOKEN, REGION_TOKEN
from mimo.infer.images import ImageInputError, load_image
from mimo.infer.model_files import ModelDirError, check_model_files

DEFAULT_MAX_NEW_TOKENS = MAX_NEW_TOKENS  # the old name, kept
DEFAULT_MAX_REGIONS = 16  # visual prompts per question
CHARS_PER_TOKEN_BOUND = 32  # a question this many characters per context token is refused untokenized
_FINAL_PUNCT = re.compile(r"([.?!]+)\s*$")
MODEL_FILES = ("config.json", "processor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class ImageState:
    """An image prepared once: the array, its processor tensors and, once computed, the vision
    patch features and SAM embeddings (both ``(1, ...)``) that later questions reuse."""

    image: np.ndarray
    pixels: dict
    patch_features: torch.Tensor | None = None
    sam_embeddings: torch.Tensor | None = None


def check_model_dir(directory: str | Path) -> Path:
    """Raise ``ModelDirError`` (a ``ValueError``) naming what a model directory lacks or which of
    its files is broken (``mimo.infer.model_files``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: model directory not found")
    missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise ModelDirError(
            f"{directory}: not a MIMO model directory; missing {', '.join(missing)} "
            "(expected model.save_pretrained(dir) and processor.save_pretrained(dir))"
        )
    check_model_files(directory)
    return directory


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device``; ``ValueError`` when torch does not know it or this
    machine lacks it (CUDA, MPS)."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {str(device)!r}: not a torch device; expected cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available on this machine; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {str(device)!r}: expected cpu, cuda, cuda:N or mps")
    return dev


def packaged_model_dir() -> Path:
    """The ``mimo-tiny`` checkpoint shipped inside the package (``mimo/assets/mimo-tiny``)."""
    from importlib.resources import files

    return Path(str(files("mimo"))) / "assets" / "mimo-tiny"


def resolve_model_dir(model: str | Path | None) -> Path:
    """``model`` if given, else the packaged ``mimo-tiny``; ``ModelDirError`` says what to pass."""
    if model is not None:
        return check_model_dir(model)
    default = packaged_model_dir()
    if not (default / "config.json").is_file():
        raise ModelDirError(
            f"no --model given and the packaged mimo-tiny checkpoint is not installed ({default}); "
            "pass --model DIR (a directory written by save_pretrained, e.g. from `mimo train`)"
        )
    return check_model_dir(default)


def insert_regions(question: str, n_regions: int) -> str:
    """Apply the ``<region>`` rule of the module docstring: placeholders are inserted into a
    question that holds none; one that holds some is left as it is (``MimoProcessor`` checks
    that their count matches the visual prompts)."""
    if not n_regions or REGION_TOKEN in question:
        return question
    tokens = [REGION_TOKEN] * n_regions
    joined = tokens[0] if n_regions == 1 else ", ".join(tokens[:-1]) + " and " + tokens[-1]
    match = _FINAL_PUNCT.search(question)
    if match:
        return question[: match.start()].rstrip() + " " + joined + match.group(1)
    return question.rstrip() + " " + joined


def prompt_regions(
    points: Sequence | None = None,
    boxes: Sequence | None = None,
    scribbles: Sequence | None = None,
    masks: Sequence[np.ndarray] | None = None,
    key_prefix: str = "prompt",
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Visual prompts -> (schema region dicts, mask key -> array), in the documented order."""
    regions: list[dict] = []
    region_masks: dict[str, np.ndarray] = {}
    for i, point in enumerate(points or []):
        xy = _floats(point, 2, f"points[{i}]", "(x, y)")
        regions.append({"type": "point", "points": [xy], "labels": [1]})
    for i, box in enumerate(boxes or []):
        x0, y0, x1, y1 = _floats(box, 4, f"boxes[{i}]", "(x0, y0, x1, y1)")
        if x1 < x0 or y1 < y0:
            raise ImageInputError(f"boxes[{i}] {[x0, y0, x1, y1]}: expected x0 <= x1 and y0 <= y1")
        regions.append({"type": "box", "box": [x0, y0, x1, y1]})
    for i, scribble in enumerate(scribbles or []):
        strokes = list(scribble)
        if strokes and np.ndim(strokes[0]) == 1:  # a bare stroke
            strokes = [strokes]
        try:
            strokes = [[_floats(p, 2, f"scribbles[{i}]", "(x, y)") for p in s] for s in strokes]
        except TypeError:
            raise ImageInputError(f"scribbles[{i}]: expected a list of strokes of (x, y) points") from None
        if not strokes or not all(strokes):
            raise ImageInputError(f"scribbles[{i}]: a scribble needs at least one stroke with a point")
        regions.append({"type": "scribble", "strokes": strokes})
    for i, mask in enumerate(masks or []):
        array = np.asarray(mask)
        if array.ndim != 2:
            raise ImageInputError(f"masks[{i}]: expected a 2D (H, W) mask, got shape {array.shape}")
        key = f"{key_prefix}{i}"
        region_masks[key] = array.astype(bool)
        regions.append({"type": "mask", "mask": key})
    return regions, region_masks


def _floats(value, n: int, where: str, expected: str) -> list[float]:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ImageInputError(f"{where}: expected {expected} numbers, got {value!r}") from None
    if len(out) != n or not all(np.isfinite(out)):
        raise ImageInputError(f"{where}: expected {expected} ({n} finite numbers), got {value!r}")
    return out


def _history_turns(
    history: list[dict], question_masks: dict
) -> tuple[list[dict], list, dict[str, np.ndarray]]:
    """``(turns, regions, masks)`` of earlier turns: the turns as the processor reads them, and
    the regions and mask prompts of their human turns, in order (answers keep only their text)."""
    turns: list[dict] = []
    regions: list = []
    masks: dict[str, np.ndarray] = {}
    for t, turn in enumerate(history):
        turns.append({"from": turn["from"], "value": turn["value"]})
        if turn["from"] != "human":
            continue
        regions.extend(turn.get("regions") or [])
        for key, value in (turn.get("masks") or {}).items():
            if key in masks or key in question_masks:
                raise ImageInputError(f"history[{t}]: mask key {key!r} used twice")
            masks[key] = np.asarray(value)
    return turns, regions, masks


def measured(prediction: Prediction, spacing, question: str = "") -> Prediction:
    """The prediction with its measurement made on its first mask (``mimo.core.measure``)."""
    from mimo.core.measure import ground_measurement

    mask = prediction.segments[0].mask if prediction.segments else None
    try:
        answer, info = ground_measurement(prediction.answer, mask, spacing, question)
    except ValueError as exc:
        raise ImageInputError(f"spacing: {exc}") from None
    if info is None:
        return prediction
    return Prediction(answer=answer, segments=prediction.segments, measurement=info)


class Predictor:
    """A loaded model and processor; see the module docstring."""

    def __init__(
        self,
        model,
        processor,
        max_new_tokens: int = MAX_NEW_TOKENS,
        generation_kwargs: dict | None = None,
        mask_threshold: float = MASK_THRESHOLD,
        max_regions: int = DEFAULT_MAX_REGIONS,
        fast: bool | None = None,
        compile: bool | None = None,
    ) -> None:
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"mask_threshold: expected a probability in (0, 1), got {mask_threshold}")
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.mask_threshold = mask_threshold  # a pixel is in a mask above this probability
        self.max_regions = max_regions  # visual prompts per question (each becomes a <region>)
        self.generation_kwargs = dict(generation_kwargs or {})  # passed on to ``generate``
        # static-cache greedy decoding (same answers and masks); None: on where CUDA runs the model
        self.fast = fast
        self.compile = compile  # compile the decoder step; None: with fast decoding on CUDA

    def decoding(self) -> dict:
        """``{"fast": ..., "compile": ...}`` as used now (``None`` settings resolved for the device)."""
        on_cuda = self.device.type == "cuda"
        fast = on_cuda if self.fast is None else bool(self.fast)
        compile = (fast and on_cuda) if self.compile is None else bool(self.compile)
        return {"fast": fast, "compile": fast and compile}

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        load_in_4bit: bool = False,
        **kwargs,
    ) -> Predictor:
        """``load_in_4bit``: the LLM in 4 bits, the rest bf16, on ``device`` (a CUDA GPU)."""
        from mimo.model import MimoForConditionalGeneration, MimoProcessor
        from mimo.model.quantize import quantize_llm_4bit, require_4bit

        directory = check_model_dir(directory)
        if load_in_4bit:
            require_4bit(device)
            dtype = dtype or torch.bfloat16
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        device = check_device(device)
        try:  # local safetensors only; no code from the folder is run
            model = MimoForConditionalGeneration.from_pretrained(
                directory,
                dtype=dtype or torch.float32,
                use_safetensors=True,
                trust_remote_code=False,
                local_files_only=True,
            )
            processor = MimoProcessor.from_pretrained(directory)
        except Exception as exc:  # whatever the folder's files make transformers raise
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelDirError(
                f"{directory}: cannot load the model ({type(exc).__name__}: {first})"
            ) from None
        if load_in_4bit:
            model = quantize_llm_4bit(model, device or "cuda")
        elif device is not None:
            model = model.to(device)
        return cls(model, processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ images
    def prepare(self, image, slice_index: int | None = None) -> ImageState:
        """Load an image (see ``load_image``) and make its processor tensors."""
        if isinstance(image, ImageState):
            return image
        array = load_image(image, slice_index)
        return ImageState(array, self.processor.prepare_image(array))

    @torch.no_grad()
    def encode(self, states: Sequence[ImageState]) -> None:
        """Compute the missing patch features and SAM embeddings of ``states`` (batched)."""
        todo = [s for s in states if s.patch_features is None]
        if not todo:
            return
        pixels = torch.stack([s.pixels["pixel_values"] for s in todo]).to(self.device)
        sam_pixels = torch.stack([s.pixels["sam_pixel_values"] for s in todo]).to(self.device)
        features = self.model.image_features(pixels)
        sam = self.model.sam_embeddings(sam_pixels)
        for i, state in enumerate(todo):
            state.patch_features = features[i : i + 1]
            state.sam_embeddings = sam[i : i + 1]

    # ------------------------------------------------------------------ questions
    def predict(
        self,
        image,
        question: str,
        points=None,
        boxes=None,
        scribbles=None,
        masks=None,
        history: list[dict] | None = None,
        slice_index: int | None = None,
        spacing: tuple[float, float] | None = None,
    ) -> Prediction:
        """Answer one question about ``image`` (array, path, DICOM, NIfTI + ``slice_index``).

        ``spacing``: the image's pixel size ``(row_mm, col_mm)``; with it, the number of a
        measurement answer (head circumference, area, longest diameter) is measured on the
        predicted mask (see ``Prediction.measurement``).
        """
        item = {
            "spacing": spacing,
            "image": image,
            "question": question,
            "points": points,
            "boxes": boxes,
            "scribbles": scribbles,
            "masks": masks,
            "history": history,
            "slice_index": slice_index,
        }
        return self.predict_batch([item])[0]

    def predict_batch(self, items: Sequence[dict], batch_size: int = 8) -> list[Prediction]:
        """Answer many questions, ``batch_size`` at a time (left-padded batched generation).

        Each item is a dict of ``predict``'s arguments, and optionally a ``name`` that starts the
        messages of its errors (e.g. "record 'ct_001'"). Items that share an image (the same
        array object, path or ``ImageState``) encode it once.
        """
        states: dict[object, ImageState] = {}
        prepared = []
        for index, item in enumerate(items):
            if "image" not in item or "question" not in item:
                raise ImageInputError(f"items[{index}]: needs 'image' and 'question'")
            image = item["image"]
            key = (
                id(image)
                if isinstance(image, (np.ndarray, ImageState))
                else (str(image), item.get("slice_index"))
            )
            if key not in states:
                states[key] = self.prepare(image, item.get("slice_index"))
            prepared.append((states[key], item))
        results: list[Prediction] = []
        for start in range(0, len(prepared), batch_size):
            results.extend(self._generate(prepared[start : start + batch_size]))
        return results

    @property
    def context_length(self) -> int | None:
        """The language model's context, in tokens (None when its config does not say)."""
        return getattr(self.model.config.text_config, "max_position_embeddings", None)

    def check_question(self, question: str, n_regions: int) -> str:
        """``question`` stripped; ``ImageInputError`` when it is empty, longer than the model's
        context can hold, or has more visual prompts than ``max_regions``."""
        question = str(question).strip()
        if not question:
            raise ImageInputError("the question is empty; type a question about the image")
        if n_regions > self.max_regions:
            raise ImageInputError(f"{n_regions} visual prompts: at most {self.max_regions} per question")
        context = self.context_length
        if context and len(question) > context * CHARS_PER_TOKEN_BOUND:
            raise ImageInputError(
                f"the question is {len(question)} characters, far beyond the model's context of {context} tokens"
            )
        return question

    def _check_length(self, sample: dict) -> None:
        context = self.context_length
        n = len(sample["input_ids"])
        if context and n + self.max_new_tokens > context:
            raise ImageInputError(
                f"the question is too long: {n} tokens with the image and the conversation so far, plus up to "
                f"{self.max_new_tokens} for the answer, exceed the model's context of {context} tokens"
            )

    def _named_sample(self, state: ImageState, item: dict) -> dict:
        """``_sample``; its errors start with the item's ``name`` when it has one (a record's id)."""
        try:
            return self._sample(state, item)
        except ImageInputError as exc:
            if "name" not in item:
                raise
            raise ImageInputError(f"{item['name']}: {exc}") from None

    def _sample(self, state: ImageState, item: dict) -> dict:
        """The processor tensors of one question, from the image's cached pixels; no training
        targets (``labels``, ``seg_masks``)."""
        if "regions" in item:  # already made (ChatSession)
            regions, region_masks = list(item["regions"]), dict(item.get("region_masks") or {})
        else:
            regions, region_masks = prompt_regions(
                item.get("points"), item.get("boxes"), item.get("scribbles"), item.get("masks")
            )
        question = insert_regions(self.check_question(item["question"], len(regions)), len(regions))
        conversations, all_regions, all_masks = _history_turns(item.get("history") or [], region_masks)
        conversations.append({"from": "human", "value": question})
        all_regions.extend(regions)
        all_masks.update(region_masks)
        first = conversations[0]
        if IMAGE_TOKEN not in first["value"]:
            first["value"] = f"{IMAGE_TOKEN}\n{first['value']}"
        try:
            sample = self.processor.process_prepared(
                state.pixels, conversations, all_regions, all_masks, add_generation_prompt=True
            )
        except ImageInputError:
            raise
        except ValueError as exc:  # processor checks: coordinates outside the image, counts ...
            raise ImageInputError(str(exc)) from None
        self._check_length(sample)
        return sample

    @torch.no_grad()
    def _generate(self, batch_items: list[tuple[ImageState, dict]]) -> list[Prediction]:
        samples = [self._named_sample(state, item) for state, item in batch_items]
        unique = list({id(s): s for s, _ in batch_items}.values())
        self.encode(unique)
        batch = self.processor.collate(samples, padding_side="left")
        device, dtype = self.device, self.dtype
        region_masks = batch["region_masks"].to(device, dtype)
        out = self.model.generate_with_masks(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            patch_features=torch.cat([s.patch_features for s, _ in batch_items]),
            sam_embeddings=torch.cat([s.sam_embeddings for s, _ in batch_items]),
            sam_pixel_values=batch["sam_pixel_values"].to(device, dtype),  # the mask refiner's input
            image_sizes=batch["image_size"].tolist(),
            instruction_mask=batch["instruction_mask"].to(device),
            region_coords=batch["region_coords"].to(device, dtype),
            region_coord_labels=batch["region_coord_labels"].to(device),
            region_types=batch["region_types"].to(device),
            region_masks=region_masks,
            layout=batch["layout"].to(device),
            max_new_tokens=self.max_new_tokens,
            mask_threshold=self.mask_threshold,
            **self.decoding(),
            **self.generation_kwargs,
        )
        predictions = []
        for b, (_, item) in enumerate(batch_items):
            answer = self.processor.decode(out.sequences[b])
            prediction = self.processor.post_process_answer(answer, out.masks[b], out.scores[b])
            if item.get("spacing") is not None:
                prediction = measured(prediction, item["spacing"], str(item["question"]))
            predictions.append(prediction)
        return predictions

    def chat(self, image, slice_index: int | None = None) -> ChatSession:
        return ChatSession(self, image, slice_index=slice_index)


class ChatSession:
    """Multi-turn questions about one image: keeps the history, encodes the image once."""

    def __init__(self, predictor: Predictor, image, slice_index: int | None = None) -> None:
        self.predictor = predictor
        self.state = predictor.prepare(image, slice_index)
        self.history: list[dict] = []
        self.predictions: list[Prediction] = []

    @property
    def image(self) -> np.ndarray:
        return self.state.image

    def ask(self, question: str, points=None, boxes=None, scribbles=None, masks=None) -> Prediction:
        """Answer ``question`` in the context of the previous turns."""
        n_prompts = sum(0 if p is None else len(p) for p in (points, boxes, scribbles, masks))
        self.predictor.check_question(question, n_prompts)
        regions, region_masks = prompt_regions(
            points, boxes, scribbles, masks, key_prefix=f"turn{len(self.history) // 2}_"
        )
        question = insert_regions(self.predictor.check_question(question, len(regions)), len(regions))
        item = {
            "question": question,
            "regions": regions,
            "region_masks": region_masks,
            "history": self.history,
        }
        prediction = self.predictor._generate([(self.state, item)])[0]
        self.history.append({"from": "human", "value": question, "regions": regions, "masks": region_masks})
        self.history.append({"from": "gpt", "value": prediction.answer})
        self.predictions.append(prediction)
        return prediction

    def reset(self) -> None:
        """Forget the conversation (the image's cached features are kept)."""
        self.history.clear()
        self.predictions.clear()

"""``MimoProcessor``: images, conversations, regions and masks in; model tensors out.

Geometry: ``mimo.model.frame.SquareFrame`` owns it. An image of size ``H x W`` is padded
bottom/right to a ``side x side`` square (``side = max(H, W)``) and resized to the vision
tower's and SAM's square inputs. Every region coordinate is normalised by ``side``, so both
towers and the region rasters share one frame, and masks map back to the image by cropping
the image's top-left part of the square (``SquareFrame.logits_to_image``).

Prompt format (``ChatTemplate``, its one home; one line per turn, the system prompt first)::

    <s>{system}\n\nUSER: {human}\nASSISTANT: {gpt}</s>\nUSER: ...

Only the gpt answers and their ``</s>`` are learned (labels elsewhere are -100). At inference
(``add_generation_prompt``) no training targets are built: no ``labels``, no ``seg_masks``.

A sample is ``prepare_image`` (pixels, once per image) + ``prepare_text`` (ids; the
``<image>``/``<region>`` counts checked) + ``prepare_regions`` + ``prepare_targets`` (one mask
per ``<SEG>`` of the gpt turns): ``process_sample`` from an image, ``process_prepared`` from
pixels already prepared (the predictor's cached ``ImageState``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from mimo.core.files import atomic_write_text
from mimo.core.results import Prediction
from mimo.core.schema import (
    IMAGE_TOKEN,
    REGION_TOKEN,
    SEG_TOKEN,
    BoxRegion,
    MaskRegion,
    PointRegion,
    ScribbleRegion,
)
from mimo.model.frame import SquareFrame
from mimo.model.token_layout import TokenLayout
from mimo.model.tokenizer import special_token_ids

IGNORE_INDEX = -100
PROCESSOR_FILE = "processor_config.json"
REGION_TYPE_IDS = {"point": 0, "box": 1, "scribble": 2, "mask": 3}
CORNER_TL, CORNER_BR = 2, 3


@dataclass(frozen=True)
class ChatTemplate:
    """The conversation template (Vicuna-style, as LLaVA-1.5): the one place its strings live.

    ``{system}{system_suffix}`` then per turn ``{user_prefix}{human}{assistant_prefix}`` and
    `` {gpt}</s>{turn_end}``."""

    user_prefix: str = "USER: "
    assistant_prefix: str = "\nASSISTANT:"
    system_suffix: str = "\n\n"
    turn_end: str = "\n"

    def template_texts(self) -> list[str]:
        """The template's own words, as a tokenizer trained from scratch must see them."""
        return [self.user_prefix + self.assistant_prefix.strip()]

    def tokenizer_seed_texts(self, system_prompt: str) -> list[str]:
        """Texts added to the training texts of a new tokenizer: the system prompt and the
        template's words (``train.trainer``, ``model.synthetic``)."""
        return [system_prompt, *self.template_texts()]


@dataclass
class ProcessorSettings:
    image_seq_length: int
    vision_size: int
    sam_size: int
    vision_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    vision_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    sam_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    sam_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # resampling of each tower's input (torch interpolate modes); components' configs set these
    vision_resample: str = "bilinear"
    sam_resample: str = "bilinear"
    antialias: bool = False
    system_prompt: str = (
        "You are MIMO, a medical imaging assistant. Answer questions about the image and ground "
        "each medical term you name with a segmentation mask."
    )
    scribble_width: float = 0.03  # stroke width as a fraction of the image side
    point_radius: float = 0.03

    def __post_init__(self) -> None:  # JSON gives lists; keep one type
        for name in ("vision_mean", "vision_std", "sam_mean", "sam_std"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))


def as_image_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Check an image is 2D gray or RGB and return it as ``(H, W, 3)`` float32 in ``[0, 1]``."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"image: expected a 2D gray (H, W) or RGB (H, W, 3) array, got shape {array.shape}")
    if min(array.shape[:2]) < 1:
        raise ValueError(f"image: empty image of shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    else:
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError("image: contains NaN or infinite values")
        if array.max(initial=0) > 1.0 or array.min(initial=0) < 0.0:
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array


class MimoProcessor:
    """Turns samples into model inputs and back; saved beside the model."""

    template = ChatTemplate()

    def __init__(self, tokenizer, settings: ProcessorSettings) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        self.ids = special_token_ids(tokenizer)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        atomic_write_text(directory / PROCESSOR_FILE, json.dumps(asdict(self.settings), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> MimoProcessor:
        from transformers import AutoTokenizer

        directory = Path(directory)
        path = directory / PROCESSOR_FILE
        if not path.is_file():
            raise ValueError(f"{path}: missing; expected a MIMO model directory saved by save_pretrained")
        settings = ProcessorSettings(**json.loads(path.read_text()))
        return cls(AutoTokenizer.from_pretrained(directory, trust_remote_code=False), settings)

    @classmethod
    def for_model(cls, tokenizer, config, **overrides) -> MimoProcessor:
        """Settings from ``config``: sizes, and the components' own preprocessing where
        ``from_components`` recorded it (``config.image_processing``)."""
        settings = ProcessorSettings(
            image_seq_length=config.image_seq_length,
            vision_size=config.vision_config.image_size,
            sam_size=config.sam_image_size,
            **{**(config.image_processing or {}), **overrides},
        )
        return cls(tokenizer, settings)

    # ------------------------------------------------------------------ images
    def prepare_image(self, image: np.ndarray | Image.Image) -> dict[str, torch.Tensor]:
        """Pixel tensors for the vision tower and SAM, and the image's own size."""
        array = as_image_array(image)
        height, width = array.shape[:2]
        chw = torch.from_numpy(array).permute(2, 0, 1)[None]
        out = {"image_size": torch.tensor([height, width])}
        s = self.settings
        for key, size, mean, std, mode in (
            ("pixel_values", s.vision_size, s.vision_mean, s.vision_std, s.vision_resample),
            ("sam_pixel_values", s.sam_size, s.sam_mean, s.sam_std, s.sam_resample),
        ):
            resized = SquareFrame(height, width, size).image_to_square(chw, mode, s.antialias)[0]
            out[key] = (resized - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        return out

    def prepare_mask(self, mask: np.ndarray, image_size: tuple[int, int]) -> torch.Tensor:
        """A target mask at SAM's resolution, in the padded-square frame."""
        mask = np.asarray(mask)
        if mask.shape != tuple(image_size):
            raise ValueError(f"mask: shape {mask.shape} does not match the image size {tuple(image_size)}")
        return SquareFrame(*mask.shape, self.settings.sam_size).mask_to_square(mask).float()

    # ------------------------------------------------------------------ regions
    def prepare_regions(
        self, regions: list, image_size: tuple[int, int], masks: dict[str, np.ndarray] | None = None
    ) -> dict[str, torch.Tensor]:
        """Regions (schema models or dicts) -> coordinate, label, type and raster tensors."""
        from pydantic import TypeAdapter

        from mimo.core.schema import Region

        adapter = TypeAdapter(Region)
        height, width = image_size
        frame = SquareFrame(height, width, self.settings.vision_size)
        side = frame.side
        coords, labels, types, rasters = [], [], [], []
        for index, raw in enumerate(regions):
            region = adapter.validate_python(raw) if isinstance(raw, dict) else raw
            where = f"regions[{index}] ({region.type})"
            raster = frame.drawing()
            draw = ImageDraw.Draw(raster)
            if isinstance(region, MaskRegion):
                mask = _mask_prompt(region, masks, (height, width), where)
                ys, xs = np.nonzero(mask)
                pts = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], dtype=np.float64)
                point_labels = [CORNER_TL, CORNER_BR]
                raster = frame.drawing(mask)
            else:
                pts, point_labels = self._draw_prompt(region, draw, side, (height, width), where)
            coords.append(torch.tensor(frame.points_to_unit(pts), dtype=torch.float32))
            labels.append(torch.tensor(point_labels, dtype=torch.long))
            types.append(REGION_TYPE_IDS[region.type])
            rasters.append(frame.drawing_to_square(raster))
        return _stack_regions(coords, labels, types, rasters, self.settings.vision_size)

    def _draw_prompt(
        self, region, draw: ImageDraw.ImageDraw, side: float, image_size: tuple[int, int], where: str
    ) -> tuple[np.ndarray, list[int]]:
        """Draw a point, box or scribble region on its raster; its SAM points (image pixels) and
        their labels (clicks as given; a box or a scribble's extent as two corners)."""
        height, width = image_size
        if isinstance(region, PointRegion):
            pts = np.asarray(region.points, dtype=np.float64)
            _check_inside(pts, width, height, where)
            radius = self.settings.point_radius * side
            for (x, y), lab in zip(pts, region.labels, strict=True):
                if lab == 1:
                    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
            return pts, list(region.labels)
        if isinstance(region, BoxRegion):
            x0, y0, x1, y1 = region.box
            _check_inside(np.array([[x0, y0], [x1, y1]]), width, height, where)
            draw.rectangle([x0, y0, x1, y1], fill=255)
            return np.array([[x0, y0], [x1, y1]], dtype=np.float64), [CORNER_TL, CORNER_BR]
        if isinstance(region, ScribbleRegion):
            all_pts = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in region.strokes])
            if len(all_pts) == 0:
                raise ValueError(f"{where}: a scribble needs at least one point")
            _check_inside(all_pts, width, height, where)
            stroke_width = max(1, round(self.settings.scribble_width * side))
            for stroke in region.strokes:
                xy = [tuple(p) for p in stroke]
                draw.line(xy * 2 if len(xy) == 1 else xy, fill=255, width=stroke_width, joint="curve")
            return np.array([all_pts.min(0), all_pts.max(0)]), [CORNER_TL, CORNER_BR]
        raise ValueError(f"{where}: unknown region type")  # pragma: no cover - the schema's four types

    # ------------------------------------------------------------------ text
    def _encode_text(self, text: str) -> list[int]:
        """Tokenize, expanding each ``<image>`` to ``image_seq_length`` image ids."""
        ids: list[int] = []
        for i, piece in enumerate(text.split(IMAGE_TOKEN)):
            if i:
                ids.extend([self.ids["image"]] * self.settings.image_seq_length)
            if piece:
                ids.extend(self.tokenizer.encode(piece, add_special_tokens=False))
        return ids

    def encode_conversation(
        self, conversations: list[dict], add_generation_prompt: bool = False
    ) -> dict[str, list[int]]:
        """``input_ids``, ``labels`` and ``instruction_mask`` for a list of turns.

        ``conversations``: ``[{"from": "human"|"gpt", "value": str}, ...]``, alternating, human first.
        With ``add_generation_prompt`` the last turn must be human and the ids end at ``ASSISTANT:``.
        """
        tok = self.tokenizer
        input_ids: list[int] = [tok.bos_token_id] if tok.bos_token_id is not None else []
        labels = [IGNORE_INDEX] * len(input_ids)
        instruction = [0] * len(input_ids)

        def add(ids: list[int], learn: bool, human: bool) -> None:
            input_ids.extend(ids)
            labels.extend(ids if learn else [IGNORE_INDEX] * len(ids))
            instruction.extend([int(human)] * len(ids))

        template = self.template
        system = self._encode_text(self.settings.system_prompt + template.system_suffix)
        if set(system) & set(self.ids.values()):
            raise ValueError(
                "system_prompt: must not contain the special tokens <image> <region> <p> </p> <SEG>"
            )
        add(system, False, False)
        for index, turn in enumerate(conversations):
            role = turn.get("from")
            expected = "human" if index % 2 == 0 else "gpt"
            if role != expected:
                raise ValueError(f"conversations[{index}]: expected a {expected!r} turn, got {role!r}")
            if role == "human":
                add(self._encode_text(template.user_prefix), False, False)
                add(self._encode_text(turn["value"]), False, True)
                add(self._encode_text(template.assistant_prefix), False, False)
            else:
                add(self._encode_text(" " + turn["value"].strip()) + [tok.eos_token_id], True, False)
                add(self._encode_text(template.turn_end), False, False)
        if add_generation_prompt and (not conversations or conversations[-1].get("from") != "human"):
            raise ValueError("conversations: a generation prompt needs the last turn to be 'human'")
        return {"input_ids": input_ids, "labels": labels, "instruction_mask": instruction}

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Answer text with the grounding markup kept, padding and ``</s>`` dropped."""
        ids = [int(i) for i in ids]
        stop = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        keep = []
        for token_id in ids:
            if token_id in stop:
                if token_id == self.tokenizer.eos_token_id:
                    break
                continue
            keep.append(token_id)
        return self.tokenizer.decode(keep, skip_special_tokens=False).strip()

    @staticmethod
    def post_process_answer(answer: str, masks: torch.Tensor, scores: torch.Tensor) -> Prediction:
        """A decoded answer and its ``(N, H, W)`` masks and ``(N,)`` scores as a ``Prediction``:
        the n-th mask grounds the n-th ``<SEG>``'s phrase (``mimo.core.answers`` parses it)."""
        return Prediction.from_answer(answer, masks.cpu().numpy(), scores.cpu().tolist())

    # ------------------------------------------------------------------ samples and batches
    def process_sample(
        self,
        image: np.ndarray,
        conversations: list[dict],
        regions: list | None = None,
        masks: dict[str, np.ndarray] | None = None,
        add_generation_prompt: bool = False,
        targets: bool | None = None,
    ) -> dict:
        """One sample's tensors. ``masks`` maps record mask keys to boolean arrays; the gpt turns'
        ``masks`` lists name the targets of their ``<SEG>`` tokens, in order.

        ``targets``: build ``labels`` and ``seg_masks`` (default: unless ``add_generation_prompt``;
        at inference there are none, and earlier answers need no masks)."""
        return self.process_prepared(
            self.prepare_image(image), conversations, regions, masks, add_generation_prompt, targets
        )

    def process_prepared(
        self,
        pixels: dict[str, torch.Tensor],
        conversations: list[dict],
        regions: list | None = None,
        masks: dict[str, np.ndarray] | None = None,
        add_generation_prompt: bool = False,
        targets: bool | None = None,
    ) -> dict:
        """``process_sample`` for an image already through ``prepare_image``: its ``pixels`` are
        used as they are (a chat asks many questions about one image)."""
        image_size = tuple(int(v) for v in pixels["image_size"])
        regions = regions or []
        targets = not add_generation_prompt if targets is None else targets
        text = self.prepare_text(conversations, len(regions), add_generation_prompt, targets)
        sample = {**pixels, **text, **self.prepare_regions(regions, image_size, masks)}
        if targets:
            sample["seg_masks"] = self.prepare_targets(conversations, masks, image_size)
        return sample

    def prepare_text(
        self,
        conversations: list[dict],
        n_regions: int = 0,
        add_generation_prompt: bool = False,
        targets: bool = True,
    ) -> dict[str, list[int]]:
        """``input_ids``, ``instruction_mask`` and, with ``targets``, ``labels``; checks that the
        conversation holds one ``<image>`` and a ``<region>`` per region (the counts a model
        input needs, whether or not it comes from a record)."""
        if sum(t["value"].count(IMAGE_TOKEN) for t in conversations) != 1:
            raise ValueError("conversations: exactly one <image> is expected, in the first human turn")
        text = self.encode_conversation(conversations, add_generation_prompt)
        _check_region_count(conversations, n_regions, add_generation_prompt)
        if not targets:
            del text["labels"]
        return text

    def prepare_targets(
        self, conversations: list[dict], masks: dict[str, np.ndarray] | None, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """``seg_masks`` ``(M, S, S)``: the target of each ``<SEG>`` of the gpt turns, in order."""
        targets = []
        for index, turn in enumerate(conversations):
            if turn["from"] != "gpt":
                continue
            keys = turn.get("masks") or []
            n_seg = turn["value"].count(SEG_TOKEN)
            if n_seg != len(keys):
                raise ValueError(f"conversations[{index}]: {n_seg} <SEG> but {len(keys)} mask(s)")
            for key in keys:
                if masks is None or key not in masks:
                    raise ValueError(f"conversations[{index}]: mask {key!r} was not given")
                targets.append(self.prepare_mask(masks[key], image_size))
        size = self.settings.sam_size
        return torch.stack(targets) if targets else torch.zeros((0, size, size))

    def collate(self, samples: list[dict], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad and stack processed samples; regions and masks are concatenated row-major.
        ``layout``: where the special tokens sit (a ``TokenLayout``, a ``forward`` argument)."""
        length = max(len(s["input_ids"]) for s in samples)
        pad_id = self.tokenizer.pad_token_id
        training = _training_samples(samples)
        padded = [("input_ids", pad_id), ("labels", IGNORE_INDEX), ("instruction_mask", 0)]
        padded = padded if training else [padded[0], padded[2]]
        batch: dict[str, list] = {key: [] for key, _ in padded} | {"attention_mask": []}
        for s in samples:
            n_pad = length - len(s["input_ids"])
            for key, fill in padded:
                values = list(s[key])
                batch[key].append(
                    values + [fill] * n_pad if padding_side == "right" else [fill] * n_pad + values
                )
            ones = [1] * len(s["input_ids"])
            batch["attention_mask"].append(
                ones + [0] * n_pad if padding_side == "right" else [0] * n_pad + ones
            )
        out = {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
        for key in ("pixel_values", "sam_pixel_values", "image_size"):
            out[key] = torch.stack([s[key] for s in samples])
        n_max = max((s["region_coords"].shape[1] for s in samples), default=1)
        coords, labels = [], []
        for s in samples:
            pad = n_max - s["region_coords"].shape[1]
            coords.append(F.pad(s["region_coords"], (0, 0, 0, pad)))
            labels.append(F.pad(s["region_coord_labels"], (0, pad), value=-1))
        out["region_coords"] = torch.cat(coords)
        out["region_coord_labels"] = torch.cat(labels)
        out["region_types"] = torch.cat([s["region_types"] for s in samples])
        out["region_masks"] = torch.cat([s["region_masks"] for s in samples])
        if training:
            out["seg_masks"] = torch.cat([s["seg_masks"] for s in samples])
        out["layout"] = self.token_layout(out["input_ids"], out["region_coord_labels"])
        return out

    def token_layout(self, input_ids: torch.Tensor, coord_labels: torch.Tensor) -> TokenLayout:
        """Where the special tokens of a batch sit, found here on the host so that the model's
        training step never reads the device back (``mimo.model.token_layout``)."""
        return TokenLayout.of(
            input_ids,
            coord_labels,
            image_id=self.ids["image"],
            region_id=self.ids["region"],
            seg_id=self.ids["seg"],
            image_seq_length=self.settings.image_seq_length,
        )


def _training_samples(samples: list[dict]) -> bool:
    """Whether ``samples`` carry training targets (``labels``, ``seg_masks``); all or none must."""
    kinds = {("labels" in s, "seg_masks" in s) for s in samples}
    if kinds == {(True, True)}:
        return True
    if kinds == {(False, False)}:
        return False
    raise ValueError("collate: samples with and without training targets (labels, seg_masks) mixed")


def _check_region_count(conversations: list[dict], n_regions: int, add_generation_prompt: bool) -> None:
    """One region per ``<region>`` of the human turns. At inference the earlier turns' regions
    come first, so a mismatch is the question's: said in its words (visual prompts)."""
    human = [t["value"].count(REGION_TOKEN) for t in conversations if t["from"] == "human"]
    total = sum(human)
    if total == n_regions:
        return
    earlier = total - human[-1] if human else 0
    if add_generation_prompt and human and n_regions >= earlier:
        raise ValueError(
            f"the question holds {human[-1]} <region> placeholder(s) but {n_regions - earlier} "
            "visual prompt(s) were given"
        )
    raise ValueError(
        f"conversations hold {total} <region> placeholder(s) but {n_regions} region(s) were given"
    )


def _mask_prompt(
    region: MaskRegion, masks: dict[str, np.ndarray] | None, image_size: tuple[int, int], where: str
) -> np.ndarray:
    """The boolean mask a mask region names, checked against the image size and for content."""
    if masks is None or region.mask not in masks:
        raise ValueError(f"{where}: mask {region.mask!r} is not among the record's masks")
    mask = np.asarray(masks[region.mask]).astype(bool)
    if mask.shape != tuple(image_size):
        raise ValueError(f"{where}: mask shape {mask.shape} differs from the image size {tuple(image_size)}")
    if not mask.any():
        raise ValueError(f"{where}: the mask prompt {region.mask!r} is empty")
    return mask


def _stack_regions(
    coords: list, labels: list, types: list, rasters: list, size: int
) -> dict[str, torch.Tensor]:
    """Per-region tensors padded to the most points (labels -1 where none) and stacked."""
    n_max = max((len(c) for c in coords), default=1)
    out_coords = torch.zeros((len(coords), n_max, 2))
    out_labels = torch.full((len(coords), n_max), -1, dtype=torch.long)
    for i, (c, lab) in enumerate(zip(coords, labels, strict=True)):
        out_coords[i, : len(c)] = c
        out_labels[i, : len(lab)] = lab
    return {
        "region_coords": out_coords,
        "region_coord_labels": out_labels,
        "region_types": torch.tensor(types, dtype=torch.long),
        "region_masks": torch.stack(rasters) if rasters else torch.zeros((0, size, size)),
    }


def _check_inside(points: np.ndarray, width: int, height: int, where: str) -> None:
    bad = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
    if bad.any():
        x, y = points[np.argmax(bad)]
        raise ValueError(f"{where}: coordinate ({x:g}, {y:g}) lies outside the {width}x{height} image")

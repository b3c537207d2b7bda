"""The record format (docs/architecture.md: the route of a record): one JSON object per line,
LLaVA-compatible ``conversations`` extended with masks (COCO RLE) and visual-prompt regions.

The n-th ``<region>`` of a human turn is the n-th entry of ``regions`` (counted across
all human turns in order); the n-th ``<SEG>`` of a gpt turn is the n-th key of that turn's
``masks``; a record with an ``image`` holds one ``<image>`` (none holds more). Counts that do
not match are an error: a record that loads needs no other count check.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mimo.core.markup import (  # noqa: F401  (re-exported: the schema's vocabulary)
    IMAGE_TOKEN,
    PHRASE_END,
    PHRASE_START,
    REGION_TOKEN,
    SEG_TOKEN,
    SPECIAL_TOKENS,
)

PERSPECTIVES = ("I", "II", "III", "IV", "negative", "measure", "vqa")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RLE(_Strict):
    """COCO run-length encoding; ``size`` is ``[height, width]``, ``counts`` the compressed string."""

    size: tuple[int, int]
    counts: str


class PointRegion(_Strict):
    type: Literal["point"] = "point"
    points: list[tuple[float, float]] = Field(min_length=1)
    labels: list[Literal[0, 1]]

    @model_validator(mode="after")
    def _same_length(self) -> PointRegion:
        if len(self.labels) != len(self.points):
            raise ValueError(f"point region: {len(self.points)} points but {len(self.labels)} labels")
        return self


class BoxRegion(_Strict):
    type: Literal["box"] = "box"
    box: tuple[float, float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> BoxRegion:
        x0, y0, x1, y1 = self.box
        if x1 < x0 or y1 < y0:
            raise ValueError(
                f"box region {list(self.box)}: expected [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1"
            )
        return self


class ScribbleRegion(_Strict):
    type: Literal["scribble"] = "scribble"
    strokes: list[list[tuple[float, float]]] = Field(min_length=1)


class MaskRegion(_Strict):
    type: Literal["mask"] = "mask"
    mask: str  # key into Record.masks


Region = Annotated[PointRegion | BoxRegion | ScribbleRegion | MaskRegion, Field(discriminator="type")]


class Turn(_Strict):
    from_: Literal["human", "gpt"] = Field(alias="from")
    value: str
    masks: list[str] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SliceRef(_Strict):
    axis: int
    index: int


class Record(_Strict):
    id: str
    image: str | None = None  # relative to the records file's directory
    modality: str | None = None
    source: str | None = None
    case: str | None = None
    slice: SliceRef | None = None
    spacing: tuple[float, float] | None = None
    perspective: str | None = None
    split: str | None = None
    masks: dict[str, RLE] = Field(default_factory=dict)
    regions: list[Region] = Field(default_factory=list)
    conversations: list[Turn] = Field(min_length=1)
    meta: dict | None = None

    @model_validator(mode="after")
    def _one_image(self) -> Record:
        n_image = sum(t.value.count(IMAGE_TOKEN) for t in self.conversations)
        if n_image > 1 or (self.image is not None and n_image != 1):
            raise ValueError(
                f"record {self.id!r}: expected exactly one {IMAGE_TOKEN} in the conversations"
                f"{' (the record has an image)' if self.image is not None else ''}, found {n_image}"
            )
        return self

    @model_validator(mode="after")
    def _counts_match(self) -> Record:
        n_region = sum(t.value.count(REGION_TOKEN) for t in self.conversations if t.from_ == "human")
        if n_region != len(self.regions):
            raise ValueError(
                f"record {self.id!r}: {n_region} <region> placeholder(s) in human turns but "
                f"{len(self.regions)} entr(y/ies) in 'regions'"
            )
        for i, turn in enumerate(self.conversations):
            n_seg = turn.value.count(SEG_TOKEN)
            if turn.from_ == "human":
                if n_seg:
                    raise ValueError(f"record {self.id!r}: conversations[{i}] is a human turn with <SEG>")
                continue
            keys = turn.masks or []
            if n_seg != len(keys):
                raise ValueError(
                    f"record {self.id!r}: conversations[{i}] has {n_seg} <SEG> but {len(keys)} mask key(s) in 'masks'"
                )
            for key in keys:
                if key not in self.masks:
                    raise ValueError(
                        f"record {self.id!r}: conversations[{i}] names mask {key!r}, not in 'masks'"
                    )
        for j, region in enumerate(self.regions):
            if isinstance(region, MaskRegion) and region.mask not in self.masks:
                raise ValueError(
                    f"record {self.id!r}: regions[{j}] names mask {region.mask!r}, not in 'masks'"
                )
        return self

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

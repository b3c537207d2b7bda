"""Visual prompts drawn on the viewer by clicks: points, boxes (two clicks) and scribbles
(clicks add vertices to a stroke until it is finished), in image pixels.

``Prompts.kwargs()`` gives the ``points``/``boxes``/``scribbles`` arguments of
``ChatSession.ask``; ``region_order()`` lists them in the order their ``<region>``
placeholders take (points, boxes, scribbles), which is how the viewer numbers them.
``parse_prompts_json`` reads the same prompts from the HTTP API's JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mimo.infer.images import ImageInputError

TOOLS = ("point", "box", "scribble")


@dataclass
class Prompts:
    points: list[list[float]] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    scribbles: list[list[list[float]]] = field(default_factory=list)  # each one stroke
    pending_corner: list[float] | None = None  # first click of a box
    open_stroke: list[list[float]] = field(default_factory=list)  # scribble being drawn
    _added: list[str] = field(default_factory=list)  # kinds in order, for undo

    def click(self, tool: str, x: float, y: float) -> None:
        """Handle one click at image pixel ``(x, y)`` with ``tool``."""
        if tool not in TOOLS:
            raise ImageInputError(f"tool {tool!r}: expected one of {', '.join(TOOLS)}")
        if tool != "scribble":
            self.finish_stroke()
        if tool != "box":
            self.pending_corner = None
        xy = [float(x), float(y)]
        if tool == "point":
            self.points.append(xy)
            self._added.append("point")
        elif tool == "box":
            if self.pending_corner is None:
                self.pending_corner = xy
                return
            (x0, y0), (x1, y1) = self.pending_corner, xy
            self.pending_corner = None
            self.boxes.append([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
            self._added.append("box")
        else:
            self.open_stroke.append(xy)

    def finish_stroke(self) -> None:
        if self.open_stroke:
            self.scribbles.append(self.open_stroke)
            self.open_stroke = []
            self._added.append("scribble")

    def undo(self) -> None:
        if self.pending_corner is not None:
            self.pending_corner = None
        elif self.open_stroke:
            self.open_stroke.pop()
        elif self._added:
            kind = self._added.pop()
            {"point": self.points, "box": self.boxes, "scribble": self.scribbles}[kind].pop()

    def clear(self) -> None:
        self.points.clear()
        self.boxes.clear()
        self.scribbles.clear()
        self.open_stroke = []
        self.pending_corner = None
        self._added.clear()

    def __len__(self) -> int:
        return len(self.points) + len(self.boxes) + len(self.scribbles) + bool(self.open_stroke)

    def kwargs(self) -> dict:
        """``ChatSession.ask`` keyword arguments (an open scribble counts as finished)."""
        self.finish_stroke()
        return {"points": list(self.points), "boxes": list(self.boxes), "scribbles": list(self.scribbles)}

    def region_order(self) -> list[tuple[str, list]]:
        """``(kind, geometry)`` in ``<region>`` order; an open stroke comes last."""
        out = [("point", p) for p in self.points] + [("box", b) for b in self.boxes]
        out += [("scribble", s) for s in self.scribbles]
        if self.open_stroke:
            out.append(("scribble", self.open_stroke))
        return out

    def describe(self) -> str:
        counts = [(len(self.points), "point"), (len(self.boxes), "box"), (len(self.scribbles), "scribble")]
        text = ", ".join(_plural(n, word) for n, word in counts if n) or "no prompts"
        if self.pending_corner is not None:
            text += " · click the opposite corner of the box"
        if self.open_stroke:
            text += f" · scribble in progress ({_plural(len(self.open_stroke), 'point')})"
        return text

    def to_json(self) -> dict:
        return self.kwargs()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('x') else 's'}"


def parse_prompts_json(text: str | None) -> dict:
    """The API's prompts: ``{"points": [[x, y]], "boxes": [[x0, y0, x1, y1]], "scribbles":
    [[[x, y], ...]]}`` (all optional; empty text means none) -> ``ask`` keyword arguments."""
    if text is None or not str(text).strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImageInputError(f"prompts: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ImageInputError('prompts: expected a JSON object like {"boxes": [[x0, y0, x1, y1]]}')
    unknown = set(data) - {"points", "boxes", "scribbles"}
    if unknown:
        raise ImageInputError(
            f"prompts: unknown key(s) {', '.join(sorted(unknown))}; expected points, boxes, scribbles"
        )
    out = {}
    for key in ("points", "boxes", "scribbles"):
        value = data.get(key) or []
        if not isinstance(value, list):
            raise ImageInputError(f"prompts.{key}: expected a list, got {type(value).__name__}")
        out[key] = value
    return out

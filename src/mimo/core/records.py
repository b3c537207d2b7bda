"""Reading and writing record files (JSONL, one ``mimo.core.schema.Record`` per line).

Writes are atomic (``mimo.core.files``), so a reader never sees half a file; reading reports
each bad line with its number and id. Validation against images: ``mimo.data.validate``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from mimo.core.errors import MimoDataError
from mimo.core.files import atomic_write_text
from mimo.core.schema import Record


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = err.get("msg", "")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_record(obj: dict, where: str = "") -> Record:
    """Validate one decoded JSON object as a ``Record``; errors name ``where`` and the field."""
    try:
        return Record.model_validate(obj)
    except ValidationError as exc:
        raise MimoDataError(f"schema violation: {describe_validation_error(exc)}", where or None) from None


def iter_record_lines(path: str | Path, problems: list[str] | None = None) -> Iterator[tuple[int, Record]]:
    """Yield ``(line number, record)`` for each record of a JSONL file, validating each.

    Without ``problems`` the first bad line raises; with a list, each bad line is appended to it
    as ``"FILE:LINE (record 'ID'): what is wrong"`` and skipped, so a caller can report them all.

    Raises:
        MimoDataError: naming the file and line for malformed JSON or a schema violation.
    """
    path = Path(path)
    if not path.is_file():
        raise MimoDataError("records file not found", path)
    with text_lines(path) as fh:
        for lineno, line in fh:
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                try:
                    if isinstance(line, UnicodeDecodeError):
                        raise MimoDataError(not_utf8(line), where)
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MimoDataError(f"malformed JSON ({exc.msg} at column {exc.colno})", where) from None
                if not isinstance(obj, dict):
                    raise MimoDataError(f"expected a JSON object, got {type(obj).__name__}", where)
                if obj.get("id") is not None:
                    where = f"{where} (record {obj['id']!r})"
                record = parse_record(obj, where)
            except MimoDataError as exc:
                if problems is None:
                    raise
                problems.append(f"{where}: {exc.detail}")
                continue
            yield lineno, record


class _Undecodable(UnicodeDecodeError):
    """A line that is not UTF-8; ``strip()`` gives it back so that it is never skipped as blank."""

    def strip(self) -> _Undecodable:
        return self


@contextlib.contextmanager
def text_lines(path: str | Path) -> Iterator[Iterator[tuple[int, str | UnicodeDecodeError]]]:
    """``(line number, text)`` of a UTF-8 text file, read as bytes: a line that is not UTF-8
    comes as a ``UnicodeDecodeError`` (``not_utf8`` describes it), so the caller reports it by line."""
    with Path(path).open("rb") as fh:

        def lines():
            for lineno, raw in enumerate(fh, 1):
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield lineno, _Undecodable(exc.encoding, exc.object, exc.start, exc.end, exc.reason)

        yield lines()


def not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"


def iter_records(path: str | Path) -> Iterator[Record]:
    """Yield the records of a JSONL file, validating each (see ``iter_record_lines``)."""
    for _, record in iter_record_lines(path):
        yield record


def read_records(path: str | Path) -> list[Record]:
    """Read every record of a JSONL file (see ``iter_records``)."""
    return list(iter_records(path))


def record_line(record: Record) -> str:
    """The canonical one-line JSON of a record (stable key order, no spaces, no trailing newline)."""
    return json.dumps(record.to_json_dict(), ensure_ascii=False, separators=(",", ":"))


def write_records(path: str | Path, records: Iterable[Record | dict]) -> int:
    """Write records to a JSONL file atomically; dicts are validated first. Returns the count."""
    lines = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Record):
            rec = parse_record(rec, f"{path}: record {i}")
        lines.append(record_line(rec))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)

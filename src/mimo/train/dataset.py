"""Record files as a torch ``Dataset``, a seeded per-epoch mixing sampler, and the collator.

Construction validates every record (schema, masks per ``<SEG>``, image file present and its
header readable, mask sizes matching the image) so that a bad record fails before training
starts, with its file, line and id. Items are the processor's tensors for one record.

The sampler's order is a pure function of ``(seed, epoch)``: resuming skips the consumed
batches of the current epoch and sees exactly the data an uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.images import ImageError, image_header, read_raster
from mimo.core.records import iter_record_lines
from mimo.core.schema import Record
from mimo.train.augment import AUGMENT_STREAM, Augmentation, augment_sample

MAX_LISTED_PROBLEMS = 20
REPEAT_STREAM = 0x726570  # "rep": the random stream of source repeats, apart from the mix's


@dataclass
class Entry:
    record: Record
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} (record {self.record.id!r})"


def _read_file(path: Path, problems: list[str], header_cache: dict) -> list[Entry]:
    entries = []
    for lineno, record in iter_record_lines(path, problems):
        entry = Entry(record, path, lineno)
        problem = _check_entry(entry, header_cache)
        if problem:
            problems.append(f"{entry.where}: {problem}")
            continue
        entries.append(entry)
    return entries


def _check_entry(entry: Entry, header_cache: dict) -> str | None:
    """Cheap checks beyond the schema (which checked the <image>/<region>/<SEG> counts): an
    image, turns in order, a readable header, mask sizes."""
    record = entry.record
    if record.image is None:
        return "no 'image'; training needs one image per record"
    for i, turn in enumerate(record.conversations):
        expected = "human" if i % 2 == 0 else "gpt"
        if turn.from_ != expected:
            return f"conversations[{i}]: expected a {expected!r} turn (human first, alternating), got {turn.from_!r}"
    path = entry.file.parent / record.image
    if path not in header_cache:
        if not path.is_file():
            header_cache[path] = f"image file not found: {path}"
        else:
            try:
                header_cache[path] = image_header(path)  # the header only, within the size limits
            except ImageError as exc:
                header_cache[path] = f"image file not readable: {exc}"
    size = header_cache[path]
    if isinstance(size, str):
        return size
    for key, mask in record.masks.items():
        if tuple(mask.size) != size:
            return f"masks[{key!r}]: size {list(mask.size)} but the image is {list(size)} (HxW)"
    return None


class RecordDataset(Dataset):
    """Records of one or more JSONL files; ``dataset[i]`` is the processed sample of record ``i``."""

    def __init__(self, files: list[str | Path], processor, augment: Augmentation | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.processor = processor
        self.augment = augment
        problems: list[str] = []
        header_cache: dict = {}
        self.entries: list[Entry] = []
        for path in self.files:
            self.entries.extend(_read_file(path, problems, header_cache))
        if problems:
            shown = "\n".join(f"  {p}" for p in problems[:MAX_LISTED_PROBLEMS])
            more = len(problems) - MAX_LISTED_PROBLEMS
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise MimoDataError(f"{len(problems)} bad record(s), fix them before training:\n{shown}{tail}")
        if not self.entries:
            raise MimoDataError(f"no records in {', '.join(map(str, self.files))}")

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def perspectives(self) -> list[str | None]:
        return [e.record.perspective for e in self.entries]

    @property
    def sources(self) -> list[str | None]:
        return [e.record.source for e in self.entries]

    def texts(self) -> list[str]:
        return [t.value for e in self.entries for t in e.record.conversations]

    def module_kinds(self) -> list[tuple[bool, bool]]:
        """Per record: (has a region, has a ``<SEG>`` mask), what decides which modules run."""
        return [(bool(e.record.regions), bool(e.record.masks)) for e in self.entries]

    def token_lengths(self) -> list[int]:
        """Each record's text length in tokens of the processor's tokenizer (image tokens, the
        same for every record, left out): what its padded row costs beyond the image."""
        texts = [" ".join(t.value for t in e.record.conversations) for e in self.entries]
        ids = self.processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(row) for row in ids]

    def load(self, index: int) -> dict:
        """The raw sample (image array, conversations, regions, decoded masks) of record ``index``."""
        entry = self.entries[index]
        record = entry.record
        path = entry.file.parent / record.image
        try:  # the same pixels as at inference (16-bit rescaled, not clipped)
            image = read_raster(path)
        except ImageError as exc:
            raise MimoDataError(f"{entry.where}: image not readable: {exc}") from None
        try:
            masks = {key: rle.decode(m) for key, m in record.masks.items()}
        except Exception as exc:
            raise MimoDataError(f"{entry.where}: a mask does not decode as COCO RLE ({exc})") from None
        conversations = [t.model_dump(by_alias=True, exclude_none=True) for t in record.conversations]
        regions = list(record.regions)  # the schema's Region objects, as the processor takes them
        return {"image": image, "conversations": conversations, "regions": regions, "masks": masks}

    def __getitem__(self, key: int | tuple[int, tuple[int, ...]]) -> dict:
        """The processed sample of record ``key``, or of ``(index, draw)``: augmented (when the
        dataset has an ``augment`` setting) with the random numbers ``draw`` seeds."""
        index, draw = (key, None) if isinstance(key, int) else key
        sample = self.load(index)
        if (
            self.augment is not None
            and draw is not None
            and self.augment.applies_to(self.entries[index].record.source)
        ):
            sample = augment_sample(sample, self.augment, np.random.default_rng([*draw, AUGMENT_STREAM]))
        try:
            return self.processor.process_sample(
                sample["image"], sample["conversations"], sample["regions"], sample["masks"]
            )
        except ValueError as exc:
            raise MimoDataError(f"{self.entries[index].where}: {exc}") from None


def epoch_order(
    perspectives: list[str | None], ratios: dict[str, float] | None, seed: int, epoch: int
) -> list[int]:
    """The record indices of one epoch, mixed by perspective: a pure function of its arguments.

    Perspectives named in ``ratios`` share the mixed records' count in proportion to their
    weights (a small group is repeated, a large one sub-sampled, differently each epoch);
    records of other perspectives (e.g. ``negative``) appear once; weight 0 drops a group.
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(perspectives)
    if not ratios:
        return [int(i) for i in rng.permutation(n)]
    groups: dict[str | None, list[int]] = {}
    for i, p in enumerate(perspectives):
        groups.setdefault(p, []).append(i)
    mixed = {k: v for k, v in groups.items() if k in ratios and ratios[k] > 0}
    order: list[int] = []
    for key, idx in groups.items():
        if key not in ratios:
            order.extend(idx)
    if mixed:
        total_w = sum(ratios[k] for k in mixed)
        n_mixed = sum(len(v) for v in mixed.values())
        for key in sorted(mixed, key=str):
            idx = np.asarray(mixed[key])
            quota = int(round(n_mixed * ratios[key] / total_w))
            reps = -(-quota // len(idx)) if quota else 0
            picks = np.concatenate([rng.permutation(idx) for _ in range(reps)])[:quota] if reps else []
            order.extend(int(i) for i in picks)
    if not order:
        raise MimoDataError(
            f"the ratios {ratios} select no records (perspectives present: {sorted(map(str, groups))})"
        )
    return [order[i] for i in rng.permutation(len(order))]


def source_pool(sources: list[str | None], repeat: dict[str, float] | None, seed: int) -> list[int]:
    """The record indices an epoch draws from: each record of a source named in ``repeat``
    that many times (a fraction: that share of the source's records once more, chosen by
    ``seed``), others once. Fixed for a run, so every epoch has the same length; oversamples a
    small dataset beside a large one (e.g. ``{'folder2d:hc18-fetal-head': 3}``)."""
    if not repeat:
        return list(range(len(sources)))
    unknown = sorted(set(repeat) - set(sources))
    if unknown:
        present = ", ".join(sorted(str(s) for s in set(sources)))
        raise MimoDataError(f"data.source_repeat names {unknown}, not a source of the records ({present})")
    rng = np.random.default_rng([seed, REPEAT_STREAM])
    by_source: dict[str | None, list[int]] = {}
    for i, source in enumerate(sources):
        by_source.setdefault(source, []).append(i)
    pool: list[int] = []
    for source in sorted(by_source, key=str):
        idx = by_source[source]
        weight = repeat.get(source, 1.0) if source is not None else 1.0
        pool.extend(idx * int(weight))
        extra = int(round((weight - int(weight)) * len(idx)))
        pool.extend(sorted(int(i) for i in rng.permutation(idx)[:extra]))
    if not pool:
        raise MimoDataError(f"data.source_repeat {repeat} leaves no records")
    return sorted(pool)


def group_by_length(
    order: list[int], lengths: list[int], chunk: int, seed: int, epoch: int, window: int = 50
) -> list[int]:
    """``order`` rearranged so that each run of ``chunk`` records holds similar lengths.

    ``chunk`` is one micro-batch of every process (``batch_size * world``; :class:`EpochBatches`
    deals chunk ``j`` out as every rank's batch ``j``), so a batch is padded to a length near its
    records' own. Records are sorted by length within windows of ``window`` chunks (the mix of
    the epoch stays local), the chunks are shuffled, the one with the longest record first (a
    batch that does not fit fails at once), and a short last chunk stays last. A pure function
    of its arguments, like :func:`epoch_order`.
    """
    size = chunk * window
    chunks: list[list[int]] = []
    for start in range(0, len(order), size):
        part = sorted(order[start : start + size], key=lambda i: -lengths[i])
        chunks += [part[k : k + chunk] for k in range(0, len(part), chunk)]
    tail = [chunks.pop()] if chunks and len(chunks[-1]) < chunk else []
    rng = np.random.default_rng([seed, epoch, 1])
    chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    if chunks:
        longest = max(range(len(chunks)), key=lambda c: lengths[chunks[c][0]])
        chunks[0], chunks[longest] = chunks[longest], chunks[0]
    return [i for c in chunks + tail for i in c]


def same_kind_chunks(
    order: list[int], kinds: list, chunk: int, seed: int, epoch: int, lengths: list[int] | None = None
) -> list[int]:
    """``order`` rearranged into runs of ``chunk`` records of one kind each.

    For engines that need every process to run the same modules in a step (DeepSpeed reduces
    gradients in buckets filled in the order autograd produces them; ZeRO-3 also gathers a
    module's shards when it runs): with ``chunk = batch_size * world`` every rank's
    micro-batch ``j`` comes from chunk ``j`` (see :class:`EpochBatches`), so all ranks hold
    records of one kind (:meth:`RecordDataset.module_kinds`). A kind's last chunk is filled up
    with its first records; ``lengths`` groups by length within a kind; the chunks are shuffled.
    A pure function of its arguments.
    """
    by_kind: dict = {}
    for i in order:
        by_kind.setdefault(kinds[i], []).append(i)
    chunks: list[list[int]] = []
    for kind in sorted(by_kind):
        idx = by_kind[kind]
        if lengths is not None:
            idx = group_by_length(idx, lengths, chunk, seed, epoch)
        idx = idx + [idx[k % len(idx)] for k in range((-len(idx)) % chunk)]
        chunks += [idx[k : k + chunk] for k in range(0, len(idx), chunk)]
    rng = np.random.default_rng([seed, epoch, 2])
    return [i for c in rng.permutation(len(chunks)) for i in chunks[c]]


class EpochBatches:
    """This rank's micro-batches of one epoch: ``order`` padded to equal shares, split by rank."""

    def __init__(self, order: list[int], batch_size: int, rank: int = 0, world: int = 1) -> None:
        pad = (-len(order)) % world
        order = order + order[:pad]
        share = order[rank::world]
        self.batches = [share[i : i + batch_size] for i in range(0, len(share), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)


class ListBatchSampler(torch.utils.data.Sampler):
    """Yields fixed index batches (a DataLoader ``batch_sampler``)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Collator:
    """Wraps ``MimoProcessor.collate``; drops ``image_size`` (not a forward argument)."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.processor.collate(samples)
        batch.pop("image_size", None)
        return batch

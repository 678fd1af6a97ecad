"""Exporting part of a scene: the primitives of some shapes, an index range, some stages.

A selection is written as text, the way ``diffbmp export --select`` takes it:

- ``shape=brush_flat,star``: primitives of these shapes (names of the scene's bank);
- ``index=0-499`` (inclusive), ``index=7``, ``index=500-`` (to the end), several ranges
  separated by commas: primitives by their index (painting order);
- ``stage=0,2``: primitives added by these stages (0: the initial primitives, k: the k-th
  later stage or budget round; ``Scene.stages``).

Several selections combine with AND. The subset keeps its painting order, and remembers
each primitive's index in the scene it came from (``scene.metadata["selection"]``), so the
layers of a PSD of the subset are named by their original indices (:func:`source_indices`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import InputError
from ..scene import Scene

__all__ = ["Selection", "parse_selection", "select_primitives", "selection_mask", "source_indices", "FORMS"]

#: The forms a selection takes, for messages.
FORMS = "shape=NAME[,NAME...], index=A-B[,C-D...] (inclusive; A- runs to the end) or stage=K[,K...]"
#: Where a subset records the indices its primitives had.
METADATA_KEY = "selection"

_RANGE = re.compile(r"^(\d+)(?:\s*(-)\s*(\d*))?$")


@dataclass(frozen=True)
class Selection:
    """One parsed selection: ``key`` is ``"shape"``, ``"index"`` or ``"stage"``.

    ``values`` are shape names, (first, last) index ranges (``last`` None: to the end), or
    stage numbers; ``text`` is the selection as written.
    """

    key: str
    values: tuple
    text: str


def parse_selection(text: str | Selection) -> Selection:
    """Parse ``shape=...``, ``index=...`` or ``stage=...``.

    Raises:
        InputError: naming the valid forms, for anything else.
    """
    if isinstance(text, Selection):
        return text
    if not isinstance(text, str):
        raise InputError(f"a selection is text such as 'shape=brush_flat' or 'index=0-499', got {text!r}; the forms are {FORMS}")
    key, equals, rest = text.partition("=")
    key, rest = key.strip().lower(), rest.strip()
    if not equals or key not in ("shape", "index", "stage"):
        close = difflib.get_close_matches(key, ["shape", "index", "stage"], n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}=...?)" if close and equals else ""
        raise InputError(f"cannot read the selection {text!r}{hint}: the forms are {FORMS}")
    items = [item.strip() for item in rest.split(",")]
    if not rest or any(not item for item in items):
        raise InputError(f"the selection {text!r} names nothing after {key}= (or has an empty item between commas); the forms are {FORMS}")
    if key == "shape":
        return Selection(key, tuple(items), text)
    if key == "stage":
        if not all(item.isdigit() for item in items):
            raise InputError(f"the selection {text!r} needs stage numbers (0 for the initial primitives, 1, 2, ... for later stages), e.g. stage=0,2")
        return Selection(key, tuple(int(item) for item in items), text)
    ranges = []
    for item in items:
        match = _RANGE.match(item)
        if match is None:
            raise InputError(f"cannot read {item!r} in the selection {text!r}: give index ranges such as index=0-499, index=7 or index=500- (to the end)")
        first = int(match.group(1))
        last = first if match.group(2) is None else (int(match.group(3)) if match.group(3) else None)
        if last is not None and last < first:
            raise InputError(f"the index range {item!r} in {text!r} ends before it starts; write it as {last}-{first}")
        ranges.append((first, last))
    return Selection(key, tuple(ranges), text)


def source_indices(scene: Scene) -> tuple[list[int], int]:
    """The index each primitive of ``scene`` had in the scene it was selected from, and that
    scene's number of primitives: ``(0..N-1, N)`` for a scene not made by
    :func:`select_primitives` (or edited since, so that the record no longer fits)."""
    record = scene.metadata.get(METADATA_KEY) if isinstance(scene.metadata, dict) else None
    count = len(scene)
    if isinstance(record, dict):
        indices, total = record.get("indices"), record.get("count")
        if (
            isinstance(indices, list) and len(indices) == count and isinstance(total, int)
            and all(isinstance(i, int) and 0 <= i < total for i in indices)
        ):
            return list(indices), total
    return list(range(count)), count


def selection_mask(scene: Scene, selection: str | Selection) -> torch.Tensor:
    """[N] bool: the primitives of ``scene`` that ``selection`` picks.

    Raises:
        InputError: for a malformed selection, a shape the scene's bank does not have (listing
            its shapes), a stage it has no primitive of (listing its stages), or an index range
            wholly beyond its primitives.
    """
    selection = parse_selection(selection)
    count = len(scene)
    if selection.key == "shape":
        names = [entry.name for entry in scene.bank]
        wanted = []
        for name in selection.values:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"the scene has no shape {name!r}{hint}; its shapes are: {', '.join(names)}")
            wanted.append(names.index(name))
        ids = scene.shape_ids.detach().cpu()
        return torch.isin(ids, torch.tensor(wanted, dtype=ids.dtype))
    if selection.key == "stage":
        stages = scene.stages.detach().cpu()
        present = sorted(set(stages.tolist()))
        missing = [k for k in selection.values if k not in present]
        if missing:
            listed = ", ".join(str(k) for k in present) if present else "none (it has no primitives)"
            raise InputError(
                f"the scene has no primitives of stage {', '.join(str(k) for k in missing)}; its stages are: {listed}"
            )
        return torch.isin(stages, torch.tensor(selection.values, dtype=torch.long))
    indices, total = source_indices(scene)
    index = torch.tensor(indices, dtype=torch.long)
    mask = torch.zeros(count, dtype=torch.bool)
    for first, last in selection.values:
        if first >= total:
            raise InputError(
                f"the index range {_range_text(first, last)} of {selection.text!r} starts beyond the scene's "
                f"{total} primitives (indices 0-{max(total - 1, 0)})"
            )
        mask |= (index >= first) & (index <= (total - 1 if last is None else last))
    return mask


def select_primitives(scene: Scene, selections: Sequence[str | Selection] | str | Selection | None) -> Scene:
    """The primitives of ``scene`` that every selection picks (AND), in painting order.

    The result records each primitive's index in ``scene`` (composed with ``scene``'s own
    record, if ``scene`` is itself a subset) in ``metadata["selection"]``; see
    :func:`source_indices`. No selections return ``scene`` itself.

    Raises:
        InputError: for a bad selection (see :func:`selection_mask`) or one that leaves no
            primitive.
    """
    if selections is None:
        return scene
    if isinstance(selections, (str, Selection)):
        selections = [selections]
    parsed = [parse_selection(s) for s in selections]
    if not parsed:
        return scene
    mask = torch.ones(len(scene), dtype=torch.bool)
    for selection in parsed:
        mask &= selection_mask(scene, selection)
    if not bool(mask.any()):
        joined = " and ".join(repr(s.text) for s in parsed)
        raise InputError(f"the selection {joined} picks none of the scene's {len(scene)} primitives")
    indices, total = source_indices(scene)
    picked = torch.nonzero(mask).flatten()
    subset = scene.select(picked.to(scene.shape_ids.device))
    previous = scene.metadata.get(METADATA_KEY) if isinstance(scene.metadata, dict) else None
    earlier = previous.get("selections", []) if isinstance(previous, dict) and len(indices) == len(scene) else []
    subset.metadata = dict(scene.metadata)
    subset.metadata[METADATA_KEY] = {
        "indices": [indices[i] for i in picked.tolist()],
        "count": total,
        "selections": [*earlier, *(s.text for s in parsed)],
    }
    return subset


def _range_text(first: int, last: int | None) -> str:
    return f"{first}-" if last is None else (str(first) if first == last else f"{first}-{last}")

"""Layer groups of a layered export, by stage, by shape or by index runs, that keep the picture.

Grouping layers by a key (the stage that added a primitive, or its shape) reorders them: a
group stacks all its layers together, so a layer moves below layers it was painted after.
With normal blending, exchanging two layers changes the picture only where both have pixels,
so a layer may join an earlier group of its key only when its box overlaps no layer of the
groups stacked above that one; otherwise it opens a new group. Layers whose keys come in one
run (stages added in order) always form one group each; interleaved keys on disjoint parts of
the canvas also do; where marks of different keys overlap, a key gets several groups, in the
order that paints the same picture.

A group holding more than ``group_size`` layers is split into sub-groups of ``group_size``
consecutive layers, so that no folder of the Layers panel holds thousands of layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence, Union

import numpy as np

__all__ = ["LayerGroup", "Node", "GROUP_BY", "MANY_GROUPS", "FEWEST_PER_GROUP", "merge_by_key", "group_layers", "range_label"]

#: The ways layers can be grouped.
GROUP_BY = ("stage", "shape", "none")
#: A key grouping of more than MANY_GROUPS groups holding fewer layers than FEWEST_PER_GROUP
#: on average is given up for index runs.
MANY_GROUPS = 64
FEWEST_PER_GROUP = 4


@dataclass
class LayerGroup:
    """A group of layers: ``children`` are layer positions (ints) and sub-groups, bottom to top."""

    name: str
    children: list["Node"] = field(default_factory=list)

    def positions(self) -> list[int]:
        """The layer positions inside the group, bottom to top (sub-groups flattened)."""
        out: list[int] = []
        for child in self.children:
            out.extend(child.positions() if isinstance(child, LayerGroup) else [child])
        return out


#: A layer (its position in painting order) or a group.
Node = Union[int, LayerGroup]


def merge_by_key(keys: Sequence[Hashable], boxes: np.ndarray) -> list[tuple[Hashable, list[int]]]:
    """Layers 0..N-1 (painting order) gathered into runs of one key, bottom to top, such that
    stacking the runs paints the same picture.

    Args:
        keys: the key of each layer.
        boxes: [N, 4] (x0, y0, x1, y1) of each layer's pixels; an empty box overlaps nothing.

    Returns:
        (key, layer positions) per group, bottom to top; within a group the positions ascend.
    """
    count = len(keys)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(count, 4)
    group_of = np.full(count, -1, dtype=np.int64)
    groups: list[tuple[Hashable, list[int]]] = []
    latest: dict[Hashable, int] = {}
    for j in range(count):
        key = keys[j]
        g = latest.get(key)
        if g is not None and g < len(groups) - 1 and _overlaps_above(boxes, group_of[:j], g, boxes[j]):
            g = None
        if g is None:
            g = len(groups)
            groups.append((key, []))
            latest[key] = g
        groups[g][1].append(j)
        group_of[j] = g
    return groups


def _overlaps_above(boxes: np.ndarray, group_of: np.ndarray, g: int, box: np.ndarray) -> bool:
    """Whether ``box`` overlaps a layer of a group above group ``g``."""
    if box[2] <= box[0] or box[3] <= box[1]:
        return False
    above = boxes[: len(group_of)][group_of > g]
    hit = (above[:, 0] < box[2]) & (box[0] < above[:, 2]) & (above[:, 1] < box[3]) & (box[1] < above[:, 3])
    return bool(hit.any())


def range_label(indices: Sequence[int], digits: int) -> str:
    """``0500-0999`` for the layers of primitives 500 to 999; ``0500-1210, 312 layers`` when
    the indices are not one unbroken run."""
    first, last = min(indices), max(indices)
    text = f"{first:0{digits}d}-{last:0{digits}d}"
    return text if last - first + 1 == len(indices) else f"{text}, {len(indices)} layers"


def group_layers(
    keys: Sequence[Hashable] | None,
    boxes: np.ndarray,
    indices: Sequence[int],
    group_size: int,
    name: Callable[[Hashable, list[int]], str],
    digits: int,
) -> list[Node]:
    """The layer tree, bottom to top.

    Args:
        keys: the grouping key of each layer, or None to group by index runs only.
        boxes: [N, 4] pixel boxes of the layers (see :func:`merge_by_key`).
        indices: the primitive index each layer is named by (its index in the full scene).
        group_size: the most layers a group holds directly; bigger groups are split into
            sub-groups (0: never split). With ``keys=None``, layers are put in runs of
            ``group_size`` when there are more than that.
        name: the name of a key's group, from its key and its layers' primitive indices.
        digits: zero-padding of the indices in group names.

    A key grouping that would put every layer in one group makes no group (it would add a
    folder and nothing else), and one that breaks into more than :data:`MANY_GROUPS` groups
    of fewer than :data:`FEWEST_PER_GROUP` layers on average (keys interleaved where marks
    overlap, as when a fit splits primitives into a later stage) would bury the layers in
    thousands of tiny folders; the layers are then grouped by index runs.
    """
    count = len(indices)
    if keys is not None:
        merged = merge_by_key(keys, boxes)
        if 1 < len(merged) <= max(MANY_GROUPS, count // FEWEST_PER_GROUP):
            tree: list[Node] = []
            for key, positions in merged:
                label = name(key, [indices[p] for p in positions])
                tree.append(LayerGroup(label, _split(positions, indices, group_size, digits)))
            return tree
    if 0 < group_size < count:
        return _split(list(range(count)), indices, group_size, digits)
    return list(range(count))


def _split(positions: list[int], indices: Sequence[int], group_size: int, digits: int) -> list[Node]:
    """``positions`` as they are, or in sub-groups of ``group_size`` when there are more."""
    if not 0 < group_size < len(positions):
        return list(positions)
    chunks = [positions[i:i + group_size] for i in range(0, len(positions), group_size)]
    return [LayerGroup("primitives " + range_label([indices[p] for p in chunk], digits), list(chunk)) for chunk in chunks]

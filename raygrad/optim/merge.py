"""Merge (trainer.merges, with a Pareto pool): two pool members that changed different parameters from a
common ancestor are combined, each parameter taken from the one that changed it, as GEPA's merge does.
Where both changed the same parameter, the higher-scoring member's value is taken."""
from __future__ import annotations

import itertools

from raygrad.optim.parents import front
from raygrad.optim.state import PoolMember, TrainState, values_digest


def ancestors(pool: list[PoolMember], index: int) -> set[int]:
    """The pool positions `index` was built on, directly or not, itself included."""
    seen, waiting = set(), [index]
    while waiting:
        current = waiting.pop()
        if current not in seen:
            seen.add(current)
            waiting += pool[current].parents
    return seen


def next_merge(state: TrainState, val_size: int) -> tuple[dict[str, str], list[int]] | None:
    """The values of the first untried merge of two front members (the highest-scoring pair first) that holds
    something of each and was never validated, and the pair; None when there is none."""
    pool, tried = state.pool, {tuple(pair) for pair in state.merges}
    members = sorted(front(pool, val_size), key=lambda i: -pool[i].score)
    for first, second in itertools.combinations(members, 2):
        pair = tuple(sorted((first, second)))
        common = ancestors(pool, first) & ancestors(pool, second)
        if pair in tried or not common or first in common or second in common:
            continue  # no common ancestor, or one is built on the other: nothing to combine
        ancestor = pool[max(common)].values
        one, two = pool[first].values, pool[second].values
        # `first` scores at least as high: its value wherever it changed one, the other's elsewhere.
        merged = {name: two[name] if one[name] == ancestor[name] else one[name] for name in one}
        if merged != one and merged != two and values_digest(merged) not in state.validated:
            return merged, list(pair)
    return None

"""Which values a step builds on (trainer.parents), and the pool of candidates it chooses from.

- `best` (the default): always the best values so far, as the paper's loop does.
- `pareto`: GEPA's parent selection. Every candidate validated on the whole validation set joins a
  pool when no member already answers right every sample it does; a step's parent is drawn from the
  members that are best on some validation sample (none answers it right more strictly than they do),
  each as often as the samples it is best on. A prompt that fixes what the best one does not is kept and
  built on, even while its total is lower.

A sample counts as answered right when it scored 1 (metrics score in [0, 1]); the pool compares members
on the first MAX_WEAK validation positions, where every member's misses are known exactly.
"""
from __future__ import annotations

import random
from typing import Literal, Protocol

from raygrad.optim.execution import MAX_WEAK, Stage2Result
from raygrad.optim.state import PoolMember, TrainState

ParentMode = Literal["best", "pareto"]


class Parents(Protocol):
    """`choose` gives the pool position of the values a step builds on (None: the best values so far);
    `admit` offers a fully validated candidate to the pool and says whether it joined."""

    pool: bool  # whether the trainer keeps a pool (its candidates' stage 2 then run to the end)

    def choose(self, state: TrainState, rng: random.Random, val_size: int) -> int | None: ...

    def admit(self, state: TrainState, values: dict[str, str], result: Stage2Result, parents: list[int]) -> bool: ...


class BestParent:
    pool = False

    def choose(self, state: TrainState, rng: random.Random, val_size: int) -> int | None:
        return None

    def admit(self, state: TrainState, values: dict[str, str], result: Stage2Result, parents: list[int]) -> bool:
        return False


class ParetoParents:
    pool = True

    def choose(self, state: TrainState, rng: random.Random, val_size: int) -> int | None:
        wins = front(state.pool, val_size)
        if not wins:  # no member answers any sample right: the best
            return max(range(len(state.pool)), key=lambda i: state.pool[i].score, default=None)
        members = sorted(wins)
        return rng.choices(members, weights=[wins[m] for m in members])[0]

    def admit(self, state: TrainState, values: dict[str, str], result: Stage2Result, parents: list[int]) -> bool:
        member = PoolMember(values=values, score=result.strict_score, missed=result.weak, parents=parents)
        right = solved(member, result.total)
        if any(right <= solved(other, result.total) for other in state.pool):
            return False
        state.pool.append(member)
        return True


def parents_of(mode: ParentMode) -> Parents:
    return {"best": BestParent, "pareto": ParetoParents}[mode]()


def solved(member: PoolMember, val_size: int) -> set[int]:
    """The validation positions (of the first MAX_WEAK) the member answered right."""
    return set(range(min(val_size, MAX_WEAK))) - set(member.missed)


def front(pool: list[PoolMember], val_size: int) -> dict[int, int]:
    """Pool position -> the samples it is best on, for the members no other one dominates (answers right
    every sample it does, and more; of members that answer the same samples, the first counts)."""
    right = [solved(member, val_size) for member in pool]
    kept = [i for i, mine in enumerate(right)
            if not any(j != i and mine <= theirs and (mine < theirs or j < i) for j, theirs in enumerate(right))]
    return {i: len(right[i]) for i in kept if right[i]}

"""RayExecutor's dispatch when a worker dies with several shards in flight (fake workers: no cluster needed),
and the packed form a split travels in."""
from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import ray
from ray.exceptions import RayActorError

from raygrad.distributed.dispatch import RayExecutor
from raygrad.llm.client import Usage
from raygrad.llm.models import ROLES
from raygrad.optim.execution import ScoreSum


class FakeWorker:
    """A worker whose shards answer after `delays[i]` s, or die with it when it is `dead`."""

    def __init__(self, wid: str, dead: bool, started: list[str]):
        self.wid, self.dead, self.started, self.calls = wid, dead, started, itertools.count()
        self.score_shard = SimpleNamespace(remote=self.remote)

    def remote(self, shard: int):
        self.started.append(self.wid)
        delay = 0.01 * (1 + next(self.calls) * 5)  # a dead worker's shards fail at different moments

        async def run():
            await asyncio.sleep(delay)
            if self.dead:
                raise RayActorError()
            return shard * 10, {}
        return run()


def test_a_worker_dying_with_two_shards_in_flight_has_both_redone_elsewhere():
    started: list[str] = []
    executor = RayExecutor.__new__(RayExecutor)
    executor.spec = SimpleNamespace(config=SimpleNamespace(runtime=SimpleNamespace(shards_per_worker=2)),
                                    holder=lambda wid: f"run/{wid}")
    executor.budget = SimpleNamespace(release=SimpleNamespace(remote=lambda holder: None))
    executor.make_worker = lambda wid: FakeWorker(wid, dead=False, started=started)
    executor._ids = itertools.count(2)
    executor.workers = {"worker-0": FakeWorker("worker-0", dead=True, started=started),
                        "worker-1": FakeWorker("worker-1", dead=False, started=started)}
    executor.replaced, executor.cancelled_shards, executor.budget_guard = [], 0, None
    executor._usage = {role: Usage() for role in ROLES}
    results = asyncio.run(executor._map("score_shard", [(i,) for i in range(6)]))
    assert results == [i * 10 for i in range(6)]  # every shard answered once, in order
    assert executor.replaced == ["worker-0"] and set(executor.workers) == {"worker-1", "worker-2"}
    assert started.count("worker-0") == 2  # both of its shards were in flight when it died


class RightEverywhere:
    """A worker scoring a candidate that answers every sample right; shards of the incumbent's misses
    come back only once four other shards have (`done`, shared by the workers, in completion order)."""

    def __init__(self, misses: set[int], done: list[list[int]]):
        self.misses, self.done = misses, done
        self.score_shard = SimpleNamespace(remote=self.remote)

    def remote(self, values, data, rows, keep):
        async def run():
            await asyncio.sleep(0.001)
            for _ in range(1000):  # a second at most, should no other shard come back
                if not set(rows) <= self.misses or len(self.done) >= 4:
                    break
                await asyncio.sleep(0.001)
            self.done.append(list(rows))
            return ScoreSum(total=len(rows), completed=len(rows), count=len(rows)), {}
        return run()


def test_early_acceptance_across_workers_waits_for_the_misses_though_other_shards_answer_first(monkeypatch):
    cancelled: list = []
    monkeypatch.setattr(ray, "cancel", cancelled.append)  # the shards in flight when it stops
    misses, done = list(range(0, 64, 4)), []
    executor = RayExecutor.__new__(RayExecutor)
    executor.spec = SimpleNamespace(config=SimpleNamespace(runtime=SimpleNamespace(shards_per_worker=2)))
    executor.workers = {f"worker-{i}": RightEverywhere(set(misses), done) for i in range(2)}
    executor.cancelled_shards, executor.budget_guard = 0, None
    executor.sample_sink, executor._usage = None, {role: Usage() for role in ROLES}
    result = asyncio.run(executor.validate({}, list(range(64)), must_beat=0.75, chunk=8, first=misses,
                                           accept_confidence=0.95))
    # The first shards back hold 12 of the rest, all right: their bound alone would accept (at least
    # 0.85 > 0.75). The tally counts shards in the order they were cut: the 16 misses, then the rest,
    # so it accepts where one process does, after the misses and one shard of 6 (22 samples).
    assert not set(done[0] + done[1]) & set(misses) and len(done) > 4
    assert result.estimated and result.evaluated == 22 and result.strict_score == 1.0
    assert executor.cancelled_shards == len(cancelled)

"""RayExecutor's dispatch when a worker dies with several shards in flight (fake workers: no cluster needed)."""
from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

from ray.exceptions import RayActorError

from raygrad.distributed.dispatch import RayExecutor
from raygrad.llm.client import Usage
from raygrad.llm.models import ROLES


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

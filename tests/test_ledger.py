"""The cluster-wide rate budget: leases of send times that no set of workers can overrun."""
from __future__ import annotations

import asyncio
import random
import time

from raygrad.distributed.ledger import COLD_DELAY, RateLedger
from raygrad.llm.limits import EndpointLimiter, LeasedWindow


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_leases_from_many_holders_used_late_never_overrun_any_window():
    rng = random.Random(0)
    ledger = RateLedger(capacity=60, window=6.0, use_by=0.05, slack=0.05, horizon=2.0)
    now, sent = 1000.0, []
    held: dict[str, list[float]] = {f"w{i}": [] for i in range(8)}
    while now < 1060.0:
        for holder, times in held.items():
            times[:] = [t for t in times if t + ledger.use_by >= now]  # void ones are dropped
            if not times:
                times.extend(ledger.lease(holder, rng.randint(1, 40), now).times)
            while times and times[0] <= now:  # due: sent up to use_by late
                sent.append(times.pop(0) + rng.uniform(0, ledger.use_by))
        now += rng.uniform(0.001, 0.05)
    assert max_in_any_window(sent, 6.0) <= 60
    # ...and the budget is used: 60 per 6.1 s span, over 60 s about 590 sends.
    assert len(sent) > 0.95 * 60 * 60 / ledger.span


def test_release_gives_a_dead_holders_future_times_back():
    ledger = RateLedger(capacity=10, window=1.0, use_by=0.05, slack=0.1, horizon=5.0)  # span 1.15 s
    held = ledger.lease("dead", 30, now=0.0, send_delay=0.1).times
    assert [round(t, 6) for t in held] == [0.0] * 10 + [1.15] * 10 + [2.3] * 10
    assert ledger.release("dead", now=0.5) == 20  # the 10 due at 0.0 were spent; 20 come back
    assert [round(t, 6) for t in ledger.lease("alive", 10, now=0.5, send_delay=0.1).times] == [1.15] * 10  # not 3.45


def test_each_send_time_keeps_room_for_its_holders_reported_delay():
    rng = random.Random(1)
    ledger = RateLedger(capacity=10, window=1.0, use_by=0.05, slack=0.02, horizon=20.0)
    delay = 0.4  # a loaded node: requests leave up to 0.4 s after their send times
    times = ledger.lease("slow", 50, now=0.0, send_delay=delay).times
    arrivals = [t + rng.uniform(0, ledger.use_by) + rng.uniform(0, delay) for t in times]
    assert len(times) == 50 and max_in_any_window(arrivals, 1.0) <= 10
    assert round(times[10] - times[0], 6) == 1.45  # window + use_by + delay
    # A fresh worker has measured nothing: its send times assume a cold client's delay.
    cold = RateLedger(capacity=10, window=1.0, use_by=0.05, slack=0.02, horizon=20.0)
    times = cold.lease("fresh", 20, now=0.0).times
    assert round(times[10] - times[0], 6) == round(1.0 + 0.05 + COLD_DELAY, 6)


def test_unused_send_times_are_leased_again_at_once():
    ledger = RateLedger(capacity=10, window=1.0, use_by=0.05, slack=0.02, horizon=5.0)
    burst = ledger.lease("w", 10, now=0.0, send_delay=0.0).times
    ledger.unused("w", burst[3:])  # 3 sent, 7 went void (a burst shares one send time)
    again = ledger.lease("w", 8, now=0.1, send_delay=0.0).times
    assert [round(t, 6) for t in again] == [0.1] * 7 + [1.07]  # the 3 sent still count


def test_a_holders_send_times_are_spaced_by_its_send_interval():
    ledger = RateLedger(capacity=60, window=6.0, horizon=5.0)
    times = ledger.lease("w", 5, now=0.0, send_delay=0.0, send_interval=0.01).times
    assert [round(t, 6) for t in times] == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert ledger.lease("other", 1, now=0.0, send_delay=0.0).times == [0.04]  # others are not slowed


def test_tokens_per_minute_are_paced_per_second():
    ledger = RateLedger(capacity=10**6, window=1e-9, tpm=6000, horizon=10.0)  # 100 tokens a second
    times = ledger.lease("w", 20, now=0.0, tokens_per_request=50).times
    assert max_in_any_window(times, 1.0) <= 2 and len(times) >= 18


async def test_leased_window_uses_few_ledger_calls_and_keeps_to_the_budget():
    ledger = RateLedger(capacity=20, window=0.5, use_by=0.05, slack=0.02, horizon=1.0)

    async def lease(count: int, tokens: float, send_delay: float | None, send_interval: float):
        return ledger.lease("w", count, time.time(), tokens, send_delay, send_interval)

    limiter = EndpointLimiter(rpm=2400, tpm=None, max_in_flight=64,
                              shared=LeasedWindow(lease, lambda *args: None, capacity=20))
    sent: list[float] = []

    async def call():
        async with limiter.slot():
            sent.append(time.time())

    await asyncio.gather(*(call() for _ in range(100)))
    assert max_in_any_window(sent, 0.5) <= 20
    assert limiter.requests.leases <= 20  # a lease per burst, not a ledger call per request

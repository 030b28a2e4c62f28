"""The cluster-wide rate budget: leases of send times that no set of workers can overrun."""
from __future__ import annotations

import asyncio
import random
import time

from raygrad.llm.ledger import COLD_DELAY, RateLedger
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
    ledger = RateLedger(capacity=60, window=6.0, use_by=0.05, slack=0.05, horizon=2.0)
    by_holder = simulate(ledger, {f"run/w{i}": 1 + 5 * i for i in range(8)}, 60.0)
    sent = [t for times in by_holder.values() for t in times]
    assert max_in_any_window(sent, 6.0) <= 60
    # ...and the budget is used: 60 per 6.1 s span, over 60 s about 590 sends.
    assert len(sent) > 0.95 * 60 * 60 / ledger.span


def simulate(ledger: RateLedger, asks: dict[str, int], seconds: float, seed: int = 0,
             delay: float = 0.0, report_used: bool = False) -> dict[str, list[float]]:
    """Holders lease `asks[holder]` send times whenever they hold none, and send each when due: up to
    `use_by` late, and the request reaches the provider up to `delay` after that. With `report_used`,
    each holder tells the ledger when it used its send times before it leases again."""
    rng = random.Random(seed)
    now, sent = 1000.0, {holder: [] for holder in asks}
    held: dict[str, list[float]] = {holder: [] for holder in asks}
    used: dict[str, list[tuple[float, float]]] = {holder: [] for holder in asks}
    while now < 1000.0 + seconds:
        for holder in rng.sample(list(asks), len(asks)):  # no holder is always first to ask
            times = held[holder]
            times[:] = [t for t in times if t + ledger.use_by >= now]
            if not times:
                if report_used and used[holder]:
                    ledger.used(holder, used[holder])
                    used[holder] = []
                times.extend(ledger.lease(holder, asks[holder], now, send_delay=delay or None).times)
            while times and times[0] <= now:
                at = times.pop(0)
                handed = at + rng.uniform(0, ledger.use_by)
                used[holder].append((at, handed))
                sent[holder].append(handed + rng.uniform(0, delay))
        now += rng.uniform(0.001, 0.05)
    return sent


def test_send_times_reported_as_used_on_time_let_the_next_window_start_sooner_and_never_overrun():
    ledger = RateLedger(capacity=10, window=1.0, use_by=0.05, slack=0.02, horizon=1.5)
    first = ledger.lease("w", 10, now=0.0, send_delay=0.1).times
    ledger.used("w", [(t, t + 0.01) for t in first])  # each used 10 ms after its time
    ledger.used("w", [(t, t) for t in first])  # told twice: counted once
    second = ledger.lease("w", 10, now=0.5, send_delay=0.1).times
    assert round(second[0] - first[0], 6) == round(1.0 + 0.01 + 0.1, 6)  # not 1.0 + use_by + 0.1
    # Many holders, requests leaving up to 0.1 s after being handed out, usage reported: no window
    # holds more than the budget, and the tenth window starts sooner than without the reports.
    asks = {f"run/w{i}": 1 + 5 * i for i in range(8)}
    runs = [sorted(t for times in simulate(RateLedger(capacity=60, window=6.0, use_by=0.05, slack=0.02, horizon=2.0),
                                            asks, 60.0, delay=0.1, report_used=report).values() for t in times)
            for report in (False, True)]
    assert max_in_any_window(runs[1], 6.0) <= 60 and len(runs[1]) == len(runs[0]) == 600
    assert runs[1][540] < runs[0][540]


def test_runs_sharing_a_budget_get_equal_parts_however_many_workers_each_has():
    ledger = RateLedger(capacity=60, window=6.0, use_by=0.05, slack=0.05, horizon=2.0)
    asks = {**{f"greedy/w{i}": 40 for i in range(4)}, "modest/w0": 40}  # 4 workers against 1
    sent = simulate(ledger, asks, 60.0)
    greedy = sum(len(t) for h, t in sent.items() if h.startswith("greedy/"))
    modest = len(sent["modest/w0"])
    assert max_in_any_window([t for times in sent.values() for t in times], 6.0) <= 60
    assert 0.8 < modest / greedy < 1.25  # max-min fair, not 4:1
    assert greedy + modest > 0.95 * 60 * 60 / ledger.span  # and together they still use the budget


def test_a_run_alone_takes_the_whole_budget_and_a_late_run_is_not_starved():
    ledger = RateLedger(capacity=60, window=6.0, use_by=0.05, slack=0.05, horizon=2.0)
    assert len(ledger.lease("first/w0", 60, now=0.0, send_delay=0.05).times) == 60  # the whole burst
    waiting = ledger.lease("late/w0", 60, now=0.1, send_delay=0.05)
    assert waiting.times == [] and waiting.retry_at <= ledger.span - ledger.horizon + 0.01  # full until then
    # The next window: the first run asks first, with a worker per request, yet leaves half.
    first = [t for w in range(60) for t in ledger.lease(f"first/w{w}", 1, now=4.2, send_delay=0.05).times]
    late = ledger.lease("late/w0", 60, now=4.2, send_delay=0.05).times
    assert len(first) == len(late) == 30


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


def test_under_even_pacing_a_cold_workers_late_requests_are_paid_for_by_empty_send_times(monkeypatch):
    """Workers starting on a busy machine send their first requests up to half a second late: at 600 rpm
    enforced as 60 per 6 s, those arrivals pile into the windows of the send times after them."""
    def arrivals() -> list[float]:
        ledger, rng, now, sent = RateLedger.per_minute(600), random.Random(4), 0.0, []
        held: dict[str, list[float]] = {f"w{i}": [] for i in range(16)}
        measured: set[str] = set()
        while now < 30.0:
            for number, (holder, times) in enumerate(held.items()):
                if now < number * 0.25:
                    continue  # workers start one after another, each cold until its first request
                times[:] = [t for t in times if t + ledger.use_by >= now]
                if not times:
                    times.extend(ledger.lease(holder, 2, now, send_delay=0.005 if holder in measured else None).times)
                while times and times[0] <= now:
                    at = times.pop(0)
                    late = 0.005 if holder in measured else rng.uniform(0.3, 0.5)
                    sent.append(at + rng.uniform(0, 0.01) + late)
                    measured.add(holder)
            now += 0.01
        return sent

    paid = arrivals()
    assert max_in_any_window(paid, 6.0) <= 60 and len(paid) >= 0.95 * 30 * 10  # within 5% of the budget
    monkeypatch.setattr(RateLedger, "_owe", lambda self, latest_arrival: None)  # no gaps: the late arrivals overrun
    assert max_in_any_window(arrivals(), 6.0) > 60


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
                              shared=LeasedWindow(lease, lambda *args: None))
    sent: list[float] = []

    async def call():
        async with limiter.slot():
            sent.append(time.time())

    await asyncio.gather(*(call() for _ in range(100)))
    assert max_in_any_window(sent, 0.5) <= 20
    assert limiter.requests.leases <= 20  # a lease per burst, not a ledger call per request

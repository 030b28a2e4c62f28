"""Client-side limits for one model endpoint: requests per window, tokens per minute, calls in flight.

Requests are paced by a sliding-window log, not a leaky bucket: a bucket that has idled lets its
whole capacity through at once (aiolimiter's `AsyncLimiter(600, 60)` fires 600 calls in the first
second), which providers enforcing short windows refuse. We start by pacing one request every
60/rpm seconds. When the provider's rate-limit headers reveal a shorter enforcement window (limit L
per window, with L below the per-minute rpm), we widen to L requests per 60*L/rpm seconds, which uses
the burst the provider allows without exceeding it. A 429's Retry-After pauses every caller.

A request reaches the provider a little after we admit it (the client library's own work, which
grows with a burst). The provider counts it from its arrival, so each slot is held from its admission
plus the request's extra delay: its latency beyond the fastest latency seen on this endpoint.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

# Slack added to a learned window: requests admitted together reach the server a little spread out.
WINDOW_SLACK = 0.03


def parse_duration(text: str | None) -> float | None:
    """Parse '6s', '1m30s', '250ms', '0.5' (seconds) as sent in rate-limit and Retry-After headers."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total, matched = 0.0, False
    for value, unit in re.findall(r"([\d.]+)\s*(ms|h|m|s)", text):
        matched = True
        total += float(value) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if matched else None


class Slot:
    """One admitted request: it counts against the window from `admitted + delay` for `window` seconds."""

    __slots__ = ("admitted", "delay")

    def __init__(self, admitted: float):
        self.admitted, self.delay = admitted, 0.0


class RequestWindow:
    """At most `capacity` requests counted in any `window` seconds.

    The log keeps a minute of history whatever the window, so that widening the window (after the
    provider's headers revealed it) still counts the requests already sent in it.
    """

    HISTORY_S = 60.0

    def __init__(self, capacity: int, window: float):
        self.capacity = capacity
        self.window = window
        self._slots: list[Slot] = []
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None

    def resize(self, capacity: int, window: float) -> None:
        self.capacity, self.window = capacity, window

    def pause_until(self, moment: float) -> None:
        self._paused_until = max(self._paused_until, moment)

    def _expiries(self, now: float) -> list[float]:
        """When each slot still counted at `now` stops counting, soonest first."""
        if self._slots and self._slots[0].admitted <= now - self.HISTORY_S:
            self._slots = [s for s in self._slots if s.admitted > now - self.HISTORY_S]
        return sorted(e for e in (s.admitted + s.delay + self.window for s in self._slots) if e > now)

    async def acquire(self) -> Slot:
        if self._lock is None:  # created lazily, inside the running loop
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: one waiter at a time watches the window
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                expiries = self._expiries(now)
                if len(expiries) < self.capacity:
                    slot = Slot(now)
                    self._slots.append(slot)
                    return slot
                await asyncio.sleep(expiries[len(expiries) - self.capacity] - now)


class LeasedWindow:
    """Send times leased from a shared budget (a cluster-wide RateLedger), used one per request.

    Drop-in for RequestWindow. `lease(count, tokens, send_delay)` returns a Lease of wall-clock send times;
    a send time used more than `use_by` late is void (the ledger's guarantee depends on it), and a
    429 drops every held send time before the pause ends. `report(kind, *args)` tells the ledger
    what this worker learned (the provider's window, a pause); it must not block.
    """

    def __init__(self, lease: Callable[[int, float, float], Awaitable[Any]], report: Callable[..., None],
                 capacity: int = 1):
        self._lease, self._report = lease, report
        self.capacity = capacity  # the window as this worker last learned it
        self._times: collections.deque[float] = collections.deque()
        self._use_by = 0.05
        self._waiting = 0
        self._lock: asyncio.Lock | None = None
        self.leases = 0  # calls to the ledger: the point is to make few
        self._delays: collections.deque[float] = collections.deque(maxlen=64)  # recent send delays, seconds

    def observe_delay(self, delay: float) -> None:
        """A reply showed its request reached the provider `delay` s after its send time."""
        self._delays.append(delay)

    def resize(self, capacity: int, window: float) -> None:
        self.capacity = capacity
        self._report("resize", capacity, window)

    def pause_until(self, moment: float) -> None:
        wall = moment - time.monotonic() + time.time()
        while self._times and self._times[0] < wall:
            self._times.popleft()
        self._report("pause_until", wall)

    async def acquire(self, tokens: float = 0.0) -> Slot:
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._lock:  # FIFO, like RequestWindow
                while True:
                    while self._times and self._times[0] + self._use_by < time.time():
                        self._times.popleft()  # void: too late to use safely
                    if not self._times:
                        await asyncio.sleep(0)  # one loop turn: callers starting together ask as one
                        lease = await self._lease(self._waiting, tokens, max(self._delays, default=0.0))
                        self.leases += 1
                        self._times.extend(lease.times)
                        self._use_by = lease.use_by
                        if not lease.times:
                            await asyncio.sleep(max(0.0, lease.retry_at - time.time()))
                        continue
                    at = self._times.popleft()
                    if at > time.time():
                        await asyncio.sleep(at - time.time())
                    if time.time() <= at + self._use_by:
                        return Slot(time.monotonic())
        finally:
            self._waiting -= 1


class EndpointLimiter:
    """All client-side limits of one endpoint, for one event loop.

    With `shared` (a LeasedWindow), requests and tokens are budgeted cluster-wide by the ledger
    behind it, and this limiter only bounds the calls in flight.
    """

    def __init__(self, rpm: float | None, tpm: float | None, max_in_flight: int, shared: LeasedWindow | None = None):
        self.rpm = rpm
        self.requests: RequestWindow | LeasedWindow | None = shared or (RequestWindow(1, 60.0 / rpm) if rpm else None)
        # Tokens per minute, paced per second so an idle bucket cannot release a minute's worth at once.
        self.tokens = AsyncLimiter(tpm / 60.0, 1.0) if tpm and shared is None else None
        self.in_flight = max_in_flight
        self._semaphore: asyncio.Semaphore | None = None
        self._fastest = float("inf")  # the fastest latency seen: the provider's own time, no client delay

    @asynccontextmanager
    async def slot(self, estimated_tokens: int = 0, before_send: Callable[[], None] | None = None
                   ) -> AsyncIterator[Slot]:
        """Wait for room under every limit; hold a place in flight until the block ends.

        `before_send` runs once a place in flight is held, and may raise to give it back unused
        (a budget checked there is overshot by at most the calls in flight).
        """
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.in_flight)
        async with self._semaphore:
            if before_send is not None:
                before_send()
            if self.tokens is not None and estimated_tokens > 0:
                await self.tokens.acquire(min(float(estimated_tokens), self.tokens.max_rate))
            if isinstance(self.requests, LeasedWindow):
                yield await self.requests.acquire(float(estimated_tokens))
            else:
                yield await self.requests.acquire() if self.requests is not None else Slot(time.monotonic())

    def settle(self, slot: Slot, latency: float) -> None:
        """A reply came back after `latency`: the part beyond the fastest was delay before it left us."""
        self._fastest = min(self._fastest, latency)
        slot.delay = max(0.0, latency - self._fastest)
        if isinstance(self.requests, LeasedWindow):
            self.requests.observe_delay(slot.delay)

    def pause_until(self, moment: float) -> None:
        """No request leaves before `moment` (time.monotonic()), e.g. after a 429's Retry-After."""
        if self.requests is not None:
            self.requests.pause_until(moment)

    def observe_headers(self, headers: Mapping[str, str], sent_at: float) -> None:
        """Learn the provider's enforcement window from OpenAI-style rate-limit headers.

        The provider measured them when the request arrived, about `sent_at`, not when the reply came back.
        """
        if self.requests is None or not headers:
            return
        try:
            limit = int(float(_header(headers, "x-ratelimit-limit-requests")))
        except (TypeError, ValueError):
            return
        if self.rpm and 1 < limit < self.rpm and limit != self.requests.capacity:
            self.requests.resize(limit, 60.0 * limit / self.rpm + WINDOW_SLACK)
        remaining = _header(headers, "x-ratelimit-remaining-requests")
        reset = parse_duration(_header(headers, "x-ratelimit-reset-requests"))
        if remaining is not None and reset and str(remaining).strip() == "0":
            self.requests.pause_until(sent_at + reset)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # litellm passes provider headers through as-is and also prefixed with "llm_provider-".
    for key in (name, f"llm_provider-{name}"):
        if key in headers:
            return headers[key]
    lowered = {str(k).lower(): v for k, v in headers.items()}
    return lowered.get(name) or lowered.get(f"llm_provider-{name}")

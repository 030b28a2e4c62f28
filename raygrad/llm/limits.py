"""Client-side limits for one model endpoint: requests per minute, tokens per minute, calls in flight.

Requests are paced evenly, one every 60/rpm seconds, by a sliding-window log rather than a leaky
bucket: a bucket that has idled lets its whole capacity through at once (aiolimiter's
`AsyncLimiter(600, 60)` fires 600 calls in the first second), which providers that enforce a
per-minute limit over shorter windows refuse (OpenAI and Azure both say they may).

The provider's rate-limit headers are read as the providers define them, and only to stop early:
- OpenAI and Azure OpenAI: `x-ratelimit-remaining-requests` / `-tokens` is what is left of the
  per-minute (or per-day) limit, `x-ratelimit-reset-requests` / `-tokens` the time until it is
  whole again ("6m0s", "1s", "250ms"). At 0 remaining, no request leaves before the reset.
- Anthropic: `anthropic-ratelimit-requests-remaining` (and `-tokens-`, `-input-tokens-`,
  `-output-tokens-`) with `...-reset`, an RFC 3339 time. At 0, the same pause.
- A 429's `retry-after-ms` or `retry-after` (seconds or an HTTP date) pauses every caller.
The limit header itself sets no window: no provider reports its enforcement window there.

A request reaches the provider a little after we admit it (the client library's own work, which
grows with a burst). The provider counts it from its arrival, so each slot is held from its admission
plus the request's extra delay: its latency beyond the fastest latency seen on this endpoint.
"""
from __future__ import annotations

import asyncio
import collections
import email.utils
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from aiolimiter import AsyncLimiter


def parse_duration(text: str | None, now: float | None = None) -> float | None:
    """Seconds from '6s', '1m30s', '250ms', '0.5' (OpenAI's resets, Retry-After), or until an RFC 3339
    time (Anthropic's resets) or an HTTP date (Retry-After), counted from `now` (time.time())."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    moment = _timestamp(text)
    if moment is not None:
        return max(0.0, moment - (time.time() if now is None else now))
    total, matched = 0.0, False
    for value, unit in re.findall(r"([\d.]+)\s*(ms|h|m|s)", text):
        matched = True
        total += float(value) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if matched else None


def _timestamp(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class Slot:
    """One admitted request: it counts against the window from `admitted + delay` for `window` seconds."""

    __slots__ = ("admitted", "delay")

    def __init__(self, admitted: float):
        self.admitted, self.delay = admitted, 0.0


class RequestWindow:
    """At most `capacity` requests counted in any `window` seconds (the log keeps a minute of history)."""

    HISTORY_S = 60.0

    def __init__(self, capacity: int, window: float):
        self.capacity = capacity
        self.window = window
        self._slots: list[Slot] = []
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None

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

    Drop-in for RequestWindow. `lease(count, tokens, send_delay, send_interval)` returns a Lease of
    wall-clock send times; a send time used more than `use_by` late is void (the ledger's guarantee
    depends on it) and handed back unused, and a pause (a 429, or nothing remaining) drops every held
    send time before it ends. `report(kind, *args)` tells the ledger what this worker learned (a
    pause, used and unused send times); it must not block.
    """

    def __init__(self, lease: Callable[[int, float, float | None, float], Awaitable[Any]], report: Callable[..., None]):
        self._lease, self._report = lease, report
        self._times: collections.deque[float] = collections.deque()
        self._use_by = 0.05
        self._waiting = 0
        self._lock: asyncio.Lock | None = None
        self.leases = 0  # calls to the ledger: the point is to make few
        self.voided = 0  # send times this worker could not use in time (handed back)
        # How late this event loop woke for a send time: its lag, which a request also meets on its way out.
        self._lags: collections.deque[float] = collections.deque(maxlen=64)
        # Time between two hand-outs when the second was already due: this client's cost per send.
        self._intervals: collections.deque[float] = collections.deque(maxlen=32)
        self._last_handout = float("-inf")
        self._used: list[tuple[float, float]] = []  # (send time, when handed out), told the ledger with the next lease

    @property
    def send_interval(self) -> float:
        """The spacing this worker can keep up with: a high percentile of its cost per send, plus a margin."""
        if not self._intervals:
            return 0.0
        ordered = sorted(self._intervals)
        return min(1.0, 1.2 * ordered[int(0.8 * (len(ordered) - 1))])

    @property
    def send_delay(self) -> float | None:
        """How long after its send time a request may leave: the CPU it costs before it is written
        (about one send interval) plus the loop's recent worst lag; None until measured. Not the
        reply's latency, which a provider's generation time dominates."""
        if not self._intervals and not self._lags:
            return None
        return self.send_interval + max(self._lags, default=0.0)

    def pause_until(self, moment: float) -> None:
        wall = moment - time.monotonic() + time.time()
        dropped = []
        while self._times and self._times[0] < wall:
            dropped.append(self._times.popleft())
        self._report("pause_until", wall)
        self._hand_back(dropped)

    def _hand_back(self, times: list[float]) -> None:
        if times:
            self.voided += len(times)
            self._report("unused", times)

    async def acquire(self, tokens: float = 0.0) -> Slot:
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._lock:  # FIFO, like RequestWindow
                while True:
                    void = []
                    while self._times and self._times[0] + self._use_by < time.time():
                        void.append(self._times.popleft())  # too late to use safely
                    self._hand_back(void)
                    if not self._times:
                        await asyncio.sleep(0)  # one loop turn: callers starting together ask as one
                        if self._used:  # before the lease: the ledger places the next times knowing these
                            self._report("used", self._used)
                            self._used = []
                        lease = await self._lease(self._waiting, tokens, self.send_delay, self.send_interval)
                        self.leases += 1
                        self._times.extend(lease.times)
                        self._use_by = lease.use_by
                        if not lease.times:
                            await asyncio.sleep(max(0.0, lease.retry_at - time.time()))
                        continue
                    at = self._times.popleft()
                    slept = at > time.time()
                    if slept:
                        await asyncio.sleep(at - time.time())
                    now = time.time()
                    if slept:
                        self._lags.append(max(0.0, now - at))
                    if now <= at + self._use_by:
                        if at <= self._last_handout:
                            self._intervals.append(now - self._last_handout)
                        self._last_handout = now
                        self._used.append((at, now))
                        return Slot(time.monotonic())
                    self._hand_back([at])
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

    def pause_until(self, moment: float) -> None:
        """No request leaves before `moment` (time.monotonic()), e.g. after a 429's Retry-After."""
        if self.requests is not None:
            self.requests.pause_until(moment)

    def observe_headers(self, headers: Mapping[str, str], sent_at: float) -> None:
        """Pause until the reset when a reply's rate-limit headers say nothing remains.

        The provider measured them when the request arrived, about `sent_at` (time.monotonic()).
        """
        if self.requests is None or not headers:
            return
        wall_sent = time.time() - (time.monotonic() - sent_at)
        for remaining_name, reset_name in EXHAUSTION_HEADERS:
            remaining = _header(headers, remaining_name)
            if remaining is None or str(remaining).strip() not in ("0", "0.0"):
                continue
            wait = parse_duration(_header(headers, reset_name), now=wall_sent)
            if wait:
                self.requests.pause_until(sent_at + wait)


# (remaining, reset) header pairs: OpenAI and Azure OpenAI, then Anthropic.
EXHAUSTION_HEADERS = [
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    *((f"anthropic-ratelimit-{kind}-remaining", f"anthropic-ratelimit-{kind}-reset")
      for kind in ("requests", "tokens", "input-tokens", "output-tokens"))]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # litellm passes provider headers through as-is and also prefixed with "llm_provider-".
    for key in (name, f"llm_provider-{name}"):
        if key in headers:
            return headers[key]
    lowered = {str(k).lower(): v for k, v in headers.items()}
    return lowered.get(name) or lowered.get(f"llm_provider-{name}")

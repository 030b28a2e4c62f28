"""A cluster-wide rate budget handed out as leases of send times (no Ray in here).

One ledger per provider endpoint. A worker asks for a lease of n requests and gets n send times;
it sends each request at its time, or, if it is more than `use_by` seconds late, drops it and asks
again. The ledger places send times so that any interval of `window + use_by + slack` seconds holds
at most `capacity` of them: whatever the lateness within `use_by`, any `window` seconds of actual
sends then hold at most `capacity`, however many workers on however many nodes share the budget.
`slack` covers the time between a send and its arrival at the provider; it grows to the largest
such delay a worker reports (a loaded node sends late), so the guarantee holds under load too.

The ledger is not on the path of every call: one lease serves many requests. Leases reach only
`horizon` seconds ahead, so a worker cannot hoard the budget, and `release(holder)` gives back the
unused future send times of a worker that died or finished.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

HISTORY_S = 60.0
DELAY_MEMORY_S = 30.0  # a worker's reported send delay counts this long


@dataclass
class Lease:
    times: list[float]  # wall-clock send times (time.time()), ascending
    retry_at: float  # when to ask again if `times` is empty or used up
    use_by: float  # a send time not used within this many seconds is void


@dataclass
class _Grant:
    at: float
    holder: str
    tokens: float


@dataclass
class RateLedger:
    """Requests per window (`capacity` per `window` s) and tokens per minute for one endpoint."""

    capacity: int
    window: float
    tpm: float | None = None
    use_by: float = 0.05
    slack: float = 0.1
    horizon: float = 2.0
    _grants: list[_Grant] = field(default_factory=list)  # ascending by time
    _paused_until: float = 0.0
    _delays: dict[str, tuple[float, float]] = field(default_factory=dict)  # holder -> (delay, reported at)

    @classmethod
    def per_minute(cls, rpm: float | None, tpm: float | None = None, **kwargs) -> "RateLedger":
        """Start by pacing rpm evenly (one request per 60/rpm s) until the provider reveals its window."""
        if rpm is None:
            return cls(capacity=10**9, window=1e-9, tpm=tpm, **kwargs)
        return cls(capacity=1, window=60.0 / rpm, tpm=tpm, **kwargs)

    @property
    def span(self) -> float:
        if self.capacity == 1:  # even pacing: a late send only shifts one request a little
            return self.window
        reported = max((delay for delay, _ in self._delays.values()), default=0.0)
        return self.window + self.use_by + min(max(self.slack, reported), self.window)

    def resize(self, capacity: int, window: float) -> None:
        """The provider's real window became known (from rate-limit headers)."""
        self.capacity, self.window = capacity, window

    def pause_until(self, moment: float) -> None:
        """No new send time before `moment` (a 429's Retry-After). Send times already leased stay
        leased: the worker that saw the 429 drops its own, the others learn from theirs."""
        self._paused_until = max(self._paused_until, moment)

    def release(self, holder: str, now: float) -> int:
        """Give back every send time of `holder` not yet due; returns how many."""
        before = len(self._grants)
        self._grants = [g for g in self._grants if not (g.holder == holder and g.at > now)]
        self._delays.pop(holder, None)
        return before - len(self._grants)

    def lease(self, holder: str, count: int, now: float, tokens_per_request: float = 0.0,
              send_delay: float = 0.0) -> Lease:
        """Up to `count` send times from `now` on, none beyond `now + horizon`.

        `send_delay` is the holder's recent worst delay between a send time and the provider seeing it.
        """
        self._forget(now)
        self._delays[holder] = (send_delay, now)
        times: list[float] = []
        tokens = min(tokens_per_request, self.tpm / 60.0) if self.tpm else 0.0
        for _ in range(count):
            at = self._earliest(max(now, self._paused_until), tokens)
            if at > now + self.horizon:
                break
            self._grants.append(_Grant(at, holder, tokens))
            times.append(at)
        retry_at = times[-1] if times else self._earliest(max(now, self._paused_until), tokens) - self.horizon
        return Lease(times=times, retry_at=max(retry_at, now + 0.01), use_by=self.use_by)

    def granted_between(self, start: float, end: float) -> int:
        times = [g.at for g in self._grants]
        return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)

    def _forget(self, now: float) -> None:
        self._delays = {h: d for h, d in self._delays.items() if d[1] >= now - DELAY_MEMORY_S}
        if self._grants and self._grants[0].at < now - HISTORY_S:
            self._grants = [g for g in self._grants if g.at >= now - HISTORY_S]

    def _earliest(self, not_before: float, tokens: float) -> float:
        """The earliest send time after every grant so far that keeps both windows within budget."""
        at = max(not_before, self._grants[-1].at if self._grants else not_before)
        if len(self._grants) >= self.capacity:
            at = max(at, self._grants[-self.capacity].at + self.span)
        if self.tpm and tokens:
            per_second = self.tpm / 60.0
            while True:  # tokens in the last second, paced per second like a per-minute budget must be
                recent = [g for g in self._grants[-512:] if g.at > at - 1.0]
                spent = sum(g.tokens for g in recent)
                if spent + tokens <= per_second or not recent:
                    break
                at = recent[0].at + 1.0 + 1e-6
        return at

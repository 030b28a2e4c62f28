"""A cluster-wide rate budget handed out as leases of send times (no Ray in here).

One ledger per provider endpoint. A worker asks for a lease of n requests and gets n send times;
it sends each request at its time, or, if it is more than `use_by` seconds late, drops it and asks
again. Each send time reaches the provider at most `late` after it: `use_by` plus the send delay
its worker reported when leasing it (at least `slack`; COLD_DELAY before the worker has measured
one: a fresh client's first calls are slow). The ledger places a send time `window` after the
latest possible arrival of the one `capacity` places before it, so any `window` seconds of actual
arrivals hold at most `capacity`, however many workers on however many nodes share the budget,
and a loaded node (which reports a longer delay) costs the budget a little time, never a refusal.

Under even pacing (a per-minute limit: `capacity` 1 per `window`), lateness is not spaced for: a
request a little late only shifts one arrival a little. A cold holder (one that has measured no
delay yet: a worker just started, on a machine busy starting others) may send its first request
half a second late, into the windows of the send times after it; it gets one send time at a time,
and the ledger leaves one send time empty after that one's latest arrival (a debt): any window that
holds the late arrival but not its send time holds that gap instead. A gap for every send time of a
merely loaded worker would cost more budget than the rare refusal it saves (the README's overnight
case measures both).

A worker cannot start requests infinitely fast (an LLM client spends milliseconds of CPU on each),
so one holder's send times are spaced by the dispatch interval it reports: a burst of 60 due at
one instant would mostly go void. Send times a worker still could not use are handed back
(`unused`) and leased again, so a slow moment costs a little time, never budget. Send times it did
use are reported with the moment it used them (`used`): the window after each then starts from its
real lateness instead of the whole `use_by`.

The ledger is not on the path of every call: one lease serves many requests. Leases reach only
`horizon` seconds ahead, so a worker cannot hoard the budget, and `release(holder)` gives back the
unused future send times of a worker that died or finished.

Runs of a sweep share one ledger per endpoint. A holder is named `run/worker`; while several runs
lease, each may hold at most an equal share of the send times leased ahead (max-min fairness: a run
that asks for less keeps its little, the rest is shared), so a run with many workers or a fast
workflow cannot starve the others. Alone, a run takes everything.
"""
from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from dataclasses import dataclass, field

HISTORY_S = 60.0
PACING_HORIZON_S = 0.5  # under even pacing, leases reach only this far: few stale paced grants
COLD_DELAY = 0.5  # assumed send delay of a worker that has not measured its own yet (a first call is slow)
MAX_DELAY = 1.0  # a reported send delay is capped here (a worker later than this breaks the guarantee)
PACING_MARGIN = 0.006  # send times spaced this much wider than the rpm: 36 ms over a 6 s window
ACTIVE_S = 5.0  # a run that leased within this long counts as sharing the budget
DEBT_S = 5.0  # a debt the ledger has not met this long after it fell due is dropped: the budget was idle
SKIPPED = ""  # the holder of a send time left empty to pay a debt


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
    late: float = 0.0  # how long after `at` it may reach the provider
    sent: bool = False  # its holder reported when it handed it to a request


@dataclass
class RateLedger:
    """Requests per window (`capacity` per `window` s) and tokens per minute for one endpoint."""

    capacity: int
    window: float
    tpm: float | None = None
    use_by: float = 0.05
    slack: float = 0.02  # the least send delay assumed; workers report their own
    horizon: float = 2.0
    _grants: list[_Grant] = field(default_factory=list)  # ascending by time
    _paused_until: float = 0.0
    _last_at: dict[str, float] = field(default_factory=dict)  # per holder, its latest send time
    _active: dict[str, float] = field(default_factory=dict)  # per run, when it last leased
    _debts: list[float] = field(default_factory=list)  # even pacing: a send time after each of these stays empty

    @classmethod
    def per_minute(cls, rpm: float | None, tpm: float | None = None, **kwargs) -> "RateLedger":
        """Pace rpm evenly: one request per 60/rpm s, widened by PACING_MARGIN. Send times are met a
        few milliseconds late, unevenly, so exact pacing would put one request too many in a
        provider's short enforcement window now and then (1.6% refused in 3,000 calls over
        60-per-6-s windows)."""
        if rpm is None:
            return cls(capacity=10**9, window=1e-9, tpm=tpm, **kwargs)
        return cls(capacity=1, window=60.0 / rpm * (1 + PACING_MARGIN), tpm=tpm, **kwargs)

    @property
    def span(self) -> float:
        """The least time between a send time and the one `capacity` places after it."""
        if self.capacity == 1:  # even pacing: a late send only shifts one request a little
            return self.window
        return self.window + self.use_by + self.slack

    def pause_until(self, moment: float) -> None:
        """No new send time before `moment` (a 429's Retry-After). Send times already leased stay
        leased: the worker that saw the 429 drops its own, the others learn from theirs."""
        self._paused_until = max(self._paused_until, moment)

    def release(self, holder: str, now: float) -> int:
        """Give back every send time of `holder` not yet due; returns how many."""
        before = len(self._grants)
        self._grants = [g for g in self._grants if not (g.holder == holder and g.at > now)]
        self._last_at.pop(holder, None)
        return before - len(self._grants)

    def unused(self, holder: str, times: list[float]) -> None:
        """Send times `holder` let pass without sending: they count against no window."""
        void = Counter(times)  # one grant per time given back: a burst shares one send time
        kept = []
        for grant in self._grants:
            if grant.holder == holder and void[grant.at] > 0:
                void[grant.at] -= 1
            else:
                kept.append(grant)
        self._grants = kept
        self._last_at[holder] = max((g.at for g in self._grants if g.holder == holder), default=float("-inf"))

    def used(self, holder: str, sent: list[tuple[float, float]]) -> None:
        """Send times `holder` used, each with the moment it handed it to a request. Such a grant can
        reach the provider only its real lateness (not the whole `use_by`) plus its holder's delay
        after its time, so the send times a window after it may start that much sooner."""
        times = [g.at for g in self._grants]
        for at, when in sent:
            index = bisect.bisect_left(times, at)
            while index < len(times) and times[index] == at:
                grant = self._grants[index]
                if grant.holder == holder and not grant.sent:
                    grant.late -= self.use_by - min(max(0.0, when - at), self.use_by)
                    grant.sent = True
                    break
                index += 1

    def lease(self, holder: str, count: int, now: float, tokens_per_request: float = 0.0,
              send_delay: float | None = None, send_interval: float = 0.0) -> Lease:
        """Up to `count` send times from `now` on, none beyond `now + horizon`.

        `send_delay` is the holder's recent worst delay between a send time and its request leaving
        (None: not measured yet); `send_interval` the least time it needs between two sends.
        """
        self._forget(now)
        run = run_of(holder)
        self._active[run] = now
        share = self._fair_share(now) - sum(1 for g in self._grants if g.at > now and run_of(g.holder) == run)
        count = min(count, max(share, 0))
        cold = send_delay is None and self.capacity == 1  # under even pacing, a holder that measured no delay yet
        if cold:
            count = min(count, 1)  # its first request measures its delay: one gap per cold holder, not a lease's worth
        delay = COLD_DELAY if send_delay is None else min(max(self.slack, send_delay), MAX_DELAY)
        times: list[float] = []
        tokens = min(tokens_per_request, self.tpm / 60.0) if self.tpm else 0.0
        horizon = min(self.horizon, PACING_HORIZON_S) if self.capacity == 1 else self.horizon
        while len(times) < count:
            at = self._earliest(max(now, self._paused_until, self._last_at.get(holder, -1e18) + send_interval),
                                tokens)
            if at > now + horizon:
                break
            if self.capacity == 1 and self._debts and self._debts[0] <= at:
                heapq.heappop(self._debts)  # an earlier late request may arrive in this send time's place
                self._grants.append(_Grant(at, SKIPPED, 0.0))
                continue
            self._grants.append(_Grant(at, holder, tokens, late=self.use_by + delay))
            times.append(at)
            self._last_at[holder] = at
            if cold:
                self._owe(at + self.use_by + delay)
        if times:
            retry_at = times[-1]
        elif share <= 0:  # the run holds its share: ask again when the first of its times is due
            retry_at = min(g.at for g in self._grants if g.at > now and run_of(g.holder) == run)
        else:
            retry_at = self._earliest(max(now, self._paused_until), tokens) - horizon
        return Lease(times=times, retry_at=max(retry_at, now + 0.01), use_by=self.use_by)

    def _fair_share(self, now: float) -> int:
        """Future send times one run may hold: all of them alone, an equal part of a horizon's worth
        (never less than one request) while other runs lease too."""
        runs = [r for r, at in self._active.items() if at > now - ACTIVE_S]
        if len(runs) <= 1:
            return 10**9
        horizon = min(self.horizon, PACING_HORIZON_S) if self.capacity == 1 else self.horizon
        per_horizon = max(self.capacity, math.ceil(self.capacity * horizon / self.window))
        return max(1, math.ceil(per_horizon / len(runs)))

    def _latest_arrival(self, index: int) -> float:
        """The latest any grant up to `index` may reach the provider. Grants before `index` are
        earlier, so only those within MAX_DELAY + use_by of it can arrive later than it does."""
        if self.capacity == 1:
            return self._grants[index].at
        oldest = self._grants[index].at - MAX_DELAY - self.use_by
        latest = self._grants[index].at + self._grants[index].late
        for earlier in range(index - 1, -1, -1):
            grant = self._grants[earlier]
            if grant.at < oldest:
                break
            latest = max(latest, grant.at + grant.late)
        return latest

    def _owe(self, latest_arrival: float) -> None:
        """Leave the first send time from `latest_arrival` on empty."""
        heapq.heappush(self._debts, latest_arrival)

    def _forget(self, now: float) -> None:
        while self._debts and self._debts[0] < now - DEBT_S:
            heapq.heappop(self._debts)
        if self._grants and self._grants[0].at < now - HISTORY_S:
            self._grants = [g for g in self._grants if g.at >= now - HISTORY_S]

    def _earliest(self, not_before: float, tokens: float) -> float:
        """The earliest send time after every grant so far that keeps both windows within budget."""
        at = max(not_before, self._grants[-1].at if self._grants else not_before)
        if len(self._grants) >= self.capacity:
            at = max(at, self._latest_arrival(len(self._grants) - self.capacity) + self.window)
        if self.tpm and tokens:
            per_second = self.tpm / 60.0
            while True:  # tokens in the last second, paced per second like a per-minute budget must be
                recent = [g for g in self._grants[-512:] if g.at > at - 1.0]
                spent = sum(g.tokens for g in recent)
                if spent + tokens <= per_second or not recent:
                    break
                at = recent[0].at + 1.0 + 1e-6
        return at


def run_of(holder: str) -> str:
    """The run a holder (`run/worker`) belongs to; a bare name is a run of its own."""
    return holder.split("/", 1)[0]

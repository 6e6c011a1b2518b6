"""Login rate limits per account name and per client address, in memory.

A failed login is remembered under both keys for ``window_s``; once a key holds its limit of
failures, logins for it are refused (429) *without checking the password* until the oldest
failure ages out — so guessing is slow, and a flood of attempts costs no password hashing. A
success clears the account's failures (not the address's). Memory is bounded: at most
``max_keys`` keys, the least recently failed dropped first.

Each dashboard process keeps its own counts: with N replicas behind a balancer a guesser gets at
most N times the limit, still a handful per quarter hour.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(self, per_account: int = 5, per_address: int = 20, window_s: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"account": per_account, "address": per_address}
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def wait_s(self, account: str, address: str) -> float:
        """Seconds until this account and address may try again (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [self._wait(("account", account), now), self._wait(("address", address), now)]
        return max(waits)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < self.limits[key[0]]:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for key in (("account", account), ("address", address)):
                times = self._failures.pop(key, None) or deque(maxlen=self.limits[key[0]])
                times.append(now)
                self._failures[key] = times  # re-inserted: most recently failed last
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop(("account", account), None)

"""Bounded memos the analysis keeps from call to call, keyed by exact content.

An agent's call t re-sends the messages of calls 1..t-1 unchanged. Whatever the
profiler derives from one message alone (its token counts, fingerprint,
conversation text, paragraphs) is remembered under a key of the message's exact
content, so a warm call pays for its new messages plus one cheap pass over the
old ones.

`key_of` is `marshal.dumps(value, 2)`: C speed (about a third of the JSON parse
that produced the value), and exact: marshal tells every JSON type apart (True
from 1, 1 from 1.0, -0.0 from 0.0, a dict from a list of pairs) and keeps key
order, so equal keys mean a walker would do exactly the same thing. Version 2
writes no back-references (whose use depends on reference counts) and does not
mark interned strings, so the same content gets the same key. Exact bytes as
keys, not digests: a dict compares them on a hit, so no collision can return
another message's result.

Every memo is an LRU bounded by weight (about the bytes it keeps alive: keys and
the strings its values hold) and by entries, because the proxy runs for weeks.
"""

from __future__ import annotations

import marshal
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

ENTRY_OVERHEAD = 256  # bytes an entry costs beyond its strings (tuples, dict slots)
_all: list[LRU] = []


def key_of(value: Any) -> bytes | None:
    """The exact-content key of a JSON-shaped value; None for what marshal cannot
    write (objects that are not plain JSON types, nesting deeper than marshal allows)."""
    try:
        return marshal.dumps(value, 2)
    except (ValueError, TypeError):
        return None


def keys_of(values: list) -> list[bytes] | None:
    """`key_of` for each of `values` (one call, not one a value: lists are long), or
    None when any of them has no key."""
    try:
        return [marshal.dumps(v, 2) for v in values]
    except (ValueError, TypeError):
        return None


class LRU:
    """A thread-safe LRU bounded by total weight and by entry count.

    An entry heavier than an eighth of the budget is not kept: one huge message
    must not flush every run's history.
    """

    def __init__(self, max_weight: int, max_items: int) -> None:
        self.max_weight, self.max_items = max_weight, max_items
        self.data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.weight = 0
        self.lock = threading.Lock()
        self.hits = self.misses = 0
        _all.append(self)

    def get(self, key: Any) -> Any:
        # No lock: each OrderedDict call is atomic under the GIL, and a key evicted by
        # another thread between the two only fails the move (the counters may miss one).
        entry = self.data.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        try:
            self.data.move_to_end(key)
        except KeyError:
            pass
        return entry[0]

    def put(self, key: Any, value: Any, weight: int = 1) -> bool:
        """Keep `value` under `key`; False when it is too heavy to keep."""
        if weight > self.max_weight // 8:
            return False
        with self.lock:
            old = self.data.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self.data[key] = (value, weight)
            self.weight += weight
            while self.weight > self.max_weight or len(self.data) > self.max_items:
                self.weight -= self.data.popitem(last=False)[1][1]
        return True

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.weight = self.hits = self.misses = 0


class Lists(LRU):
    """Values computed over a whole list of items (by their keys), found again for the
    longest prefix of a new list: an agent's call t carries call t-1's list plus a few
    items, so only those few are new work.

    Entries are indexed by (context, length, last key) and checked against every key.
    A list extending a stored one should be kept with the stored keys plus its own
    (`longest` returns them): the objects are shared, so a run of n calls does not
    hold n copies of its history's keys.

    Lists are also kept up to TAIL items short of their end (`short_of_end`):
    Anthropic clients move their cache_control markers (on the last user turn or
    two) every call, so the messages that lose one change key, and the next call's
    list extends a shorter one."""

    TAIL = 3

    def short_of_end(self, start: int, end: int) -> range:
        """Where, besides `end`, to keep a list whose items from `start` on are new."""
        return range(max(start + 1, end - self.TAIL), end)

    def longest(
        self, ctx: Any, keys: list, accept: Callable[[Any], bool] | None = None
    ) -> tuple[int, tuple, Any]:
        """`(n, stored keys, value)` for the longest stored `keys[:n]`, or `(0, (), None)`."""
        for n in range(len(keys), 0, -1):
            found = self.get((ctx, n, keys[n - 1]))
            if found is not None and list(found[0]) == keys[:n]:
                if accept is None or accept(found[1]):
                    return n, found[0], found[1]
        return 0, (), None

    def keep(self, ctx: Any, keys: tuple, value: Any, weight: int) -> None:
        """Store `value` for the list `keys`; `weight` is what the value keeps alive."""
        if keys:
            self.put((ctx, len(keys), keys[-1]), (keys, value), weight + 8 * len(keys))


def clear_all() -> None:
    """Empty every memo (a cold start, for benchmarks and tests)."""
    for lru in _all:
        lru.clear()

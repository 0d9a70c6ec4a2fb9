"""Replaying what walking a message did, instead of walking it again.

Walkers hand a request's messages and tool definitions, as lists, to
`Builder.units` (a lone part to `Builder.unit`). The first walk of a unit runs on
a recording sub-Builder; what it did (a `Unit`) is kept in a memo under the
unit's exact content (memo.py) and applied to the real Builder. A later call that carries the
same unit with the same counting context (encoding, media family, model) applies
the Unit again without walking, tokenizing or fingerprinting anything.

Two things make a replay exact:
- order: a Unit's adds are summed per (component, child) in the order they first
  occurred, so components enter the counts where walking would have put them
  (reconciliation breaks ties by that order);
- context: a tool result is labelled by an earlier message's call id, so a Unit
  keeps the call ids it looked up outside itself and what it found, and is walked
  again when they differ.

`units` also keeps one Unit for each whole list (memo.Lists): an agent's call t is
call t-1's messages plus a few, so the longest list seen before is replayed in one
step and only the new messages go one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import memo

if TYPE_CHECKING:
    from .collect import Builder

Walk = Callable[..., None]


@dataclass(slots=True, frozen=True)
class Unit:
    """What walking one unit (or a list of them) did to a Builder."""

    adds: tuple[tuple[str, str | None, int], ...]  # (component, child, tokens)
    blocks: tuple[tuple[str, str], ...]
    tools: tuple[str, ...]
    hashes: tuple[str, ...]
    names: tuple[tuple[str, str], ...]  # call ids it named
    reads: tuple[tuple[Any, str | None], ...]  # call ids it looked up, and what it found
    approx: bool
    server_side: bool
    home: str | None


# message key -> (the key, {(walk, args, context): Unit}). Weighed by the key and the
# block texts it keeps alive, about twice the text of the histories in flight.
_units = memo.LRU(max_weight=32 << 20, max_items=200_000)
# (walk, args, context) and a message list's keys -> its Unit. Weighed by its tuples:
# the keys are `_units`' own objects.
_lists = memo.Lists(max_weight=16 << 20, max_items=20_000)


class Names(dict):
    """A recording Builder's call-id -> tool-name map: its own names, then the outer
    ones, whose lookups it records."""

    def __init__(self, outer: dict[str, str]) -> None:
        super().__init__()
        self.outer, self.reads = outer, {}

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        found = self.outer.get(key)
        self.reads.setdefault(key, found)
        return default if found is None else found


def unit(b: Builder, walk: Walk, value: Any, args: tuple) -> None:
    key = memo.key_of(value)
    if key is None:
        return walk(b, value, *args)
    b.keys[id(value)] = (value, key)
    _unit(b, walk, value, args, key)


def _unit(b: Builder, walk: Walk, value: Any, args: tuple, key: bytes) -> bytes | None:
    """Replay or walk one unit; return the memo's own copy of its key, which the lists
    that contain it share rather than holding one more copy each (None when the memo
    did not keep it: too heavy)."""
    ctx = (walk, args, b.ctx)
    entry = _units.get(key)
    done = entry[1].get(ctx) if entry is not None else None
    if done is not None and _valid(b, done):
        apply(b, done)
        return entry[0]
    rec = _walk(b, walk, value, args)
    done = finish(rec)
    if entry is not None:
        key = entry[0]
    units = {**(entry[1] if entry is not None and len(entry[1]) < 4 else {}), ctx: done}
    weight = len(key) + memo.ENTRY_OVERHEAD
    weight += sum(len(t) for u in units.values() for _, t in u.blocks)
    kept = _units.put(key, (key, units), weight)
    apply(b, done)
    return key if kept else None


def _walk(b: Builder, walk: Walk, value: Any, args: tuple) -> Builder:
    rec = b.recorder()
    try:
        walk(rec, value, *args)
    except BaseException:
        apply(b, finish(rec))  # what was counted before the failure, as walking would
        raise
    return rec


def units(b: Builder, walk: Walk, values: Sequence[Any], args: tuple) -> None:
    keys = memo.keys_of(values) if len(values) > 1 else None
    if keys is None:
        for v in values:
            unit(b, walk, v, args)
        return
    ctx = (walk, args, b.ctx)
    start, kept, prefix = _lists.longest(ctx, keys, lambda u: _valid(b, u))
    if start == len(keys):  # the same list again (a template's tools, a retry)
        b.keys[id(values)] = (values, kept)  # the list's keys: conversation.py reads it next
        return apply(b, prefix)
    rec = b.recorder()
    if prefix is not None:
        apply(rec, prefix)
        rec.names.reads.update(prefix.reads)
    marks, canon, whole = _lists.short_of_end(start, len(keys)), list(kept), True
    try:
        for i in range(start, len(keys)):
            if i in marks and whole:
                _keep(ctx, tuple(canon), finish(rec))
            own = _unit(rec, walk, values[i], args, keys[i])
            # A list must not be the only holder of a key too heavy for the unit memo.
            whole = whole and own is not None
            canon.append(keys[i] if own is None else own)
    except BaseException:
        apply(b, finish(rec))
        raise
    done = finish(rec)
    if whole:
        _keep(ctx, tuple(canon), done)
    b.keys[id(values)] = (values, canon)
    apply(b, done)


def _keep(ctx: tuple, keys: tuple, done: Unit) -> None:
    """Keep `done` for the list `keys` (the memo's copies, shared with `_units`)."""
    weight = 8 * (len(done.blocks) + len(done.hashes) + 2 * len(done.names))
    _lists.keep(ctx, keys, done, weight + memo.ENTRY_OVERHEAD)


def _valid(b: Builder, u: Unit) -> bool:
    names = b.names
    return all(names.get(k) == v for k, v in u.reads)


def finish(rec: Builder) -> Unit:
    assert isinstance(rec.names, Names) and rec.log is not None
    return Unit(
        adds=tuple((comp, child, n) for (comp, child), n in rec.log.items()),
        blocks=tuple(rec.blocks),
        tools=tuple(rec.tools),
        hashes=tuple(rec.hashes),
        names=tuple(rec.names.items()),
        reads=tuple(rec.names.reads.items()),
        approx=rec.approx,
        server_side=rec.server_side,
        home=rec.last_home,
    )


def apply(b: Builder, u: Unit) -> None:
    """Do to `b` what the walk `u` recorded did."""
    if b._msg is None and b.log is None:  # between messages, not recording: add() inlined
        raw, kids = b.raw, b.kids
        for comp, child, n in u.adds:
            raw[comp] = raw.get(comp, 0) + n
            if child is not None:
                sub = kids.get(comp)
                if sub is None:
                    sub = kids[comp] = {}
                sub[child] = sub.get(child, 0) + n
    else:
        for comp, child, n in u.adds:
            b.add(comp, n, child)
    if u.blocks:
        b.blocks += u.blocks
    if u.tools:
        b.tools += u.tools
    if u.hashes:
        b.hashes += u.hashes
    if u.names:
        b.names.update(u.names)
    if u.approx:
        b.approx = True
    if u.server_side:
        b.server_side = True
    if u.home is not None:
        b.last_home = u.home

"""The one bounded cache type: a mapping that forgets the least recently used entry first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most `size` entries (0 keeps none); not thread-safe: callers hold their lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V:
        """The value (raises `KeyError` when absent), now the most recently used."""
        self._items.move_to_end(key)
        return self._items[key]

    def find(self, key: K) -> V | None:
        """The value, now the most recently used, or None when absent."""
        if key not in self._items:
            return None
        return self.get(key)

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Store `value`; returns the entries forgotten to make room."""
        self._items[key] = value
        self._items.move_to_end(key)
        dropped = []
        while len(self._items) > self.size:
            dropped.append(self._items.popitem(last=False))
        return dropped

    def values(self) -> list[V]:
        return list(self._items.values())

    def drop_where(self, stale: Callable[[V], bool]) -> None:
        """Forget every entry whose value is `stale` (without touching the others' order)."""
        for key in [k for k, v in self._items.items() if stale(v)]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()

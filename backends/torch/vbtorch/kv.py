"""KV-cache reservation: named policies and a first-fit allocator of contiguous regions.

The KV cache is one flat token axis of ``capacity`` slots (the engine's tensor is
``[layers, 2, capacity, kv_heads, head_dim]``). Each admitted request owns one
contiguous region ``[start, start + size)`` of it until it finishes or is
cancelled. Free space is a sorted list of holes, so external fragmentation is
real: a request may wait although the sum of the holes would fit it, which is
exactly the waste the vLLM paper attributes to contiguous reservation.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

POLICIES = ("max", "pow2", "oracle")


def reservation(policy: str, prompt_len: int, max_tokens: int, max_model_len: int) -> int:
    """Tokens to reserve for a request under ``policy``.

    max: ``max_model_len`` (prompt + the model's maximum output);
    pow2: ``prompt_len + max_tokens`` rounded up to a power of two, capped at max_model_len;
    oracle: exactly ``prompt_len + max_tokens``.
    """
    need = prompt_len + max_tokens
    if policy == "oracle":
        return need
    if policy == "pow2":
        p = 1
        while p < need:
            p <<= 1
        return min(p, max(max_model_len, need))
    if policy == "max":
        return max(max_model_len, need)
    raise ValueError(f"kv: unknown policy {policy!r} (want one of {', '.join(POLICIES)})")


@dataclass(frozen=True)
class Region:
    """Region is a contiguous range of KV token slots owned by one request."""

    start: int
    size: int


class Allocator:
    """Allocator hands out contiguous regions of a token axis of ``capacity`` slots, first fit.

    ``align`` rounds every region's start and size up to a multiple (1 for SDPA;
    the flash-attn paged kernel needs 256).
    """

    def __init__(self, capacity: int, align: int = 1):
        if capacity <= 0:
            raise ValueError(f"kv: capacity must be positive, got {capacity}")
        self.align = max(1, int(align))
        self.capacity = capacity - capacity % self.align
        if self.capacity <= 0:
            raise ValueError(f"kv: capacity {capacity} is smaller than the alignment {self.align}")
        self._holes: list[tuple[int, int]] = [(0, self.capacity)]  # sorted (start, size)
        self.reserved = 0
        self.regions = 0

    def rounded(self, size: int) -> int:
        """Rounded is ``size`` rounded up to the allocator's alignment."""
        a = self.align
        return (size + a - 1) // a * a

    def fits_ever(self, size: int) -> bool:
        """Fits_ever says whether a region of ``size`` could be had with the cache empty."""
        return self.rounded(size) <= self.capacity

    def alloc(self, size: int) -> Region | None:
        """Alloc reserves ``size`` slots in the first hole that fits, or returns None."""
        size = self.rounded(size)
        for i, (start, hsize) in enumerate(self._holes):
            if hsize >= size:
                if hsize == size:
                    del self._holes[i]
                else:
                    self._holes[i] = (start + size, hsize - size)
                self.reserved += size
                self.regions += 1
                return Region(start, size)
        return None

    def free(self, r: Region) -> None:
        """Free returns a region to the free list, merging it with its neighbours."""
        i = bisect.bisect_left(self._holes, (r.start, 0))
        start, size = r.start, r.size
        if i < len(self._holes) and self._holes[i][0] == start + size:  # merge right
            size += self._holes[i][1]
            del self._holes[i]
        if i > 0 and self._holes[i - 1][0] + self._holes[i - 1][1] == start:  # merge left
            pstart, psize = self._holes[i - 1]
            self._holes[i - 1] = (pstart, psize + size)
        else:
            self._holes.insert(i, (start, size))
        self.reserved -= r.size
        self.regions -= 1

    def largest_hole(self) -> int:
        """Largest_hole is the biggest region that could be allocated now."""
        return max((s for _, s in self._holes), default=0)

    def usage(self) -> float:
        """Usage is the reserved fraction of the capacity (0..1)."""
        return self.reserved / self.capacity

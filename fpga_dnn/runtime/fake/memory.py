"""DDR as a DMA sees it, with the CPU's data cache in front: the fake board's memory.

Every allocation has two copies of its bytes: ``host`` (what the CPU reads and writes, through
its cache) and ``dram`` (what the DMA reads and writes). :meth:`FakeMemory.flush` copies host →
DRAM and :meth:`FakeMemory.invalidate` DRAM → host, exactly the cache maintenance a
non-coherent Zynq needs; a driver that forgets one of them sends stale inputs or reads stale
outputs here, as it would on a board.

Physical addresses are page aligned and handed out upwards without reuse while the window
lasts, so a DMA aimed at a freed buffer finds no live allocation there (the DMA model turns
that into a decode error and records it in :attr:`FakeMemory.violations`). Standard library and
numpy only.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

PAGE = 4096


@dataclass
class Allocation:
    """One contiguous buffer: ``size`` bytes at physical ``address``."""

    id: int
    address: int
    size: int
    host: np.ndarray
    dram: np.ndarray
    live: bool = True

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass
class MemoryStats:
    """Counters of cache maintenance and allocation (what tests assert on)."""

    allocations: int = 0
    frees: int = 0
    flushes: List[Tuple[int, int, int]] = field(default_factory=list)      # (allocation id, offset, bytes)
    invalidates: List[Tuple[int, int, int]] = field(default_factory=list)  # (allocation id, offset, bytes)


class FakeMemory:
    """Contiguous-memory allocator over a physical window, with per-buffer cache copies.

    base / limit: the physical window ``[base, limit)`` allocations come from (a CMA region);
        ``limit`` is also the end of DDR.
    capacity: most bytes live at once (PYNQ images reserve about 128 MiB of CMA); an allocation
        beyond it raises ``MemoryError`` like XRT's allocator.
    strict: a DMA access that is not inside one live buffer fails (the DMA model reports a
        decode error) — catches a use-after-free at once. ``False`` behaves like a board, where
        every DDR address decodes: the access goes through silently (reads see zeros, writes
        land nowhere) and is only recorded in :attr:`violations`. Addresses beyond DDR fail in
        both modes.
    """

    def __init__(self, base: int = 0x1600_0000, limit: int = 0x2000_0000, capacity: int = 128 << 20,
                 strict: bool = True):
        if not (0 <= base < limit):
            raise ValueError(f"bad physical window [{base:#x}, {limit:#x})")
        self.base, self.limit, self.capacity = base, limit, capacity
        self.strict = bool(strict)
        self._next = base
        self._next_id = 1
        self._allocs: Dict[int, Allocation] = {}
        self._starts: List[int] = []   # sorted start addresses of live allocations
        self._by_start: Dict[int, Allocation] = {}
        self.freed: Dict[int, Allocation] = {}
        self.stats = MemoryStats()
        self.violations: List[str] = []

    # -- allocation ---------------------------------------------------------------------------------
    @property
    def live_bytes(self) -> int:
        return sum(a.size for a in self._allocs.values())

    def alloc(self, nbytes: int) -> Allocation:
        """A new page-aligned allocation of at least ``nbytes`` bytes (zero-filled)."""
        if nbytes <= 0:
            raise ValueError(f"cannot allocate {nbytes} bytes")
        size = -(-nbytes // PAGE) * PAGE
        if self.live_bytes + size > self.capacity:
            raise MemoryError(f"fake CMA exhausted: {self.live_bytes} bytes live, {size} more asked, "
                              f"capacity {self.capacity}")
        address = self._next if self._next + size <= self.limit else self._first_fit(size)
        alloc = Allocation(self._next_id, address, size, np.zeros(size, np.uint8), np.zeros(size, np.uint8))
        self._next_id += 1
        self._next = max(self._next, address + size)
        self._allocs[alloc.id] = alloc
        bisect.insort(self._starts, address)
        self._by_start[address] = alloc
        self.stats.allocations += 1
        return alloc

    def _first_fit(self, size: int) -> int:
        """Reuse a freed gap once the window is used up (addresses are not reused before)."""
        pos = self.base
        for start in self._starts:
            if start - pos >= size:
                return pos
            pos = max(pos, self._by_start[start].end)
        if self.limit - pos >= size:
            return pos
        raise MemoryError(f"fake CMA window [{self.base:#x}, {self.limit:#x}) has no {size}-byte gap")

    def free(self, alloc_id: int) -> None:
        """Release an allocation (pynq calls this when the last view of a buffer dies)."""
        alloc = self._allocs.pop(alloc_id, None)
        if alloc is None:
            return
        alloc.live = False
        self._starts.remove(alloc.address)
        del self._by_start[alloc.address]
        self.freed[alloc.id] = alloc
        self.stats.frees += 1

    def get(self, alloc_id: int) -> Allocation:
        alloc = self._allocs.get(alloc_id)
        if alloc is None:
            raise KeyError(f"allocation {alloc_id} is not live")
        return alloc

    # -- lookups --------------------------------------------------------------------------------------
    def find(self, address: int, nbytes: int) -> Optional[Tuple[Allocation, int]]:
        """The live allocation holding ``[address, address + nbytes)`` and the offset in it."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        alloc = self._by_start[self._starts[i]]
        if address + nbytes <= alloc.end:
            return alloc, address - alloc.address
        return None

    def describe(self, address: int) -> str:
        """What is at ``address``: a live buffer, a freed one, or nothing (for error messages)."""
        hit = self.find(address, 1)
        if hit:
            return f"live buffer #{hit[0].id} (+{hit[1]:#x})"
        for a in self.freed.values():
            if a.address <= address < a.end:
                return f"FREED buffer #{a.id} ({a.size} bytes at {a.address:#x})"
        return "no buffer"

    # -- DMA side -------------------------------------------------------------------------------------
    def dma_read(self, address: int, nbytes: int) -> Optional[np.ndarray]:
        """The DRAM bytes of ``[address, address + nbytes)``, or ``None`` if not one live buffer."""
        hit = self.find(address, nbytes)
        if hit is None:
            self.violations.append(f"DMA read of {nbytes} bytes at {address:#x}: {self.describe(address)}")
            return None if self.strict or address + nbytes > self.limit else np.zeros(nbytes, np.uint8)
        alloc, off = hit
        return alloc.dram[off: off + nbytes]

    def dma_write(self, address: int, data: np.ndarray) -> bool:
        """Store ``data`` in DRAM at ``address``; ``False`` if that is not inside one live buffer."""
        hit = self.find(address, data.size)
        if hit is None:
            self.violations.append(f"DMA write of {data.size} bytes at {address:#x}: {self.describe(address)}")
            return not self.strict and address + data.size <= self.limit
        alloc, off = hit
        alloc.dram[off: off + data.size] = data
        return True

    # -- CPU cache maintenance ---------------------------------------------------------------------------
    def flush(self, alloc_id: int, offset: int, nbytes: int) -> None:
        """Write the CPU's view back to DRAM (before the DMA reads)."""
        self.stats.flushes.append((alloc_id, offset, nbytes))
        alloc = self._maintained(alloc_id, offset, nbytes, "flush")
        if alloc is not None:
            alloc.dram[offset: offset + nbytes] = alloc.host[offset: offset + nbytes]

    def invalidate(self, alloc_id: int, offset: int, nbytes: int) -> None:
        """Drop the CPU's view so it reads DRAM again (after the DMA wrote)."""
        self.stats.invalidates.append((alloc_id, offset, nbytes))
        alloc = self._maintained(alloc_id, offset, nbytes, "invalidate")
        if alloc is not None:
            alloc.host[offset: offset + nbytes] = alloc.dram[offset: offset + nbytes]

    def _maintained(self, alloc_id: int, offset: int, nbytes: int, what: str) -> Optional[Allocation]:
        """The live allocation a flush/invalidate names. One that was freed: an error when
        strict, else recorded in :attr:`violations` and skipped (what a board does with a
        stale buffer object depends on its XRT)."""
        alloc = self._allocs.get(alloc_id)
        if alloc is None:
            msg = f"{what} of buffer #{alloc_id}, which is {'freed' if alloc_id in self.freed else 'unknown'}"
            if self.strict:
                raise RuntimeError(msg)
            self.violations.append(msg)
            return None
        self._check_range(alloc, offset, nbytes, what)
        return alloc

    @staticmethod
    def _check_range(alloc: Allocation, offset: int, nbytes: int, what: str) -> None:
        if offset < 0 or nbytes < 0 or offset + nbytes > alloc.size:
            raise ValueError(f"{what} of [{offset}, {offset + nbytes}) outside buffer #{alloc.id} "
                             f"({alloc.size} bytes)")

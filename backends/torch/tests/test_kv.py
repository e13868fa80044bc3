"""KV reservation policies and the contiguous first-fit allocator."""

import pytest

from vbtorch.kv import Allocator, Region, reservation


@pytest.mark.parametrize(
    "policy,prompt,max_tokens,max_len,want",
    [
        ("oracle", 10, 20, 256, 30),
        ("oracle", 1, 1, 256, 2),
        ("pow2", 10, 20, 256, 32),
        ("pow2", 16, 16, 256, 32),
        ("pow2", 100, 100, 256, 256),
        ("pow2", 150, 100, 256, 256),  # capped at max_model_len
        ("max", 10, 20, 256, 256),
        ("max", 1, 1, 4096, 4096),
    ],
)
def test_reservation(policy, prompt, max_tokens, max_len, want):
    assert reservation(policy, prompt, max_tokens, max_len) == want


def test_reservation_unknown_policy():
    with pytest.raises(ValueError, match="unknown policy"):
        reservation("paged", 1, 1, 8)


def test_first_fit_and_merge():
    a = Allocator(100)
    r1, r2, r3 = a.alloc(30), a.alloc(30), a.alloc(30)
    assert (r1, r2, r3) == (Region(0, 30), Region(30, 30), Region(60, 30))
    assert a.alloc(20) is None  # only 10 left
    assert a.reserved == 90 and a.regions == 3
    a.free(r2)
    assert a.largest_hole() == 30
    assert a.alloc(40) is None  # 40 free in total (30 + 10) but not contiguous: fragmentation
    a.free(r1)
    assert a.largest_hole() == 60  # merged with its right neighbour
    assert a.alloc(60) == Region(0, 60)
    a.free(Region(0, 60))
    a.free(r3)
    assert a.largest_hole() == 100 and a.reserved == 0 and a.regions == 0
    assert a.usage() == 0.0


def test_alignment_rounds_regions():
    a = Allocator(1000, align=256)
    assert a.capacity == 768
    r = a.alloc(10)
    assert r == Region(0, 256)
    assert a.fits_ever(768) and not a.fits_ever(769)


@pytest.mark.parametrize("cap,align", [(0, 1), (-5, 1), (100, 256)])
def test_bad_capacity(cap, align):
    with pytest.raises(ValueError):
        Allocator(cap, align)

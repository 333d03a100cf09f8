"""The allocator setting our models make: large step buffers are reused, not faulted in again."""

import platform
import resource

import pytest
import torch
from conftest import build

from recbole_sasrec import base
from recbole_sasrec.allocator import keep_freed_memory

PAGES = 64 * 2**20 // resource.getpagesize()  # a 64 MiB tensor


def page_faults_of_a_64mib_tensor() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(64 * 2**20 // 4)
    t.fill_(1.0)  # touch every page
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_freed_step_buffers_are_reused_without_page_faults():
    assert keep_freed_memory()  # glibc accepted both thresholds
    faults = [page_faults_of_a_64mib_tensor() for _ in range(12)]
    # Without the setting glibc mmaps and unmaps each one: every page of every one faults. With
    # it the first few do, while the heap grows to hold one; after that none.
    assert all(f < PAGES // 20 for f in faults[6:]), faults


@pytest.mark.parametrize("model", ["SASRec", "LightSANs"])
def test_our_models_make_the_setting(model, tiny, monkeypatch):
    calls = []
    monkeypatch.setattr(base, "keep_freed_memory", lambda: calls.append(model))
    build(model, "cycle", tiny)
    assert calls == [model]

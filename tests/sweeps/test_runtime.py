"""Process-level allocator settings applied before training."""

from __future__ import annotations

import os
import platform
import sys

import pytest

from sweeps.runtime import tune_allocator

on_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt tuning needs Linux with glibc",
)


@on_glibc
def test_tune_allocator_takes_effect_on_glibc_and_enables_huge_pages(monkeypatch):
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)

    assert tune_allocator() is True

    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"


@on_glibc
def test_tune_allocator_keeps_a_setting_the_user_made(monkeypatch):
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")

    assert tune_allocator() is True

    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


@on_glibc
def test_tune_allocator_can_run_twice(monkeypatch):
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)

    assert tune_allocator() is True
    assert tune_allocator() is True

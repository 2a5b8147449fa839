"""Atomic writes leave either the complete file or nothing."""

from __future__ import annotations

import os

import pytest

from icnet_deploy.errors import IcnetDeployError
from icnet_deploy.fileio import atomic_path, atomic_write_text


def test_success_renames_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "b.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_version(tmp_path):
    target = tmp_path / "c.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IcnetDeployError, match="cannot write here"):
        atomic_write_text(blocker / "inside.txt", "x")

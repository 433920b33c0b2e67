"""Tests for rnnlm_jax.atomic: a failed write leaves the old file and no
temp file."""

import pytest

from rnnlm_jax.atomic import atomic_write, atomic_write_bytes


def test_failed_write_keeps_the_old_file(tmp_path):
  path = tmp_path / "sub" / "f.bin"
  atomic_write_bytes(path, b"old")
  assert path.read_bytes() == b"old"

  def half_then_fail(f):
    f.write(b"new, half")
    raise RuntimeError("disk full")

  with pytest.raises(RuntimeError, match="disk full"):
    atomic_write(path, half_then_fail)
  assert path.read_bytes() == b"old"
  assert [p.name for p in path.parent.iterdir()] == ["f.bin"]
  atomic_write_bytes(path, b"new")
  assert path.read_bytes() == b"new"

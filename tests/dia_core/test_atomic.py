"""dia_core.atomic: publication by rename, and a re-publication of the same bytes touching nothing."""
import os

from dia_core import atomic


def test_same_bytes_leave_the_published_file_untouched_new_bytes_replace_it(tmp_path):
    target = tmp_path / "chapter-01.mp3"
    atomic.write_bytes(target, b"take one")
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    inode = target.stat().st_ino
    atomic.write_bytes(target, b"take one")
    assert target.stat().st_mtime_ns == 1_000_000_000 and target.stat().st_ino == inode
    atomic.write_bytes(target, b"take two")          # same size, other bytes
    assert target.read_bytes() == b"take two" and target.stat().st_mtime_ns != 1_000_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(atomic.TMP_PREFIX)]


def test_a_symlink_is_replaced_by_a_file_even_with_the_same_bytes(tmp_path):
    (tmp_path / "elsewhere.txt").write_bytes(b"x")
    (tmp_path / "out.txt").symlink_to(tmp_path / "elsewhere.txt")
    atomic.write_bytes(tmp_path / "out.txt", b"x")
    assert not (tmp_path / "out.txt").is_symlink()

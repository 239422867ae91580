"""Output directories appear whole or not at all: staging, publishing, and the atomic file copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clowncar.data import atomic
from clowncar.data.atomic import (
    check_target,
    copy_file_atomic,
    default_mode,
    is_nonempty_dir,
    publish,
    staged_directory,
)
from clowncar.errors import DataError


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def old_output(tmp_path: Path) -> Path:
    """tmp_path/out holding old.bin: what an earlier build left."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.bin").write_bytes(b"old")
    return out


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_default_mode_follows_the_umask_and_leaves_it_as_it_was(umask_027) -> None:
    assert default_mode() == 0o640
    assert default_mode(directory=True) == 0o750
    assert default_mode(True) == 0o750
    assert os.umask(0o027) == 0o027  # reading the mask did not change it
    for mask, file_mode, dir_mode in ((0, 0o666, 0o777), (0o022, 0o644, 0o755), (0o077, 0o600, 0o700)):
        os.umask(mask)
        assert (default_mode(), default_mode(directory=True)) == (file_mode, dir_mode)


def test_is_nonempty_dir_is_true_only_for_a_directory_with_an_entry(tmp_path: Path) -> None:
    assert not is_nonempty_dir(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    assert not is_nonempty_dir(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert not is_nonempty_dir(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / ".hidden").write_text("")
    assert is_nonempty_dir(tmp_path / "full")


def test_check_target_refuses_a_file_and_a_full_directory_unless_overwrite(tmp_path: Path) -> None:
    check_target(tmp_path / "new", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty", overwrite=False)
    (tmp_path / "f").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(DataError) as err:
            check_target(tmp_path / "f", overwrite=overwrite)
        assert str(err.value) == f"{tmp_path / 'f'}: exists and is not a directory"
    full = tmp_path / "full"
    full.mkdir()
    (full / "a").write_text("x")
    with pytest.raises(DataError) as err:
        check_target(full, overwrite=False)
    assert str(err.value) == (
        f"{full}: output directory exists and is not empty (pass --overwrite to replace it)"
    )
    check_target(full, overwrite=True)


def test_a_finished_build_lands_whole_with_the_umask_mode_and_no_staging_left(
    tmp_path: Path, umask_027
) -> None:
    out = tmp_path / "shards"
    with staged_directory(out) as stage:
        assert stage.parent == tmp_path
        assert stage.name.startswith(".shards.building-")
        assert stage.stat().st_mode & 0o777 == 0o750
        assert not out.exists()  # nothing at the target while the build runs
        (stage / "a.bin").write_bytes(b"abc")
    assert (out / "a.bin").read_bytes() == b"abc"
    assert out.stat().st_mode & 0o777 == 0o750
    assert _leftovers(tmp_path) == []


def test_a_failed_build_leaves_no_target_no_stage_and_no_parents_it_made(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    out = tmp_path / "keep" / "a" / "b" / "out"
    with pytest.raises(KeyboardInterrupt), staged_directory(out) as stage:
        (stage / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["keep"]
    assert os.listdir(tmp_path / "keep") == []


def test_a_failed_build_keeps_a_parent_that_something_else_wrote_into(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), staged_directory(out):
        (tmp_path / "a" / "other.txt").write_text("not ours")
        raise RuntimeError("boom")
    # b was ours and empty: gone; a holds another file: kept (and so is the one above it)
    assert sorted(os.listdir(tmp_path / "a")) == ["other.txt"]


def test_a_failed_rebuild_keeps_the_old_output(tmp_path: Path) -> None:
    out = old_output(tmp_path)
    with pytest.raises(ValueError), staged_directory(out, overwrite=True) as stage:
        (stage / "new.bin").write_bytes(b"new")
        raise ValueError
    assert os.listdir(out) == ["old.bin"]
    assert os.listdir(tmp_path) == ["out"]


def test_overwrite_replaces_the_old_output_and_removes_it(tmp_path: Path) -> None:
    out = old_output(tmp_path)
    with staged_directory(out, overwrite=True) as stage:
        (stage / "new.bin").write_bytes(b"new")
    assert os.listdir(out) == ["new.bin"]
    assert os.listdir(tmp_path) == ["out"]


def test_a_full_directory_without_overwrite_is_refused_before_any_staging(tmp_path: Path) -> None:
    out = old_output(tmp_path)
    with pytest.raises(DataError, match="pass --overwrite"), staged_directory(out):
        raise AssertionError("the body must not run")
    assert os.listdir(tmp_path) == ["out"]


def test_a_left_over_old_output_that_cannot_be_removed_does_not_fail_the_build(
    tmp_path: Path, monkeypatch
) -> None:
    out = old_output(tmp_path)
    real_unlink = os.unlink

    def stubborn_unlink(path, *args, **kwargs) -> None:
        if Path(path).name == "old.bin":
            raise PermissionError("busy")
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", stubborn_unlink)
    with staged_directory(out, overwrite=True) as stage:
        (stage / "new.bin").write_bytes(b"new")
    assert os.listdir(out) == ["new.bin"]
    left = [p for p in os.listdir(tmp_path) if p != "out"]
    assert len(left) == 1 and left[0].startswith(".out.old-")  # kept, not an error: the build succeeded


def test_an_empty_target_directory_is_replaced_by_the_build(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with staged_directory(out) as stage:
        (stage / "x").write_text("1")
    assert os.listdir(out) == ["x"]
    assert os.listdir(tmp_path) == ["out"]


def test_output_that_appears_during_the_build_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError) as err, staged_directory(out) as stage:
        (stage / "ours").write_text("1")
        out.mkdir()
        (out / "theirs").write_text("2")
    assert str(err.value) == f"{out}: output directory appeared during the build; not replaced"
    assert os.listdir(out) == ["theirs"]
    assert os.listdir(tmp_path) == ["out"]


def _not_a_bin(out: Path) -> Path | None:
    """A `foreign` rule: everything but *.bin files is someone else's."""
    return next((p for p in sorted(out.iterdir()) if p.suffix != ".bin"), None)


def test_overwrite_with_a_foreign_rule_refuses_a_folder_holding_a_file_the_command_did_not_write(
        tmp_path: Path) -> None:
    out = old_output(tmp_path)
    check_target(out, overwrite=True, foreign=_not_a_bin)  # its own output only: replaceable
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(DataError) as err, staged_directory(out, overwrite=True, foreign=_not_a_bin):
        raise AssertionError("the body must not run")
    assert str(err.value) == (f"refusing to replace {out}: it holds thesis.tex, which no build writes (--overwrite "
                              "replaces only an earlier build or an empty folder: move thesis.tex out)")
    assert sorted(os.listdir(out)) == ["old.bin", "thesis.tex"]


def test_a_foreign_file_put_in_the_old_output_during_the_build_is_not_replaced(tmp_path: Path) -> None:
    out = old_output(tmp_path)
    with pytest.raises(DataError, match=r"it holds thesis\.tex"), \
            staged_directory(out, overwrite=True, foreign=_not_a_bin) as stage:
        (stage / "new.bin").write_bytes(b"new")
        (out / "thesis.tex").write_text("mine")
    assert sorted(os.listdir(out)) == ["old.bin", "thesis.tex"]
    assert os.listdir(tmp_path) == ["out"]


def test_the_refusal_of_a_foreign_file_names_what_replaces_output_in_the_command_given(tmp_path: Path) -> None:
    out = old_output(tmp_path)
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(DataError) as err:
        check_target(out, True, _not_a_bin, replacer="data demo")
    message = (f"refusing to replace {out}: it holds thesis.tex, which no build writes (data demo replaces only an "
               "earlier build or an empty folder: move thesis.tex out)")
    assert str(err.value) == message
    (out / "thesis.tex").unlink()
    with pytest.raises(DataError) as err, \
            staged_directory(out, overwrite=True, foreign=_not_a_bin, replacer="data demo") as stage:
        (stage / "new.bin").write_bytes(b"new")
        (out / "thesis.tex").write_text("mine")  # put there while the build ran: refused as it is up front
    assert str(err.value) == message


def test_the_refusal_of_a_foreign_file_names_overwrite_by_default(tmp_path: Path) -> None:
    """`data build --overwrite` and the other commands with that option leave `replacer` to its default."""
    out = old_output(tmp_path)
    (out / "thesis.tex").write_text("mine")
    message = (f"refusing to replace {out}: it holds thesis.tex, which no build writes (--overwrite replaces only an "
               "earlier build or an empty folder: move thesis.tex out)")
    with pytest.raises(DataError) as err:
        check_target(out, True, _not_a_bin)
    assert str(err.value) == message
    stage = tmp_path / "stage"
    stage.mkdir()
    with pytest.raises(DataError) as err:
        publish(stage, out, True, _not_a_bin)
    assert str(err.value) == message


def test_publish_with_overwrite_swaps_through_a_hidden_old_name(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("o")
    stage = tmp_path / ".stage"
    stage.mkdir()
    (stage / "new").write_text("n")
    renames: list[tuple[Path, Path]] = []
    real_rename = os.rename

    def recording_rename(a, b) -> None:
        renames.append((Path(a), Path(b)))
        real_rename(a, b)

    monkeypatch.setattr(atomic.os, "rename", recording_rename)
    publish(stage, out, overwrite=True)
    assert [r[0].name for r in renames] == ["out", ".stage"]
    # the old output moves aside within its own directory (a rename never crosses file systems)
    assert renames[0][1].parent == tmp_path and renames[0][1].name.startswith(".out.old-")
    assert renames[1][1] == out
    assert os.listdir(out) == ["new"]
    assert os.listdir(tmp_path) == ["out"]


def test_copy_file_atomic_copies_bytes_with_the_umask_mode_into_new_parents(
    tmp_path: Path, umask_027
) -> None:
    src = tmp_path / "src.model"
    src.write_bytes(b"\x00\x01model")
    os.chmod(src, 0o600)
    dst = tmp_path / "deep" / "er" / "tok.model"
    copy_file_atomic(src, dst)
    assert dst.read_bytes() == b"\x00\x01model"
    assert dst.stat().st_mode & 0o777 == 0o640
    assert os.listdir(dst.parent) == ["tok.model"]
    dst.write_bytes(b"older")
    copy_file_atomic(src, dst)  # replaces an existing file
    assert dst.read_bytes() == b"\x00\x01model"


def test_a_failed_copy_leaves_neither_a_temp_file_nor_a_partial_target(
    tmp_path: Path, monkeypatch
) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"data")
    dst = tmp_path / "out" / "dst"
    dst.parent.mkdir()
    dst.write_bytes(b"previous")

    def failing_copy(a, b) -> None:
        Path(b).write_bytes(b"da")
        raise OSError("disk full")

    monkeypatch.setattr(atomic.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        copy_file_atomic(src, dst)
    assert os.listdir(dst.parent) == ["dst"]
    assert dst.read_bytes() == b"previous"


def test_a_failed_copy_raises_its_own_error_even_when_the_temp_file_is_gone(
    tmp_path: Path, monkeypatch
) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"data")

    def vanishing_copy(a, b) -> None:
        Path(b).unlink()
        raise OSError("stale file handle")

    monkeypatch.setattr(atomic.shutil, "copyfile", vanishing_copy)
    with pytest.raises(OSError, match="stale file handle"):
        copy_file_atomic(src, tmp_path / "dst")
    assert os.listdir(tmp_path) == ["src"]


def test_the_temp_copy_is_named_after_the_target_in_its_directory(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"d")
    dst = tmp_path / "o" / "tok.model"
    seen: list[Path] = []
    real_replace = os.replace

    def spying_replace(a, b) -> None:
        seen.append(Path(a))
        real_replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", spying_replace)
    copy_file_atomic(src, dst)
    assert seen[0].parent == dst.parent
    assert seen[0].name.startswith(".tok.model.") and seen[0].name.endswith(".tmp")

"""An output directory that cannot be made (a file on its path, /proc, a device) is one DataError naming the
path and why, raised before any work, and what was made on the way is taken back: `make_output_dir`, shared by
`trial run` and the staged builds of `data build`, `data demo` and `demo`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clowncar.data.atomic import staged_directory
from clowncar.data.paths import OutputDir, make_output_dir, missing_dirs, remove_created
from clowncar.errors import DataError


def test_a_new_output_directory_is_made_with_its_parents_and_they_are_listed_innermost_first(
        tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c"
    assert make_output_dir(out, "the trial directory") == [out, out.parent, out.parent.parent]
    assert out.is_dir()
    assert make_output_dir(out, "the trial directory") == []  # there already: nothing made, nothing to undo


def test_an_output_path_under_a_file_names_the_file_and_makes_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError) as err:
        make_output_dir(tmp_path / "afile" / "sub" / "t", "the trial directory")
    assert str(err.value) == (f"cannot create the trial directory {tmp_path / 'afile' / 'sub' / 't'}: "
                              f"{tmp_path / 'afile'} is a regular file, not a directory")
    assert sorted(os.listdir(tmp_path)) == ["afile"]


def test_an_output_path_under_a_device_says_what_the_device_is() -> None:
    with pytest.raises(DataError, match=r"^cannot create the output directory /dev/null/x: /dev/null is a "
                                        r"character device, not a directory$"):
        make_output_dir(Path("/dev/null/x"), "the output directory")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_output_path_in_proc_says_proc_takes_no_new_directories() -> None:
    with pytest.raises(DataError) as err:
        make_output_dir(Path("/proc/clowncar-no-such-dir/t"), "the trial directory")
    assert str(err.value) == ("cannot create the trial directory /proc/clowncar-no-such-dir/t: /proc does not "
                              "take new directories (No such file or directory)")


def test_parents_made_before_a_failure_are_taken_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "a" / "b"
    real_mkdir = os.mkdir

    def refuse_b(path, *args, **kwargs) -> None:  # `a` is made, then its child is refused
        if Path(path) == out:
            raise PermissionError(13, "Permission denied")
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refuse_b)
    with pytest.raises(DataError, match=r": Permission denied$"):
        make_output_dir(out, "the trial directory")
    assert os.listdir(tmp_path) == []


def test_removing_what_was_made_stops_at_a_directory_someone_wrote_into(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c"
    made = missing_dirs(out)
    out.mkdir(parents=True)
    (tmp_path / "a" / "theirs.txt").write_text("kept")
    remove_created(made)
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "theirs.txt").read_text() == "kept"


def test_a_staged_build_under_a_file_is_refused_before_its_body_runs(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"afile is a regular file, not a directory$"), \
            staged_directory(tmp_path / "afile" / "sub"):
        raise AssertionError("the body must not run")
    assert os.listdir(tmp_path) == ["afile"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_staged_build_in_proc_is_refused_before_its_body_runs() -> None:
    with pytest.raises(DataError, match=r"^cannot create the output directory /proc/clowncar-no-such-dir: /proc "
                                        r"does not take new directories"), \
            staged_directory(Path("/proc/clowncar-no-such-dir")):
        raise AssertionError("the body must not run")


def test_parents_only_makes_the_folder_a_staged_build_goes_beside(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert make_output_dir(out, "the dataset", parents_only=True) == [out.parent]
    assert out.parent.is_dir() and not out.exists()  # the build renames its stage to `out` at the end


def test_a_folder_never_made_is_skipped_and_the_ones_made_still_go(tmp_path: Path) -> None:
    made = tmp_path / "made"
    made.mkdir()
    remove_created([made / "never", made])  # mkdir failed before `never`: its parent still goes
    assert not made.exists()


def test_an_error_the_os_gave_no_words_for_is_named_by_its_text(tmp_path: Path) -> None:
    from clowncar.data.paths import cannot_create

    err = cannot_create(tmp_path / "t", "the trial directory", OSError("odd"))
    assert str(err) == f"cannot create the trial directory {tmp_path / 't'}: odd"


def test_an_output_dir_stays_when_the_body_ends_and_goes_when_it_fails_while_empty(tmp_path: Path) -> None:
    with OutputDir(tmp_path / "ok" / "out", "the report directory") as made:
        assert made == [tmp_path / "ok" / "out", tmp_path / "ok"]
    assert (tmp_path / "ok" / "out").is_dir()
    with pytest.raises(KeyError), OutputDir(tmp_path / "bad" / "out", "the report directory"):
        raise KeyError("unknown sweep")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(KeyError), OutputDir(tmp_path / "half", "the report directory"):
        (tmp_path / "half" / "report.md").write_text("x")  # something was written: the folder is kept
        raise KeyError("later failure")
    assert (tmp_path / "half" / "report.md").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError) as err, OutputDir(tmp_path / "afile" / "out", "the report directory"):
        pass
    assert str(err.value).startswith(f"cannot create the report directory {tmp_path / 'afile' / 'out'}: ")


def test_a_missing_fineweb_dataset_says_which_variant_to_fetch_and_any_other_how_to_make_one() -> None:
    from clowncar.data.paths import dataset_not_found, how_to_get_dataset

    assert how_to_get_dataset("fineweb10B_sp4096") == (
        "fetch it with `clowncar data fetch-fineweb --variant sp4096`, or point data.dataset at a build (the demo's: "
        "data.dataset=demo_sp1024 with data.tokenizer=demo_1024_bpe.model)")
    assert how_to_get_dataset("/data/fineweb10B_byte260").startswith("fetch it with `clowncar data fetch-fineweb "
                                                                     "--variant byte260`")
    assert how_to_get_dataset("fineweb10B_sp1024x") == (
        "`clowncar data demo`, `data fetch-fineweb` or `data build` makes one; CLOWNCAR_DATA_DIR says where datasets "
        "are looked for")
    assert dataset_not_found("fineweb10B_sp1024", Path("/d/x")) == (
        "dataset 'fineweb10B_sp1024' not found at /d/x (fetch it with `clowncar data fetch-fineweb --variant "
        "sp1024`, or point data.dataset at a build (the demo's: data.dataset=demo_sp1024 with "
        "data.tokenizer=demo_1024_bpe.model))")

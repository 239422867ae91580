"""`clowncar doctor`'s data and disk rows with exact texts, in this process: the data dir (a file where a folder
goes, the FineWeb shards the presets read), the demo build (absent, or damaged and how), and the runs dir's disk
(the nearest existing folder, a path no sweep could write)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clowncar import doctor
from clowncar.doctor import MISSING, OK, OPTIONAL, Row


def test_disk_row_refuses_a_runs_dir_that_sweep_run_refuses(tmp_path: Path) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("")
    fix = "set CLOWNCAR_RUNS_DIR to a folder you can write in"
    assert doctor.check_disk(blocker) == Row("disk", MISSING, f"the runs dir {blocker} is not a folder", fix)
    assert doctor.check_disk(blocker / "sub") == Row(
        "disk", MISSING, f"the runs dir {blocker / 'sub'} cannot be made: {blocker} is not a folder", fix)


def test_data_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clowncar.data.demo as demo

    assert doctor.check_data(tmp_path / "none") == Row(
        "data", OPTIONAL, f"{tmp_path / 'none'} does not exist yet",
        "clowncar data demo (clowncar demo builds it too), or set CLOWNCAR_DATA_DIR")
    monkeypatch.setattr(demo, "demo_data_ready", lambda d: d == tmp_path)
    assert doctor.check_data(tmp_path) == Row("data", OK, f"{tmp_path} (demo data ready)")
    (tmp_path / "other").mkdir()
    assert doctor.check_data(tmp_path / "other") == Row(
        "data", OPTIONAL, f"{tmp_path / 'other'} (no demo data yet)", "clowncar data demo (clowncar demo builds it too)")


def test_disk_rows_measure_the_nearest_existing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []
    monkeypatch.setattr(doctor.shutil, "disk_usage",
                        lambda p: seen.append(p) or type("U", (), {"free": 3 * 2**30 + 2**29})())
    assert doctor.check_disk(tmp_path / "a" / "b") == Row("disk", OK, f"3.5 GiB free at {tmp_path}")
    assert seen == [tmp_path]
    assert doctor.check_disk(tmp_path, min_free_gib=3.5).status == OK  # exactly the floor is enough
    assert doctor.check_disk(tmp_path, min_free_gib=4.0) == Row(
        "disk", MISSING, f"3.5 GiB free at {tmp_path}", "free space: sweeps need at least 4 GiB")
    assert doctor.MIN_FREE_GIB == 2.0
    assert doctor.check_disk(tmp_path).status == OK


def test_the_fineweb_row_says_which_presets_read_it_until_it_is_fetched(tmp_path: Path) -> None:
    """walk 4, F12: doctor said only "data ok" where four presets read FineWeb that was never fetched."""
    readers = "the baseline, clowncar, clowncar-seed, clowncar-ii-seed, frugendorff-v2, micro-crawler presets read it"
    fix = "clowncar data fetch-fineweb --variant sp1024"
    assert doctor.check_fineweb(tmp_path) == Row("fineweb sp1024", OPTIONAL, f"not fetched ({readers})", fix)
    dataset = tmp_path / "datasets" / "fineweb10B_sp1024"
    dataset.mkdir(parents=True)
    assert doctor.check_fineweb(tmp_path) == Row(
        "fineweb sp1024", OPTIONAL, f"{dataset} holds no val shards ({readers})", fix)
    for name in ("fineweb_val_000000.bin", "fineweb_train_000000.bin", "fineweb_train_000001.bin"):
        (dataset / name).write_bytes(b"")
    tokenizer = tmp_path / "tokenizers" / "fineweb_1024_bpe.model"
    assert doctor.check_fineweb(tmp_path) == Row("fineweb sp1024", OPTIONAL, f"{tokenizer} is missing ({readers})",
                                                 fix)
    tokenizer.parent.mkdir()
    tokenizer.write_bytes(b"")
    assert doctor.check_fineweb(tmp_path) == Row("fineweb sp1024", OK, f"{dataset} (1 val, 2 train shards)")


def test_a_data_dir_that_is_a_file_is_missing_with_a_fix_other_than_data_demo(tmp_path: Path) -> None:
    """`clowncar data demo` cannot create its folders there ("... is a regular file"), so suggesting it was wrong."""
    blocker = tmp_path / "f"
    blocker.write_text("")
    fix = f"remove or rename {blocker}, or set CLOWNCAR_DATA_DIR to a folder"
    assert doctor.check_data(blocker) == Row("data", MISSING, f"the data dir {blocker} is not a folder", fix)
    assert doctor.check_data(blocker / "sub") == Row(
        "data", MISSING, f"the data dir {blocker / 'sub'} cannot be made: {blocker} is not a folder", fix)
    assert doctor.check_data(tmp_path / "new" / "sub").status == OPTIONAL  # a folder can be made there


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real demo build, copied by each test that damages it."""
    from clowncar.data.demo import run_demo

    built = tmp_path_factory.mktemp("demo") / "data"
    run_demo(built, progress=False, log=lambda *_: None)
    return built


def test_a_damaged_demo_build_is_named_as_damaged_with_the_command_that_rebuilds_it(
        demo_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A truncated or lost shard, a lost or unreadable build.json or tokenizer: doctor said "no demo data yet".
    `clowncar data demo` rebuilds any of them (it reuses only a complete build)."""
    import shutil as sh

    import clowncar.data.record as record
    from clowncar.data.demo import DATASET, TOKENIZER
    from clowncar.errors import DataError

    fix = "clowncar data demo rebuilds it (it reuses only a complete build)"

    def damaged(name: str, harm) -> Row:
        data = tmp_path / name
        sh.copytree(demo_build, data)
        harm(data / "datasets" / DATASET, data / "tokenizers" / TOKENIZER)
        row = doctor.check_data(data)
        assert (row.status, row.fix) == (OPTIONAL, fix) and row.detail.startswith(f"{data}: the demo build is damaged: ")
        return row

    assert doctor.check_data(demo_build).status == OK
    val = "fineweb_val_000000.bin"
    truncated = damaged("truncated", lambda d, t: (d / val).write_bytes((d / val).read_bytes()[:5000]))
    assert f"{val}: truncated shard: " in truncated.detail and "file has 5000 bytes" in truncated.detail
    assert f"{val} is missing" in damaged("lost", lambda d, t: (d / val).unlink()).detail
    build = tmp_path / "nojson" / "datasets" / DATASET / "build.json"
    assert damaged("nojson", lambda d, t: (d / "build.json").unlink()).detail.endswith(
        f"{build} is missing or unreadable")
    assert str(build).replace("nojson", "badjson") in damaged("badjson", lambda d, t: (d / "build.json").write_text(
        "{")).detail  # read as none, or refused in one line (read_build_info's DataError): either way a row
    assert damaged("notok", lambda d, t: t.unlink()).detail.endswith(f"{tmp_path / 'notok' / 'tokenizers' / TOKENIZER} "
                                                                     "is missing")
    damaged("othertok", lambda d, t: t.write_bytes(b"another model"))

    def refuse(directory: Path) -> None:  # a build.json reader that refuses a damaged file in one line
        raise DataError(f"{directory / 'build.json'}: not JSON")

    monkeypatch.setattr(record, "read_build_info", refuse)
    monkeypatch.setattr("clowncar.data.demo.read_build_info", refuse)
    assert damaged("refused", lambda d, t: None).detail.endswith("build.json: not JSON")


def test_disk_row_names_a_runs_dir_that_cannot_be_made_instead_of_the_free_space_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLOWNCAR_RUNS_DIR=/proc/foo as root: write permission by its mode, yet no folder can be made there; the row
    said "0.0 GiB free at /proc" with the fix "free space"."""
    fix = "set CLOWNCAR_RUNS_DIR to a folder you can write in"
    runs = Path("/proc/clowncar-doctor-runs")
    row = doctor.check_disk(runs)
    assert (row.status, row.fix) == (MISSING, fix) and str(runs) in row.detail and "GiB free" not in row.detail
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: pytest.fail(f"measured {p}"))
    monkeypatch.setattr(doctor, "cannot_create_in", lambda folder: "Read-only file system" if folder == tmp_path else "")
    assert doctor.check_disk(tmp_path / "runs") == Row(
        "disk", MISSING, f"the runs dir {tmp_path / 'runs'} cannot be made in {tmp_path} (Read-only file system)", fix)
    assert doctor.check_disk(tmp_path) == Row(
        "disk", MISSING, f"the runs dir {tmp_path} cannot be written (Read-only file system)", fix)

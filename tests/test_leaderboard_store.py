"""The leaderboard store: upsert semantics, column order, concurrency, corrupt files."""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path

import pytest

from saebench.leaderboard import LeaderboardError, read_leaderboard, upsert_row
from saebench.leaderboard import store as store_module
from saebench.leaderboard.schema import ordered_columns
from saebench.leaderboard.store import lock_path, parse_table, read_rows


def make_row(index: int, **changes: object) -> dict[str, object]:
    """A full leaderboard row; ``index`` picks a distinct SAE hash and distinct metrics."""
    row: dict[str, object] = {
        "model": "tiny-ioi",
        "model_processing": '{"center_writing_weights":true}',
        "task": "ioi",
        "hook": "blocks.1.hook_resid_pre",
        "head": None,
        "position": "END",
        "sae_id": f"runs/sae_{index}",
        "sae_hash": f"{index:016x}",
        "sae_name": f"sae{index}",
        "architecture": "topk",
        "data_source": "task",
        "d_sae": 128,
        "saebench_version": "0.1.0",
        "git_commit": "d0b810f",
        "date": "2025-01-01T00:00:00Z",
        "seed": 0,
        "n_prompts": 64,
        "n_fit_prompts": 256,
        "l0": 1.0 + index,
        "sufficiency": 0.1 + index / 1000,
        "edit_accuracy_io_k2": 0.5,
    }
    row.update(changes)
    return row


def test_upsert_creates_file_with_columns_in_schema_order(tmp_path: Path) -> None:
    csv = tmp_path / "sub" / "lb.csv"
    upsert_row(csv, make_row(1, f1_coverage_io=0.25, clean_accuracy=0.9))
    header = csv.read_text().splitlines()[0].split(",")
    assert header[:8] == [
        "model", "model_processing", "task", "hook", "head", "position", "sae_id", "sae_hash"
    ]  # fmt: skip
    assert header.index("sae_name") == 8
    assert header.index("n_fit_prompts") < header.index("clean_accuracy") < header.index("l0")
    assert header[-1] == "f1_coverage_io"
    assert header == ordered_columns(header)


def test_metric_columns_ordered_by_attribute_then_k_then_kind() -> None:
    shuffled = [
        "f1_coverage_io", "edit_accuracy_s_k1", "edit_accuracy_io_k16", "edit_accuracy_io_k2",
        "aware_edit_accuracy_io_k2", "sup_edit_accuracy_io", "zzz_extra", "max_cosine_pos",
        "edit_magnitude_io_k2", "necessity", "l0",
    ]  # fmt: skip
    assert ordered_columns(shuffled) == [
        "l0", "necessity", "sup_edit_accuracy_io", "edit_accuracy_io_k2", "edit_magnitude_io_k2",
        "aware_edit_accuracy_io_k2", "edit_accuracy_io_k16", "f1_coverage_io",
        "edit_accuracy_s_k1", "max_cosine_pos", "zzz_extra",
    ]  # fmt: skip


def test_upsert_same_identity_replaces_row_in_place(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    for index in (1, 2, 3):
        upsert_row(csv, make_row(index))
    upsert_row(csv, make_row(2, l0=42.5, sae_id="elsewhere/same_weights.safetensors"))
    frame = read_leaderboard(csv)
    assert list(frame["sae_name"]) == ["sae1", "sae2", "sae3"]
    assert list(frame["l0"]) == [2.0, 42.5, 4.0]
    assert frame.loc[1, "sae_id"] == "elsewhere/same_weights.safetensors"


def test_upsert_new_node_or_new_hash_adds_row(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1))
    upsert_row(csv, make_row(1, head=3))
    upsert_row(csv, make_row(1, position="S2"))
    upsert_row(csv, make_row(1, model_processing="{}"))
    upsert_row(csv, make_row(2, sae_id="runs/sae_1"))  # same path, other weights
    frame = read_leaderboard(csv)
    assert len(frame) == 5
    assert frame["head"].isna().tolist() == [True, False, True, True, True]
    assert int(frame.loc[1, "head"]) == 3


def test_upsert_keeps_old_columns_when_new_row_lacks_them(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1, f1_coverage_s=0.125))
    upsert_row(csv, make_row(2, edit_accuracy_pos_k32=0.75))
    frame = read_leaderboard(csv)
    assert frame.loc[0, "f1_coverage_s"] == 0.125
    assert math.isnan(frame.loc[1, "f1_coverage_s"])
    assert frame.loc[1, "edit_accuracy_pos_k32"] == 0.75
    assert math.isnan(frame.loc[0, "edit_accuracy_pos_k32"])
    upsert_row(csv, make_row(1))  # replace row 1 without f1_coverage_s: column stays
    assert "f1_coverage_s" in read_leaderboard(csv).columns


def test_floats_and_text_round_trip_exactly(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    value = 0.1 + 0.2  # 0.30000000000000004: any rounding on write would lose it
    processing = '{"fold_ln":true,"note":"a, \\"quoted\\" value"}'
    upsert_row(csv, make_row(1, fvu=value, model_processing=processing, sae_hash="00AB" * 4))
    frame = read_leaderboard(csv)
    assert frame.loc[0, "fvu"] == value
    assert frame.loc[0, "model_processing"] == processing
    assert frame.loc[0, "sae_hash"] == "00ab" * 4
    assert frame.loc[0, "n_prompts"] == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sae_hash": "xyz"}, "16 hex"),
        ({"sae_name": ""}, "empty required"),
        ({"l0": "many"}, "must be a number"),
        ({"head": 2.5}, "must be an integer"),
    ],
)
def test_upsert_rejects_bad_rows_without_touching_file(
    tmp_path: Path, change: dict, message: str
) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1))
    before = csv.read_bytes()
    with pytest.raises(LeaderboardError, match=message):
        upsert_row(csv, make_row(2, **change))
    assert csv.read_bytes() == before


def test_upsert_rejects_row_missing_key_column(tmp_path: Path) -> None:
    row = make_row(1)
    del row["position"]
    with pytest.raises(LeaderboardError, match="position"):
        upsert_row(tmp_path / "lb.csv", row)
    assert not (tmp_path / "lb.csv").exists()


def _writer(csv: str, worker: int, n_rows: int, barrier) -> None:
    barrier.wait()
    for i in range(n_rows):
        upsert_row(csv, make_row(1000 * worker + i, sae_name=f"w{worker}r{i}"))


def test_concurrent_writer_processes_lose_no_row(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(999_999, f1_coverage_pos=0.5))  # an older row with its own column
    n_workers, n_rows = 4, 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(n_workers)
    workers = [
        context.Process(target=_writer, args=(str(csv), w, n_rows, barrier))
        for w in range(n_workers)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * n_workers
    frame = read_leaderboard(csv)
    expected = {f"w{w}r{i}" for w in range(n_workers) for i in range(n_rows)} | {"sae999999"}
    assert set(frame["sae_name"]) == expected
    assert len(frame) == len(expected)
    assert frame.set_index("sae_name").loc["sae999999", "f1_coverage_pos"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lb.csv", "lb.csv.lock"]


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1))
    before = csv.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        upsert_row(csv, make_row(2))
    assert csv.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lb.csv", "lb.csv.lock"]


def _corrupt(data: bytes, kind: str) -> tuple[bytes, int]:
    """Damage a 3-line CSV (header + 2 rows) in one way; return the bytes and the bad line."""
    header, first, second, _ = data.split(b"\n")
    if kind == "too_many_fields":
        return b"\n".join([header, first, second + b",extra,cells", b""]), 3
    if kind == "too_few_fields":
        return b"\n".join([header, first, b"short,row", b""]), 3
    if kind == "binary_garbage":
        return b"\n".join([header, b"\xff\xfe\x9c garbage \x81", second, b""]), 2
    if kind == "nul_byte":
        return b"\n".join([header, first, second.replace(b"topk", b"to\x00pk"), b""]), 3
    if kind == "torn_last_line":
        return b"\n".join([header, first, second[:-7]]), 3
    if kind == "non_numeric_metric":
        return b"\n".join([header, first.replace(b",0.5", b",oops"), second, b""]), 2
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "too_many_fields",
        "too_few_fields",
        "binary_garbage",
        "nul_byte",
        "torn_last_line",
        "non_numeric_metric",
    ],
)
def test_corrupt_csv_is_reported_with_path_and_line_and_never_overwritten(
    tmp_path: Path, kind: str
) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1))
    upsert_row(csv, make_row(2))
    data, line = _corrupt(csv.read_bytes(), kind)
    csv.write_bytes(data)
    with pytest.raises(LeaderboardError) as caught:
        read_leaderboard(csv)
    assert str(csv) in str(caught.value)
    assert f"line {line}:" in str(caught.value)
    assert caught.value.line == line
    with pytest.raises(LeaderboardError, match=f"line {line}:"):
        upsert_row(csv, make_row(3))
    assert csv.read_bytes() == data


def test_quoted_newline_reports_the_line_where_the_bad_record_starts(tmp_path: Path) -> None:
    header = "model,model_processing,task,hook,head,position,sae_hash,l0"
    data = f'{header}\na,"{{\n}}",ioi,h,,END,{"0" * 16},1.0\nb,{{}},ioi,h,,END,{"1" * 16},x\n'
    with pytest.raises(LeaderboardError, match="line 4"):
        parse_table("mem.csv", data.encode())
    header_out, rows = parse_table("mem.csv", data.replace(",x\n", ",2\n").encode())
    assert len(rows) == 2 and rows[0]["model_processing"] == "{\n}"


def test_missing_key_column_in_header_is_an_error(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    csv.write_text("model,task,l0\ngpt2,ioi,1.0\n")
    with pytest.raises(LeaderboardError, match="line 1.*key column"):
        read_leaderboard(csv)


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(LeaderboardError, match="no such leaderboard"):
        read_leaderboard(tmp_path / "absent.csv")
    assert read_rows(tmp_path / "absent.csv") == ([], [])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert read_leaderboard(empty).empty
    upsert_row(empty, make_row(1))
    assert len(read_leaderboard(empty)) == 1
    assert lock_path(empty) == tmp_path / "empty.csv.lock"


def test_new_file_is_world_readable(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1))
    assert os.stat(csv).st_mode & 0o644 == 0o644

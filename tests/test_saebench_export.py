"""SAEBench interop: leaderboard rows exported as SAEBench eval-results JSON.

The shape checked here is SAEBench's ``BaseEvalOutput`` (``sae_bench/evals/base_eval_output.py``
of sae-bench 0.6.0, github.com/adamkarvonen/SAEBench) and the ``required`` list of its exported
JSON schemas (``sae_bench/evals/*/eval_output_schema_*.json``). One test validates with
SAEBench's own pydantic classes when ``sae-bench`` is installed
(``pip install --no-deps sae-bench``; it needs only pydantic to import these classes).
"""

from __future__ import annotations

import json
import math
import shutil
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from saebench.cli.leaderboard import leaderboard
from saebench.leaderboard import read_leaderboard, upsert_row
from saebench.leaderboard.export import export_markdown
from saebench.leaderboard.saebench_format import (
    METRIC_CATEGORIES,
    RESULTS_SUFFIX,
    dumps,
    eval_id,
    read_saebench_results,
    result_filename,
    row_to_saebench,
    write_saebench_results,
)

REPO = Path(__file__).resolve().parents[1]

SAEBENCH_REQUIRED = (
    "eval_type_id",
    "eval_config",
    "eval_id",
    "datetime_epoch_millis",
    "eval_result_metrics",
    "sae_bench_commit_hash",
    "sae_lens_id",
    "sae_lens_release_id",
    "sae_lens_version",
    "sae_cfg_dict",
)
"""Fields of SAEBench's ``BaseEvalOutput`` without a default: the ``required`` list of its JSON
schemas (e.g. ``eval_output_schema_core.json``), plus ``eval_type_id``, which the base class
requires and each eval's subclass gives a default."""
SAEBENCH_OPTIONAL = ("eval_result_details", "eval_result_unstructured")
"""``BaseEvalOutput`` fields with a default (a list of flat objects; anything)."""
MAX_EPOCH_MILLIS = 9999999999999
"""``BaseEvalOutput.validate_unix_time``: 0 ≤ datetime_epoch_millis ≤ this."""

KS = (1, 2, 4)
ATTRIBUTES = ("io", "s", "pos")


def make_row(**overrides: object) -> dict[str, object]:
    """One complete leaderboard row (an SAE at a head node) with every metric kind."""
    row: dict[str, object] = {
        "model": "tiny-ioi", "model_processing": '{"fold_ln":true}', "task": "ioi",
        "hook": "blocks.0.attn.hook_z", "head": 2, "position": "END",
        "sae_id": "gpt2-small-res-jb/blocks.0.hook_z", "sae_hash": "0123456789abcdef",
        "sae_name": "sweep/trainer_3", "architecture": "topk", "data_source": "task",
        "d_sae": 128, "d_in": 16, "k": 6, "training_tokens": 40960,
        "sae_lens_release": "gpt2-small-res-jb", "sae_lens_id": "blocks.0.hook_z",
        "saebench_version": "0.1.0", "git_commit": "abc1234", "date": "2026-12-02T06:08:18+00:00",
        "seed": 0, "n_prompts": 100, "n_fit_prompts": 400, "ks": "1,2,4", "tau": 0.8,
        "task_version": "1", "wall_time_s": 1.5, "shared_wall_time_s": 2.5,
        "clean_logit_diff": 7.2, "clean_accuracy": 1.0, "l0": 6.0, "fvu": 0.2,
        "dead_fraction": 0.0, "sufficiency": 0.9, "necessity": 0.5, "sup_sufficiency": 0.95,
        "sup_necessity": 0.8, "sup_fvu": 0.1, "meanabl_logit_diff": 6.9, "sup_lstsq_fvu": 0.01,
    }  # fmt: skip
    for a in ATTRIBUTES:
        row |= {f"noint_accuracy_{a}": 0.1, f"sup_edit_accuracy_{a}": 0.9}
        row |= {f"sup_edit_magnitude_{a}": 0.3, f"f1_coverage_{a}": 0.5}
        row |= {f"f1_mean_best_{a}": 0.6, f"latents_per_value_{a}": 1.0, f"max_cosine_{a}": 0.4}
        for k in KS:
            row |= {f"edit_accuracy_{a}_k{k}": 0.2 * k, f"edit_magnitude_{a}_k{k}": 0.1 * k}
            row |= {f"aware_edit_accuracy_{a}_k{k}": 0.15 * k}
            row |= {f"aware_edit_magnitude_{a}_k{k}": 0.12 * k, f"edit_score_{a}_k{k}": 0.3}
            row |= {f"edit_distance_{a}_k{k}": 2.0 / k, f"aware_edit_distance_{a}_k{k}": 3.0 / k}
    row["edit_score_pos_k1"] = math.nan  # supervised edit no better than none: NaN
    return row | overrides


@pytest.fixture()
def csv_path(tmp_path: Path) -> Path:
    """A leaderboard with a head-node SAE, a local whole-layer SAE, a row that differs from the
    first only by model (same name, node and hash: the file names would collide) and a
    supervised dictionary (no d_sae)."""
    path = tmp_path / "lb.csv"
    upsert_row(path, make_row())
    upsert_row(
        path,
        make_row(
            hook="blocks.1.hook_resid_pre", head=None, sae_hash="fedcba9876543210",
            sae_name="standard-l12.5-general", sae_id="baselines/saes/x", sae_lens_release=None,
            sae_lens_id=None, architecture="standard", k=None, fvu=math.nan,
        ),
    )  # fmt: skip
    upsert_row(path, make_row(model="tiny-ioi-2"))
    upsert_row(
        path,
        make_row(
            sae_hash="00000000000000aa", sae_name="supervised_mean", sae_id="supervised:mean",
            architecture="supervised_mean", d_sae=None, d_in=None, k=None, training_tokens=None,
            sae_lens_release=None, sae_lens_id=None, data_source=None,
        ),
    )  # fmt: skip
    return path


def assert_saebench_shape(record: dict[str, Any]) -> None:
    """SAEBench's ``BaseEvalOutput`` contract, reproduced without sae-bench installed."""
    assert set(SAEBENCH_REQUIRED) <= set(record), set(SAEBENCH_REQUIRED) - set(record)
    assert set(record) <= set(SAEBENCH_REQUIRED + SAEBENCH_OPTIONAL)
    assert isinstance(record["eval_type_id"], str) and isinstance(record["eval_id"], str)
    assert isinstance(record["eval_config"], dict)
    millis = record["datetime_epoch_millis"]
    assert isinstance(millis, int) and 0 <= millis <= MAX_EPOCH_MILLIS
    assert isinstance(record["sae_bench_commit_hash"], str)
    for field in ("sae_lens_id", "sae_lens_release_id", "sae_lens_version"):
        assert record[field] is None or isinstance(record[field], str), field
    assert record["sae_cfg_dict"] is None or isinstance(record["sae_cfg_dict"], dict)
    # BaseMetricCategories: every category a BaseMetrics; BaseMetrics: flat, no dicts.
    assert isinstance(record["eval_result_metrics"], dict) and record["eval_result_metrics"]
    for metrics in record["eval_result_metrics"].values():
        assert isinstance(metrics, dict)
        for value in metrics.values():
            assert value is None or isinstance(value, int | float)
            assert not isinstance(value, dict | list)
    details = record.get("eval_result_details")
    assert details is None or all(
        isinstance(d, dict) and not any(isinstance(v, dict | list) for v in d.values())
        for d in details
    )
    # SAEBench's graphing (graphing_utils.get_eval_results) reads architecture and d_sae from
    # sae_cfg_dict; a supervised dictionary's row has no d_sae (it follows the vocabulary).
    assert isinstance(record["sae_cfg_dict"]["architecture"], str)
    assert isinstance(record["sae_cfg_dict"].get("d_sae", 0), int)


def strict_json(text: str) -> Any:
    """Parse ``text`` refusing NaN / Infinity, which strict JSON does not have."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_row_has_every_saebench_required_field_with_its_type() -> None:
    record = row_to_saebench(make_row())
    assert_saebench_shape(record)
    assert record["eval_type_id"] == "saebench_ioi_supervised"
    assert record["sae_lens_release_id"] == "gpt2-small-res-jb"
    assert record["sae_lens_id"] == "blocks.0.hook_z"
    assert record["sae_bench_commit_hash"] == "abc1234"
    assert record["datetime_epoch_millis"] == 1796191698000  # 2026-12-02T06:08:18Z
    assert strict_json(dumps(record)) == record


def test_eval_config_holds_the_settings_and_node() -> None:
    config = row_to_saebench(make_row())["eval_config"]
    assert config == {
        "model_name": "tiny-ioi", "model_processing": {"fold_ln": True}, "task": "ioi",
        "task_version": "1", "hook": "blocks.0.attn.hook_z", "head": 2, "position": "END",
        "n_prompts": 100, "n_fit_prompts": 400, "seed": 0, "ks": [1, 2, 4], "tau": 0.8,
    }  # fmt: skip


def test_metrics_are_grouped_by_metrics_md_section_and_keep_flat_names() -> None:
    row = make_row()
    metrics = row_to_saebench(row)["eval_result_metrics"]
    assert list(metrics) == [c for c in METRIC_CATEGORIES if c in metrics]
    assert {"l0", "fvu", "sufficiency", "meanabl_logit_diff"} <= set(metrics["approximation"])
    assert {"noint_accuracy_io", "edit_accuracy_s_k4", "edit_score_io_k2"} <= set(
        metrics["control"]
    )
    assert {"f1_coverage_pos", "max_cosine_io"} <= set(metrics["interpretability"])
    assert {"sup_necessity", "sup_edit_accuracy_io", "sup_lstsq_fvu"} <= set(
        metrics["supervised_reference"]
    )
    flat = {name: value for group in metrics.values() for name, value in group.items()}
    assert sum(len(group) for group in metrics.values()) == len(flat)  # no name twice
    for name, value in flat.items():
        expected = row[name]
        assert value == expected or (value is None and math.isnan(expected)), name


def test_nan_and_infinite_metrics_are_written_as_json_null() -> None:
    record = row_to_saebench(make_row(fvu=math.inf, l0=""))
    text = dumps(record)
    assert "NaN" not in text and "Infinity" not in text
    parsed = strict_json(text)
    assert parsed["eval_result_metrics"]["control"]["edit_score_pos_k1"] is None
    assert parsed["eval_result_metrics"]["approximation"]["fvu"] is None
    assert parsed["eval_result_metrics"]["approximation"]["l0"] is None


def test_per_k_metrics_outside_the_rows_ks_are_left_out() -> None:
    row = make_row(ks="1,2", edit_accuracy_io_k4=math.nan)
    record = row_to_saebench(row)
    assert "edit_accuracy_io_k4" not in record["eval_result_metrics"]["control"]
    assert {(d["attribute"], d["k"]) for d in record["eval_result_details"]} == {
        (a, k) for a in ATTRIBUTES for k in (1, 2)
    }


def test_details_hold_one_flat_object_per_attribute_and_k() -> None:
    details = row_to_saebench(make_row())["eval_result_details"]
    assert len(details) == len(ATTRIBUTES) * len(KS)
    first = details[0]
    assert first == {
        "attribute": "io", "k": 1, "edit_accuracy": 0.2, "edit_magnitude": 0.1,
        "aware_edit_accuracy": 0.15, "aware_edit_magnitude": 0.12, "edit_score": 0.3,
        "edit_distance": 2.0, "aware_edit_distance": 3.0,
    }  # fmt: skip


def test_sae_cfg_dict_uses_sae_lens_names_and_omits_unknown_values() -> None:
    cfg = row_to_saebench(make_row(k=None, l1_coefficient=None))["sae_cfg_dict"]
    assert cfg["architecture"] == "topk" and cfg["d_sae"] == 128 and cfg["d_in"] == 16
    assert cfg["training_tokens"] == 40960
    assert cfg["hook_name"] == "blocks.0.attn.hook_z" and cfg["hook_layer"] == 0
    assert cfg["hook_head_index"] == 2 and cfg["model_name"] == "tiny-ioi"
    assert cfg["model_from_pretrained_kwargs"] == {"fold_ln": True}
    assert cfg["metadata"]["hook_name"] == "blocks.0.attn.hook_z"
    assert "k" not in cfg and "l1_coefficient" not in cfg


def test_a_bare_csv_row_of_strings_gives_the_same_record_as_typed_values(csv_path) -> None:
    import csv

    with csv_path.open(encoding="utf-8", newline="") as handle:
        raw = next(csv.DictReader(handle))
    typed = read_leaderboard(csv_path).iloc[0]
    assert row_to_saebench(raw) == row_to_saebench(typed)


def test_eval_id_is_a_stable_uuid_per_run() -> None:
    import uuid

    first = row_to_saebench(make_row())["eval_id"]
    assert uuid.UUID(first).version == 5
    assert row_to_saebench(make_row())["eval_id"] == first
    assert row_to_saebench(make_row(date="2026-12-03T00:00:00+00:00"))["eval_id"] != first
    assert row_to_saebench(make_row(n_prompts=1000))["eval_id"] != first


def test_file_names_are_sanitised_and_unique_per_row(csv_path, tmp_path) -> None:
    assert result_filename(make_row()) == (
        "sweep_trainer_3_blocks.0.attn.hook_z_h2_END_01234567" + RESULTS_SUFFIX
    )
    paths = write_saebench_results(read_leaderboard(csv_path), tmp_path / "out")
    assert len(paths) == 4 and len({p.name for p in paths}) == 4
    assert all(p.name.endswith(RESULTS_SUFFIX) and "/" not in p.name for p in paths)


def test_cli_export_saebench_writes_one_valid_json_per_row(csv_path, tmp_path) -> None:
    out = tmp_path / "saebench-results"
    result = CliRunner().invoke(
        leaderboard, ["export", "--format", "saebench", str(csv_path), str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 4 SAEBench result file(s)" in result.output
    files = sorted(out.glob("*" + RESULTS_SUFFIX))
    assert len(files) == 4
    expected = {
        eval_id(row): row_to_saebench(row) for _, row in read_leaderboard(csv_path).iterrows()
    }
    for path in files:
        record = strict_json(path.read_text(encoding="utf-8"))
        assert_saebench_shape(record)
        assert record == expected[record["eval_id"]]


def test_cli_export_default_format_is_still_markdown(csv_path) -> None:
    runner = CliRunner()
    result = runner.invoke(leaderboard, ["export", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert result.output == export_markdown(read_leaderboard(csv_path))
    explicit = runner.invoke(leaderboard, ["export", "--format", "markdown", str(csv_path)])
    assert explicit.output == result.output


def test_cli_export_saebench_refuses_wrong_arguments(csv_path, tmp_path) -> None:
    runner = CliRunner()
    for args in (
        ["export", "--format", "saebench"],
        ["export", "--format", "saebench", str(csv_path), str(tmp_path / "o"), "extra"],
        ["export", "--format", "saebench", str(csv_path), str(tmp_path / "o"), "--markdown", "m"],
        ["export", "--format", "saebench", str(csv_path), str(csv_path)],
        ["export", str(csv_path), "--runs", str(tmp_path)],
        ["export", str(csv_path), str(tmp_path / "o")],
    ):
        result = runner.invoke(leaderboard, args)
        assert result.exit_code == 2, (args, result.output)
    assert not (tmp_path / "o").exists()


def test_cli_export_saebench_adds_run_json_details(csv_path, tmp_path) -> None:
    row = read_leaderboard(csv_path).iloc[0]
    identity = {c: row[c] for c in ("model", "model_processing", "task", "hook", "position")}
    identity |= {"head": 2, "sae_id": row["sae_id"], "sae_hash": row["sae_hash"]}
    identity |= {"n_prompts": 100, "n_fit_prompts": 400, "seed": 0, "ks": "1,2,4", "tau": 0.8}
    identity |= {"task_version": "1"}
    run = {
        "identity": identity,
        "provenance": {"date": row["date"], "versions": {"sae-lens": "6.54.12"}},
        "details": {"attributes": {"io": {"split_latents_max": 2.0, "x": math.nan}}},
    }
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run.json").write_text(json.dumps(run), encoding="utf-8")
    (runs / "other.json").write_text("[1, 2]", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        leaderboard,
        ["export", "--format", "saebench", str(csv_path), str(out), "--runs", str(runs)],
    )
    assert result.exit_code == 0, result.output
    records = [strict_json(p.read_text()) for p in out.glob("*.json")]
    enriched = [r for r in records if r["sae_lens_version"] is not None]
    assert len(enriched) == 1 and enriched[0]["sae_lens_version"] == "6.54.12"
    details = enriched[0]["eval_result_unstructured"]["run_details"]
    assert details["attributes"]["io"] == {"split_latents_max": 2.0, "x": None}


def test_read_saebench_results_round_trips_the_metrics(csv_path, tmp_path) -> None:
    write_saebench_results(read_leaderboard(csv_path), tmp_path / "out")
    frame = read_saebench_results(tmp_path / "out")
    assert len(frame) == 4
    assert set(frame["eval_type_id"]) == {"saebench_ioi_supervised"}
    row = frame[frame["model_name"] == "tiny-ioi-2"].iloc[0]
    assert row["sae_lens_release_id"] == "gpt2-small-res-jb" and row["d_sae"] == 128
    assert row["sufficiency"] == 0.9 and math.isnan(row["edit_score_pos_k1"])


def test_shipped_leaderboard_exports_one_file_per_row(tmp_path) -> None:
    shipped = REPO / "leaderboard" / "tiny-ioi.csv"
    if not shipped.exists():
        pytest.skip("leaderboard/tiny-ioi.csv is not in this checkout")
    copy = tmp_path / "tiny-ioi.csv"
    shutil.copyfile(shipped, copy)  # never touch the shipped file
    frame = read_leaderboard(copy)
    paths = write_saebench_results(frame, tmp_path / "out")
    assert len(paths) == len(frame) == len({p.name for p in paths})
    for path in paths:
        assert_saebench_shape(strict_json(path.read_text(encoding="utf-8")))


def sae_bench_output_class(record: dict[str, Any]) -> type:
    """A concrete SAEBench eval-output class for ``record``'s metrics, built from SAEBench's own
    base classes the way its ``sae_bench/evals/*/eval_output.py`` modules build theirs."""
    base = pytest.importorskip(
        "sae_bench.evals.base_eval_output",
        reason="sae-bench is not installed (pip install --no-deps sae-bench)",
    )
    from pydantic import Field
    from pydantic.dataclasses import dataclass

    def metrics_class(category: str, names: list[str]) -> type:
        namespace: dict[str, Any] = {"__annotations__": {n: float | None for n in names}}
        return dataclass(type(f"{category.title()}Metrics", (base.BaseMetrics,), namespace))

    groups = record["eval_result_metrics"]
    categories = dataclass(
        type(
            "SupervisedMetricCategories",
            (base.BaseMetricCategories,),
            {"__annotations__": {c: metrics_class(c, list(m)) for c, m in groups.items()}},
        )
    )

    @dataclass
    class SupervisedEvalConfig(base.BaseEvalConfig):
        model_name: str
        model_processing: dict[str, Any]
        task: str
        task_version: str
        hook: str
        head: int | None
        position: str
        n_prompts: int
        n_fit_prompts: int
        seed: int
        ks: list[int]
        tau: float

    @dataclass
    class EditDetail(base.BaseResultDetail):
        attribute: str
        k: int
        edit_accuracy: float | None
        edit_magnitude: float | None
        aware_edit_accuracy: float | None
        aware_edit_magnitude: float | None
        edit_score: float | None
        edit_distance: float | None
        aware_edit_distance: float | None

    # Built with new_class() so the annotations are the classes themselves, not strings that
    # pydantic would look up in this module (``from __future__ import annotations``).
    generic_base = base.BaseEvalOutput[SupervisedEvalConfig, categories, EditDetail]
    namespace = {
        "__annotations__": {
            "eval_config": SupervisedEvalConfig,
            "eval_id": str,
            "datetime_epoch_millis": int,
            "eval_result_metrics": categories,
            "eval_result_details": list[EditDetail],
            "eval_type_id": str,
        },
        "eval_result_details": Field(default_factory=list),
        "eval_type_id": Field(default="saebench_ioi_supervised"),
    }
    output = types.new_class(
        "SupervisedEvalOutput", (generic_base,), {}, lambda ns: ns.update(namespace)
    )
    return dataclass(output)


def test_export_validates_with_sae_benchs_own_base_eval_output(csv_path, tmp_path) -> None:
    from dataclasses import asdict

    from pydantic import TypeAdapter, ValidationError

    paths = write_saebench_results(read_leaderboard(csv_path), tmp_path / "out")
    for path in paths:
        record = strict_json(path.read_text(encoding="utf-8"))
        adapter = TypeAdapter(sae_bench_output_class(record))
        output = adapter.validate_python(record)
        assert asdict(output) == record  # nothing dropped or coerced
        # Their own writer (to_json: asdict + json.dumps) gives back the same document.
        assert strict_json(output.to_json()) == record
        required = set(adapter.json_schema()["required"])
        assert required == set(SAEBENCH_REQUIRED) - {"eval_type_id"}
        for broken in (
            record | {"datetime_epoch_millis": -1},
            record | {"eval_result_metrics": {"approximation": {"l0": {"nested": 1.0}}}},
        ):
            with pytest.raises(ValidationError):
                adapter.validate_python(broken)


def test_required_fields_match_sae_benchs_published_schema() -> None:
    from importlib import resources

    pytest.importorskip(
        "sae_bench.evals.base_eval_output",
        reason="sae-bench is not installed (pip install --no-deps sae-bench)",
    )
    schema_file = resources.files("sae_bench") / "evals" / "core" / "eval_output_schema_core.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert set(schema["required"]) == set(SAEBENCH_REQUIRED) - {"eval_type_id"}
    assert set(schema["properties"]) == set(SAEBENCH_REQUIRED + SAEBENCH_OPTIONAL)


def test_read_saebench_results_reads_a_file_sae_bench_itself_wrote(tmp_path) -> None:
    pytest.importorskip(
        "sae_bench.evals.unlearning.eval_output",
        reason="sae-bench is not installed (pip install --no-deps sae-bench)",
    )
    from sae_bench.evals.unlearning.eval_config import UnlearningEvalConfig
    from sae_bench.evals.unlearning.eval_output import (
        UnlearningEvalOutput,
        UnlearningMetricCategories,
        UnlearningMetrics,
    )

    output = UnlearningEvalOutput(
        eval_config=UnlearningEvalConfig(),
        eval_id="00000000-0000-0000-0000-000000000000",
        datetime_epoch_millis=1,
        eval_result_metrics=UnlearningMetricCategories(
            unlearning=UnlearningMetrics(unlearning_score=0.25)
        ),
        sae_bench_commit_hash="abc",
        sae_lens_id="blocks.8.hook_resid_pre",
        sae_lens_release_id="gpt2-small-res-jb",
        sae_lens_version="6.0.0",
        sae_cfg_dict={"architecture": "standard", "d_sae": 24576},
    )
    output.to_json_file(str(tmp_path / ("gpt2-small-res-jb_blocks.8" + RESULTS_SUFFIX)))
    row = read_saebench_results(tmp_path).iloc[0]
    assert row["eval_type_id"] == "unlearning" and row["unlearning_score"] == 0.25
    assert row["sae_lens_release_id"] == "gpt2-small-res-jb" and row["d_sae"] == 24576

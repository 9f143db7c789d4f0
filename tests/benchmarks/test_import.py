"""`tripwire data import` reads each public layout into a store `datasets` reads offline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.benchmarks import layouts
from tripwire.benchmarks import DataStore, import_benchmark
from tripwire.errors import DataError

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _load(store: DataStore, benchmark: str, config: str) -> dict[str, list[dict[str, object]]]:
    import datasets

    manifest = store.manifest(benchmark)
    assert manifest is not None
    loaded = datasets.load_dataset(str(store.dataset_folder(manifest)), config)
    return {split: list(loaded[split]) for split in loaded}


def test_mmlu_original_csv_folders_read_as_the_hub_copy(tmp_path: Path) -> None:
    """The original CSV release gives the same rows as the hub copy of the same items."""
    store = DataStore(tmp_path / "store")
    manifest = import_benchmark("mmlu", layouts.write_mmlu_csv(tmp_path / "csv"), store, now=NOW)
    assert manifest.configs == {s: {"dev": 5, "test": 8, "validation": 3} for s in layouts.SUBJECTS}
    rows = _load(store, "mmlu", "anatomy")
    assert rows["test"] == layouts.mmlu_rows("anatomy", "test", 8)
    assert rows["dev"] == layouts.mmlu_rows("anatomy", "dev", 5)


def test_mmlu_hub_parquet_and_json_copies(tmp_path: Path) -> None:
    hub = layouts.write_mmlu_hub(tmp_path / "hub")
    store = DataStore(tmp_path / "store")
    parquet = import_benchmark("mmlu", hub, store, now=NOW)
    json_copy = tmp_path / "json" / "abstract_algebra" / "test.jsonl"
    layouts.write_jsonl(json_copy, layouts.mmlu_rows("abstract_algebra", "test", 8))
    other = DataStore(tmp_path / "store-json")
    from_json = import_benchmark("mmlu", tmp_path / "json", other, now=NOW)
    assert from_json.configs == {"abstract_algebra": {"test": 8}}
    assert (
        _load(store, "mmlu", "abstract_algebra")["test"]
        == _load(other, "mmlu", "abstract_algebra")["test"]
    )
    assert parquet.items == 2 * (5 + 3 + 8)


def test_gpqa_csv_read_as_written(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "store")
    manifest = import_benchmark("gpqa", layouts.write_gpqa_csv(tmp_path / "gpqa"), store, now=NOW)
    assert manifest.configs == {"gpqa_diamond": {"train": 6}}
    rows = _load(store, "gpqa", "gpqa_diamond")["train"]
    assert [r["Record ID"] for r in rows] == [f"rec{k}" for k in range(6)]
    assert set(rows[0]) == set(layouts.GPQA_COLUMNS)


def test_arc_hub_copy_and_original_release_agree(tmp_path: Path) -> None:
    hub, original = DataStore(tmp_path / "a"), DataStore(tmp_path / "b")
    import_benchmark("arc", layouts.write_arc_hub(tmp_path / "hub"), hub, now=NOW)
    manifest = import_benchmark(
        "arc", layouts.write_arc_original(tmp_path / "orig"), original, now=NOW
    )
    assert manifest.configs == {"ARC-Challenge": {"test": 8, "train": 6, "validation": 3}}
    assert _load(hub, "arc", "ARC-Challenge") == _load(original, "arc", "ARC-Challenge")


def test_hellaswag_gsm8k_and_wmdp_layouts(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "store")
    hs = import_benchmark(
        "hellaswag", layouts.write_hellaswag_jsonl(tmp_path / "hs"), store, now=NOW
    )
    assert hs.configs == {"default": {"train": 4, "validation": 6}}
    gsm = import_benchmark("gsm8k", layouts.write_gsm8k_jsonl(tmp_path / "gsm"), store, now=NOW)
    assert gsm.configs == {"main": {"test": 4, "train": 5}}
    wmdp = import_benchmark("wmdp", layouts.write_wmdp_hub(tmp_path / "wmdp"), store, now=NOW)
    assert wmdp.configs == {f"wmdp-{d}": {"test": 10} for d in ("bio", "chem", "cyber")}
    assert _load(store, "wmdp", "wmdp-bio")["test"] == layouts.wmdp_rows("bio")
    assert [m.benchmark for m in store.manifests()] == ["gsm8k", "hellaswag", "wmdp"]


def test_a_new_import_changes_the_content_hash_and_keeps_other_subsets(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "store")
    first = import_benchmark(
        "wmdp", layouts.write_wmdp_hub(tmp_path / "a", ("bio",)), store, now=NOW
    )
    second = import_benchmark(
        "wmdp", layouts.write_wmdp_hub(tmp_path / "b", ("chem",)), store, now=NOW
    )
    assert set(second.configs) == {"wmdp-bio", "wmdp-chem"}
    assert second.content_hash != first.content_hash
    assert len(second.sources) == 2


def test_files_in_no_known_layout_are_refused_naming_the_layouts(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"no gpqa files found.*gpqa_"):
        import_benchmark("gpqa", tmp_path / "x", DataStore(tmp_path / "s"), now=NOW)
    with pytest.raises(DataError, match="unknown benchmark 'mmlu-pro'; importable: mmlu"):
        import_benchmark("mmlu-pro", tmp_path / "x", DataStore(tmp_path / "s"), now=NOW)


def test_a_reimport_with_other_items_is_read_fresh_not_from_the_datasets_cache(
    tmp_path: Path,
) -> None:
    """`datasets` caches a local folder by its name and file names: each content gets its own
    snapshot folder, so re-imported items are never served stale."""
    store = DataStore(tmp_path / "store")
    import_benchmark(
        "mmlu", layouts.write_mmlu_csv(tmp_path / "a", ("anatomy",), n=8), store, now=NOW
    )
    assert len(_load(store, "mmlu", "anatomy")["test"]) == 8
    import_benchmark(
        "mmlu", layouts.write_mmlu_csv(tmp_path / "b", ("anatomy",), n=4), store, now=NOW
    )
    assert len(_load(store, "mmlu", "anatomy")["test"]) == 4
    assert len(list((store.folder("mmlu") / "snapshots").iterdir())) == 1


def test_the_data_commands_import_into_the_home_and_list_what_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tripwire.cli import app

    monkeypatch.setenv("TRIPWIRE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    empty = runner.invoke(app, ["data", "list"])
    assert "no benchmark data" in empty.output
    source = layouts.write_wmdp_hub(tmp_path / "wmdp", ("bio", "cyber"))
    imported = runner.invoke(app, ["data", "import", "wmdp", str(source)])
    assert imported.exit_code == 0, imported.output
    assert "wmdp: 2 subsets, 20 items" in imported.output
    manifest = DataStore(tmp_path / "home" / "data").manifest("wmdp")
    assert manifest is not None
    listed = runner.invoke(app, ["data", "list"])
    assert "wmdp-bio, wmdp-cyber" in listed.output
    assert manifest.content_hash[:12] in listed.output
    refused = runner.invoke(app, ["data", "import", "gpqa", str(source)])
    assert refused.exit_code == 2
    assert "no gpqa files found" in refused.output

"""Fast unit tests of the CLI's pure helpers; no server, no network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from app.cli.args import parse_input_shape, parse_recipe, shapes_to_dict
from app.cli.main import build_parser, main
from app.cli.output import jobs_table, models_table, progress_line, summary


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input=1,3,224,224", ("input", [1, 3, 224, 224])),
        ("x = 1, 8 ", ("x", [1, 8])),
        ("ids=1x128", ("ids", [1, 128])),
        ("a=b=2,3", ("a=b", [2, 3])),
        ("scalar=", ("scalar", [])),
    ],
)
def test_parse_input_shape(text: str, expected: tuple[str, list[int]]) -> None:
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize("text", ["input", "=1,2", "input=1,a", "input=1,0", "input=-1"])
def test_parse_input_shape_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_input_shape(text)


def test_shapes_to_dict_rejects_duplicates() -> None:
    assert shapes_to_dict([("a", [1]), ("b", [2])]) == {"a": [1], "b": [2]}
    with pytest.raises(ValueError, match="more than once"):
        shapes_to_dict([("a", [1]), ("a", [2])])


def test_parse_recipe_inline_file_and_list(tmp_path: Path) -> None:
    recipe = {"passes": [{"type": "quantize_dynamic", "per_channel": True}]}
    assert parse_recipe(json.dumps(recipe)) == recipe
    assert parse_recipe(json.dumps(recipe["passes"])) == recipe
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe))
    assert parse_recipe(f"@{path}") == recipe


@pytest.mark.parametrize("text", ["{not json", '{"type": "x"}', "42", "@/no/such/recipe.json"])
def test_parse_recipe_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_recipe(text)


def test_parser_collects_repeated_shapes() -> None:
    args = build_parser().parse_args(
        ["compress", "m.onnx", "--input-shape", "a=1,2", "--input-shape", "b=3", "-o", "o.onnx"]
    )
    assert args.input_shapes == [("a", [1, 2]), ("b", [3])]
    assert args.preset is None and args.recipe is None and args.output == Path("o.onnx")


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.onnx")
    assert main(["--url", "http://127.0.0.1:9", "compress", missing]) == 2
    assert "no such file" in capsys.readouterr().err
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    both = ["compress", str(model), "--preset", "fp16", "--recipe", '{"passes": []}']
    assert main(["--url", "http://127.0.0.1:9", *both]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["compress", str(model), "--input-shape", "bad"])
    assert exc.value.code == 2


def test_progress_line_and_summary() -> None:
    line = progress_line({"status": "running", "progress": 0.5, "stage": "benchmark"})
    assert line.startswith("[" + "#" * 15 + "-" * 15 + "]") and line.endswith("running benchmark")
    job = {
        "id": "j1",
        "status": "succeeded",
        "output_model_id": "m2",
        "metrics": {
            "original": {"size_bytes": 4096, "param_count": 1000, "latency_ms": {"p50": 2.0}},
            "compressed": {"size_bytes": 1024, "param_count": 1000, "latency_ms": {"p50": 1.0}},
            "compression_ratio": 4.0,
            "speedup_ratio": 2.0,
            "fidelity": {"cosine_similarity": 0.9999, "max_abs_error": 0.01},
            "warnings": ["kept 2 nodes in float"],
        },
    }
    text = summary(job)
    assert "job j1: succeeded" in text and "compression ratio: 4.00x" in text
    assert "4.00 KiB" in text and "warning: kept 2 nodes in float" in text
    failed = summary({"id": "j2", "status": "failed", "error": {"code": "oom", "message": "m"}})
    assert "error [oom]: m" in failed


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://u:1", "--api-key", "k", "status", "j1"],
        ["status", "j1", "--url", "http://u:1", "--api-key", "k"],
        ["--url", "http://other:2", "status", "j1", "--url", "http://u:1", "--api-key", "k"],
        ["cancel", "j1", "--url", "http://u:1", "--api-key", "k"],
    ],
    ids=["before", "after", "after-wins", "cancel"],
)
def test_server_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)

    assert (args.url, args.api_key, args.job_id) == ("http://u:1", "k", "j1")


def test_server_options_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPRESS_URL", "http://env:3")
    monkeypatch.setenv("MODELPRESS_API_KEY", "env-key")

    args = build_parser().parse_args(["compress", "m.onnx"])

    assert (args.url, args.api_key) == ("http://env:3", "env-key")


def test_summary_says_each_warning_once() -> None:
    # The API lists the benchmark's warnings in the job's too; the summary must not repeat them.
    job = {
        "id": "j1",
        "status": "succeeded",
        "warnings": ["kept 2 nodes in float", "slower than the original"],
        "metrics": {"speedup_ratio": 0.5, "warnings": ["slower than the original"]},
    }

    lines = summary(job).splitlines()

    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: kept 2 nodes in float",
        "warning: slower than the original",
    ]


def test_new_commands_parse() -> None:
    parser = build_parser()

    listed = parser.parse_args(["list", "--status", "running", "--model", "m1", "--limit", "5"])
    models = parser.parse_args(["list", "--models", "--json"])
    down = parser.parse_args(["download", "j1", "-o", "out.onnx", "--zstd"])

    assert (listed.command, listed.status, listed.model, listed.limit) == (
        "list",
        "running",
        "m1",
        5,
    )
    assert models.models and models.json and not listed.models
    assert (down.id, down.output, down.zstd) == ("j1", Path("out.onnx"), True)
    with pytest.raises(SystemExit):
        parser.parse_args(["list", "--status", "sleeping"])


def test_list_tables_have_one_line_per_row() -> None:
    jobs = [
        {"id": "j1", "status": "succeeded", "kind": "compress", "model_id": "m1",
         "output_model_id": "m2", "created_at": "2026-01-02T03:04:05.678Z"},
        {"id": "j2", "status": "queued", "kind": "auto", "model_id": "m1"},
    ]  # fmt: skip
    models = [{"id": "m2", "name": "mlp", "size_bytes": 2048, "job_id": "j1"}]

    job_lines, model_lines = jobs_table(jobs), models_table(models)

    assert len(job_lines) == 3 and "2026-01-02 03:04:05" in job_lines[1]
    assert job_lines[1].endswith("m1 -> m2") and job_lines[2].endswith("m1 -> -")
    assert len(model_lines) == 2 and "2.00 KiB" in model_lines[1] and "(job j1)" in model_lines[1]

"""Fast unit tests of the CLI's pure helpers; no server, no network."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from app.cli.args import build_job_payload, parse_input_shape, parse_recipe, shapes_to_dict
from app.cli.client import ApiError, Client, parse_retry_after
from app.cli.main import build_parser, main
from app.cli.output import progress_line, summary


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


def test_build_job_payload() -> None:
    assert build_job_payload("m1", "fp16", None) == {"model_id": "m1", "preset": "fp16"}
    recipe = {"passes": [{"type": "convert_fp16"}]}
    payload = build_job_payload("m1", None, recipe, {"x": [1, 2]}, {"runs": 5})
    assert payload == {
        "model_id": "m1",
        "recipe": recipe,
        "input_shapes": {"x": [1, 2]},
        "benchmark": {"runs": 5},
    }
    with pytest.raises(ValueError):
        build_job_payload("m1", "fp16", recipe)


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


def test_api_error_from_problem_json() -> None:
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no job"}
    resp = httpx.Response(404, json={**problem, "code": "not_found"})
    err = ApiError.from_response(resp)
    assert (err.status, err.code, err.detail) == (404, "not_found", "no job")
    plain = ApiError.from_response(httpx.Response(502, text="bad gateway"))
    assert (plain.code, plain.detail) == ("http_502", "bad gateway")


def test_download_streams_to_file(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models/m2/download":
            return httpx.Response(200, content=b"onnx-bytes")
        return httpx.Response(404, json={"code": "not_found", "detail": "nope"})

    with Client("http://test", transport=httpx.MockTransport(handler)) as client:
        dest = tmp_path / "out.onnx"
        assert client.download_model("m2", dest) == 10
        assert dest.read_bytes() == b"onnx-bytes"
        with pytest.raises(ApiError) as exc:
            client.download_model("zzz", tmp_path / "x.onnx")
        assert exc.value.code == "not_found"
        assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.onnx.part").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://u:1", "--api-key", "k", "status", "j1"],
        ["status", "j1", "--url", "http://u:1", "--api-key", "k"],
        ["--url", "http://other:2", "status", "j1", "--url", "http://u:1", "--api-key", "k"],
    ],
    ids=["before", "after", "after-wins"],
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


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
    err = ApiError.from_response(httpx.Response(503, headers={"Retry-After": "3"}, json={}))
    assert err.retry_after_s == 3.0

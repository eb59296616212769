"""The job subcommands: `compress` (check, upload, create, wait, download) and `status`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from modelpress_sdk import ApiError, Client, Job, Model
from pydantic import ValidationError

from app.cli.args import DEFAULT_PRESET, shapes_to_dict
from app.cli.interrupts import HeldInterrupt, Interrupted
from app.cli.output import outcome_lines, summary, to_dict
from app.cli.polling import fetch_job_patiently, wait_for_job
from app.compression.passes.recipes import Recipe

EXIT_OK, EXIT_JOB_FAILED = 0, 1
AUTO_PRESET = "auto"


class UsageError(Exception):
    """Bad arguments found after argparse (exit code 2)."""


def cmd_compress(args: argparse.Namespace, client: Client) -> int:
    """Check the options, upload, create the job, optionally wait and download."""
    if args.preset and args.recipe:
        raise UsageError("give either --preset or --recipe, not both")
    if args.auto and (args.recipe or args.preset not in (None, AUTO_PRESET)):
        raise UsageError("--auto chooses the recipe itself: leave out --preset and --recipe")
    for path in (args.model, args.calibration, args.eval):
        if path is not None and not path.is_file():
            raise UsageError(f"no such file: {path}")
    try:
        shapes = shapes_to_dict(args.input_shapes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    bench = {
        k: v
        for k, v in {"runs": args.runs, "warmup": args.warmup, "threads": args.threads}.items()
        if v is not None
    }
    preset = AUTO_PRESET if args.auto else None if args.recipe else (args.preset or DEFAULT_PRESET)
    check_preset_or_recipe(client, preset, args.recipe)
    objective = {
        key: value
        for key, value in {
            "optimize": args.optimize,
            "max_accuracy_drop": args.max_drop,
            "max_candidates": args.max_candidates,
        }.items()
        if value is not None
    }
    datasets = upload_datasets(client, calibration=args.calibration, eval=args.eval)

    def create_job(model_id: str) -> Job:
        return client.compress(
            model_id,
            preset,
            args.recipe,
            calibration=datasets.get("calibration"),
            evaluation=datasets.get("eval"),
            input_shapes=shapes or None,
            objective=objective or None,
            benchmark=bench or None,
        )

    job = upload_and_create_job(client, args.model, args.name, shapes, create_job)
    if not (args.wait or args.output):
        print(f"follow it with: modelpress status {job.id} --wait", file=sys.stderr)
        return report(to_dict(job), args.json)
    job = wait_interruptibly(client, job, args)
    no_recommendation = job.kind == AUTO_PRESET and not job.output_model_id
    if job.status == "succeeded" and args.output and no_recommendation:
        print(f"nothing written to {args.output}: no recommendation", file=sys.stderr)
        return report(to_dict(job), args.json)
    if job.status == "succeeded" and args.output:
        if not job.output_model_id:
            raise ApiError(200, "bad_response", "job succeeded without an output_model_id")
        try:
            written = client.download_model(job.output_model_id, args.output)
        except KeyboardInterrupt:
            raise Interrupted(
                f"download stopped; job {job.id} succeeded, its output is model "
                f"{job.output_model_id}"
            ) from None
        print(f"wrote {written} ({written.stat().st_size} bytes)", file=sys.stderr)
    return report(to_dict(job), args.json)


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    """Show one job, optionally waiting for it to finish."""
    if not args.wait:
        return report(to_dict(client.get_job(args.job_id)), args.json)
    try:
        job = fetch_job_patiently(client, args.job_id, args.retry_for, args.interval)
    except KeyboardInterrupt:
        raise Interrupted("stopped before the job was shown") from None
    return report(to_dict(wait_interruptibly(client, job, args)), args.json)


def report(job: dict[str, Any], as_json: bool) -> int:
    """Print the job and map its outcome to the exit code: failed, canceled, a rejected
    verdict and an auto search without a recommendation exit 1."""
    print(json.dumps(job, indent=2) if as_json else summary(job))
    if job.get("status") in {"failed", "canceled"}:
        return EXIT_JOB_FAILED
    if job.get("status") != "succeeded":
        return EXIT_OK
    lines, ok = outcome_lines(job)
    for line in lines:
        print(line, file=sys.stderr)
    return EXIT_OK if ok else EXIT_JOB_FAILED


def upload_datasets(client: Client, **paths: Path | None) -> dict[str, str]:
    """Upload --calibration and --eval; their dataset ids by option name."""
    ids: dict[str, str] = {}
    for option, path in paths.items():
        if path is not None:
            dataset = client.upload_dataset(path)
            print(f"uploaded {path.name} as dataset {dataset.id}", file=sys.stderr)
            ids[option] = dataset.id
    return ids


def wait_interruptibly(client: Client, job: Job, args: argparse.Namespace) -> Job:
    try:
        return wait_for_job(client, job, args.interval, args.retry_for)
    except KeyboardInterrupt:
        # Ctrl-C stops watching, not the job: say how to pick it up again.
        raise Interrupted(
            f"stopped waiting; the job keeps running: modelpress status {job.id} --wait"
        ) from None


def check_preset_or_recipe(
    client: Client, preset: str | None, recipe: dict[str, Any] | None
) -> None:
    """Refuse a bad preset or recipe here, before a model is uploaded for nothing."""
    if recipe is not None:
        try:
            Recipe.model_validate(recipe)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()[:3]
            )
            raise UsageError(f"invalid recipe: {problems}") from None
        return
    names = [p.name for p in client.presets()]
    if preset not in names:
        raise UsageError(f"unknown preset {preset!r}; known: {', '.join(sorted(names))}")


def upload_and_create_job(
    client: Client,
    path: Path,
    name: str | None,
    shapes: dict[str, list[int]],
    create_job: Callable[[str], Job],
) -> Job:
    """Upload the model and create its job; on refusal or Ctrl-C, leave no upload behind."""
    notice = "stopping once the server answers, to leave nothing behind (Ctrl-C again: now)"
    with HeldInterrupt(notice) as held:
        print(f"uploading {path.name} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
        try:
            model = client.upload_model(
                path, name, progress=lambda sent, total: held.raise_if_pending()
            )
        except KeyboardInterrupt:
            if held.forced:
                raise Interrupted(
                    "stopped during the upload; the server may have stored it (GET /v1/models)"
                ) from None
            raise Interrupted("stopped during the upload; nothing was stored") from None
        print(f"uploaded {path.name} as model {model.id}", file=sys.stderr)
        if held.pending:
            _drop_upload(client, model.id)
            raise Interrupted("stopped after the upload; it was deleted and no job was created")
        _check_input_names(client, model, shapes)
        try:
            job = create_job(model.id)
        except ApiError:
            _drop_upload(client, model.id)  # the job was refused: its upload is of no use
            raise
        except KeyboardInterrupt:
            raise Interrupted(
                f"stopped while creating the job; model {model.id} may have one (GET /v1/jobs)"
            ) from None
        print(f"created job {job.id}", file=sys.stderr)
        if held.pending:
            raise Interrupted(
                f"stopped; job {job.id} was created and keeps running: "
                f"modelpress status {job.id} --wait"
            )
    return job


def _check_input_names(client: Client, model: Model, shapes: dict[str, list[int]]) -> None:
    known = [spec.name for spec in model.inputs]
    unknown = [name for name in shapes if name not in known]
    if unknown:
        _drop_upload(client, model.id)
        raise UsageError(
            f"--input-shape: the model has no input named {', '.join(map(repr, unknown))}; "
            f"its inputs: {', '.join(known)}"
        )


def _drop_upload(client: Client, model_id: str) -> None:
    try:
        client.delete_model(model_id)
    except (ApiError, httpx.TransportError) as exc:
        print(f"could not delete the uploaded model {model_id}: {exc}", file=sys.stderr)
    else:
        print(f"deleted the uploaded model {model_id}", file=sys.stderr)

"""Entry point of the `modelpress` console script."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from app.cli import admin
from app.cli.args import build_job_payload, parse_input_shape, parse_recipe, shapes_to_dict
from app.cli.client import DEFAULT_URL, TERMINAL_STATUSES, ApiError, Client
from app.cli.output import progress_line, summary

EXIT_OK, EXIT_JOB_FAILED, EXIT_ERROR = 0, 1, 2
DEFAULT_PRESET = "int8-dynamic"


class UsageError(Exception):
    """Bad arguments found after argparse (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for all subcommands."""
    parser = argparse.ArgumentParser(
        prog="modelpress",
        description="Compress ONNX models with a ModelPress server.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("MODELPRESS_URL", DEFAULT_URL),
        help="API base URL (env MODELPRESS_URL, default %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("MODELPRESS_API_KEY"),
        help="bearer token, when the server needs one (env MODELPRESS_API_KEY)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    comp = sub.add_parser("compress", help="upload a model and start a compression job")
    comp.add_argument("model", type=Path, help="the .onnx file (or .zip with external data)")
    comp.add_argument(
        "--preset", help=f"preset name (default {DEFAULT_PRESET} unless --recipe is given)"
    )
    comp.add_argument(
        "--recipe", type=parse_recipe, help='recipe as JSON {"passes": [...]} or @recipe.json'
    )
    comp.add_argument(
        "--input-shape",
        dest="input_shapes",
        type=parse_input_shape,
        action="append",
        default=[],
        metavar="NAME=D1,D2,...",
        help="fix an input's shape, e.g. input=1,3,224,224 (repeatable)",
    )
    comp.add_argument("--name", help="name of the uploaded model")
    comp.add_argument("--runs", type=int, help="benchmark: timed runs")
    comp.add_argument("--warmup", type=int, help="benchmark: warm-up runs")
    comp.add_argument("--threads", type=int, help="benchmark: intra-op threads")
    comp.add_argument("-o", "--output", type=Path, help="download the result here (implies --wait)")
    _add_wait_flags(comp)

    stat = sub.add_parser("status", help="show a job")
    stat.add_argument("job_id")
    _add_wait_flags(stat)

    srv = sub.add_parser("serve", help="run the API, web form and a worker on this machine")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    srv.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port (env PORT, default %(default)s)",
    )
    admin.add_parser(sub)
    return parser


def _add_wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="poll until the job finishes")
    p.add_argument("--json", action="store_true", help="print the job as JSON, not a summary")
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default %(default)s)"
    )


def wait_for_job(client: Client, job: dict[str, Any], interval: float) -> dict[str, Any]:
    """Poll until the job is terminal, drawing a progress line on stderr."""
    tty = sys.stderr.isatty()
    last = ""
    while True:
        line = progress_line(job)
        if tty:
            # Pad so a shorter line fully overwrites a longer previous one.
            sys.stderr.write("\r" + line.ljust(len(last)))
            sys.stderr.flush()
        elif line != last:
            # Logs and CI: one line per change, no carriage returns.
            print(line, file=sys.stderr, flush=True)
        last = line
        if job.get("status") in TERMINAL_STATUSES:
            if tty:
                sys.stderr.write("\n")
            return job
        time.sleep(max(0.1, interval))
        job = client.get_job(str(job["id"]))


def _report(job: dict[str, Any], as_json: bool) -> int:
    """Print the job and map its status to the exit code."""
    print(json.dumps(job, indent=2) if as_json else summary(job))
    return EXIT_JOB_FAILED if job.get("status") in {"failed", "canceled"} else EXIT_OK


def cmd_compress(args: argparse.Namespace, client: Client) -> int:
    """Upload, create the job, optionally wait and download."""
    if args.preset and args.recipe:
        raise UsageError("give either --preset or --recipe, not both")
    if not args.model.is_file():
        raise UsageError(f"no such file: {args.model}")
    try:
        shapes = shapes_to_dict(args.input_shapes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    bench = {
        k: v
        for k, v in {"runs": args.runs, "warmup": args.warmup, "threads": args.threads}.items()
        if v is not None
    }
    preset = None if args.recipe else (args.preset or DEFAULT_PRESET)

    model = client.upload_model(args.model, args.name)
    print(f"uploaded {args.model.name} as model {model['id']}", file=sys.stderr)
    job = client.create_job(build_job_payload(model["id"], preset, args.recipe, shapes, bench))
    print(f"created job {job['id']}", file=sys.stderr)

    if args.wait or args.output:
        job = _wait_interruptibly(client, job, args.interval)
        if job.get("status") == "succeeded" and args.output:
            if not job.get("output_model_id"):
                raise ApiError(200, "bad_response", "job succeeded without an output_model_id")
            size = client.download_model(str(job["output_model_id"]), args.output)
            print(f"wrote {args.output} ({size} bytes)", file=sys.stderr)
    else:
        print(f"follow it with: modelpress status {job['id']} --wait", file=sys.stderr)
    return _report(job, args.json)


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    """Show one job, optionally waiting for it to finish."""
    job = client.get_job(args.job_id)
    if args.wait:
        job = _wait_interruptibly(client, job, args.interval)
    return _report(job, args.json)


def _wait_interruptibly(client: Client, job: dict[str, Any], interval: float) -> dict[str, Any]:
    try:
        return wait_for_job(client, job, interval)
    except KeyboardInterrupt:
        # Ctrl-C stops watching, not the job: say how to pick it up again.
        print(
            f"\nstopped waiting; the job keeps running: modelpress status {job['id']} --wait",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        # Only `serve` loads the server stack (uvicorn, migrations): the client commands start fast.
        from app.cli.serve import serve

        return serve(args.host, args.port)
    if args.command == "admin":
        return admin.run(args)

    try:
        with Client(args.url, api_key=args.api_key) as client:
            if args.command == "compress":
                return cmd_compress(args, client)
            return cmd_status(args, client)
    except UsageError as exc:
        print(f"error [usage]: {exc}", file=sys.stderr)
    except ApiError as exc:
        print(f"error [{exc.code}] (HTTP {exc.status}): {exc.detail}", file=sys.stderr)
    except httpx.TransportError as exc:
        print(f"error [connection]: cannot reach ModelPress at {args.url}: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error [io]: {exc}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

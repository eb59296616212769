"""Entry point of the `modelpress` console script."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.cli import admin, supervisor
from app.cli.args import (
    DEFAULT_PRESET,
    DEFAULT_RETRY_FOR_S,
    DEFAULT_URL,
    parse_input_shape,
    parse_recipe,
)


def _server_options(*, defaults: bool) -> argparse.ArgumentParser:
    """--url and --api-key, accepted before the subcommand and after it.

    Only the top-level copy carries defaults: a subcommand's copy defaulting too would
    overwrite a value given before the subcommand.
    """
    options = argparse.ArgumentParser(add_help=False)
    url_default = os.environ.get("MODELPRESS_URL", DEFAULT_URL)
    options.add_argument(
        "--url",
        default=url_default if defaults else argparse.SUPPRESS,
        help=f"API base URL (env MODELPRESS_URL, default {url_default})",
    )
    options.add_argument(
        "--api-key",
        default=os.environ.get("MODELPRESS_API_KEY") if defaults else argparse.SUPPRESS,
        help="bearer token, when the server needs one (env MODELPRESS_API_KEY)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for all subcommands."""
    parser = argparse.ArgumentParser(
        prog="modelpress",
        description="Compress ONNX models with a ModelPress server.",
        parents=[_server_options(defaults=True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = _server_options(defaults=False)

    comp = sub.add_parser(
        "compress", help="upload a model and start a compression job", parents=[server]
    )
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
    comp.add_argument(
        "--auto",
        action="store_true",
        help="search: try the candidates that fit the model, recommend the best within budget",
    )
    comp.add_argument(
        "--optimize",
        choices=["balanced", "latency", "size"],
        help="what the search makes better (default balanced)",
    )
    comp.add_argument(
        "--max-drop",
        type=float,
        metavar="POINTS",
        help="largest accuracy loss allowed, in the eval metric's units (default 0.01)",
    )
    comp.add_argument(
        "--max-candidates", type=int, metavar="N", help="--auto: most candidates to try"
    )
    comp.add_argument(
        "--calibration", type=Path, metavar="NPZ", help="calibration data (.npz), uploaded first"
    )
    comp.add_argument(
        "--eval",
        type=Path,
        metavar="NPZ",
        help="evaluation data (.npz, with labels for accuracy), uploaded first: verdicts need it",
    )
    comp.add_argument("--name", help="name of the uploaded model")
    comp.add_argument("--runs", type=int, help="benchmark: timed runs")
    comp.add_argument("--warmup", type=int, help="benchmark: warm-up runs")
    comp.add_argument("--threads", type=int, help="benchmark: intra-op threads")
    comp.add_argument("-o", "--output", type=Path, help="download the result here (implies --wait)")
    _add_wait_flags(comp)

    stat = sub.add_parser("status", help="show a job", parents=[server])
    stat.add_argument("job_id")
    _add_wait_flags(stat)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job", parents=[server])
    cancel.add_argument("job_id")
    cancel.add_argument("--json", action="store_true", help="print the job as JSON")

    lst = sub.add_parser("list", help="list the newest jobs (or models)", parents=[server])
    lst.add_argument("--models", action="store_true", help="list models instead of jobs")
    lst.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "canceled"])
    lst.add_argument("--model", metavar="MODEL_ID", help="only the jobs of this model")
    lst.add_argument(
        "--limit", type=int, default=20, help="at most this many (default %(default)s)"
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per line")

    down = sub.add_parser(
        "download", help="download a job's output model, or a model by id", parents=[server]
    )
    down.add_argument("id", metavar="JOB_OR_MODEL_ID")
    down.add_argument(
        "-o", "--output", type=Path, help="file or folder to write (default ./<model id>.onnx)"
    )
    down.add_argument(
        "--zstd", action="store_true", help="fetch it zstd-coded for transport (.onnx.zst)"
    )

    srv = sub.add_parser("serve", help="run the API, web form and a worker on this machine")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    srv.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port (env PORT, default %(default)s)",
    )
    srv.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without API keys: anyone who reaches it can use it",
    )
    admin.add_parser(sub)
    supervisor.add_parser(sub)
    return parser


def _add_wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="poll until the job finishes")
    p.add_argument("--json", action="store_true", help="print the job as JSON, not a summary")
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default %(default)s)"
    )
    p.add_argument(
        "--retry-for",
        type=float,
        default=DEFAULT_RETRY_FOR_S,
        metavar="SECONDS",
        help="while waiting, keep retrying a busy or unreachable server this long "
        "(default %(default)s)",
    )


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        # Only `serve` loads the server stack (uvicorn, migrations): the client commands start fast.
        from app.cli.serve import serve

        return serve(args.host, args.port, allow_no_auth=args.insecure_no_auth)
    if args.command == "admin":
        return admin.run(args)
    if args.command == "worker":
        return supervisor.run(args)

    # The SDK (httpx, pydantic) loads only for the commands that talk to a server.
    from app.cli.remote import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""The commands that talk to a server through the SDK: dispatch, exit codes, and `cancel`,
`list` and `download` (`compress` and `status` are in commands.py)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import httpx
from modelpress_sdk import ApiError, Client, IntegrityError, ModelPressError

from app.cli.commands import EXIT_OK, UsageError, cmd_compress, cmd_status, report
from app.cli.interrupts import Interrupted
from app.cli.output import jobs_table, models_table, to_dict

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


def run(args: argparse.Namespace) -> int:
    """Run a client command against --url; map every way it can end to an exit code."""
    commands = {
        "compress": cmd_compress,
        "status": cmd_status,
        "cancel": cmd_cancel,
        "list": cmd_list,
        "download": cmd_download,
    }
    try:
        with Client(args.url, api_key=args.api_key or "") as client:
            return commands[args.command](args, client)
    except UsageError as exc:
        print(f"error [usage]: {exc}", file=sys.stderr)
    except ApiError as exc:
        print(f"error [{exc.code}] (HTTP {exc.status}): {exc.detail}", file=sys.stderr)
    except httpx.TransportError as exc:
        print(f"error [connection]: cannot reach ModelPress at {args.url}: {exc}", file=sys.stderr)
    except IntegrityError as exc:
        print(f"error [integrity]: {exc}", file=sys.stderr)
    except ModelPressError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error [io]: {exc}", file=sys.stderr)
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    """Cancel a queued or running job and show it; exits 0 once it is canceled or had ended."""
    job = client.cancel_job(args.job_id)
    print(json.dumps(to_dict(job), indent=2) if args.json else f"job {job.id}: {job.status}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, client: Client) -> int:
    """The newest jobs (or models with --models), one line each; --json for JSON lines."""
    if args.models:
        rows = [to_dict(m) for m in itertools.islice(client.list_models(), args.limit)]
    else:
        found = client.list_jobs(status=args.status, model_id=args.model)
        rows = [to_dict(j) for j in itertools.islice(found, args.limit)]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print("\n".join((models_table if args.models else jobs_table)(rows)))
    return EXIT_OK


def cmd_download(args: argparse.Namespace, client: Client) -> int:
    """Download a job's output model, or a model by its id."""
    try:
        job = client.get_job(args.id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        model_id = args.id  # not a job: a model id, or the model's 404 says neither
    else:
        if not job.output_model_id:
            report(to_dict(job), as_json=False)
            raise UsageError(f"job {job.id} has no output model ({job.status})")
        model_id = job.output_model_id
    model = client.get_model(model_id)
    suffix = f".{model.packaging}" + (".zst" if args.zstd else "")
    dest: Path = args.output or Path(f"{model.id}{suffix}")
    if dest.is_dir():
        dest = dest / f"{model.id}{suffix}"
    try:
        written = client.download_model(model.id, dest, zstd=args.zstd)
    except KeyboardInterrupt:
        raise Interrupted(f"download of model {model.id} stopped; nothing was written") from None
    print(f"wrote {written} ({written.stat().st_size} bytes)", file=sys.stderr)
    return EXIT_OK

"""Pure parsers for CLI arguments: input shapes, recipes and the job payload."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# Defaults the parser shows; kept here so that building it loads no HTTP client.
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_PRESET = "int8-dynamic"
DEFAULT_RETRY_FOR_S = 300.0


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """Parse `name=1,3,224,224` into ("name", [1, 3, 224, 224])."""
    # rpartition: ONNX input names may themselves contain '=' but dims never do.
    name, sep, dims = text.rpartition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=D1,D2,... but got {text!r}")
    shape: list[int] = []
    for part in dims.replace("x", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            dim = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"dimension {part!r} of input {name!r} is not an integer"
            ) from None
        if dim < 1:
            raise argparse.ArgumentTypeError(f"dimension {dim} of input {name!r} must be >= 1")
        shape.append(dim)
    return name, shape


def shapes_to_dict(pairs: list[tuple[str, list[int]]]) -> dict[str, list[int]]:
    """Collect parsed --input-shape values; a name given twice is an error."""
    shapes: dict[str, list[int]] = {}
    for name, shape in pairs:
        if name in shapes:
            raise ValueError(f"input {name!r} given more than once")
        shapes[name] = shape
    return shapes


def parse_recipe(text: str) -> dict[str, Any]:
    """Parse a recipe given as inline JSON or as @path/to/recipe.json."""
    source = "--recipe"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read recipe file {path}: {exc}") from None
        source = str(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{source} is not valid JSON: {exc}") from None
    # A bare list of passes is accepted as shorthand for {"passes": [...]}.
    if isinstance(value, list):
        value = {"passes": value}
    if not isinstance(value, dict) or not isinstance(value.get("passes"), list):
        raise argparse.ArgumentTypeError(
            f'{source} must be {{"passes": [...]}} or a list of passes'
        )
    return value

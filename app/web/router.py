"""Route for the web form and the mount for its static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.compression.passes.recipes import PRESETS
from app.settings import Settings, get_settings

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
DEFAULT_PRESET = "int8-dynamic"

# Autoescape explicitly on: preset descriptions are data, never trusted markup.
_env = Environment(
    loader=FileSystemLoader(WEB_DIR / "templates"),
    autoescape=select_autoescape(["html"], default=True),
)

router = APIRouter()


def render_index(auth_enabled: bool = False) -> str:
    """The form page as HTML, with every preset as an option."""
    presets = [{"name": name, "description": p["description"]} for name, p in PRESETS.items()]
    default = DEFAULT_PRESET if DEFAULT_PRESET in PRESETS else next(iter(PRESETS), "")
    return _env.get_template("index.html").render(
        presets=presets, default_preset=default, auth_enabled=auth_enabled
    )


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def index(settings: Annotated[Settings, Depends(get_settings)]) -> HTMLResponse:
    """Serve the web form."""
    return HTMLResponse(render_index(settings.auth_enabled))


def mount_static(app: FastAPI) -> None:
    """Serve app.js and style.css at /static."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

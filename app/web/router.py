"""Routes of the web pages and the mount for their static files.

The pages are shells: they carry no tenant data, so they are served without a key. Their scripts
fetch the JSON API with the key the browser keeps for the tab, and render what it answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.compression.passes.recipes import PRESETS
from app.settings import Settings, get_settings

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
DEFAULT_PRESET = "int8-dynamic"
# Ids as the API makes them (uuid4 hex with dashes); anything else is answered 404 unrendered.
ID_PATTERN = r"^[0-9A-Za-z-]{1,64}$"

# Autoescape explicitly on: preset descriptions and ids are data, never trusted markup.
_env = Environment(
    loader=FileSystemLoader(WEB_DIR / "templates"),
    autoescape=select_autoescape(["html"], default=True),
)

router = APIRouter(include_in_schema=False)
SettingsDep = Annotated[Settings, Depends(get_settings)]
IdParam = Annotated[str, PathParam(pattern=ID_PATTERN)]


def render(template: str, settings: Settings | None = None, **context: Any) -> str:
    """A page as HTML, with whether the deployment asks for API keys."""
    auth_enabled = settings.auth_enabled if settings is not None else False
    return _env.get_template(template).render(auth_enabled=auth_enabled, **context)


@router.get("/", response_class=HTMLResponse)
def index(settings: SettingsDep) -> HTMLResponse:
    """The upload form, recent jobs and recent models."""
    presets = [{"name": name, "description": p["description"]} for name, p in PRESETS.items()]
    default = DEFAULT_PRESET if DEFAULT_PRESET in PRESETS else next(iter(PRESETS), "")
    html = render("index.html", settings, presets=presets, default_preset=default, page="index")
    return HTMLResponse(html)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: IdParam, settings: SettingsDep) -> HTMLResponse:
    """One job: status, recipe, metrics, charts, report and downloads."""
    return HTMLResponse(render("job.html", settings, job_id=job_id, page="job"))


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(model_id: IdParam, settings: SettingsDep) -> HTMLResponse:
    """One model and every variant made from it, side by side."""
    return HTMLResponse(render("model.html", settings, model_id=model_id, page="model"))


def mount_static(app: FastAPI) -> None:
    """Serve the pages' scripts and style sheet at /static."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

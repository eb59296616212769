"""The browser form served at `/`: one page, plain JS, no build step."""

from app.web.router import mount_static, router

__all__ = ["mount_static", "router"]

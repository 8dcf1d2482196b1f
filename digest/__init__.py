"""digest: gather a newsroom's day, rank it by rubric, render it as an MJML email, deliver it.

The public surface is re-exported here; the modules behind it are free to change.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, DigestError, SourceError
from .gather import Gathered, gather
from .model import Edition, Image, Item, Ranked, Rendered, Section, Variant
from .rank import rank
from .render import Renderer
from .settings import Settings, SourceSpec, defaults, load

__all__ = [
    "ConfigError",
    "DigestError",
    "Edition",
    "Gathered",
    "Image",
    "Item",
    "Ranked",
    "Renderer",
    "Rendered",
    "Section",
    "Settings",
    "SourceError",
    "SourceSpec",
    "Variant",
    "__version__",
    "defaults",
    "gather",
    "load",
    "rank",
]

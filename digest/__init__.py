"""digest: gather a newsroom's day, rank it by rubric, render it as an MJML email, deliver it.

The public surface is re-exported here; the modules behind it are free to change.
"""
from __future__ import annotations

__version__ = "0.1.0"

from digest.core.config import Settings, SourceSpec, defaults, load
from digest.core.errors import ConfigError, DigestError, SourceError
from digest.core.model import Edition, Image, Item, Ranked, Rendered, Section, Variant
from digest.pipeline.gather import Gathered, gather
from digest.pipeline.rank import rank
from digest.pipeline.render import Renderer

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

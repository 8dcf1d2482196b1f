"""digest: gather a newsroom's day, rank it by rubric, render it as an MJML email, deliver it.

The public surface is re-exported here, and loaded when first used (importing `digest` to run one
command loads only that command's floors); the modules behind it are free to change.

    digest/core/        the data that crosses stages, the errors, the configuration
    digest/pipeline/    sources → gather → rank → render, the archive pages (edition.py runs them)
    digest/delivery/    the ledger, personalised messages, transports, the send loop
    digest/web/         digest serve, the preview, the email checks
    digest/cli/         the command line
    subscribers/        the audience: store, import/export, tokens (on the core only)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name → the module that defines it
_PUBLIC = {
    "ConfigError": "digest.core.errors",
    "DigestError": "digest.core.errors",
    "SourceError": "digest.core.errors",
    "Edition": "digest.core.model",
    "Image": "digest.core.model",
    "Item": "digest.core.model",
    "Ranked": "digest.core.model",
    "Rendered": "digest.core.model",
    "Section": "digest.core.model",
    "Variant": "digest.core.model",
    "Settings": "digest.core.config",
    "SourceSpec": "digest.core.config",
    "defaults": "digest.core.config",
    "load": "digest.core.config",
    "Gathered": "digest.pipeline.gather",
    "gather": "digest.pipeline.gather",
    "rank": "digest.pipeline.rank",
    "Renderer": "digest.pipeline.render",
    "DayEdition": "digest.pipeline.edition",
    "build": "digest.pipeline.edition",
    "prepare": "digest.pipeline.edition",
}

__all__ = [
    "__version__", "ConfigError", "DayEdition", "DigestError", "Edition", "Gathered", "Image", "Item",
    "Ranked", "Rendered", "Renderer", "Section", "Settings", "SourceError", "SourceSpec", "Variant",
    "build", "defaults", "gather", "load", "prepare", "rank",
]

if TYPE_CHECKING:
    from digest.core.config import Settings, SourceSpec, defaults, load
    from digest.core.errors import ConfigError, DigestError, SourceError
    from digest.core.model import Edition, Image, Item, Ranked, Rendered, Section, Variant
    from digest.pipeline.edition import DayEdition, build, prepare
    from digest.pipeline.gather import Gathered, gather
    from digest.pipeline.rank import rank
    from digest.pipeline.render import Renderer


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'digest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])

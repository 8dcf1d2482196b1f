"""The public surface: what `import digest` offers, and that importing it loads no floor it does not use."""
from __future__ import annotations

import subprocess
import sys

import digest

from support.paths import ROOT


def test_the_public_names_are_what_they_should_be():
    assert digest.__all__ == ["__version__", "ConfigError", "DayEdition", "DigestError", "Edition", "Gathered",
                              "Image", "Item", "Ranked", "Rendered", "Renderer", "Section", "Settings",
                              "SourceError", "SourceSpec", "Variant", "build", "defaults", "gather", "load",
                              "prepare", "rank"]
    for name in digest.__all__:
        assert getattr(digest, name) is not None, name
    from digest.core.errors import DigestError
    from digest.pipeline.edition import prepare

    assert digest.DigestError is DigestError and digest.prepare is prepare


def test_importing_digest_loads_no_floor_and_the_command_line_loads_only_what_a_command_needs():
    code = ("import sys, digest, digest.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('digest.', 'subscribers', 'sqlalchemy', 'premailer', "
            "'aiosmtplib', 'starlette', 'uvicorn', 'mjml'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    modules = eval(loaded)  # noqa: S307  (our own subprocess's repr of a list of strings)
    assert not [m for m in modules if m.split(".")[0] in ("sqlalchemy", "premailer", "aiosmtplib", "starlette",
                                                          "uvicorn", "mjml")], modules
    assert not [m for m in modules if m.startswith(("digest.pipeline", "digest.delivery", "digest.web",
                                                    "subscribers"))], modules

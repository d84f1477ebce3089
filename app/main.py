"""The Faust entry point: ``faust -A app.main worker``.

Reads the configuration contract from the environment (see app/infra/settings.py), loads
the charts and handler modules, and exposes ``app``. A bad chart or handler module stops
the worker with ``file:line: reason`` lines and exit code 2, not a traceback.
"""

from __future__ import annotations

import sys

import faust

from app.core.errors import ChartError
from app.infra.chart_files import HandlerImportError
from app.infra.faust_app import build_app
from app.infra.registry import RegistryError
from app.infra.runtime import load_registry
from app.infra.settings import Settings, SettingsError
from app.infra.topics import ManifestError


def create_app() -> faust.App:
    try:
        settings = Settings.from_env()
        return build_app(settings, load_registry(settings))
    except ChartError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
    except (HandlerImportError, SettingsError, ManifestError, RegistryError) as exc:
        print(f"omninode: {exc}", file=sys.stderr)
    raise SystemExit(2)


app = create_app()

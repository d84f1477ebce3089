"""``omninode topics list``: every topic name a deployment uses, resolved from the settings
(no Kafka needed), and the consumer group outside consumers must not reuse."""

from __future__ import annotations

import pytest

from app.cli.main import main
from app.infra.settings import Settings


def test_topics_list_resolves_every_name_with_the_app_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNINODE_APP_ID", "shop")
    assert main(["topics", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[:-1]]
    settings = Settings.from_env()
    manifest = [spec.name for spec in settings.manifest().values()]  # the examples: default
    assert names[: len(manifest)] == manifest
    assert "shop.commands.default" in names
    assert names[0] == "shop.events" and "shop.journal" in names  # the app id replaces "omninode"
    assert "shop-snapshots-changelog" in names and "shop-timers-changelog" in names
    assert lines[-1].startswith("consumer group: shop (the workers'; ")
    assert not any(name.startswith("omninode") for name in names)

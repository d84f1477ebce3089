"""Task queues in the runtime: one command topic per queue the charts name, the queues a
worker serves, and a legacy output still reaching a topic."""

from __future__ import annotations

import faust
import pytest

from app.core.handlers import HandlerRegistry
from app.core.router import ChartRegistry
from app.infra import topics
from app.infra.faust_app import FaustOutbox, build_app
from app.infra.runtime import deployment_manifest, served_kinds, served_queues
from app.infra.settings import Settings, SettingsError
from app.infra.topics import load_manifest
from tests.helpers import chart

QUEUED = chart("""\
rss: 1
workflow: pay
version: 1
initial: a
states:
  a:
    entry:
      effects: [{name: charge, queue: payments, compensate: refund}, {name: notify}]
      computes: [{name: score, queue: ml}]
    on: {charge.done: b}
  b: {type: final}
""")


def test_the_manifest_has_one_command_topic_per_queue() -> None:
    manifest = load_manifest(queues=("payments", "default", "ml"), namespace="shop")
    commands = {k: v for k, v in manifest.items() if k.startswith(topics.COMMANDS_PREFIX)}
    assert sorted(commands) == [
        "omninode.commands.default",
        "omninode.commands.ml",
        "omninode.commands.payments",
    ]
    payments = commands["omninode.commands.payments"]
    assert payments.name == "shop.commands.payments"
    assert payments.value_schema == "omninode.Command"
    assert "task queue payments" in payments.purpose
    assert "{queue}" not in "".join(spec.purpose for spec in manifest.values())


def test_the_deployment_manifest_takes_the_queues_from_the_charts() -> None:
    manifest = deployment_manifest(Settings(app_id="shop"), [QUEUED])
    names = [spec.name for spec in manifest.values()]
    assert {"shop.commands.default", "shop.commands.payments", "shop.commands.ml"} <= set(names)
    assert topics.command_topic("ml") in manifest


def registry(*names: tuple[str, str]) -> HandlerRegistry:
    handlers = HandlerRegistry()
    for kind, name in names:
        handlers.register(kind, name, lambda data, ctx: {})  # type: ignore[arg-type]
    return handlers


def test_a_worker_serves_the_queues_it_has_handlers_for() -> None:
    settings = Settings()
    kinds = served_kinds(settings)
    assert served_queues(settings, [QUEUED], registry(("effect", "notify")), kinds) == ("default",)
    both = registry(("effect", "refund"), ("compute", "score"))
    assert served_queues(settings, [QUEUED], both, kinds) == ("ml", "payments")
    assert served_queues(settings, [QUEUED], registry(), kinds) == ()


def test_roles_limit_the_kinds_and_so_the_queues() -> None:
    effects_only = Settings(roles=frozenset({"effects"}))
    handlers = registry(("compute", "score"), ("effect", "notify"))
    kinds = served_kinds(effects_only)
    assert kinds == frozenset({"effect"})
    assert served_queues(effects_only, [QUEUED], handlers, kinds) == ("default",)
    reducer_only = Settings(roles=frozenset({"reducer"}))
    assert served_queues(reducer_only, [QUEUED], handlers, served_kinds(reducer_only)) == ()


def test_omninode_queues_overrides_the_handlers_queues() -> None:
    settings = Settings.from_env({"OMNINODE_QUEUES": "payments, ml"})
    assert settings.queues == frozenset({"payments", "ml"})
    kinds = served_kinds(settings)
    assert served_queues(settings, [QUEUED], registry(), kinds) == ("ml", "payments")


@pytest.mark.parametrize("bad", ["Pay", "a.b", "-x", "x" * 49])
def test_a_bad_queue_name_in_the_environment_is_a_settings_error(bad: str) -> None:
    with pytest.raises(SettingsError, match="OMNINODE_QUEUES"):
        Settings.from_env({"OMNINODE_QUEUES": bad})


def test_outputs_stored_before_task_queues_are_sent_to_the_default_queue() -> None:
    """A snapshot's stored output (re-sent on redelivery) may name the old per-kind topics."""
    app = faust.App("legacy-test", broker="kafka://127.0.0.1:1")  # never started
    outbox = FaustOutbox(app, Settings(app_id="shop").manifest())
    for old in ("omninode.commands.effect", "omninode.commands.compute"):
        assert outbox.topic(old).get_topic_name() == "shop.commands.default"
    with pytest.raises(KeyError):
        outbox.topic("omninode.commands.nobody")


def test_a_worker_app_consumes_the_queues_it_serves() -> None:
    """build_app wires one commands agent over the served queues' topics (never started)."""
    charts = ChartRegistry([QUEUED])
    handlers = registry(("effect", "charge"), ("effect", "refund"))
    settings = Settings(app_id="shop", roles=frozenset({"reducer", "effects"}))
    app = build_app(settings, charts, handlers)
    agent = app.agents["omninode.commands.payments"]  # one agent per served queue
    assert set(agent.channel.topics) == {"shop.commands.payments"}  # type: ignore[attr-defined]
    assert not any(
        name.startswith("omninode.commands.") for name in app.agents if "default" in name
    )
    reducer_only = build_app(
        Settings(app_id="other", roles=frozenset({"reducer"})), charts, handlers
    )
    assert not any(name.startswith("omninode.commands") for name in reducer_only.agents)
    assert "omninode.reducer" in reducer_only.agents


def test_queue_concurrency_is_read_per_queue_and_bounded() -> None:
    settings = Settings.from_env({"OMNINODE_QUEUE_CONCURRENCY": "payments=4, ml=1"})
    assert settings.queue_concurrency == {"payments": 4, "ml": 1}
    charts = ChartRegistry([QUEUED])
    handlers = registry(("effect", "charge"), ("compute", "score"))
    app = build_app(Settings(queue_concurrency={"payments": 4}), charts, handlers)
    # One Faust actor per queue; the queue's concurrency is its record loop's (agent_loop).
    assert app.agents["omninode.commands.payments"].fun.concurrency == 4  # type: ignore[attr-defined]
    assert app.agents["omninode.commands.ml"].fun.concurrency == 8  # the worker's default  # type: ignore[attr-defined]
    assert app.agents["omninode.commands.ml"].concurrency == 1
    for bad in ("payments", "payments=0", "payments=257", "Pay=2", "payments=x"):
        with pytest.raises(SettingsError, match="OMNINODE_QUEUE_CONCURRENCY"):
            Settings.from_env({"OMNINODE_QUEUE_CONCURRENCY": bad})


def test_reducer_batch_settings_are_bounded() -> None:
    settings = Settings.from_env(
        {"OMNINODE_REDUCER_BATCH": "1", "OMNINODE_REDUCER_BATCH_WAIT_MS": "20"}
    )
    assert (settings.reducer_batch, settings.reducer_batch_wait_ms) == (1, 20)
    assert (Settings.from_env({}).reducer_batch, Settings.from_env({}).reducer_batch_wait_ms) == (
        500,
        0,
    )
    for name, bad in (
        ("OMNINODE_REDUCER_BATCH", "0"),
        ("OMNINODE_REDUCER_BATCH", "10001"),
        ("OMNINODE_REDUCER_BATCH_WAIT_MS", "1001"),
        ("OMNINODE_REDUCER_BATCH_WAIT_MS", "-1"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: bad})

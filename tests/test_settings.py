"""The configuration contract and the topic manifest."""

from __future__ import annotations

import pytest

from app.infra import topics
from app.infra.avro import codec
from app.infra.settings import Settings, SettingsError
from app.infra.topics import load_manifest


def test_settings_read_the_configuration_contract() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "OMNINODE_RSS_PATH": "a/:b/",
            "OMNINODE_HANDLERS": "x.handlers, y",
            "OMNINODE_ROLES": "reducer,projector",
            "OMNINODE_APP_ID": "staging",
        }
    )
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.rss_paths == ("a/", "b/") and settings.handler_modules == ("x.handlers", "y")
    assert settings.roles == {"reducer", "projector"} and settings.profile == "production"
    assert settings.topic(topics.EVENTS) == "staging.events"
    assert Settings.from_env({}).rss_paths == ("rss/",)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMNINODE_PROFILE": "fast"}, "OMNINODE_PROFILE must be production or local"),
        ({"OMNINODE_ROLES": "reducer,cook"}, "unknown OMNINODE_ROLES ['cook']"),
        ({"OMNINODE_PARTITIONS": "many"}, "OMNINODE_PARTITIONS must be an integer"),
        ({"OMNINODE_PROCESSING_GUARANTEE": "maybe"}, "must be at_least_once or exactly_once"),
        (
            {"OMNINODE_PROCESSING_GUARANTEE": "exactly_once", "OMNINODE_PROFILE": "local"},
            "needs Kafka transactions, which the embedded broker does not offer",
        ),
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_env(env)


def test_the_manifest_defines_every_topic_the_runtime_uses() -> None:
    manifest = load_manifest()
    used = {
        topics.EVENTS,
        topics.RESULTS,
        topics.JOURNAL,
        topics.DEFAULT_COMMANDS,
        topics.DEAD_LETTERS,
        topics.INSTANCE_VIEWS,
        topics.STATE_DELTAS,
        topics.STATE_COUNTS,
    }
    assert set(manifest) == used
    for spec in manifest.values():
        codec(spec.value_schema)  # every declared schema exists and parses
    assert manifest[topics.INSTANCE_VIEWS].cleanup_policy == "compact"
    assert manifest[topics.JOURNAL].retention_ms == -1
    partitions = {manifest[t].partitions for t in (topics.EVENTS, topics.RESULTS)}
    assert len(partitions) == 1  # co-partitioned with the snapshot table


def test_local_settings_never_leak_into_production() -> None:
    from app.infra.faust_app import profile_options  # noqa: PLC0415

    assert profile_options(Settings(profile="production")) == {}
    assert profile_options(Settings(profile="local"))["broker_session_timeout"] == 10
    exactly_once = Settings.from_env({"OMNINODE_PROCESSING_GUARANTEE": "exactly_once"})
    assert profile_options(exactly_once) == {"processing_guarantee": "exactly_once"}

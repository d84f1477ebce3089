"""The Faust application: reducer, worker, timer and projector agents over the manifest's topics.

``build_app`` wires the agents a worker runs (``OMNINODE_ROLES``) to the topics; the
per-record logic lives in reducer_agent, worker_agent, timer_service and projector_agent,
which know nothing of Faust. Start it with ``faust -A app.main worker``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TP, AppT, Message, ProducerT, StreamT

from app.core.handlers import HandlerRegistry, default_handlers
from app.core.router import ChartRegistry
from app.infra import agent_loop, faust_transport, log_context, send_batches, topics, tracing
from app.infra.agent_loop import Handle
from app.infra.avro import register_faust_codecs
from app.infra.batch_table import BatchTable
from app.infra.http_server import install_api, web_options
from app.infra.http_views import JOURNAL_INDEX_TABLE, indexed
from app.infra.instance_store import TableInstanceStore
from app.infra.metrics import StateCollector, consumer_lag, metrics, use_collector
from app.infra.outbox import KafkaStepOutbox
from app.infra.projector_agent import CountsProjector, InstanceProjector
from app.infra.reducer_agent import Reducer
from app.infra.registry import install_registry_ids
from app.infra.runtime import deployment_manifest, served_kinds, served_queues
from app.infra.send_batches import SendBatches
from app.infra.settings import Settings
from app.infra.timer_service import TimerService
from app.infra.topics import TopicSpec
from app.infra.worker_agent import CommandRunner
from app.spi.envelopes import DispatchKind
from app.spi.limits import Limits

log = logging.getLogger("omninode")
TIMER_INTERVAL_S = 0.5
# Measured on the embedded broker (2,000 three-effect instances, two workers): with no
# linger it spent more CPU than either worker on tiny produce requests; 10 ms took it
# from 4.9 to 1.5 CPU-seconds and the run from 282 to 443 instances/s; 20 ms added latency.
LOCAL_PRODUCER_LINGER_S = 0.010
PROCESSED_TTL_S = 7 * 24 * 3600  # answers to commands are kept as long as command topics


class FaustOutbox:
    """Sends through the app's producer without awaiting delivery (Faust flushes on commit)."""

    def __init__(self, app: faust.App, manifest: dict[str, TopicSpec]) -> None:
        self._app = app
        self._producer: ProducerT | None = None
        self._send_batches: SendBatches | None = None
        self._names: dict[str, str] = {}
        self._topics = {
            name: app.topic(
                spec.name,
                partitions=spec.partitions,
                key_serializer="raw",
                value_serializer="raw",
                retention=spec.retention_ms / 1000 if spec.retention_ms > 0 else None,
                compacting=spec.cleanup_policy == "compact",
            )
            for name, spec in manifest.items()
        }

    def topic(self, name: str) -> faust.TopicT:
        return self._topics[topics.LEGACY_NAMES.get(name, name)]

    async def send(self, topic: str, key: bytes | None, value: bytes) -> object:
        """Buffered; the result is the producer's future of the record's acknowledgement.

        Straight to the app's producer, as Faust's ``Topic.send`` ends up doing, without
        its per-record wrapping (a FutureMessage, send sensors, a completion callback),
        which cost the reducer more than the producer's own ``send`` in its profile
        (docs/performance.md). The producer's flush before each commit covers these
        records as it covers Faust's."""
        headers = tracing.outgoing_headers()  # None unless OpenTelemetry records spans
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = self.topic(topic).get_topic_name()
        batches = send_batches.current()
        if batches is not None:
            delivered = batches.append(name, key, value, headers)
            if delivered is not None:
                return delivered
        producer = await self._started_producer()
        return await producer.send(name, key, value, None, None, headers)

    async def _started_producer(self) -> ProducerT:
        producer = self._producer
        if producer is None:
            producer = self._producer = await self._app.maybe_start_producer()
        return producer

    @asynccontextmanager
    async def batched(self) -> AsyncIterator[None]:
        """Within, this task's keyed sends are appended to producer batches, one per topic
        partition (``send_batches``), handed to the producer on the way out (not if an
        exception leaves: nothing of the batch is acked then). Other tasks' sends, and
        every send under exactly-once (its transactions take records one by one), go
        straight to the producer as before."""
        producer = await self._started_producer()
        if not isinstance(producer, faust_transport.Producer):
            yield
            return
        if self._send_batches is None:
            self._send_batches = SendBatches(producer.aiokafka_producer())
        with send_batches.sending_in(self._send_batches):
            yield
        await self._send_batches.submit()

    async def submit_batched(self) -> None:
        """Hand what this task's batch appended so far to the producer (before a commit:
        the producer's flush covers only what it holds)."""
        batches = send_batches.current()
        if batches is not None:
            await batches.submit()


def profile_options(settings: Settings) -> dict[str, Any]:
    """Faust settings of the chosen profile. The local one works around the embedded broker:
    a short session timeout (a join waits half of it) and a producer linger (its cost is per
    request). Its wrong ListOffsets is handled by the ``omninode-local://`` transport,
    which reads end offsets from fetch responses. It keeps no standby replicas: on one
    machine they only copy each other's changelogs (about a fifth of a worker's CPU), and
    a worker that takes over a partition restores its tables from the changelog."""
    if settings.processing_guarantee == "exactly_once":
        return {"processing_guarantee": "exactly_once"}
    if settings.is_local:
        return {
            "broker_session_timeout": 10,
            "producer_linger": LOCAL_PRODUCER_LINGER_S,
            "topic_replication_factor": 1,
            "table_standby_replicas": 0,
        }
    return {}


def credentials(settings: Settings) -> Any:
    security = settings.security
    if security.protocol == "PLAINTEXT":
        return None
    context = settings.aiokafka_options().get("ssl_context")
    ssl_context = context if isinstance(context, ssl.SSLContext) else None
    if security.sasl_mechanism:
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            mechanism=security.sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


def build_app(
    settings: Settings, registry: ChartRegistry, handlers: HandlerRegistry = default_handlers
) -> faust.App:
    manifest = deployment_manifest(settings, registry)
    partitions = manifest[topics.EVENTS].partitions
    register_faust_codecs()
    tracing.activate()  # after the handler modules, which may configure OpenTelemetry
    log_context.install()
    install_registry_ids(settings.schema_registry_url, manifest)  # SCHEMA_REGISTRY_URL
    options: dict[str, Any] = {
        "topic_partitions": partitions,
        "topic_replication_factor": manifest[topics.EVENTS].replication,
        **profile_options(settings),
        **web_options(settings),
    }
    scheme = "omninode-local" if settings.is_local else "omninode"
    app = faust.App(
        settings.app_id,
        broker=[f"{scheme}://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=credentials(settings),
        store="rocksdb://",
        TableManager="app.infra.recovery:TableManager",  # restores in chunks (recovery.py)
        **options,
    )
    outbox = FaustOutbox(app, manifest)
    metrics().known_workflows.update(chart.workflow for chart in registry)
    gauges = _Gauges()
    if "reducer" in settings.roles:
        batch = (settings.reducer_batch, settings.reducer_batch_wait_ms / 1000)
        gauges.timers = _reducer_agents(app, outbox, registry, partitions, settings.limits, batch)
        _declare_command_topics(app, outbox, manifest)
    kinds = served_kinds(settings)
    queues = served_queues(settings, registry, handlers, kinds)
    if queues:
        _command_agents(app, outbox, settings, handlers, kinds, queues, partitions)
    if "projector" in settings.roles:
        gauges.counts = _projector_agents(app, outbox, partitions)
    use_collector(gauges.collector(app))
    install_api(app, settings, registry, outbox, partitions)
    return app


@dataclass
class _Gauges:
    """What the worker's scrape-time gauges read, from the agents it runs."""

    timers: TimerService | None = None
    counts: Any = None  # the state-counts table

    def collector(self, app: faust.App) -> StateCollector:
        def lag() -> dict[tuple[str, int], int]:
            monitor = app.monitor
            end, read, committed = (
                {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
                for offsets in (
                    monitor.tp_end_offsets,
                    monitor.tp_read_offsets,
                    monitor.tp_committed_offsets,
                )
            )
            return consumer_lag(end, read, committed)

        timers, counts = self.timers, self.counts
        return StateCollector(
            counts=counts.items if counts is not None else None,
            timers=(lambda: timers.armed) if timers is not None else None,
            lag=lag,
        )


def _command_agents(
    app: faust.App,
    outbox: FaustOutbox,
    settings: Settings,
    handlers: HandlerRegistry,
    kinds: frozenset[DispatchKind],
    queues: Sequence[str],
    partitions: int,
) -> None:
    """One agent per served task queue, running at most its concurrency of commands at
    once (``OMNINODE_QUEUE_CONCURRENCY``, else ``OMNINODE_WORKER_CONCURRENCY``); the
    answers kept by command id are one table for all of them."""
    processed = _table(app, "processed-commands", partitions, ttl=PROCESSED_TTL_S)
    for queue in queues:
        concurrency = settings.queue_concurrency.get(queue, settings.worker_concurrency)
        runner = CommandRunner(
            handlers,
            outbox,
            processed,
            limits=settings.limits,
            concurrency=concurrency,
            kinds=kinds,
        )
        topic = topics.command_topic(queue)
        _consume(app, outbox, topic, f"commands.{queue}", concurrency, runner.handle)


def _declare_command_topics(
    app: faust.App, outbox: FaustOutbox, manifest: dict[str, TopicSpec]
) -> None:
    """Create the command topic of every task queue the charts name, if missing: the
    reducer sends commands for queues no worker of ours reads (another service's), and
    nothing else would create those topics outside ``omninode topics apply``."""
    queues = [name for name in manifest if name.startswith(topics.COMMANDS_PREFIX)]

    async def declare() -> None:
        for name in queues:
            await outbox.topic(name).maybe_declare()

    app.task(declare)


def _table(app: faust.App, name: str, partitions: int, ttl: int | None = None) -> Any:
    options: dict[str, Any] = {"driver": "rocksdict"}
    if ttl is not None:
        options["ttl"] = ttl  # RocksDB drops entries older than this at compaction
    return app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes, options=options)


class RawSchema(faust.Schema[bytes, bytes]):
    """Keys and values as the bytes on the wire, like Faust's ``raw`` codec, without the two
    serializer-registry lookups per record that Faust's schema makes to apply it (every
    agent decodes its records itself, dead-lettering what it cannot)."""

    def compile(
        self,
        app: AppT,
        *,
        on_key_decode_error: Any = None,
        on_value_decode_error: Any = None,
        default_propagate: bool = False,
    ) -> Any:
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = default_propagate) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


def _consume(
    app: faust.App,
    outbox: FaustOutbox,
    topic_names: str | tuple[str, ...],
    name: str,
    concurrency: int,
    handle: Handle,
    batch: tuple[Sequence[BatchTable], int, float] | None = None,
) -> None:
    """An agent feeding every record to ``handle`` (agent_loop); with ``batch`` (tables,
    size, wait), in batches whose table writes are coalesced."""
    logical = (topic_names,) if isinstance(topic_names, str) else topic_names
    real_names = [outbox.topic(t).get_topic_name() for t in logical]
    channel = app.topic(*real_names, schema=RawSchema(key_serializer="raw", value_serializer="raw"))
    agent: Callable[[StreamT[bytes]], AsyncIterator[None]]
    if batch is None:
        agent = agent_loop.record_loop(name, outbox, handle, concurrency)
    elif batch[1] > 1:
        agent = agent_loop.batch_loop(name, outbox, handle, *batch, sending=outbox.batched)
    else:  # one record per batch: a producer batch of its own would only wait for the last
        agent = agent_loop.batch_loop(name, outbox, handle, *batch)
    # One actor: a record loop runs its own concurrency (Faust's concurrency=N actors
    # would each pay Faust's per-record stream iterator).
    app.agent(channel, name=f"omninode.{name}")(agent)


def _reducer_agents(
    app: faust.App,
    outbox: FaustOutbox,
    registry: ChartRegistry,
    partitions: int,
    limits: Limits,
    batch: tuple[int, float],
) -> TimerService:
    # The reducer writes its tables through write-behind views: once per key per batch.
    snapshots = BatchTable(_table(app, topics.SNAPSHOT_TABLE, partitions))
    timers = BatchTable(_table(app, topics.TIMER_TABLE, partitions))

    def committed(topic: str, partition: int) -> int | None:
        # Faust's monitor records every offset commit (after the producer flush).
        offset: int | None = app.monitor.tp_committed_offsets.get(TP(topic, partition))
        return offset

    async def commit() -> None:
        # Flushes the producer, then commits the offsets of every record acked so far;
        # the batch's records appended so far are handed to the producer first.
        await outbox.submit_batched()
        await app.consumer.commit()

    store = TableInstanceStore(snapshots, timers, committed, commit, cache_is_current=True)

    def forget(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        store.forget()  # the tables' partitions change hands and are restored

    # Faust keeps weak references to receivers unless told otherwise.
    app.on_partitions_revoked.connect(forget, weak=False)
    app.on_partitions_assigned.connect(forget, weak=False)
    step_outbox = KafkaStepOutbox(outbox, delivered=store.delivered)
    reducer = Reducer(registry, store, step_outbox, limits, partitions, metrics())
    inbound = (topics.EVENTS, topics.RESULTS)
    tables = (snapshots, timers)
    _consume(app, outbox, inbound, "reducer", 1, reducer.handle, (tables, *batch))
    service = TimerService(outbox)

    async def fire_timers() -> None:
        await service.fire(store.armed_timers(), datetime.now(UTC))

    app.timer(TIMER_INTERVAL_S, name="omninode.timers")(fire_timers)
    return service


def _projector_agents(app: faust.App, outbox: FaustOutbox, partitions: int) -> Any:
    views = _table(app, "instance-views", partitions)
    counts = _table(app, "state-counts", partitions)
    index = _table(app, JOURNAL_INDEX_TABLE, partitions)  # the HTTP API's history pages
    projector = InstanceProjector(views, outbox).handle
    _consume(app, outbox, topics.JOURNAL, "projector", 1, indexed(index, projector))
    _consume(app, outbox, topics.STATE_DELTAS, "counts", 1, CountsProjector(counts, outbox).handle)
    return counts

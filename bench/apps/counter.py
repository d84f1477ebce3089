"""The naive Faust baseline: an agent that counts events per key into a RocksDB table.

Same local-profile settings as OmniNode's workers. Run: faust -A bench.apps.counter worker.
"""

import os

import faust

from app.infra.faust_app import profile_options
from app.infra.settings import Settings

app = faust.App(
    os.environ["BENCH_APP_ID"],
    # OmniNode's local-profile transport (short fetch waits and fetched end offsets on the
    # embedded broker), so both sides run with the same client settings.
    broker=f"omninode-local://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="rocksdb://",
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
    **profile_options(Settings(profile="local")),  # OmniNode's local-profile settings
)
source = app.topic(os.environ["BENCH_INPUT"], key_serializer="raw", value_serializer="raw")
counts = app.Table(
    "counts", default=int, key_type=bytes, value_type=int, options={"driver": "rocksdict"}
)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, _value in stream.items():
        counts[key] += 1

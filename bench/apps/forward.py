"""The floor of a Faust agent with one output: forward each event to a topic, nothing else.

No table, no decoding: what Faust's stream and producer cost per event, with the same
local-profile settings as OmniNode's workers. Run: faust -A bench.apps.forward worker.
"""

import os

import faust

from app.infra.faust_app import profile_options
from app.infra.settings import Settings

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"omninode-local://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
    **profile_options(Settings(profile="local")),  # OmniNode's local-profile settings
)
source = app.topic(os.environ["BENCH_INPUT"], key_serializer="raw", value_serializer="raw")
target = app.topic(os.environ["BENCH_OUTPUT"], key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def forward(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await target.send(key=event.message.key, value=event.message.value)

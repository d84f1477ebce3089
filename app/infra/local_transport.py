"""The local profile's Faust transport: aiokafka with a short consumer fetch wait.

Measured against the embedded broker: it answers a fetch only when ``fetch_max_wait_ms``
expires, even when records are already waiting (a record took 550-1300 ms to reach a
consumer waiting 1,500 ms, and 2 ms with a 100 ms wait). Faust fixes the worker consumer's
wait at 1,500 ms, which would add up to 1.5 s to every hop of a workflow. This transport,
registered as ``omninode-local://`` (entry point ``faust.transports``), is Faust's aiokafka
transport with that one value lowered. Production uses the plain ``kafka://`` transport.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

LOCAL_FETCH_MAX_WAIT_MS = 25


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts; it has no public setter.
        consumer._fetch_max_wait_ms = LOCAL_FETCH_MAX_WAIT_MS
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer

"""The physical limit of one relay hop on this broker: a raw aiokafka consumer → producer loop,
batched like the services (getmany, send without awaiting each, await the batch, commit)."""

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def main(bootstrap: str, source: str, target: str, group: str) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = [await producer.send(target, r.value, key=r.key, headers=list(r.headers))
                       for records in batch.values() for r in records]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))

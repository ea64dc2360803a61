"""The feed of the raw relay limit: a separate process producing records as fast as aiokafka can, so
that the relays, not the generator, are what is measured. Prints its own rate (its ceiling) as JSON."""

import asyncio
import json
import sys
import time
import uuid

from aiokafka import AIOKafkaProducer

PAYLOAD = b'{"case_id":"' + b"x" * 36 + b'","data":"' + b"y" * 400 + b'"}'


async def main(bootstrap: str, topic: str, records: int, keys_file: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5)
    await producer.start()
    keys = [uuid.uuid4().hex for _ in range(records)]
    with open(keys_file, "w") as f:
        f.write("\n".join(keys))
    start = time.perf_counter()
    try:
        pending = []
        for i, key in enumerate(keys):
            pending.append(await producer.send(topic, PAYLOAD, key=key.encode(), headers=[("ce_type", b"bench")]))
            if len(pending) >= 2000:  # bounded in flight: acks awaited in chunks, never one by one
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - start
    print(json.dumps({"records": records, "seconds": seconds, "per_s": records / seconds}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))

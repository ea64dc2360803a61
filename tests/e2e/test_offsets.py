"""`onewindow offsets`: lag per partition; a reset by time lands on the first offset at or after the
time in every partition; a group with a live member is refused and keeps its offsets."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.e2e


def cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "offsets", *args], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap})


async def committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {tp: m.offset for tp, m in (await admin.list_consumer_group_offsets(group, partitions=tps)).items()}
    finally:
        await admin.close()


def member(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
                            fetch_max_wait_ms=20)


def test_reset_by_time_lag_and_refusal_while_a_member_lives(kafka_bootstrap):
    topic, group = f"offsets-test.{secrets.token_hex(3)}", f"offsets-test-{secrets.token_hex(3)}"
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    async def produce_and_consume() -> datetime:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 2, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        for i in range(6):  # offsets 0-2 in each partition before the mark
            await producer.send_and_wait(topic, b"early", partition=i % 2)
        await asyncio.sleep(1.0)
        mark = datetime.now(UTC)
        await asyncio.sleep(1.0)
        for i in range(4):  # offsets 3-4 after it
            await producer.send_and_wait(topic, b"late", partition=i % 2)
        await producer.stop()
        consumer = member(kafka_bootstrap, topic, group)
        await consumer.start()
        seen = 0
        while seen < 10:
            seen += sum(len(v) for v in (await consumer.getmany(timeout_ms=500)).values())
        await consumer.commit()
        await consumer.stop()
        return mark

    mark = asyncio.run(produce_and_consume())
    assert asyncio.run(committed(kafka_bootstrap, group, tps)) == {tps[0]: 5, tps[1]: 5}
    shown = cli(kafka_bootstrap, "show", "--group", group, "--topic", topic)
    assert shown.returncode == 0 and "total lag 0" in shown.stdout, shown.stdout + shown.stderr

    dry = cli(kafka_bootstrap, "reset", "--group", group, "--topic", topic, "--to-time", mark.isoformat(), "--dry-run")
    assert dry.returncode == 0 and "would reset" in dry.stdout, dry.stderr
    assert asyncio.run(committed(kafka_bootstrap, group, tps)) == {tps[0]: 5, tps[1]: 5}, "a dry run commits nothing"

    reset = cli(kafka_bootstrap, "reset", "--group", group, "--topic", topic, "--to-time", mark.isoformat())
    assert reset.returncode == 0, reset.stderr
    assert asyncio.run(committed(kafka_bootstrap, group, tps)) == {tps[0]: 3, tps[1]: 3}
    shown = cli(kafka_bootstrap, "show", "--group", group, "--topic", topic)
    assert "total lag 4" in shown.stdout

    # a live member holds the group: refused, offsets unchanged
    async def refused_while_consuming() -> subprocess.CompletedProcess:
        consumer = member(kafka_bootstrap, topic, group)
        await consumer.start()
        stop = asyncio.Event()

        async def keep_polling():
            while not stop.is_set():
                await consumer.getmany(timeout_ms=200)

        task = asyncio.create_task(keep_polling())
        while not consumer.assignment():
            await asyncio.sleep(0.2)
        result = await asyncio.to_thread(cli, kafka_bootstrap, "reset", "--group", group, "--topic", topic,
                                         "--to-earliest")
        stop.set()
        await task
        await consumer.stop()
        return result

    out = asyncio.run(refused_while_consuming())
    assert out.returncode == 2 and "active members" in out.stderr, out.stdout + out.stderr
    assert asyncio.run(committed(kafka_bootstrap, group, tps)) == {tps[0]: 3, tps[1]: 3}

    for args, message in ((["reset", "--group", group, "--topic", topic], "exactly one"),
                          (["reset", "--group", group, "--topic", "no-such-topic", "--to-latest"], "unknown topic"),
                          (["reset", "--group", group, "--topic", topic, "--to-time", "yesterday"], "ISO 8601"),
                          (["reset", "--group", group, "--topic", topic, "--to-time", "2026-11-23T08:00"], "UTC offset"),
                          (["show", "--group", group, "--topic", "no-such-topic"], "unknown topic")):
        out = cli(kafka_bootstrap, *args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
    assert asyncio.run(committed(kafka_bootstrap, group, tps)) == {tps[0]: 3, tps[1]: 3}

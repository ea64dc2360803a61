"""Verification of the audit store and signed checkpoints (used by the service, its API and the CLI)."""

from __future__ import annotations

import asyncpg

from services.audit import domain, storage


async def take_checkpoint(conn: asyncpg.Connection, key: bytes, key_id: str) -> dict | None:
    """Sign the heads of all chains as they are now (None when there is nothing new since the last one)."""
    top = await conn.fetchval("SELECT max(id) FROM events")
    if top is None:
        return None
    last = await conn.fetchval("SELECT max(up_to_id) FROM checkpoints")
    if last is not None and last >= top:
        return None
    heads = await storage.all_heads(conn, top)
    digest = domain.checkpoint_digest(heads)
    events = await conn.fetchval("SELECT count(*) FROM events WHERE id <= $1", top)
    await storage.insert_checkpoint(conn, len(heads), events, top, digest, domain.sign(digest, key), key_id)
    return {"cases": len(heads), "events": events, "up_to_id": top}


async def verify(conn: asyncpg.Connection, key: bytes, case_id: str | None = None) -> dict:
    """Recompute every chain (or one case's) and every checkpoint; name the first broken record."""
    broken = []
    for cid in [case_id] if case_id else await storage.case_ids(conn):
        rows = await conn.fetch("SELECT * FROM events WHERE case_id = $1 ORDER BY seq", cid)
        chain = [(storage._record(r), r["prev_hash"], r["hash"]) for r in rows]
        first = domain.first_broken(chain)
        if first is not None:
            broken.append({"case_id": cid, "first_broken_seq": first})
    bad_checkpoints = []
    if case_id is None:
        for cp in await storage.checkpoints(conn):
            digest = domain.checkpoint_digest(await storage.all_heads(conn, cp["up_to_id"]))
            if digest != cp["digest"] or not domain.signature_valid(cp["digest"], cp["signature"], key):
                bad_checkpoints.append(cp["id"])
    return {"intact": not broken and not bad_checkpoints, "broken": broken, "checkpoints_failing": bad_checkpoints}

-- The broker lifetimes this service has published into (append-only: the last row is the current one).
-- A broker that comes back empty (Tansu keeps nothing) is a new incarnation: the relay then publishes
-- again what it published recently, and the consumers' inboxes drop whatever they had already seen.
CREATE TABLE broker_incarnations (
    seq         bigserial PRIMARY KEY,
    incarnation text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);

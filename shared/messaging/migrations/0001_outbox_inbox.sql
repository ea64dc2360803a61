-- Transactional outbox: state changes and the events they cause commit together.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    topic        text NOT NULL,
    key          bytea NOT NULL,
    value        bytea NOT NULL,
    headers      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Inbox: ids of the events already processed, written in the same transaction as their effect.
CREATE TABLE inbox (
    event_key    text PRIMARY KEY,   -- ce_source + ' ' + ce_id
    processed_at timestamptz NOT NULL DEFAULT now()
);

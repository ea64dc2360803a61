-- One record per event, per case a hash chain in ingestion order (seq).
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    case_id      text NOT NULL,
    seq          integer NOT NULL,
    event_id     text NOT NULL,
    source       text NOT NULL,
    type         text NOT NULL,
    time         timestamptz NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    kafka_offset bigint NOT NULL,
    trace_id     text,
    data         jsonb NOT NULL,
    prev_hash    bytea,
    hash         bytea NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, event_id),
    UNIQUE (case_id, seq)
);
CREATE INDEX events_case_time ON events (case_id, time, seq);

CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    kafka_offset bigint NOT NULL,
    key          bytea,
    value        bytea,
    headers      jsonb NOT NULL,
    error        text,
    consumer     text,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- Append-only: the trace refuses to be rewritten, whoever asks.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only (% refused on %)', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER dead_letters_append_only BEFORE UPDATE OR DELETE ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

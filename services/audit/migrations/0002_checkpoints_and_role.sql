-- Signed checkpoints of all chains' heads: a rewritten chain no longer matches its checkpoint.
CREATE TABLE checkpoints (
    id        bigserial PRIMARY KEY,
    taken_at  timestamptz NOT NULL DEFAULT now(),
    cases     integer NOT NULL,
    events    bigint NOT NULL,
    up_to_id  bigint NOT NULL,          -- the last events.id the checkpoint covers
    digest    bytea NOT NULL,
    signature text NOT NULL,
    key_id    text NOT NULL
);
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- The role the audit service should run as: it may read and append, never change or remove.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'onewindow_audit_service') THEN
        CREATE ROLE onewindow_audit_service NOLOGIN;
    END IF;
END $$;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO onewindow_audit_service', current_schema());
    EXECUTE format('GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA %I TO onewindow_audit_service', current_schema());
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO onewindow_audit_service', current_schema());
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA %I FROM onewindow_audit_service',
                   current_schema());
    -- the outbox relay marks rows published (the audit service publishes nothing today)
    EXECUTE format('GRANT UPDATE (published_at) ON %I.outbox TO onewindow_audit_service', current_schema());
END $$;

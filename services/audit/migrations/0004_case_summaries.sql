-- What the trace says about each case now (holder, status, supervision colour), folded from its events
-- in the same transaction that appends them. A projection: derived, rebuildable, so the service may
-- update it; the events themselves stay append-only.
CREATE TABLE case_summaries (
    case_id          text PRIMARY KEY,
    case_number      text,
    division         text,
    category         text,
    risk_colour      text,
    status           text NOT NULL,
    holder_unit_id   text,
    holder_since     timestamptz,
    lead_dispatch_id text,
    units            text[],
    supervision      text NOT NULL,
    overdue          boolean NOT NULL,
    escalations      integer NOT NULL,
    returns          integer NOT NULL,
    mediation_status text,
    opened_at        timestamptz,
    last_event_at    timestamptz,
    last_type        text,
    events           integer NOT NULL
);
-- Every batch rewrites the summaries of its cases, so indexes are few: lookups by number, division
-- and holder, and the short list of cases needing attention. Other filters scan the summaries, which
-- are one row per case, not per event.
CREATE INDEX case_summaries_number ON case_summaries (case_number);
CREATE INDEX case_summaries_division ON case_summaries (division text_pattern_ops);
CREATE INDEX case_summaries_holder ON case_summaries (holder_unit_id) WHERE holder_unit_id IS NOT NULL;
CREATE INDEX case_summaries_attention ON case_summaries (last_event_at DESC)
    WHERE overdue OR escalations > 0 OR supervision <> 'white';

DO $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.case_summaries TO onewindow_audit_service', current_schema());
END $$;

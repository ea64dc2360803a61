-- Joint handling, returns, rework and risk per case; the lead dispatch stays in the old columns.
ALTER TABLE cases
    ADD COLUMN division_code text NOT NULL DEFAULT '',
    ADD COLUMN risk          text NOT NULL DEFAULT 'green',
    ADD COLUMN dispatches    jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN excluded      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN returns       integer NOT NULL DEFAULT 0,
    ADD COLUMN reopened      integer NOT NULL DEFAULT 0,
    ADD COLUMN repeats       integer NOT NULL DEFAULT 0,
    ADD COLUMN facts         jsonb,
    ADD COLUMN traceparent   text;    -- the case's trace: operator actions continue it   -- title, description, location: repeated in every dispatch

-- Supervision (督办) clocks: one per dispatch and kind; `next_check` is when its colour next changes.
CREATE TABLE clocks (
    dispatch_id   uuid NOT NULL,
    kind          text NOT NULL,          -- acknowledge | resolve
    case_id       uuid NOT NULL,
    unit_id       text NOT NULL,
    unit_kind     text NOT NULL,
    division_code text NOT NULL,
    started_at    timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    colour        text NOT NULL DEFAULT 'white',
    paused_at     timestamptz,
    pause_reason  text,
    next_check    timestamptz,
    stopped       boolean NOT NULL DEFAULT false,
    traceparent   text,
    PRIMARY KEY (dispatch_id, kind)
);
CREATE INDEX clocks_due ON clocks (next_check) WHERE NOT stopped AND paused_at IS NULL;
CREATE INDEX clocks_case ON clocks (case_id);

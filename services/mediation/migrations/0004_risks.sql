-- The risk register (重大不稳定问题清单). risk_signals: every received case as the register sees it
-- (place, matter, signs; no personal data), so that related cases can be found within a window.
CREATE TABLE IF NOT EXISTS risk_signals (
    case_id         uuid PRIMARY KEY,
    division_code   text NOT NULL,
    matter          text,
    received_at     timestamptz NOT NULL,
    people_involved integer,
    flags           text[] NOT NULL DEFAULT '{}',
    repeats         integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS risk_signals_related ON risk_signals (division_code, matter, received_at);

CREATE TABLE IF NOT EXISTS risks (
    risk_id       uuid PRIMARY KEY,
    division_code text NOT NULL,
    title         text NOT NULL,
    matter        text,
    origin        text NOT NULL,            -- operator | cluster
    status        text NOT NULL,
    case_ids      uuid[] NOT NULL,
    factors       jsonb NOT NULL,
    score         double precision NOT NULL,
    colour        text NOT NULL,
    cluster_key   text,                     -- division|matter of a cluster risk
    guardian      jsonb,                    -- 包保: {"leader", "unit_id"}
    care          jsonb NOT NULL DEFAULT '[]',  -- 三色户: [{"household", "colour", "level"}]
    history       jsonb NOT NULL DEFAULT '[]',
    opened_at     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- one open cluster risk per place and matter (new related cases join it)
CREATE UNIQUE INDEX IF NOT EXISTS risks_open_cluster ON risks (cluster_key)
    WHERE cluster_key IS NOT NULL AND status IN ('identified', 'assessed', 'guarded', 'resolving');
CREATE INDEX IF NOT EXISTS risks_cases ON risks USING gin (case_ids);
CREATE INDEX IF NOT EXISTS risks_division ON risks (division_code text_pattern_ops);

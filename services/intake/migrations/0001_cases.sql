CREATE TABLE cases (
    case_id          uuid PRIMARY KEY,
    case_number      text NOT NULL UNIQUE,
    channel          text NOT NULL,
    title            text NOT NULL,
    description      text NOT NULL,
    category         text,
    division_code    text NOT NULL,
    grid_id          text,
    address          text,
    -- personal data stays here (never in events or logs)
    reporter_name    text,
    reporter_phone   text,
    idempotency_key  text UNIQUE,
    request_hash     text NOT NULL,
    submitted_by     text NOT NULL,
    received_at      timestamptz NOT NULL
);

-- One counter per case-number prefix (county code + day): readable numbers, unique under concurrency.
CREATE TABLE case_number_counters (
    prefix text PRIMARY KEY,
    last   integer NOT NULL
);

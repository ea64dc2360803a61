-- An event is identified by the topic it came on as well as its source and id: ids are derivable,
-- and an event forged on a department's topic with a router event's source and id must not keep
-- the real event out of the trace (the consumers' inbox keys carry the topic too).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_source_event_id_key;
ALTER TABLE events ADD CONSTRAINT events_topic_source_event_id_key UNIQUE (topic, source, event_id);

-- When the broker took the event (Kafka's record timestamp; LogAppendTime on the topics outside
-- parties write). Metrics count on it, never on a sender's own claim (ce_time) that can be backdated.
ALTER TABLE events ADD COLUMN IF NOT EXISTS broker_time timestamptz;

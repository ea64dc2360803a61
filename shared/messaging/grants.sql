-- What every service's login (:"role", i.e. onewindow_<service>) may do with the plumbing of its own
-- schema. Applied by shared.db.migrate after every migration run, once it has revoked everything the
-- role held in the schema, and before the service's own grants.sql. :"schema" and :"role" are
-- replaced by the schema and the role (psql: psql -v schema=intake -v role=onewindow_intake -f ...).
GRANT USAGE ON SCHEMA :"schema" TO :"role";
-- the outbox: write events with the state, mark them published (the relay), nothing else
GRANT SELECT, INSERT ON :"schema".outbox TO :"role";
GRANT UPDATE (published_at) ON :"schema".outbox TO :"role";
-- the inbox and the broker incarnations are append-only for the service
GRANT SELECT, INSERT ON :"schema".inbox, :"schema".broker_incarnations TO :"role";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA :"schema" TO :"role";

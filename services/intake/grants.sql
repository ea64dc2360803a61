-- Intake's login (onewindow_intake) on its tables, after the plumbing's grants (shared/messaging/grants.sql);
-- see shared.db.migrate. A submission is written once: only its status moves afterwards.
GRANT SELECT, INSERT ON :"schema".cases TO :"role";
GRANT UPDATE (status, status_updated_at, lead_dispatch_id, holder_unit_id, holder_since) ON :"schema".cases TO :"role";
-- the citizen's ratings and reopen requests: written once
GRANT SELECT, INSERT ON :"schema".citizen_acts TO :"role";
-- case numbers: one counter per prefix, reserved with an upsert
GRANT SELECT, INSERT, UPDATE ON :"schema".case_number_counters TO :"role";

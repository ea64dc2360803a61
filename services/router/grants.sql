-- The router's login (onewindow_router) on its tables, after the plumbing's grants
-- (shared/messaging/grants.sql); see shared.db.migrate. Nothing is ever deleted.
GRANT SELECT, INSERT, UPDATE ON :"schema".cases, :"schema".clocks TO :"role";

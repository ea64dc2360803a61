-- Mediation's login (onewindow_mediation) on its tables, after the plumbing's grants
-- (shared/messaging/grants.sql); see shared.db.migrate. mediation_cases (0001, the skeleton's table)
-- is no longer used: no grant.
GRANT SELECT, INSERT, UPDATE ON :"schema".mediations TO :"role";
GRANT SELECT, INSERT, UPDATE ON :"schema".risk_signals, :"schema".risks TO :"role";

"""Router: the back office (后台再分家) — triage, jurisdiction, dispatch, feedback, closure."""

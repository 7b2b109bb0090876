"""Host tuning: tunables, profiles, and the plan/apply/verify/rollback engine."""

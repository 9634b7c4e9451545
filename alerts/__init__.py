"""Alerts: the rules on targets and meter data, the persistent outbox and its delivery channels."""

"""Rules shared by several layers, defined once: when a meter counts as offline.

A meter that has not answered for N polls is offline (domain.md §5). N is
`OFFLINE_POLLS` unless its gateway's options set `offline_polls`
(`core.schemas.gateways.GatewayOptions`). The collectors count N failed polls in a
row (`collectors.meter_state`); the alert rule and the dashboard, which see the store
and not the polls, call a meter offline when its last sample is older than N poll
intervals (`alerts.meter_rules.offline_meters`). Both read N from here, so the
collector's `meter_offline` event and the alert fire after the same number of polls.
"""

from __future__ import annotations

#: Unanswered polls in a row after which a meter is offline (domain.md §5).
OFFLINE_POLLS = 3

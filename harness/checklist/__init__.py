"""``rtbench check``: the real-time app's shipping checklist (connection, an event to a second window,
auto-reconnect after a server restart, the offline queue's replay, 100 events under budget), run by
real clients against a provider's server and judged item by item.

Rings, outside in: ``harness.cli.check`` (options, the target, exit code) -> ``run`` (one provider's
checklist) -> ``items`` (the five checks) -> ``clients`` (subscribers and publishers of any provider,
with what they received) and ``restart`` (how a server is killed and started); ``facts`` holds what
each protocol promises, ``outcome`` the results and ``render`` what users and CI read.
"""

"""Alerts: channels (apprise URLs or a signed JSON webhook), the rule that decides when a
function's end of run is worth telling someone, and the deliveries. It sits above runs and
reads them; runs never import it (runs.dispatch tells it of a run's end by task name)."""

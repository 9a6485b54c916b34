"""Sensors: new titles, script/selection changes, run completion webhooks."""

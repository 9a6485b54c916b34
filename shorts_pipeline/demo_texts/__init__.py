"""Source texts the demo explainers are written from."""

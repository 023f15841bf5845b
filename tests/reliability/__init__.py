"""Fault injection: kills, damaged files, bad arguments (see README, Reliability)."""

"""Optimal control on the diffsim engine: direct shooting and Pontryagin's costate equations.

Nothing here yet: see the trajectories issues. Importing it is cheap and safe.
"""

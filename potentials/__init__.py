"""Learned interatomic potentials on the diffsim engine (forces are reverse-mode gradients).

Nothing here yet: see the potentials issues. Importing it is cheap and safe.
"""

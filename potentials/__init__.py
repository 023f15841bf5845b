"""Learned interatomic potentials on the diffsim engine (forces are reverse-mode gradients).

Models (``model``, ``painn``), their training (``structures``, ``labels``, ``loss``, ``e0s``,
``schedules``, ``training``, ``metrics``), committees (``committee``), the ASE calculator
(``calculator``), MD (``md``), reference data (``reference_data``) and physical validation
(``validation``). Importing the package imports none of them: it is cheap and safe.
"""

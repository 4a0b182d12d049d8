"""The model zoo: small models trained on scenes built from real photographs, with shipped weights.

Not imported by ``import attnlib``; use ``import attnlib.zoo``. Command line: ``python -m attnlib.zoo``.
"""

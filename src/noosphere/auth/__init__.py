"""Principals and their credentials (``principal.py``, ``tokens.py``, ``permissions.py``)."""

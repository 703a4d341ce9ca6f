"""The ``/admin`` page and its API for editing ``models.yaml``."""

"""Where credentials are found: names the node, its CLI and its clients share. Imports nothing, so
the CLI's light commands can use them without loading the node."""

ADMIN_TOKEN_FILE = "admin-token"  # in the data directory, mode 0600
SECRET_HEADER = "x-noosphere-secret"  # a person's conversation secret, per request
SECRET_ENV = "NOOSPHERE_SECRET"  # the same for the CLI: from the environment only (ps shows argv)

__all__ = ["ADMIN_TOKEN_FILE", "SECRET_ENV", "SECRET_HEADER"]

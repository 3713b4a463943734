"""Test settings: the real settings, pointed at a throw-away data directory."""

import os
import tempfile

os.environ.setdefault("MEDGENOMICS_DATA_DIR", tempfile.mkdtemp(prefix="medgenomics-test-"))
os.environ.setdefault("MEDGENOMICS_TESTING", "1")

from medgenomics.settings import *  # noqa: E402, F403

# Fast password hashing: the tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files are served from the finders in tests; no collectstatic output to look for.
STATIC_ROOT = None

# A file, not SQLite's shared-cache memory database: worker threads then get WAL and the busy
# timeout, as in production, instead of shared-cache table locks that fail at once.
_default_database = DATABASES["default"]  # noqa: F405
if _default_database["ENGINE"].endswith("sqlite3"):
    _default_database["TEST"] = {
        "NAME": os.path.join(os.environ["MEDGENOMICS_DATA_DIR"], "test.sqlite3")
    }

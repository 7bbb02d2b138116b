"""Instance-wide quota defaults (docs/quotas.md), imported at the end of config/settings.py.

Each is empty or 0 for unlimited; sizes are written like a sandbox's memory (``50GiB``, ``512Mi``,
``10G`` or bytes). Staff override them per organization (``manage.py org_quota``, the admin).
"""

from __future__ import annotations

from config.env import env_int, env_str

STOWAGE_QUOTA_BYTES = env_str("STOWAGE_QUOTA_BYTES")
STOWAGE_QUOTA_ARTIFACTS = env_str("STOWAGE_QUOTA_ARTIFACTS")
STOWAGE_QUOTA_LARGEST_ARTIFACT = env_str("STOWAGE_QUOTA_LARGEST_ARTIFACT")
STOWAGE_QUOTA_RUNNING_SANDBOXES = env_str("STOWAGE_QUOTA_RUNNING_SANDBOXES")
# The dashboard's banner warns from this share (percent) of a quota on.
STOWAGE_QUOTA_WARN_PERCENT = env_int("STOWAGE_QUOTA_WARN_PERCENT", 80)

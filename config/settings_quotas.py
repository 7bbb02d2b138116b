"""Instance-wide quota defaults (docs/quotas.md), imported at the end of config/settings.py.

Each is empty or 0 for unlimited; sizes are written like a sandbox's memory (``50GiB``, ``512Mi``,
``10G`` or bytes). Staff override them per organization (``manage.py org_quota``, the admin).
"""

from __future__ import annotations

from config.env import env_str

STOWAGE_QUOTA_BYTES = env_str("STOWAGE_QUOTA_BYTES")
STOWAGE_QUOTA_ARTIFACTS = env_str("STOWAGE_QUOTA_ARTIFACTS")
STOWAGE_QUOTA_LARGEST = env_str("STOWAGE_QUOTA_LARGEST_ARTIFACT")
STOWAGE_QUOTA_SANDBOXES = env_str("STOWAGE_QUOTA_RUNNING_SANDBOXES")
# The dashboard's banner warns from this share of any quota on.
STOWAGE_QUOTA_WARN_PERCENT = 80

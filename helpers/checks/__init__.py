"""Exercise checks, one per exercise, in course order: `checks.check_<exercise>(candidate)`.

Each returns a `CheckResult` (✅ passed / ❌ failed with a hint / ⏳ not attempted) and
never raises, whatever the candidate does.
"""

from helpers.checks.core import MIME_TYPE, CheckResult, Status
from helpers.checks.warmup import check_batched_dot

__all__ = ["MIME_TYPE", "CheckResult", "Status", "check_batched_dot"]

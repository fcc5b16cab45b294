"""The rule registry: one module per rule, named after what it finds."""

from __future__ import annotations

from lockorder_lint.rules.aborted_session_reuse import AbortedSessionReuse
from lockorder_lint.rules.base import Report, Rule, RuleContext
from lockorder_lint.rules.joined_rows_lock import JoinedRowsLock
from lockorder_lint.rules.lock_order_inversion import LockOrderInversion
from lockorder_lint.rules.lock_then_insert_gap import LockThenInsertGap
from lockorder_lint.rules.unordered_bulk_write import UnorderedBulkWrite
from lockorder_lint.rules.unordered_for_update import UnorderedForUpdate
from lockorder_lint.rules.unordered_key_iteration import UnorderedKeyIteration
from lockorder_lint.rules.unsorted_lock_batches import UnsortedLockBatches

ALL_RULES: tuple[Rule, ...] = (
    UnorderedBulkWrite(),
    UnorderedForUpdate(),
    AbortedSessionReuse(),
    JoinedRowsLock(),
    LockOrderInversion(),
    UnorderedKeyIteration(),
    UnsortedLockBatches(),
    LockThenInsertGap(),
)
RULES_BY_CODE: dict[str, Rule] = {rule.code: rule for rule in ALL_RULES}

__all__ = ["ALL_RULES", "RULES_BY_CODE", "Report", "Rule", "RuleContext"]

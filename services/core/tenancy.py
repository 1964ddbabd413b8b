"""What one user's answers may learn from other users' data.

- A user's own data (transactions, labels, categories, rules) serves that user alone.
- A signal learned across users is an aggregate over at least ``MIN_DISTINCT_USERS`` distinct
  users, so no single user's data can be read back out of it.
- No user's share of a shared model's training data may exceed ``MAX_TRAINING_SHARE``, so no
  user can steer what the model calls normal for everyone else.
"""

from __future__ import annotations

MIN_DISTINCT_USERS = 5
MAX_TRAINING_SHARE = 0.2


def shareable(distinct_users: int) -> bool:
    """Whether an aggregate over this many distinct users may be shown to any of them."""
    return distinct_users >= MIN_DISTINCT_USERS

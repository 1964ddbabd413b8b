"""Changes to transactions already accepted: a person's edit or deletion, or a bank's removal.
They travel on ``transactions.v1`` beside the transactions, keyed by account like them, so every
consumer sees an account's transactions and changes in one order.

A bank's revision of a transaction is not a change event: it is the transaction itself, sent
again with a higher ``revision``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from schemas.transaction import NO_NUL, Identifier, ShortText

EDITABLE = ("category", "note", "excluded", "merchant")


class TransactionEdit(BaseModel):
    """What a person may change about a transaction. Only the fields sent change; `note` and
    `merchant` sent as null clear the note and the display name."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"category": "Groceries", "note": "for the party"},
                {"excluded": True},
                {"merchant": "Corner bakery"},
            ]
        },
    )

    category: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)] | None = Field(
        None, description="Your category for it; from now on it wins over any prediction."
    )
    note: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = Field(
        None, description="Your note, shown and exported with it."
    )
    excluded: bool | None = Field(
        None,
        description="Leave it out of analytics (totals, budgets, forecasts, drift): a transfer "
        "between your own accounts, a reimbursed expense.",
    )
    merchant: ShortText | None = Field(
        None, description="A display name instead of the bank's merchant text."
    )
    apply_to_merchant: bool | None = Field(
        None,
        description="With `category`: also give it to this merchant's earlier transactions "
        "whose category was predicted or missing. Either way, later ones there take it.",
    )

    @model_validator(mode="after")
    def _something(self) -> TransactionEdit:
        if not self.model_fields_set - {"apply_to_merchant"}:
            raise ValueError(f"send at least one of: {', '.join(EDITABLE)}")
        if self.apply_to_merchant and "category" not in self.model_fields_set:
            raise ValueError("apply_to_merchant goes with a category")
        if "category" in self.model_fields_set and self.category is None:
            raise ValueError("category cannot be cleared; send another category")
        if "excluded" in self.model_fields_set and self.excluded is None:
            raise ValueError("excluded must be true or false")
        return self

    def changes(self) -> dict[str, Any]:
        """Only the fields sent, as they travel in a change event."""
        return self.model_dump(include=self.model_fields_set)


class TransactionChange(BaseModel):
    """An accepted transaction edited or removed, on ``transactions.v1``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(1, description="Version of this event schema.")
    event: Literal["transaction.change"] = Field(
        "transaction.change", description="Tells a change from a transaction on the topic."
    )
    kind: Literal["edit", "remove"] = Field(description="An edit, or a removal (final).")
    change_id: Identifier = Field(description="Unique per change.")
    user_id: Identifier = Field(description="Owner, taken from authentication.")
    account_id: Identifier = Field(description="The transaction's account: the message key.")
    transaction_id: Identifier = Field(description="The transaction changed.")
    changes: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="For an edit, the fields sent and their new values (see TransactionEdit).",
    )
    source: Literal["api", "webhook"] = Field(description="Which door the change came in.")
    requested_at: datetime = Field(description="When it was accepted (UTC).")

    def edit(self) -> TransactionEdit:
        return TransactionEdit.model_validate(self.changes)


class CategoryRename(BaseModel):
    """A category renamed, or merged into another, on ``transactions.v1``: published once per
    account of the user, keyed by that account, so each account's consumer renames in order."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(1, description="Version of this event schema.")
    event: Literal["category.rename"] = Field(
        "category.rename", description="Tells a rename from a transaction on the topic."
    )
    change_id: Identifier = Field(description="Unique per rename (shared by its accounts).")
    user_id: Identifier = Field(description="Owner, taken from authentication.")
    account_id: Identifier = Field(description="The account renamed in: the message key.")
    old_name: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)] = Field(
        description="The category renamed."
    )
    new_name: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)] = Field(
        description="Its new name; an existing category's name merges the two."
    )
    requested_at: datetime = Field(description="When it was accepted (UTC).")


class CategoryRenameIn(BaseModel):
    """Rename a category, or merge it into another by giving that one's name."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"old_name": "Eating out", "new_name": "Dining"}]},
    )

    old_name: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)] = Field(
        description="One of your categories (from transactions or budgets)."
    )
    new_name: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)] = Field(
        description="Its new name; the name of another of your categories merges the two."
    )

    @model_validator(mode="after")
    def _different(self) -> CategoryRenameIn:
        if self.old_name == self.new_name:
            raise ValueError("new_name must differ from old_name")
        return self

"""A plugin whose stopping criterion reports a finish reason logitkit does not know."""

from __future__ import annotations

from logitkit import hookimpl
from logitkit.stopping import StoppingCriterion


class Bored(StoppingCriterion):
    name = "bored"
    reason = "bored"

    @classmethod
    def from_settings(cls, context):  # type: ignore[no-untyped-def]
        return cls()

    def check(self, sequences, step):  # type: ignore[no-untyped-def]
        return None


@hookimpl
def register_stopping_criteria(register):  # type: ignore[no-untyped-def]
    register(Bored)

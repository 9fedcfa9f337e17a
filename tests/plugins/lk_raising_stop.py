"""A plugin with two stopping criteria: one raises when built, one raises when checked."""

from __future__ import annotations

from logitkit import hookimpl
from logitkit.stopping import StoppingCriterion


class ExplodesAtBuild(StoppingCriterion):
    name = "explodes_at_build"

    @classmethod
    def from_settings(cls, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot build")

    def check(self, sequences, step):  # type: ignore[no-untyped-def]
        return None


class ExplodesAtCheck(StoppingCriterion):
    name = "explodes_at_check"

    @classmethod
    def from_settings(cls, context):  # type: ignore[no-untyped-def]
        return cls()

    def check(self, sequences, step):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("cannot check")


@hookimpl
def register_stopping_criteria(register):  # type: ignore[no-untyped-def]
    register(ExplodesAtBuild)
    register(ExplodesAtCheck)

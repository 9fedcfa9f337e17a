"""A plugin that registers something that is not a processor."""

from logitkit import hookimpl


class NotAProcessor:
    name = "not_a_processor"


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(NotAProcessor)

"""A plugin that imports fine but raises while registering."""

from logitkit import hookimpl


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    raise RuntimeError("boom while registering")

"""A search strategy's ``search_options``, parsed with the config's error format."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from logitkit.config import validation_problems
from logitkit.decoding import DecodingJob
from logitkit.errors import ConfigError

Options = TypeVar("Options", bound=BaseModel)


def search_options(model: type[Options], job: DecodingJob) -> Options:
    """``model`` from ``job.settings.search_options``; a ConfigError naming the field otherwise.

    The config check skips empty options, so a strategy whose options have required
    fields meets them here first.
    """
    try:
        return model.model_validate(job.settings.search_options)
    except ValidationError as exc:
        raise ConfigError(
            validation_problems(exc, model, "generate()", "generation.search_options")
        ) from None

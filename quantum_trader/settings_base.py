"""Base class for every component's settings: frozen, unknown keys rejected."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen settings section; a misspelt key is an error, not a silent default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

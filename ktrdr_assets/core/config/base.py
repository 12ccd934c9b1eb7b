"""The base of every typed config section: unknown keys are errors, values are frozen."""

from pydantic import BaseModel, ConfigDict


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

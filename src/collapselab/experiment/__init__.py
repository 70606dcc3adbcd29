"""Config schema, runner, resume and results storage."""

from .config import Config, load_config
from .runner import RunResult, run

__all__ = ["Config", "RunResult", "load_config", "run"]

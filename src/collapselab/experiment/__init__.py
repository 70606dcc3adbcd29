"""Config schema, runner, per-generation observers, snapshots, resume and results storage."""

from .config import Config, load_config
from .observers import GenerationEvent
from .runner import RunResult, run

__all__ = ["Config", "GenerationEvent", "RunResult", "load_config", "run"]

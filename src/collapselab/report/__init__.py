"""Reading results back: run loading and summaries (figures and HTML reports build on these)."""

from .summary import headline, load_run, summarize

__all__ = ["headline", "load_run", "summarize"]

"""What every renderer shares: titles that name the model, block and scheme, integer axes."""

from __future__ import annotations


def titled(title: str, context: str | None) -> str:
    """``title`` with the context (model and block) in front, as every report's title names it."""
    return f"{context}: {title}" if context else title


def figure_title(fig, what: str, context: str | None, scheme: str | None = None) -> None:
    """The figure's title: the model and block (``context``), the analysis and the scheme."""
    parts = [p for p in (context, what, f"scheme {scheme}" if scheme else None) if p]
    fig.suptitle(" · ".join(parts), fontsize=9)


def integer_ticks(axis) -> None:
    """Integer ticks only, on an axis that counts (steps, indices, examples)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))

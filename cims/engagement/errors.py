"""The engagement domain's refusal: message keys the page renders with tr()."""

from __future__ import annotations


class InvalidEngagement(ValueError):
    """Input that cannot be accepted; ``problems`` are i18n keys. Nothing is written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


def refuse_if(problems: list[str]) -> None:
    """Raise InvalidEngagement when there is anything to refuse."""
    if problems:
        raise InvalidEngagement(problems)

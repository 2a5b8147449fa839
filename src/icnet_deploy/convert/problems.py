"""How a conversion says what does not fit: one line per problem, checked against the target network."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError
from ..model.config import ICNetConfig

__all__ = ["MAX_PROBLEM_LINES", "ConversionError", "check_against"]

MAX_PROBLEM_LINES = 12  # the first problems in full, then a count: a wrong architecture has hundreds


class ConversionError(ModelError):
    """A source that does not fill the target network; ``problems`` holds one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = problems[:MAX_PROBLEM_LINES]
        if len(problems) > MAX_PROBLEM_LINES:
            shown.append(f"… and {len(problems) - MAX_PROBLEM_LINES} more problems")
        self.lines = shown
        super().__init__(f"{path}: cannot convert ({len(problems)} problem{'s' * (len(problems) != 1)}):\n" + "\n".join(shown))


def check_against(config: ICNetConfig, state: dict[str, torch.Tensor]) -> list[str]:
    """Problems filling ``config``'s network with ``state``: missing keys, unexpected keys, shapes."""
    from ..model.build import build_model

    expected = build_model(config).state_dict()
    problems = [f"missing key {k} (shape {tuple(v.shape)})" for k, v in expected.items() if k not in state]
    problems += [f"shape of {k}: {tuple(state[k].shape)} in the source, {tuple(v.shape)} in {config.name}"
                 for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    return problems

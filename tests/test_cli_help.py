"""Every command documents itself: `--help` exits 0 and shows a runnable example (a convention users rely on)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from icnet_deploy.cli import app

COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]


def test_the_documented_commands_exist():
    for name in ("export", "build-engine", "infer", "bench", "check", "train", "evaluate", "synth", "adjust-logits"):
        assert name in COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example(name):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "icnet-deploy " + name in " ".join(result.output.split())

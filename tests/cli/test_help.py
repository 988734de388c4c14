"""Every option of every subcommand says what it does, its default and its choices; the top-level
help is plain text; ``analyse`` is ``analyze``."""

import argparse

import pytest

from pdenet_analysis.cli import build_parser, main


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


@pytest.mark.parametrize("name", sorted(set(_subcommands()[1]) - {"analyse"}))
def test_every_option_has_help_with_its_default_and_choices(name):
    parser = _subcommands()[1][name]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (name, action.dest)
        text = formatter._expand_help(action)
        if action.option_strings and action.default not in (None, False) and not isinstance(action.default, list):
            assert str(action.default) in text or f"{action.default:g}" in text, (name, action.dest, text)
        for choice in action.choices or ():
            assert str(choice) in text, (name, action.dest, choice)


def test_the_top_level_help_is_plain_text_and_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":mod:" not in out
    for name in ("quickstart", "train", "evaluate", "analyze", "study", "schemes", "tableaux", "presets", "demo"):
        assert f"  {name} " in out


def test_analyse_is_analyze(capsys):
    assert main(["analyse", "digits-parabolic", "--image-size", "4"]) == 2  # the same checks: a preset's size is fixed
    assert "--image-size does nothing" in capsys.readouterr().err

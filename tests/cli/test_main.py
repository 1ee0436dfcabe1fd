"""The ``thermosgd`` parser (`thermosgd.cli.build_parser`, `main`, ``python -m thermosgd.cli``)
and the shared option types (`thermosgd.cli._common`)."""

from __future__ import annotations

import argparse
import runpy
import subprocess
import sys

import numpy as np
import pytest

from tests.cli.conftest import assert_usage_error, run_main
from thermosgd.cli import COMMANDS, build_parser
from thermosgd.cli._common import UsageError, parse_hidden, parse_list, parse_variants

NAMES = ["isotropic", "train", "sweep", "collect", "reproduce", "analyze", "report", "schedule"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_every_command_is_listed_in_order():
    assert [m.__name__.rsplit(".", 1)[1] for m in COMMANDS] == NAMES
    assert list(_subparsers(build_parser())) == NAMES
    res = run_main(["--help"])
    assert res.rc == 0 and all(n in res.out for n in NAMES)


def _python(*args: str) -> str:
    """stdout of ``python ARGS`` in a fresh interpreter (nothing imported by the tests)."""
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True,
                         timeout=120)
    return res.stdout


def test_the_parser_imports_no_heavy_module():
    # a fresh interpreter: this test session has torch, scipy, ... loaded already
    loaded = _python("-c", "import sys, thermosgd.cli; thermosgd.cli.build_parser(); "
                           "print([m for m in ('torch', 'numba', 'scipy', 'matplotlib') "
                           "if m in sys.modules])")
    assert loaded.strip() == "[]", loaded


def test_thermosgd_help_lists_every_command_in_a_fresh_process():
    out = _python("-m", "thermosgd.cli", "--help")
    commands = out.split("positional arguments:")[1].split("options:")[0]
    listed = [line.split()[0] for line in commands.splitlines() if line.startswith("    ")
              and not line.startswith("     ")]
    assert listed == NAMES, out


def test_every_option_of_every_command_has_a_help_text():
    todo = list(_subparsers(build_parser()).items())
    seen = 0
    while todo:
        name, p = todo.pop()
        todo += [(f"{name} {k}", q) for k, q in _subparsers(p).items()]
        for a in p._actions:
            if isinstance(a, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert a.help, f"thermosgd {name}: {a.option_strings or a.dest} has no help"
            seen += 1
    assert seen > 100


def test_unknown_command_and_option_are_one_line_errors():
    assert_usage_error(run_main(["nope"]), "invalid choice: 'nope'")
    assert_usage_error(run_main(["collect", "d", "--bogus"]), "unrecognized arguments")


def test_python_m_thermosgd_cli(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["thermosgd", "report", "--help"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("thermosgd.cli", run_name="__main__")
    assert e.value.code == 0 and "--title" in capsys.readouterr().out


def test_parse_list():
    assert parse_list("0.1,0.2") == (0.1, 0.2)
    np.testing.assert_allclose(parse_list("log:1e-3:1e-1:3"), [1e-3, 1e-2, 1e-1], rtol=1e-15)
    for bad in ("log:1:2", "a,b", "log:0:1:3", ""):
        with pytest.raises(UsageError):
            parse_list(bad)


def test_parse_hidden_and_variants():
    assert parse_hidden("32, 16") == (32, 16)
    for bad, msg in (("0", "positive widths"), ("a", "cannot parse"), ("", "positive")):
        with pytest.raises(UsageError, match=msg):
            parse_hidden(bad)
    assert parse_variants("si,bias") == ("si", "bias")
    with pytest.raises(UsageError, match=r"unknown \['dropout'\]"):
        parse_variants("si,dropout")
    with pytest.raises(UsageError, match="twice"):
        parse_variants("si,si")

"""What the command modules share: the parser class with one-line errors, `UsageError`, the
LIST syntax and the other option types, the optimizer options of ``train`` and ``sweep``.

The parser is light: its choices and defaults come from `thermosgd.spec` (and the other light
modules: `thermosgd.sweep`, `thermosgd.workflows.preset_table`), and every command module
imports its workflow inside ``run()``, so that ``thermosgd --help`` loads no torch, numba,
scipy or matplotlib (tests/cli/test_main.py checks it)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from thermosgd.spec import MLP_VARIANTS, OPTIMIZERS, PROTOCOLS
from thermosgd.sweep import parse_list as _parse_list

__all__ = [
    "LISTS",
    "Parser",
    "UsageError",
    "add_grid_options",
    "add_optimizer_options",
    "parse_hidden",
    "parse_list",
    "parse_variants",
]

#: the help text of a LIST option
LISTS = "LIST: comma-separated values or log:START:STOP:NUM"


class UsageError(argparse.ArgumentTypeError, ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line ("thermosgd: error: ...") with exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line on stderr and exit with status 2."""
        print(f"thermosgd: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_list(text: str) -> tuple[float, ...]:
    """'0.1,0.2,0.5' or 'log:START:STOP:NUM' (see `thermosgd.sweep.parse_list`)."""
    try:
        return _parse_list(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def parse_hidden(text: str) -> tuple[int, ...]:
    """'32,32' -> (32, 32): the hidden widths of the BN-MLP."""
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"cannot parse --hidden {text!r}: use comma-separated ints") from None
    if not widths or min(widths) < 1:
        raise UsageError(f"--hidden needs positive widths, got {text!r}")
    return widths


def parse_variants(text: str) -> tuple[str, ...]:
    """'si,bias' -> ("si", "bias"): mlp variants (`thermosgd.spec.MLP_VARIANTS`)."""
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in names if v not in MLP_VARIANTS]
    if not names or bad:
        raise UsageError(f"--variant: unknown {bad or [text]}; choose from "
                         f"{', '.join(MLP_VARIANTS)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--variant lists a variant twice: {text!r}")
    return names


def add_optimizer_options(p: argparse.ArgumentParser) -> None:
    """--optimizer, --momentum (a LIST: a grid axis) and --beta2 of ``train`` and ``sweep``."""
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None,
                   help="sgd: plain SGD (the paper; the default); with --protocol lr only: "
                        "momentum: heavy ball with coupled weight decay (torch SGD, momentum "
                        "--momentum, dampening 0, no Nesterov); adamw: AdamW with decoupled "
                        "weight decay (torch AdamW, betas --momentum/--beta2, eps 1e-8). The "
                        "monitor then predicts radius, temperature and pressure from that "
                        "optimizer's closed forms (docs/theory.md)")
    p.add_argument("--momentum", type=parse_list, default=None,
                   help=f"heavy-ball beta (momentum) or AdamW's beta1 (adamw), in [0, 1); a "
                        f"grid axis (default 0.9). {LISTS}")
    p.add_argument("--beta2", type=float, default=None,
                   help="AdamW's beta2 (second-moment average), in [0, 1) (default 0.999)")


def add_grid_options(p: argparse.ArgumentParser, *, protocol_required: bool) -> None:
    """--protocol and the grid lists of its hyperparameters (--lr, --elr, --wd, --radius)."""
    p.add_argument("--protocol", choices=list(PROTOCOLS), required=protocol_required,
                   help="lr: fixed learning rate + weight decay; elr: fixed effective LR "
                        "(step eta-tilde*|w|^2) + weight decay; sphere: fixed radius, ELR step, "
                        "projection back to the sphere")
    p.add_argument("--lr", type=parse_list, help=f"learning rates eta (protocol lr). {LISTS}")
    p.add_argument("--elr", type=parse_list,
                   help=f"effective learning rates eta-tilde (protocols elr, sphere). {LISTS}")
    p.add_argument("--wd", type=parse_list, help=f"weight decays lambda (lr, elr). {LISTS}")
    p.add_argument("--radius", type=parse_list, help=f"sphere radii r (sphere). {LISTS}")

"""The `genforge` command. Each sub-command is one module with `add_parser()` and `run()`.

This is the only place that prints for people and chooses exit codes: library errors
(GenforgeError) become one line on stderr and exit status 2; Ctrl-C exits with 130.
Set GENFORGE_DEBUG=1 to see the traceback behind any message.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys

from ..errors import GenforgeError, TrainingInterrupted
from . import data, detect, edit, info, prior, sample, serve, train
from . import keys, verify  # provenance: the signing key, and reading signed images
from . import watermark  # provenance: a learned watermark in the pixels, keys in models
from . import eval as eval_  # the module is named after its command

COMMANDS = [data, train, prior, sample, eval_, edit, detect, serve, info, keys, verify, watermark]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = Parser(prog="genforge", description="Generate, edit, measure and detect images with VAEs and GANs.")
    parser.add_argument("--version", action="version", version=f"genforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO, format="genforge: %(message)s")
    debug = bool(os.environ.get("GENFORGE_DEBUG"))
    try:
        return args.run(args) or 0
    except TrainingInterrupted as e:
        print(f"genforge: {e}", file=sys.stderr)
        return 130
    except GenforgeError as e:
        if debug:
            raise
        print(f"genforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genforge: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permission denied, ...: the user's to fix, not a bug
        if debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"genforge: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: still one line, with a way to see more
        if debug:
            raise
        print(f"genforge: internal error ({type(e).__name__}: {e}); rerun with GENFORGE_DEBUG=1 "
              "for the traceback and please report it", file=sys.stderr)
        return 1


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def finite_float(text: str) -> float:
    """A number that is not nan or infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def probability(text: str) -> float:
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return value


def device_name(text: str) -> str:
    """A torch device this machine has: cpu, cuda, cuda:N (or mps on a Mac)."""
    import torch
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; write cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"no CUDA device here (torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError("no MPS device here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"genforge runs on cpu, cuda or mps, not {device.type!r}")
    return text

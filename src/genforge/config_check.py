"""Checking the values a user can set, one rule per field.

Every config a user can fill in (a model family's, training's, the detector's, a latent
prior's) declares what each of its fields accepts as a small rule object, in one table:

    RULES = {"lr": Number(gt=0), "latent_dim": Whole(min=1), "loss": OneOf("ns", "hinge")}

`check_config()` runs the table over a dataclass (from its `__post_init__`), `check_values()`
over a dict of options. A rule also reads text, so `--set latent_dim=32` and the Python call
`latent_dim=32` meet the same check; what it refuses becomes one `ConfigError` line naming the
field and what it accepts:

    vae config: lr must be a finite number > 0, got nan

A value outside the table (a misspelt field) is refused with the list of valid ones, and a
field without a rule is a bug the tests catch (tests/test_config_validation.py).
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, ClassVar

from .errors import ConfigError, UnknownField


class Refused(Exception):
    """Raised inside a rule: the value is not one it accepts (args[0], if any: which part not)."""


class Rule:
    """What one field accepts. `parse` returns the value checked (and converted from text);
    `accepts` says in words what it takes, for the error message."""

    accepts: str = "a value"

    def __init__(self, optional: bool = False, none_means: str = ""):
        self.optional = optional  # None is also accepted (it means a default, or "off")
        self.none_means = none_means

    def describe(self) -> str:
        if not self.optional:
            return self.accepts
        return f"{self.accepts} or None" + (f" ({self.none_means})" if self.none_means else "")

    def check(self, value: Any) -> Any:
        if value is None or (self.optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if self.optional:
                return None
            raise Refused
        return self.parse(value)

    def parse(self, value: Any) -> Any:
        raise NotImplementedError


def _bound_text(gt=None, ge=None, lt=None, le=None) -> str:
    low = f"> {gt:g}" if gt is not None else f">= {ge:g}" if ge is not None else ""
    high = f"< {lt:g}" if lt is not None else f"<= {le:g}" if le is not None else ""
    if low and high:
        left = "(" if gt is not None else "["
        right = ")" if lt is not None else "]"
        return f"in {left}{gt if gt is not None else ge:g}, {lt if lt is not None else le:g}{right}"
    return low or high


class Number(Rule):
    """A finite real number within bounds (gt/ge below, lt/le above); text such as "1e-3" is read."""

    def __init__(self, gt=None, ge=None, lt=None, le=None, **kw):
        super().__init__(**kw)
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        bounds = _bound_text(gt, ge, lt, le)
        self.accepts = "a finite number" + (f" {bounds}" if bounds else "")

    def parse(self, value):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Refused from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused
        try:
            value = float(value)
        except OverflowError:  # an int past float's range
            raise Refused from None
        if not math.isfinite(value):
            raise Refused
        if ((self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
                or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le)):
            raise Refused
        return value


class Whole(Rule):
    """A whole number within [min, max]; 3.0 and "3" are read as 3, 3.5 and True are refused."""

    def __init__(self, min: int | None = None, max: int | None = None, text: str = "", **kw):  # noqa: A002
        super().__init__(**kw)
        self.min, self.max = min, max
        if text:  # the bounds in words, where the digits would not read well
            self.accepts = text
        elif min is not None and max is not None:
            self.accepts = f"a whole number from {min} to {max}"
        else:
            self.accepts = "a whole number" + (f" >= {min}" if min is not None else f" <= {max}" if max is not None else "")

    def parse(self, value):
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Refused from None
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise Refused
        return value


SEED = Whole(min=0, max=2 ** 63 - 1, text="a whole number from 0 to 2**63 - 1")  # what torch.manual_seed takes


class OneOf(Rule):
    """One of a fixed set of words."""

    def __init__(self, *choices: str, **kw):
        super().__init__(**kw)
        self.choices = choices
        self.accepts = f"one of {', '.join(choices)}"

    def parse(self, value):
        if not isinstance(value, str) or value.strip() not in self.choices:
            raise Refused
        return value.strip()


class Flag(Rule):
    """True or False; text true/false, yes/no, on/off, 1/0 is read."""

    accepts = "true or false"
    WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}

    def parse(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.WORDS:
            return self.WORDS[value.strip().lower()]
        raise Refused


class NameList(Rule):
    """A comma list of names from a fixed set ("" for none); a list or tuple of names is also read.
    Kept as the comma text, the form the config stores."""

    def __init__(self, *choices: str, **kw):
        super().__init__(**kw)
        self.choices = choices
        self.accepts = f"a comma list of {', '.join(choices)} ('' for none)"

    def parse(self, value):
        if isinstance(value, str):
            names = [n.strip() for n in value.split(",") if n.strip()]
        elif isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value):
            names = [n.strip() for n in value if n.strip()]
        else:
            raise Refused
        unknown = [n for n in names if n not in self.choices]
        if unknown:
            raise Refused(f"unknown: {', '.join(map(repr, unknown))}")
        return ",".join(names)


class Device(Rule):
    """A torch device name genforge runs on: cpu, cuda, cuda:N or mps (whether this machine has it
    is checked where the device is used)."""

    accepts = "cpu, cuda, cuda:N or mps"

    def parse(self, value):
        import torch
        if not isinstance(value, str):
            raise Refused
        try:
            device = torch.device(value.strip())
        except (RuntimeError, ValueError):
            raise Refused from None
        if device.type not in ("cpu", "cuda", "mps"):
            raise Refused
        return value.strip()


class ImageShape(Rule):
    """(channels, height, width) of square images with 1 or 3 channels; which sizes a model
    builds for is its config's own cross-field check."""

    accepts = "(channels, size, size) with 1 or 3 channels"

    def parse(self, value):
        if isinstance(value, str):
            value = value.strip("()[] ").split(",")
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise Refused
        whole = Whole(min=1)
        c, h, w = (whole.parse(v) for v in value)
        if c not in (1, 3) or h != w:
            raise Refused
        return (c, h, w)


def refuse(label: str, name: str, accepts: str, value: Any, detail: str = "") -> ConfigError:
    """The one-line error for field `name` of `label` (e.g. "vae config")."""
    return ConfigError(f"{label}: {name} must be {accepts}, got {value!r}" + (f" ({detail})" if detail else ""))


def check_value(label: str, name: str, rule: Rule, value: Any) -> Any:
    try:
        return rule.check(value)
    except Refused as e:
        raise refuse(label, name, rule.describe(), value, e.args[0] if e.args else "") from None


def check_names(label: str, given, known, noun: str = "field") -> None:
    """Refuses names outside `known`, listing the valid ones."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UnknownField(f"{label}: unknown {noun}{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(map(repr, unknown))}; valid {noun}s: {', '.join(sorted(known))}")


def check_values(label: str, rules: dict[str, Rule], values: dict, noun: str = "field") -> dict:
    """`values` checked against `rules` (every name must have one); returns them converted."""
    check_names(label, values, rules, noun)
    return {name: check_value(label, name, rules[name], value) for name, value in values.items()}


def all_rules(cls: type) -> dict[str, Rule]:
    """The RULES tables along the class hierarchy, a subclass's rule replacing its parent's."""
    merged: dict[str, Rule] = {}
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("RULES", {}))
    return merged


class Checked:
    """Mixin for a config dataclass: its `__post_init__` checks every field against the RULES
    tables (merged along the class hierarchy), stores the converted values, then runs
    `cross_check()` for rules between fields. `label` names the config in messages."""

    label: ClassVar[str] = "config"
    RULES: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self):
        check_config(self)

    def cross_check(self) -> None:
        """Rules between fields; raise `self.refuse(...)`. None by default."""

    def refuse(self, name: str, accepts: str) -> ConfigError:
        return refuse(self.label, name, accepts, getattr(self, name))


def check_config(config) -> None:
    """Checks (and converts) every field of dataclass `config` against its rules, then its
    cross-field rules; a field without a rule is a programming error."""
    rules = all_rules(type(config))
    label = getattr(config, "label", type(config).__name__)
    for f in fields(config):
        if f.name not in rules:
            raise TypeError(f"{type(config).__name__}.{f.name} has no rule in RULES (config_check.py)")
        value = check_value(label, f.name, rules[f.name], getattr(config, f.name))
        object.__setattr__(config, f.name, value)  # frozen dataclasses too
    config.cross_check()


__all__ = ["SEED", "Checked", "ConfigError", "Device", "Flag", "ImageShape", "NameList", "Number", "OneOf", "Rule",
           "UnknownField", "Whole", "all_rules", "check_config", "check_names", "check_value", "check_values"]

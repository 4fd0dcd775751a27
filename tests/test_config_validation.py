"""Every config value a user can set is checked: type, range, finiteness, allowed choices.

The configs are enumerated from the registries (every model family, the training config, the
detector's, every latent prior), and the bad and good values from each field's rule, so a new
family, field or prior is covered without touching this file.
"""

import inspect
import json
import math
import shutil
from dataclasses import fields

import pytest

import genforge
from genforge.cli import main
from genforge.cli.train import parse_overrides
from genforge.config_check import (Device, Flag, ImageShape, NameList, Number, OneOf, Whole, all_rules,
                                   check_value)
from genforge.detect.train import DetectTrainConfig
from genforge.errors import ConfigError, GenforgeError, UnknownField, UnknownName
from genforge.models import MODELS, build_model
from genforge.priors import PRIORS
from genforge.train import TrainConfig

SMALL = {"width": 4, "g_width": 4, "d_width": 4, "hidden": 8}  # keeps the networks built here tiny


def dataclass_configs():
    """(id, config class, make) for every dataclass config a user fills in; `make(**values)`
    builds what the user would build (a model for a family, the config otherwise)."""
    out = []
    for name, cls in MODELS.items():
        small = {k: v for k, v in SMALL.items() if k in {f.name for f in fields(cls.Config)}}
        out.append((name, cls.Config, lambda _n=name, _s=small, **kw: build_model(_n, **{**_s, **kw}).config))
    out.append(("train", TrainConfig, lambda **kw: TrainConfig(**kw)))
    out.append(("detect-train", DetectTrainConfig, lambda **kw: DetectTrainConfig(**kw)))
    return out


def prior_configs():
    return [(f"{kind}-prior", cls) for kind, cls in PRIORS.items()]


def field_cases():
    """(id, rules, make, field, rule) for every field of every config, priors included."""
    cases = []
    for cid, cls, make in dataclass_configs():
        for name, rule in all_rules(cls).items():
            cases.append(pytest.param(cls, make, name, rule, id=f"{cid}.{name}"))
    for cid, cls in prior_configs():
        for name, rule in cls.RULES.items():
            cases.append(pytest.param(cls, lambda _c=cls, **kw: _c(4, 0, **kw), name, rule, id=f"{cid}.{name}"))
    return cases


def bad_values(rule):
    """Values the rule must refuse: wrong type, not finite, out of range, not a choice."""
    if isinstance(rule, Number):
        bad = [math.nan, math.inf, -math.inf, "abc", True, [1.0]]
        bad += [b for b in (rule.gt, None if rule.ge is None else rule.ge - 1, rule.lt,
                            None if rule.le is None else rule.le + 1) if b is not None]
        return bad
    if isinstance(rule, Whole):
        bad = [2.5, "abc", True, math.nan, [1]]
        bad += [b for b in (None if rule.min is None else rule.min - 1, None if rule.max is None else rule.max + 1)
                if b is not None]
        return bad
    if isinstance(rule, OneOf):
        return ["foo", 3, ""]
    if isinstance(rule, Flag):
        return ["maybe", 2, 0.5]
    if isinstance(rule, NameList):
        return ["foo", f"{rule.choices[0]},foo", ["foo"], 3]
    if isinstance(rule, Device):
        return ["gpu", "tpu:0", 3]
    if isinstance(rule, ImageShape):
        return [(2, 28, 28), (1, 28, 30), (1, 28), "abc", (1, -28, -28)]
    raise AssertionError(f"no bad values for a {type(rule).__name__} rule: add them here")


def good_value(rule, default):
    """A value the rule accepts that differs from the default (None where no other exists)."""
    if rule.optional and default is not None:
        return None
    if isinstance(rule, Number):
        low = rule.gt if rule.gt is not None else rule.ge
        high = rule.lt if rule.lt is not None else rule.le
        if low is not None and high is not None:
            candidates = [low + (high - low) * share for share in (0.5, 0.25)]
        elif low is not None:
            candidates = [2 * default if default else low + 0.5]
        else:
            candidates = [(default or 0) - 1]
        return next(c for c in candidates if c != default)
    if isinstance(rule, Whole):
        base = default if default is not None else (rule.min if rule.min is not None else 0)
        value = base + 1
        return value if rule.max is None or value <= rule.max else base - 1
    if isinstance(rule, OneOf):
        return next(c for c in rule.choices if c != default)
    if isinstance(rule, Flag):
        return not default
    if isinstance(rule, NameList):
        return rule.choices[0] if default != rule.choices[0] else ""
    if isinstance(rule, Device):
        return None  # cpu is the default and the only device sure to be here
    if isinstance(rule, ImageShape):
        return (3, 32, 32)
    raise AssertionError(f"no good value for a {type(rule).__name__} rule: add it here")


# values that only make sense together with another field (the cross-field rules)
COMPANIONS = {"label_smoothing": {"loss": "ns"}, "max_codes": {"components": 2}}


def default_of(cls, name):
    if hasattr(cls, "__dataclass_fields__"):
        return cls.__dataclass_fields__[name].default
    return inspect.signature(cls).parameters[name].default


# --- every field has a rule, and every default passes -------------------------------------------
@pytest.mark.parametrize("cid, cls, make", dataclass_configs(), ids=[c[0] for c in dataclass_configs()])
def test_every_field_of_every_config_has_a_rule_and_the_defaults_pass(cid, cls, make):
    assert {f.name for f in fields(cls)} == set(all_rules(cls)), "a field without a rule, or a rule without a field"
    config = make()
    for f in fields(cls):
        assert check_value(cid, f.name, all_rules(cls)[f.name], getattr(config, f.name)) == getattr(config, f.name)


@pytest.mark.parametrize("cid, cls", prior_configs())
def test_every_option_of_every_prior_has_a_rule_and_the_defaults_pass(cid, cls):
    options = set(inspect.signature(cls).parameters) - {"dim", "num_classes"}
    assert options == set(cls.RULES)
    for num_classes in (0, 10):
        prior = cls(4, num_classes)
        assert set(prior.options()) == options


def test_every_family_has_its_own_label():
    assert {cls.Config.label for cls in MODELS.values()} == {f"{name} config" for name in MODELS}


# --- bad values: one line that names the field ------------------------------------------------
@pytest.mark.parametrize("cls, make, name, rule", field_cases())
def test_every_bad_value_of_every_field_is_one_config_error_naming_it(cls, make, name, rule):
    for bad in bad_values(rule):
        with pytest.raises(ConfigError) as caught:
            make(**{name: bad})
        message = str(caught.value)
        assert f" {name} must be " in message and "\n" not in message, message
        assert message.endswith(f"got {bad!r}") or f"got {bad!r} (" in message, message
        assert isinstance(caught.value, GenforgeError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("cls, make, name, rule", field_cases())
def test_a_good_value_other_than_the_default_is_kept_and_still_builds(cls, make, name, rule):
    value = good_value(rule, default_of(cls, name))
    if value is None and not rule.optional:
        pytest.skip(f"{name}: no other value sure to work on this machine")
    config = make(**{**COMPANIONS.get(name, {}), name: value})
    kept = getattr(config, name) if hasattr(config, name) else config.options()[name]
    if isinstance(rule, Number) and value is not None:
        assert kept == pytest.approx(value)
    elif not (name == "components" and value is None):  # a gmm's None components is its default count
        assert kept == value


def test_the_messages_say_what_each_kind_of_field_accepts():
    def message(**kw):
        with pytest.raises(ConfigError) as caught:
            build_model(**kw)
        return str(caught.value)
    assert message(name="vae", lr=math.nan) == "vae config: lr must be a finite number > 0, got nan"
    assert message(name="vae", latent_dim=-4) == "vae config: latent_dim must be a whole number >= 1, got -4"
    assert message(name="sngan", loss="foo") == "sngan config: loss must be one of ns, hinge, wasserstein, got 'foo'"
    assert message(name="cgan", ema_decay=1) == "cgan config: ema_decay must be a finite number in [0, 1), got 1"
    assert "lr_d must be a finite number > 0 or None (the same as lr), got 0" in message(name="sngan", lr_d=0)
    assert message(name="vae", image_shape=(1, 30, 30)).startswith("vae config: image_shape must be (channels, "
                                                                   "size, size) with a size of 28 or 32")
    assert "size divisible by 4" in message(name="ref-dcgan", image_shape=(1, 30, 30))
    assert build_model("ref-vae", image_shape=(1, 30, 30)).config.image_shape == (1, 30, 30)  # an MLP: any size


def test_unknown_fields_are_listed_with_the_valid_ones():
    with pytest.raises(UnknownField) as caught:
        build_model("vae", latent_size=3)
    assert str(caught.value).startswith("vae config: unknown field 'latent_size'; valid fields: batch_size, beta,")
    assert isinstance(caught.value, UnknownName) and isinstance(caught.value, ConfigError)
    with pytest.raises(UnknownField, match="gmm prior: unknown option 'componets'; valid options: components"):
        PRIORS["gmm"].check_options(componets=3)


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="label_smoothing must be 0 with the 'hinge' loss"):
        build_model("sngan", label_smoothing=0.1)
    assert build_model("sngan", loss="ns", label_smoothing=0.1, g_width=4, d_width=4).config.label_smoothing == 0.1
    with pytest.raises(ConfigError, match="gmm prior: max_codes must be a whole number of at least the 30 components"):
        PRIORS["gmm"](4, 0, components=30, max_codes=10)


# --- text, as `--set FIELD=VALUE` gives it ---------------------------------------------------------
def test_set_text_is_read_by_the_field_it_names():
    config = build_model("sngan", **parse_overrides(
        ["diffaug=color,translation", "lr_d=none", "latent_dim=32", "lr=1e-3", "loss=ns", "g_width=4",
         "d_width=4"])).config
    assert (config.diffaug, config.lr_d, config.latent_dim, config.lr, config.loss) == (
        "color,translation", None, 32, 1e-3, "ns")
    assert build_model("sngan", diffaug=["cutout", "color"], g_width=4, d_width=4).config.diffaug == "cutout,color"
    assert DetectTrainConfig(self_blend="no", tone_channels="yes").self_blend is False
    assert parse_overrides(["lr=nan"])["lr"] != parse_overrides(["lr=nan"])["lr"]  # nan, a number
    for pair, says in (("lr=abc", "lr must be a finite number > 0, got 'abc'"),
                       ("lr=nan", "lr must be a finite number > 0, got nan"),
                       ("latent_dim=3.5", "latent_dim must be a whole number >= 1, got 3.5"),
                       ("latent_dim=true", "latent_dim must be a whole number >= 1, got True"),
                       ("diffaug=color,rotate", "got 'color,rotate' (unknown: 'rotate')")):
        with pytest.raises(ConfigError, match=f"sngan config: {pair.split('=')[0]}"):
            build_model("sngan", **parse_overrides([pair]))
        try:
            build_model("sngan", **parse_overrides([pair]))
        except ConfigError as e:
            assert says in str(e), str(e)


# --- the command line: exit 2 and one line ----------------------------------------------------------
def one_error_line(capsys, argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genforge: error: "), err
    return err[0]


@pytest.mark.parametrize("family", list(MODELS))
def test_train_refuses_bad_values_of_every_family_in_one_line(family, tmp_path, capsys):
    rules = all_rules(MODELS[family].Config)
    for name, rule in rules.items():
        bad = "nan" if isinstance(rule, Number) else "-4" if isinstance(rule, Whole) else "foo"
        line = one_error_line(capsys, ["train", "--model", family, "--dataset", "mnist", "--out", tmp_path / "r",
                                       "--steps", "1", "--set", f"{name}={bad}"])
        if name == "image_shape":  # the data's: --image-size and --channels
            assert "image_shape comes from the data" in line, line
        elif name == "batch_size":  # the model's default for --batch-size, which --set batch_size sets
            assert "training config: batch_size must be a whole number >= 1" in line, line
        else:
            assert f"{family} config: {name} must be " in line, line
    line = one_error_line(capsys, ["train", "--model", family, "--dataset", "mnist", "--out", tmp_path / "r",
                                   "--steps", "1", "--set", "no_such_field=1"])
    assert "unknown field 'no_such_field'; valid fields: " in line and "latent_dim" in line
    assert not (tmp_path / "r").exists()  # refused before any work


def test_train_refuses_bad_training_values_in_one_line(tmp_path, capsys):
    line = one_error_line(capsys, ["train", "--model", "vae", "--dataset", "mnist", "--out", tmp_path / "r",
                                   "--steps", "1", "--seed", "-1"])
    assert "training config: seed must be a whole number from 0 to 2**63 - 1, got -1" in line


def test_a_conditional_model_needs_a_class_for_every_label(mnist_train, tmp_path, capsys):
    line = one_error_line(capsys, ["train", "--model", "cgan", "--dataset", "mnist", "--out", tmp_path / "r",
                                   "--steps", "1", "--set", "num_classes=5"])
    assert "cgan config: num_classes must be at least the 10 classes of mnist, got 5" in line




@pytest.mark.parametrize("kind", list(PRIORS))
def test_prior_refuses_bad_options_in_one_line(kind, tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    for name, rule in PRIORS[kind].RULES.items():
        bad = "nan" if isinstance(rule, Number) else "abc" if isinstance(rule, Whole) else "foo"
        line = one_error_line(capsys, ["prior", run, "--kind", kind, "--set", f"{name}={bad}"])
        assert f"{kind} prior: {name} must be " in line, line
    assert "unknown option 'nope'" in one_error_line(capsys, ["prior", run, "--kind", kind, "--set", "nope=1"])
    assert not (run / "prior.json").exists()


def test_a_hand_edited_config_json_is_one_line(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    stored = json.loads((run / "config.json").read_text())
    for section, name, bad in (("model_config", "latent_dim", -4), ("model_config", "likelihood", "poisson"),
                               ("train", "log_every", 0)):
        edited = json.loads(json.dumps(stored))
        edited[section][name] = bad
        (run / "config.json").write_text(json.dumps(edited))
        line = one_error_line(capsys, ["sample", run, "--n", "2", "--out", tmp_path / "s"])
        assert str(run / "config.json") in line and f"{name} must be " in line, line
        with pytest.raises(ConfigError, match=f"{name} must be "):
            genforge.load(run)
    assert not (tmp_path / "s").exists()


def test_the_python_api_raises_config_error_too(tmp_path):
    with pytest.raises(ConfigError, match="vae config: lr must be a finite number > 0, got nan"):
        genforge.train("vae", "mnist", tmp_path / "r", steps=1, lr=float("nan"))
    with pytest.raises(ConfigError, match="training config: log_every must be a whole number >= 1, got 0"):
        genforge.train("vae", "mnist", tmp_path / "r", steps=1, log_every=0, width=4, latent_dim=2, prior="none",
                       progress=False)

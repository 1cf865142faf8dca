"""One CLI vocabulary: --sensitive everywhere (old spellings hidden), every option described,
hints that name only the running command's options."""

import typer.main

from fairfoundry.cli._app import _load_commands, _without_foreign_flags, app


def _commands():
    _load_commands()
    root = typer.main.get_command(app)
    stack = [((), root)]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack.extend(((*path, name), c) for name, c in subs.items())
        else:
            yield " ".join(path), cmd


def test_every_option_is_described_and_attributes_are_sensitive():
    missing, attribute_flags = [], []
    for name, cmd in _commands():
        for p in cmd.params:
            if getattr(p, "hidden", False) or not getattr(p, "opts", None):
                continue
            if p.param_type_name == "option" and not (p.help or "").strip():
                missing.append(f"{name} {p.opts[0]}")
            if any(o in ("--attributes", "--attribute") for o in p.opts):
                attribute_flags.append(name)
    assert not missing, missing
    assert not attribute_flags, attribute_flags  # visible spelling is --sensitive


def test_old_spellings_are_hidden_aliases(cli, tmp_path):
    import pandas as pd

    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(30)], "sex": ["female", "male"] * 15,
                      "age": range(30, 60)})
    m.to_csv(tmp_path / "m.csv", index=False)
    new = cli("audit-data", "--manifest", tmp_path / "m.csv", "--sensitive", "sex", "--out", tmp_path / "a")
    old = cli("audit-data", "--manifest", tmp_path / "m.csv", "--attributes", "sex", "--out", tmp_path / "b")
    assert new.code == 0 and old.code == 0, (new, old)
    assert (tmp_path / "a" / "audit.json").read_text().count('"attribute": "sex"') == \
        (tmp_path / "b" / "audit.json").read_text().count('"attribute": "sex"') > 0
    help_text = cli("audit-data", "--help").out
    assert "--sensitive" in help_text and "--attributes" not in help_text


def test_hints_name_only_options_the_command_has():
    hint = ("on a connected machine run: hf download x (then copy it), or pass --weights PATH, "
            "or --download")
    assert _without_foreign_flags(hint, {"--weights"}) == (
        "on a connected machine run: hf download x (then copy it), or pass --weights PATH")
    assert _without_foreign_flags(hint, {"--encoder-weights"}) == (
        "on a connected machine run: hf download x (then copy it)")
    assert _without_foreign_flags("weights missing (unless you pass --download)", set()) == "weights missing"


def test_fit_does_not_suggest_download(cli, tmp_path, monkeypatch):
    """fit has no --download: its error for missing hub weights must not suggest it."""
    import numpy as np
    import pandas as pd

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    n = 30
    pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "path": ["x.png"] * n,
                  "y": np.arange(n) % 2, "sex": ["F", "M"] * 15,
                  "split": ["train"] * 10 + ["val"] * 10 + ["test"] * 10}).to_csv(tmp_path / "m.csv", index=False)
    r = cli("fit", "--encoder", "timm:vit_tiny_patch16_224.augreg_in21k", "--manifest", tmp_path / "m.csv",
            "--label", "y", "--sensitive", "sex", "--out", tmp_path / "o")
    assert r.code == 2, r
    assert "--download" not in r.err and "huggingface-cli" not in r.err


def test_boolean_options_are_flags_typed_as_users_type_them():
    """``--overwrite`` alone (no value, no ``--overwrite/--no-overwrite`` pair to guess) on every
    command; embed's --amp/--no-amp is the one documented pair."""
    odd, seen = [], 0
    for name, cmd in _commands():
        for p in cmd.params:
            td = getattr(p, "type_descriptor", None)
            annotation = getattr(td, "annotation", None)
            if p.param_type_name != "option" or not (annotation is bool or isinstance(p.default, bool)):
                continue
            seen += 1
            if not p.is_flag or (p.secondary_opts and p.opts != ["--amp"]):
                odd.append(f"{name} {p.opts} {p.secondary_opts}")
    assert not odd, odd
    assert seen > 30  # --overwrite, --resume, --no-html, ... on every command


def test_hints_use_the_running_commands_spelling_of_model_flags(capsys):
    """The zoo's hints say --model/--weights (embed's flags): fit and baseline-audit call them
    --encoder/--encoder-weights, distill's --model is the student (a teacher is --teacher)."""
    from fairfoundry._errors import FairfoundryError
    from fairfoundry.cli._app import _command_flags, _command_path, error_exit

    err = FairfoundryError("no local copy of hf:x", hint="run: hf download x, or save the folder "
                           "and pass --model hf:<folder>, or pass --weights PATH, or --download")
    _load_commands()
    shown = {}
    for args in (["fit", "--encoder", "hf:x"], ["distill", "--teacher", "hf:x"],
                 ["experiment", "baseline-audit", "--encoder", "hf:x"], ["embed", "--model", "hf:x"]):
        error_exit(err, flags=_command_flags(args), command=_command_path(args))
        shown[args[0] if args[0] != "experiment" else args[1]] = capsys.readouterr().err
    assert "--encoder hf:<folder>" in shown["fit"] and "--encoder-weights PATH" in shown["fit"]
    assert "--download" not in shown["fit"] and "--model" not in shown["fit"]
    assert "--encoder hf:<folder>" in shown["baseline-audit"] and "--model" not in shown["baseline-audit"]
    assert "--teacher hf:<folder>" in shown["distill"] and "--model" not in shown["distill"]
    assert "--weights" not in shown["distill"] and "--download" not in shown["distill"]
    assert "--model hf:<folder>" in shown["embed"] and "--download" in shown["embed"]
    assert all("hf download" in v and "huggingface-cli" not in v for v in shown.values())


def test_distill_missing_teacher_says_teacher(cli, tmp_path, monkeypatch):
    from fairfoundry.datasets import nih_images

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    r = cli("distill", "--teacher", "hf:facebook/dinov2-small", "--manifest", nih_images(),
            "--steps", "1", "--out", tmp_path / "o")
    assert r.code == 2, r
    assert "hf download facebook/dinov2-small" in r.err and "--teacher hf:<folder>" in r.err
    assert "--model" not in r.err and "--download" not in r.err

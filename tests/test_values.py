"""Validation once, at the boundary: options objects, parameter names, typed KEY=VALUE, pydantic."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from fairfoundry._errors import FairfoundryError
from fairfoundry._values import (
    check_arguments,
    key_path,
    parse_key_values,
    parse_value,
    pydantic_error,
)
from fairfoundry.metrics import EngineOptions, evaluate_groups


def test_engine_options_are_validated_once_and_frozen():
    opts = EngineOptions(n_bootstrap=20, metrics=["tpr", "n"])
    assert opts.metrics == ("n", "tpr")  # table order
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.n_bootstrap = 5
    with pytest.raises(FairfoundryError, match=r"^bootstrap=-1: must be >= 0") as e:
        EngineOptions(n_bootstrap=-1, aliases={"n_bootstrap": "bootstrap"})
    assert e.value.param == "bootstrap"
    with pytest.raises(FairfoundryError, match="ci_method='student': unknown value") as e:
        EngineOptions(ci_method="student")
    assert "percentile" in e.value.hint
    # the engine takes the validated object as is (the same numbers as the keywords)
    y, s, g = [0, 1, 0, 1, 0, 1], [0.2, 0.8, 0.6, 0.7, 0.1, 0.4], np.array([0, 0, 0, 1, 1, 1])
    a = evaluate_groups(y, s, threshold=0.5, groups=g, group_names=["a", "b"], options=opts)
    b = evaluate_groups(y, s, threshold=0.5, groups=g, group_names=["a", "b"], n_bootstrap=20,
                        metrics=["tpr", "n"])
    pd.testing.assert_frame_equal(a.per_group, b.per_group)


def test_library_errors_name_parameters_and_the_cli_names_flags(cli, tmp_path):
    from fairfoundry.evaluation import evaluate

    frame = pd.DataFrame({"y": [0, 1] * 10, "p": np.linspace(0, 1, 20), "sex": ["F", "M"] * 10})
    with pytest.raises(FairfoundryError, match=r"^sensitive='sexe': column not found") as e:
        evaluate(frame, label="y", score="p", sensitive="sexe", threshold=0.5)
    assert "--" not in e.value.message and "sex" in e.value.hint
    with pytest.raises(FairfoundryError, match=r"^bootstrap=-3: must be >= 0"):
        evaluate(frame, label="y", score="p", sensitive="sex", threshold=0.5, bootstrap=-3)
    frame.to_csv(tmp_path / "p.csv", index=False)
    r = cli("evaluate", tmp_path / "p.csv", "--label", "y", "--score", "p", "--sensitive", "sexe",
            "--threshold", "0.5", "--out", tmp_path / "o")
    assert r.code == 2 and "error: --sensitive 'sexe': column not found" in r.err
    r = cli("evaluate", tmp_path / "p.csv", "--label", "y", "--score", "p", "--sensitive", "sex",
            "--threshold", "0.5", "--ci-method", "student", "--out", tmp_path / "o")
    assert r.code == 2 and "error: --ci-method 'student': unknown value" in r.err, r


def test_one_typed_key_value_parser():
    assert parse_key_values(["eta=0.5", "flag=true", "sizes=[1, 2]", "name=eo"], option="--x") == {
        "eta": 0.5, "flag": True, "sizes": [1, 2], "name": "eo"}
    assert parse_key_values(["group=40-59"], option="--reference", typed=False) == {"group": "40-59"}
    assert parse_value("1e-3") == 0.001 and parse_value("none") is None
    with pytest.raises(FairfoundryError, match="--x expects KEY=VALUE, got 'eta'"):
        parse_key_values(["eta"], option="--x")

    def f(*, img_size: int = 224, lr: float = 0.1, name: str = "a"):
        return img_size

    assert check_arguments(f, {"lr": 1}, option="--x", what="f") == {"lr": 1.0}
    with pytest.raises(FairfoundryError, match=r"--x img_size='abc': img_size needs an integer"):
        check_arguments(f, {"img_size": "abc"}, option="--x", what="f")
    with pytest.raises(FairfoundryError, match="has no argument 'img'") as e:
        check_arguments(f, {"img": 3}, option="--x", what="f")
    assert "img_size" in e.value.hint


def test_model_arg_of_the_wrong_type_names_the_argument(cli, tmp_path):
    from fairfoundry.datasets import nih_images

    r = cli("embed", "--model", "fairfoundry-tiny", "--manifest", nih_images(), "--out", tmp_path / "e",
            "--model-arg", "img_size=abc")
    assert r.code == 2 and "--model-arg img_size='abc': img_size needs an integer" in r.err
    assert not (tmp_path / "e").exists()


def test_pydantic_errors_name_nested_keys():
    from pydantic import ValidationError

    from fairfoundry.pipeline import FitConfig, load_fit_config

    assert key_path(("methods", 1, "args")) == "methods[1].args"
    with pytest.raises(FairfoundryError, match=r"unknown key 'methods\[0\]\.argz'") as e:
        load_fit_config({"embeddings": "e.npy", "manifest": "m.csv", "label": "y", "sensitive": ["sex"],
                         "methods": [{"name": "erm", "argz": {}}]})
    assert "args" in e.value.hint and "embeddings" not in e.value.hint  # keys of that level
    try:
        FitConfig(embeddings="e.npy", manifest="m.csv", label="y", sensitive=["sex"], epochs="many")
    except ValidationError as exc:
        err = pydantic_error(exc, where="fit.yaml", model=FitConfig)
    assert err.message.startswith("fit.yaml: epochs:") and "'many'" in err.message


def test_paths_climbing_out_of_the_root_are_refused(cli, tmp_path):
    from fairfoundry.data import resolve_paths

    m = pd.DataFrame({"sample_id": ["a", "b"], "path": ["x.png", "../../etc/passwd"], "sex": ["F", "M"]})
    m.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(FairfoundryError, match=r"row 2: path '\.\./\.\./etc/passwd' points outside"):
        resolve_paths(m["path"], root=tmp_path)
    assert resolve_paths(m["path"], root=tmp_path, allow_outside_root=True)[1] == str(
        (tmp_path / "../../etc/passwd").resolve())
    r = cli("audit-data", "--manifest", tmp_path / "m.csv", "--out", tmp_path / "o", "--check-files")
    assert r.code == 2 and "row 2" in r.err and "--allow-outside-root" in r.err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    r = cli("audit-data", "--manifest", tmp_path / "m.csv", "--out", tmp_path / "o2", "--check-files",
            "--allow-outside-root")
    assert r.code == 0, r
    r = cli("embed", "--model", "fairfoundry-tiny", "--manifest", tmp_path / "m.csv", "--out", tmp_path / "e")
    assert r.code == 2 and "points outside" in r.err

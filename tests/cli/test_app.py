from fairfoundry import __version__
from fairfoundry._errors import FairfoundryError, did_you_mean
from fairfoundry._io import prepare_out_dir, staged_dir, write_json_atomic


def test_version_flag(cli):
    res = cli("--version")
    assert res.code == 0
    assert __version__ in res.out


def test_unknown_command_exits_2_without_traceback(cli):
    res = cli("no-such-command")
    assert res.code == 2
    assert "Traceback" not in res.err


def test_did_you_mean_suggests_closest():
    hint = did_you_mean("sexe", ["sample_id", "sex", "age"], what="columns")
    assert "'sex'" in hint and "columns are" in hint


def test_prepare_out_dir_refuses_to_overwrite(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    try:
        prepare_out_dir(tmp_path, overwrite=False, outputs=["summary.json"])
    except FairfoundryError as err:
        assert "summary.json" in err.message and "--overwrite" in err.hint
    else:  # pragma: no cover
        raise AssertionError("expected FairfoundryError")
    assert prepare_out_dir(tmp_path, overwrite=True, outputs=["summary.json"]) == tmp_path


def test_staged_dir_is_all_or_nothing(tmp_path):
    out = tmp_path / "run"
    try:
        with staged_dir(out) as stage:
            write_json_atomic(stage / "a.json", {"x": float("nan")})
            raise RuntimeError("crash mid-run")
    except RuntimeError:
        pass
    assert not out.exists() or not any(out.iterdir())
    with staged_dir(out) as stage:
        write_json_atomic(stage / "a.json", {"x": float("nan")})
    assert (out / "a.json").read_text().strip().startswith("{")
    assert '"x": null' in (out / "a.json").read_text()
    assert not list(tmp_path.glob(".run.staging-*"))


def test_atomic_files_get_normal_permissions(tmp_path):
    import os
    import stat

    path = write_json_atomic(tmp_path / "x.json", {"a": 1})
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # readable by others, not 0600


def test_read_yaml_mapping_errors_name_the_file(tmp_path):
    import pytest

    from fairfoundry._io import read_yaml_mapping

    good = tmp_path / "ok.yaml"
    good.write_text("label: y\nseed: 3\n")
    assert read_yaml_mapping(good) == {"label": "y", "seed": 3}
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml_mapping(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(FairfoundryError, match="list.yaml must hold a mapping"):
        read_yaml_mapping(tmp_path / "list.yaml", what="config")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(FairfoundryError, match="bad.yaml is not valid YAML"):
        read_yaml_mapping(tmp_path / "bad.yaml", what="spec")
    with pytest.raises(FairfoundryError, match="not found"):
        read_yaml_mapping(tmp_path / "missing.yaml")


def test_commands_other_than_experiment_do_not_import_the_bench_package():
    """The study commands register on demand: `audit-data` (1M rows in seconds) does not pay for
    importing fairfoundry.bench; `experiment --help` still lists every study."""
    import subprocess
    import sys

    code = ("import sys\nfrom fairfoundry.cli._app import _load_commands\n"
            "_load_commands(['audit-data', '--help'])\nprint('fairfoundry.bench' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
    import contextlib
    import io

    from fairfoundry.bench._studies import STUDIES
    from fairfoundry.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["experiment", "--help"]) == 0
    assert all(name in buf.getvalue() for name in STUDIES)

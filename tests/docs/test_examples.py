"""Every shell and Python example of README.md and docs/ is executed by the test suite.

How it works
------------
Every fenced block whose language is ``bash``, ``sh``, ``shell``, ``console`` or ``python`` in
``README.md`` and ``docs/**/*.md`` is found automatically (a new block is picked up with no change
here) and falls in exactly one of these classes:

1. ```` ```python run ```` and ```` ```bash run ```` blocks are executed at every docs build
   (``scripts/docs_hooks.py``), and the build is run by ``tests/docs/test_site.py``;
2. blocks run by a dedicated test of their page (they check what the example produced, not only
   that it ran): listed in :data:`TESTED_ELSEWHERE` as ``(file, first line) -> test``; this module
   checks that the test exists and reads that page;
3. blocks that cannot run offline (they install packages, download model weights, need a GPU or a
   network service): listed in :data:`NOT_RUN` with the reason, or opted out on the page itself
   with an HTML comment on the line just before the fence::

       <!-- example: not run: installs packages from PyPI -->

   Single lines of an executed shell block are opted out in :data:`LINES_NOT_RUN` (same rule);
   a line that reads files made by another page's example (or a slow command two pages show) is
   listed in :data:`LINES_RUN_ELSEWHERE` with the page that runs the identical command (checked);
4. everything else is executed **here, as written**: the Python blocks of a page in order in one
   namespace, the shell blocks with ``bash -e``, all in a fresh directory holding the bundled data
   under the names the examples use (:func:`_workspace`: ``manifest.csv`` and its images,
   ``preds.csv``, ``census.csv``, ``$NIH``, ``~/data/<dataset>``, ``scripts/`` and
   ``.venv/bin/python``). A failing example fails here.

Opting out is for examples that cannot run offline; an example that is too slow for the suite is
shrunk on its page instead (the page must say what the full-size run is). Entries that no longer
match a block fail :func:`test_every_example_is_accounted_for`, so the lists cannot go stale.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]+)(?P<info>[^\n]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
                    re.S | re.M)
_OPT_OUT = re.compile(r"<!--\s*example:\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str          # relative to the repository root
    line: int          # line of the opening fence
    lang: str          # bash / python / ...
    run_at_build: bool  # ```python run / ```bash run
    code: str
    opt_out: str | None

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")

    @property
    def key(self) -> tuple[str, str]:
        return (self.page, self.first_line)


def blocks() -> list[Block]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            lang = m.group("lang").lower()
            if lang not in SHELL and lang != "python":
                continue
            before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            opt = _OPT_OUT.search(before)
            out.append(Block(page=str(page.relative_to(ROOT)), line=text[:m.start()].count("\n") + 1,
                             lang=lang, run_at_build=m.group("info").strip() == "run",
                             code=textwrap.dedent(m.group("code")),  # a block inside a list item is indented
                             opt_out=opt.group("reason") if opt else None))
    return out


# -- the registry ---------------------------------------------------------------------------------

#: (page, first line of the block) -> the test (``path::function``) that runs it and checks its output
TESTED_ELSEWHERE: dict[tuple[str, str], str] = {
    ("README.md", "fairfoundry evaluate-reports reports.csv --generated generated --reference reference \\"):
        "tests/hallucination/test_docs_hallucination.py::test_readme_section_commands_run",
    ("README.md", "fairfoundry monitor replay chexnet_stream.csv --store chexnet.db"):
        "tests/monitor/test_monitor_docs_example.py::test_readme_monitor_commands_are_the_executed_docs_commands",
    ("README.md", "import numpy as np"): "tests/test_docs_examples.py::test_readme_groups_example",
    ("README.md", "fairfoundry curate dedup --manifest $NIH --embeddings emb --semantic-threshold 0.99 --out curated/dedup"):
        "tests/curate/test_docs_curate_example.py::test_readme_curate_commands_are_documented_and_run_here",
    ("README.md", "fairfoundry synth toy --out toy --size 16"):
        "tests/synth/test_docs_synth_example.py::test_readme_synth_commands_are_the_tested_docs_commands",
    ("docs/adapt.md", "import numpy as np"):
        "tests/adapt/test_docs_zeroshot_example.py::test_docs_zero_shot_and_clip_adapter_example",
    ("docs/data.md", "import pandas as pd"): "tests/test_docs_examples.py::test_data_md_groups_example",
    ("docs/evaluate.md", "fairfoundry evaluate --example nih-chexnet --label Effusion --sensitive sex --val-fraction 0.3 --split-by patient_id --bootstrap 50 --out nih-val30"):
        "tests/cli/test_evaluate_cli.py::test_docs_val_fraction_example_runs_as_written",
    ("docs/metrics.md", "from fairfoundry.datasets import nih_chexnet"):
        "tests/test_docs_examples.py::test_metrics_md_first_example_with_an_intersection_reference",
    ("docs/monitor.md", "import numpy as np"): "tests/monitor/test_monitor_docs_example.py::test_docs_chexnet_replay",
    ("docs/monitor.md", "# a stream of 1,200 predictions whose group B images change in window 2"):
        "tests/monitor/test_monitor_drift_cli.py::test_docs_drift_example_runs_as_written",
    ("docs/monitor.md", "fairfoundry monitor replay drift_stream.csv --store drift.db"):
        "tests/monitor/test_monitor_drift_cli.py::test_docs_drift_example_runs_as_written",
    ("docs/evaluate.md", "fairfoundry evaluate --example nih-chexnet --label Effusion --label Cardiomegaly --sensitive sex --sensitive view --bootstrap 20 --headline-permutations 100 --tables md,tex --out nih-tables"):
        "tests/report/test_docs_report_example.py::test_docs_report_examples_run",
    ("docs/evaluate.md", "# the tables of the command above, from Python"):
        "tests/report/test_docs_report_example.py::test_docs_report_examples_run",
    ("docs/monitor.md", "fairfoundry monitor replay chexnet_stream.csv --store chexnet.db"):
        "tests/monitor/test_monitor_docs_example.py::test_docs_chexnet_replay",
    ("docs/monitor.md", "fairfoundry monitor serve --store chexnet.db --config monitor.yaml --port 8000 --evaluate-every 30"):
        "tests/monitor/test_monitor_docs_example.py::test_docs_serve_command",
}
#: pages whose every shell / Python block is run, in order, by one dedicated test module
PAGE_TESTS: dict[str, str] = {
    "docs/curate.md": "tests/curate/test_docs_curate_example.py::test_docs_curate_examples",
    "docs/hallucination.md": "tests/hallucination/test_docs_hallucination.py::test_docs_examples_run",
    "docs/segmentation.md": "tests/segmentation/test_docs_segmentation.py::test_docs_examples_run",
    "docs/studies.md": "tests/bench/test_docs_studies.py::test_documented_study_command_runs",
    "docs/synth.md": "tests/synth/test_docs_synth_example.py::test_docs_toy_script_and_pilot_commands_run",
}

_OFFLINE = "needs network access"
#: (page, first line of the block) -> why it cannot run offline
NOT_RUN: dict[tuple[str, str], str] = {
    ("README.md", "make quickstart   # creates .venv, installs, runs the main job on the bundled real data, writes a report"):
        f"{_OFFLINE}: creates .venv and installs from PyPI (the command it runs, `fairfoundry "
        "quickstart`, is tests/cli/test_quickstart.py)",
    ("docs/index.md", "make quickstart   # creates .venv, installs, runs the main job on the bundled real data, writes a report"):
        f"{_OFFLINE}: creates .venv and installs from PyPI (see tests/cli/test_quickstart.py)",
    ("docs/getting-started.md", "make quickstart"):
        f"{_OFFLINE}: creates .venv and installs from PyPI (see tests/cli/test_quickstart.py)",
    ("docs/getting-started.md", "make test"): f"{_OFFLINE}: installs from PyPI; it is this suite",
    ("docs/getting-started.md", "make docs"):
        f"{_OFFLINE}: installs from PyPI; the build it runs is tests/docs/test_site.py",
    ("README.md", "make docs                       # builds it offline into site/ (mkdocs build --strict: a warning fails)"):
        f"{_OFFLINE}: installs from PyPI; the build it runs is tests/docs/test_site.py (`mkdocs "
        "serve` is a live server)",
    ("docs/models.md", "pip install 'fairfoundry[torch,models]' huggingface_hub"): f"{_OFFLINE}: installs packages",
    ("docs/models.md", 'M=$(python -c "from fairfoundry.datasets import nih_images; print(nih_images())")   # 300 bundled NIH X-rays'):
        "needs the real models' downloaded weights (RAD-DINO, torchxrayvision, BiomedCLIP, DINOv2, "
        "RETFound) and a GPU for one line",
    ("docs/models.md", "fairfoundry models convert xrv-densenet121-all \\"):
        "needs the torchxrayvision checkpoint, downloaded",
    ("docs/models.md", "from fairfoundry.models import load_encoder"):
        "loads RAD-DINO and other downloaded weights, one on a GPU",
}

#: single lines (prefix) of shell blocks executed here -> why they cannot run offline
LINES_NOT_RUN: dict[str, str] = {
    "fairfoundry embed --model rad-dino ": "needs the RAD-DINO weights, downloaded (and a GPU for --device cuda)",
    "fairfoundry embed --model timm:vit_small_patch16_224.dino --weights vits.safetensors":
        "needs the DINO ViT-S/16 checkpoint, downloaded",
    "fairfoundry models convert xrv-densenet121-all --weights densenet.pt":
        "needs the torchxrayvision checkpoint, downloaded",
    "fairfoundry probe-attributes --embeddings emb": "reads the RAD-DINO embeddings of the line above",
    "fairfoundry experiment baseline-audit --manifest m.csv --encoder rad-dino":
        "needs the RAD-DINO weights, downloaded",
    "chromium --headless":
        "needs Chromium (tests/report/test_evaluation_report.py::test_headless_chromium_renders_the_plots "
        "runs it when installed)",
}

#: (page, prefix of a line of a shell block executed here) -> the other page that runs the identical
#: command (checked by :func:`test_every_example_is_accounted_for`): a line that reads files made by
#: another page's example, or a slow command that two pages show
LINES_RUN_ELSEWHERE: dict[tuple[str, str], str] = {
    ("README.md", "fairfoundry fit --encoder clip.safetensors --adaptation zero-shot --manifest xrays.csv"):
        "docs/adapt.md",  # its Python example writes clip.safetensors and xrays.csv
    ("docs/adapt.md", "fairfoundry fit config.yaml --out runs/cfg"): "README.md",  # ten runs of 30 epochs
    ("README.md", "fairfoundry pretrain --objective mae --manifest train.csv"):
        "docs/pretrain.md",  # its Python example writes train.csv
}


def _classify(block: Block) -> str:
    if block.run_at_build:
        return "build"
    if block.opt_out or block.key in NOT_RUN:
        return "not run"
    if block.key in TESTED_ELSEWHERE or block.page in PAGE_TESTS:
        return "elsewhere"
    return "here"


def _skipped_line(line: str, page: str) -> bool:
    return (any(line.startswith(prefix) for prefix in LINES_NOT_RUN)
            or any(line.startswith(prefix) for pg, prefix in LINES_RUN_ELSEWHERE if pg == page))


# -- the checks -----------------------------------------------------------------------------------


def _test_exists(ref: str, page: str) -> None:
    path, func = ref.split("::")
    text = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {re.escape(func)}\(", text, re.M), f"{ref} does not exist"
    name = Path(page).name
    assert name in text or (name == "README.md" and "README" in text), f"{ref} does not read {page}"


def test_every_example_is_accounted_for():
    found = blocks()
    assert len(found) > 50  # the extractor sees the pages (README + every docs page)
    keys = {b.key for b in found}
    for key, ref in TESTED_ELSEWHERE.items():
        assert key in keys, f"TESTED_ELSEWHERE entry matches no block: {key}"
        _test_exists(ref, key[0])
    for page, ref in PAGE_TESTS.items():
        assert any(b.page == page for b in found), f"PAGE_TESTS: {page} has no example"
        _test_exists(ref, page)
    for key, reason in NOT_RUN.items():
        assert key in keys and reason, f"NOT_RUN entry matches no block: {key}"
    here_lines = [ln for b in found if _classify(b) == "here" and b.lang in SHELL
                  for ln in _commands(b.code)]
    for prefix in LINES_NOT_RUN:
        assert any(ln.startswith(prefix) for ln in here_lines), f"LINES_NOT_RUN {prefix!r} matches no line"
    for (page, prefix), other in LINES_RUN_ELSEWHERE.items():
        lines = [ln for b in found if b.page == page and _classify(b) == "here" and b.lang in SHELL
                 for ln in _commands(b.code) if ln.startswith(prefix)]
        there = {_signature(ln)[0] for b in found if b.page == other and _classify(b) == "here"
                 and b.lang in SHELL for ln in _commands(b.code) if not _skipped_line(ln, other)}
        assert lines, f"LINES_RUN_ELSEWHERE {(page, prefix)!r} matches no line"
        missing = [ln for ln in lines if _signature(ln)[0] not in there]
        assert not missing, f"{page}: {missing} are not run, identical, on {other}"
    for b in found:
        if b.run_at_build:
            assert b.lang in ("python", "bash"), f"{b.page}:{b.line}: only python/bash run blocks execute"


def test_run_blocks_are_on_pages_the_build_executes():
    """``run`` blocks execute only on pages that mkdocs builds (under docs/, in the nav)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for b in blocks():
        if b.run_at_build:
            assert b.page.startswith("docs/"), f"{b.page}:{b.line}: a run block outside docs/ never runs"
            assert b.page.removeprefix("docs/") in nav, f"{b.page} is not in the mkdocs nav"


def test_opt_out_comment_is_read():
    text = "intro\n<!-- example: not run: installs packages -->\n```bash\npip install x\n```\n"
    m = _FENCE.search(text)
    before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
    assert _OPT_OUT.search(before).group("reason") == "installs packages"


# -- running the examples --------------------------------------------------------------------------


def _commands(code: str) -> list[str]:
    """Logical lines of a shell block (continuations joined), comments and blanks kept out."""
    out = []
    for line in re.sub(r"\\\n\s*", " ", code).splitlines():
        if line.strip() and not line.strip().startswith("#"):
            out.append(line.strip())
    return out


@pytest.fixture(scope="module")
def base_workspace(tmp_path_factory) -> Path:
    """The files the examples name, made from the bundled real data.

    ``manifest.csv`` (+ ``.parquet``) and ``images/``: the 300 bundled NIH X-rays; ``emb/``: their
    ``fairfoundry-tiny`` embeddings (the command of docs/pretrain.md); ``preds.csv``: the real
    CheXNet Effusion scores of 800 NIH patients (``y``, ``p``, ``sex``, ``age``, ``patient_id``,
    ``split``); ``census.csv``: a reference population; ``config.yaml``: the fit configuration
    shown in docs/adapt.md; ``~/data/HAM10000``, ``~/data/nih``, ``~/data/dicoms``: the copies of
    those datasets in ``tests/data``; ``scripts/`` and ``.venv/bin/python`` (this interpreter) for
    the commands the pages run from the repository root.
    """
    import pandas as pd

    from fairfoundry.cli import main
    from fairfoundry.datasets import nih_chexnet, nih_images

    ws = tmp_path_factory.mktemp("examples-base")
    bundled = nih_images().parent
    shutil.copy(bundled / "manifest.csv", ws / "manifest.csv")
    shutil.copytree(bundled / "images", ws / "images")
    nih = nih_chexnet()
    patients = nih["patient_id"].drop_duplicates().sample(800, random_state=0)
    preds = nih[nih["patient_id"].isin(patients)]
    preds = preds.assign(y=preds["Effusion"], p=preds["prob_Effusion"])
    preds[["sample_id", "patient_id", "split", "y", "p", "sex", "age"]].to_csv(ws / "preds.csv", index=False)
    (ws / "census.csv").write_text("attribute,group,share\nsex,female,0.51\nsex,male,0.49\n")
    pd.read_csv(ws / "manifest.csv").to_parquet(ws / "manifest.parquet")
    adapt = (ROOT / "docs" / "adapt.md").read_text(encoding="utf-8")
    (ws / "config.yaml").write_text(re.search(r"```yaml\n(.*?)```", adapt, re.S).group(1))
    embed = "fairfoundry embed --model fairfoundry-tiny --manifest manifest.csv --out emb"
    assert embed in (ROOT / "docs" / "pretrain.md").read_text(encoding="utf-8")
    assert main(["embed", "--model", "fairfoundry-tiny", "--manifest", str(ws / "manifest.csv"),
                 "--out", str(ws / "emb"), "--cache-dir", str(ws / "cache")]) == 0
    _remember(embed, ws)  # that page's command, run here once
    # the repository-root commands (`.venv/bin/python scripts/...`): the scripts and this interpreter
    (ws / "scripts").symlink_to(ROOT / "scripts", target_is_directory=True)
    venv_bin = ws / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    data = ROOT / "tests" / "data"
    home = ws / "home" / "data"
    home.mkdir(parents=True)
    for name, target in {"HAM10000": data / "ham10000", "nih": data / "nih_chestxray14",
                         "dicoms": data / "dicom_pydicom_testfiles" / "files"}.items():
        (home / name).symlink_to(target, target_is_directory=True)
    return ws


def _workspace(base: Path, tmp: Path) -> Path:
    ws = tmp / "ws"
    shutil.copytree(base, ws, symlinks=True)
    return ws


def _env(ws: Path) -> dict[str, str]:
    from fairfoundry.datasets import nih_images

    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "HOME": str(ws / "home"), "PATH": bindir + os.pathsep + os.environ["PATH"],
            "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "FAIRFOUNDRY_CACHE": str(ws / "cache"), "NIH": str(nih_images()), "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1", "COLUMNS": "100", "NO_COLOR": "1"}


def _pages_run_here() -> list[str]:
    return sorted({b.page for b in blocks() if _classify(b) == "here"})


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages_run_here())
def test_examples_run_as_written(page, base_workspace, tmp_path, monkeypatch):
    ws = _workspace(base_workspace, tmp_path)
    env = _env(ws)
    monkeypatch.chdir(ws)
    monkeypatch.setenv("HOME", env["HOME"])  # "~/data/..." in the Python examples too
    monkeypatch.setenv("FAIRFOUNDRY_CACHE", env["FAIRFOUNDRY_CACHE"])
    namespace: dict = {"__name__": "__example__"}
    for b in blocks():
        if b.page != page or _classify(b) != "here":
            continue
        where = f"{b.page}:{b.line}"
        if b.lang == "python":
            exec(compile(b.code, where, "exec"), namespace)  # the example itself
            continue
        assignments: list[str] = []  # VAR=... lines: kept for the block's later lines
        for command in _commands(b.code):
            if _skipped_line(command, b.page):
                continue
            if re.match(r"^\w+=", command):
                assignments.append(command)
                continue
            if _reuse(command, ws, assignments):
                continue
            script = "\n".join([*assignments, command])
            proc = subprocess.run(["bash", "-e", "-c", script], cwd=ws, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (f"{where} failed:\n{script}\n{proc.stdout[-3000:]}\n"
                                          f"{proc.stderr[-3000:]}")
            _remember(command, ws, assignments)


#: a command already run in this session (same arguments but --overwrite) -> its --out directory
_DONE: dict[tuple[tuple[str, ...], tuple[str, ...]], Path] = {}


def _signature(command: str) -> tuple[tuple[str, ...], str | None]:
    import shlex

    args = [a for a in shlex.split(command, comments=True) if a != "--overwrite"]
    out = args[args.index("--out") + 1] if "--out" in args[:-1] else None
    return tuple(args), out


def _expanded(assignments) -> tuple[str, ...]:
    """The ``VAR=...`` lines a command may expand (comments dropped): part of what it ran."""
    import shlex

    return tuple(w for a in assignments for w in shlex.split(a, comments=True))


def _remember(command: str, ws: Path, assignments: list[str] = ()) -> None:
    args, out = _signature(command)
    if out is not None and args[0] == "fairfoundry":
        _DONE[_expanded(assignments), args] = ws / out


def _reuse(command: str, ws: Path, assignments: list[str] = ()) -> bool:
    """A command that another page already ran as written, with the same arguments (the
    flagship ``evaluate --example nih-chexnet --out nih-eval`` is on three pages): its outputs are
    copied instead of computed again."""
    args, out = _signature(command)
    done = _DONE.get((_expanded(assignments), args))
    if done is None or not done.is_dir():
        return False
    if done != ws / out:
        shutil.copytree(done, ws / out, dirs_exist_ok=True)
    return True

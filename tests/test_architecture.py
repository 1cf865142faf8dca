"""The layering of docs/architecture.md holds: no package imports a package of a higher layer."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fairfoundry"
LAYER = {"groups": 0, "metrics": 0, "data": 0, "datasets": 0,
         "evaluation": 1, "audit": 1, "models": 1, "report": 1, "hallucination": 1, "segmentation": 1,
         "adapt": 2, "mitigate": 2, "pretrain": 2, "curate": 2, "synth": 2,
         "pipeline": 3, "bench": 4, "monitor": 4, "cli": 5}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = path.relative_to(SRC).parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module is not None:
            base = list(pkg[:-1])[: len(pkg) - node.level]
            yield ([*base, *node.module.split(".")] or [""])[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fairfoundry."):
            yield node.module.split(".")[1], node.lineno


def test_imports_point_down_the_layers():
    bad = []
    for path in SRC.rglob("*.py"):
        own = path.relative_to(SRC).parts[0]
        if own not in LAYER:
            continue
        for target, line in _imports(path):
            if target in LAYER and LAYER[target] > LAYER[own]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports {target} (layer {LAYER[target]})")
    assert not bad, bad


def test_groups_is_numpy_and_pandas_only():
    allowed = {"numpy", "pandas", "__future__", "collections", "re", "dataclasses", "typing", "_errors"}
    for path in (SRC / "groups").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0] or "."]
                if node.level >= 1:
                    names = ["_errors" if node.module == "_errors" or node.level == 1 else node.module]
            else:
                continue
            assert set(names) <= allowed, (path.name, names)

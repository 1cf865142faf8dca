"""The zero-shot CLIP / CLIP-Adapter example of docs/adapt.md runs as written, on the bundled NIH X-rays."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

DOC = Path(__file__).resolve().parents[2] / "docs" / "adapt.md"


def test_docs_zero_shot_and_clip_adapter_example(tmp_path, monkeypatch, capsys):
    text = DOC.read_text()
    section = text[text.index("### Zero-shot CLIP and the CLIP-Adapter (Python API)"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)  # the documented example itself
    preds = pd.read_parquet(tmp_path / "clip_adapter_predictions.parquet")
    assert {"sample_id", "split", "y_true", "y_score", "sex"} <= set(preds.columns)
    assert preds["y_score"].between(0, 1).all() and set(preds["split"]) == {"train", "val", "test"}
    for ev in (ns["zs"], ns["ad"]):  # per-group AUCs with CIs on the test split
        auc = ev.by_group.query("metric == 'auc' and attribute == 'sex'")
        assert set(auc["group"]) >= {"female", "male"} and (auc["ci_low"] <= auc["estimate"]).all()
    assert "estimate" in capsys.readouterr().out

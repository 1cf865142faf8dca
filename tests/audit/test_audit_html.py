"""audit.html: a jinja2 template with autoescape, a headline in words, and "patients" only where
the dataset has patient ids (Fitzpatrick17k has none; HAM10000's ids are lesions)."""

from pathlib import Path

import numpy as np
import pandas as pd

from fairfoundry.audit import audit_manifest
from fairfoundry.data import load_dataset

DATA = Path(__file__).resolve().parents[1] / "data"


def test_user_text_is_escaped_and_the_headline_names_who_is_missing():
    rng = np.random.default_rng(0)
    n = 200
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
                      "sex": rng.choice(["female", "male"], n, p=[0.8, 0.2]),
                      "site": rng.choice(["<script>alert(1)</script>", "B"], n)})
    a = audit_manifest(m, sensitive=["sex", "site"], reference_population={"sex": {"female": 0.5, "male": 0.5}})
    html = a.to_html()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "In short:" in html and "Not recorded: " in html and "race" in html
    assert "Largest imbalance: sex, where male has" in html
    assert "sex=male is under-represented" in html
    assert f"{n} images of 100 patients" in html


def test_patients_are_shown_only_where_the_dataset_has_patient_ids():
    fitz = load_dataset("fitzpatrick17k", DATA / "fitzpatrick17k")
    html = audit_manifest(fitz.manifest, spec=fitz.spec, dataset="fitzpatrick17k").to_html()
    assert "patients" not in html.split("<h2>Summary</h2>", 1)[1].split("</ul>", 1)[0]
    assert "no patient ids" in html and "n_patients" not in html
    ham = load_dataset("ham10000", DATA / "ham10000")
    html = audit_manifest(ham.manifest, spec=ham.spec, dataset="ham10000").to_html()
    assert " lesions" in html and "n_lesions" in html and "n_patients" not in html

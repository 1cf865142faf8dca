"""audit.html: a jinja2 template with autoescape, a headline in words, and "patients" only where
the dataset has patient ids (Fitzpatrick17k has none; HAM10000's ids are lesions)."""

import re
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
                      "sex": np.repeat(rng.choice(["female", "male"], n // 2, p=[0.8, 0.2]), 2),  # per patient
                      "site": rng.choice(["<script>alert(1)</script>", "B"], n)})
    a = audit_manifest(m, sensitive=["sex", "site"], reference_population={"sex": {"female": 0.5, "male": 0.5}})
    html = a.to_html()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "In short:" in html and "Not recorded: " in html and "race" in html
    assert "Largest imbalance: sex, where male has" in html
    assert "sex=male is under-represented" in html
    # backed by counts and a Wilson interval over patients (images of a patient are not independent)
    assert "of 100 patients with a known value vs 50.0% in the reference" in html
    assert re.search(r"male has \d+ images \(0\.\d+ of the largest; \d+ patients, [\d.]+% \[95% CI "
                     r"[\d.]+-[\d.]+%\] of 100 patients with a known sex\)", html)
    assert f"{n} images of 100 patients" in html


def test_patients_are_shown_only_where_the_dataset_has_patient_ids():
    fitz = load_dataset("fitzpatrick17k", DATA / "fitzpatrick17k")
    html = audit_manifest(fitz.manifest, spec=fitz.spec, dataset="fitzpatrick17k").to_html()
    assert "patients" not in html.split("<h2>Summary</h2>", 1)[1].split("</ul>", 1)[0]
    assert "no patient ids" in html and "n_patients" not in html
    assert "No patient appears" not in html and "leakage of a patient across splits cannot be checked" in html
    ham = load_dataset("ham10000", DATA / "ham10000")
    html = audit_manifest(ham.manifest, spec=ham.spec, dataset="ham10000").to_html()
    assert " lesions" in html and "n_lesions" in html and "n_patients" not in html
    assert "No lesion appears in more than one split" in html and "No patient appears" not in html
    assert "lesions with a known age_group" in html  # the headline's interval counts lesions, not images


def test_representation_needs_its_interval_and_missing_values_are_named():
    # 12 patients only: a share of 2 / 12 is below 0.8 x 50 % on the point estimate, but its
    # interval reaches 0.8 of the reference, so the headline says too few to judge
    m = pd.DataFrame({"sample_id": [f"s{i}" for i in range(24)], "patient_id": [f"p{i // 2}" for i in range(24)],
                      "sex": ["male"] * 4 + ["female"] * 20, "age": [None] * 4 + [50.0] * 20})
    a = audit_manifest(m, sensitive=["sex", "age"], reference_population={"sex": {"female": 0.5, "male": 0.5}},
                       min_group_size=1)
    html = a.to_html()
    assert "sex=male is under-represented" not in html
    assert "too few to judge (the 95% interval reaches 0.8): sex=male" in html
    assert "Most often unknown: age (4 of 24 images, 16.7%)" in html


def test_charts_are_inline_svg_with_escaped_labels_and_suppressed_bars(tmp_path):
    """The page draws its charts as SVG from a template (no matplotlib import: a 1M-row
    audit-data spent ~2 s in it); labels are escaped, groups below min_group_size get no bar."""
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd\n"
        "from fairfoundry.audit import audit_manifest\n"
        "m = pd.DataFrame({'sample_id': [str(i) for i in range(60)],\n"
        "                  'sex': ['female'] * 30 + ['male'] * 27 + ['other'] * 3,\n"
        "                  'site': ['<b>A</b>'] * 30 + ['B'] * 30, 'country': ['USA'] * 60})\n"
        "html = audit_manifest(m, sensitive=['sex', 'site', 'country'], min_group_size=5,\n"
        "                      reference_population={'sex': {'female': .5, 'male': .5}}).to_html()\n"
        "open(sys.argv[1], 'w').write(html)\n"
        "print('matplotlib' in sys.modules)\n")
    out = tmp_path / "a.html"
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                         check=True)
    assert res.stdout.strip() == "False"
    html = out.read_text()
    assert html.count("<svg ") >= 4 and "data:image/png" not in html
    assert "&lt;b&gt;A&lt;/b&gt;" in html and "<b>A</b>" not in html
    assert "&lt;5 images" in html  # 'other' (3 images) is labelled, not drawn
    bar = html.split("<title>other: &lt;5 images</title>")[0].rsplit("<rect", 1)[1]
    assert 'width="0.0"' in bar
    assert 'stroke="#c0392b"' in html  # reference ticks
    assert "images per sex&amp;site" in html  # the intersection heatmap

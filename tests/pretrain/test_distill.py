"""Knowledge agglomeration: a student learns what its teachers know."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.pretrain import (  # noqa: E402
    ImageBank,
    Teacher,
    TimmTeacher,
    build_vit,
    distill,
    load_manifest,
    load_pretrained_vit,
    teacher_group_scores,
)


class TextureTeacher(Teacher):
    """A hand-made 'foundation model' that knows textures: oriented filter energies.

    Its summary is linearly predictive of the texture class; its patch features are the same
    energies per 8x8 patch. A random ViT does not have this knowledge; a distilled one should.
    """

    name = "texture"
    image_size = 32

    def __init__(self):
        k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.filters = torch.stack([k, k.T, lap, k @ k.T]).unsqueeze(1)

    def encode(self, images):
        x = images.mean(dim=1, keepdim=True)
        r = torch.nn.functional.conv2d(x, self.filters, padding=1) ** 2
        tokens = torch.nn.functional.avg_pool2d(r, 8).permute(0, 2, 3, 1)  # (B, 4, 4, 4)
        summary = torch.log(r.mean(dim=(2, 3)) + 1e-4)
        return summary, torch.log(tokens + 1e-4)


def _probe_accuracy(backbone, train_manifest, test_manifest):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def embed(manifest):
        frame, _ = load_manifest(manifest)
        bank = ImageBank(frame["path"].tolist(), size=32)
        with torch.no_grad():
            z = backbone.eval()((bank.batch(range(len(frame))) - 0.5) / 0.5)
        return z.numpy(), frame["texture"].to_numpy()

    xtr, ytr = embed(train_manifest)
    xte, yte = embed(test_manifest)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(xtr, ytr)
    return float((probe.predict(xte) == yte).mean())


def test_distilled_student_beats_random_init_on_a_linear_probe(tiny_manifest, tmp_path,
                                                               tiny_vit, write_textures_fn):
    test_dir = tmp_path / "heldout"
    write_textures_fn(test_dir, 48, seed=7)
    cfg = {"manifest": str(tiny_manifest), **tiny_vit, "steps": 60, "batch_size": 16,
           "lr": 2e-3, "seed": 0}
    summary = distill(cfg, out=tmp_path / "run", teachers=[TextureTeacher()])
    assert summary["final_loss"] < summary["first_loss"]
    student, meta = load_pretrained_vit(tmp_path / "run" / "encoder.safetensors")
    torch.manual_seed(0)
    random_init = build_vit(**tiny_vit)
    acc_student = _probe_accuracy(student, tiny_manifest, test_dir / "manifest.csv")
    acc_random = _probe_accuracy(random_init, tiny_manifest, test_dir / "manifest.csv")
    assert acc_student > acc_random + 0.1, (acc_student, acc_random)
    teachers = pd.read_csv(tmp_path / "run" / "teachers.csv")
    assert teachers["weight"].tolist() == [1.0] and teachers["feature_grid"].tolist() == [4]


class NoiseTeacher(Teacher):
    """A teacher that knows nothing: features are a fixed random function of the row order."""

    name = "noise"
    image_size = 32

    def encode(self, images):
        g = torch.Generator().manual_seed(int(images.sum() * 1000) % 10_000)
        return torch.randn(images.shape[0], 6, generator=g), None


def test_worst_group_weighting_favours_the_fair_teacher_and_drops_the_useless_one(
        tiny_manifest, tmp_path, tiny_vit):
    cfg = {"manifest": str(tiny_manifest), **tiny_vit, "steps": 3, "batch_size": 16,
           "teacher_weighting": "worst_group", "weight_label": "label", "weight_groups": ["sex"]}
    s = distill(cfg, out=tmp_path / "w", teachers=[TextureTeacher(), NoiseTeacher()])
    t = {row["teacher"]: row for row in s["teachers"]}
    assert t["texture"]["worst_group_auc"] > 0.8 > t["noise"]["worst_group_auc"]
    assert t["texture"]["weight"] > t["noise"]["weight"] > 0
    assert t["texture"]["weight"] + t["noise"]["weight"] == pytest.approx(1.0)
    log = pd.read_csv(tmp_path / "w" / "loss_log.csv")
    assert {"loss_texture", "loss_noise"} <= set(log.columns)

    dropped = distill({**cfg, "min_worst_group_auc": 0.75}, out=tmp_path / "d",
                      teachers=[TextureTeacher(), NoiseTeacher()])
    t = {row["teacher"]: row for row in dropped["teachers"]}
    assert t["noise"]["dropped"] and t["noise"]["weight"] == 0 and t["texture"]["weight"] == 1
    with pytest.raises(FairfoundryError, match="every teacher was dropped"):
        distill({**cfg, "min_worst_group_auc": 0.999}, out=tmp_path / "e",
                teachers=[NoiseTeacher()])
    with pytest.raises(FairfoundryError, match="needs a label and groups"):
        distill({**cfg, "weight_label": None}, out=tmp_path / "f", teachers=[NoiseTeacher()])


def test_teacher_dropout_keeps_at_least_one_teacher():
    from fairfoundry.pretrain._distill import active_teachers

    g = torch.Generator().manual_seed(0)
    kept = [active_teachers(["a", "b", "c"], 0.9, g) for _ in range(200)]
    assert all(len(k) >= 1 for k in kept)
    assert len({len(k) for k in kept}) > 1
    assert active_teachers(["a", "b"], 0.0, g) == ["a", "b"]


def test_group_scores_of_a_teacher():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 60)
    groups = np.repeat(["a", "b", "c"], 40)
    x = np.c_[y + rng.normal(0, 0.3, 120), rng.normal(size=120)]
    x[groups == "b", 0] = rng.normal(size=40)  # the teacher knows nothing about group b
    s = teacher_group_scores(x, y, groups)
    assert s["worst_group"] == "b" and s["worst_group_auc"] < 0.75 < s["per_group"]["a"]
    one_class = np.where(groups == "c", 1, y)
    assert "c" not in teacher_group_scores(x, one_class, groups)["per_group"]


def test_cli_distill_from_zoo_teachers_at_other_resolutions(cli, tiny_manifest, tmp_path, tiny_vit):
    """Two timm teachers from the zoo (random weights, local), at 48 and 32 px, into a 32 px student."""
    import yaml

    common = {"weights": "random"}
    cfg = {
        "manifest": str(tiny_manifest), **tiny_vit, "steps": 4, "batch_size": 16,
        "teachers": [
            {"name": "timm:vit_tiny_patch16_224", **common,
             "model_kwargs": {"img_size": 48, "patch_size": 8, "embed_dim": 32, "depth": 1,
                              "num_heads": 2}},
            {"name": "timm:vit_small_patch16_224", **common,
             "model_kwargs": {"img_size": 32, "patch_size": 16, "embed_dim": 48, "depth": 1,
                              "num_heads": 2}},
        ],
    }
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(cfg))
    res = cli("distill", tmp_path / "d.yaml", "--out", tmp_path / "run", "--teacher-dropout", "0.5")
    assert res.code == 0, res
    teachers = pd.read_csv(tmp_path / "run" / "teachers.csv")
    # the 48 px teacher's 6x6 patch features are pooled to the student's 4x4 grid; the
    # patch-16 teacher's coarser 2x2 grid is kept and the student's 4x4 map is pooled to it
    assert teachers["image_size"].tolist() == [48, 32]
    assert teachers["feature_grid"].tolist() == [4, 2]
    assert teachers["summary_dim"].tolist() == [32, 48]
    cache = list((tmp_path / "run" / "teacher_cache").glob("*.safetensors"))
    assert len(cache) == 2
    student, _ = load_pretrained_vit(tmp_path / "run" / "encoder.safetensors")
    assert student.embed_dim == 32

    # a feature grid finer than a teacher's own patch grid is a resolution mismatch
    bad = cli("distill", tmp_path / "d.yaml", "--out", tmp_path / "bad", "--feature-grid", "4")
    assert bad.code == 2 and "finer than teacher" in bad.err and "Traceback" not in bad.err
    assert not (tmp_path / "bad").exists()  # nothing written
    none = cli("distill", "--manifest", tiny_manifest, "--out", tmp_path / "none")
    assert none.code == 2 and "at least one teacher" in none.err


def test_timm_teacher_gives_summary_and_patch_grid(tiny_vit):
    torch.manual_seed(0)
    teacher = TimmTeacher(build_vit(**tiny_vit), name="vit")
    summary, tokens = teacher.encode(torch.rand(3, 3, 32, 32))
    assert summary.shape == (3, 32) and tokens.shape == (3, 4, 4, 32)
    assert not any(p.requires_grad for p in teacher.model.parameters())

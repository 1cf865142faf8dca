"""Pre-training objectives against their papers (issue 18): exported teachers, schedules on resume."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _dino_cfg(manifest, tiny_vit, tiny_options, **kw):
    options = {**tiny_options["dino"], "local_crops": 0, "warmup_teacher_temp": 0.02,
               "teacher_temp": 0.05, **kw.pop("options", {})}
    return {"objective": "dino", "manifest": str(manifest), **tiny_vit, "batch_size": kw.pop("batch_size", 8),
            "options": options, **kw}


def test_resume_with_more_steps_gives_the_schedules_of_an_uninterrupted_run(tiny_manifest, tmp_path,
                                                                           tiny_vit, tiny_options):
    from fairfoundry.pretrain import pretrain

    # the uninterrupted run of the new length (its schedules run over its 8 steps)
    full = _dino_cfg(tiny_manifest, tiny_vit, tiny_options, steps=8)
    pretrain(full, out=tmp_path / "full")
    # a run of 4 steps planned as the first chunk of 8, then resumed with --steps 8
    pretrain({**full, "steps": 4, "schedule_steps": 8}, out=tmp_path / "chunk")
    pretrain({**full, "steps": 8, "schedule_steps": 8}, out=tmp_path / "chunk", resume=True)
    a = pd.read_csv(tmp_path / "full" / "loss_log.csv")
    b = pd.read_csv(tmp_path / "chunk" / "loss_log.csv")
    assert b["step"].tolist() == list(range(8))
    for col in ("lr", "teacher_temp", "teacher_momentum"):  # step by step the same schedule values
        assert b[col].tolist() == pytest.approx(a[col].tolist(), rel=1e-12), col
    # the EMA momentum rises monotonically (no restart at the resume)
    assert b["teacher_momentum"].is_monotonic_increasing and b["teacher_momentum"].iloc[-1] > 0.9998
    wa, wb = _weights(tmp_path / "full" / "encoder.safetensors"), _weights(tmp_path / "chunk" / "encoder.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_that_would_restart_the_schedules_is_refused(tiny_manifest, tmp_path, tiny_vit, tiny_options):
    from fairfoundry._errors import FairfoundryError
    from fairfoundry.pretrain import pretrain

    cfg = _dino_cfg(tiny_manifest, tiny_vit, tiny_options, steps=3)
    pretrain(cfg, out=tmp_path / "run")
    with pytest.raises(FairfoundryError, match="schedules run over 3 steps"):
        pretrain({**cfg, "steps": 6}, out=tmp_path / "run", resume=True)
    with pytest.raises(FairfoundryError, match="schedule_steps"):
        pretrain({**cfg, "schedule_steps": 2}, out=tmp_path / "bad")


def test_a_100_step_dino_run_warns_that_its_teacher_is_mostly_initialisation(tiny_manifest, tmp_path, tiny_vit,
                                                                             tiny_options, caplog):
    from fairfoundry.pretrain import pretrain
    from fairfoundry.pretrain._objective import ema_momentum

    small = {**tiny_vit, "embed_dim": 16, "depth": 1}
    cfg = _dino_cfg(tiny_manifest, small, tiny_options, steps=100, log_every=50, batch_size=4,
                    options={"out_dim": 32, "head_hidden": 16, "head_bottleneck": 8})
    with caplog.at_level(logging.WARNING, logger="fairfoundry.pretrain._runner"):
        teacher = pretrain(cfg, out=tmp_path / "teacher")
    expected = math.prod(ema_momentum(t, 100, base=0.996) for t in range(100))
    assert teacher["export"]["network"] == "teacher"
    assert teacher["export"]["teacher_init_share"] == pytest.approx(expected, rel=1e-4)
    assert 0.8 < expected < 0.85  # 82 % of the exported weights are the initialisation
    assert "still 82% its random initialisation" in caplog.text and "export=student" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fairfoundry.pretrain._runner"):
        student = pretrain({**cfg, "options": {**cfg["options"], "export": "student"}}, out=tmp_path / "student")
    assert student["export"]["network"] == "student" and "initialisation" not in caplog.text
    # same training (same seed): the two exports are the teacher and the student of one run
    wt, ws = _weights(tmp_path / "teacher" / "encoder.safetensors"), _weights(tmp_path / "student" / "encoder.safetensors")
    assert any(not torch.equal(wt[k], ws[k]) for k in wt)


def test_ijepa_ema_is_linear_as_in_the_paper_and_exports_either_network(tiny_vit):
    from fairfoundry.pretrain import build_vit
    from fairfoundry.pretrain._ijepa import IJEPA, _block_shape
    from fairfoundry.pretrain._objective import ema_momentum

    assert ema_momentum(50, 100, base=0.996, schedule="linear") == pytest.approx(0.998)
    assert ema_momentum(25, 100, base=0.996) == pytest.approx(1 - 0.004 * (1 + math.cos(math.pi / 4)) / 2)
    net = build_vit(tiny_vit["model"], image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    obj = IJEPA(net, predictor_dim=16, predictor_depth=1, predictor_heads=2)
    assert obj.ema_schedule == "linear" and obj.export_encoder() is obj.target_encoder
    obj.on_step_end(0, 10)
    assert float(obj.teacher_init_share) == pytest.approx(0.996)
    assert IJEPA(net, predictor_dim=16, predictor_depth=1, predictor_heads=2,
                 export="student").export_encoder() is net
    # every block side is strictly shorter than the grid's, as in the paper's mask collator
    g = torch.Generator().manual_seed(0)
    shapes = [_block_shape(4, 4, (0.85, 1.0), (1.0, 1.0), g) for _ in range(20)]
    assert max(max(s) for s in shapes) == 3

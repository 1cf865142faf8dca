"""The one training loop: determinism, hooks, selection, early stopping, checkpoints, resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fairfoundry._errors import FairfoundryError  # noqa: E402
from fairfoundry.adapt import ArrayData, Hook, TrainConfig, Trainer  # noqa: E402


def _data(n=400, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=d)
    y = (x @ w + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return x, y


def _model(d=8, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(16, 1))


def _fit(seed=0, epochs=3, **kw):
    x, y = _data()
    tr = Trainer(_model(), config=TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, seed=seed, **kw))
    res = tr.fit(ArrayData(x=x, y=y))
    with torch.no_grad():
        return tr, res, tr.model(torch.as_tensor(x)).numpy()


def test_same_seed_identical_predictions_and_loss_decreases():
    _, r1, p1 = _fit(seed=3)
    _, r2, p2 = _fit(seed=3)
    _, _, p3 = _fit(seed=4)
    assert np.array_equal(p1, p2)
    assert not np.array_equal(p1, p3)
    assert r1.losses[-1] < r1.losses[0]


def test_amp_flag_is_ignored_on_cpu():
    _, _, p1 = _fit(seed=1)
    _, _, p2 = _fit(seed=1, amp=True)
    assert np.array_equal(p1, p2)


def test_hooks_called_in_order_and_regulariser_changes_training():
    calls = []

    class Spy(Hook):
        def on_fit_start(self, trainer):
            calls.append("start")

        def batch_weights(self, trainer, batch):
            calls.append("w")
            return torch.ones(len(batch["index"]))

        def regularizer(self, trainer, batch, out):
            calls.append("reg")
            return 10.0 * out["logits"].pow(2).mean()

        def on_step_end(self, trainer, step):
            calls.append("step")

        def on_epoch_end(self, trainer, epoch):
            calls.append("epoch")

    x, y = _data()
    tr = Trainer(_model(), hooks=[Spy()], config=TrainConfig(epochs=2, batch_size=200, lr=1e-2))
    tr.fit(ArrayData(x=x, y=y))
    assert calls[:4] == ["start", "w", "reg", "step"]
    assert calls.count("step") == 4 and calls.count("epoch") == 2
    with torch.no_grad():
        shrunk = tr.model(torch.as_tensor(x)).abs().mean()
    _, _, free = _fit(seed=0, epochs=2)
    assert shrunk < np.abs(free).mean()


def test_sample_weights_hook_drives_resampling():
    seen = []

    class OnlyFirstHalf(Hook):
        def sample_weights(self, trainer):
            w = np.zeros(len(trainer.train_data))
            w[:100] = 1
            return w

        def on_step_end(self, trainer, step):
            pass

    class Rec(Hook):
        def batch_weights(self, trainer, batch):
            seen.append(batch["index"].numpy())
            return None

    x, y = _data()
    Trainer(_model(), hooks=[OnlyFirstHalf(), Rec()], config=TrainConfig(epochs=1, batch_size=50)).fit(
        ArrayData(x=x, y=y))
    idx = np.concatenate(seen)
    assert len(idx) == 400 and idx.max() < 100


def test_selection_restores_best_and_early_stopping():
    x, y = _data()
    scores = iter([0.5, 0.9, 0.6, 0.55, 0.52, 0.51, 0.5, 0.5])
    snaps = []

    def evaluator(trainer):
        snaps.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return {"score": next(scores)}

    tr = Trainer(_model(), evaluator=evaluator,
                 config=TrainConfig(epochs=8, batch_size=64, select="score", patience=2))
    res = tr.fit(ArrayData(x=x, y=y))
    assert res.stopped_early and res.epochs_run == 4
    assert res.best["epoch"] == 2 and res.best["score"] == 0.9
    for k, v in tr.model.state_dict().items():
        assert torch.equal(v, snaps[1][k])


def test_selection_key_missing_is_a_clear_error():
    x, y = _data()
    tr = Trainer(_model(), evaluator=lambda t: {"auc": 0.5}, config=TrainConfig(epochs=1, select="dto"))
    with pytest.raises(FairfoundryError, match="dto"):
        tr.fit(ArrayData(x=x, y=y))


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    x, y = _data()
    data = ArrayData(x=x, y=y)

    def make(epochs, ckpt=None):
        return Trainer(_model(), config=TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, seed=7,
                                                     checkpoint_dir=ckpt))

    full = make(4)
    full.fit(data)
    half = make(2, str(tmp_path / "ck"))
    half.fit(data)
    assert (tmp_path / "ck" / "last" / "weights.safetensors").exists()
    resumed = make(4)
    res = resumed.fit(data, resume=tmp_path / "ck" / "last")
    assert res.epochs_run == 4 and len(res.losses) == 4
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_lbfgs_full_batch_converges_stops_and_resumes(tmp_path):
    x, y = _data()
    data = ArrayData(x=x, y=y)

    def make(epochs, ckpt=None):
        return Trainer(_model(), config=TrainConfig(optimizer="lbfgs", epochs=epochs, batch_size=len(x), lr=1.0,
                                                     lbfgs_max_iter=3, seed=0, checkpoint_dir=ckpt,
                                                     weight_decay=1e-2))

    full = make(4)
    full.fit(data)
    half = make(2, str(tmp_path / "ck"))
    half.fit(data)
    resumed = make(4)
    res = resumed.fit(data, resume=tmp_path / "ck" / "last")  # L-BFGS history restored from safetensors
    assert res.epochs_run == 4 and res.losses[-1] <= res.losses[0]
    for k, v in full.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k
    done = make(200)
    r = done.fit(data)
    assert r.epochs_run < 200  # stops once an epoch converges


def test_bad_settings_and_nan_loss():
    with pytest.raises(FairfoundryError, match="optimizer"):
        TrainConfig(optimizer="newton")
    x, y = _data()
    x[0, 0] = np.nan
    with pytest.raises(FairfoundryError, match="loss became nan"):
        Trainer(_model(), config=TrainConfig(epochs=1, batch_size=400)).fit(ArrayData(x=x, y=y))


def test_custom_objective_with_ema_teacher_hook():
    """The pre-training use: an objective returning only 'loss' and an EMA teacher on_step_end."""
    x, _ = _data()
    student = torch.nn.Linear(8, 4)
    teacher = torch.nn.Linear(8, 4)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad_(False)

    def objective(model, batch):
        return {"loss": (model(batch["x"]) - teacher(batch["x"]).detach() - 1.0).pow(2).mean()}

    class EMA(Hook):
        def on_step_end(self, trainer, step):
            with torch.no_grad():
                for pt, ps in zip(teacher.parameters(), trainer.model.parameters(), strict=True):
                    pt.mul_(0.9).add_(ps, alpha=0.1)

    before = teacher.weight.clone()
    Trainer(student, objective, hooks=[EMA()], config=TrainConfig(epochs=1, batch_size=100)).fit(ArrayData(x=x))
    assert not torch.equal(before, teacher.weight)


def test_emissions_tracked_offline():
    pytest.importorskip("codecarbon")
    x, y = _data()
    tr = Trainer(_model(), config=TrainConfig(epochs=1), track_emissions=True)
    res = tr.fit(ArrayData(x=x, y=y))
    assert res.emissions is not None and res.emissions["emissions_kg_co2eq"] >= 0
    assert "estimate" in res.emissions["note"]


def test_resume_keeps_the_best_checkpoint_of_the_interrupted_run(tmp_path):
    x, y = _data()
    data = ArrayData(x=x, y=y)
    scores = iter([0.9, 0.5, 0.4, 0.3])

    def make(epochs):
        return Trainer(_model(), evaluator=lambda t: {"s": next(scores)},
                       config=TrainConfig(epochs=epochs, batch_size=64, select="s", checkpoint_dir=str(tmp_path)))

    first = make(2)
    first.fit(data)
    from safetensors.torch import load_file

    best = load_file(str(tmp_path / "best" / "weights.safetensors"))
    resumed = make(4)
    res = resumed.fit(data, resume=tmp_path / "last")
    assert res.best["epoch"] == 1 and res.best["s"] == 0.9
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, best["model." + k])


def test_resume_with_another_cosine_length_is_refused_unless_the_schedule_length_is_fixed(tmp_path):
    x, y = _data()
    data = ArrayData(x=x, y=y)

    def make(epochs, ckpt=None, **kw):
        return Trainer(_model(), config=TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, seed=7, scheduler="cosine",
                                                     warmup_steps=2, checkpoint_dir=ckpt, **kw))

    make(2, str(tmp_path / "a")).fit(data)
    with pytest.raises(FairfoundryError, match="schedule runs over 14 steps"):
        make(4).fit(data, resume=tmp_path / "a" / "last")
    # planned over 28 steps from the start: training in two chunks equals one run of 4 epochs
    full = make(4)
    full.fit(data)
    make(2, str(tmp_path / "b"), schedule_steps=28).fit(data)
    resumed = make(4, schedule_steps=28)
    resumed.fit(data, resume=tmp_path / "b" / "last")
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k

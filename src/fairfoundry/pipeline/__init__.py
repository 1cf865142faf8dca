"""One training run end to end (layer 3): what ``fit``, the known-bias benchmark and grids call.

- :func:`train_and_score`: train and score one method on one seed (the shared step);
- :func:`fit_run`: a fit run directory from a :class:`FitConfig` (embeddings or images,
  methods x seeds, evaluation with CIs, model cards, comparison).

``fairfoundry.mitigate`` holds the methods only; this layer composes them with ``adapt``,
``evaluation`` and the model card.
"""

from ._fit import RUN_FILES, FitConfig, MethodSpec, fit_run, load_fit_config, resolve_optimizer
from ._train import MethodScores, instantiate_method, method_label, train_and_score

__all__ = ["RUN_FILES", "FitConfig", "MethodSpec", "MethodScores", "fit_run", "instantiate_method",
           "load_fit_config", "method_label", "resolve_optimizer", "train_and_score"]

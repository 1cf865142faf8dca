__version__ = "0.1.0"


# Public functions exposed lazily so that ``import fairfoundry`` stays light.
_LAZY = {"evaluate": ("fairfoundry.evaluation", "evaluate"),
         "Evaluation": ("fairfoundry.evaluation", "Evaluation")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fairfoundry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

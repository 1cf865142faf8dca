"""Adding a mitigation or an encoder backend is one file: a plugin package is discovered."""

import sys
import textwrap

import pytest

MITIGATION = '''
from fairfoundry.mitigate import register
from fairfoundry.mitigate._pre import ERM


@register("plugin-erm", stage="none")
class PluginERM(ERM):
    """A plugin method for the discovery test: plain ERM under another name, no change to the
    training objective (the reference every method is compared with)."""
'''

BACKEND = '''
from fairfoundry.models import Backend, register_backend


@register_backend("plugin-backend")
class PluginBackend(Backend):
    description = "a plugin backend for the discovery test"
    examples = ("plugin-backend:any",)

    @classmethod
    def build(cls, model_id, **kwargs):
        raise RuntimeError("not built in the test")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A distribution on sys.path declaring a mitigation and a backend by entry points."""
    pkg = tmp_path / "ffplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "method.py").write_text(MITIGATION)
    (pkg / "backend.py").write_text(BACKEND)
    dist = tmp_path / "ffplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ffplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""\
        [fairfoundry.mitigations]
        plugin-erm = ffplugin.method

        [fairfoundry.backends]
        plugin-backend = ffplugin.backend
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    from fairfoundry.mitigate import MITIGATIONS
    from fairfoundry.models import BACKENDS

    MITIGATIONS.pop("plugin-erm", None)
    BACKENDS.pop("plugin-backend", None)
    for name in [m for m in sys.modules if m.startswith("ffplugin")]:
        del sys.modules[name]


def test_a_plugin_mitigation_is_listed_and_usable(plugin, cli):
    r = cli("fit", "--list-methods")
    assert r.code == 0 and "plugin-erm" in r.out
    from fairfoundry.mitigate import list_mitigations, make_mitigation

    assert any(row["name"] == "plugin-erm" and row["stage"] == "none" for row in list_mitigations())
    assert type(make_mitigation("plugin-erm")).__name__ == "PluginERM"
    from fairfoundry.mitigate import methods_table

    assert "| `plugin-erm` | — | A plugin method for the discovery test" in methods_table()


def test_the_docs_table_of_methods_matches_the_registry():
    import re
    from pathlib import Path

    from fairfoundry.mitigate import load_mitigations

    text = (Path(__file__).parents[1] / "docs" / "adapt.md").read_text()
    section = text.split("## Mitigations", 1)[1].split("\n\n`tests/", 1)[0]
    documented = re.findall(r"^\| `([a-z0-9-]+)` \| (\S+) \|", section, flags=re.M)
    registry = {name: cls.stage for name, cls in load_mitigations().items() if not name.startswith("plugin")}
    assert {n for n, _ in documented} == set(registry)
    for name, stage in documented:
        assert stage == (registry[name] if registry[name] != "none" else "—"), name


def test_a_plugin_backend_is_listed(plugin, cli):
    r = cli("models", "list")
    assert r.code == 0 and "plugin-backend" in r.out and "a plugin backend" in r.out


def test_builtin_registries_need_no_import_list():
    """Every module using the decorator is found by scanning the package (no hand-kept list)."""
    from fairfoundry._plugins import _package_modules

    backends = _package_modules("fairfoundry.models", "@register_backend(")
    assert {"fairfoundry.models._timm", "fairfoundry.models._hf", "fairfoundry.models._xrv"} <= set(backends)
    methods = _package_modules("fairfoundry.mitigate", "@register(")
    assert {"fairfoundry.mitigate._groupdro", "fairfoundry.mitigate._post"} <= set(methods)


def test_the_docs_tables_of_metrics_and_presets_match_their_registries():
    import re
    from pathlib import Path

    from fairfoundry.metrics import METRICS
    from fairfoundry.models import list_presets

    docs = Path(__file__).parents[1] / "docs"
    text = (docs / "metrics.md").read_text()
    section = text.split("## Per-group metrics", 1)[1].split("\n\n", 3)[2]
    documented = set()
    for first_cell in re.findall(r"^\| (.+?) \|", section, flags=re.M):
        documented |= set(re.findall(r"`([a-z0-9_]+)`", first_cell))
    assert documented == set(METRICS)
    models = (docs / "models.md").read_text()
    names = {p.name for p in list_presets()}
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \| `", models, flags=re.M))
    assert names <= listed, names - listed

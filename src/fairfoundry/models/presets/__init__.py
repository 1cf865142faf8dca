"""Named encoder presets: one small module per model family, each calling ``register_preset``.

Every module in this package is imported (in name order) the first time the preset registry is
read; modules must only build :class:`~fairfoundry.models.Preset` objects (no torch imports).
"""

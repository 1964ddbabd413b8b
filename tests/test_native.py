"""The compiled features module is the source's twin: same rows, and in use wherever it builds."""

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench.scorer import demo_events
from services.scorer import features


def load_source() -> ModuleType:
    name = "features_from_source"
    spec = importlib.util.spec_from_file_location(
        name, Path(features.__file__).with_name("features.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: features runs as source")
def test_features_is_compiled_where_a_compiler_exists() -> None:
    assert features.__file__ is not None and features.__file__.endswith(".so"), (
        "services/scorer/features.py is not compiled: run `make install`"
    )


def test_compiled_and_source_features_agree_exactly() -> None:
    source = load_source()
    events = demo_events(users=6, months=4, seed=5)
    compiled_rows = [row for row, _ in map(features.FeatureExtractor().transform, events)]
    source_rows = [row for row, _ in map(source.FeatureExtractor().transform, events)]
    assert len(events) > 1_000
    assert compiled_rows == source_rows

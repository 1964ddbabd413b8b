"""The build backend's one job beyond pyproject.toml: compile the scorer's per-transaction
features with mypyc. The extension is optional: where no C compiler builds it, the package
installs anyway and the scorer runs the same module as plain Python (slower)."""

import sys

from mypyc.build import mypycify
from setuptools import setup

NATIVE = ["services/scorer/features.py"]

try:
    extensions = mypycify(NATIVE, opt_level="3")
except (Exception, SystemExit) as exc:  # mypyc exits on a type error
    # tests/test_native.py fails wherever a compiler exists and the module was not compiled.
    print(f"warning: not compiling {NATIVE} ({exc!r}); it runs as plain Python", file=sys.stderr)
    extensions = []
for extension in extensions:
    extension.optional = True

setup(ext_modules=extensions)

"""The build backend's one job beyond pyproject.toml: compile the scorer's per-transaction
features with mypyc. The extension is optional: where no C compiler builds it, the package
installs anyway and the scorer runs the same module as plain Python (slower)."""

from mypyc.build import mypycify
from setuptools import setup

NATIVE = ["services/scorer/features.py"]

extensions = mypycify(NATIVE, opt_level="3")
for extension in extensions:
    extension.optional = True

setup(ext_modules=extensions)

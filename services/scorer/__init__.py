"""The scorer service.

``make install`` compiles modules of this package with mypyc (the Makefile's ``NATIVE``). Python
imports a compiled module in preference to its source, so one older than its source would
quietly run old code: it refuses to load."""

from pathlib import Path


def _refuse_stale_compiled_modules() -> None:
    package = Path(__file__).parent
    for compiled in package.glob("*.so"):
        # "features.cpython-311-x86_64-linux-gnu.so" is compiled from "features.py"; mypyc's
        # shared library beside it, "features__mypyc...", has no source of its own.
        source = package / f"{compiled.name.split('.')[0].removesuffix('__mypyc')}.py"
        if source.exists() and compiled.stat().st_mtime < source.stat().st_mtime:
            raise ImportError(
                f"{compiled.name} was compiled from an older {source}: run `make install` to "
                "compile it again, or delete it to run the source"
            )


_refuse_stale_compiled_modules()

"""The scorer service.

``make install`` compiles ``features`` with mypyc. Python imports a compiled module in preference
to its source, so one older than its source would quietly run old code: it refuses to load."""

from pathlib import Path


def _refuse_stale_compiled_features() -> None:
    source = Path(__file__).with_name("features.py")
    for compiled in source.parent.glob("features*.so"):
        if compiled.stat().st_mtime < source.stat().st_mtime:
            raise ImportError(
                f"{compiled.name} was compiled from an older {source}: run `make install` to "
                "compile it again, or delete it to run the source"
            )


_refuse_stale_compiled_features()

"""The scorer service.

``features.py`` is compiled with mypyc by the build backend (``setup.py``) where a C compiler
exists; an editable install puts the compiled module beside its source, and Python imports it
in preference. After editing ``features.py``, install again (``make install`` does it when the
file changed); ``tests/test_native.py`` fails while the compiled module and its source differ."""

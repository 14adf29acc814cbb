"""Benchmarks: generated rule packs, a plain-Python reference and floor, peer engines."""

import sys
from pathlib import Path

# `python -m bench.run` puts the checkout first on sys.path, where recommender/ would shadow an
# installed build (a RECOMMENDER_COMPILE=1 wheel): measure the installed one when there is one.
_first = sys.path[0] if sys.path else None
if _first is not None and "recommender" not in sys.modules and \
        Path(_first or ".").resolve() == Path(__file__).resolve().parent.parent:
    del sys.path[0]
    try:
        import recommender  # noqa: F401
    except ImportError:  # not installed: the checkout's sources
        pass
    finally:
        sys.path.insert(0, _first)


def build_label() -> str:
    """Which build of the recommender runs here: ``pure Python`` or ``compiled (mypyc): ...``."""
    from recommender import compiled_modules

    compiled = compiled_modules()
    return f"compiled (mypyc): {', '.join(m.split('.')[-1] for m in compiled)}" if compiled else "pure Python"

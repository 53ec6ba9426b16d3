"""Test suite of saliency-serving (a regular package, so no installed `tests` package can shadow it)."""

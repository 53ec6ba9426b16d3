"""The TF-runtime compatibility matrix (`make compat`): exports built here, run by `exporter._compat`."""

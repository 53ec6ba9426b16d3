"""The MNIST example: real data, a small CNN trained once, the end-to-end demo and a load test.

Modules: `data` (the MNIST splits, read without running the wheel's code), `model` (the demo CNN
and its train-once cache), `demo` (`make demo`), `loadtest` (`make load`).
"""

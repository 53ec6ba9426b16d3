"""Which functions of a SavedModel's graph must be XLA-compiled, and TF Serving's flag for them.

A `tf.function(jit_compile=True)` traced into a graph is a FunctionDef with the attribute
`_XlaMustCompile: true`, called by a (Stateful)PartitionedCall carrying the same attribute; TF
rewrites such calls into XlaLaunch/_XlaCompile/_XlaRun when the graph runs. Stock TF Serving
calls `tensorflow::DisableXlaCompilation()` unless `--xla_cpu_compilation_enabled` (or the GPU
flag) is true (tensorflow_serving/model_servers/main.cc, lines 289 and 337-338), and TF's
device compiler then answers every compilation with INTERNAL "XLA compilation disabled"
(tensorflow/compiler/jit/device_compiler.h, lines 526-534 in TF 2.21). So a version that needs
XLA loads but fails its first run, and its warmup (the exporter writes warmup records) fails the
load. The bundled server refuses such a version without the flag, naming it; the exporter
refuses to write one (`exporter._verify.check_xla_free`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["XLA_FLAG", "XlaRequiredError", "describe", "xla_compiled_functions"]

#: TF Serving's flag (default false) and the bundled server's, named in every refusal.
XLA_FLAG = "--xla_cpu_compilation_enabled"
#: Ops that exist only to run XLA clusters (after TF's own rewrite; not in exported graphs).
_XLA_OPS = frozenset({"XlaLaunch", "XlaLaunchV2", "_XlaCompile", "_XlaRun", "_XlaMerge"})


def _must_compile(attrs: Any) -> bool:
    value = attrs.get("_XlaMustCompile")
    return bool(value is not None and value.b)


def _called(node: Any) -> list[str]:
    """Names of the functions a node calls (its func and list-of-func attributes)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names


def xla_compiled_functions(graph_def: Any) -> list[str]:
    """What in `graph_def` needs XLA to run, reachable from its top-level nodes.

    Args:
        graph_def: A `tensorflow.GraphDef` (a MetaGraphDef's `graph_def`).

    Returns:
        Descriptions, one per function or node that must be compiled (empty: none), the
        functions first: `function NAME` for a FunctionDef with `_XlaMustCompile`, `NODE (OP)
        in …` for a call with that attribute or an XLA launch op.
    """
    library = {f.signature.name: f for f in graph_def.library.function}
    found: set[str] = set()
    seen: set[str] = set()

    def scan(nodes: Any, where: str) -> list[str]:
        calls = []
        for node in nodes:
            if _must_compile(node.attr) or node.op in _XLA_OPS:
                found.add(f"{node.name} ({node.op}) in {where}")
            calls.extend(_called(node))
        return calls

    pending = scan(graph_def.node, "the graph")
    while pending:
        name = pending.pop()
        function = library.get(name)
        if function is None or name in seen:
            continue
        seen.add(name)
        if _must_compile(function.attr):
            found.add(f"function {name}")
        pending.extend(scan(function.node_def, f"function {name}"))
    return sorted(found, key=lambda item: (not item.startswith("function "), item))


def describe(functions: list[str]) -> str:
    """The first few of `xla_compiled_functions`' findings, for a message."""
    more = len(functions) - 3
    return ", ".join(functions[:3]) + (f" and {more} more" if more > 0 else "")


class XlaRequiredError(RuntimeError):
    """A version's graph needs XLA and the server runs without `--xla_cpu_compilation_enabled`.

    Attributes:
        error_code: INTERNAL (13), the code of TF Serving's failed run (and so of its load).
    """

    error_code = 13

    def __init__(self, path: str, functions: list[str]) -> None:
        super().__init__(
            f"The SavedModel at {path} needs XLA ({describe(functions)} must be XLA-compiled: "
            f"jit_compile=True), and XLA compilation is disabled, as in TF Serving by default. "
            f"Start the server with {XLA_FLAG}=true to run it, or re-export it without "
            "jit_compile (saliency-export writes XLA-free graphs)."
        )

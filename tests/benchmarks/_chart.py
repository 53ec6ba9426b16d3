"""The bench chart (issue 11 item 6): per model, predict / explain / methods and the peers, in ms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write"]


def write(results: dict[str, Any], path: Path) -> Path:
    """Draws the real-model and peer figures of `results` into the PNG `path`.

    Raises:
        ImportError: matplotlib is not installed (`make bench` installs it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {k: v for k, v in results.get("real", {}).get("models", {}).items() if "timings" in v}
    peers = results.get("real_competitors", {}).get("methods", {})
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    variants = ["cpp predict", "cpp explain", "grpc predict", "grpc explain"]
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        xs = [j + i * width for j in range(len(models))]
        left.bar(xs, [m["timings"][variant]["p50_ms"] for m in models.values()], width, label=variant)
    left.set_xticks([j + 0.4 - width / 2 for j in range(len(models))])
    left.set_xticklabels([f"{n}\n{m['cpp_ratio']:.2f}x / {m['grpc_ratio']:.2f}x" for n, m in models.items()], fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("ms per batch of 32 (p50, log)")
    left.set_title("explain vs predict (ratio cpp / gRPC under each model; target <= 2.3x)")
    left.legend(fontsize=8)
    if peers:
        names = sorted({k for r in peers.values() for k in r} - {"fastest", "speedup", "timings"})
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            xs = [j + i * width for j in range(len(peers))]
            right.bar(xs, [r.get(name, 0.0) for r in peers.values()], width, label=name)
        right.set_xticks([j + 0.4 - width / 2 for j in range(len(peers))])
        right.set_xticklabels(list(peers), fontsize=8)
        right.set_yscale("log")
        right.set_ylabel("ms per image (p50 / 32, log)")
        right.set_title("ResNet50V2 64x64: ours vs peers")
        right.legend(fontsize=8)
    machine = results.get("machine", {})
    figure.suptitle(
        f"{machine.get('date', '')}  {machine.get('cpu', '')} x{machine.get('cpu_count', '')}  "
        f"TF {machine.get('tensorflow', '')}  TF_ENABLE_ONEDNN_OPTS={machine.get('TF_ENABLE_ONEDNN_OPTS')}  "
        f"load {machine.get('load_average_at_start', 0):.1f}",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

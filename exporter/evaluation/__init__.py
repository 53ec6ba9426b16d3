"""Trustworthy explanations: sanity checks and faithfulness scores for an export.

- Model-parameter randomization test (Adebayo et al. 2018), cascading from the top
  layer down: Spearman correlation of |maps| and SSIM, original vs randomized model.
- Deletion and insertion AUC (Petsiuk et al. 2018, RISE), beside a random pixel order.

    from exporter.evaluation import evaluate_export
    report = evaluate_export("models/mnist/1", "heldout.npy", model="mnist_cnn.keras")
    print(report.summary()); report.write_json("eval.json"); draw_figure(report, "eval.png")
"""

from exporter.evaluation._deletion_insertion import (
    auc,
    blur,
    perturbation_curves,
    random_order,
    saliency_order,
)
from exporter.evaluation._evaluate import (
    evaluate_export,
    evaluate_saved_model,
    evaluated_methods,
    run_gate,
)
from exporter.evaluation._figure import draw_figure
from exporter.evaluation._maps import MapFunction
from exporter.evaluation._metrics import rankdata, spearman_abs, ssim
from exporter.evaluation._randomization import CascadeStep, randomization_test, weighted_layers
from exporter.evaluation._report import EvaluationReport, MethodEvaluation, PerturbationScores

__all__ = [
    "CascadeStep",
    "EvaluationReport",
    "MapFunction",
    "MethodEvaluation",
    "PerturbationScores",
    "auc",
    "blur",
    "draw_figure",
    "evaluate_export",
    "evaluate_saved_model",
    "evaluated_methods",
    "perturbation_curves",
    "random_order",
    "randomization_test",
    "rankdata",
    "run_gate",
    "saliency_order",
    "spearman_abs",
    "ssim",
    "weighted_layers",
]

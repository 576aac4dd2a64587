"""Classification accuracy (SNLI-VE, NLVR2): overall and per class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmengine.evaluator import BaseMetric

from vlreg.registry import METRICS

__all__ = ['AccuracyMetric', 'classification_accuracy']


def _field(sample: Any, key: str) -> Any:
    if isinstance(sample, dict):
        if key in sample:
            return sample[key]
        return sample.get('metainfo', {}).get(key)
    return sample.get(key) if hasattr(sample, 'get') else getattr(sample, key, None)


def classification_accuracy(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Percentage of ``preds`` equal to ``labels`` (0 for no samples)."""
    if len(preds) != len(labels):
        raise ValueError(f'{len(preds)} predictions for {len(labels)} labels')
    if not preds:
        return 0.0
    return 100.0 * sum(int(p) == int(t) for p, t in zip(preds, labels)) / len(preds)


@METRICS.register_module()
class AccuracyMetric(BaseMetric):
    """Top-1 accuracy in percent of ``pred_label`` against the ``label`` metainfo.

    Reports (prefix ``accuracy/``) ``acc``, ``num_samples`` and, per class ``c`` (named by
    ``dataset_meta['classes']`` when the dataset has them), ``num_<c>`` (samples whose label is
    ``c``), ``correct_<c>`` and ``acc_<c>``.

    Args:
        num_classes: the number of classes when the dataset has no ``classes`` metainfo.
        collect_device, prefix: :class:`~mmengine.evaluator.BaseMetric`'s.

    Example:
        >>> val_evaluator = dict(type='AccuracyMetric')
    """

    default_prefix = 'accuracy'

    def __init__(
        self, num_classes: int | None = None, collect_device: str = 'cpu', prefix: str | None = None
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep (prediction, label) per sample."""
        for sample in data_samples:
            pred, label = _field(sample, 'pred_label'), _field(sample, 'label')
            if pred is None or label is None:
                raise KeyError(
                    'AccuracyMetric: each sample needs "pred_label" and "label"; got '
                    f'{pred!r} / {label!r}'
                )
            self.results.append((int(pred), int(label)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        preds = [p for p, _ in results]
        labels = [t for _, t in results]
        metrics = {
            'acc': classification_accuracy(preds, labels),
            'num_samples': float(len(results)),
        }
        classes = list((self.dataset_meta or {}).get('classes') or [])
        n_classes = len(classes) or self.num_classes or (max(labels + preds, default=-1) + 1)
        names = classes or [str(c) for c in range(n_classes)]
        for c, name in enumerate(names):
            total = sum(t == c for t in labels)
            correct = sum(t == c and p == c for p, t in results)
            metrics[f'num_{name}'] = float(total)
            metrics[f'correct_{name}'] = float(correct)
            metrics[f'acc_{name}'] = 100.0 * correct / total if total else 0.0
        return metrics

"""A custom augmentation: random brightness scaling that keeps colour names true."""

from __future__ import annotations

from typing import Any

import numpy as np

from vlreg.registry import AUGMENTATIONS


@AUGMENTATIONS.register_module()
class JitterBrightness:
    """Multiply every pixel by one random factor ``f ~ U[1 - max_delta, 1 + max_delta]``.

    With probability ``p`` the image becomes ``clip(round(img * f), 0, 255)``; otherwise it is left
    as is and ``f = 1``. A common factor on the three channels keeps their ratios, hence the hue,
    so a caption naming a colour ("a red circle") stays true, unlike a hue jitter. Randomness comes
    from NumPy's global generator, which MMEngine seeds (per DataLoader worker too).

    Registered in ``AUGMENTATIONS``; a pipeline finds it through vlreg's ``TRANSFORMS``, which falls
    back to ``AUGMENTATIONS``.

    Required keys: ``img`` (RGB ``uint8 [H, W, 3]``). Modified keys: ``img``.
    Added keys: ``brightness_factor`` (float, 1.0 when not applied); list it in ``PackInputs``'
    ``meta_keys`` to carry it into the data sample.

    Args:
        max_delta: half-width of the factor's range, in ``[0, 1)``.
        p: probability of applying.

    Example:
        >>> dict(type='JitterBrightness', max_delta=0.3, p=0.8)
    """

    def __init__(self, max_delta: float = 0.3, p: float = 0.8) -> None:
        if not 0.0 <= max_delta < 1.0:
            raise ValueError(f'JitterBrightness: max_delta must be in [0, 1), got {max_delta}')
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'JitterBrightness: p must be in [0, 1], got {p}')
        self.max_delta = float(max_delta)
        self.p = float(p)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        """Scale ``results['img']`` and record the factor.

        Args:
            results: the sample dict of the pipeline.

        Returns:
            The same dict, with ``img`` replaced and ``brightness_factor`` set.
        """
        img = results.get('img')
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3:
            raise TypeError(
                'JitterBrightness needs results["img"] as a uint8 [H, W, 3] array, '
                f'got {type(img).__name__} {getattr(img, "shape", "")}'
            )
        factor = 1.0
        if np.random.random() < self.p:
            factor = float(np.random.uniform(1.0 - self.max_delta, 1.0 + self.max_delta))
            scaled = np.rint(img.astype(np.float32) * factor)
            results['img'] = np.clip(scaled, 0, 255).astype(np.uint8)
        results['brightness_factor'] = factor
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(max_delta={self.max_delta}, p={self.p})'

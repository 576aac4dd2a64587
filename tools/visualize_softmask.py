"""Draw the word-level Grad-CAM of an (image, caption) pair and the soft-masked image of one word.

The figure (PNG) shows the image as the model sees it, one Grad-CAM overlay per content word of the
caption ([CLS] / [PAD] / punctuation skipped, wordpieces of one word averaged), and the image
multiplied by the upsampled soft mask of the chosen word: what the fusion encoder's patch tokens get
in the soft-masked ITM loss.

Examples:
    python tools/visualize_softmask.py configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py \
        work_dirs/albef_vit-t-bert-t_1xb32_synthetic-demo/epoch_4.pth \
        --image synthetic:12345:3 --word circle --out softmask.png

    python tools/visualize_softmask.py CONFIG CKPT --image photo.jpg \
        --caption "a dog catching a frisbee" --word-index 1
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vlreg  # noqa: E402

vlreg.setup_env()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vlreg.apis.inference import PairScorer, init_model  # noqa: E402
from vlreg.engine.model_defaults import gradcam_layer_of  # noqa: E402
from vlreg.engine.visualization_hook import render_softmask_figure  # noqa: E402
from vlreg.models.utils.softmask import (  # noqa: E402
    content_words,
    resolve_fusion_layer,
    soft_mask_from_cam,
    word_rows_mean,
)

__all__ = ['load_image', 'main', 'render_softmask_figure']


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualise word-level Grad-CAM and the soft mask')
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint',
        help='weights (an MMEngine checkpoint or a state dict); '
        '"none" keeps the random initialisation',
    )
    parser.add_argument(
        '--image',
        required=True,
        help='an image file, or synthetic:SEED:INDEX (a rendered synthetic scene)',
    )
    parser.add_argument('--caption', help='the caption (default for synthetic:...: its first one)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--word', help='the word whose soft mask is drawn (first occurrence)')
    which.add_argument(
        '--word-index',
        type=int,
        help='index of that word among the content words (0-based; for a clean '
        'caption: among its whitespace-separated words)',
    )
    parser.add_argument(
        '--layer',
        type=int,
        default=None,
        help="fusion layer to explain (default: the model's gradcam_layer, the "
        "layer its soft-masked ITM explains, else ALBEF's 2; the deepest one "
        'before the last if the model has fewer)',
    )
    parser.add_argument('--floor', type=float, default=0.0)
    parser.add_argument('--sharpness', type=float, default=1.0)
    parser.add_argument('--strength', type=float, default=1.0)
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random word choice when neither --word nor --word-index',
    )
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='softmask.png')
    return parser.parse_args(argv)


def _input_size(model: torch.nn.Module) -> tuple[int, int] | None:
    """(H, W) the image backbone was built for, if it says so."""
    vit = getattr(model.image_backbone, 'vit', None)
    size = getattr(getattr(vit, 'patch_embed', None), 'img_size', None)
    size = getattr(model.image_backbone, 'img_size', None) if size is None else size  # CNNs
    if size is None:
        return None
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size),) * 2


def load_image(spec: str, cfg: Any) -> tuple[np.ndarray, str | None]:
    """An RGB ``uint8`` image from a file or ``synthetic:SEED:INDEX``, and its default caption.

    A synthetic scene is rendered at the image size of the config's test dataset (its first
    caption is the default caption).
    """
    if spec.startswith('synthetic:'):
        from vlreg.datasets.synthetic import render_scene, sample_scene

        try:
            _, seed, index = spec.split(':')
            seed_i, index_i = int(seed), int(index)
        except ValueError as err:
            raise ValueError(f'--image synthetic:SEED:INDEX expected, got {spec!r}') from err
        dataset = cfg.test_dataloader.dataset
        size = int(dataset.get('image_size', 64))
        scene = sample_scene(seed_i, index_i, size, tuple(dataset.get('num_objects', (1, 3))))
        image, _ = render_scene(scene)
        return image, scene['captions'][0]
    import cv2

    bgr = cv2.imread(spec, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'cannot read the image {spec!r}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None


def _fit_to_model(image: np.ndarray, scorer: PairScorer) -> np.ndarray:
    """Resize to the backbone's input size when the test pipeline does not resize itself."""
    names = [type(t).__name__.lower() for t in scorer.pipeline.transforms]
    size = _input_size(scorer.model)
    if size is None or any('resize' in n or 'crop' in n for n in names) or image.shape[:2] == size:
        return image
    import cv2

    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def choose_word(words: Sequence[str], word: str | None, word_index: int | None, seed: int) -> int:
    """Index of the chosen word: by text, by position, or at random (seeded)."""
    if not words:
        raise ValueError('the caption has no content word')
    if word is not None:
        lowered = [w.lower() for w in words]
        if word.lower() not in lowered:
            raise ValueError(f'--word {word!r} is not a word of the caption; words: {list(words)}')
        return lowered.index(word.lower())
    if word_index is not None:
        if not -len(words) <= word_index < len(words):
            raise IndexError(
                f'--word-index {word_index} is out of range for {len(words)} words: {list(words)}'
            )
        return word_index % len(words)
    return int(np.random.default_rng(seed).integers(len(words)))


def main(argv: list[str] | None = None) -> dict:
    """Run the tool; returns the chosen word, the words, the ITM score and the output path."""
    args = parse_args(argv)
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = init_model(args.config, checkpoint, device=args.device)
    scorer = PairScorer(model)
    image, default_caption = load_image(args.image, model.cfg)
    caption = args.caption if args.caption is not None else default_caption
    if caption is None:
        raise ValueError('--caption is required for an image file')
    image = _fit_to_model(image, scorer)
    shown = scorer.array_pipeline(
        dict(
            img=image,
            img_shape=image.shape[:2],
            ori_shape=image.shape[:2],
            caption=caption,
            sample_idx=0,
            image_id=0,
        )
    )['inputs']['image']
    shown = shown.permute(1, 2, 0).numpy().astype(np.uint8)

    layer, warning = resolve_fusion_layer(
        gradcam_layer_of(model, args.layer), len(model.fusion.layer)
    )
    if warning:
        print(f'warning: {warning}')
    cam, tokens = scorer.gradcam(image, caption, layer=layer)  # [L, gh, gw]
    itm = float(scorer.itm_scores([image], [caption])[0])
    spans = content_words(tokens)
    words = [w for w, _ in spans]
    chosen = choose_word(words, args.word, args.word_index, args.seed)
    grid = cam.shape[1:]
    word_cams = word_rows_mean(cam.flatten(1).float().cpu(), [rows for _, rows in spans])
    mask = soft_mask_from_cam(
        word_cams[chosen][None], floor=args.floor, sharpness=args.sharpness, strength=args.strength
    )[0]
    figure = render_softmask_figure(
        np.ascontiguousarray(shown),
        words,
        word_cams.reshape(-1, *grid),
        chosen,
        mask.reshape(grid),
        title=f'{caption}  (itm p={itm:.2f}, layer {layer})',
    )

    from matplotlib.image import imsave

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    imsave(args.out, figure)
    print(f'chosen word: {words[chosen]!r} (word {chosen} of {words})')
    print(f'itm match probability: {itm:.3f}')
    print(f'figure written to {args.out}')
    return dict(
        word=words[chosen],
        words=words,
        itm=itm,
        out=args.out,
        layer=layer,
        mask=mask.reshape(grid),
        shape=figure.shape,
    )


if __name__ == '__main__':
    main()

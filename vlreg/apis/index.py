"""An on-disk image index: ITC embeddings of a folder's images, built once and reused.

One ``.safetensors`` file holds the ``[N, E]`` embeddings; its metadata holds the image paths and
the fingerprint of the model that encoded them (a hash of the image encoder's and the image
projection's weights and of the image preprocessing). Loading it for another model is refused:
its embeddings would not be comparable with that model's text embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from .encode import _prep, encode_images

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.gif', '.tif', '.tiff')


def list_images(folder: str) -> list[str]:
    """Image files below ``folder`` (recursive, sorted); an error when there is none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'image folder not found: {folder}')
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise FileNotFoundError(f'{folder}: no image file ({", ".join(IMAGE_EXTENSIONS)})')
    return paths


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the image encoder + image projection weights and the image preprocessing."""
    digest = hashlib.sha256()
    for prefix in ('image_backbone', 'vision_proj'):
        for name, tensor in sorted(getattr(model, prefix).state_dict().items()):
            digest.update(f'{prefix}.{name}{tuple(tensor.shape)}{tensor.dtype}'.encode())
            digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    prep = _prep(model)
    digest.update(repr((prep.size, [repr(s) for s in prep.image_steps])).encode())
    return digest.hexdigest()[:16]


@dataclass
class ImageIndex:
    """Embeddings ``[N, E]`` of ``paths`` and the fingerprint of the model that made them."""

    embeddings: Tensor
    paths: list[str]
    fingerprint: str
    source: str = '<memory>'

    def check_model(self, model: nn.Module) -> None:
        """Raise when ``model`` is not the model that built the index."""
        mine = model_fingerprint(model)
        if mine != self.fingerprint:
            raise ValueError(
                f'{self.source}: this image index was built by another model '
                f'(fingerprint {self.fingerprint}, this model {mine}); rebuild it '
                'with build_index(model, ...) or tools/search.py --rebuild'
            )

    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_file(
            {'embeddings': self.embeddings.contiguous()},
            path,
            metadata={
                'paths': json.dumps(self.paths),
                'fingerprint': self.fingerprint,
                'format': 'vlreg-image-index-1',
            },
        )
        self.source = path

    @classmethod
    def load(cls, path: str, model: nn.Module | None = None) -> ImageIndex:
        """Read an index file; with ``model``, refuse it unless that model built it."""
        from safetensors import safe_open

        if not os.path.isfile(path):
            raise FileNotFoundError(f'image index not found: {path}')
        with safe_open(path, 'pt') as f:
            meta = f.metadata() or {}
            if meta.get('format') != 'vlreg-image-index-1':
                raise ValueError(
                    f'{path} is not a vlreg image index (no vlreg-image-index-1 metadata)'
                )
            index = cls(
                f.get_tensor('embeddings'), json.loads(meta['paths']), meta['fingerprint'], path
            )
        if model is not None:
            index.check_model(model)
        return index


def build_index(
    model: nn.Module,
    images: str | Sequence[str],
    out: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> ImageIndex:
    """Encode a folder (or a list) of images once; save to ``out`` (``.safetensors``) if given.

    Example:
        >>> import os, tempfile
        >>> from vlreg.apis import init_model, build_index, ImageIndex, rank
        >>> model = init_model('configs/albef/albef_vit-t-bert-t_1xb32_synthetic-demo.py')
        >>> out = os.path.join(tempfile.mkdtemp(), 'index.safetensors')
        >>> index = build_index(model, [f'synthetic:1:{i}' for i in range(4)], out, progress=False)
        >>> again = ImageIndex.load(out, model)   # checked against the model
        >>> len(again.paths), tuple(again.embeddings.shape)
        (4, (4, 128))
        >>> rank(model, 'a small green star', again, top=2, k=2).protocol['num_images']
        4
    """
    paths = list_images(images) if isinstance(images, str) else [str(p) for p in images]
    embeddings = encode_images(model, paths, batch_size=batch_size, progress=progress)
    index = ImageIndex(embeddings, paths, model_fingerprint(model))
    if out is not None:
        index.save(out)
    return index

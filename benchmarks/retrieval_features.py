"""The retrieval loop's features (``vlreg.engine.loops._Features``) of a benchmark's images and
captions, encoded in chunks; shared by ``peer_albef.py`` and ``gpu_base_preset.py``."""

from __future__ import annotations

from collections.abc import Iterable


def encode_features(
    model,
    image_batches: Iterable,
    ids,
    mask,
    img2txt: list[list[int]],
    txt2img: list[int],
    text_chunk: int = 256,
    token_dtype=None,
):
    """Encode every image batch and the captions ``ids`` / ``mask`` (``text_chunk`` at a time)
    without gradient, in whatever autocast context the caller holds; tokens kept in
    ``token_dtype`` (None: as encoded), embeddings in fp32. ``img2txt`` / ``txt2img``: the ground
    truth, image ``i``'s captions and caption ``t``'s image."""
    import torch

    from vlreg.engine.loops import _Features

    def keep(tok):
        return tok if token_dtype is None else tok.to(token_dtype)

    img_tok, img_emb, txt_tok, txt_emb = [], [], [], []
    with torch.no_grad():
        for image in image_batches:
            tok, emb = model.encode_image(image)
            img_tok.append(keep(tok))
            img_emb.append(emb.float())
        for s in range(0, ids.shape[0], text_chunk):
            tok, emb = model.encode_text(ids[s : s + text_chunk], mask[s : s + text_chunk])
            txt_tok.append(keep(tok))
            txt_emb.append(emb.float())
    return _Features(
        torch.cat(img_tok),
        torch.cat(txt_tok),
        mask,
        torch.cat(img_emb),
        torch.cat(txt_emb),
        torch.arange(len(img2txt)),
        torch.arange(len(txt2img)),
        img2txt,
        txt2img,
    )

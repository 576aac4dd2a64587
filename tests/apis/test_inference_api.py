"""vlreg.apis against formulas written here: hand-normalised pixels, hand-tokenised ids, brute-force
ITC -> ITM re-rank, hand-averaged Grad-CAM rows; the index refuses another model's embeddings."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from vlreg.apis import (
    ImageIndex,
    build_index,
    encode_images,
    encode_texts,
    explain,
    init_model,
    load_image,
    match,
    rank,
)
from vlreg.datasets.tokenizers import SyntheticTokenizer

CONFIG = str(ROOT / 'tests' / 'configs' / 'tiny_synthetic.py')
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]) * 255
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]) * 255
IMAGES = [f'synthetic:7:{i}' for i in range(6)]
TEXTS = ['a red circle', 'a large blue square to the left of a green star', 'a yellow triangle']


@pytest.fixture(scope='module')
def model():
    m = init_model(CONFIG)
    torch.manual_seed(0)
    with torch.no_grad():  # random weights far from init, so that wrong pairings show
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _pixels(images):
    arr = [torch.from_numpy(load_image(i, (64, 64))).permute(2, 0, 1).float() for i in images]
    return (torch.stack(arr) - MEAN[:, None, None]) / STD[:, None, None]


def _ids(texts):
    tok = SyntheticTokenizer()
    rows = [tok.encode(t, 30) for t in texts]
    length = max(map(len, rows))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    return ids, mask


def test_images_are_64px_scenes():
    assert load_image('synthetic:7:0', (64, 64)).shape == (64, 64, 3)
    with pytest.raises(ValueError, match='uint8'):
        load_image(np.zeros((4, 4, 3), np.float32))


@torch.no_grad()
def test_encode_images_and_texts(model):
    want = torch.nn.functional.normalize(
        model.vision_proj(model.image_backbone(_pixels(IMAGES))[:, 0]), dim=-1
    )
    torch.testing.assert_close(encode_images(model, IMAGES, batch_size=4), want, atol=1e-5, rtol=0)
    ids, mask = _ids(TEXTS)
    want_t = torch.nn.functional.normalize(
        model.text_proj(model.text_backbone(ids, mask)[:, 0]), dim=-1
    )
    torch.testing.assert_close(encode_texts(model, TEXTS, batch_size=2), want_t, atol=1e-5, rtol=0)


@torch.no_grad()
def _itm_logit(model, image_idx, text):
    ids, mask = _ids([text])
    tokens = model.image_backbone(_pixels([IMAGES[image_idx]]))
    hidden = model.fusion(model.text_backbone(ids, mask), mask, tokens).hidden
    return model.itm_head(hidden[:, 0])[0]


def test_match_every_pair_in_order(model):
    got = match(model, IMAGES[:3], TEXTS, batch_size=4)
    want = torch.stack(
        [torch.stack([_itm_logit(model, i, t).softmax(-1)[1] for t in TEXTS]) for i in range(3)]
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert float((want - want.flip(0)).abs().max()) > 1e-4  # the test can see a transposition


@pytest.mark.parametrize('score', ['itm', 'itm+itc'])
def test_rank_is_itc_topk_reranked_by_itm(model, score):
    query, k = TEXTS[1], 3
    sim = (encode_texts(model, [query]) @ encode_images(model, IMAGES).t())[0]
    top = sorted(range(len(IMAGES)), key=lambda i: -float(sim[i]))[:k]
    final = torch.full((len(IMAGES),), -100.0)
    for i in top:
        final[i] = _itm_logit(model, i, query)[1] + (sim[i] if score == 'itm+itc' else 0)
    order = sorted(range(len(IMAGES)), key=lambda i: -float(final[i]))[:4]
    got = rank(model, query, IMAGES, top=4, k=k, score=score, batch_size=2)
    assert got.indices == order
    assert got.images == [IMAGES[i] for i in order]
    torch.testing.assert_close(torch.tensor(got.scores), final[order], atol=1e-4, rtol=0)
    assert got.protocol == dict(
        first_stage='itc',
        k=k,
        score=score,
        fill=-100.0,
        rerank_score='ITM match logit' + (' + ITC' if score != 'itm' else ''),
        num_images=6,
        ties='stable: lower index first',
    )


def test_rank_protocol_defaults_to_the_config_and_k0_is_itc(model):
    assert rank(model, TEXTS[0], IMAGES, top=2).protocol['k'] == 4  # tiny_synthetic: test_cfg.k
    got = rank(model, TEXTS[0], IMAGES, top=6, k=0)
    sim = (encode_texts(model, [TEXTS[0]]) @ encode_images(model, IMAGES).t())[0]
    assert got.indices == sim.argsort(descending=True).tolist()
    assert got.protocol['score'] == 'itc'


def test_explain_gives_each_word_its_gradcam_row(model):
    ex = explain(model, IMAGES[2], 'a large blue square', layer=0)
    ids, mask = _ids(['a large blue square'])
    cam, logits = model.gradcam(_pixels([IMAGES[2]]), ids, mask, layer=0)
    assert ex.words == ['a', 'large', 'blue', 'square']
    grid = model.image_backbone.grid_size
    torch.testing.assert_close(ex.cams, cam[0, 1:5].reshape(4, *grid), atol=1e-5, rtol=0)
    assert ex.itm == pytest.approx(float(logits.softmax(-1)[0, 1]), abs=1e-5)
    fig = ex.figure()
    assert fig.dtype == np.uint8 and fig.shape[1] > 4 * fig.shape[0] / 2
    assert len(ex.overlays()) == 4 and ex.overlays()[0].shape == (64, 64, 3)


def test_overlay_colours_hot_red_cold_blue():
    from vlreg.apis.explain import overlay

    grey = np.full((8, 16, 3), 128, np.uint8)
    out = overlay(grey, np.array([[0.0, 1.0]]), alpha=1.0).astype(int)
    assert out[4, 0, 2] > 100 and out[4, 0, 0] < 10  # min -> jet's dark blue
    assert out[4, 15, 0] > 100 and out[4, 15, 2] < 10  # max -> jet's dark red
    half = overlay(grey, np.array([[0.0, 1.0]]), alpha=0.5).astype(int)
    np.testing.assert_allclose(half, (grey + out) / 2, atol=1.01)


def test_index_round_trip_and_refuses_another_model(model, tmp_path):
    from PIL import Image

    folder = tmp_path / 'imgs'
    (folder / 'sub').mkdir(parents=True)
    for i, spec in enumerate(IMAGES[:3]):
        Image.fromarray(load_image(spec, (64, 64))).save(folder / ('sub' if i else '') / f'{i}.png')
    out = tmp_path / 'index.safetensors'
    built = build_index(model, str(folder), str(out), progress=False)
    loaded = ImageIndex.load(str(out), model)
    assert [p.rsplit('/', 1)[-1] for p in loaded.paths] == ['0.png', '1.png', '2.png']
    torch.testing.assert_close(
        loaded.embeddings, encode_images(model, IMAGES[:3]), atol=1e-5, rtol=0
    )
    assert built.fingerprint == loaded.fingerprint
    by_index = rank(model, TEXTS[0], loaded, top=3, k=2)
    by_list = rank(model, TEXTS[0], loaded.paths, top=3, k=2)
    assert by_index.indices == by_list.indices
    other = init_model(CONFIG)
    with pytest.raises(ValueError, match='built by another model'):
        ImageIndex.load(str(out), other)
    with pytest.raises(ValueError, match='built by another model'):
        rank(other, TEXTS[0], loaded)


@pytest.mark.parametrize('name', ['encode', 'explain', 'index'])
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(f'vlreg.apis.{name}')
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_pair_scorer_takes_arrays_through_a_file_reading_pipeline(model, tmp_path):
    """A config whose test pipeline starts with LoadImage (every real-photo config) still scores images
    given as arrays, and an array scores as its file does."""
    import cv2

    from vlreg.apis.inference import PairScorer

    image = load_image(IMAGES[0], (64, 64))
    path = tmp_path / 'scene.png'
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))  # PNG: lossless
    steps = [
        dict(type='LoadImage'),
        dict(type='Tokenize', tokenizer=dict(type='SyntheticTokenizer'), max_length=30),
        dict(type='PackInputs'),
    ]
    scorer = PairScorer(model, pipeline=steps)
    from_array = scorer.itm_scores([image], [TEXTS[0]])
    from_file = scorer.itm_scores([str(path)], [TEXTS[0]])
    torch.testing.assert_close(from_array, from_file, rtol=0, atol=1e-6)
    cam, tokens = scorer.gradcam(image, TEXTS[0], layer=0)
    assert cam.shape[0] == len(tokens)

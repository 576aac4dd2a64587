"""Real photos: a few iterations of the Flickr8k config through the Runner, then held-out retrieval."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import minilm_path, shared_path
from tests.models.loss_context import model_context

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs' / 'albef' / 'albef_vit-s-minilm_1xb32_flickr8k-10e.py')
sys.path.insert(0, str(ROOT / 'tools'))

import train as train_tool  # noqa: E402  (tools/train.py)


@pytest.mark.slow
def test_flickr8k_trains_and_evaluates(tmp_path):
    data = shared_path('flickr8k_1k', 'captions.json')
    minilm_path()
    root = str(data.parent)
    work = tmp_path / 'flickr'
    # 4 iterations of batch 8 on the first images, retrieval on 40 held-out images (200 captions);
    # smaller images and ViT keep it to seconds. The MiniLM text weights are loaded (init_weights).
    train_tool.main(
        [
            CONFIG,
            '--work-dir',
            str(work),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.indices=32',
            'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'val_dataloader.dataset.indices=[960,961,962,963,964,965,966,967,968,969,970,971,972,973,974,'
            '975,976,977,978,979,980,981,982,983,984,985,986,987,988,989,990,991,992,993,994,995,996,997,'
            '998,999]',
            'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1',
            'val_cfg.k=8',
            'model.image_backbone.depth=2',
            'model.losses.itc.queue_size=64',
        ]
    )
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 4
    # the pretrained MiniLM word embeddings were loaded (not the random init)
    from safetensors.torch import load_file

    ref = load_file(str(Path(minilm_path()) / 'model.safetensors'))
    key = next(k for k in ref if k.endswith('embeddings.word_embeddings.weight'))
    emb = ckpt['state_dict']['text_backbone.embeddings.word_embeddings.weight']
    assert (emb - ref[key]).abs().max() < 0.05  # moved by 4 small steps at most
    scalars = (next(work.glob('*/vis_data/scalars.json'))).read_text().splitlines()
    val = [json.loads(s) for s in scalars if 'retrieval/txt_r1' in s]
    assert len(val) == 1
    assert '40 images x 200 texts' in next(work.glob('*/*.log')).read_text()
    for d in ('txt', 'img'):  # recall at k never decreases with k
        r1, r5, r10 = (val[0][f'retrieval/{d}_r{k}'] for k in (1, 5, 10))
        assert r1 <= r5 <= r10
    recalls = [val[0][f'retrieval/{d}_r{k}'] for d in ('txt', 'img') for k in (1, 5, 10)]
    assert val[0]['retrieval/r_mean'] == pytest.approx(sum(recalls) / 6)


# --- same-image captions: positives for ITC, never ITM negatives ---------------------------------
FLICKR8K_CONFIGS = sorted(
    str(p.relative_to(ROOT))
    for p in (ROOT / 'configs').rglob('*flickr8k*.py')
    if '_base_' not in p.parts
)


@pytest.mark.parametrize('path', FLICKR8K_CONFIGS)
def test_flickr8k_configs_use_image_ids(path: str) -> None:
    """5 captions per image, one sample per caption: every Flickr8k config passes image ids."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / path))
    assert cfg.model.losses.itc.use_image_ids is True, path
    assert cfg.model.losses.itm.use_image_ids is True, path
    dataset = cfg.train_dataloader.dataset
    # a ConcatCaptionDataset (the real-photo configs) holds several caption files
    for part in dataset.get('datasets', [dataset]):
        assert part.get('sample_per', 'caption') == 'caption'
        pack = part.pipeline[-1]
        assert (
            pack['type'] == 'PackInputs' and 'meta_keys' not in pack
        )  # default keys keep image_id


def _flickr8k_tiny_model():
    """The tiny test model with the Flickr8k config's ITC / ITM settings (queue of 2 batches)."""
    from mmengine.config import Config

    from tests.models.tiny import tiny_model

    losses = Config.fromfile(CONFIG).model.losses.to_dict()
    losses['itc'].update(embed_dim=32, queue_size=8)
    return tiny_model(losses=losses)


def test_same_image_captions_are_itc_positives() -> None:
    """ITC targets of a batch with two captions of image 7, against the formula written here."""
    import torch.nn.functional as F

    from tests.models.tiny import tiny_batch
    from vlreg.structures import DataSample

    torch.manual_seed(0)
    model = _flickr8k_tiny_model().train()
    model.alpha = 0.4
    ids = torch.tensor([7, 7, 3, 5])
    samples = [DataSample(metainfo=dict(image_id=int(i))) for i in ids]
    itc = model.losses['itc']
    with torch.no_grad():  # a queue holding ids, one of them image 3's
        itc.idx_queue.copy_(torch.tensor([[3, 9, 9, 9, -100, -100, -100, -100]]))
    q_img, q_txt, q_ids = itc.image_queue.clone(), itc.text_queue.clone(), itc.idx_queue.clone()
    features = model.extract_features(tiny_batch(4), samples)
    out = itc(model_context(model, features))['loss_itc']
    v, t = features.image_embed, features.text_embed
    v_m, t_m = features.momentum.image_embed, features.momentum.text_embed
    temp, alpha = features.temp, 0.4
    cols_t, cols_v = torch.cat([t_m, q_txt.t()]), torch.cat([v_m, q_img.t()])
    col_ids = torch.cat([ids, q_ids.view(-1)])
    positives = (ids[:, None] == col_ids[None, :]).float()
    assert positives[0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert positives[2].tolist() == [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    positives = positives / positives.sum(1, keepdim=True)

    def direction(rows, rows_m, cols):
        target = alpha * F.softmax(rows_m @ cols.t() / temp, 1) + (1 - alpha) * positives
        return -(F.log_softmax(rows @ cols.t() / temp, 1) * target).sum(1).mean()

    expected = (direction(v, v_m, cols_t) + direction(t, t_m, cols_v)) / 2
    torch.testing.assert_close(out, expected)
    diagonal = torch.eye(
        4, 12
    )  # what the loss would be with each caption its image's only positive
    plain = (
        -(
            F.log_softmax(v @ cols_t.t() / temp, 1)
            * (alpha * F.softmax(v_m @ cols_t.t() / temp, 1) + (1 - alpha) * diagonal)
        )
        .sum(1)
        .mean()
    )
    assert (plain - direction(v, v_m, cols_t)).abs() > 1e-3
    assert itc.idx_queue[0, :4].tolist() == ids.tolist()  # the queue keeps the batch's ids


def test_same_image_caption_is_never_an_itm_negative(monkeypatch) -> None:
    from tests.models.tiny import tiny_batch
    from vlreg.models.losses import itm as itm_module
    from vlreg.models.losses import sample_hard_negatives
    from vlreg.structures import DataSample

    torch.manual_seed(0)
    model = _flickr8k_tiny_model().train()
    seen = []

    def spy(sim_i2t, sim_t2i, image_ids=None):
        seen.append(image_ids)
        return sample_hard_negatives(sim_i2t, sim_t2i, image_ids)

    monkeypatch.setattr(itm_module, 'sample_hard_negatives', spy)
    samples = [DataSample(metainfo=dict(image_id=i)) for i in (7, 7, 3, 5)]
    model(tiny_batch(4), samples, mode='loss')
    assert len(seen) == 1 and seen[0].tolist() == [7, 7, 3, 5]
    # the sampler, with similarities that make the same-image caption by far the hardest negative
    sim = torch.zeros(4, 4)
    sim[0, 1] = sim[1, 0] = 30.0
    ids = torch.tensor([7, 7, 3, 5])
    torch.manual_seed(1)
    for _ in range(100):
        image_neg, text_neg = sample_hard_negatives(sim, sim, ids)
        assert image_neg[0] not in (0, 1) and image_neg[1] not in (0, 1)
        assert text_neg[0] not in (0, 1) and text_neg[1] not in (0, 1)
    image_neg, _ = sample_hard_negatives(sim, sim)  # without ids it is drawn almost surely
    assert image_neg[0] == 1 and image_neg[1] == 0

"""Real photos: a few iterations of the Flickr8k config through the Runner, then held-out retrieval."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import minilm_path, shared_path

ROOT = Path(__file__).resolve().parents[1]
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
    train_tool.main([
        CONFIG, '--work-dir', str(work), '--cfg-options',
        f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'val_dataloader.dataset.indices=[960,961,962,963,964,965,966,967,968,969,970,971,972,973,974,'
        '975,976,977,978,979,980,981,982,983,984,985,986,987,988,989,990,991,992,993,994,995,996,997,'
        '998,999]',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'val_cfg.k=8',
        'model.image_backbone.depth=2', 'model.losses.itc.queue_size=64',
    ])
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

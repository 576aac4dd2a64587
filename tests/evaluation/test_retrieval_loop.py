"""RetrievalValLoop / RetrievalTestLoop through a real MMEngine Runner, on one and on two processes.

``StandInRetrievalModel`` below is a stand-in written for this unit test only: a small
deterministic ``nn.Module`` exposing exactly the four methods the loop may call
(``data_preprocessor``, ``encode_image``, ``encode_text``, ``itm_logits``). It is not a vlreg
model and says nothing about the real ALBEF pretrainer; it lets the test compute the expected
scores directly and compare.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn
from torch.utils.data import DataLoader

from vlreg.evaluation import RetrievalMetric, retrieval_metrics

_RUN_IDS = itertools.count()
NUM_CAPTIONS = [2, 1, 4, 3, 1, 2, 3]  # captions of each of the 7 images: 16 texts
VOCAB, DIM, EMBED = 40, 8, 6


# ------------------------------------------------------------------------------------ the stand-in
class StandInPreprocessor(nn.Module):
    """Builds the batch of docs/architecture.md from a list collate (right padding, pad id 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer('probe', torch.zeros(0), persistent=False)  # follows the device

    def forward(self, data: dict, training: bool = False) -> dict:
        batch = self._batch(data['inputs'])
        return {
            'inputs': {k: v.to(self.probe.device) for k, v in batch.items()},
            'data_samples': data['data_samples'],
        }

    @staticmethod
    def _batch(inputs: list[dict]) -> dict[str, torch.Tensor]:
        captions = [c for item in inputs for c in item['caption_ids']]
        length = max(len(c) for c in captions)
        ids = torch.zeros(len(captions), length, dtype=torch.long)
        for j, c in enumerate(captions):
            ids[j, : len(c)] = c
        owner = [b for b, item in enumerate(inputs) for _ in item['caption_ids']]
        return {
            'image': torch.stack([i['image'] for i in inputs]).float() / 255,
            'caption_ids': ids,
            'caption_attention_mask': (ids != 0).long(),
            'caption_image_index': torch.tensor(owner),
        }


class StandInRetrievalModel(nn.Module):
    """Stand-in for the loop's unit test only (see the module docstring); counts ITM calls."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.data_preprocessor = StandInPreprocessor()
        self.patch = nn.Parameter(torch.randn(3, DIM, generator=g))
        self.words = nn.Parameter(torch.randn(VOCAB, DIM, generator=g))
        self.proj_image = nn.Parameter(torch.randn(DIM, EMBED, generator=g))
        self.proj_text = nn.Parameter(torch.randn(DIM, EMBED, generator=g))
        self.match = nn.Parameter(torch.randn(DIM, DIM, generator=g))
        self.itm_pairs: list[int] = []

    def encode_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = image.flatten(2).transpose(1, 2) @ self.patch  # [B, 16, D]
        tokens = torch.cat([patches.mean(1, keepdim=True), patches], 1)  # [B, 17, D]
        return tokens, nn.functional.normalize(tokens[:, 0] @ self.proj_image, dim=-1)

    def encode_text(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.words[ids] * mask[..., None]
        return tokens, nn.functional.normalize(self._pool(tokens, mask) @ self.proj_text, dim=-1)

    @staticmethod
    def _pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    def itm_logits(
        self, text_tokens: torch.Tensor, text_mask: torch.Tensor, image_tokens: torch.Tensor
    ) -> torch.Tensor:
        self.itm_pairs.append(text_tokens.shape[0])
        text = self._pool(text_tokens, text_mask)
        image = torch.tanh(image_tokens[:, 1:] @ self.match).amax(1)
        score = (text * image).sum(-1)
        return torch.stack([-score, score], dim=1)


class TinyRetrievalDataset(torch.utils.data.Dataset):
    """7 images, 1-4 captions each; texts are numbered image by image (global ``text_index``)."""

    metainfo = dict(dataset='tiny-retrieval')

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.items = []
        start = 0
        for i, n in enumerate(NUM_CAPTIONS):
            captions = [
                torch.randint(1, VOCAB, (int(torch.randint(3, 8, (1,), generator=g)),), generator=g)
                for _ in range(n)
            ]
            image = torch.randint(0, 256, (3, 4, 4), generator=g, dtype=torch.uint8)
            self.items.append(
                {
                    'inputs': {'image': image, 'caption_ids': captions},
                    'data_samples': BaseDataElement(
                        metainfo=dict(
                            sample_idx=i, image_id=100 + i, text_index=list(range(start, start + n))
                        )
                    ),
                }
            )
            start += n

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict:
        return self.items[idx]


def list_collate(batch: list[dict]) -> dict:
    return {
        'inputs': [b['inputs'] for b in batch],
        'data_samples': [b['data_samples'] for b in batch],
    }


# ------------------------------------------------------------------------------ expected, directly
def expected_scores(k: int | None, score: str) -> dict:
    """Every score computed at once from the stand-in's methods, top-k chosen by Python sorting."""
    model, data = StandInRetrievalModel(), TinyRetrievalDataset()
    with torch.no_grad():
        batch = model.data_preprocessor(list_collate([data[i] for i in range(len(data))]))['inputs']
        img_tok, img_emb = model.encode_image(batch['image'])
        txt_tok, txt_emb = model.encode_text(batch['caption_ids'], batch['caption_attention_mask'])
        n_img, n_txt = len(data), txt_tok.shape[0]
        ii, tt = torch.meshgrid(torch.arange(n_img), torch.arange(n_txt), indexing='ij')
        ii, tt = ii.flatten(), tt.flatten()
        itm = model.itm_logits(txt_tok[tt], batch['caption_attention_mask'][tt], img_tok[ii])[:, 1]
    itm = itm.reshape(n_img, n_txt)
    sim = img_emb @ txt_emb.t()
    txt2img = batch['caption_image_index'].tolist()
    img2txt = [[t for t in range(n_txt) if txt2img[t] == i] for i in range(n_img)]

    wanted: set[tuple[int, int]] = set()  # the distinct (image, text) pairs both directions want

    def rerank(s: torch.Tensor, pair: torch.Tensor, images: bool) -> torch.Tensor:
        if k == 0:
            return s.clone()
        out = torch.full_like(s, -100.0)
        for q in range(s.shape[0]):
            row = s[q].tolist()
            for c in sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]:
                out[q, c] = pair[q, c] + (s[q, c] if score == 'itm+itc' else 0)
                wanted.add((q, c) if images else (c, q))
        return out

    return dict(
        scores_i2t=rerank(sim, itm, True),
        scores_t2i=rerank(sim.t(), itm.t(), False),
        sim=sim,
        img2txt=img2txt,
        txt2img=txt2img,
        pairs=len(wanted),
    )


class CountingHook(Hook):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.metrics: dict | None = None

    def before_val_epoch(self, runner) -> None:
        self.events.append('before_val_epoch')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.events.append('after_val_iter')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.events.append('after_val_epoch')
        self.metrics = metrics

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.events.append('after_test_iter')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.events.append('after_test_epoch')
        self.metrics = metrics


def make_runner(
    work_dir: str, loop: dict, model: nn.Module, loader: DataLoader, hook: Hook, test: bool = False
) -> Runner:
    phase = (
        dict(test_dataloader=loader, test_cfg=loop, test_evaluator=dict(type='RetrievalMetric'))
        if test
        else dict(val_dataloader=loader, val_cfg=loop, val_evaluator=dict(type='RetrievalMetric'))
    )
    return Runner(
        model=model,
        work_dir=work_dir,
        default_scope='vlreg',
        custom_hooks=[hook],
        log_level='WARNING',
        experiment_name=f'retrieval_loop_{next(_RUN_IDS)}',
        **phase,
    )


@pytest.fixture
def captured(monkeypatch) -> list[dict]:
    """Every dict the metric receives."""
    seen: list[dict] = []
    original = RetrievalMetric.process

    def spy(self, data_batch, data_samples):
        seen.extend(data_samples)
        return original(self, data_batch, data_samples)

    monkeypatch.setattr(RetrievalMetric, 'process', spy)
    return seen


def check_result(got: dict, metrics: dict, k: int | None, score: str) -> None:
    exp = expected_scores(k, score)
    assert got['img2txt'] == exp['img2txt'] and got['txt2img'] == exp['txt2img']
    torch.testing.assert_close(got['scores_i2t'], exp['scores_i2t'], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got['scores_t2i'], exp['scores_t2i'], atol=1e-5, rtol=1e-5)
    want = retrieval_metrics(exp['scores_i2t'], exp['scores_t2i'], exp['img2txt'], exp['txt2img'])
    for key, value in want.items():
        assert metrics[f'retrieval/{key}'] == pytest.approx(value), key
    if k == 0:
        assert 'itc_i2t' not in got and 'retrieval/itc_txt_r1' not in metrics
    else:
        itc = retrieval_metrics(exp['sim'], exp['sim'].t(), exp['img2txt'], exp['txt2img'])
        assert metrics['retrieval/itc_r_mean'] == pytest.approx(itc['r_mean'])
    assert metrics['retrieval/protocol'].endswith('7 images x 16 texts, ties pessimistic')


# --------------------------------------------------------------------------------- single process
@pytest.mark.slow
@pytest.mark.parametrize(
    'k,score,batch_size', [(3, 'itm', 5), (None, 'itm+itc', 64), (0, 'itm', 8)]
)
def test_val_loop_matches_direct_scores(tmp_path, captured, k, score, batch_size) -> None:
    model, hook = StandInRetrievalModel(), CountingHook()
    # the sampler repeats images 0 and 1 at the end, as a padding distributed sampler does
    loader = DataLoader(
        TinyRetrievalDataset(),
        batch_size=3,
        collate_fn=list_collate,
        sampler=[0, 1, 2, 3, 4, 5, 6, 0, 1],
    )
    loop = dict(type='RetrievalValLoop', k=k, score=score, itm_batch_size=batch_size)
    metrics = make_runner(str(tmp_path), loop, model, loader, hook).val()
    (got,) = captured
    check_result(got, metrics, k, score)
    # each distinct pair scored once, in full batches: fewer than the two directions' k each
    pairs = expected_scores(k, score)['pairs']
    assert sum(model.itm_pairs) == pairs
    assert len(model.itm_pairs) == math.ceil(pairs / batch_size)
    if k is not None and k > 0:
        assert pairs < 7 * k + 16 * k
    assert all(n <= batch_size for n in model.itm_pairs)
    assert hook.events == ['before_val_epoch'] + ['after_val_iter'] * 3 + ['after_val_epoch']
    assert hook.metrics == metrics
    protocol = {3: 'itc top-3 -> itm', None: 'itc all -> itm+itc', 0: 'itc'}[k]
    assert metrics['retrieval/protocol'].startswith(protocol + ',')
    if k == 3:  # the re-rank changes the numbers, so the test would notice a skipped re-rank
        assert metrics['retrieval/r_mean'] != metrics['retrieval/itc_r_mean']


@pytest.mark.slow
def test_test_loop_uses_test_hooks(tmp_path, captured) -> None:
    model, hook = StandInRetrievalModel(), CountingHook()
    loader = DataLoader(TinyRetrievalDataset(), batch_size=4, collate_fn=list_collate)
    loop = dict(type='RetrievalTestLoop', k=2, score='itm', itm_batch_size=3)
    metrics = make_runner(str(tmp_path), loop, model, loader, hook, test=True).test()
    check_result(captured[0], metrics, 2, 'itm')
    assert hook.events == ['after_test_iter'] * 2 + ['after_test_epoch']


# ---------------------------------------------------------------------------------- two processes
def _distributed_worker(rank: int, world: int, tmp: str) -> None:
    import vlreg  # noqa: F401 - the stack fixes, in the spawned process
    from mmengine.dataset import DefaultSampler
    from mmengine.model import MMDistributedDataParallel

    torch.distributed.init_process_group(
        'gloo', init_method=f'file://{tmp}/rendezvous', rank=rank, world_size=world
    )
    try:
        received: list[dict] = []
        original = RetrievalMetric.process

        def spy(self, data_batch, data_samples):
            received.extend(data_samples)
            return original(self, data_batch, data_samples)

        RetrievalMetric.process = spy
        dataset = TinyRetrievalDataset()
        # 7 images on 2 ranks: the sampler pads one repeated image; batches of 3 leave ranks uneven
        loader = DataLoader(
            dataset,
            batch_size=3,
            collate_fn=list_collate,
            sampler=DefaultSampler(dataset, shuffle=False),
        )
        model = MMDistributedDataParallel(StandInRetrievalModel())
        loop = dict(type='RetrievalValLoop', k=3, score='itm+itc', itm_batch_size=4)
        metrics = make_runner(f'{tmp}/work', loop, model, loader, CountingHook()).val()
        torch.save(
            dict(
                metrics=metrics,
                got=received[0],
                itm_pairs=model.module.itm_pairs,
                rows=len(list(iter(loader.sampler))),
            ),
            f'{tmp}/rank{rank}.pt',
        )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_val_loop_distributed_two_ranks() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_distributed_worker, args=(2, tmp), nprocs=2, join=True)
        outs = [torch.load(Path(tmp) / f'rank{r}.pt', weights_only=False) for r in range(2)]
    for out in outs:  # every rank holds the full matrices and reports the same metrics
        assert out['rows'] == 4
        check_result(out['got'], out['metrics'], 3, 'itm+itc')
    # each rank scored its own half of the distinct pairs, in batches of 4
    pairs = expected_scores(3, 'itm+itc')['pairs']
    share = [math.ceil(pairs / 2), pairs - math.ceil(pairs / 2)]
    assert [sum(o['itm_pairs']) for o in outs] == share
    assert [len(o['itm_pairs']) for o in outs] == [math.ceil(n / 4) for n in share]

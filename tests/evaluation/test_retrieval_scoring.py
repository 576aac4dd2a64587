"""The retrieval loop's scoring on a real (tiny) ALBEF: same rankings as a one-query-at-a-time
reference loop (ALBEF's protocol, written here), each pair scored once, each image's
cross-attention keys / values projected once, and the top-k form equal to the dense one."""

from __future__ import annotations

import pytest
import torch

from tests.models.tiny import VOCAB, tiny_model
from vlreg.engine.loops import RetrievalValLoop, _Features
from vlreg.evaluation import RetrievalMetric, retrieval_metrics

N_IMG, PER_IMG, K = 6, 2, 3


@pytest.fixture(scope='module')
def setup() -> tuple:
    model = tiny_model(dropout=0.0).eval()
    g = torch.Generator().manual_seed(3)
    n_txt = N_IMG * PER_IMG
    images = torch.randn(N_IMG, 3, 64, 64, generator=g)
    lengths = torch.randint(3, 10, (n_txt,), generator=g)
    ids = torch.randint(5, VOCAB, (n_txt, 10), generator=g)
    ids[:, 0] = 2
    mask = (torch.arange(10)[None] < lengths[:, None]).long()
    ids = ids * mask
    with torch.no_grad():
        img_tok, img_emb = model.encode_image(images)
        txt_tok, txt_emb = model.encode_text(ids, mask)
    txt2img = [t // PER_IMG for t in range(n_txt)]
    img2txt = [[i * PER_IMG + j for j in range(PER_IMG)] for i in range(N_IMG)]
    feats = _Features(
        img_tok,
        txt_tok,
        mask,
        img_emb,
        txt_emb,
        torch.arange(N_IMG),
        torch.arange(n_txt),
        img2txt,
        txt2img,
    )
    return model, feats, lengths


def make_loop(k: int | None, score: str, batch: int, dense: bool = True) -> RetrievalValLoop:
    loop = object.__new__(RetrievalValLoop)  # the scoring only, without a runner
    loop.fp16 = False
    loop._init_protocol(k, score, batch, False, dense, chunk_size=4)
    return loop


def reference(model, feats, lengths, k: int, score: str) -> tuple[torch.Tensor, torch.Tensor, set]:
    """ALBEF's evaluation: each query's top-k by ITC, each candidate fused on its own."""
    sim = feats.image_embed @ feats.text_embed.t()
    pairs = set()

    def itm(i: int, t: int) -> float:
        pairs.add((i, t))
        n = int(lengths[t])
        with torch.no_grad():
            logit = model.itm_logits(
                feats.text_tokens[t : t + 1, :n],
                feats.text_mask[t : t + 1, :n],
                feats.image_tokens[i : i + 1],
            )[0, 1]
        return float(logit) + (float(sim[i, t]) if score == 'itm+itc' else 0.0)

    i2t = torch.full(sim.shape, -100.0)
    t2i = torch.full(sim.t().shape, -100.0)
    for i in range(sim.shape[0]):
        row = sim[i].tolist()
        for t in sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]:
            i2t[i, t] = itm(i, t)
    for t in range(sim.shape[1]):
        col = sim[:, t].tolist()
        for i in sorted(range(len(col)), key=lambda c: (-col[c], c))[:k]:
            t2i[t, i] = itm(i, t)
    return i2t, t2i, pairs


def count_kv_rows(model) -> list[int]:
    """Rows the first fusion layer's cross-attention key projection sees."""
    seen = [0]
    key = model.fusion.layer[0].crossattention.self.key
    key.register_forward_hook(lambda mod, inp, out: seen.__setitem__(0, seen[0] + inp[0].shape[0]))
    return seen


@pytest.mark.parametrize('score,batch', [('itm', 5), ('itm+itc', 64)])
def test_same_rankings_as_one_query_at_a_time(setup, score: str, batch: int) -> None:
    model, feats, lengths = setup
    want_i2t, want_t2i, pairs = reference(model, feats, lengths, K, score)
    seen = count_kv_rows(model)
    loop = make_loop(K, score, batch)
    with torch.no_grad():
        got = loop._score(model, feats, torch.device('cpu'))
    torch.testing.assert_close(got['scores_i2t'], want_i2t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got['scores_t2i'], want_t2i, atol=1e-5, rtol=1e-5)
    # identical rankings: every rank of both directions
    for a, b in ((got['scores_i2t'], want_i2t), (got['scores_t2i'], want_t2i)):
        assert torch.equal(
            a.argsort(dim=1, descending=True, stable=True)[:, :K],
            b.argsort(dim=1, descending=True, stable=True)[:, :K],
        )
    assert retrieval_metrics(
        got['scores_i2t'], got['scores_t2i'], feats.img2txt, feats.txt2img
    ) == retrieval_metrics(want_i2t, want_t2i, feats.img2txt, feats.txt2img)
    # work: each distinct pair once (fewer than the 2 * 18 + 12 * 3 the two directions want),
    # each image's keys / values projected once, not once per pair
    assert loop.work.pairs == len(pairs) < N_IMG * K + N_IMG * PER_IMG * K
    assert loop.work.calls == -(-len(pairs) // batch)
    images = {i for i, _ in pairs}
    assert loop.work.image_kv_rows == len(images)
    assert loop.work.text_cache_rows == len({t for _, t in pairs})  # text-only part once per text
    assert seen[0] == len(images)  # key projection rows: one per image (its tokens ride in dim 1)


def test_image_kv_path_equals_token_path(setup) -> None:
    model, feats, _ = setup
    idx = torch.tensor([0, 0, 3, 5, 3])
    txt = torch.tensor([1, 4, 2, 0, 7])
    with torch.no_grad():
        direct = model.itm_logits(
            feats.text_tokens[txt], feats.text_mask[txt], feats.image_tokens[idx]
        )
        kv = model.itm_image_cache(feats.image_tokens[idx])
        cached = model.itm_logits(
            feats.text_tokens[txt], feats.text_mask[txt], None, image_cache=kv
        )
    torch.testing.assert_close(cached, direct, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match='layers'):
        model.fusion(feats.text_tokens[txt], feats.text_mask[txt], None, image_kv=kv[:1])


@pytest.mark.parametrize('k', [0, K, None])
def test_topk_form_gives_the_dense_metrics(setup, k) -> None:
    model, feats, _ = setup
    results = []
    for dense in (True, False):
        loop = make_loop(k, 'itm', 7, dense)
        with torch.no_grad():
            payload = loop._score(model, feats, torch.device('cpu'))
        assert ('scores_i2t' in payload) == dense
        for ties in ('pessimistic', 'optimistic'):
            metric = RetrievalMetric(ties=ties)
            metric.process(None, [payload])
            results.append(metric.compute_metrics(metric.results))
    assert results[0] == results[2] and results[1] == results[3]
    if k == K:
        assert 'itc_r_mean' in results[2] and results[2]['r_mean'] != results[2]['itc_r_mean']

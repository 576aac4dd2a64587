"""vlreg reproduces the real ALBEF code's outputs on the micro checkpoint in ../shared/data/albef_reference.

The checkpoint goes through the converter (tools/convert_albef.py's function); tolerances are the ones the
fixture's README states (1e-5 absolute on floats; allclose with rtol 1e-3 on the small Grad-CAM tensors).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import shared_path
from tests.models.albef_micro import ATOL, close, load_micro, micro_model
from tests.models.loss_context import model_context, stub_context
from vlreg.models.utils.gradcam import cross_attention_gradcam

__all__ = ['ATOL', 'close', 'micro_model']  # re-exported for the other reference tests


@pytest.fixture(scope='module')
def ref():
    folder = shared_path('albef_reference')
    model = load_micro(micro_model(), str(folder / 'albef_micro.pth')).eval()
    inputs = torch.load(folder / 'inputs.pt', weights_only=True)
    outputs = torch.load(folder / 'outputs.pt', weights_only=True)
    return model, inputs, outputs


def encoders(model, inp):
    with torch.no_grad():
        image_tokens, image_embed = model.encode_image(inp['image'])
        text_tokens, text_embed = model.encode_text(inp['input_ids'], inp['attention_mask'])
        image_tokens_m, image_embed_m, text_embed_m = model.encode_momentum(
            inp['image'], inp['input_ids'], inp['attention_mask']
        )
    return dict(
        image_tokens=image_tokens,
        image_embed=image_embed,
        text_tokens=text_tokens,
        text_embed=text_embed,
        text_mask=inp['attention_mask'],
        image_tokens_m=image_tokens_m,
        image_embed_m=image_embed_m,
        text_embed_m=text_embed_m,
        temp=model.temp,
    )


def test_tied_decoder_equals_word_embeddings(ref):
    model, _, _ = ref
    assert model.mlm_head.decoder.weight is model.text_backbone.embeddings.word_embeddings.weight


def test_encoders(ref):
    model, inp, out = ref
    f = encoders(model, inp)
    close(f['image_tokens'], out['image_embeds'])
    close(f['image_embed'], out['image_feat'])
    close(f['text_tokens'], out['text_embeds'])
    close(f['text_embed'], out['text_feat'])
    close(f['image_embed_m'], out['image_feat_m'])
    close(f['text_embed_m'], out['text_feat_m'])


def test_similarities_with_queue(ref):
    model, inp, out = ref
    f = encoders(model, inp)
    itc = model.losses['itc']
    sim_i2t = f['image_embed'] @ torch.cat([f['text_embed_m'].t(), itc.text_queue], 1) / model.temp
    sim_t2i = f['text_embed'] @ torch.cat([f['image_embed_m'].t(), itc.image_queue], 1) / model.temp
    close(sim_i2t.detach(), out['sim_i2t'])
    close(sim_t2i.detach(), out['sim_t2i'])


@pytest.mark.parametrize('alpha,tag', [(0.0, 'alpha0'), (0.4, 'alpha0p4')])
def test_itc_loss(ref, alpha, tag):
    model, inp, out = ref
    f = dict(encoders(model, inp), alpha=alpha)
    ptr = model.losses['itc'].queue_ptr.clone()
    with torch.no_grad():
        loss = model.losses['itc'](stub_context(model, **f))['loss_itc']
    close(loss, out[f'loss_itc_{tag}'])
    assert torch.equal(model.losses['itc'].queue_ptr, ptr), 'eval mode must not enqueue'


def test_itm_with_fixed_negatives(ref):
    model, inp, out = ref
    f = dict(encoders(model, inp), alpha=0.0)
    with torch.no_grad():
        ctx = stub_context(model, **f)
        res = model.losses['itm'].loss_with_negatives(
            ctx, inp['image_neg_idx'], inp['text_neg_idx']
        )
        close(ctx.positive_fusion().cls, out['fusion_cls_pos'])
        close(ctx.positive_itm_logits(), out['itm_logits_pos'])
        txt, mask, img = f['text_tokens'], f['text_mask'], f['image_tokens']
        neg = model.fuse(
            torch.cat([txt, txt[inp['text_neg_idx']]]),
            torch.cat([mask, mask[inp['text_neg_idx']]]),
            torch.cat([img[inp['image_neg_idx']], img]),
        )
    close(neg.cls, out['fusion_cls_neg'])
    close(model.itm_head(neg.cls), out['itm_logits_neg'])
    close(res['loss_itm'], out['loss_itm'])


def test_mlm_logits_and_losses(ref):
    model, inp, out = ref
    f = encoders(model, inp)
    ids, mask = inp['mlm_input_ids'], inp['attention_mask']
    with torch.no_grad():
        hidden = model.fuse(model.text_backbone(ids, mask), mask, f['image_tokens']).hidden
        close(model.mlm_head(hidden), out['mlm_logits'])
        for alpha, tag in ((0.0, 'alpha0'), (0.4, 'alpha0p4')):
            feats = dict(f, mlm_input_ids=ids, mlm_labels=inp['mlm_labels'], alpha=alpha)
            close(
                model.losses['mlm'](stub_context(model, **feats))['loss_mlm'],
                out[f'loss_mlm_{tag}'],
            )


def test_cross_attention_gradcam(ref):
    model, inp, out = ref
    for p in model.parameters():
        p.grad = None
    image_tokens, _ = model.encode_image(inp['image'])
    mask = inp['attention_mask']
    text_tokens = model.text_backbone(inp['input_ids'], mask)
    fused = model.fuse(text_tokens, mask, image_tokens, attn_layer=0)  # BERT layer 2
    logits = model.itm_head(fused.cls)
    close(logits.detach(), out['gradcam_itm_logits'])
    close(fused.cross_attn.detach(), out['cross_attn_probs_layer2'])
    cam, grad = cross_attention_gradcam(logits[:, 1], fused.cross_attn, mask)
    assert torch.allclose(grad, out['cross_attn_grad_layer2'], rtol=1e-3, atol=1e-7)
    cam = cam.reshape(4, mask.shape[1], 4, 4)
    assert torch.allclose(cam.detach(), out['gradcam'], rtol=1e-3, atol=1e-9)
    assert cam.abs().max() > 0
    assert all(p.grad is None for p in model.parameters()), (
        'Grad-CAM must not touch parameter grads'
    )


def test_full_forward_losses_match_albef_forward(ref):
    """The whole loss path (ITC -> ITM -> MLM through the model) equals ALBEF.forward's three losses."""
    model, inp, out = ref
    for alpha, tag in ((0.0, 'alpha0'), (0.4, 'alpha0p4')):
        feats = model.extract_features(
            dict(
                image=inp['image'],
                input_ids=inp['input_ids'],
                attention_mask=inp['attention_mask'],
                mlm_input_ids=inp['mlm_input_ids'],
                mlm_labels=inp['mlm_labels'],
            )
        )
        ctx = model_context(model, dataclasses.replace(feats, alpha=alpha))
        with torch.no_grad():
            itc = model.losses['itc'](ctx)['loss_itc']
            itm = model.losses['itm'].loss_with_negatives(
                ctx, inp['image_neg_idx'], inp['text_neg_idx']
            )['loss_itm']
            mlm = model.losses['mlm'](ctx)['loss_mlm']
        close(torch.stack([mlm, itc, itm]), out[f'albef_forward_losses_{tag}'])

"""tools/convert_albef.py on each released ALBEF layout, built from the real ALBEF micro checkpoint
(../shared/data/albef_reference): each tensor lands in the vlreg tensor ALBEF's code reads it as."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.conftest import ROOT, shared_path
from tests.models.test_albef_reference import micro_model
from vlreg.models import ALBEFPretrainer
from vlreg.models.utils.albef_convert import convert_albef_layout, detect_layout
from vlreg.models.utils.checkpoint import load_state_dict_file
from vlreg.registry import MODELS

SIZES = dict(hidden_size=64, num_heads=2, intermediate_size=128)
VIT = dict(
    type='TimmViTBackbone',
    model_name='vit_base_patch16_224',
    img_size=64,
    embed_dim=64,
    depth=2,
    num_heads=2,
    mlp_ratio=4,
)
BERT = dict(
    type='BertTextBackbone', vocab_size=30522, num_layers=2, max_position_embeddings=64, **SIZES
)


@pytest.fixture(scope='module')
def micro():
    folder = shared_path('albef_reference')
    return (
        load_state_dict_file(str(folder / 'albef_micro.pth')),
        torch.load(folder / 'inputs.pt', weights_only=True),
        torch.load(folder / 'outputs.pt', weights_only=True),
    )


def _fine_tuned(state):
    """A retrieval-style fine-tuned file: bare, no momentum copies, no queues, no MLM head,
    ``text_encoder.*`` without ``bert.`` (as ALBEF's task models store their BertModel)."""
    out = {}
    for key, value in state.items():
        head = key.split('.', 1)[0]
        if head.endswith('_m') or 'queue' in key or 'cls.predictions' in key:
            continue
        out[key.replace('text_encoder.bert.', 'text_encoder.')] = value
    return out


def _head(classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        'cls_head.0.weight': torch.randn(64, 64, generator=g),
        'cls_head.0.bias': torch.randn(64, generator=g),
        'cls_head.2.weight': torch.randn(classes, 64, generator=g),
        'cls_head.2.bias': torch.randn(classes, generator=g),
    }


def test_layouts_are_detected(micro):
    state = micro[0]
    fine = _fine_tuned(state)
    assert detect_layout(state) == 'pretrain'
    assert detect_layout(fine) == 'retrieval'
    assert detect_layout({**fine, **_head(3)}) == 'snli_ve'
    assert detect_layout({**fine, **_head(2)}) == 'nlvr2'
    assert (
        detect_layout(
            {**fine, 'text_decoder.bert.embeddings.word_embeddings.weight': torch.zeros(1)}
        )
        == 'vqa'
    )


def test_retrieval_file_gets_momentum_copies_and_reproduces_albef(micro):
    state, inp, ref = micro
    out, report = convert_albef_layout(_fine_tuned(state), fusion_layer=2)
    assert report['layout'] == 'retrieval'
    assert set(report['created']) == {
        'image_backbone_m.*',
        'text_backbone_m.*',
        'fusion_m.*',
        'vision_proj_m.*',
        'text_proj_m.*',
        'queues',
    }
    model = micro_model().eval()
    result = model.load_state_dict(out, strict=False)
    assert result.unexpected_keys == []
    assert all(k.startswith(('losses.', 'mlm_head')) for k in result.missing_keys)
    torch.testing.assert_close(
        out['fusion_m.layer.1.output.dense.weight'],
        state['text_encoder.bert.encoder.layer.3.output.dense.weight'],
    )
    with torch.no_grad():
        tokens, embed = model.encode_image(inp['image'])
        _, embed_m, text_m = model.encode_momentum(
            inp['image'], inp['input_ids'], inp['attention_mask']
        )
        _, text = model.encode_text(inp['input_ids'], inp['attention_mask'])
    for mine, theirs in (
        (tokens, 'image_embeds'),
        (embed, 'image_feat'),
        (text, 'text_feat'),
        (embed_m, 'image_feat'),
    ):  # ALBEF's momentum starts as a copy
        torch.testing.assert_close(mine, ref[theirs], atol=1e-5, rtol=0)


@pytest.mark.parametrize('layout,classes', [('snli_ve', 3), ('nlvr2', 2)])
def test_classifier_files_fill_the_head_and_drop_what_it_lacks(micro, layout, classes):
    state, inp, ref = micro
    fine = {**_fine_tuned(state), **_head(classes)}
    fine.update({k.replace('cls_head', 'cls_head_m'): v for k, v in _head(classes, 1).items()})
    out, report = convert_albef_layout(fine, fusion_layer=2)
    assert report['layout'] == layout
    # a fine-tuned file has no momentum encoders: created from the online ones; its cls_head_m is kept
    assert set(report['created']) == {'image_backbone_m.*', 'text_backbone_m.*', 'fusion_m.*'}
    assert {'vision_proj*', 'text_proj*', 'itm_head*', 'temp*'} <= set(report['dropped'])
    torch.testing.assert_close(out['head.mlp.2.weight'], fine['cls_head.2.weight'])
    torch.testing.assert_close(out['head_m.mlp.2.weight'], fine['cls_head_m.2.weight'])
    torch.testing.assert_close(
        out['fusion_m.layer.0.output.dense.weight'], out['fusion.layer.0.output.dense.weight']
    )
    fusion = dict(
        encoder_width=64, num_layers=1 if layout == 'nlvr2' else 2, layer_offset=2, **SIZES
    )
    if layout == 'nlvr2':  # ALBEF's NLVR2 BERT: fusion layers alternate the two images
        cfg = dict(type='ALBEFPairClassifier', fusion=dict(type='BertPairFusion', **fusion))
    else:
        cfg = dict(type='ALBEFClassifier', fusion=dict(type='BertFusion', **fusion))
    model = MODELS.build(
        dict(
            cfg,
            image_backbone=VIT,
            text_backbone=BERT,
            num_classes=classes,
            head=dict(type='MLPClassifierHead'),
        )
    )
    result = model.eval().load_state_dict(out, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    with torch.no_grad():
        text = model.text_backbone(inp['input_ids'], inp['attention_mask'])
    torch.testing.assert_close(text, ref['text_embeds'], atol=1e-5, rtol=0)


def test_vqa_decoder_lands_in_the_answer_head(micro):
    state = micro[0]
    fine = _fine_tuned(state)
    # an ALBEF VQA decoder: BertLMHeadModel whose layers all cross-attend (fusion_layer 0)
    for key, value in state.items():
        if key.startswith('text_encoder.bert.embeddings.'):
            fine[key.replace('text_encoder.bert.', 'text_decoder.bert.')] = value + 1
        if key.startswith('text_encoder.bert.encoder.layer.2.'):
            fine[
                key.replace(
                    'text_encoder.bert.encoder.layer.2.', 'text_decoder.bert.encoder.layer.0.'
                )
            ] = value + 2
        if key.startswith('text_encoder.cls.predictions.'):
            fine[key.replace('text_encoder.', 'text_decoder.')] = value + 3
    out, report = convert_albef_layout(fine, fusion_layer=2)
    assert report['layout'] == 'vqa'
    src = 'text_encoder.bert.encoder.layer.2.crossattention.self.key.weight'
    torch.testing.assert_close(out['head.layer.0.crossattention.self.key.weight'], state[src] + 2)
    torch.testing.assert_close(
        out['head.lm_head.transform.dense.weight'],
        state['text_encoder.cls.predictions.transform.dense.weight'] + 3,
    )
    torch.testing.assert_close(
        out['head_m.embeddings.word_embeddings.weight'],
        state['text_encoder.bert.embeddings.word_embeddings.weight'] + 1,
    )
    assert 'head_m.*' in report['created'] and 'itm_head*' in report['dropped']


def test_tool_prints_what_it_dropped_and_created(micro, tmp_path, capsys):
    src = tmp_path / 'albef_retrieval.pth'
    torch.save(_fine_tuned(micro[0]), src)
    spec = importlib.util.spec_from_file_location(
        'vlreg_tool_convert', ROOT / 'tools' / 'convert_albef.py'
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(src), str(tmp_path / 'out.safetensors'), '--fusion-layer', '2'])
    printed = capsys.readouterr().out
    assert 'layout: retrieval' in printed
    assert 'created fusion_m.*: not in the file' in printed
    model = micro_model()
    missing, _ = model.load_pretrained(str(tmp_path / 'out.safetensors'))
    assert all(k.startswith(('losses.', 'mlm_head')) for k in missing)
    assert isinstance(model, ALBEFPretrainer)

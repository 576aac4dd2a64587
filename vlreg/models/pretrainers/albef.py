"""ALBEF pre-training model: encoders, momentum copies, and a named dict of losses."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn
from torch.profiler import record_function

from vlreg.registry import HEADS, LOSSES, MODELS, build_from_slot
from vlreg.structures.batch_keys import (
    ATTENTION_MASK,
    IMAGE,
    INPUT_IDS,
    missing_view_message,
    view_batch_key,
)

from ..encoders import ALBEFEncoderModel
from ..fusion.bert_fusion import FusionOutput
from ..losses import (
    EncodedView,
    LossContext,
    MomentumFeatures,
    VLFeatures,
    check_loss,
    declared_attn_layer,
)
from ..utils.checkpoint import load_checkpoint_into
from ..utils.gradcam import cross_attention_gradcam

#: the parts with a momentum (EMA) copy, and the copies' names
MOMENTUM_PAIRS = (
    ('image_backbone', 'image_backbone_m'),
    ('vision_proj', 'vision_proj_m'),
    ('text_backbone', 'text_backbone_m'),
    ('text_proj', 'text_proj_m'),
    ('fusion', 'fusion_m'),
    ('mlm_head', 'mlm_head_m'),
)

TEXT_POOLS = ('cls', 'mean')


def pool_text(tokens: Tensor, attention_mask: Tensor, mode: str = 'cls') -> Tensor:
    """The text summary the ITC projection reads: ``tokens[:, 0]`` (``'cls'``) or the mean of the
    tokens where ``attention_mask`` is 1 (``'mean'``), ``[B, L, D] -> [B, D]``."""
    if mode == 'cls':
        return tokens[:, 0]
    weights = attention_mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def starts_optimizer_step(optim_wrapper: Any) -> bool:
    """Whether the coming micro-batch is the first of an optimizer step (MMEngine's gradient
    accumulation: ``accumulative_counts`` micro-batches per step); the EMA runs at that one."""
    counts = int(getattr(optim_wrapper, '_accumulative_counts', 1))
    inner = int(getattr(optim_wrapper, '_inner_count', 0))
    return inner % counts == 0


@MODELS.register_module()
class ALBEFPretrainer(ALBEFEncoderModel):
    """ALBEF: ViT image encoder, BERT text encoder, BERT fusion encoder, projections, ITM / MLM heads,
    learnable temperature, momentum (EMA) copies and the losses, each a registered component.

    ``loss`` mode updates the momentum encoders first (as ALBEF's forward does), encodes the batch into the
    :class:`VLFeatures` of docs/architecture.md and sums nothing itself: it returns every loss's ``loss_*`` entries
    (MMEngine adds them) and diagnostics.

    Args:
        image_backbone: a ``BACKBONES`` config (e.g. ``TimmViTBackbone``).
        text_backbone: a ``BACKBONES`` config (``BertTextBackbone``).
        fusion: a ``FUSION_HEADS`` config (``BertFusion``).
        losses: ``{name: LOSSES config}``; their order does not matter (they run in name order and
            share a :class:`LossContext`). Set an entry to None in a child config to drop it.
        embed_dim: width of the contrastive projections.
        itm_head, mlm_head: ``HEADS`` configs, or None when no loss needs them (``hidden_size`` /
            ``vocab_size`` default to the text encoder's).
        temp: initial temperature; ``temp_range`` clamps it (ALBEF: [0.001, 0.5]).
        momentum: EMA coefficient of the momentum encoders; None disables them (and queues, distillation).
        alpha: distillation weight (``AlphaWarmupHook`` ramps it over the first epoch).
        text_pool: what the ITC text embedding projects: ``'cls'`` (default, ALBEF: the text
            encoder's [CLS] output) or ``'mean'`` (the mean of the non-padding token outputs, as
            sentence-transformers pools all-MiniLM-L6-v2, whose [CLS] output was never trained as a
            sentence summary: after its first 3 layers it is nearly the same for every caption,
            cosine 0.996, and ITC on it stays at chance on real photos). The fusion encoder always
            reads every token; only the contrastive embedding changes.
        share_image_kv: True (default) projects each image's cross-attention keys / values once
            per step and fusion layer and reuses them for every fusion row that reads the image
            (positive pairs, hard negatives, MLM); False projects them per row, as ALBEF's code
            does. The same arithmetic up to float summation order; True saves those projections
            (most of the fusion encoder's work on a 197-token image) in the forward and backward.
        pretrained: a local vlreg checkpoint (e.g. a pre-training run's ``epoch_30.pth``) loaded by
            name in ``init_weights``, after the parts' own ``pretrained`` weights, for fine-tuning
            (retrieval: ALBEF's Retrieval.py loads the whole pre-training state dict non-strictly).
            Keys the model lacks (an MLM head when fine-tuning without MLM) are ignored and
            logged; momentum copies missing from the file restart from the online weights.
        pretrained_queues: what ``pretrained`` does to the ITC queues: ``'load'`` (default, as
            ALBEF's fine-tuning code: queues of the same size are loaded, their image ids are
            unknown (-100, so never positives), and the pointer restarts at 0 so that any batch
            size divides it) or ``'reset'`` (random unit vectors, as a fresh model). Queues of
            another size always restart.
        data_preprocessor: defaults to ``VLDataPreprocessor``.

    The encoders, the build-time ``pretrained`` check, the position-embedding fitting and the
    momentum-copy mechanism are :class:`~vlreg.models.encoders.ALBEFEncoderModel`'s.

    Any checkpoint loaded into the model (``pretrained``, the Runner's ``load_from``,
    ``init_cfg=dict(type='Pretrained')``) passes :meth:`fit_state_dict`: ViT position embeddings of
    another resolution are interpolated (ALBEF: 256 px pre-training -> 384 px fine-tuning) and
    queues of another size are replaced by the model's own.

    Example:
        see ``configs/_base_/models/albef_tiny.py``; fine-tuning:
        ``configs/tasks/retrieval/*.py``.
    """

    def __init__(
        self,
        image_backbone: dict,
        text_backbone: dict,
        fusion: dict,
        losses: dict[str, dict | None],
        embed_dim: int = 256,
        itm_head: dict | None = dict(type='ITMHead'),
        mlm_head: dict | None = dict(type='MLMHead'),
        temp: float = 0.07,
        temp_range: tuple[float, float] = (0.001, 0.5),
        momentum: float | None = 0.995,
        alpha: float = 0.4,
        pretrained: str | None = None,
        pretrained_queues: str = 'load',
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
        text_pool: str = 'cls',
        share_image_kv: bool = True,
    ) -> None:
        if text_pool not in TEXT_POOLS:
            raise ValueError(f'text_pool must be one of {TEXT_POOLS}, got {text_pool!r}')
        if pretrained_queues not in ('load', 'reset'):
            raise ValueError(
                f"pretrained_queues must be 'load' or 'reset', got {pretrained_queues!r}"
            )
        super().__init__(
            image_backbone,
            text_backbone,
            fusion,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
        )
        text_width = self.text_backbone.width
        self.vision_proj = nn.Linear(self.image_backbone.width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.itm_head = self._build_head(itm_head, 'itm_head', hidden_size=text_width)
        self.mlm_head = self._build_head(
            mlm_head,
            'mlm_head',
            hidden_size=text_width,
            vocab_size=self.text_backbone.embeddings.word_embeddings.num_embeddings,
        )
        if self.mlm_head is not None:
            self.mlm_head.tie_to(self.text_backbone.embeddings.word_embeddings)
        self.temp = nn.Parameter(torch.tensor(float(temp)))
        self.temp_range = tuple(temp_range)
        self.text_pool = text_pool
        self.share_image_kv = bool(share_image_kv)
        self.embed_dim = embed_dim
        self.alpha = float(alpha)
        self.pretrained_queues = pretrained_queues
        self.losses = nn.ModuleDict(
            {
                name: build_from_slot(LOSSES, cfg, f'losses.{name}')
                for name, cfg in losses.items()
                if cfg is not None
            }
        )
        if not self.losses:
            raise ValueError('ALBEFPretrainer needs at least one loss in `losses`')
        for name, loss in self.losses.items():  # what each loss declares it needs (losses/base.py)
            check_loss(
                name,
                loss,
                heads=dict(itm_head=self.itm_head, mlm_head=self.mlm_head),
                has_momentum=momentum is not None,
            )
        # extra views (multi-modal augmentation) and the Grad-CAM layer (soft-masked ITM) the losses ask for
        pairs = [pair for loss in self.losses.values() for pair in getattr(loss, 'views', ())]
        self.image_views = sorted({a for a, _ in pairs} - {'image'})
        self.text_views = sorted({b for _, b in pairs} - {'text'})
        self.gradcam_layer = declared_attn_layer(
            self.losses, len(getattr(self.fusion, 'layer', ()))
        )
        # the shared positive pass materialises that layer's probabilities only for a loss that reuses
        # it (SoftMaskITMLoss(gradcam_mode='train')); gradcam_mode='eval' runs its own pass
        self.itm_attn_layer = (
            self.gradcam_layer
            if any(
                getattr(loss, 'reuses_itm_pass', True)
                for loss in self.losses.values()
                if getattr(loss, 'cross_attn_layer', None) is not None
            )
            else None
        )
        if momentum is not None:
            self.add_momentum_copies(MOMENTUM_PAIRS, momentum)

    @staticmethod
    def _build_head(cfg: dict | None, slot: str, **defaults: Any) -> nn.Module | None:
        if cfg is None:
            return None
        cfg = dict(cfg)
        for k, v in defaults.items():
            cfg.setdefault(k, v)
        return build_from_slot(HEADS, cfg, slot)

    # -- weights --------------------------------------------------------------------------------------
    def tie_weights(self) -> None:
        """The MLM heads' vocabulary projections are the (momentum) text encoder's word embeddings."""
        if self.mlm_head is not None:
            self.mlm_head.tie_to(self.text_backbone.embeddings.word_embeddings)
        if getattr(self, 'mlm_head_m', None) is not None:
            self.mlm_head_m.tie_to(self.text_backbone_m.embeddings.word_embeddings)

    def init_weights(self) -> None:
        """Load the local pretrained weights of each part, then restart the momentum copies from them."""
        super().init_weights()
        self.tie_weights()
        self.restart_momentum()
        if self.pretrained:
            self.load_pretrained(self.pretrained)

    def load_pretrained(self, path: str) -> tuple[list[str], list[str]]:
        """Initialise from a local vlreg checkpoint for fine-tuning; returns (missing, unexpected).

        Everything the model has is loaded by name (through :meth:`fit_state_dict`); queued image
        ids and queue pointers are not (they belong to the run that wrote the file), and with
        ``pretrained_queues='reset'`` nor are the queues.
        """
        queue_keys = ('.idx_queue', '.queue_ptr')
        if self.pretrained_queues == 'reset':
            queue_keys += ('.image_queue', '.text_queue')
        missing, unexpected = load_checkpoint_into(
            self, path, skip_suffixes=queue_keys, strict=False
        )
        for loss in self.losses.values():
            if hasattr(loss, 'queue_ptr'):
                loss.queue_ptr.zero_()
            if hasattr(loss, 'idx_queue'):
                loss.idx_queue.fill_(-100)
        self.restart_momentum(missing)  # when the file has no (complete) momentum copies
        return missing, unexpected

    def fit_state_dict(self, state: dict[str, Tensor], prefix: str = '') -> None:
        """Adapt an incoming state dict in place to this model's sizes (before loading it).

        ``*pos_embed`` of the image encoders: bicubic interpolation to this model's patch grid
        (:meth:`ALBEFEncoderModel.fit_state_dict`). ITC queues of another size: replaced by this
        model's queues (and pointer 0), since a queue cannot be resized meaningfully. Every change
        is logged.
        """
        super().fit_state_dict(state, prefix)
        own = self.state_dict(keep_vars=True)
        for key, mine in own.items():
            full = prefix + key
            theirs = state.get(full)
            if theirs is None or theirs.shape == mine.shape:
                continue
            if key.startswith('losses.') and key.endswith('_queue'):
                owner = key.rsplit('.', 1)[0]
                for buf in ('image_queue', 'text_queue', 'idx_queue', 'queue_ptr'):
                    if f'{owner}.{buf}' in own:
                        state[f'{prefix}{owner}.{buf}'] = own[f'{owner}.{buf}'].detach().clone()
                state[f'{prefix}{owner}.queue_ptr'].zero_()
                print_log(
                    f"{prefix}{owner}: the checkpoint's queues have {theirs.shape[-1]} "
                    f'entries, this model {mine.shape[-1]}: the queues restart',
                    logger='current',
                )

    # -- the API used by losses, evaluation and tools -----------------------------------------------
    def encode_image(self, image: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.image_backbone(image)
        return tokens, F.normalize(self.vision_proj(tokens[:, 0]), dim=-1)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.text_backbone(input_ids, attention_mask)
        return tokens, F.normalize(
            self.text_proj(pool_text(tokens, attention_mask, self.text_pool)), dim=-1
        )

    @torch.no_grad()
    def encode_momentum(
        self, image: Tensor, input_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(image tokens, image embed, text embed) from the momentum encoders."""
        image_tokens = self.image_backbone_m(image)
        image_embed = F.normalize(self.vision_proj_m(image_tokens[:, 0]), dim=-1)
        text = self.text_backbone_m(input_ids, attention_mask)
        text_embed = self.text_proj_m(pool_text(text, attention_mask, self.text_pool))
        return image_tokens, image_embed, F.normalize(text_embed, dim=-1)

    def fuse(
        self,
        text_tokens: Tensor,
        text_mask: Tensor,
        image_tokens: Tensor | None = None,
        image_mask: Tensor | None = None,
        attn_layer: int | None = None,
        image_kv: list[tuple[Tensor, Tensor]] | None = None,
        cls_only: bool = False,
    ) -> FusionOutput:
        """The fusion encoder on text tokens and image tokens, or the images' projected
        cross-attention keys / values (``image_kv``, rows of :meth:`itm_image_cache`);
        ``cls_only``: only the [CLS] row is read (``BertFusion.forward``)."""
        return self.fusion(
            text_tokens,
            text_mask,
            image_tokens,
            image_mask,
            attn_layer,
            image_kv=image_kv,
            cls_only=cls_only,
        )

    def itm_logits(
        self,
        text_tokens: Tensor,
        text_mask: Tensor,
        image_tokens: Tensor | None,
        image_cache: list[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """ITM logits ``[B, 2]``; ``image_cache`` (rows of :meth:`itm_image_cache`, one per text)
        replaces ``image_tokens`` so that each image's cross-attention keys / values are reused."""
        if image_cache is not None:
            return self.itm_head(
                self.fusion(text_tokens, text_mask, None, image_kv=image_cache, cls_only=True).cls
            )
        return self.itm_head(self.fuse(text_tokens, text_mask, image_tokens, cls_only=True).cls)

    def itm_image_cache(self, image_tokens: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per fusion layer, the cross-attention (keys, values) ``[B, h, N, d]`` of the images."""
        return self.fusion.image_key_values(image_tokens)

    def itm_text_cache(self, text_tokens: Tensor, text_mask: Tensor) -> Tensor:
        """The part of the ITM fusion that sees the text only (the first fusion layer's
        self-attention), computed once per text for :meth:`itm_pair_logits`."""
        return self.fusion.text_self_attention(text_tokens, text_mask)

    def itm_pair_logits(
        self,
        text_cache: Tensor,
        text_mask: Tensor,
        image_cache: list[tuple[Tensor, Tensor]],
        image_index: Tensor,
    ) -> Tensor:
        """ITM logits ``[P, 2]`` of pairs (``text_cache[p]``, image ``image_index[p]`` of
        ``image_cache``): rows of :meth:`itm_text_cache` and :meth:`itm_image_cache`. Equal to
        :meth:`itm_logits` on the same pairs; no per-pair copy of the image keys / values, the last
        fusion layer on the [CLS] row only (``BertFusion.pair_cls``)."""
        return self.itm_head(
            self.fusion.pair_cls(text_cache, text_mask, image_cache, image_index, True)
        )

    @torch.no_grad()
    def momentum_mlm_logits(
        self, input_ids: Tensor, attention_mask: Tensor, image_tokens_m: Tensor, positions: Tensor
    ) -> Tensor:
        hidden = self.fusion_m(
            self.text_backbone_m(input_ids, attention_mask), attention_mask, image_tokens_m
        ).hidden
        return self.mlm_head_m(hidden[positions])

    def gradcam(
        self,
        image: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        layer: int = 2,
        head_reduction: str = 'mean',
    ) -> tuple[Tensor, Tensor]:
        """Word-level Grad-CAM of the ITM match logit on fusion layer ``layer``.

        Returns:
            (Grad-CAM ``[B, L, N_patches]``, ITM logits ``[B, 2]``). Parameter gradients are untouched.
        """
        with torch.enable_grad():
            image_tokens, _ = self.encode_image(image)
            text_tokens, _ = self.encode_text(input_ids, attention_mask)
            out = self.fuse(
                text_tokens, attention_mask, image_tokens, attn_layer=layer, cls_only=True
            )
            logits = self.itm_head(out.cls)
            cam, _ = cross_attention_gradcam(
                logits[:, 1], out.cross_attn, attention_mask, head_reduction, retain_graph=False
            )
        return cam.detach(), logits.detach()

    # -- BaseModel (VLBaseModel dispatches forward) ------------------------------------------
    def tensor(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> VLFeatures:
        return self.extract_features(inputs, data_samples)

    def extract_features(
        self, inputs: dict[str, Tensor], data_samples: list | None = None
    ) -> VLFeatures:
        """The features every loss reads (:class:`VLFeatures`, docs/architecture.md)."""
        for key in (IMAGE, INPUT_IDS, ATTENTION_MASK):
            if key not in inputs:
                raise KeyError(f'the batch has no {key!r}; got {sorted(inputs)}')
        images, texts = self._view_inputs(inputs)
        # the extra views ride in the same encoder call as the originals (larger, fewer matrix
        # products: the same values, less per-call overhead); split afterwards
        with record_function('encode/image'):
            image_tokens, image_embed = self.encode_image(
                torch.cat(images) if len(images) > 1 else images[0]
            )
        mask = inputs['attention_mask']
        with record_function('encode/text'):
            text_tokens, text_embed = self.encode_text(
                torch.cat(texts) if len(texts) > 1 else texts[0],
                mask.repeat(len(texts), 1) if len(texts) > 1 else mask,
            )
        b = inputs['image'].shape[0]
        views: dict[str, EncodedView] = {}
        for i, view in enumerate(self.image_views, start=1):
            views[view] = EncodedView(
                image_tokens[i * b : (i + 1) * b], image_embed[i * b : (i + 1) * b]
            )
        if len(texts) > 1:
            views['text_masked'] = EncodedView(text_tokens[b:], text_embed[b:])
        with torch.no_grad():
            self.temp.clamp_(*self.temp_range)
        momentum = (
            MomentumFeatures(*self.encode_momentum(inputs['image'], inputs['input_ids'], mask))
            if self.has_momentum
            else None
        )
        return VLFeatures(
            image=inputs['image'],
            input_ids=inputs['input_ids'],
            text_mask=mask,
            image_tokens=image_tokens[:b],
            image_embed=image_embed[:b],
            text_tokens=text_tokens[:b],
            text_embed=text_embed[:b],
            temp=self.temp,
            alpha=self.alpha,
            momentum=momentum,
            views=views,
            mlm_input_ids=inputs.get('mlm_input_ids'),
            mlm_labels=inputs.get('mlm_labels'),
            word_ids=inputs.get('word_ids'),
            content_mask=inputs.get('content_mask'),
            image_ids=_image_ids(data_samples, image_embed.device),
            inputs=inputs,
        )

    def _view_inputs(self, inputs: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """The images (original first, then ``image_views``) and token ids (original, then the
        masked caption when ``text_masked`` is a view) to encode: the extra views are the
        ``ImageView`` transform's distorted image and ``MaskText``'s MLM-masked caption."""
        images = [inputs[IMAGE]]
        for view in self.image_views:
            if view_batch_key(view) not in inputs:
                raise KeyError(missing_view_message(view))
            images.append(inputs[view_batch_key(view)])
        texts = [inputs[INPUT_IDS]]
        if 'text_masked' in self.text_views:
            if view_batch_key('text_masked') not in inputs:
                raise KeyError(missing_view_message('text_masked'))
            texts.append(inputs[view_batch_key('text_masked')])
        return images, texts

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, Tensor]:
        """MMEngine's step, with the EMA once per optimizer step under gradient accumulation.

        With ``accumulative_counts = n`` the momentum encoders are updated at the first of the
        ``n`` micro-batches only (from the weights of the last optimizer step, as one step at
        ``n`` times the batch does); the queues take every micro-batch in order, so after the
        ``n`` micro-batches they hold what one ``n``-times-larger batch would have put there.
        """
        self._ema_now = starts_optimizer_step(optim_wrapper)
        try:
            return super().train_step(data, optim_wrapper)
        finally:
            self._ema_now = True

    def loss(
        self, inputs: dict[str, Tensor], data_samples: list | None = None
    ) -> dict[str, Tensor]:
        """Every loss's ``loss_*`` entries and diagnostics, plus ``temp``.

        The losses share one :class:`LossContext` (the in-batch similarities, the hard negatives, the
        positive-pair fusion pass) and write nothing into the features, so none depends on another
        having run first. They run, and report, in the order of their names, whatever the config's
        order: random draws (hard negatives, word picks, dropout) and the sum of the entries then do
        not depend on how the config lists them.
        """
        if self.training and self.has_momentum and getattr(self, '_ema_now', True):
            self.momentum_update()
        names = sorted(self.losses)
        ctx = LossContext(
            self.extract_features(inputs, data_samples),
            self,
            self.itm_attn_layer,
            share_image_kv=self.share_image_kv,
        )
        out: dict[str, Tensor] = {}
        for name in names:
            with record_function(f'loss/{name}'):
                out.update(self.losses[name](ctx))
        out['temp'] = self.temp.detach()
        return out

    @torch.no_grad()
    def predict(self, inputs: dict[str, Tensor], data_samples: list | None = None) -> list:
        """Data samples carrying ``image_embed``, ``text_embed`` and the pair's ``itm_score``."""
        from vlreg.structures import DataSample

        image_tokens, image_embed = self.encode_image(inputs['image'])
        text_tokens, text_embed = self.encode_text(inputs['input_ids'], inputs['attention_mask'])
        itm = (
            self.itm_logits(text_tokens, inputs['attention_mask'], image_tokens).softmax(-1)[:, 1]
            if self.itm_head is not None
            else None
        )
        samples = data_samples or [DataSample() for _ in range(image_embed.shape[0])]
        for i, sample in enumerate(samples):
            sample.set_field(image_embed[i], 'image_embed')
            sample.set_field(text_embed[i], 'text_embed')
            if itm is not None:
                sample.set_field(itm[i], 'itm_score')
        return samples


def _image_ids(data_samples: list | None, device: torch.device) -> Tensor | None:
    if not data_samples:
        return None
    ids = [s.metainfo.get('image_id') if hasattr(s, 'metainfo') else None for s in data_samples]
    if any(not isinstance(i, int) for i in ids):
        return None
    return torch.tensor(ids, dtype=torch.long, device=device)

"""The diffusion transformer: spacetime patch tokens + time + text -> velocity per token.

Two entry points share one network. :meth:`DiffusionTransformer.forward_tokens` is the packed,
native-resolution path (NaViT's Patch n' Pack: several clips of any size per row, kept apart
by a block-diagonal mask, positions restarting per clip). :meth:`DiffusionTransformer.forward`
is diffusers-style: latent video ``"b c t h w"`` in, the same layout out (as Wan), with
patchify and positions done inside.

Times are kinetoscope's rectified-flow ``t`` in [0, 1] (0 = data, 1 = noise; see
:mod:`kinetoscope.diffusion.flow`), not diffusers' ``1000 * sigma``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kinetoscope import hub
from kinetoscope.patches import grid_positions, patch_grid, patchify, unpatchify
from kinetoscope.transformer.attention import build_masks
from kinetoscope.transformer.blocks import DiTBlock, FinalLayer
from kinetoscope.transformer.config import DiTConfig
from kinetoscope.transformer.embeddings import PooledTextProjection, TextProjection, TimestepConditioning, pool_text
from kinetoscope.transformer.rope import rope_frequencies


class DiffusionTransformer(nn.Module):
    """A DiT over spacetime patches with 3D RoPE, QK RMSNorm, adaLN-single and text conditioning.

    Text enters by cross-attention or by joint attention over ``[text; video]``
    (``config.text_conditioning``). Every block starts as the identity and the output layer at
    zero (adaLN-Zero), so a fresh model predicts exactly 0.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["DiTBlock"]

    def __init__(self, config: DiTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else DiTConfig()
        self.patch_embed = nn.Linear(config.token_dim, config.width)
        self.self_condition_embed = nn.Linear(config.token_dim, config.width) if config.self_condition else None
        self.time_embed = TimestepConditioning(config.width, config.timestep_freq_dim)
        self.text_embed = TextProjection(config.text_dim, config.width)
        self.pooled_text_embed = PooledTextProjection(config.text_dim, config.width) if config.pooled_text else None
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(config.width, config.token_dim, config.norm_eps)
        self.gradient_checkpointing = False
        self._init_weights()

    def _init_weights(self) -> None:
        # DiT's init: Xavier Linears with zero biases, N(0, 0.02) for the time MLP.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for layer in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        # adaLN-Zero: the shared modulation Linear and the per-block tables (zeros already)
        # give every gate 0, so each block starts as the identity (see DiTBlock).
        nn.init.zeros_(self.time_embed.modulation.weight)
        if self.pooled_text_embed is not None:
            nn.init.zeros_(self.pooled_text_embed.mlp[2].weight)
        # A zero embedding of the clean estimate: the model starts as if it had none.
        if self.self_condition_embed is not None:
            nn.init.zeros_(self.self_condition_embed.weight)
        # Cross-attention's residual has no gate; a zero output projection keeps the block an
        # identity at init all the same (PixArt-alpha does this too).
        for block in self.blocks:
            if not block.joint:
                nn.init.zeros_(block.cross_attn.out.weight)
        # A zero output layer makes the first prediction exactly 0, the mean of the velocity
        # target, instead of a random field the first steps must unlearn.
        nn.init.zeros_(self.final.linear.weight)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each block's activations in the backward pass (memory for about 30% more compute)."""
        self.gradient_checkpointing = True

    def disable_gradient_checkpointing(self) -> None:
        """Keep activations again (the default)."""
        self.gradient_checkpointing = False

    def forward_tokens(
        self,
        tokens: Tensor,
        positions: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        segment_ids: Tensor | None = None,
        text_segment_ids: Tensor | None = None,
        self_condition: Tensor | None = None,
    ) -> Tensor:
        """Predict the velocity of patch tokens.

        Args:
            tokens: ``"b n (c pt ph pw)"`` patchified latents (``kinetoscope.patches.pack``).
            positions: ``"b n 3"`` integer (t, h, w) patch coordinates, each clip from 0
                (``"1 n 3"`` is shared by the batch).
            timestep: ``"b"``, ``"b n"`` or ``"b n 1"`` times in [0, 1]; per token, given
                frames sit at 0.
            text: ``"b l d_text"`` text encoder tokens.
            text_mask: ``"b l"`` bool, True for real text tokens; None = all real.
            segment_ids: ``"b n"`` clip index of each token within its row, -1 for padding;
                None = one clip per row, no padding.
            text_segment_ids: ``"b l"`` clip index of each text token
                (``kinetoscope.patches.pack_sequences``), -1 for padding; required when rows
                hold several clips.
            self_condition: ``"b n (c pt ph pw)"`` a clean estimate of the tokens (the
                sampler's previous prediction), for a model with ``config.self_condition``;
                None = no estimate (zeros). Refused by a model without it.

        Returns:
            ``"b n (c pt ph pw)"``, the same shape as ``tokens``.
        """
        cfg = self.config
        b, n, l = tokens.shape[0], tokens.shape[1], text.shape[1]
        if timestep.ndim == 3 and timestep.shape[-1] == 1:
            timestep = timestep[..., 0]  # "b n 1", the per-token form kinetoscope.diffusion broadcasts
        self._check_inputs(tokens, positions, timestep, text)
        joint = cfg.text_conditioning == "joint"
        text_mask = None if text_mask is None else text_mask.bool()
        masks = build_masks(segment_ids, text_mask, text_segment_ids, joint, (b, n, l), tokens.device)
        if joint:
            # Text tokens sit at position (0, 0, 0), where RoPE is the identity (Flux, Open-Sora 2.0).
            text_positions = positions.new_zeros(positions.shape[0], l, 3)
            positions = torch.cat((text_positions, positions), dim=1)                        # b (l n) 3
        freqs = rope_frequencies(positions, cfg.head_dim, cfg.rope_theta)                    # b n (e/2)

        x = self.patch_embed(tokens)                                                             # b n d
        if self.self_condition_embed is not None:
            # No estimate embeds as zeros would: the bias alone, without a matmul over a zero tensor.
            embed = self.self_condition_embed
            x = x + (embed.bias if self_condition is None else embed(self_condition.to(tokens.dtype)))       # b n d
        elif self_condition is not None:
            raise ValueError("self_condition given to a model built without config.self_condition")
        pooled = None
        if self.pooled_text_embed is not None:
            pooled = self.pooled_text_embed(pool_text(text, text_mask, text_segment_ids, segment_ids))  # b n|1 d
        temb, modulation = self.time_embed(timestep, pooled)                        # b n|1 d, b n|1 6 d
        context = self.text_embed(text)                                                          # b l d
        for block in self.blocks:
            args = (x, context, modulation, freqs, masks.self_mask, masks.cross_mask)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x, context = checkpoint(block, *args, use_reentrant=False)
            else:
                x, context = block(*args)                                                        # b n d
        return self.final(x, temb)                                                    # b n (c pt ph pw)

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor,
        encoder_attention_mask: Tensor | None = None,
        self_condition: Tensor | None = None,
    ) -> Tensor:
        """Predict the velocity of a batch of same-sized latent videos, diffusers-style.

        Args:
            hidden_states: ``"b c t h w"`` noisy latents.
            timestep: times in [0, 1] as ``"b"`` (or a scalar), ``"b n"`` per token, or a
                5-D tensor broadcasting to ``"b 1 t h w"`` or ``"b c t h w"`` (e.g. ``"b 1 t 1 1"``
                per frame); a patch spanning several times takes the largest, so it counts as noisy.
            encoder_hidden_states: ``"b l d_text"`` text encoder tokens.
            encoder_attention_mask: ``"b l"``, nonzero/True for real text tokens; None = all real.
            self_condition: ``"b c t h w"`` a clean estimate of the latents (see
                :meth:`forward_tokens`), or None.

        Returns:
            ``"b c t h w"``, the same shape as ``hidden_states`` (the tensor itself, not
            diffusers' output dataclass).
        """
        patch = self.config.patch_size
        if hidden_states.ndim != 5:
            raise ValueError(f"hidden_states must be 'b c t h w', got shape {tuple(hidden_states.shape)}")
        b, c, t, h, w = hidden_states.shape
        grid = patch_grid((t, h, w), patch)
        tokens = patchify(hidden_states, patch)                                       # b n (c pt ph pw)
        positions = grid_positions(grid, hidden_states.device)[None]                             # 1 n 3
        timestep = torch.as_tensor(timestep, device=hidden_states.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        elif timestep.ndim == 5:
            per_pixel = timestep.expand(b, timestep.shape[1], t, h, w)
            timestep = patchify(per_pixel, patch).amax(dim=-1)                                     # b n
        estimate = None if self_condition is None else patchify(self_condition, patch)
        out = self.forward_tokens(tokens, positions, timestep, encoder_hidden_states, encoder_attention_mask,
                                  self_condition=estimate)  # fmt: skip
        return unpatchify(out, patch, grid, c)                                               # b c t h w

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``diffusion_pytorch_model.safetensors`` into ``directory``."""
        return hub.save_pretrained(self, self.config, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> DiffusionTransformer:
        """Load a folder written by :meth:`save_pretrained`, in eval mode, on ``device``.

        Raises KinetoscopeError naming the file when the folder is missing, corrupt or mismatched.
        """
        config = hub.load_config(DiTConfig, directory, class_name=cls.__name__)
        model = cls(config)
        hub.load_weights(model, directory, device)
        return model.eval()

    def _check_inputs(self, tokens: Tensor, positions: Tensor, timestep: Tensor, text: Tensor) -> None:
        cfg = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != cfg.token_dim:
            raise ValueError(
                f"tokens must be 'b n {cfg.token_dim}' (in_channels {cfg.in_channels} x patch "
                f"{cfg.patch_size}), got shape {tuple(tokens.shape)}"
            )
        b, n = tokens.shape[:2]
        if positions.ndim != 3 or positions.shape[1:] != (n, 3) or positions.shape[0] not in (1, b):
            raise ValueError(f"positions must be 'b n 3' = ({b}, {n}, 3), got {tuple(positions.shape)}")
        if timestep.shape not in ((b,), (b, n)):
            shape = tuple(timestep.shape)
            raise ValueError(f"timestep must be 'b' = ({b},) or 'b n' = ({b}, {n}), got {shape}")
        if text.ndim != 3 or text.shape[0] != b or text.shape[-1] != cfg.text_dim:
            raise ValueError(f"text must be 'b l {cfg.text_dim}' with b = {b}, got {tuple(text.shape)}")

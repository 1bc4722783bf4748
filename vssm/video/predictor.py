"""Frame prediction with a ConvS5 (or ConvLSTM) stack between a ResNet encoder and decoder.

The model of the reference's "noVQ" Moving-MNIST experiments, in PyTorch layout: clips are
(batch, T, C, H, W) with values in [-1, 1]. Teacher-forced training (``forward`` / ``loss``) encodes every
frame, appends the action embedding (a learned constant when actions are unused; the reference keeps the
embedding and the 1x1 action convolution even then), runs the stack in parallel mode over frames
0..T-2 and decodes predictions of frames 1..T-1 through a tanh. Generation (``generate``) conditions on
the context frames in parallel mode, then feeds each generated frame back in step mode.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import ResNetDecoder, ResNetEncoder, init_like_flax_
from .sequence import SequenceStack

__all__ = ["VideoPredictor"]


class VideoPredictor(nn.Module):
    """Encoder -> [latents ++ action] -> 1x1 conv -> sequence stack -> decoder -> tanh.

    Args:
        in_chans: channels of a frame.
        encoder_depths: widths of the encoder stages (each after the first halves the resolution).
        encoder_blocks, decoder_blocks: ResNet blocks per stage; norm_groups: their GroupNorm groups.
        d_model: channels the stack works in.
        n_layers, cell ("convs5" or "convlstm"), dropout, use_norm, prenorm, per_layer_skip,
        skip_connections: the stack (see ``sequence.py``).
        cell_kwargs: passed to the cell (ConvS5: ssm_size, blocks, kernel_b, kernel_c, kernel_d, c_d_block,
            activation, num_groups, clip_eigs, dt_min, dt_max, scan_backend; ConvLSTM: hidden, kernel_size).
        action_dim, action_embed_dim: the action embedding table has action_dim + 1 rows.
        loss_weight: weight of the MSE term of the loss (the L1 term gets the rest).
    """

    def __init__(self, in_chans: int = 1, encoder_depths=(64, 128, 256), encoder_blocks: int = 1,
                 decoder_blocks: int = 1, norm_groups: int = 32, d_model: int = 256, n_layers: int = 8,
                 cell: str = "convs5", dropout: float = 0.0, use_norm: bool = True, prenorm: bool = False,
                 per_layer_skip: bool = True, skip_connections: bool = False, action_dim: int = 1,
                 action_embed_dim: int = 1, loss_weight: float = 0.5, cell_kwargs: dict | None = None,
                 num_classes: int = 0, **unused):
        super().__init__()
        if unused:
            raise TypeError(f"unexpected arguments for VideoPredictor: {sorted(unused)}")
        if num_classes:
            raise ValueError(f"VideoPredictor predicts frames and has no classifier; got num_classes={num_classes}")
        self.in_chans, self.d_model, self.loss_weight = in_chans, d_model, loss_weight
        self.num_classes = 0
        self.encoder = ResNetEncoder(in_chans, encoder_depths, encoder_blocks, norm_groups)
        self.action_embeds = nn.Embedding(action_dim + 1, action_embed_dim)
        self.action_conv = nn.Conv2d(self.encoder.out_chans + action_embed_dim, d_model, 1)
        self.sequence_model = SequenceStack(d_model, n_layers, cell, dropout, use_norm, prenorm, per_layer_skip,
                                            skip_connections, **(cell_kwargs or {}))
        self.decoder = ResNetDecoder(d_model, in_chans, encoder_depths, decoder_blocks, norm_groups)
        init_like_flax_(self)   # every Conv2d; the ConvS5 B and C and the ConvLSTM kernel keep their own init

    # ---- checks -------------------------------------------------------------------------------------
    def check_clip(self, video: torch.Tensor, min_frames: int = 1) -> None:
        if not torch.is_tensor(video) or not video.is_floating_point():
            raise TypeError("the clip must be a floating-point tensor (batch, T, C, H, W)")
        if video.dim() != 5:
            raise ValueError(f"the clip must have shape (batch, T, C, H, W), got rank {video.dim()} {tuple(video.shape)}")
        if video.shape[2] != self.in_chans:
            hint = " (it looks channels-last; permute to (batch, T, C, H, W))" if video.shape[-1] == self.in_chans else ""
            raise ValueError(f"the clip must have {self.in_chans} channels on axis 2 (batch, T, C, H, W), "
                             f"got shape {tuple(video.shape)}{hint}")
        r = self.encoder.reduction
        if video.shape[3] % r or video.shape[4] % r or video.shape[3] < r or video.shape[4] < r:
            raise ValueError(f"frame height and width must be positive multiples of {r} (the encoder pools by 2 "
                             f"{r.bit_length() - 1} times), got {tuple(video.shape[3:])}")
        if video.shape[1] < min_frames:
            raise ValueError(f"the clip needs at least {min_frames} frames, got {video.shape[1]}")

    # ---- pieces -------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        z = self.encoder(video.flatten(0, 1))
        return z.reshape((b, t) + tuple(z.shape[1:]))

    def _inputs(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """latents (b, t, c, h, w) ++ action embedding (b, t) -> 1x1 conv -> (b, t, d_model, h, w)."""
        b, t, _, h, w = latents.shape
        emb = self.action_embeds(actions)                                   # (b, t, e)
        emb = emb[..., None, None].expand(b, t, emb.shape[-1], h, w)
        x = self.action_conv(torch.cat([latents, emb.to(latents.dtype)], 2).flatten(0, 1))
        return x.reshape(b, t, self.d_model, h, w)

    def _actions(self, actions, b: int, t: int, device) -> torch.Tensor:
        if actions is None:
            return torch.zeros(b, t, dtype=torch.long, device=device)
        if tuple(actions.shape) != (b, t):
            raise ValueError(f"actions must be (batch, T) = {(b, t)}, got {tuple(actions.shape)}")
        return actions.long()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(b, t, d_model, h, w) -> frames (b, t, C, H, W) in [-1, 1]."""
        b, t = latents.shape[:2]
        x = torch.tanh(self.decoder(latents.flatten(0, 1)))
        return x.reshape((b, t) + tuple(x.shape[1:]))

    # ---- parallel mode --------------------------------------------------------------------------------
    def condition(self, video: torch.Tensor, actions=None, states=None):
        """Run the stack over frames 0..T-2 (the action of frame t+1 goes with frame t).

        Returns (latent predictions of frames 1..T-1, (b, T-1, d_model, h, w); every layer's last state).
        """
        self.check_clip(video, min_frames=2)
        b, t = video.shape[:2]
        actions = self._actions(actions, b, t, video.device)
        x = self._inputs(self.encode(video[:, :-1]), actions[:, 1:])
        return self.sequence_model(x, states)

    def forward_features(self, video: torch.Tensor, actions=None) -> torch.Tensor:
        return self.condition(video, actions)[0]

    def forward(self, video: torch.Tensor, actions=None) -> torch.Tensor:
        """Teacher-forced predictions of frames 1..T-1, (batch, T-1, C, H, W) in [-1, 1]."""
        return self.decode(self.forward_features(video, actions))

    def loss(self, video: torch.Tensor, actions=None) -> dict:
        """The reference's loss: MSE and L1 of the predicted frames 1..T-1, each summed over the channels
        and the width and averaged over batch, time and height; mixed by ``loss_weight``."""
        pred = self.forward(video, actions)
        target = video[:, 1:].to(pred.dtype)
        mse = (pred - target).pow(2).sum(dim=(2, 4)).mean()
        l1 = (pred - target).abs().sum(dim=(2, 4)).mean()
        return dict(loss=self.loss_weight * mse + (1 - self.loss_weight) * l1, mse_loss=mse, l1_loss=l1)

    # ---- recurrent mode ---------------------------------------------------------------------------------
    def step(self, frame: torch.Tensor, states, action=None):
        """Predict the next frame from ``frame`` (b, C, H, W) and the stack's states. Returns (frame, states)."""
        b = frame.shape[0]
        act = torch.zeros(b, 1, dtype=torch.long, device=frame.device) if action is None else action.reshape(b, 1)
        x = self._inputs(self.encode(frame.unsqueeze(1)), act.long())[:, 0]
        y, states = self.sequence_model.step(x, states)
        return self.decode(y.unsqueeze(1))[:, 0], states

    @torch.no_grad()
    def generate(self, video: torch.Tensor, num_context: int, num_frames: int | None = None, actions=None):
        """Condition on ``video[:, :num_context]`` and generate the rest autoregressively in step mode.

        ``num_frames`` is the total length to return (default ``video.shape[1]``; it may exceed the clip).
        Returns (batch, num_frames, C, H, W): the context frames, then the generated ones.
        """
        self.check_clip(video)
        total = video.shape[1] if num_frames is None else num_frames
        if not 1 <= num_context < total:
            raise ValueError(f"num_context must be at least 1 and less than the number of frames ({total}), "
                             f"got {num_context}")
        if num_context > video.shape[1]:
            raise ValueError(f"num_context ({num_context}) exceeds the clip's {video.shape[1]} frames")
        b = video.shape[0]
        acts = None if actions is None else self._actions(actions, b, total, video.device)
        states = None
        if num_context > 1:
            _, states = self.condition(video[:, :num_context], None if acts is None else acts[:, :num_context])
        frame = video[:, num_context - 1]
        out = [video[:, i] for i in range(num_context)]
        for i in range(num_context, total):
            frame, states = self.step(frame, states, None if acts is None else acts[:, i])
            out.append(frame)
        return torch.stack(out, 1).clamp(-1, 1)

# Smoke UperNet over a narrow, shallow VMamba (v2 blocks, widths 32-256, one block per stage).
_base_ = ['../_base_/upernet_smoke.py']
model = dict(
    backbone=dict(type='VMamba', arch='tiny', dims=32, depths=(1, 1, 1, 1), drop_path_rate=0.0),
    decode_head=dict(in_channels=[32, 64, 128, 256]),
    auxiliary_head=dict(in_channels=128))

# Smoke UperNet over a plain timm ResNet-18 (the reference point for our backbones).
_base_ = ['../_base_/upernet_smoke.py']
model = dict(
    backbone=dict(type='TimmBackbone', model_name='resnet18', out_indices=(1, 2, 3, 4)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))

# Smoke Mask R-CNN over a plain timm ResNet-18 (the reference point for our backbones).
_base_ = ['../_base_/mask-rcnn_smoke.py']
model = dict(
    backbone=dict(type='TimmBackbone', model_name='resnet18', out_indices=(1, 2, 3, 4)),
    neck=dict(in_channels=[64, 128, 256, 512]))

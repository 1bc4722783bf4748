# Mask R-CNN + FPN on COCO with an EfficientVMamba backbone (family base; pick a schedule base next to it).
# The official runs use mixed precision and batch 4 per GPU on 4 GPUs (16 in total).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='EfficientVMamba', arch='base', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[96, 192, 384, 768]))
train_dataloader = dict(batch_size=4)  # the variants switch on AmpOptimWrapper

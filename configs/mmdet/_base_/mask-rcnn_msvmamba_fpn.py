# Mask R-CNN + FPN on COCO with an MSVMamba backbone (family base; pick a schedule base next to it).
# Drop path 0.1: the official detection configs leave it at their backbone's default.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='MSVMamba', arch='tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.1),
    neck=dict(in_channels=[96, 192, 384, 768]))

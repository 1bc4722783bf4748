# Mask R-CNN 3x with multi-scale training: 36 epochs, lr x0.1 at epochs 27 and 33, otherwise as 1x.
# The multi-scale crop pipeline is defined here; a 3x config plugs it in with
#   train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_crop_train_pipeline}}))
_base_ = ['./schedule_1x_adamw.py']

train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]

_long_edge = 1333
_scales = [(short, _long_edge) for short in range(480, 801, 32)]
ms_crop_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, _long_edge), (500, _long_edge), (600, _long_edge)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
    ]),
    dict(type='PackDetInputs'),
]

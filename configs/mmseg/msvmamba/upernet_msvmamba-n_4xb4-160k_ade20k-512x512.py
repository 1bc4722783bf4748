_base_ = ['../_base_/upernet_msvmamba.py']
model = dict(backbone=dict(arch='nano', drop_path_rate=0.1),
             decode_head=dict(in_channels=[48, 96, 192, 384]), auxiliary_head=dict(in_channels=192))

_base_ = ['../_base_/upernet_msvmamba.py']
model = dict(backbone=dict(arch='tiny', drop_path_rate=0.2),
             decode_head=dict(in_channels=[96, 192, 384, 768]), auxiliary_head=dict(in_channels=384))

_base_ = ['../_base_/upernet_vmamba.py']
model = dict(backbone=dict(arch='small', drop_path_rate=0.3))

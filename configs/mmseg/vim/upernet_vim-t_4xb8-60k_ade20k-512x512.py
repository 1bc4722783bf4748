# The official tiny fine-tuning script raises lr to 2e-4 and weight decay to 0.1.
_base_ = ['../_base_/upernet_vim.py']
model = dict(backbone=dict(arch='tiny_patch16_224'))
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=0.1))

"""hsatrain: the training pipeline of hsamem's learned HSA encoder (tools/train/README.md).

Each step is a module run with `python3 -m hsatrain.STEP` with tools/train on the module search
path (from the top of the source tree: `PYTHONPATH=tools/train python3 -m hsatrain.train ...`):
corpus, tokenizer, pack, train, evaluate, export, check_golden and selftest. The modules import
each other relatively, so the package runs from any directory without installing it.
"""

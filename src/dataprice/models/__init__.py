"""Models the buyers load or train: language models, embedders, softmax regression, and the on-disk caches of what they compute."""

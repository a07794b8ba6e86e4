"""The models: the model registry (``registry``), the backend contract (``backend``), the diffusers
pipelines and the model manager.

Modules that handlers import (``backend``, ``registry``, ``styles``, ``images``) never import torch;
the diffusers code is imported lazily by the worker. Imports nothing of ours but itself.
"""

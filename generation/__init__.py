"""Jobs, the queue and its workers, the model registry, the pipelines, beautification, safety.

Modules in this package that handlers import (``backend``, ``styles``, ``jobs``) never import torch;
the diffusers code is imported lazily by the worker.
"""

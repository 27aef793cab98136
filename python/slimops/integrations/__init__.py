"""Integrations of slimops ops into other libraries.

- :mod:`slimops.integrations.transformers`: the ``"slimops"`` attention for
  Hugging Face transformers (fused KV-cache append + attention through
  :func:`slimops.kv_attention`), used with :class:`slimops.KVCache`.

Submodules are not imported here, so that ``import slimops`` never pulls in
the libraries they integrate with.
"""

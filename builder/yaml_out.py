"""YAML for generated platform files (``template.yaml``, Kubernetes manifests).

Written with PyYAML from plain data in the order the preset built it (no
key sorting, so a manifest reads ``apiVersion``, ``kind``, ``metadata``,
``spec``), without anchors or aliases (a repeated label map is written out
each time, as people write manifests), one line per scalar: the same data
gives the same bytes. Strings YAML 1.1 would read as something else
(``OFF``, ``yes``, ``1.0``) are quoted by PyYAML's representer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .bundle import GENERATED


def dump_yaml(*documents: Any) -> str:
    """``documents`` as one YAML stream (``---`` between documents), headed
    by the "generated" comment."""
    import yaml  # only the presets writing YAML pay for it

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    body: Iterable[str] = yaml.dump_all(documents, Dumper=Dumper, sort_keys=False,
                                        width=1_000_000, allow_unicode=True)
    return f"# {GENERATED}\n{''.join(body)}"

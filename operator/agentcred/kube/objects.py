"""Small typed handles on Kubernetes objects, passed between the services and this layer.

``OwnerRef`` becomes an ownerReference (garbage collection ties a generated Secret
to its task); ``ObjectRef`` is what an Event is about. ``Body`` names the plain JSON
dicts this layer returns for whole objects: the API server's own JSON, camelCase keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]


@dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str

    def as_dict(self, controller: bool) -> dict[str, Any]:
        """The ownerReference; ``controller`` marks the one owner that manages the object."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": False,
        }


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def as_dict(self) -> dict[str, str]:
        """The ``involvedObject`` / ``regarding`` form."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }

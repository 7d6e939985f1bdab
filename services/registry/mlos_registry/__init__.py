"""MLOS registry: the source of truth for models, versions and their artifacts."""

from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.domain import ModelVersion, ServingConfig, TensorSpec
from mlos_registry.server import create_server, start

__all__ = [
    "ModelVersion",
    "Registry",
    "RegistryClient",
    "RegistrySettings",
    "ServingConfig",
    "TensorSpec",
    "create_server",
    "start",
]

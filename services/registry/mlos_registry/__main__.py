"""`python -m mlos_registry`: run the registry service (settings from MLOS_REGISTRY_* env)."""

from mlos_common.service_main import run_service
from mlos_registry.config import RegistrySettings
from mlos_registry.server import start


def main() -> None:
    run_service("registry", RegistrySettings(), start)


if __name__ == "__main__":
    main()

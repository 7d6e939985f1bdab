"""The registry as the learning loop's model store (loop.ModelStore), over RegistryClient."""

from __future__ import annotations

from pathlib import Path

from mlos_common.config import ServiceSettings
from mlos_common.errors import NotFound
from mlos_registry.client import RegistryClient


class RegistryModelStore:
    """Registers trained models by path (the registry reads the file: same host or shared
    storage) and fetches the latest version of one into `dest_dir`."""

    def __init__(self, addr: str, timeout_s: float = 10.0, settings: ServiceSettings | None = None) -> None:
        self.addr = addr
        self._client = RegistryClient(addr, timeout_s=timeout_s, settings=settings)
        self._timeout_s = timeout_s

    async def register(self, name: str, path: Path, labels: dict[str, str]) -> int:
        return (await self._client.register(name, path.resolve(), labels=labels)).version

    async def latest(self, name: str, dest_dir: Path) -> tuple[int, dict[str, str], bytes] | None:
        try:
            mv = await self._client.get(name)
        except NotFound:
            return None
        path, _ = await self._client.fetch_artifact(
            name, mv.version, dest_dir / f"{name}-v{mv.version}.onnx", timeout_s=self._timeout_s
        )
        return mv.version, dict(mv.labels), path.read_bytes()

    async def close(self) -> None:
        await self._client.close()

"""Register images served by small pymodbus servers (tests/modbus_image.py) and the real
adapters against them, over the real broker."""

from __future__ import annotations

from typing import Any

from edge.config import parse_site
from tests.integration.adapter_harness import SITE, LoopThread
from tests.integration.sunspec_oracle import pysunspec2_values
from tests.modbus_image import Faults, ImageServer


class ImageSite(LoopThread):
    """`ImageSite(broker, {"dev": (image, faults)}, **device_keys)`: one SunSpec adapter per
    image, named like the image; `device_keys` go into every `[[devices]]` table."""

    def __init__(
        self, broker: Any, images: dict[str, tuple[dict[int, int], Faults | None]], **keys: Any
    ) -> None:
        super().__init__()
        self.servers: dict[str, ImageServer] = {}
        try:
            for name, (image, faults) in images.items():
                self.servers[name] = self.call(ImageServer(image, faults).start())
            tables = [
                {"name": n, "kind": "sunspec", "port": s.port, **keys}
                for n, s in self.servers.items()
            ]
            self.site = parse_site(
                {
                    "site": {"id": SITE},
                    "broker": {"host": broker.host, "port": broker.port, "keepalive": 2},
                    "devices": tables,
                }
            )
            self.run_adapters(self.site)
        except BaseException:
            self._stop_servers()
            self.stop_loop()
            raise

    def pysunspec2(self, image: dict[int, int]) -> dict[str, Any]:
        """pysunspec2's own decoding of an image, served by a server of its own."""
        server = self.call(ImageServer(image).start())
        try:
            return pysunspec2_values(server.port)
        finally:
            self.call(server.stop())

    def port(self, name: str) -> int:
        return self.servers[name].port

    def _stop_servers(self) -> None:
        for s in self.servers.values():
            self.call(s.stop())

    def close(self) -> None:
        try:
            self.stop_adapters()
            self._stop_servers()
        finally:
            self.stop_loop()

    def __enter__(self) -> ImageSite:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

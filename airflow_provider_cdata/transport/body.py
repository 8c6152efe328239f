"""Reading an answer's body: decoded here (gzip, deflate), as it arrives, and never past a cap.

Both transports read the raw bytes themselves and feed them to a :class:`BodyReader`, so neither
``requests``/``urllib3`` nor ``aiohttp`` decodes a body: a body that does not decode is a
:class:`~airflow_provider_cdata.exceptions.CDataAPIError` (retried: a damaged body is a fault on the
way, not CData's answer), and decompression stops at :data:`MAX_BODY_BYTES` whatever the ratio (a few
hundred KB of gzip can inflate to GBs), so no more than the cap is ever held.
"""

from __future__ import annotations

import zlib

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.routes import Call

# The largest body the provider reads, after decompression. CData's answers are small JSON; the largest
# is List Connections of a child account with many connections, ~300 bytes each (id, name, data source,
# times, external id, MCP URL, status): 16 MiB is ~50,000 of them, and 5x the 3 MB of 10,000.
MAX_BODY_BYTES = 16 * 1024 * 1024

# What both transports offer: the codings decoded here, nothing that needs an optional package.
ACCEPT_ENCODING = "gzip, deflate"

# Decoded bytes asked of zlib at a time: zlib builds each output in blocks and then joins them, so one
# large output would briefly take twice its size.
DECODE_STEP = 1024 * 1024

# Raw bytes asked of the socket per read (the sync transport; aiohttp reads as the network delivers).
READ_CHUNK = 64 * 1024


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


class BodyReader:
    """Collects one answer's body: ``feed`` the raw bytes as they come, then ``content()``.

    Raises :class:`CDataAPIError` (with the answer's status) when the body would pass ``limit`` bytes
    once decoded (without decoding more than ``limit + 1`` bytes), when it does not decode, or when
    its ``Content-Encoding`` is not one this reader decodes.
    """

    __slots__ = (
        "_attempts",
        "_call",
        "_coding",
        "_fed",
        "_limit",
        "_parts",
        "_pending",
        "_size",
        "_status",
        "_zlib",
    )

    def __init__(
        self,
        call: Call,
        status: int,
        content_encoding: str | None,
        attempts: int,
        limit: int = MAX_BODY_BYTES,
    ) -> None:
        self._call = call
        self._status = status
        self._attempts = attempts
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._fed = False  # any raw bytes at all (an empty body is empty whatever its coding)
        self._pending = b""  # deflate: the first bytes, until its header can be told zlib or raw
        self._zlib: zlib._Decompress | None = None
        self._coding = self._parse_coding(content_encoding)
        if self._coding == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _parse_coding(self, header: str | None) -> str:
        if not header:
            return "identity"
        codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
        if not codings:
            return "identity"
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            return "gzip" if codings[0] == "x-gzip" else codings[0]
        raise self._error(f"a Content-Encoding this client did not ask for ({header.strip()[:40]})", False)

    def declared_length(self, content_length: str | None) -> None:
        """Refuse at once a plain body whose ``Content-Length`` is over the limit."""
        declared = content_length.strip() if content_length else ""
        if self._coding == "identity" and declared.isdigit() and int(declared) > self._limit:
            raise self._too_large()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._fed = True
        if self._coding == "identity":
            self._keep(data)
        else:
            self._decode(data)

    def content(self) -> bytes:
        """The whole decoded body; a compressed body must have come to its end."""
        if self._coding != "identity" and self._fed and (self._zlib is None or not self._zlib.eof):
            raise self._undecodable(f"the {self._coding} stream ends before it is complete")
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)

    # -- decoding ------------------------------------------------------------------------------------
    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self._parts.clear()
            raise self._too_large()
        self._parts.append(data)

    def _start_deflate(self, data: bytes) -> None:
        # "deflate" is meant as zlib-wrapped; some servers send it raw: tell them apart by the header.
        wrapped = data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        self._pending = b""

    def _decode(self, data: bytes) -> None:
        if self._zlib is None:  # deflate, before its first two bytes
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return
            self._start_deflate(data)
        decoder = self._zlib
        assert decoder is not None
        try:
            while data:
                if decoder.eof:
                    if self._coding != "gzip":
                        return  # bytes after the end of a deflate stream: ignored, as urllib3 and aiohttp do
                    data = data.lstrip(b"\x00")  # NUL padding after a member, as Python's gzip allows
                    if not data:
                        return
                    decoder = self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member
                # At most one byte more than the limit is ever decoded: enough to know it is too much.
                self._keep(decoder.decompress(data, min(DECODE_STEP, self._limit - self._size + 1)))
                data = decoder.unused_data if decoder.eof else decoder.unconsumed_tail
        except zlib.error as exc:
            raise self._undecodable(str(exc)) from None

    # -- errors --------------------------------------------------------------------------------------
    def _error(self, what: str, retryable: bool | None) -> CDataAPIError:
        return CDataAPIError(
            self._call.method,
            self._call.path,
            self._status,
            f"answered {self._status} with {what}",
            self._attempts,
            retryable=retryable,
        )

    def _too_large(self) -> CDataAPIError:
        # Retried only when the status says so (a 502 page from a proxy): a 200 this large is no answer.
        return self._error(f"a body over the {_mib(self._limit)} limit; not read further", None)

    def _undecodable(self, detail: str) -> CDataAPIError:
        # A damaged body (a proxy, a cut stream) can come out whole on the next try.
        return self._error(f"a {self._coding} body that does not decode ({detail[:80]})", True)

"""Tiny, real, decodable images built from scratch for tests.

Every builder returns the bytes of a complete file in its format, of the
requested size, filled with one colour. They are written by hand (no imaging
library) but follow the specifications closely enough for ordinary decoders
(libpng, libjpeg, giflib, libwebp, libtiff) to open them.

The exceptions are `avif` and `heic`: their container is right (an ``ftyp``
box naming the brands, and a ``meta`` box whose ``ispe`` property gives the
size), which is all a host or a sniffer reads before accepting the file, but
they carry no coded picture, so a decoder cannot show them.
"""

from __future__ import annotations

import struct
import zlib

RGB = tuple[int, int, int]


def _check_size(width: int, height: int, limit: int = 65535) -> None:
    if not (1 <= width <= limit and 1 <= height <= limit):
        raise ValueError(f"image size must be 1..{limit} in each direction")


# --- PNG --------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png(width: int = 1, height: int = 1, color: RGB = (255, 0, 0), pad_to: int = 0) -> bytes:
    """An 8-bit RGB PNG.

    `pad_to` adds a private ancillary chunk (which decoders skip) so that the
    file is at least that many bytes: handy for size-limit tests.
    """
    _check_size(width, height, 2**31 - 1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(color) * width  # filter type 0, then the pixels
    body = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(row * height, 9))
    )
    end = _png_chunk(b"IEND", b"")
    missing = pad_to - len(body) - len(end)
    if missing > 0:
        # "juNk": ancillary, private, safe to copy; 12 bytes of chunk framing.
        body += _png_chunk(b"juNk", b"\x00" * max(0, missing - 12))
    return body + end


# --- GIF --------------------------------------------------------------------


def _gif_lzw_codes(pixel_count: int) -> list[int]:
    """LZW codes for `pixel_count` pixels of colour index 0, min code size 2.

    A clear code every two pixels keeps the decoder's table below 8 entries,
    so every code stays 3 bits wide: no real compression, but valid.
    """
    clear, end = 4, 5
    codes: list[int] = []
    for start in range(0, pixel_count, 2):
        codes.append(clear)
        codes.extend([0] * min(2, pixel_count - start))
    codes.append(end)
    return codes


def _pack_lsb_first(codes: list[int], width: int) -> bytes:
    acc = 0
    nbits = 0
    out = bytearray()
    for code in codes:
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def _gif_sub_blocks(data: bytes) -> bytes:
    out = bytearray()
    for start in range(0, len(data), 255):
        block = data[start : start + 255]
        out.append(len(block))
        out += block
    out.append(0)
    return bytes(out)


def gif(width: int = 1, height: int = 1, color: RGB = (255, 0, 0)) -> bytes:
    """A GIF89a with a two-entry global palette, every pixel colour 0."""
    _check_size(width, height)
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # global table of 2 colours
    palette = bytes(color) + b"\x00\x00\x00"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    data = _pack_lsb_first(_gif_lzw_codes(width * height), 3)
    return (
        b"GIF89a"
        + screen
        + palette
        + descriptor
        + b"\x02"  # LZW minimum code size
        + _gif_sub_blocks(data)
        + b"\x3b"
    )


# --- JPEG -------------------------------------------------------------------

# The standard luminance DC table (ITU T.81, K.3): code lengths, then symbols.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
# A one-symbol AC table: only end-of-block (0x00) is ever coded, as "0".
_AC_BITS = (1, *([0] * 15))
_AC_VALUES = (0,)


def _huffman_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes: symbol -> (code, length)."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    index = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[index]] = (code, length)
            code += 1
            index += 1
        code <<= 1
    return codes


class _JpegBitWriter:
    """MSB-first bit writer with JPEG byte stuffing (0xFF is followed by 0x00)."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0
        self._nbits = 0

    def write(self, value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self._acc = (self._acc << 1) | ((value >> shift) & 1)
            self._nbits += 1
            if self._nbits == 8:
                self._emit()

    def _emit(self) -> None:
        self._out.append(self._acc)
        if self._acc == 0xFF:
            self._out.append(0x00)
        self._acc = 0
        self._nbits = 0

    def finish(self) -> bytes:
        if self._nbits:
            self.write(0x7F, 8 - self._nbits)  # pad the last byte with 1 bits
        return bytes(self._out)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _jpeg_scan(width: int, height: int, shade: int) -> bytes:
    dc_codes = _huffman_codes(_DC_BITS, _DC_VALUES)
    eob_code, eob_len = _huffman_codes(_AC_BITS, _AC_VALUES)[0]
    blocks = -(-width // 8) * -(-height // 8)
    writer = _JpegBitWriter()
    # With a quantiser of 1, a flat 8x8 block of value v has DC = 8 * (v - 128);
    # DC is coded as the difference from the previous block, so 0 after the first.
    first_dc = 8 * (shade - 128)
    for index in range(blocks):
        diff = first_dc if index == 0 else 0
        category = abs(diff).bit_length()
        code, length = dc_codes[category]
        writer.write(code, length)
        if category:
            extra = diff if diff > 0 else diff + (1 << category) - 1
            writer.write(extra, category)
        writer.write(eob_code, eob_len)
    return writer.finish()


def jpeg(width: int = 1, height: int = 1, shade: int = 128) -> bytes:
    """A baseline (SOF0) greyscale JFIF JPEG of one flat grey `shade` (0..255)."""
    _check_size(width, height)
    if not 0 <= shade <= 255:
        raise ValueError("shade must be 0..255")
    jfif = b"JFIF\x00\x01\x01\x00" + struct.pack(">HH", 1, 1) + b"\x00\x00"
    dqt = b"\x00" + b"\x01" * 64
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    dht_dc = b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALUES)
    dht_ac = b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALUES)
    sos = b"\x01\x01\x00\x00\x3f\x00"
    return (
        b"\xff\xd8"
        + _jpeg_segment(0xE0, jfif)
        + _jpeg_segment(0xDB, dqt)
        + _jpeg_segment(0xC0, sof)
        + _jpeg_segment(0xC4, dht_dc)
        + _jpeg_segment(0xC4, dht_ac)
        + _jpeg_segment(0xDA, sos)
        + _jpeg_scan(width, height, shade)
        + b"\xff\xd9"
    )


# --- WebP (lossless, VP8L) --------------------------------------------------


class _LsbBitWriter:
    def __init__(self) -> None:
        self._acc = 0
        self._nbits = 0

    def write(self, value: int, length: int) -> None:
        self._acc |= (value & ((1 << length) - 1)) << self._nbits
        self._nbits += length

    def getvalue(self) -> bytes:
        return self._acc.to_bytes(-(-self._nbits // 8), "little")


def _vp8l_single_symbol_code(writer: _LsbBitWriter, symbol: int) -> None:
    """A "simple" prefix code holding one symbol: decoding it reads zero bits."""
    writer.write(1, 1)  # simple code
    writer.write(0, 1)  # one symbol
    if symbol < 2:
        writer.write(0, 1)  # symbol fits in 1 bit
        writer.write(symbol, 1)
    else:
        writer.write(1, 1)  # symbol takes 8 bits
        writer.write(symbol, 8)


def _vp8l_bitstream(width: int, height: int, color: RGB) -> bytes:
    red, green, blue = color
    writer = _LsbBitWriter()
    writer.write(0x2F, 8)  # VP8L signature
    writer.write(width - 1, 14)
    writer.write(height - 1, 14)
    writer.write(0, 1)  # alpha is not used
    writer.write(0, 3)  # version 0
    writer.write(0, 1)  # no transform
    writer.write(0, 1)  # no colour cache
    writer.write(0, 1)  # no meta prefix codes
    # Green, red, blue, alpha, distance. Each has a single symbol, so every
    # pixel costs zero bits and the image data after the codes is empty.
    for symbol in (green, red, blue, 255, 0):
        _vp8l_single_symbol_code(writer, symbol)
    return writer.getvalue()


def _riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return fourcc + struct.pack("<I", len(payload)) + payload + pad


def webp(width: int = 1, height: int = 1, color: RGB = (255, 0, 0)) -> bytes:
    """A lossless (VP8L) WebP in a plain RIFF container."""
    _check_size(width, height, 16384)
    chunk = _riff_chunk(b"VP8L", _vp8l_bitstream(width, height, color))
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


# --- BMP --------------------------------------------------------------------


def bmp(width: int = 1, height: int = 1, color: RGB = (255, 0, 0)) -> bytes:
    """A 24-bit uncompressed Windows BMP (bottom-up rows padded to 4 bytes)."""
    _check_size(width, height)
    red, green, blue = color
    row = bytes((blue, green, red)) * width
    row += b"\x00" * (-len(row) % 4)
    pixels = row * height
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    offset = 14 + len(info)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return header + info + pixels


# --- TIFF -------------------------------------------------------------------


def tiff(width: int = 1, height: int = 1, shade: int = 128) -> bytes:
    """An uncompressed 8-bit greyscale little-endian TIFF with one strip."""
    _check_size(width, height)
    short, long_ = 3, 4
    entry_count = 9
    ifd_size = 2 + 12 * entry_count + 4
    data_offset = 8 + ifd_size
    pixel_count = width * height
    entries = (
        (256, long_, width),  # ImageWidth
        (257, long_, height),  # ImageLength
        (258, short, 8),  # BitsPerSample
        (259, short, 1),  # Compression: none
        (262, short, 1),  # PhotometricInterpretation: BlackIsZero
        (273, long_, data_offset),  # StripOffsets
        (277, short, 1),  # SamplesPerPixel
        (278, long_, height),  # RowsPerStrip
        (279, long_, pixel_count),  # StripByteCounts
    )
    ifd = struct.pack("<H", entry_count)
    for tag, kind, value in entries:
        # A SHORT value sits left-justified in the 4-byte field: LE u32 does that.
        ifd += struct.pack("<HHII", tag, kind, 1, value)
    ifd += struct.pack("<I", 0)  # no next IFD
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes([shade]) * pixel_count


# --- AVIF and HEIC (ISO-BMFF containers, no coded picture) ------------------


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _heif_container(brands: tuple[bytes, ...], width: int, height: int) -> bytes:
    _check_size(width, height, 2**31 - 1)
    major, *compatible = brands
    ftyp = _box(b"ftyp", major + struct.pack(">I", 0) + b"".join(compatible))
    ispe = _full_box(b"ispe", struct.pack(">II", width, height))
    meta = _full_box(
        b"meta",
        _full_box(b"hdlr", b"\x00" * 4 + b"pict" + b"\x00" * 12 + b"\x00")
        + _full_box(b"pitm", struct.pack(">H", 1))
        + _box(b"iprp", _box(b"ipco", ispe)),
    )
    return ftyp + meta


def avif(width: int = 1, height: int = 1) -> bytes:
    """An AVIF container (brands avif, mif1, miaf) declaring `width` x `height`."""
    return _heif_container((b"avif", b"avif", b"mif1", b"miaf"), width, height)


def heic(width: int = 1, height: int = 1) -> bytes:
    """A HEIC container (brands heic, mif1), as a phone camera writes, of `width` x `height`."""
    return _heif_container((b"heic", b"mif1", b"heic"), width, height)

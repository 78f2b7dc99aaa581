"""Filters (tests/tests/mplib.rs): upper-case the response, swap a/A in the body."""


def upper(filter):
    data = filter.read()
    while data:
        filter.write(data.upper())
        data = filter.read()
    if data is None:
        filter.close()


def swap_a(filter):
    data = filter.read()
    while data:
        filter.write(data.replace(b"a", b"A"))
        data = filter.read()
    if data is None:
        filter.close()


def sizes(filter):
    """Writes the size of each piece it is given: shows the stream arrives in pieces."""
    data = filter.read()
    if data:
        filter.write(b"[%d]" % len(data))
    while data:
        data = filter.read()
    if data is None:
        filter.close()


def sneaky(filter):
    """Tries to write around the filter chain and read the body: refused."""
    try:
        filter.req.write("injected")
    except Exception as exc:  # noqa: BLE001
        filter.write(b"[write refused: %s]" % type(exc).__name__.encode())
    try:
        filter.req.read()
    except Exception as exc:  # noqa: BLE001
        filter.write(b"[read refused: %s]" % type(exc).__name__.encode())
    filter.pass_on()
    if filter.read() is None:
        filter.close()


def double(filter):
    """Doubles every byte: a filter whose output is larger than what the
    reader asked for."""
    data = filter.read()
    while data:
        filter.write(bytes(b for byte in data for b in (byte, byte)))
        data = filter.read()
    if data is None:
        filter.close()

"""Leaks 4 MiB on every request: recycling must keep it answering."""

LEAK = []


def application(environ, start_response):
    LEAK.append(bytearray(4 << 20))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"leaked {len(LEAK) * 4} MiB".encode()]

"""A well-behaved tenant: must keep answering whatever its neighbours do."""

SECRET = "neighbour-secret-4711"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"neighbour ok"]

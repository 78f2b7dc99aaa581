"""A hello world for the `wasi:http/proxy` world: the work of the WSGI hello
world in ../app/wsgi.py (read method, path, headers and body; answer 200 with
a Content-Type), written directly against `wasi:http/incoming-handler`.

Every resource is closed explicitly (`with`): a child (a body stream) must be
dropped before its parent, or the host traps the instance.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

BODY = b"Hello, World!\n"


def _read_body(request):
    chunks = []
    with request.consume() as body:
        with body.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(65536))
                except Err as e:
                    if isinstance(e.value, StreamError_Closed):
                        break
                    raise
    return b"".join(chunks)


class IncomingHandler(exports.IncomingHandler):
    """The exported `wasi:http/incoming-handler`."""

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        with request:
            method = request.method()
            path = request.path_with_query() or "/"
            with request.headers() as fields:
                headers = fields.entries()
            body = _read_body(request)
        # What a WSGI environ holds, to do the same work as the WSGI app.
        environ = {"REQUEST_METHOD": type(method).__name__, "PATH_INFO": path,
                   "wsgi.input": body}
        for name, value in headers:
            environ["HTTP_" + name.upper().replace("-", "_")] = value.decode("latin-1")
        response = OutgoingResponse(Fields.from_list([
            ("content-type", b"text/plain; charset=utf-8"),
            ("content-length", str(len(BODY)).encode()),
        ]))
        response.set_status_code(200)
        out_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with out_body.write() as stream:
            stream.blocking_write_and_flush(BODY)
        OutgoingBody.finish(out_body, None)

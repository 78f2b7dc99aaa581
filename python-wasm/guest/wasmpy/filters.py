"""mod_python's filters behind the `run-filter` export.

The host calls a filter once per piece of the data passing through it (an
output filter sees the response, an input filter the request body), never
the whole stream at once. The handler gets mod_python's filter object:
`read`/`readline` return the piece's bytes, then `b""` when the piece is
used up, or None once the end of the stream has been read; `write` queues
output, `close` ends the stream, `pass_on` passes the rest of the piece
unchanged, `disable` passes everything unchanged from now on.

As in mod_python 3.5: the handler is `module[::object]` (default object
`outputfilter` / `inputfilter`), its directory goes on sys.path (or
PythonPath is evaluated), an exception disables the filter, is logged and,
with PythonDebug, its traceback is written into the stream; the filter is
flushed after each call unless it closed.
"""

import html
import traceback

from mod_python import apache

from . import _host, phases


class Filter:
    """mod_python's filter object, over one piece of data."""

    def __init__(self, req, call):
        handler = call.handler
        d = self.__dict__
        d["req"] = req
        d["name"] = call.name
        d["is_input"] = bool(call.is_input)
        d["handler"] = handler.spec
        d["dir"] = handler.directory or None
        d["softspace"] = 0
        d["closed"] = False
        d["disabled"] = False
        d["_wp_data"] = call.data.encode("latin-1")
        d["_wp_pos"] = 0
        d["_wp_eos"] = bool(call.eos)
        d["_wp_out"] = []
        d["_wp_flush"] = False

    def __setattr__(self, name, value):
        if name == "softspace":
            self.__dict__[name] = value
            return
        raise AttributeError(f"filter attribute {name!r} is read-only")

    def _wp_check_open(self):
        if self.closed:
            raise ValueError("I/O operation on a closed filter")

    def read(self, length=-1):
        """At most `length` bytes of the piece (all of it when negative);
        b"" when the piece is used up, None at the end of the stream."""
        self._wp_check_open()
        data, pos = self._wp_data, self._wp_pos
        if pos >= len(data):
            return None if self._wp_eos else b""
        end = len(data) if length is None or length < 0 else pos + int(length)
        chunk = data[pos:end]
        self.__dict__["_wp_pos"] = pos + len(chunk)
        return chunk

    def readline(self, length=-1):
        """One line of the piece (with its newline), at most `length` bytes."""
        self._wp_check_open()
        data, pos = self._wp_data, self._wp_pos
        if pos >= len(data):
            return None if self._wp_eos else b""
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline + 1
        if length is not None and length >= 0:
            end = min(end, pos + int(length))
        chunk = data[pos:end]
        self.__dict__["_wp_pos"] = pos + len(chunk)
        return chunk

    def write(self, data):
        """Queue `data` (bytes, or str sent as UTF-8) for the next filter."""
        self._wp_check_open()
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write() argument must be str or bytes, not {type(data).__name__}")
        if data:
            self._wp_out.append(bytes(data))

    def flush(self):
        """Send what was written so far."""
        self._wp_check_open()
        self.__dict__["_wp_flush"] = True

    def close(self):
        """End the stream after what was written."""
        if not self.closed:
            self.__dict__["closed"] = True
            self.__dict__["_wp_flush"] = True

    def pass_on(self):
        """Pass the rest of the piece on unchanged."""
        self._wp_check_open()
        rest = self._wp_data[self._wp_pos:]
        self.__dict__["_wp_pos"] = len(self._wp_data)
        if rest:
            self._wp_out.append(rest)

    def disable(self):
        """Pass everything on unchanged from now on (the rest of this piece too)."""
        self.__dict__["disabled"] = True

    def __repr__(self):
        kind = "input" if self.is_input else "output"
        return f"<mp_filter {self.name!r} ({kind}) {self.handler!r}>"


def _report(fltr, debug, exc):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    _host.stderr("".join(f"{fltr.name} {fltr.handler}: {line}"
                         for line in "".join(lines).splitlines(True)))
    if debug and not fltr.closed:
        page = "\n<pre>\nMod_python error: \"%s %s\"\n\n%s</pre>\n" % (
            html.escape(fltr.name), html.escape(fltr.handler),
            "".join(html.escape(line) + "\n" for line in lines))
        fltr._wp_out.append(page.encode("utf-8"))


def run_filter(rid, call):
    """The `run-filter` export: (output bytes, closed, disabled, flush, failure)."""
    req = phases._request_for(rid)
    d = req.__dict__
    d["_wp_phase"] = call.name
    d["_wp_interpreter"] = call.interpreter
    d["_wp_options"] = tuple(call.options)
    d["_wp_config"] = tuple(call.config)
    d["_wp_fields"] = None
    fltr = Filter(req, call)
    config = dict(call.config)
    debug = config.get("PythonDebug") == "1"
    failure = None
    previous = phases._current
    phases._current = req
    try:
        module_name, sep, obj_str = fltr.handler.partition("::")
        if not sep:
            obj_str = "inputfilter" if fltr.is_input else "outputfilter"
        phases._apply_python_path(config, fltr.dir)
        module = phases._import(module_name, phases._flag(config, "PythonAutoReload", True), debug)
        obj = phases._resolve(module, obj_str, fltr, False)
        try:
            obj(fltr)
        except apache.SERVER_RETURN:
            pass  # mod_python ignores the value in a filter
        if not fltr.closed:
            fltr.flush()
    except MemoryError as exc:
        _report(fltr, False, exc)
        fltr.disable()
        failure = "memory"
    except BaseException as exc:  # noqa: BLE001
        cause = exc.__cause__ if isinstance(exc, phases._ImportFailed) and exc.__cause__ else exc
        _report(fltr, debug, cause)
        fltr.disable()
        failure = "import-failed" if isinstance(exc, phases._ImportFailed) else "exception"
    finally:
        phases._current = previous
    if fltr.disabled and not fltr.closed:
        fltr._wp_out.append(fltr._wp_data[fltr._wp_pos:])
    return b"".join(fltr._wp_out), fltr.closed, fltr.disabled, fltr._wp_flush, failure

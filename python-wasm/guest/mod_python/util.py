"""mod_python.util for mod_wasmpy: `FieldStorage`, `Field`, `StringField`,
`parse_qs`, `parse_qsl`, `parse_header`, `redirect` and `apply_fs_data`.

Written for mod_wasmpy from mod_python 3.5's documentation and observed
behaviour (it is not mod_python's code). What differs, and why, is listed in
docs/mod_python.md ("mod_python.util"). In short:

- the request body is read in bounded chunks and parsed as it comes: it is
  never held in memory whole; file uploads go to unlinked temporary files in
  the tenant's state directory (`wasmpy.state.tempdir()`), never to a path
  made from the client's file name;
- every name and every non-file value is a `str` (mod_python 3.5 on Python 3
  gives `bytes` for some of them);
- limits, set with `PythonOption` (0 means no limit):

      mod_python.util.max_upload_bytes  total bytes of the file parts of a
                                        request (default 0: only the tenant's
                                        max_body bounds them)
      mod_python.util.max_fields        fields (query string and body parts)
                                        in one FieldStorage (default 1000)
      mod_python.util.max_form_bytes    total bytes of the names and non-file
                                        values, which are kept in memory
                                        (default 8 MiB)

  Over a limit, FieldStorage closes what it opened (unlinking temporary
  files) and raises `apache.SERVER_RETURN(apache.HTTP_REQUEST_ENTITY_TOO_LARGE)`;
  a body over the tenant's max_body gives the same. A header line of a part
  over 8190 bytes, more than 100 header lines in a part, or a boundary
  longer than 200 bytes give `HTTP_BAD_REQUEST`.
"""

import codecs
import html
import io
import re
import tempfile
import types
import urllib.parse

from mod_python import apache

__all__ = [
    "Field", "StringField", "FieldList", "FieldStorage", "parse_qs", "parse_qsl",
    "parse_header", "apply_fs_data", "redirect",
]

# mod_python's name for the size of its reads; ours read 64 KiB at a time.
readBlockSize = 65368
CHUNK = 64 * 1024

OPTION_PREFIX = "mod_python.util."
DEFAULT_MAX_UPLOAD_BYTES = 0
DEFAULT_MAX_FIELDS = 1000
DEFAULT_MAX_FORM_BYTES = 8 * 1024 * 1024

#: Bounds of a multipart body that are not options (Apache's defaults for
#: request header lines and their number, RFC 2046's boundary with room).
MAX_HEADER_LINE = 8190
MAX_PART_HEADERS = 100
MAX_BOUNDARY = 200
# Transport padding (spaces after a delimiter) that is still a delimiter.
_MAX_PADDING = 256


# ---- decoding ---------------------------------------------------------------

def _to_text(data):
    """Header text of a part: UTF-8 when it is valid UTF-8, else Latin-1."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return bytes(data).decode("latin-1")


def _value_text(data, charset=None):
    """A form value as str: the part's charset when known, else UTF-8;
    undecodable bytes become U+FFFD."""
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass
    try:
        return bytes(data).decode(encoding, "replace")
    except (LookupError, TypeError, ValueError):  # a codec that is not for text
        return bytes(data).decode("utf-8", "replace")


def _qs_bytes(qs):
    if isinstance(qs, str):
        # Strings from the host carry the raw bytes as Latin-1 where they fit.
        try:
            return qs.encode("latin-1")
        except UnicodeEncodeError:
            return qs.encode("utf-8")
    if isinstance(qs, (bytes, bytearray, memoryview)):
        return bytes(qs)
    raise TypeError(f"a query string must be str or bytes, not {type(qs).__name__}")


# ---- query strings ----------------------------------------------------------

_SEPARATORS = re.compile(rb"[&;]")


def _pair(piece, keep_blank_values):
    """mod_python's (Apache's) reading of one `name=value`: '+' is a space,
    the name ends at the first '=', %XX escapes are decoded (malformed ones
    are kept as they are), and a decoded NUL ends the name or value.
    None when the pair is dropped (empty, or blank value without
    keep_blank_values)."""
    if not piece:
        return None
    key, _, value = piece.replace(b"+", b" ").partition(b"=")
    if not value and not keep_blank_values:
        return None
    key = urllib.parse.unquote_to_bytes(key).split(b"\0", 1)[0]
    value = urllib.parse.unquote_to_bytes(value).split(b"\0", 1)[0]
    return key, value


def _pairs(data, keep_blank_values):
    for piece in _SEPARATORS.split(data):
        pair = _pair(piece, keep_blank_values)
        if pair is not None:
            yield pair


def parse_qsl(qs, keep_blank_values=0, strict_parsing=0):
    """The (name, value) pairs of a query string, in order. Pairs are
    separated by '&' or ';'. A str gives str pairs (the bytes decoded as
    UTF-8, invalid sequences as U+FFFD); bytes give bytes pairs.
    `strict_parsing` is accepted and ignored, as in mod_python."""
    data = _qs_bytes(qs)
    pairs = _pairs(data, keep_blank_values)
    if isinstance(qs, str):
        return [(_value_text(k), _value_text(v)) for k, v in pairs]
    return list(pairs)


def parse_qs(qs, keep_blank_values=0, strict_parsing=0):
    """A dict of name -> list of values of a query string (see parse_qsl)."""
    result = {}
    for key, value in parse_qsl(qs, keep_blank_values, strict_parsing):
        result.setdefault(key, []).append(value)
    return result


# ---- headers ----------------------------------------------------------------

def _split_params(text):
    """Split at ';' outside double quotes."""
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _rfc2231(value):
    """`charset'lang'percent-encoded` (RFC 2231 `name*=`), or None."""
    charset, sep1, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    if not (sep1 and sep2):
        return None
    try:
        return urllib.parse.unquote_to_bytes(encoded).decode(charset or "utf-8", "replace")
    except LookupError:
        return None


def parse_header(line):
    """A Content-Type-like header as (lower-case value, {param: value}).
    Parameter names are lower-cased, surrounding double quotes removed
    (backslashes are kept: browsers send Windows paths in filenames), and
    `param*=charset''text` (RFC 2231) decoded over `param`. Takes str or
    bytes (bytes are decoded as UTF-8, or Latin-1 when not UTF-8)."""
    if isinstance(line, (bytes, bytearray, memoryview)):
        line = _to_text(line)
    elif not isinstance(line, str):
        raise TypeError("parse_header() takes str or bytes")
    plist = [p.strip() for p in _split_params(line)]
    key = plist.pop(0).lower()
    pdict = {}
    extended = {}
    for p in plist:
        name, sep, value = p.partition("=")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name.endswith("*") and len(name) > 1:
            decoded = _rfc2231(value)
            if decoded is not None:
                extended[name[:-1]] = decoded
            continue
        pdict[name] = value
    pdict.update(extended)
    return key, pdict


# ---- fields -----------------------------------------------------------------

class Field:
    """A form input that is a file upload (or one made by old code with
    Field(name, file, ctype, type_options, disp, disp_options[, headers]))."""

    file = None
    filename = None
    type = None
    type_options = {}
    disposition = None
    disposition_options = {}
    headers = {}

    def __init__(self, name, *args, **kwargs):
        self.name = name
        if args or kwargs:
            self.__bc_init__(*args, **kwargs)

    def __bc_init__(self, file, ctype, type_options, disp, disp_options, headers={}):  # noqa: B006
        self.file = file
        self.type = ctype
        self.type_options = type_options
        self.disposition = disp
        self.disposition_options = disp_options
        self.filename = disp_options.get("filename") if disp_options else None
        self.headers = headers

    def __getattr__(self, name):
        # `value` reads the whole file (bytes), leaving it at its start.
        if name != "value":
            raise AttributeError(name)
        file = self.file
        if not file:
            return None
        file.seek(0)
        value = file.read()
        if not isinstance(value, bytes):
            raise TypeError("value must be bytes, is file opened in binary mode?")
        file.seek(0)
        return value

    def __repr__(self):
        return "Field(%r, %r)" % (self.name, self.value)

    def __del__(self):
        file = self.__dict__.get("file")
        if file is not None:
            try:
                file.close()
            except Exception:  # noqa: BLE001 - a finalizer must not raise
                pass


class StringField(str):
    """A form value that is not a file: a str with the attributes of a Field
    (`value` is the str itself; `file` a binary file of its bytes)."""

    name = None
    filename = None
    type = "text/plain"
    ctype = "text/plain"
    type_options = {}
    disposition = None
    disposition_options = {}
    disp_options = None
    headers = {}

    def __new__(cls, value=""):
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = _value_text(value)
        return str.__new__(cls, value)

    def __init__(self, value=""):
        str.__init__(self)
        self.value = str(self)

    def __getattr__(self, name):
        if name != "file":
            raise AttributeError(name)
        self.file = io.BytesIO(self.value.encode("utf-8"))
        return self.file

    def __repr__(self):
        return "Field(%r, %r)" % (self.name, self.value)


class FieldList(list):
    """The list of a FieldStorage's fields, with a cached name index."""

    def __init__(self, *args):
        list.__init__(self, *args)
        self._table = None

    def table(self):
        """{name: [fields]} in the order the names first appear."""
        if self._table is None:
            index = {}
            for item in self:
                index.setdefault(item.name, []).append(item)
            self._table = index
        return self._table

    def _changed(method):  # noqa: N805 - a decorator of this body
        def changed(self, *args, **kwargs):
            self._table = None
            return method(self, *args, **kwargs)
        changed.__name__ = method.__name__
        return changed

    append = _changed(list.append)
    extend = _changed(list.extend)
    insert = _changed(list.insert)
    pop = _changed(list.pop)
    remove = _changed(list.remove)
    clear = _changed(list.clear)
    sort = _changed(list.sort)
    reverse = _changed(list.reverse)
    __setitem__ = _changed(list.__setitem__)
    __delitem__ = _changed(list.__delitem__)
    __iadd__ = _changed(list.__iadd__)
    __imul__ = _changed(list.__imul__)
    del _changed


# ---- reading the body -------------------------------------------------------

def _too_large():
    return apache.SERVER_RETURN(apache.HTTP_REQUEST_ENTITY_TOO_LARGE)


def _bad_request():
    return apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)


# Results of a scan for a delimiter.
_NEXT, _LAST, _EOF, _MORE, _NO = "next", "last", "eof", "more", "no"


class _Body:
    """The request body read in chunks of at most CHUNK bytes (and at most
    `length` in all), buffered only as far as the parser needs."""

    def __init__(self, req, length):
        self.req = req
        self.left = length
        self.buf = bytearray()
        self.eof = False

    def fill(self):
        """Read one more chunk; False at the end of the body."""
        if self.eof:
            return False
        n = CHUNK if self.left is None else min(CHUNK, self.left)
        if n <= 0:
            self.eof = True
            return False
        try:
            data = self.req.read(n)
        except apache.RequestTooLarge:
            # Over the tenant's max_body.
            raise _too_large() from None
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("req.read() must return bytes")
        if not data:
            self.eof = True
            return False
        if len(data) > n:
            data = data[:n]
        if self.left is not None:
            self.left -= len(data)
        self.buf += data
        return True

    def readline(self, limit):
        """One line with its LF (the last may have none); b"" at the end;
        HTTP_BAD_REQUEST when longer than `limit`."""
        start = 0
        while True:
            end = self.buf.find(b"\n", start)
            if end >= 0:
                n = end + 1
                break
            if len(self.buf) > limit:
                raise _bad_request()
            start = len(self.buf)
            if not self.fill():
                n = len(self.buf)
                break
        if n > limit:
            raise _bad_request()
        line = bytes(self.buf[:n])
        del self.buf[:n]
        return line

    def _after_delimiter(self, j):
        """What follows a `LF--boundary` at self.buf[j:]: (_LAST, end),
        (_NEXT, end) for a delimiter line, (_NO, 0) when it is content,
        (_MORE, 0) when more data is needed to tell."""
        buf, n = self.buf, len(self.buf)
        if n - j >= 2 and buf[j:j + 2] == b"--":
            return _LAST, j + 2
        if n - j < 2 and not self.eof:
            return _MORE, 0
        k = j
        while k < n and buf[k] in b" \t":
            k += 1
            if k - j > _MAX_PADDING:
                return _NO, 0
        if k == n:
            return (_LAST, n) if self.eof else (_MORE, 0)
        if buf[k] == 0x0A:
            return _NEXT, k + 1
        if buf[k] == 0x0D:
            if k + 1 == n:
                return (_NEXT, n) if self.eof else (_MORE, 0)
            if buf[k + 1] == 0x0A:
                return _NEXT, k + 2
        return _NO, 0

    def copy_to_boundary(self, dash_boundary, sink):
        """Pass the body up to the next delimiter (`CRLF--boundary`, or a
        bare LF before it) to `sink(bytes)` (None: discard) and consume the
        delimiter line. Returns _NEXT (a part follows), _LAST (the close
        delimiter) or _EOF (the body ended without one)."""
        delim = b"\n" + dash_boundary
        keep = len(delim) + 1  # a delimiter may start there (with its CR)
        buf = self.buf
        start = 0
        while True:
            i = buf.find(delim, start)
            if i >= 0:
                verdict, end = self._after_delimiter(i + len(delim))
                if verdict == _NO:
                    start = i + 1
                    continue
                cut = i - 1 if i > 0 and buf[i - 1] == 0x0D else i
                if verdict == _MORE:
                    if cut and sink is not None:
                        sink(bytes(buf[:cut]))
                    del buf[:cut]
                    start = 0
                    self.fill()
                    continue
                if cut and sink is not None:
                    sink(bytes(buf[:cut]))
                del buf[:end]
                return verdict
            if len(buf) > keep:
                cut = len(buf) - keep
                if sink is not None:
                    sink(bytes(buf[:cut]))
                del buf[:cut]
            start = 0
            if not self.fill():
                if buf and sink is not None:
                    sink(bytes(buf))
                buf.clear()
                return _EOF


def _is_delimiter_line(line, dash_boundary):
    """None if `line` is not a delimiter line, else True for the close delimiter."""
    if not line.startswith(dash_boundary):
        return None
    rest = line[len(dash_boundary):]
    if rest.startswith(b"--"):
        return True
    return False if not rest.strip(b" \t\r\n") else None


# ---- FieldStorage -----------------------------------------------------------

def _parse_size(name, raw):
    text = raw.strip().lower()
    factor = 1
    for suffix, mult in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if text.endswith(suffix):
            text, factor = text[:-1].strip(), mult
            break
    try:
        value = int(text) * factor
    except ValueError:
        raise ValueError(f"PythonOption {OPTION_PREFIX}{name} {raw!r} is not a number "
                         "(a count or a size in bytes, with an optional K, M or G)") from None
    if value < 0:
        raise ValueError(f"PythonOption {OPTION_PREFIX}{name} must not be negative")
    return value


def _option(req, name, default):
    get_options = getattr(req, "get_options", None)
    if get_options is None:
        return default
    raw = get_options().get(OPTION_PREFIX + name)
    if isinstance(raw, list):
        raw = raw[-1]
    if raw is None or raw == "":
        return default
    return _parse_size(name, raw)


class FieldStorage:
    """The form data of a request: the query string, and for a POST an
    `application/x-www-form-urlencoded` or `multipart/*` body.

    A mapping of field name -> StringField, Field (a file upload) or a list
    of them when the name repeats; `list` has every field in order.
    """

    def __init__(self, req, keep_blank_values=0, strict_parsing=0,
                 file_callback=None, field_callback=None):
        self.list = FieldList()
        self._max_fields = _option(req, "max_fields", DEFAULT_MAX_FIELDS)
        self._max_form = _option(req, "max_form_bytes", DEFAULT_MAX_FORM_BYTES)
        self._max_upload = _option(req, "max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES)
        self._fields = 0
        self._form_bytes = 0
        self._upload_bytes = 0
        self._open = []  # files this constructor opened or was given
        try:
            self._parse(req, keep_blank_values, file_callback, field_callback)
        except BaseException:
            self._close_all()
            self.list = FieldList()
            raise
        finally:
            del self._open

    # -- limits --

    def _count_field(self):
        self._fields += 1
        if self._max_fields and self._fields > self._max_fields:
            raise _too_large()

    def _count_form(self, n):
        self._form_bytes += n
        if self._max_form and self._form_bytes > self._max_form:
            raise _too_large()

    def _count_upload(self, n):
        self._upload_bytes += n
        if self._max_upload and self._upload_bytes > self._max_upload:
            raise _too_large()

    def _close_all(self):
        for file in self._open:
            try:
                file.close()
            except Exception:  # noqa: BLE001 - closing what is left, never raising
                pass

    # -- parsing --

    def _add_pair(self, key, value):
        self._count_field()
        self._count_form(len(key) + len(value))
        self.add_field(_value_text(key), _value_text(value))

    def _parse(self, req, keep_blank_values, file_callback, field_callback):
        args = req.args
        if args:
            for key, value in _pairs(_qs_bytes(args), keep_blank_values):
                self._add_pair(key, value)

        if req.method != "POST":
            return

        headers = req.headers_in
        try:
            clen = int(headers.get("content-length"))
        except (TypeError, ValueError):
            clen = -1
        if clen < 0:
            # A body without (a valid) Content-Length, chunked included.
            raise apache.SERVER_RETURN(apache.HTTP_LENGTH_REQUIRED)

        ctype = headers.get("content-type")
        if isinstance(ctype, list):
            ctype = ctype[0]
        if ctype is None:
            ctype = "application/x-www-form-urlencoded"
        low = ctype.strip().lower()
        body = _Body(req, clen)
        if low.startswith("application/x-www-form-urlencoded"):
            self._read_urlencoded(body, keep_blank_values)
            return
        if not low.startswith("multipart/"):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_IMPLEMENTED)

        boundary = parse_header(ctype)[1].get("boundary", "")
        try:
            boundary = boundary.encode("latin-1")
        except UnicodeEncodeError:
            boundary = boundary.encode("utf-8")
        if not boundary or len(boundary) > MAX_BOUNDARY:
            raise _bad_request()
        self._read_multipart(body, b"--" + boundary, file_callback, field_callback)

    def _read_urlencoded(self, body, keep_blank_values):
        buf = body.buf
        while True:
            scanned = len(buf)  # the tail kept holds no separator
            more = body.fill()
            if more:
                last = max(buf.rfind(b"&", scanned), buf.rfind(b";", scanned))
                if last < 0:
                    if self._max_form and len(buf) > self._max_form:
                        raise _too_large()
                    continue
                done = bytes(buf[:last])
                del buf[:last + 1]
            else:
                done = bytes(buf)
                buf.clear()
            for key, value in _pairs(done, keep_blank_values):
                self._add_pair(key, value)
            if not more:
                return

    def _read_part_headers(self, body, dash_boundary):
        """(headers table, disposition, disp options, type, type options), or
        (None, last) when the part has no body: a delimiter line or the end
        came first (last: True when nothing follows)."""
        lines = []
        while True:
            line = body.readline(MAX_HEADER_LINE)
            if not line:
                return None, True
            delimiter = _is_delimiter_line(line, dash_boundary)
            if delimiter is not None:
                return None, delimiter
            if line in (b"\r\n", b"\n"):
                break
            if line[:1] in (b" ", b"\t") and lines:
                lines[-1] += b" " + line.strip()
                if len(lines[-1]) > MAX_HEADER_LINE:
                    raise _bad_request()
                continue
            if len(lines) >= MAX_PART_HEADERS:
                raise _bad_request()
            lines.append(line.rstrip(b"\r\n"))

        table = apache.table()
        disp, disp_options = None, {}
        ctype, type_options = "text/plain", {}
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                continue  # not a header: ignored
            name = _to_text(name.strip())
            value = _to_text(value.strip())
            table.add(name, value)
            low = name.lower()
            if low == "content-disposition":
                disp, disp_options = parse_header(value)
            elif low == "content-type":
                ctype, type_options = parse_header(value)
                if "/" not in ctype:
                    # What old browsers send for files without a suffix.
                    ctype = "application/octet-stream"
        return (table, disp, disp_options, ctype, type_options), None

    def _read_multipart(self, body, dash_boundary, file_callback, field_callback):
        # The first delimiter may open the body: read it as if after a line end.
        body.buf += b"\r\n"
        verdict = body.copy_to_boundary(dash_boundary, None)
        while verdict == _NEXT:
            self._count_field()  # every part counts, even one skipped
            part, last = self._read_part_headers(body, dash_boundary)
            if part is None:
                # A malformed part (no blank line before a delimiter) is skipped.
                if last:
                    return
                continue
            headers, disp, disp_options, ctype, type_options = part
            name = disp_options.get("name")
            if name is None:
                # Nothing can address a part without a name: its body is skipped.
                verdict = body.copy_to_boundary(dash_boundary, None)
                continue

            filename = disp_options.get("filename")
            is_file = filename is not None
            ours = False
            if is_file:
                if file_callback is not None and callable(file_callback):
                    file = file_callback(filename)
                else:
                    ours = True
                    from wasmpy import state

                    file = tempfile.TemporaryFile("w+b", dir=state.tempdir(), prefix="upload-")
                count = self._count_upload
            else:
                if field_callback is not None and callable(field_callback):
                    file = field_callback()
                else:
                    file = io.BytesIO()
                count = self._count_form
            self._open.append(file)
            self._count_form(len(name))

            def sink(data, file=file, count=count):
                count(len(data))
                file.write(data)

            verdict = body.copy_to_boundary(dash_boundary, sink)
            file.seek(0)

            if filename:
                field = Field(name)
                field.filename = filename
            else:
                raw = file.read()
                field = StringField(_value_text(raw, type_options.get("charset")))
                if ours:
                    # A file input left empty: no temporary file kept for it.
                    file.close()
                    file = io.BytesIO(raw)
                else:
                    file.seek(0)
                field.name = name
            field.file = file
            field.type = ctype
            field.type_options = type_options
            field.disposition = disp
            field.disposition_options = disp_options
            field.headers = headers
            self.list.append(field)

    def parse_qsl_safely(self, query_string, keep_blank_values):
        """parse_qsl(); kept for code that called mod_python's."""
        return parse_qsl(query_string, keep_blank_values)

    # -- the mapping --

    def add_field(self, key, value):
        """Add a (str) value under `key`, after the values it has."""
        item = StringField(value)
        item.name = key
        self.list.append(item)

    def __setitem__(self, key, value):
        """Replace the values of `key` by one."""
        if isinstance(key, (bytes, bytearray)):
            key = _value_text(key)
        if not isinstance(key, str):
            raise TypeError("Field key must be str")
        if not isinstance(value, (str, bytes, bytearray)):
            raise TypeError("Field value must be str")
        for item in self.list.table().get(key, ()):
            self.list.remove(item)
        self.add_field(key, value)

    def __getitem__(self, key):
        found = self.list.table()[key]
        return found[0] if len(found) == 1 else found

    def get(self, key, default=None):
        try:
            return self[key]
        except (TypeError, KeyError):
            return default

    def __delitem__(self, key):
        for item in self.list.table()[key]:
            self.list.remove(item)

    def keys(self):
        return list(self.list.table().keys())

    def __iter__(self):
        return iter(self.keys())

    def has_key(self, key):
        try:
            return key in self.list.table()
        except TypeError:
            return False

    __contains__ = has_key

    def __len__(self):
        return len(self.list.table())

    def getfirst(self, key, default=None):
        try:
            return self.list.table()[key][0]
        except (KeyError, TypeError):
            return default

    def getlist(self, key):
        try:
            return list(self.list.table()[key])
        except (KeyError, TypeError):
            return []

    def items(self):
        """(name, field) for every field, in the order of the form."""
        return [(item.name, item) for item in self.list]

    def clear(self):
        self.list = FieldList()

    def __repr__(self):
        return repr(self.list.table())


# ---- redirect ---------------------------------------------------------------

def _output_started(req):
    invalidate = getattr(req, "_wp_invalidate", None)
    if invalidate is not None:
        invalidate()  # read the counters as they are now, not as cached
    sent = getattr(req, "sent_bodyct", None)
    if sent is None:
        # Apache counts what went through the output filters: after a
        # flushed write the status line and headers are gone.
        sent = getattr(req, "bytes_sent", None)
    return bool(sent)


def redirect(req, location, permanent=0, text=None):
    """Redirect the client to `location` (302, or 301 when permanent), with
    a short page (or `text`), then end the request: raises
    apache.SERVER_RETURN(apache.DONE). IOError once output was sent."""
    if not isinstance(location, str):
        raise TypeError("location must be of type str")
    if _output_started(req):
        raise IOError("Cannot redirect after headers have already been sent.")
    req.err_headers_out["Location"] = location
    req.status = apache.HTTP_MOVED_PERMANENTLY if permanent else apache.HTTP_MOVED_TEMPORARILY
    if text is None:
        text = ('<p>The document has moved <a href="%s">here</a></p>\n'
                % html.escape(location, quote=True))
    req.write(text)
    raise apache.SERVER_RETURN(apache.DONE)


# ---- apply_fs_data ----------------------------------------------------------

_NO_ARGS = object()


def _signature_target(obj):
    """(function, skip_first) whose parameters say what `obj` takes, or
    _NO_ARGS when it is called without arguments (builtins, classes without
    a Python __init__, other C callables), as mod_python decides."""
    if hasattr(obj, "__code__"):
        return obj, False
    func = getattr(obj, "__func__", None)
    if func is not None and hasattr(func, "__code__"):
        return func, True
    if isinstance(obj, type):
        init = obj.__init__
        if hasattr(init, "__code__"):
            return init, True
        return _NO_ARGS
    if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType,
                        types.MethodWrapperType, types.WrapperDescriptorType,
                        types.MethodDescriptorType)):
        return _NO_ARGS
    call = getattr(obj, "__call__", None)
    if call is None or isinstance(call, (types.MethodWrapperType, types.BuiltinMethodType)):
        return _NO_ARGS
    if isinstance(call, types.MethodType):
        func = call.__func__
        if hasattr(func, "__code__"):
            return func, True
        return _NO_ARGS
    # An object whose __call__ is another callable object: follow it.
    return _signature_target(call)


def apply_fs_data(object, fs, **args):  # noqa: A002 - mod_python's signature
    """Call `object` with the fields of `fs` (a FieldStorage) as keyword
    arguments: a field is passed when the callable has a parameter of its
    name, or takes **kwargs; a repeated field as a list; a file upload as its
    Field, any other value as a str. Keyword arguments given here (publisher
    gives `req`) are passed the same way and win over fields of the same name.
    """
    import inspect  # only here: a heavy import for what FieldStorage alone needs

    target = _signature_target(object)

    values = {}
    for field in fs.list:
        value = field if getattr(field, "filename", None) else field.value
        values.setdefault(field.name, []).append(value)
    kwargs = {name: v[0] if len(v) == 1 else v for name, v in values.items()
              if isinstance(name, str)}
    kwargs.update(args)

    if target is _NO_ARGS:
        return object()
    func, skip_first = target
    try:
        params = list(inspect.signature(func, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        # No signature to be had: what the code object says (mod_python's way).
        code = func.__code__
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        accepted = set(names[1:] if skip_first else names)
        if not code.co_flags & 0x08:  # CO_VARKEYWORDS
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        return object(**kwargs)
    if skip_first and params and params[0].kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        params = params[1:]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        accepted = {p.name for p in params if p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return object(**kwargs)

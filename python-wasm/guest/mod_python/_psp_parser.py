r"""The PSP parser of mod_wasmpy: PSP source -> Python source.

mod_python 3.5 translates pages with a flex-generated C scanner (`_psp`,
src/psp_parser.l). This is a pure-Python scanner written for mod_wasmpy from
that scanner's rules: for the pages mod_python translates into valid Python
it produces the same Python code, so pages behave the same and the lines of
the generated code are those of the page. The rules:

- each run of text becomes `req.write(<triple-quoted text>,0)`; every `"`
  of the text is written `\"`; the two-character sequences backslash-n,
  backslash-r and backslash-t are written `\\n`, `\\r`, `\\t` (they reach
  the client as typed); any other backslash is left to Python's string
  escapes (`\x41` gives `A`, `\\` gives one backslash), as mod_python does;
  CR LF in text becomes LF;
- `<% code %>`: the code, its newlines kept (CR LF and CR become LF). The
  whitespace opening the code's last line (or the line holding `%>`, when
  `%>` starts a line) is the indentation of the text that follows; a block
  whose last character is `:` adds a tab to it. A code block without a
  newline gets `;` after it. So a block is closed by a later `<% %>` whose
  last line is less indented (a comment line at the outer level, or an
  empty `<%` newline `%>` for the top level);
- `<%= expression %>`: `req.write(str(expression),0)`;
- `<%-- comment --%>`: removed;
- `<%@ include file="name" %>`: the named file is scanned in place of the
  directive, continuing the text around it. A relative name is taken from
  the directory of the page being translated (the top page: also for
  includes within includes). Other directives are ignored, as mod_python
  does; each gives a warning;
- there are no `<%! %>` declarations in mod_python 3.5: `<%!` is a code
  block starting with `!`. There is no escape for `%>` inside code or
  expressions (write `"%" ">"`), nor for `<%` in text (write `<<%= "%" %>`).

Where mod_python's output is not valid Python or loses text, this parser
does better, never differently for pages that work under mod_python:

- a backslash that Python would reject (`\x`, `\u`, `\U`, `\N` not forming
  a valid escape, a backslash ending a text run) or keep with a warning
  (`\d`) is written so that it reaches the client; NUL characters and lone
  surrogates in text are written as escapes (mod_python cuts the page at a
  NUL); an octal escape over `\377` is written as the `\u` escape of the
  same character;
- an unterminated `<%=`, `<%@` or `<%--`, an unterminated tag in an included
  file, an include that is missing, outside `ROOT`, cyclic or nested deeper
  than MAX_INCLUDE_DEPTH, a page over MAX_SOURCE_BYTES, a page that is not
  UTF-8 and NUL characters in code raise PSPSyntaxError naming the file,
  line and column (mod_python produces truncated code, or stops silently).
  An unterminated `<%` at the end of the page is accepted, as by
  mod_python: the rest of the page is Python code;
- the include directive is `include file = "name"` with any whitespace;
  the name may hold spaces but no `"` or newline.

The scanner works on whole runs (str.find and regular expressions): its time
is linear in the size of the page.
"""

import bisect
import codecs
import os
import re
import stat

#: The generator's identity; part of the keys of compiled-page caches.
VERSION = "wasmpy-psp-1"

#: Includes must resolve inside this directory (None: anywhere).
ROOT = "/app"
#: How deep includes may nest (the page itself is depth 0).
MAX_INCLUDE_DEPTH = 16
#: How many include directives one page may expand in all.
MAX_INCLUDES = 1000
#: Bytes of source (the page and everything it includes) one page may have.
MAX_SOURCE_BYTES = 16 * 1024 * 1024

__all__ = ["PSPSyntaxError", "Result", "parse_file", "parse_string", "compile_page",
           "VERSION", "ROOT"]


class PSPSyntaxError(SyntaxError):
    """A page that cannot be translated or compiled; `filename`, `lineno`,
    `offset` and `text` locate it in the page (or in an included file)."""

    def __init__(self, msg, filename=None, lineno=None, offset=None, text=None):
        super().__init__(msg, (filename or "<string>", lineno, offset, text))


_NEWLINE = re.compile(r"\r\n|\r|\n")
_NEWLINE_SPLIT = re.compile(r"(\r\n|\n|\r)")
_LEADING = re.compile(r"[ \t]*")
_TEXT_LETTER_ESCAPE = re.compile(r"\\([nrt])")
_INCLUDE = re.compile(r'\s*include\s+file\s*=\s*"([^"\r\n]*)"\s*')
_UNSAFE_CHARS = re.compile("[\x00\ud800-\udfff]")
# A backslash of a text literal and what follows, as Python reads it.
_PY_ESCAPE = re.compile(
    r"""\\(?:(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(N\{[^}\r\n]{0,256}\})"""
    r"""|([0-7]{1,3})|([\\'"abfnrtv\r\n])|(.)|\Z)""",
    re.S,
)


def _fix_escape(m):
    if m.group(1) is not None or m.group(5) is not None:
        return m.group(0)
    big = m.group(2)
    if big is not None:
        return m.group(0) if int(big, 16) <= 0x10FFFF else "\\" + m.group(0)
    name = m.group(3)
    if name is not None:
        try:
            codecs.decode(m.group(0).encode("ascii"), "unicode_escape")
            return m.group(0)
        except (UnicodeError, ValueError):
            return "\\" + m.group(0)
    octal = m.group(4)
    if octal is not None:
        value = int(octal, 8)
        return m.group(0) if value <= 0o377 else "\\u%04x" % value
    other = m.group(6)
    if other is not None:
        return "\\\\" + other
    return "\\\\"  # a backslash ending the literal


def _text_code(text):
    """A run of text as mod_python writes it inside `\"\"\"...\"\"\"`."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\\" in text:
        text = _TEXT_LETTER_ESCAPE.sub(lambda m: "\\\\" + m.group(1), text)
    if '"' in text:
        text = text.replace('"', '\\"')
    return text


def _literal(content):
    """Make a literal's content valid Python with the value mod_python's has."""
    if "\\" in content:
        content = _PY_ESCAPE.sub(_fix_escape, content)
    if _UNSAFE_CHARS.search(content):
        content = _UNSAFE_CHARS.sub(lambda m: "\\u%04x" % ord(m.group()), content)
    if content.endswith('"'):
        # `\"` in text ends in a bare quote, which would close the literal
        # early: escape it (same value).
        body = content[:-1]
        if (len(body) - len(body.rstrip("\\"))) % 2 == 0:
            content = body + '\\"'
    return content


def _lines(text):
    return text.count("\n") + text.count("\r") - text.count("\r\n")


class _Source:
    """One file (or string) being scanned."""

    __slots__ = ("name", "text", "_ends")

    def __init__(self, name, text):
        self.name = name
        self.text = text
        self._ends = None

    def position(self, pos):
        """(line, column), both from 1, of a character index."""
        if self._ends is None:
            self._ends = [m.end() for m in _NEWLINE.finditer(self.text)]
        index = bisect.bisect_right(self._ends, pos)
        start = self._ends[index - 1] if index else 0
        return index + 1, pos - start + 1

    def line_text(self, lineno):
        if self._ends is None:
            self.position(0)
        if lineno < 1 or lineno > len(self._ends) + 1:
            return None
        start = self._ends[lineno - 2] if lineno > 1 else 0
        end = self._ends[lineno - 1] if lineno - 1 < len(self._ends) else len(self.text)
        return self.text[start:end].rstrip("\r\n")[:1000]


class Result:
    """A translated page: `code` (Python source), `deps` ((path, mtime_ns,
    size) of every file read, the page first), `warnings`, and what is needed
    to map a line of `code` back to the page."""

    def __init__(self, code, deps, warnings, marks, sources, open_code):
        self.code = code
        self.deps = deps
        self.warnings = warnings
        self._marks = marks
        self._mark_lines = [m[0] for m in marks]
        self._sources = sources
        self.open_code = open_code

    def source_line(self, lineno):
        """(file, line) of the page that line `lineno` of `code` comes from."""
        index = bisect.bisect_right(self._mark_lines, lineno) - 1
        if index < 0:
            return None, lineno
        gen, name, line = self._marks[index]
        return name, line + (lineno - gen)

    def source_text(self, name, lineno):
        src = self._sources.get(name)
        return src.line_text(lineno) if src is not None else None

    def __str__(self):
        return self.code


def _inside(path, root):
    for p, r in ((os.path.abspath(path), os.path.abspath(root)),
                 (os.path.realpath(path), os.path.realpath(root))):
        r = r.rstrip("/")
        if not (p == r or p.startswith(r + "/") or r == ""):
            return False
    return True


class _Translator:
    def __init__(self, include_dir, root):
        self.include_dir = include_dir
        self.root = root
        self.out = []
        self.lit = []
        self.ws = ""
        self.after_colon = False
        self.seen_newline = False
        self.line = 1  # line of the generated code the next piece starts on
        self.marks = []
        self.deps = []
        self.warnings = []
        self.sources = {}
        self.chain = []
        self.includes = 0
        self.total = 0
        self.open_code = None

    # -- output --

    def emit(self, piece):
        self.out.append(piece)
        self.line += _lines(piece)

    def add_text(self, text):
        if text:
            piece = _text_code(text)
            self.lit.append(piece)
            self.line += _lines(piece)

    def close_text(self, closing):
        self.out.append(_literal("".join(self.lit)))
        self.lit = []
        self.emit(closing)

    def mark(self, src, pos):
        self.marks.append((self.line, src.name, src.position(pos)[0]))

    def error(self, src, pos, message):
        line, column = src.position(pos)
        return PSPSyntaxError(message, src.name, line, column, src.line_text(line))

    # -- files --

    def read(self, path, src=None, pos=0):
        """The text of `path`, recorded as a dependency."""
        def fail(message):
            if src is None:
                return PSPSyntaxError(message, path)
            return self.error(src, pos, message)

        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise fail(f"cannot read {path!r}: not a regular file")
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                budget = MAX_SOURCE_BYTES - self.total
                data = f.read(budget + 1)
        except OSError as exc:
            raise fail(f"cannot read {path!r}: {exc.strerror or exc}") from None
        if len(data) > budget:
            raise fail(f"{path!r}: the page and its includes are over {MAX_SOURCE_BYTES} bytes")
        self.total += len(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise PSPSyntaxError(f"{path!r} is not UTF-8 (byte 0x{data[exc.start]:02x})",
                                 path, line, column) from None
        self.deps.append((path, st.st_mtime_ns, st.st_size))
        return text

    def check_size(self, text):
        # Strings are counted as their UTF-8 size would be, at most.
        self.total += len(text)
        if self.total > MAX_SOURCE_BYTES:
            raise PSPSyntaxError(f"the page is over {MAX_SOURCE_BYTES} bytes")

    def source(self, name, text):
        src = _Source(name, text)
        self.sources.setdefault(name, src)
        return src

    # -- scanning --

    def scan(self, src, top):
        text = src.text
        if top:
            self.mark(src, 0)
            if not text:
                return
            self.emit('req.write("""')
        pos = 0
        while True:
            i = text.find("<%", pos)
            if i < 0:
                self.add_text(text[pos:])
                if top:
                    self.close_text('""",0)\n')
                return
            self.add_text(text[pos:i])
            if text.startswith("<%--", i):
                end = text.find("--%>", i + 4)
                if end < 0:
                    raise self.error(src, i, "unterminated comment: '<%--' without '--%>'")
                pos = end + 4
                self.mark(src, pos)
            elif text.startswith("<%@", i):
                end = text.find("%>", i + 3)
                if end < 0:
                    raise self.error(src, i, "unterminated directive: '<%@' without '%>'")
                self.directive(src, i, text[i + 3:end])
                pos = end + 2
                self.mark(src, pos)
            elif text.startswith("<%=", i):
                end = text.find("%>", i + 3)
                if end < 0:
                    raise self.error(src, i, "unterminated expression: '<%=' without '%>'")
                self.close_text('""",0); req.write(str(')
                self.code(src, i + 3, text[i + 3:end])
                self.emit('),0); req.write("""')
                pos = end + 2
            else:
                end = text.find("%>", i + 2)
                if end < 0 and not top:
                    raise self.error(src, i, "unterminated code: '<%' without '%>' "
                                             "in an included file")
                self.close_text('""",0);')
                self.ws = ""
                self.seen_newline = False
                if end < 0:
                    # As mod_python: the rest of the page is code.
                    self.code(src, i + 2, text[i + 2:])
                    self.open_code = (src.name,) + src.position(i)
                    return
                self.code(src, i + 2, text[i + 2:end])
                if not self.seen_newline:
                    self.emit(";")
                if self.after_colon:
                    self.ws += "\t"
                    self.after_colon = False
                self.emit(self.ws + 'req.write("""')
                pos = end + 2

    def code(self, src, start, content):
        bad = _UNSAFE_CHARS.search(content)
        if bad:
            what = "a NUL character" if bad.group() == "\0" else "a lone surrogate"
            raise self.error(src, start + bad.start(), f"{what} in Python code")
        parts = _NEWLINE_SPLIT.split(content)
        self.python(parts[0])
        last = len(parts) - 2
        for k in range(1, len(parts), 2):
            newline, segment = parts[k], parts[k + 1]
            self.emit("\n")
            self.seen_newline = True
            if newline != "\r" and segment[:1] in (" ", "\t"):
                # Leading whitespace at the start of a line: the indentation.
                indent = _LEADING.match(segment).group()
                self.ws = indent
                self.emit(indent)
                self.python(segment[len(indent):])
            elif not segment and k == last:
                pass  # `%>` at the start of the last line: the indentation stays
            else:
                self.ws = ""
                self.python(segment)

    def python(self, chars):
        if chars:
            self.emit(chars)
            self.after_colon = chars[-1] == ":"

    def directive(self, src, pos, content):
        m = _INCLUDE.fullmatch(content)
        if m is None:
            line = src.position(pos)[0]
            shown = content if len(content) <= 80 else content[:77] + "..."
            self.warnings.append(f"{src.name}:{line}: PSP directive <%@{shown}%> ignored "
                                 f"(only include file=\"...\" is known)")
            return
        name = m.group(1)
        if not name:
            raise self.error(src, pos, "include with an empty file name")
        if self.include_dir is not None and not name.startswith("/"):
            path = self.include_dir + name
        else:
            path = name
        path = os.path.abspath(path)
        if self.root is not None and not _inside(path, self.root):
            raise self.error(src, pos, f"include of {name!r} refused: {path!r} is outside "
                                       f"{self.root}")
        if len(self.chain) >= MAX_INCLUDE_DEPTH:
            raise self.error(src, pos, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
        real = os.path.realpath(path)
        if real in self.chain:
            cycle = " -> ".join(self.chain[self.chain.index(real):] + [real])
            raise self.error(src, pos, f"include cycle: {cycle}")
        self.includes += 1
        if self.includes > MAX_INCLUDES:
            raise self.error(src, pos, f"more than {MAX_INCLUDES} includes")
        text = self.read(path, src, pos)
        inc = self.source(path, text)
        self.chain.append(real)
        self.mark(inc, 0)
        self.scan(inc, top=False)
        self.chain.pop()

    def result(self):
        return Result("".join(self.out), self.deps, self.warnings, self.marks, self.sources,
                      self.open_code)


def parse_file(path, include_dir=None, root=...):
    """Translate the file at `path`. Relative includes are taken from
    `include_dir` (a prefix, as mod_python's `dir`: it should end with "/"),
    or from the current directory when it is None."""
    t = _Translator(include_dir, ROOT if root is ... else root)
    text = t.read(path)
    src = t.source(path, text)
    t.chain.append(os.path.realpath(path))
    t.scan(src, top=True)
    return t.result()


def parse_string(text, include_dir=None, root=..., name="<string>"):
    """Translate `text` (str, or bytes in UTF-8)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PSPSyntaxError(f"the PSP string is not UTF-8 (at byte {exc.start})",
                                 name) from None
    elif not isinstance(text, str):
        raise TypeError(f"PSP source must be str or bytes, not {type(text).__name__}")
    t = _Translator(include_dir, ROOT if root is ... else root)
    t.check_size(text)
    src = t.source(name, text)
    t.scan(src, top=True)
    return t.result()


def compile_page(result, filename):
    """Compile a Result; a SyntaxError is reported at the line of the page
    (or included file) the faulty code comes from."""
    try:
        return compile(result.code, filename, "exec", dont_inherit=True)
    except (RecursionError, MemoryError):
        # CPython's parser reports a deeply nested expression (`- - - ... 1`)
        # as a MemoryError: the page, not the instance, is at fault.
        raise PSPSyntaxError("the page's Python code is nested too deeply to compile",
                             filename) from None
    except SyntaxError as exc:
        gen = exc.lineno
        if gen is None:
            raise
        name, line = result.source_line(gen)
        name = name or filename
        lines = _NEWLINE.split(result.code)
        generated = lines[gen - 1] if 0 < gen <= len(lines) else ""
        message = exc.msg
        if result.open_code is not None:
            message += (f" (the '<%' at line {result.open_code[1]} of {result.open_code[0]} has "
                        f"no '%>': the rest of the page is Python code)")
        if generated.strip():
            shown = generated.strip()
            if len(shown) > 200:
                shown = shown[:197] + "..."
            message += f"; generated Python line {gen}: {shown}"
        raise PSPSyntaxError(message, name, line, None,
                             result.source_text(name, line)) from None
